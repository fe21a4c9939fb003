"""Envelope checks: sender_domain, recipient_domain, recipient_outside_agency,
null_sender, sender_in, client_ip."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence

VIEW = MessageView(b"From: a@anm.gov.my\r\nSubject: s\r\n\r\nbody\r\n")


def env(mail_from: str = "pegawai@anm.gov.my", rcpt: tuple[str, ...] = ("x@anm.gov.my",),
        client_ip: str = "10.1.2.3") -> Envelope:
    return Envelope(direction="outbound", listener="t", client_ip=client_ip, helo="h",
                    mail_from=mail_from, rcpt_to=rcpt)


def run(name: str, value: Any, envelope: Envelope,
        agency: tuple[str, ...] = ("anm.gov.my",)) -> Evidence | None:
    check = REGISTRY[name]
    assert check.needs == "envelope"
    return check.evaluate(check.validate(value), Context(VIEW, envelope, agency))


def test_sender_domain() -> None:
    assert run("sender_domain", ["gmail.com"], env("x@Mail.GMAIL.com")) == \
        {"sender_domain": "mail.gmail.com"}
    assert run("sender_domain", ["gmail.com"], env("x@notgmail.com")) is None
    assert run("sender_domain", ["gmail.com"], env("")) is None


def test_recipient_domain_any_recipient() -> None:
    e = env(rcpt=("a@anm.gov.my", "b@yahoo.com"))
    assert run("recipient_domain", ["yahoo.com"], e) == {"recipient_domain": "yahoo.com"}
    assert run("recipient_domain", ["gmail.com"], e) is None


def test_recipient_outside_agency() -> None:
    inside = env(rcpt=("a@anm.gov.my", "b@kl.anm.gov.my"))
    mixed = env(rcpt=("a@anm.gov.my", "b@example.com"))
    assert run("recipient_outside_agency", True, mixed) == \
        {"outside_recipients": 1, "recipient_domain": "example.com"}
    assert run("recipient_outside_agency", True, inside) is None
    assert run("recipient_outside_agency", False, inside) == {"outside_recipients": 0}
    assert run("recipient_outside_agency", False, mixed) is None
    # No agency configured: everything is outside.
    assert run("recipient_outside_agency", True, inside, agency=()) is not None


def test_null_sender() -> None:
    assert run("null_sender", True, env("")) == {"null_sender": True}
    assert run("null_sender", True, env("<>")) == {"null_sender": True}
    assert run("null_sender", True, env("a@anm.gov.my")) is None
    assert run("null_sender", False, env("a@anm.gov.my")) == {"null_sender": False}
    assert run("null_sender", False, env("")) is None


def test_sender_in_case_insensitive_and_null() -> None:
    assert run("sender_in", ["Hebahan@ANM.gov.my"], env("HEBAHAN@anm.gov.my")) == \
        {"sender": "hebahan@anm.gov.my"}
    assert run("sender_in", ["hebahan@anm.gov.my"], env("pegawai@anm.gov.my")) is None
    assert run("sender_in", ["<>"], env("")) == {"sender": "<>"}
    assert run("sender_in", ["hebahan@anm.gov.my"], env("")) is None


@pytest.mark.parametrize(("nets", "ip", "hit"), [
    (["10.0.0.0/8"], "10.1.2.3", True),
    (["10.0.0.0/8"], "192.0.2.1", False),
    (["192.0.2.7"], "192.0.2.7", True),
    (["127.0.0.0/8"], "::ffff:127.0.0.1", True),
    (["2001:db8::/32"], "2001:db8::25", True),
    (["2001:db8::/32"], "10.1.2.3", False),
    (["10.0.0.0/8"], "", False),
    (["10.0.0.0/8"], "unix:/run/x", False),
])
def test_client_ip(nets: list[str], ip: str, hit: bool) -> None:
    assert (run("client_ip", nets, env(client_ip=ip)) is not None) is hit
