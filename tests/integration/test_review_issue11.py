"""Review of issue 11 ("Safe where agencies really deploy it"): what an attacker (and a
newcomer following the README) still met, each against a real gateway on loopback with
a raw-socket client that sends exactly the bytes it means; the relay case also through
a real Postfix next hop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .postfix_support import available
from .raw_client import RawClient
from .support import FakeUpstream, GatewayFactory, GatewayHandle, in_thread, write_config
from .test_open_relay_postfix import NextHop, delivered, next_hop, queue_empty, transaction
from .test_proxy_protocol_smtp import v2

__all__ = ["next_hop"]  # the fixture, imported for the real-Postfix test below


def _rcpt_upstream(addr: tuple[str, int], rcpt: bytes) -> tuple[int, bytes]:
    with RawClient(addr) as c:
        assert c.reply()[0] == 220
        assert c.command(b"EHLO attacker.test")[0] == 250
        assert c.command(b"MAIL FROM:<spammer@evil.example>")[0] == 250
        return c.command(b"RCPT TO:" + rcpt)


# aiosmtpd's address parser decodes RFC 2047 encoded words (and parses comments) in the
# path, and the proxy forwarded what it parsed, not what was checked: the raw path
# `=?utf-8?q?victim=40evil.example?=@anm.gov.my` holds no routing character, yet the
# agency's server was asked for `"victim@evil.example"@anm.gov.my`.
ENCODED_ROUTES = [
    b"<=?utf-8?q?victim=40evil.example?=@anm.gov.my>",
    b"<=?us-ascii?Q?victim=40evil.example?=@anm.gov.my>",
    b"<=?utf-8?b?dmljdGltQGV2aWwuZXhhbXBsZQ==?=@anm.gov.my>",
    b"<=?utf-8?q?victim=25evil.example?=@anm.gov.my>",
    b'<"=?utf-8?q?victim=40evil.example?="@anm.gov.my>',
    b"<victim@=?utf-8?q?evil.example=40anm.gov.my?=>",
    b"<=?utf-8?q?=40evil.example=3Avictim?=@anm.gov.my>",
]


@pytest.mark.parametrize("rcpt", ENCODED_ROUTES)
async def test_encoded_word_routing_is_refused_and_never_reaches_upstream(
        make_gateway: GatewayFactory, upstream: FakeUpstream, rcpt: bytes) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    code, text = await in_thread(lambda: _rcpt_upstream(gw.inbound, rcpt))
    forwarded = [c for c in upstream.commands if c.upper().startswith("RCPT")]
    assert forwarded == [], forwarded
    assert code == 550 and b"rule=relay-address" in text, text


# An address literal written with white space or a comment before the bracket is still a
# literal (aiosmtpd parses `<u@ [192.0.2.1]>` as `u@[192.0.2.1]`): refused from every
# client, outbound ones included, as the README's relay-address row says.
@pytest.mark.parametrize("rcpt", [b"<victim@ [192.0.2.1]>", b"<victim@(x)[192.0.2.1]>"])
async def test_spaced_address_literal_is_refused_outbound(
        make_gateway: GatewayFactory, upstream: FakeUpstream, rcpt: bytes) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def send() -> tuple[int, bytes]:
        with RawClient(gw.outbound) as c:
            assert c.reply()[0] == 220
            assert c.command(b"EHLO client.test")[0] == 250
            assert c.command(b"MAIL FROM:<a@anm.gov.my>")[0] == 250
            return c.command(b"RCPT TO:" + rcpt)

    code, text = await in_thread(send)
    assert code == 550 and b"rule=relay-address" in text, text
    assert not [c for c in upstream.commands if c.upper().startswith("RCPT")]



# RFC 5321 4.5.1: `RCPT TO:<Postmaster>` (no domain) MUST be accepted; inbound refused it
# as relay-access. Its routing look-alikes stay refused.
async def test_domainless_postmaster_is_accepted_inbound_and_look_alikes_are_not(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    for rcpt, code, rule in ((b"<Postmaster>", 250, b""), (b"<postmaster>", 250, b""),
                             (b"<postmaster@evil.example>", 554, b"rule=relay-access"),
                             (b'<"postmaster@evil.example">', 550, b"rule=relay-address"),
                             (b"<postmaster%evil.example>", 550, b"rule=relay-address")):
        got, text = await in_thread(lambda rcpt=rcpt: _rcpt_upstream(gw.inbound, rcpt))
        assert got == code and rule in text, (rcpt, text)
    forwarded = [c for c in upstream.commands if c.upper().startswith("RCPT")]
    assert forwarded == ["RCPT TO:<Postmaster>", "RCPT TO:<postmaster>"]


@pytest.mark.skipif(available() is not None, reason=str(available()))
async def test_encoded_word_route_never_reaches_the_outside_through_postfix(
        make_gateway: GatewayFactory, next_hop: NextHop) -> None:
    # The agency's Postfix behind the gateway trusts it and routes what it is sent: the
    # decoded `"victim@evil.example"@anm.gov.my` would go to evil.example.
    postfix = next_hop.postfix
    gw: GatewayHandle = await make_gateway(upstream=f"smtp://127.0.0.1:{postfix.port}",
                                           relay_networks=["127.0.0.5/32"])
    replies = await in_thread(lambda: transaction(
        gw.inbound, ["=?utf-8?q?victim=40evil.example?=@anm.gov.my", "pegawai@anm.gov.my"]))
    assert replies[0][0] == 550 and b"rule=relay-address" in replies[0][1], replies
    await delivered(next_hop.agency, 1, postfix)
    await queue_empty(postfix)
    assert next_hop.outside.messages == []


# -- forged Authentication-Results ------------------------------------------------------
def _forged(top: bytes, sender: str = "x@partner.example") -> bytes:
    return (f"From: <{sender}>\r\nTo: b@anm.gov.my\r\nSubject: Notis\r\n"
            "Message-ID: <f-1@partner.example>\r\n").encode() + top + b"\r\nbody\r\n"


# A header line without a colon does not end the header block for every reader: Dovecot
# (src/lib-mail/message-header-parser.c: "missing ':', assume the whole line is name")
# reads on to the first empty line, so with the shipped `maildir:` upstream served by
# Dovecot, IMAP clients and Sieve see the forgery below as a header field. Python's own
# parser (the gateway's inspection) goes on past `:x` and `From ` lines too.
JUNK_LINES = [b"not a header line\r\n", b":x\r\n", b"From evil@evil.example\r\n"]


# Decided (2026-11-30): the relayed bytes carry no claiming field anywhere before the
# first empty line; the malformed line itself is kept (gateway.transforms.authres_strip).
@pytest.mark.parametrize("junk", JUNK_LINES)
async def test_forgery_after_a_malformed_header_line_is_removed(
        make_gateway: GatewayFactory, upstream: FakeUpstream, junk: bytes) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    msg = _forged(junk + b"Authentication-Results: gw.test; spf=pass "
                  b"smtp.mailfrom=ceo@anm.gov.my\r\n")

    def send() -> tuple[int, bytes]:
        with RawClient(gw.inbound) as c:
            assert c.reply()[0] == 220
            for cmd in (b"EHLO mx.partner.example", b"MAIL FROM:<x@partner.example>",
                        b"RCPT TO:<b@anm.gov.my>", b"DATA"):
                c.command(cmd)
            c.send(msg + b".\r\n")
            return c.reply()

    code, text = await in_thread(send)
    assert code == 250, text
    head = upstream.messages[0].data.split(b"\r\n\r\n", 1)[0]
    assert b"gw.test" not in head, head


# -- the journal ------------------------------------------------------------------------
# Journal lines are `key=value` text, and the envelope sender goes in raw as `from=<%s>`.
# A quoted local part may hold spaces, `>` and (aiosmtpd lets it through) a bare CR, so a
# refused client writes a line that reads as a relayed message; with the CR, journalctl
# shows the whole line as "[blob data]" and a terminal repaints it.
FORGING_SENDER = b'<"x> rcpt=1 size=9 action=relay rule=- reply=250 2.0.0\rz"@evil.example>'


async def test_a_refused_sender_cannot_forge_journal_fields(
        make_gateway: GatewayFactory, upstream: FakeUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def send() -> tuple[int, bytes]:
        with RawClient(gw.inbound) as c:
            assert c.reply()[0] == 220
            assert c.command(b"EHLO attacker.test")[0] == 250
            assert c.command(b"MAIL FROM:" + FORGING_SENDER)[0] == 250
            return c.command(b"RCPT TO:<victim@evil.example>")

    with caplog.at_level(logging.INFO, logger="gateway.smtp"):
        code, _ = await in_thread(send)
    assert code == 554
    [line] = [r.getMessage() for r in caplog.records if "rule=relay-access" in r.getMessage()]
    assert line.count(" action=") == 1 and "\r" not in line, line


# -- a balancer the listener does not trust ----------------------------------------------
# The usual mistake behind HAProxy: `proxy_protocol.from` names the balancer's public
# (bind) address, while it connects to the gateways from another one. HAProxy marked
# every gateway DOWN with "500 5.5.2 Error: bad syntax" (the v2 signature read as
# commands), and the gateway's journal said nothing at all, where a v1 header from the
# same peer is named ("PROXY header from X, not a trusted balancer"). README.md, "HAProxy
# in front", quotes what both say now.
async def test_a_v2_header_from_an_untrusted_balancer_is_named_in_the_journal(
        tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}")
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"][1]["proxy_protocol"] = {"from": ["127.0.0.5/32"]}
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()

    def health_check() -> bytes:
        with RawClient(gateway.address("inbound")) as c:  # from 127.0.0.1, not trusted
            c.send(v2("127.0.0.9", command=0) + b"EHLO lb.anm.gov.my\r\n")
            return c.rest()

    try:
        with caplog.at_level(logging.INFO, logger="gateway.smtp"):
            answer = await in_thread(health_check)
    finally:
        await gateway.stop(drain_timeout=1.0)
    assert any("PROXY" in r.getMessage() and "127.0.0.1" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    # Closed with the same 421 a v1 header gets; the EHLO after it was never answered.
    assert b"421 4.7.0" in answer and b"250" not in answer.partition(b"421")[2], answer
