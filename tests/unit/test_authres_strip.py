"""Forged Authentication-Results (RFC 8601 5): fields claiming the gateway's authserv-id
go, every other byte stays; through `transforms.apply` and `pipeline.inspect` too."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import transforms
from gateway.config import GatewayConfig
from gateway.envelope import Envelope
from gateway.pipeline import inspect
from gateway.policy.verdict import Outcome, Verdict
from gateway.policy_state import load_policy_for
from gateway.transforms.authres_strip import authserv_id, forged, strip_forged

OWN = "gw.anm.gov.my"

FORGED_1 = b"Authentication-Results: gw.anm.gov.my; spf=pass smtp.mailfrom=a@anm.gov.my\r\n"
FORGED_2 = b"authentication-results: GW.Anm.Gov.My 1;\r\n\tdmarc=pass header.from=anm.gov.my\r\n"
FOREIGN = b"Authentication-Results: mx.partner.example;\r\n spf=fail smtp.mailfrom=x@y.example\r\n"
FORGED_3 = (b"AUTHENTICATION-RESULTS: (signed (really) by us)\r\n gw.anm.gov.my\r\n"
            b" (v1) ; spf=pass\r\n")
PREFIXED = b"Authentication-Results-Foo: gw.anm.gov.my; spf=pass\r\n"
QUOTING = b"X-Note: Authentication-Results: gw.anm.gov.my; spf=pass\r\n"
FORGED_4 = b'Authentication-Results :  "gw.anm.gov.my"; none\r\n'
REST = (b"From: Ali <ali@anm.gov.my>\r\nTo: semua@anm.gov.my\r\nSubject: Notis\r\n"
        b"Received: from x by y; Mon, 3 Mar 2025 09:00:00 +0800\r\n")
BODY = (b"\r\nAuthentication-Results: gw.anm.gov.my; spf=pass\r\n"
        b"authentication-results: gw.anm.gov.my; dmarc=pass\r\n\x00\xff\r\n")
RAW = (FORGED_1 + FORGED_2 + FOREIGN + FORGED_3 + PREFIXED + QUOTING + FORGED_4
       + REST + BODY)
CLEAN = FOREIGN + PREFIXED + QUOTING + REST + BODY


def test_every_forged_field_goes_and_every_other_byte_stays() -> None:
    assert strip_forged(RAW, OWN) == CLEAN


def test_forged_numbers_count_fields_of_that_name_in_any_case() -> None:
    # The 1st, 2nd, 4th and 5th Authentication-Results fields; -Foo is another name.
    assert forged(RAW, OWN) == (1, 2, 4, 5)
    assert forged(CLEAN, OWN) == ()


def test_our_own_id_is_compared_without_regard_to_case() -> None:
    assert strip_forged(RAW, "GW.ANM.GOV.MY") == CLEAN
    assert forged(RAW, " Gw.Anm.Gov.My ") == (1, 2, 4, 5)


def test_nothing_to_remove_returns_the_same_object() -> None:
    assert strip_forged(CLEAN, OWN) is CLEAN
    assert strip_forged(RAW, "") is RAW
    assert forged(RAW, "") == ()


@pytest.mark.parametrize("value", [
    b" gw.anm.gov.my.evil.example; spf=pass",
    b" mx.gw.anm.gov.my; spf=pass",
    b" gw-anm.gov.my; spf=pass",
    b" (gw.anm.gov.my) mx.partner.example; spf=pass",
    b" mx.partner.example 1; spf=pass (gw.anm.gov.my)",
    b" (gw.anm.gov.my unterminated comment; spf=pass",
    b' "gw.anm.gov.my unterminated; spf=pass',
    b" ; spf=pass",
    b"",
])
def test_other_authserv_ids_are_kept_byte_for_byte(value: bytes) -> None:
    raw = b"Authentication-Results:" + value + b"\r\n" + REST + b"\r\nbody\r\n"
    assert strip_forged(raw, OWN) is raw
    assert forged(raw, OWN) == ()


@pytest.mark.parametrize(("value", "expected"), [
    (b" gw.anm.gov.my; spf=pass", "gw.anm.gov.my"),
    (b" GW.ANM.GOV.MY 1; none", "gw.anm.gov.my"),
    (b"gw.anm.gov.my;spf=pass", "gw.anm.gov.my"),
    (b" (a (nested \\) comment) here)\r\n\t gw.anm.gov.my\r\n ; spf=pass", "gw.anm.gov.my"),
    (b' "gw.anm.gov.my" ; none', "gw.anm.gov.my"),
    (b' "gw.\\anm.gov.my"; none', "gw.anm.gov.my"),
    (b" gw.anm.gov.my/extra; spf=pass", "gw.anm.gov.my"),
    (b" mx.partner.example; spf=pass", "mx.partner.example"),
    (b" ; none", None),
    (b"   \r\n  ", None),
    (b" (open", None),
])
def test_authserv_id_reading(value: bytes, expected: str | None) -> None:
    assert authserv_id(value) == expected


def test_the_body_is_never_touched() -> None:
    raw = b"From: a@anm.gov.my\r\nSubject: x\r\n" + BODY
    assert strip_forged(raw, OWN) is raw
    raw = (b"From: a@anm.gov.my\r\nSubject: x\r\n\r\n"
           b"Authentication-Results: gw.anm.gov.my; spf=pass\r\n\r\nbody\r\n")
    assert strip_forged(raw, OWN) is raw


def test_a_forgery_after_a_malformed_line_is_removed_the_line_kept() -> None:
    # Postfix starts the body at a line that is neither a field nor a fold; Dovecot and
    # Python read on to the empty line and would show the forgery as a field.
    raw = (b"From: a@anm.gov.my\r\nnot a header line\r\n folded junk\r\n"
           b"Authentication-Results: gw.anm.gov.my; spf=pass\r\n"
           b"X-Other: 1\r\n\r\nAuthentication-Results: gw.anm.gov.my; body\r\n")
    assert strip_forged(raw, OWN) == (
        b"From: a@anm.gov.my\r\nnot a header line\r\n folded junk\r\n"
        b"X-Other: 1\r\n\r\nAuthentication-Results: gw.anm.gov.my; body\r\n")
    # The milter's numbering follows Postfix's reading: that field is not a header there.
    assert forged(raw, OWN) == ()


def test_lf_endings_a_field_last_in_the_header_and_no_body() -> None:
    raw = b"From: a@anm.gov.my\nAuthentication-Results: gw.anm.gov.my;\n spf=pass\n\nbody\n"
    assert strip_forged(raw, OWN) == b"From: a@anm.gov.my\n\nbody\n"
    unterminated = b"From: a@anm.gov.my\r\nAuthentication-Results: gw.anm.gov.my; spf=pass"
    assert strip_forged(unterminated, OWN) == b"From: a@anm.gov.my\r\n"
    only = b"Authentication-Results: gw.anm.gov.my; spf=pass\r\n"
    assert strip_forged(only, OWN) == b""


def test_a_leading_fold_without_a_field_is_kept() -> None:
    raw = b" stray fold\r\nAuthentication-Results: gw.anm.gov.my; none\r\nFrom: a@b\r\n\r\nx"
    assert strip_forged(raw, OWN) == b" stray fold\r\nFrom: a@b\r\n\r\nx"


# -- through transforms.apply: removal first, our field on top --------------------------
def test_apply_removes_forgeries_also_when_the_verdict_changes_nothing() -> None:
    assert transforms.apply(RAW, Verdict(Outcome.ACCEPT), authserv_id=OWN) == CLEAN
    assert transforms.apply(CLEAN, Verdict(Outcome.ACCEPT), authserv_id=OWN) is CLEAN
    # Without an id (the default) nothing is removed: the old behaviour of apply.
    assert transforms.apply(RAW, Verdict(Outcome.ACCEPT)) is RAW


def test_apply_puts_our_field_on_top_of_the_cleaned_message() -> None:
    trace = (("Authentication-Results", f"{OWN}; spf=pass smtp.mailfrom=a@anm.gov.my"),)
    out = transforms.apply(RAW, Verdict(Outcome.ACCEPT, subject_tags=("[T]",)), trace,
                           authserv_id=OWN)
    ours = b"Authentication-Results: gw.anm.gov.my; spf=pass smtp.mailfrom=a@anm.gov.my\r\n"
    assert out == ours + CLEAN.replace(b"Subject: Notis", b"Subject: [T] Notis")
    # Our own field is the only one claiming our id, and it is the first one.
    assert forged(out, OWN) == (1,)


# -- through pipeline.inspect: no rule about sender authentication, both directions ------
def envelope(direction: str) -> Envelope:
    return Envelope(direction=direction, listener="t", client_ip="127.0.0.1",  # type: ignore[arg-type]
                    helo="mx.test", mail_from="ali@anm.gov.my", rcpt_to=("b@anm.gov.my",))


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_inspect_removes_forgeries_without_any_sender_auth_rule(
        tmp_path: Path, direction: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10.yaml").write_text("rules: []\n")
    state = load_policy_for(GatewayConfig.model_validate({
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "direction": direction}],
        "upstream": "maildir:var/mail", "agency_domains": ["anm.gov.my"],
        "hostname": "GW.anm.gov.my", "rules_dir": str(rules)}))
    got = inspect(state, RAW, envelope(direction))
    assert got.reply is None and got.verdict.auth is None
    assert got.relay_bytes == CLEAN
    assert got.trace_headers == ()
    assert got.removed_headers == tuple(("Authentication-Results", n) for n in (1, 2, 4, 5))
    clean = inspect(state, CLEAN, envelope(direction))
    assert clean.relay_bytes is CLEAN and clean.removed_headers == ()
