"""XFORWARD on a real gateway listener: who may send it, what it changes, for how long.

The gateway trusts 127.0.0.1 for XFORWARD (`xforward_peers`); raw-socket clients speak
as Postfix's smtpd_proxy_filter client does, or as an attacker would, from chosen
127.0.0.0/8 addresses. The same behind a real Postfix (with SPF through dnsmasq) is
tests/integration/test_xforward_postfix.py; parsing alone tests/unit/test_xforward.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .raw_client import RawClient
from .support import FakeUpstream, GatewayHandle, in_thread, message, write_config

MTA = "127.0.0.1"  # the trusted MTA in front
INSIDE = "127.0.0.7"  # the only relay_networks client
STRANGER = "127.0.0.3"
NOT_AUTHORIZED = b"550 5.7.0 Error: insufficient authorization"


@pytest.fixture
async def gw(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[GatewayHandle]:
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                        relay_networks=[f"{INSIDE}/32"],
                        limits={"max_connections_per_ip": 2})
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["xforward_peers"] = [f"{MTA}/32"]
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        yield GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")
    finally:
        await gateway.stop(drain_timeout=1.0)


def greeted(addr: tuple[str, int], source: str) -> tuple[RawClient, bytes]:
    c = RawClient(addr, source=source)
    assert c.reply()[0] == 220
    code, ehlo = c.command(b"EHLO mx.postfix.test")
    assert code == 250, ehlo
    return c, ehlo


async def test_only_trusted_peers_see_and_may_use_xforward(
        gw: GatewayHandle, upstream: FakeUpstream) -> None:
    def stranger() -> tuple[bytes, tuple[int, bytes], tuple[int, bytes]]:
        c, ehlo = greeted(gw.outbound, STRANGER)
        with c:
            refused = c.command(b"XFORWARD ADDR=127.0.0.7 HELO=mx.pengirim.test")
            return ehlo, refused, c.command(b"MAIL FROM:<a@anm.gov.my>")

    ehlo, refused, mail = await in_thread(stranger)
    assert b"XFORWARD" not in ehlo
    assert refused == (550, NOT_AUTHORIZED)
    # The refused XFORWARD changed nothing: relay control still sees 127.0.0.3.
    assert mail[0] == 554 and b"rule=relay-access" in mail[1]
    record = gw.records()[-1]
    assert (record["client_ip"], record["helo"]) == (STRANGER, "mx.postfix.test")

    def trusted() -> bytes:
        c, ehlo = greeted(gw.outbound, MTA)
        c.close()
        return ehlo

    assert b"250-XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT\r\n" in await in_thread(trusted)
    assert upstream.connections == 0


async def test_forwarded_client_decides_one_transaction(
        gw: GatewayHandle, upstream: FakeUpstream) -> None:
    def run() -> list[tuple[int, bytes]]:
        c, _ = greeted(gw.outbound, MTA)
        with c:
            out = [c.command(b"XFORWARD NAME=spike.example ADDR=127.0.0.7 PORT=40000 "
                             b"PROTO=ESMTP HELO=mx.pengirim.test"),
                   c.command(b"XFORWARD IDENT=ABC123 SOURCE=REMOTE"),
                   c.command(b"MAIL FROM:<a@anm.gov.my>"),
                   c.command(b"XFORWARD ADDR=127.0.0.8"),  # not inside a transaction
                   c.command(b"RCPT TO:<b@example.com>"),
                   c.command(b"DATA")]
            c.send(message(subject="Diteruskan") + b".\r\n")
            out.append(c.reply())
            # The transaction is over: the next one is the MTA's own again.
            out.append(c.command(b"MAIL FROM:<a@anm.gov.my>"))
            out.append(c.command(b"XFORWARD ADDR=IPv6:::ffff:127.0.0.8 HELO=[UNAVAILABLE]"))
            out.append(c.command(b"MAIL FROM:<a@anm.gov.my>"))
            out.append(c.command(b"RSET"))
            out.append(c.command(b"XFORWARD ADDR=[UNAVAILABLE] HELO=mx.pengirim.test"))
            out.append(c.command(b"MAIL FROM:<a@anm.gov.my>"))
            out.append(c.command(b"XFORWARD ADDR=nonsense"))
            out.append(c.command(b"XFORWARD"))
            return out

    replies = await in_thread(run)
    assert [code for code, _ in replies] == \
        [250, 250, 250, 503, 250, 354, 250, 554, 250, 554, 250, 250, 554, 501, 501]
    assert replies[3][1] == b"503 5.5.1 Error: MAIL transaction in progress"
    assert replies[13][1] == b"501 5.5.4 Bad ADDR syntax: nonsense"
    assert len(upstream.messages) == 1
    records = gw.records()
    assert [(r["rule_id"], r["client_ip"], r["helo"]) for r in records] == [
        ("relay-access", MTA, "mx.postfix.test"),  # after DATA: the MTA's own session
        ("relay-access", "127.0.0.8", ""),  # HELO unknown stays unknown (no mixing)
        ("relay-access", "unknown", ""),  # ADDR unknown: a local submission, no address
    ]


async def test_forwarded_helo_reaches_the_log(gw: GatewayHandle) -> None:
    def run() -> tuple[int, bytes]:
        c, _ = greeted(gw.outbound, MTA)
        with c:
            assert c.command(b"XFORWARD ADDR=192.0.2.9 HELO=mail.luar+2Etest")[0] == 250
            return c.command(b"MAIL FROM:<a@anm.gov.my>")

    code, _ = await in_thread(run)
    assert code == 554
    record = gw.records()[-1]
    assert (record["client_ip"], record["helo"]) == ("192.0.2.9", "mail.luar.test")


async def test_the_per_ip_limit_counts_the_forwarded_client(gw: GatewayHandle) -> None:
    # max_connections_per_ip is 2: the MTA in front is not limited as itself, but a
    # third concurrent session it forwards for one client is refused.
    def run() -> list[int]:
        held: list[RawClient] = []
        codes: list[int] = []
        try:
            for addr in (b"192.0.2.9", b"192.0.2.9", b"192.0.2.9", b"192.0.2.10"):
                c, _ = greeted(gw.inbound, MTA)
                held.append(c)
                codes.append(c.command(b"XFORWARD ADDR=" + addr)[0])
        finally:
            for c in held:
                c.close()
        return codes

    assert await in_thread(run) == [250, 250, 421, 250]
