"""Forged Authentication-Results end to end (RFC 8601 5): a field claiming the gateway's
authserv-id (`hostname`, gw.test here) never leaves the gateway, through the SMTP proxy
and through the milter behind a real Postfix; other authserv-ids pass byte for byte, and
the gateway's own field, when sender authentication was evaluated, is the first one.

DNS for the `sender_auth` rule is Debian's dnsmasq (tests/support/dnsmasq.py): anm.gov.my
lets 127.0.0.1 send. The rule asks only about anm.gov.my senders, so a sender elsewhere
shows the removal when no rule evaluated sender authentication.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.frontends.milter import protocol as p
from gateway.policy_state import load_policy
from gateway.service import Gateway
from gateway.transforms.authres_strip import authserv_id
from tests.support.dnsmasq import Dnsmasq

from .milter_client import MilterClient
from .postfix_support import Postfix, available, running
from .support import (
    FakeUpstream,
    GatewayFactory,
    GatewayHandle,
    in_thread,
    started_gateway,
    transaction,
    write_config,
)
from .test_milter_postfix import delivered, through

ZONE = {"anm.gov.my": ["v=spf1 ip4:127.0.0.1 -all"],
        "_dmarc.anm.gov.my": ["v=DMARC1; p=reject"]}
SENDER_AUTH_RULE = """
rules:
  - id: spf-gagal
    description: "SPF domain agensi gagal"
    reference: "ujian"
    direction: both
    when:
      sender_domain: [anm.gov.my]
      sender_auth: {spf: [fail, softfail]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "SPF gagal.", en: "SPF failed."}}
"""

# Three forgeries (any case, folded, with a version, around another ADMD's field) and
# fields that only look like ours.
FORGED = [
    b"Authentication-Results: gw.test; spf=pass smtp.mailfrom=ceo@anm.gov.my\r\n",
    b"authentication-results: (trust me)\r\n GW.TEST 1;\r\n\tdmarc=pass header.from=anm.gov.my\r\n",
    b"AUTHENTICATION-RESULTS: gw.test; none\r\n",
]
FOREIGN = b"Authentication-Results: mx.partner.example; spf=fail\r\n smtp.mailfrom=x@y.example\r\n"
KEPT = (b"Authentication-Results-Copy: gw.test; spf=pass\r\n"
        b"X-Quoted: Authentication-Results: gw.test; spf=pass\r\n")


def forged_message(sender: str, rcpt: str) -> tuple[bytes, bytes]:
    """(the message as sent, the same without the forged fields)."""
    top = (f"From: Pengirim <{sender}>\r\nTo: {rcpt}\r\nSubject: Notis\r\n"
           "Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <forged-1@anm.gov.my>\r\n"
           ).encode()
    body = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Authentication-Results: gw.test; spf=pass (the body is never touched)\r\n")
    sent = FORGED[0] + top + FORGED[1] + FOREIGN + FORGED[2] + KEPT + body
    return sent, top + FOREIGN + KEPT + body


def authres_fields(data: bytes) -> list[str]:
    """The unfolded Authentication-Results fields of the header block, in order."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    fields = head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n")
    return [f for f in fields if f.lower().startswith("authentication-results:")]


def split_top_field(data: bytes) -> tuple[bytes, bytes]:
    """The first field (with its folded lines) and what follows it."""
    lines = data.split(b"\r\n")
    n = 1
    while lines[n][:1] in (b" ", b"\t"):
        n += 1
    return b"\r\n".join(lines[:n]) + b"\r\n", b"\r\n".join(lines[n:])


def assert_ours(field: str) -> None:
    value = field.split(":", 1)[1]
    assert authserv_id(value.encode()) == "gw.test", field
    assert "spf=pass" in field and "smtp.mailfrom=ali@anm.gov.my" in field, field
    assert "dmarc=pass" in field, field


def send(addr: tuple[str, int], msg: bytes, sender: str, rcpt: str) -> tuple[int, bytes]:
    return transaction(addr, msg, mail_from=sender, rcpts=[rcpt], helo="mx.pengirim.test")


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with Dnsmasq(txt=ZONE, local=("gov.my", "example")) as server:
        yield server


def with_dns(path: Path, dns: Dnsmasq, listeners: list[dict[str, Any]] | None = None) -> Path:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["dns"] = {"nameservers": ["127.0.0.1"], "port": dns.port, "timeout": 1.0}
    if listeners is not None:
        config["listeners"] = listeners
    path.write_text(yaml.safe_dump(config))
    return path


# -- the SMTP proxy -----------------------------------------------------------------------
async def test_proxy_removes_forgeries_without_a_sender_auth_rule_both_ways(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    # The default test rules (size, blocked domain) never ask about sender authentication.
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"spool_threshold": "4KB"})
    outbound, outbound_clean = forged_message("ali@anm.gov.my", "b@example.com")
    inbound, inbound_clean = forged_message("x@partner.example", "b@anm.gov.my")
    # Spooled to disk: the proxy must relay the cleaned copy, not the spooled bytes.
    big, big_clean = (m.replace(b"never touched)\r\n", b"never touched)\r\n"
                                + (b"y" * 70 + b"\r\n") * 100) for m in (inbound, inbound_clean))
    for addr, msg, sender, rcpt in (
            (gw.outbound, outbound, "ali@anm.gov.my", "b@example.com"),
            (gw.inbound, inbound, "x@partner.example", "b@anm.gov.my"),
            (gw.inbound, big, "x@partner.example", "b@anm.gov.my")):
        code, text = await in_thread(partial(send, addr, msg, sender, rcpt))
        assert code == 250, text
    assert [m.data for m in upstream.messages] == [outbound_clean, inbound_clean, big_clean]
    assert gw.records() == []


async def test_proxy_puts_its_own_field_on_top_and_removes_forgeries_with_sender_auth(
        tmp_path: Path, dnsmasq: Dnsmasq, upstream: FakeUpstream) -> None:
    path = with_dns(write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                                 rules=SENDER_AUTH_RULE), dnsmasq)
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        gw = GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")
        evaluated, evaluated_clean = forged_message("ali@anm.gov.my", "b@anm.gov.my")
        other, other_clean = forged_message("x@partner.example", "b@anm.gov.my")
        for msg, sender in ((evaluated, "ali@anm.gov.my"), (other, "x@partner.example")):
            code, text = await in_thread(partial(send, gw.inbound, msg, sender, "b@anm.gov.my"))
            assert code == 250, text
    finally:
        await gateway.stop(drain_timeout=1.0)
    first, second = (m.data for m in upstream.messages)
    top, rest = split_top_field(first)
    assert top.startswith(b"Authentication-Results: gw.test;"), first[:300]
    assert rest == evaluated_clean
    fields = authres_fields(first)
    assert len(fields) == 2
    assert_ours(fields[0])
    assert fields[1] == authres_fields(FOREIGN + b"\r\n")[0]
    # No rule evaluated this sender: nothing added, the forgeries still gone.
    assert second == other_clean


# -- the milter: the replies, then through a real Postfix ---------------------------------
@pytest.fixture
async def milter_gateway(tmp_path: Path, dnsmasq: Dnsmasq) -> AsyncIterator[GatewayHandle]:
    path = with_dns(write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}",
                                 rules=SENDER_AUTH_RULE, relay_networks=["127.0.0.5/32"]),
                    dnsmasq, [{"name": "milter", "listen": "127.0.0.1:0",
                               "direction": "inbound", "mode": "milter"}])
    async with started_gateway(path) as gw:
        yield gw


async def test_milter_deletes_forgeries_last_first_then_inserts_its_field_at_the_top(
        milter_gateway: GatewayHandle) -> None:
    client = await MilterClient.open(milter_gateway.gateway.address("milter"))
    try:
        await client.connect("127.0.0.1")
        msg, _ = forged_message("ali@anm.gov.my", "b@anm.gov.my")
        out = await client.message(msg, "ali@anm.gov.my", ["b@anm.gov.my"])
        # Authentication-Results fields 1, 2 and 4 are forged (3 is the partner's).
        *deletes, insert, final = out.replies
        assert deletes == [p.ChangeHeader(n, "Authentication-Results", "") for n in (4, 2, 1)]
        assert isinstance(insert, p.InsertHeader) and insert.index == 0
        assert insert.name == "Authentication-Results"
        assert_ours("Authentication-Results:" + insert.value.replace("\n", ""))
        assert final == p.Continue()
        # No rule evaluated this sender: the same deletions, nothing inserted.
        msg, _ = forged_message("x@partner.example", "b@anm.gov.my")
        out = await client.message(msg, "x@partner.example", ["b@anm.gov.my"])
        assert out.replies == [
            *(p.ChangeHeader(n, "Authentication-Results", "") for n in (4, 2, 1)),
            p.Continue()]
    finally:
        await client.close()


@pytest.fixture
async def postfix_milter(milter_gateway: GatewayHandle, upstream: FakeUpstream
                         ) -> AsyncIterator[Postfix]:
    if available() is not None:
        pytest.skip(str(available()))
    host, port = milter_gateway.gateway.address("milter")
    async with running(upstream.port, f"inet:{host}:{port}") as postfix:
        yield postfix


async def test_postfix_relays_without_forgeries_and_with_our_field_first(
        postfix_milter: Postfix, upstream: FakeUpstream) -> None:
    postfix = postfix_milter
    evaluated, evaluated_clean = forged_message("ali@anm.gov.my", "b@anm.gov.my")
    code, text = await through(postfix, evaluated, "ali@anm.gov.my", ["b@anm.gov.my"])
    assert code == 250, (text, postfix.log())
    await delivered(upstream, 1, postfix)
    data = upstream.messages[0].data
    # Our field at the very top (above Postfix's own Received), the partner's kept, and
    # everything Postfix received from the client otherwise unchanged.
    top, rest = split_top_field(data)
    assert top.startswith(b"Authentication-Results: gw.test;"), data[:300]
    assert rest.startswith(b"Received: "), data[:300]
    assert rest.endswith(evaluated_clean), (data, postfix.log())
    fields = authres_fields(data)
    assert len(fields) == 2, fields
    assert_ours(fields[0])
    assert fields[1] == authres_fields(FOREIGN + b"\r\n")[0]

    # No rule evaluated this sender: nothing inserted, the forgeries still deleted.
    other, other_clean = forged_message("x@partner.example", "b@anm.gov.my")
    code, text = await through(postfix, other, "x@partner.example", ["b@anm.gov.my"])
    assert code == 250, (text, postfix.log())
    await delivered(upstream, 2, postfix)
    data = upstream.messages[1].data
    assert data.startswith(b"Received: "), data[:300]
    assert data.endswith(other_clean), (data, postfix.log())
    assert authres_fields(data) == authres_fields(FOREIGN + b"\r\n")


@pytest.mark.parametrize("junk", [b"not a header line\r\n", b"From evil@evil.example\r\n"])
async def test_postfix_delivers_no_forgery_after_a_malformed_header_line(
        postfix_milter: Postfix, upstream: FakeUpstream, junk: bytes) -> None:
    # Postfix's cleanup starts the body at the malformed line and writes the empty line
    # before it (seen in this test's deliveries), so the milter is never shown the field
    # as a header and no reader of what Postfix delivers (Dovecot reads on to the first
    # empty line) finds it there: the milter has nothing to remove.
    msg = (b"From: <x@partner.example>\r\nTo: b@anm.gov.my\r\nSubject: Notis\r\n" + junk
           + b"Authentication-Results: gw.test; spf=pass smtp.mailfrom=ceo@anm.gov.my\r\n"
           b"\r\nbody\r\n")
    code, text = await through(postfix_milter, msg, "x@partner.example", ["b@anm.gov.my"])
    assert code == 250, (text, postfix_milter.log())
    await delivered(upstream, 1, postfix_milter)
    head = upstream.messages[0].data.split(b"\r\n\r\n", 1)[0]
    assert b"gw.test" not in head, upstream.messages[0].data
