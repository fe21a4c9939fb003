"""The gateway's own refusals: stable ids, a reference, Malay then English, documented.

Every reply the gateway makes by itself comes from `gateway.policy.builtin`; the
README lists each one (id, reply code, reference and text) so an administrator can
look up a `rule=` a user quotes, and the rejection log carries the same reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.envelope import Envelope
from gateway.observe.rejection_log import build_record
from gateway.policy import builtin, relay_control, replies
from gateway.policy.verdict import Reply

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
ENV = Envelope(direction="outbound", listener="outbound", client_ip="192.0.2.1",
               helo="client.test", mail_from="a@gmail.com", rcpt_to=())

# Every reply function of the gateway's own, with the built-in refusal it is.
OWN_REPLIES: list[tuple[Reply, builtin.Builtin]] = [
    (replies.size_exceeded(25 * 1024 * 1024, "R1"), builtin.SIZE),
    (replies.header_too_large(256 * 1024, "R1"), builtin.HEADER_TOO_LARGE),
    (replies.relay_denied("R1"), builtin.RELAY_ACCESS),
    (replies.sender_not_agency("R1"), builtin.RELAY_SENDER),
    (replies.bad_address("R1"), builtin.RELAY_ADDRESS),
    (replies.too_many_recipients(1000), builtin.TOO_MANY_RECIPIENTS),
    (replies.internal_error("R1"), builtin.INTERNAL_ERROR),
    (replies.not_inspectable("R1"), builtin.NOT_INSPECTABLE),
    (replies.busy("R1"), builtin.BUSY),
    (replies.upstream_unavailable("R1"), builtin.UPSTREAM_UNAVAILABLE),
    (replies.upstream_tls_failed("R1"), builtin.UPSTREAM_TLS),
    (replies.shutting_down(), builtin.SHUTTING_DOWN),
    (replies.bare_newline("R1"), builtin.BARE_NEWLINE),
    (replies.tls_required(), builtin.TLS_REQUIRED),
    (replies.command_too_long(), builtin.COMMAND_TOO_LONG),
    (replies.too_many_connections(), builtin.TOO_MANY_CONNECTIONS),
    (replies.too_many_commands(), builtin.TOO_MANY_COMMANDS),
    (replies.too_many_bad_commands(), builtin.TOO_MANY_BAD_COMMANDS),
    (replies.idle_timeout(), builtin.IDLE_TIMEOUT),
    (replies.data_too_slow(), builtin.DATA_TOO_SLOW),
]


def test_every_builtin_has_a_reply_function() -> None:
    assert sorted(b.id for _, b in OWN_REPLIES) == sorted(builtin.BY_ID)


def test_ids_are_unique_and_never_shadow_a_shipped_rule() -> None:
    assert len(builtin.BY_ID) == len(builtin.ALL)
    shipped = {m.group(1) for f in (REPO / "rules").glob("*.yaml")
               for m in re.finditer(r"^\s*- id: (\S+)", f.read_text(), re.MULTILINE)}
    assert not set(builtin.BY_ID) & shipped


@pytest.mark.parametrize(("reply", "own"), OWN_REPLIES, ids=lambda x: getattr(x, "id", ""))
def test_reply_is_malay_then_english_with_rule_and_ref(reply: Reply,
                                                       own: builtin.Builtin) -> None:
    assert (reply.code, reply.enhanced) == (own.code, own.enhanced)
    assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", reply.enhanced)
    assert reply.code // 100 == int(reply.enhanced[0])
    ms, en = reply.lines[:2]
    assert ms.split()[0] != en.split()[0]  # two languages, not one line twice
    if own.logged:
        assert reply.lines[2:] == (f"rule={own.id} ref=R1",)
    else:
        assert len(reply.lines) == 2
    assert own.reference.startswith("PPPA Bil. 3 Tahun 2025, Lampiran A, ")


def test_known_text_of_some_refusals() -> None:
    assert replies.sender_not_agency("R").lines == (
        "Penghantar mesti menggunakan alamat e-mel rasmi agensi.",
        "The sender must use the agency's official e-mail address.", "rule=relay-sender ref=R")
    assert replies.size_exceeded(25 * 1024 * 1024, "R").lines[1] == \
        "Message exceeds the size limit of 25MB. Use the large-file transfer service."


@pytest.mark.parametrize("own", builtin.ALL, ids=lambda b: b.id)
def test_readme_lists_each_refusal_with_code_reference_and_text(own: builtin.Builtin) -> None:
    rows = [line for line in README.splitlines() if line.startswith(f"| `{own.id}` |")]
    assert len(rows) == 1, own.id
    cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
    assert cells[1] == f"`{own.code} {own.enhanced}`"
    assert cells[3] == own.reference
    assert cells[4] == f"{own.ms} / {own.en}"


def test_relay_refusals_are_logged_with_their_reference() -> None:
    refusal = relay_control.check_mail(direction="outbound", client_ip="127.0.0.1",
                                       sender="a@gmail.com", relay_networks=[],
                                       agency_domains=["anm.gov.my"], authenticated=True)
    assert refusal is not None and refusal.rule_id == "relay-sender"
    rec = build_record(event="reject", ref="R", envelope=ENV, view=None, verdict=None,
                       reply=refusal.reply("R"), rule_id=refusal.rule_id,
                       reason=refusal.reason)
    assert rec["reference"] == \
        "PPPA Bil. 3 Tahun 2025, Lampiran A, 1.2.2(b)(iv) dan 3.2.2(a)(i)(e); MAMPU 2007 3(c)-(e)"
    assert rec["mail_from"] == "a@gmail.com"


def test_identify_names_session_refusals() -> None:
    assert builtin.identify(replies.too_many_connections()) == "sambungan-terlalu-banyak"
    assert builtin.identify(Reply(421, "4.7.0", ("other",))) is None
