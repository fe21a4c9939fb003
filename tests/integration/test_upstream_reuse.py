"""Upstream connections kept between client sessions (gateway.relay.connection_cache).

A real gateway between smtplib clients (one message per connection, as `smtp-source`
sends) and a real upstream on loopback that counts its connections and can drop them.
What is checked: a connection is reused by the next client; one the upstream closed
while idle is replaced without the client noticing or anything lost; one left in the
middle of a transaction, or older than the reuse time, is never reused; idle ones are
closed with QUIT after the cache time and at stop; 0 turns the cache off.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from .support import FakeUpstream, GatewayFactory, GatewayHandle, client, in_thread, message

RCPT = "b@example.com"


async def start(make_gateway: GatewayFactory, upstream: FakeUpstream,
                **limits: Any) -> GatewayHandle:
    return await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", limits=limits)


def send_one(addr: tuple[str, int], subject: str) -> None:
    with client(addr) as s:
        s.sendmail("a@anm.gov.my", [RCPT], message(subject=subject))
        s.quit()


async def send(gw: GatewayHandle, subject: str) -> None:
    await in_thread(lambda: send_one(gw.gateway.address("outbound"), subject))


async def wait_for(predicate: Any, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


def subjects(upstream: FakeUpstream) -> list[bytes]:
    return [m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in upstream.messages]


async def test_the_next_client_reuses_the_connection(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=10)
    for n in range(3):
        await send(gw, f"m{n}")
    assert subjects(upstream) == [b"m0", b"m1", b"m2"]
    assert upstream.connections == 1
    assert sum(c.startswith("EHLO") for c in upstream.commands) == 1
    assert "QUIT" not in upstream.commands  # kept, not closed, between the clients
    assert gw.gateway.ctx.upstream_cache.reused == 2


async def test_a_connection_the_upstream_dropped_while_idle_is_replaced(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=10)
    await send(gw, "before")
    assert len(gw.gateway.ctx.upstream_cache) == 1
    upstream.drop_connections()
    # Not waiting for the gateway to see the close: the kept connection may still look
    # open when the next MAIL goes out on it, and must then be retried on a fresh one.
    await send(gw, "after")
    assert subjects(upstream) == [b"before", b"after"]
    assert upstream.connections == 2
    assert gw.records() == []  # no tempfail logged: the client never noticed


async def test_a_421_on_a_kept_connection_is_retried_on_a_fresh_one(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=10)
    await send(gw, "before")
    upstream.answers["MAIL"] = "421 4.3.2 Service shutting down"
    # Only the first MAIL after this hears 421: the fake answers from `answers` each
    # time, so clear it once the kept connection has been tried.
    original = upstream._answer

    async def once(writer: asyncio.StreamWriter, stage: str, default: str) -> None:
        await original(writer, stage, default)
        if stage == "MAIL" and "MAIL" in upstream.answers:
            upstream.answers.pop("MAIL")
            writer.close()  # as a server does after its 421

    upstream._answer = once  # type: ignore[method-assign]
    await send(gw, "after")
    assert subjects(upstream) == [b"before", b"after"]
    assert upstream.connections == 2


async def test_idle_connections_are_closed_with_quit_after_the_cache_time(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=0.2)
    await send(gw, "m")
    assert await wait_for(lambda: "QUIT" in upstream.commands, 3.0)
    assert len(gw.gateway.ctx.upstream_cache) == 0
    await send(gw, "m2")
    assert upstream.connections == 2


async def test_zero_cache_time_keeps_nothing(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=0)
    await send(gw, "m0")
    await send(gw, "m1")
    assert upstream.connections == 2
    assert upstream.commands.count("QUIT") >= 1
    assert gw.gateway.ctx.upstream_cache.reused == 0


async def test_no_reuse_past_the_reuse_time(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=10,
                     upstream_connection_reuse_time=0.3)
    await send(gw, "m0")
    await asyncio.sleep(0.4)
    await send(gw, "m1")
    assert upstream.connections == 2
    assert subjects(upstream) == [b"m0", b"m1"]


async def test_a_client_gone_mid_transaction_leaves_nothing_to_reuse(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=10)
    addr = gw.gateway.address("outbound")

    def vanish() -> None:
        with socket.create_connection(addr, timeout=5) as raw:
            f = raw.makefile("rb")
            f.readline()
            raw.sendall(b"EHLO c.test\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            raw.sendall(b"MAIL FROM:<a@anm.gov.my>\r\n")
            assert f.readline().startswith(b"250")
            raw.sendall(f"RCPT TO:<{RCPT}>\r\n".encode())
            assert f.readline().startswith(b"250")
        # closed here: the upstream transaction is open

    await in_thread(vanish)
    assert await wait_for(lambda: not gw.gateway.ctx.sessions)
    assert len(gw.gateway.ctx.upstream_cache) == 0
    await send(gw, "next")
    assert upstream.connections == 2
    assert [(m.mail_from, m.rcpt_to) for m in upstream.messages] == [("a@anm.gov.my", [RCPT])]
    assert subjects(upstream) == [b"next"]


async def test_stop_closes_kept_connections_with_quit(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await start(make_gateway, upstream, upstream_connection_cache_time=60)
    await send(gw, "m")
    assert len(gw.gateway.ctx.upstream_cache) == 1 and "QUIT" not in upstream.commands
    await gw.gateway.stop(drain_timeout=1.0)
    assert "QUIT" in upstream.commands
    assert await wait_for(lambda: not upstream._open)
