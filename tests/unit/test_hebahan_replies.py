"""Replies to announcements (issue 14 item 9): the quoted [HEBAHAN JANM] tag.

The prefix grammar (gateway.message.subject_prefix), the `subject_quotes_tag`
condition, the `defang` action as rules load it, the subject rewrite on raw bytes
(gateway.transforms.subject_tag.defang_subject, and the milter's value), the
config key `hebahan_defang`, and the SHIPPED rules' change plan and header-phase
decision (the proxy's cut-through) agreeing with the full inspection.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.envelope import Envelope
from gateway.message import headers as hdr
from gateway.message.subject_prefix import find_quoted, tag_pattern
from gateway.message.view import MessageView
from gateway.pipeline import decide_header, inspect
from gateway.policy.checks.base import Context
from gateway.policy.engine import evaluate, holds
from gateway.policy.rules import builtin_lists, load_rules
from gateway.policy_state import PolicyState, load_policy_for
from gateway.problems import LoadError
from gateway.transforms.subject_tag import defang_subject, tagged_subject

REPO = Path(__file__).resolve().parents[2]
TAG = tag_pattern("[HEBAHAN JANM]")
DEFANG = "[HEBAHAN JANM - TIDAK DISAHKAN]"


# -- the prefix grammar ----------------------------------------------------------------
@pytest.mark.parametrize("subject, kind", [
    ("Re: [HEBAHAN JANM] Makluman Cuti Umum", "reply"),
    ("RE: RE: [HEBAHAN JANM] Makluman", "reply"),
    ("RE:RE:[HEBAHAN JANM] Makluman", "reply"),
    ("re : [hebahan janm] makluman", "reply"),
    ("Balas: [HEBAHAN JANM] Makluman", "reply"),
    ("BLS: [HEBAHAN JANM] Makluman", "reply"),
    ("Re: Fwd: [HEBAHAN JANM] Makluman", "reply"),
    ("Fwd: [HEBAHAN JANM] Makluman", "forward"),
    ("FW: [HEBAHAN JANM] Makluman", "forward"),
    ("Fw: Re: [HEBAHAN JANM] Makluman", "forward"),
    ("Majukan: [HEBAHAN JANM] Makluman", "forward"),
    ("MAJUKAN:FW: [ HEBAHAN  JANM ] Makluman", "forward"),
    ("Re\uff1a \uff3bHEBAHAN JANM\uff3d Makluman", "reply"),  # full-width colon, brackets
    ("Re: [HEB\u0391HAN JANM] Makluman", "reply"),  # Greek capital Alpha
    ("Re: [HEBA\u200bHAN JANM] Makluman", "reply"),  # zero-width space
    ("R\u0435: [\u041d\u0415BAHAN JANM] Makluman", "reply"),  # Cyrillic e, EN, IE
])
def test_quoted_tag_is_found_with_its_kind(subject: str, kind: str) -> None:
    quote = find_quoted(subject, TAG)
    assert quote is not None
    assert quote.kind == kind
    start, end = quote.span
    # The span is the tag as written, whatever its look-alikes.
    assert subject[start] in "[\uff3b" and subject[end - 1] in "]\uff3d"
    assert subject[end:].lower().startswith(" makluman")


@pytest.mark.parametrize("subject", [
    "[HEBAHAN JANM] Makluman",  # bare
    "Makluman [HEBAHAN JANM]",
    "Re: Makluman [HEBAHAN JANM]",  # not right after the prefix
    "[LUAR] Re: [HEBAHAN JANM] Makluman",  # something before the prefix
    "Re: [HEBAHAN JANM] Makluman [HEBAHAN JANM]",  # the tag twice
    "Re: [HEBAHAN JANM] Re: [HEBAHAN JANM] Makluman",
    "Reply: [HEBAHAN JANM] Makluman",  # not a prefix we know
    "AW: [HEBAHAN JANM] Makluman",
    "Re [HEBAHAN JANM] Makluman",  # no colon
    "Re: Makluman",
])
def test_not_a_quote(subject: str) -> None:
    assert find_quoted(subject, TAG) is None


# -- the condition and the shipped rules (pure evaluation) ---------------------------
@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


def msg(subject: str, *, sender: str = "pegawai@agensi.example", thread: bool = True,
        crlf: bool = True) -> bytes:
    lines = [f"From: {sender}", "To: semua@anm.gov.my", f"Subject: {subject}",
             "Message-ID: <r1@agensi.example>"]
    if thread:
        lines.append("In-Reply-To: <hebahan-1@anm.gov.my>")
    eol = "\r\n" if crlf else "\n"
    return (eol.join(lines) + eol + eol + "Terima kasih." + eol).encode("utf-8")


def envelope(direction: Literal["inbound", "outbound"], mail_from: str) -> Envelope:
    return Envelope(direction=direction, listener=direction, client_ip="127.0.0.1"
                    if direction == "outbound" else "192.0.2.20", helo="client.test",
                    mail_from=mail_from, rcpt_to=("semua@anm.gov.my",))


def test_reply_prefix_needs_a_thread_field_forward_prefix_does_not(policy: PolicyState
                                                                   ) -> None:
    env = envelope("inbound", "pegawai@agensi.example")
    cases = [("Re: [HEBAHAN JANM] X", True, "hebahan-petik-masuk"),
             ("Re: [HEBAHAN JANM] X", False, "hebahan-tag-palsu"),
             ("Fwd: [HEBAHAN JANM] X", False, "hebahan-petik-masuk"),
             ("RE: Fwd: [HEBAHAN JANM] X", False, "hebahan-tag-palsu")]
    for subject, thread, rule in cases:
        verdict = evaluate(policy.rules, MessageView(msg(subject, thread=thread)), env)
        assert [h.rule_id for h in verdict.hits] == [rule], subject
    # References counts as well as In-Reply-To; an empty one does not.
    raw = msg("Balas: [HEBAHAN JANM] X", thread=False)
    with_refs = raw.replace(b"\r\n\r\n", b"\r\nReferences: <a@b>\r\n\r\n", 1)
    empty = raw.replace(b"\r\n\r\n", b"\r\nReferences: \r\n\r\n", 1)
    assert evaluate(policy.rules, MessageView(with_refs), env).subject_defangs == (
        ("[HEBAHAN JANM]", DEFANG),)
    assert evaluate(policy.rules, MessageView(empty), env).rule_id == "hebahan-tag-palsu"


def test_outbound_reply_passes_unchanged_and_bare_tag_is_refused(policy: PolicyState) -> None:
    env = envelope("outbound", "pegawai@anm.gov.my")
    raw = msg("RE: [HEBAHAN JANM] Makluman Cuti Umum", sender="pegawai@anm.gov.my")
    got = inspect(policy, raw, env)
    assert got.reply is None and got.relay_bytes == raw and got.verdict.hits == ()
    bare = inspect(policy, msg("[HEBAHAN JANM] Makluman", sender="pegawai@anm.gov.my"), env)
    assert bare.verdict.rule_id == "hebahan-tag-palsu"


def test_the_registered_sender_is_not_defanged(policy: PolicyState) -> None:
    [rule] = [r for r in policy.rules.rules if r.id == "hebahan-petik-masuk"]
    raw = msg("Re: [HEBAHAN JANM] X", sender="hebahan@anm.gov.my")
    for mail_from, holds_ in (("hebahan@anm.gov.my", False), ("lain@anm.gov.my", True)):
        ctx = Context(view=MessageView(raw), envelope=envelope("inbound", mail_from),
                      agency_domains=("anm.gov.my",))
        assert (holds(rule.when, ctx) is not None) is holds_, mail_from


# -- the rewrite on raw bytes ------------------------------------------------------------
def test_plain_subject_changes_only_the_tag_bytes() -> None:
    raw = msg("Re: [HEBAHAN JANM] Makluman Cuti Umum")
    out = defang_subject(raw, "[HEBAHAN JANM]", DEFANG)
    assert out == raw.replace(b"[HEBAHAN JANM]", DEFANG.encode())
    lf = msg("Fwd: [hebahan janm] x", crlf=False)
    assert defang_subject(lf, "[HEBAHAN JANM]", DEFANG) == lf.replace(
        b"[hebahan janm]", DEFANG.encode())
    # A bare tag, or no Subject at all: untouched (the same object).
    bare = msg("[HEBAHAN JANM] x")
    assert defang_subject(bare, "[HEBAHAN JANM]", DEFANG) is bare
    none = b"From: a@b\r\n\r\nx\r\n"
    assert defang_subject(none, "[HEBAHAN JANM]", DEFANG) is none


@pytest.mark.parametrize("subject", [
    "=?UTF-8?B?" + base64.b64encode("RE: [HEB\u0391HAN\u200b JANM] Cuti \u2713".encode())
    .decode() + "?=",
    "=?utf-8?q?Re=3A_=5BHEBAHAN_JANM=5D_Cuti_=E2=9C=93?=",
    "Re: =?UTF-8?Q?[HEBAHAN_JANM]?= Cuti =?UTF-8?Q?=E2=9C=93?=",
    "Re: [HEBAHAN\r\n JANM] Cuti \u2713",  # folded inside the tag, raw UTF-8
])
def test_encoded_and_folded_subjects_are_written_again(subject: str) -> None:
    raw = msg(subject)
    out = defang_subject(raw, "[HEBAHAN JANM]", DEFANG)
    got = MessageView(out).subject
    assert got.endswith(f"{DEFANG} Cuti \u2713"), got
    assert got.split(":")[0].upper() == "RE"
    assert b"\r\nIn-Reply-To: <hebahan-1@anm.gov.my>\r\n\r\nTerima kasih.\r\n" in out
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n"):
        assert len(line) <= 78 and line.isascii(), line
    # What the milter sends as the new value decodes to the same subject.
    value = tagged_subject(raw, (), (("[HEBAHAN JANM]", DEFANG),))
    assert value is not None
    assert hdr.decode(value.replace("\n", "\r\n").encode()) == got


# -- loading -------------------------------------------------------------------------------
def write_rule(tmp: Path, body: str) -> Path:
    d = tmp / "rules"
    d.mkdir(exist_ok=True)
    (d / "10.yaml").write_text("rules:\n  - id: r\n    when: {subject_quotes_tag: \"[X]\"}\n"
                               + body)
    return d


@pytest.mark.parametrize("body, message", [
    ("    action: defang\n", "action defang needs"),
    ("    action: defang\n    defang: {tag: \"[X]\"}\n", "action defang needs"),
    ("    action: defang\n    defang: {tag: \"[X]\", with: \"[ x ] again\"}\n",
     "still reads as the tag"),
    ("    action: defang\n    defang: {tag: \"[X]\", with: \"@relay_networks\"}\n",
     "list of exactly one"),
    ("    action: accept\n    defang: {tag: \"[X]\", with: \"[Y]\"}\n",
     "'defang' only goes with action: defang"),
])
def test_bad_defang_rules_fail_at_load(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(LoadError) as exc:
        load_rules(write_rule(tmp_path, body), builtin_lists(("anm.gov.my",), (), ()))
    assert message in str(exc.value)


def test_defang_wording_comes_from_the_config_list(tmp_path: Path) -> None:
    d = write_rule(tmp_path, "    action: defang\n"
                             "    defang: {tag: \"[X]\", with: \"@hebahan_defang\"}\n")
    rules = load_rules(d, builtin_lists(("anm.gov.my",), (), (), (), "[X?]"))
    assert rules.rules[0].defang == ("[X]", "[X?]")
    assert rules.change_plan.header_decides


def test_config_key_is_checked() -> None:
    base = {"listeners": [{"name": "i", "listen": "127.0.0.1:2526", "direction": "inbound"}],
            "upstream": "maildir:/tmp/x", "agency_domains": ["anm.gov.my"]}
    assert GatewayConfig.model_validate(base).hebahan_defang == DEFANG
    ok = GatewayConfig.model_validate({**base, "hebahan_defang": "[HEBAHAN? BELUM SAH]"})
    assert ok.hebahan_defang == "[HEBAHAN? BELUM SAH]"
    for bad in ("", "[hebahan  janm]", "[HEB\u0391HAN JANM]", "a\nb"):
        with pytest.raises(ValueError):
            GatewayConfig.model_validate({**base, "hebahan_defang": bad})


# -- cut-through: the header block decides the same change --------------------------------
def test_shipped_plan_lets_the_header_decide_and_agrees(policy: PolicyState) -> None:
    plan = policy.rules.change_plan
    assert plan.header_decides, plan.blockers
    assert "hebahan-petik-masuk" in [r.id for r in plan.rules]
    env = envelope("inbound", "pegawai@agensi.example")
    raw = msg("=?UTF-8?B?" + base64.b64encode("Re: [HEB\u0391HAN JANM] x".encode()).decode()
              + "?=")
    received = raw[:raw.index(b"\r\n\r\n") + 4]
    decision = decide_header(policy, received, env)
    assert decision.subject_defangs == (("[HEBAHAN JANM]", DEFANG),)
    assert MessageView(decision.block).subject == f"Re: {DEFANG} x"
    assert decision.agrees(inspect(policy, raw, env))


# -- `gateway check` on a file ------------------------------------------------------------
def test_gateway_check_shows_the_defanged_subject(tmp_path: Path) -> None:
    text = (REPO / "config" / "gateway.yaml").read_text(encoding="utf-8")
    config = tmp_path / "gateway.yaml"
    config.write_text(re.sub(r"(?m)^antivirus:\n(?:  .*\n)*", "", text)
                      + 'hebahan_defang: "[HEBAHAN JANM? BELUM SAH]"\n', encoding="utf-8")
    eml = tmp_path / "balas.eml"
    eml.write_bytes(msg("=?UTF-8?B?" + base64.b64encode(
        "Balas: [HEB\u0391HAN JANM] Cuti".encode()).decode() + "?="))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def check(direction: str, mail_from: str) -> dict[str, object]:
        proc = subprocess.run(
            [sys.executable, "-m", "gateway", "check", "--config", str(config), "--json",
             "--direction", direction, "--mail-from", mail_from, str(eml)],
            capture_output=True, cwd=REPO, env=env, timeout=60, check=True)
        out: dict[str, object] = json.loads(proc.stdout)
        return out

    inbound = check("inbound", "pegawai@agensi.example")
    assert (inbound["action"], inbound["subject"]) == (
        "accept", "Balas: [HEBAHAN JANM? BELUM SAH] Cuti")
    eml.write_bytes(msg("Balas: [HEBAHAN JANM] Cuti", sender="ali@anm.gov.my"))
    outbound = check("outbound", "ali@anm.gov.my")
    assert (outbound["action"], outbound["subject"]) == ("accept", "Balas: [HEBAHAN JANM] Cuti")
    eml.write_bytes(msg("Balas: [HEBAHAN JANM] Cuti", sender="ali@anm.gov.my", thread=False))
    assert check("outbound", "ali@anm.gov.my")["rule_id"] == "hebahan-tag-palsu"
