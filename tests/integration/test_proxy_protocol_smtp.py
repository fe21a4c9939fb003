"""The PROXY protocol on a real gateway listener: who may send a header, and what it changes.

A gateway on loopback whose listeners trust 127.0.0.1 as their load balancer
(`proxy_protocol.from`); raw-socket clients send exactly the bytes a balancer (or an
attacker) would, from chosen 127.0.0.0/8 addresses. HAProxy itself in front of two
gateway processes is tests/integration/test_haproxy.py; the parsing and the trust
decisions alone are tests/unit/test_proxy_protocol.py.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .raw_client import RawClient
from .support import FakeUpstream, GatewayHandle, in_thread, message, write_config

BALANCER = "127.0.0.1"
INSIDE = "127.0.0.7"  # the only relay_networks client
OUTSIDE = "127.0.0.8"
STRANGER = "127.0.0.3"  # neither a balancer nor in relay_networks
HEADER_TIMEOUT = 0.5


def v1(src: str, sport: int = 40000) -> bytes:
    return f"PROXY TCP4 {src} 127.0.0.1 {sport} 25\r\n".encode()


def v2(src: str, sport: int = 40000, command: int = 1) -> bytes:
    addresses = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + \
        struct.pack("!HH", sport, 25)
    return b"\r\n\r\n\x00\r\nQUIT\n" + struct.pack("!BBH", 0x20 | command, 0x11,
                                                   len(addresses)) + addresses


@pytest.fixture
async def gw(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[GatewayHandle]:
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                        relay_networks=[f"{INSIDE}/32"],
                        limits={"max_connections_per_ip": 2})
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    outbound, inbound = config["listeners"]
    outbound["proxy_protocol"] = {"from": [f"{BALANCER}/32"], "timeout": HEADER_TIMEOUT}
    inbound["proxy_protocol"] = {"from": [f"{BALANCER}/32"], "versions": [2],
                                 "timeout": HEADER_TIMEOUT}
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        yield GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")
    finally:
        await gateway.stop(drain_timeout=1.0)


def mail_from(addr: tuple[str, int], header: bytes, source: str = BALANCER,
              sender: bytes = b"a@anm.gov.my") -> tuple[int, bytes]:
    """The reply to MAIL FROM on a connection that starts with `header`."""
    with RawClient(addr, source=source) as c:
        c.send(header)
        assert c.reply()[0] == 220
        assert c.command(b"EHLO client.test")[0] == 250
        return c.command(b"MAIL FROM:<" + sender + b">")


def relay(addr: tuple[str, int], header: bytes) -> int:
    """A whole transaction behind `header`; the reply to the final dot."""
    with RawClient(addr) as c:
        c.send(header)
        for line, want in ((None, 220), (b"EHLO client.test", 250),
                           (b"MAIL FROM:<a@anm.gov.my>", 250),
                           (b"RCPT TO:<b@example.com>", 250), (b"DATA", 354)):
            code, text = c.reply() if line is None else c.command(line)
            assert code == want, (line, code, text)
        c.send(message(subject="Melalui pengimbang beban") + b".\r\n")
        return c.reply()[0]


def silent_close(addr: tuple[str, int], data: bytes, source: str = BALANCER) -> bytes:
    """What a connection that sends `data` (and then waits) gets before it is closed."""
    with RawClient(addr, source=source, timeout=HEADER_TIMEOUT * 6) as c:
        if data:
            c.send(data)
        return c.rest()


async def test_the_header_names_the_client_for_relay_control_and_the_log(
        gw: GatewayHandle, upstream: FakeUpstream) -> None:
    for header in (v1(OUTSIDE), v2(OUTSIDE)):
        code, text = await in_thread(partial(mail_from, gw.outbound, header))
        assert code == 554 and b"rule=relay-access" in text, text
    records = gw.records()
    assert [(r["rule_id"], r["client_ip"]) for r in records] == \
        [("relay-access", OUTSIDE)] * 2
    # The same connection naming a client inside relay_networks relays (v1 and v2).
    assert await in_thread(lambda: relay(gw.outbound, v1(INSIDE))) == 250
    assert await in_thread(lambda: relay(gw.outbound, v2(INSIDE))) == 250
    assert len(upstream.messages) == 2


async def test_a_header_from_an_untrusted_address_is_refused_and_closed(
        gw: GatewayHandle, upstream: FakeUpstream) -> None:
    def attempt(header: bytes, after_ehlo: bool) -> tuple[int, bytes, bytes]:
        with RawClient(gw.outbound, source=STRANGER) as c:
            assert c.reply()[0] == 220  # an ordinary client: greeted, at its own address
            if after_ehlo:
                assert c.command(b"EHLO client.test")[0] == 250
            c.send(header)
            code, text = c.reply()
            return code, text, c.rest()

    for after_ehlo in (False, True):
        code, text, rest = await in_thread(partial(attempt, v1(INSIDE), after_ehlo))
        assert code == 421 and text.startswith(b"421-4.7.0 "), text
        assert b"PROXY header not accepted from this address" in text
        assert rest == b""  # closed
    # A v2 header is binary (its signature ends in QUIT): recognised as the client's first
    # bytes, it is refused and closed the same way, never believed either.
    code, text, rest = await in_thread(lambda: attempt(v2(INSIDE), False))
    assert code == 421 and b"PROXY header not accepted from this address" in text, text
    assert rest == b""
    # And a PROXY line late in a balancer's own connection is no better.
    def late() -> int:
        with RawClient(gw.outbound) as c:
            c.send(v1(INSIDE))
            assert c.reply()[0] == 220
            return c.command(v1(OUTSIDE).rstrip())[0]

    assert await in_thread(late) == 421
    assert upstream.connections == 0 and gw.records() == []


async def test_a_trusted_peer_without_a_valid_header_gets_no_greeting(
        gw: GatewayHandle) -> None:
    started = time.monotonic()
    assert await in_thread(lambda: silent_close(gw.outbound, b"")) == b""
    assert HEADER_TIMEOUT <= time.monotonic() - started < HEADER_TIMEOUT * 5
    for data in (b"EHLO client.test\r\n", b"PROXY TCP4 nonsense\r\n",
                 b"PROXY TCP4 127.0.0.7 127.0.0.1 40000 25 extra\r\n"):
        assert await in_thread(partial(silent_close, gw.outbound, data)) == b""
    # The inbound listener takes v2 only.
    assert await in_thread(lambda: silent_close(gw.inbound, v1(INSIDE))) == b""
    code, _ = await in_thread(lambda: mail_from(gw.inbound, v2(INSIDE),
                                                sender=b"x@example.com"))
    assert code == 250


async def test_local_is_the_balancer_itself(gw: GatewayHandle) -> None:
    # HAProxy's health checks send v2 LOCAL: the connection is the balancer's own.
    code, text = await in_thread(lambda: mail_from(gw.outbound, v2(INSIDE, command=0)))
    assert code == 554, text
    assert gw.records()[-1]["client_ip"] == BALANCER
    code, _ = await in_thread(lambda: mail_from(gw.outbound, b"PROXY UNKNOWN\r\n"))
    assert code == 554 and gw.records()[-1]["client_ip"] == BALANCER


async def test_the_per_ip_limit_counts_the_client_not_the_balancer(gw: GatewayHandle) -> None:
    # max_connections_per_ip is 2: the balancer carries more than that, the third
    # connection of one real client is refused.
    def run() -> list[int]:
        held: list[RawClient] = []
        codes: list[int] = []
        try:
            for src in (INSIDE, INSIDE, INSIDE, OUTSIDE, OUTSIDE):
                c = RawClient(gw.outbound)
                held.append(c)
                c.send(v1(src, sport=40000 + len(held)))
                codes.append(c.reply()[0])
            # Once one closes, the client may connect again.
            held[0].close()
            time.sleep(0.2)
            c = RawClient(gw.outbound)
            held.append(c)
            c.send(v2(INSIDE))
            codes.append(c.reply()[0])
        finally:
            for c in held:
                c.close()
        return codes

    assert await in_thread(run) == [220, 220, 421, 220, 220, 220]
