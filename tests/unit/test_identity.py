"""Sender identity: From defects are evidence (`sender_identity`); shipped rules reject outbound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.pipeline import inspect
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence
from gateway.policy.verdict import Outcome
from gateway.policy_state import PolicyState, load_policy_for

REPO = Path(__file__).resolve().parents[2]
OUT = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="h",
               mail_from="pegawai@anm.gov.my", rcpt_to=("penerima@example.org",))
IN = Envelope(direction="inbound", listener="t", client_ip="127.0.0.1", helo="h",
              mail_from="luar@example.org", rcpt_to=("pegawai@anm.gov.my",))


def msg(head: bytes) -> bytes:
    return head + b"To: penerima@example.org\r\nSubject: Makluman\r\n\r\nSalam.\r\n"


def run(value: Any, raw: bytes) -> Evidence | None:
    check = REGISTRY["sender_identity"]
    return check.evaluate(check.validate(value),
                          Context(MessageView(raw), OUT, ("anm.gov.my",)))


@pytest.mark.parametrize(("head", "kinds"), [
    (b"From: Pegawai <pegawai@anm.gov.my>\r\n", ()),
    (b"From: Ali b. Abu <ali@anm.gov.my>\r\n", ()),  # obsolete phrase, harmless
    (b'From: "pegawai@anm.gov.my" <pegawai@anm.gov.my>\r\n', ()),  # the same address
    (b'From: "PEGAWAI@ANM.GOV.MY" <pegawai@anm.gov.my>\r\n', ()),
    (b"", ("from_missing",)),
    (b"From: a@anm.gov.my\r\nFrom: a@anm.gov.my\r\n", ("multiple_from_headers",)),
    (b"From: a@anm.gov.my\r\nFrom: b@anm.gov.my\r\n",
     ("multiple_from_headers", "multiple_from_addresses")),
    (b"From: a@anm.gov.my, b@anm.gov.my\r\n", ("multiple_from_addresses",)),
    (b"From: Pegawai <pegawai@anm.gov.my\r\n", ("from_unparsable",)),
    (b"From: undisclosed\r\n", ("from_unparsable",)),
    (b"From: ceo@anm.gov.my <x@evil.example>\r\n",
     ("from_unparsable", "multiple_from_addresses")),
    (b'From: "ceo@anm.gov.my" <x@evil.example>\r\n', ("display_name_address",)),
    (b"From: =?utf-8?B?Y2VvQGFubS5nb3YubXk=?= <x@evil.example>\r\n",
     ("display_name_address",)),
    # Full-width letters and @ fold to an address.
    ('From: "ｃｅｏ＠ａｎｍ.gov.my" <x@evil.example>\r\n'.encode(), ("display_name_address",)),
    (b"From: a@anm.gov.my\r\nSender: b@anm.gov.my\r\n", ()),
    (b"From: a@anm.gov.my\r\nSender: b@example.com\r\n", ("sender_domain_differs",)),
])
def test_identity_kinds(head: bytes, kinds: tuple[str, ...]) -> None:
    view = MessageView(msg(head))
    assert view.identity.kinds == kinds
    ev = run(list(kinds) or ["from_missing"], msg(head))
    assert (ev is not None) == bool(kinds)
    if ev is not None:
        assert ev["sender_identity"] == list(kinds)


def test_display_name_address_is_evidence_under_a_content_key() -> None:
    ev = run(["display_name_address"], msg(b'From: "ceo@anm.gov.my" <x@evil.example>\r\n'))
    assert ev == {"sender_identity": ["display_name_address"], "value": ["ceo@anm.gov.my"]}
    assert "structure" not in MessageView(msg(b"From: a@b.my\r\n")).__dict__  # header-only


@pytest.fixture(scope="module")
def shipped() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd: the antivirus rules are tests/unit/test_antivirus.py's.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


@pytest.mark.parametrize("head", [
    b'From: "ceo@anm.gov.my" <pegawai@anm.gov.my>\r\n',
    b"From: pegawai@anm.gov.my\r\nFrom: ketua@anm.gov.my\r\n",
    b"From: pegawai@anm.gov.my, ketua@anm.gov.my\r\n",
    b"From: <pegawai@anm.gov.my\r\n",
    b"",
])
def test_shipped_rules_reject_it_outbound_only(shipped: PolicyState, head: bytes) -> None:
    got = inspect(shipped, msg(head), OUT)
    assert (got.verdict.outcome, got.verdict.rule_id) == (Outcome.REJECT,
                                                          "pengirim-identiti-samar")
    assert got.reply is not None and (got.reply.code, got.reply.enhanced) == (550, "5.7.1")
    assert got.reply.lines[0].startswith("Pengepala From")  # Malay first, then English
    assert "From header" in got.reply.lines[1]
    assert inspect(shipped, msg(head), IN).verdict.outcome is Outcome.ACCEPT


def test_clean_from_and_bounces_pass(shipped: PolicyState) -> None:
    ok = msg(b'From: "pegawai@anm.gov.my" <pegawai@anm.gov.my>\r\n')
    assert inspect(shipped, ok, OUT).verdict.outcome is Outcome.ACCEPT
    bounce = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="h",
                      mail_from="", rcpt_to=("penerima@example.org",))
    two = msg(b"From: MAILER-DAEMON@anm.gov.my, postmaster@anm.gov.my\r\n")
    assert inspect(shipped, two, bounce).verdict.rule_id != "pengirim-identiti-samar"
