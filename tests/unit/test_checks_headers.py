"""Header checks: from_domain, from_in, subject_matches, auto_forwarded, message_size_over."""

from __future__ import annotations

from typing import Any

from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence

ENV = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="h",
               mail_from="a@anm.gov.my", rcpt_to=("b@example.com",))


def run(name: str, value: Any, raw: bytes) -> Evidence | None:
    check = REGISTRY[name]
    return check.evaluate(check.validate(value), Context(MessageView(raw), ENV, ("anm.gov.my",)))


def test_from_domain() -> None:
    raw = b"From: \"Ali\" <ali@Yahoo.com.MY>, b@anm.gov.my\r\nSubject: s\r\n\r\nx"
    assert run("from_domain", ["yahoo.com.my"], raw) == {"from_domain": "yahoo.com.my"}
    assert run("from_domain", ["anm.gov.my"], raw) == {"from_domain": "anm.gov.my"}
    assert run("from_domain", ["gmail.com"], raw) is None
    assert run("from_domain", ["gmail.com"], b"Subject: no from\r\n\r\nx") is None


def test_from_domain_ignores_encoded_display_name() -> None:
    raw = (b"From: =?utf-8?Q?boss=40anm.gov.my?= <x@gmail.com>\r\n\r\nx")
    assert run("from_domain", ["anm.gov.my"], raw) is None
    assert run("from_domain", ["gmail.com"], raw) == {"from_domain": "gmail.com"}


def test_from_in_needs_every_from_address_listed() -> None:
    listed = ["hebahan@anm.gov.my"]
    one = b"From: JANM <Hebahan@ANM.gov.my>\r\n\r\nx"
    assert run("from_in", listed, one) == {"from": ["hebahan@anm.gov.my"]}
    # A look-alike domain, a second author, an encoded display name, no From at all.
    assert run("from_in", listed, b"From: <hebahan@anm-gov.example>\r\n\r\nx") is None
    assert run("from_in", listed,
               b"From: hebahan@anm.gov.my, x@evil.example\r\n\r\nx") is None
    assert run("from_in", listed,
               b"From: =?utf-8?Q?hebahan=40anm.gov.my?= <x@evil.example>\r\n\r\nx") is None
    assert run("from_in", listed, b"Subject: no from\r\n\r\nx") is None


def test_subject_matches_decoded_and_folded() -> None:
    raw = b"Subject: =?utf-8?Q?=5BHEBAHAN_JANM=5D_Notis?=\r\n\r\nx"
    assert run("subject_matches", r"^\[HEBAHAN JANM\]", raw) == \
        {"subject_matches": {"match": "[HEBAHAN JANM]"}}
    assert run("subject_matches", r"(?i)pekeliling", raw) is None
    # A zero-width space inside the tag does not hide it.
    zw = "Subject: [HEBAHAN\u200b JANM] Notis\r\n\r\nx".encode()
    assert run("subject_matches", r"\[HEBAHAN JANM\]", zw) is not None


def test_auto_forwarded() -> None:
    fwd = b"Auto-Submitted: auto-forwarded\r\nX-Forwarded-To: x@gmail.com\r\n\r\nx"
    plain = b"Auto-Submitted: auto-replied\r\nSubject: Cuti\r\n\r\nx"
    assert run("auto_forwarded", True, fwd) == \
        {"auto_forwarded": ["Auto-Submitted", "X-Forwarded-To"]}
    assert run("auto_forwarded", True, plain) is None
    assert run("auto_forwarded", False, plain) == {"auto_forwarded": []}
    assert run("auto_forwarded", False, fwd) is None
    resent = b"Resent-From: a@anm.gov.my\r\nResent-To: b@gmail.com\r\n\r\nx"
    assert run("auto_forwarded", True, resent) == {"auto_forwarded": ["Resent-From", "Resent-To"]}


def test_message_size_over() -> None:
    raw = b"Subject: s\r\n\r\n" + b"x" * 2048
    assert run("message_size_over", "1KB", raw) == {"size": len(raw), "limit": 1024}
    assert run("message_size_over", "1MB", raw) is None
