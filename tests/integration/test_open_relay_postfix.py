"""No open relay through sender-specified routing, proved against a real Postfix next hop.

The next hop is the agency's own Postfix (a private instance, postfix_support.py): it
is the final destination for anm.gov.my (`mydestination`), hands agency mail to one
sink (`local_transport`) and everything else to another (`relayhost`), and trusts the
gateway (127.0.0.0/8 in `mynetworks`), as a real mail server behind the gateway does.
Such a Postfix strips its own domain and routes `"victim@evil.example"@anm.gov.my`,
`evil.example!victim@anm.gov.my` and `victim%evil.example@anm.gov.my` to evil.example.

The test first shows that (the same recipients submitted straight to Postfix from the
gateway's address land at the outside sink), so it can fail; then sends them through
the gateway's inbound listener from an outside client and counts what Postfix routes
where: nothing to the outside, the plain recipient to the agency.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from .postfix_support import Postfix, available, free_port, instance_dir
from .support import (
    FakeUpstream,
    GatewayFactory,
    GatewayHandle,
    client,
    in_thread,
    message,
)

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

DELIVERY_WAIT = 30.0
ROUTING_RCPTS = ['"victim@evil.example"@anm.gov.my', '"victim\\@evil.example"@anm.gov.my',
                 "evil.example!victim@anm.gov.my", "victim%evil.example@anm.gov.my"]


@dataclass
class NextHop:
    postfix: Postfix
    agency: FakeUpstream
    outside: FakeUpstream


@pytest.fixture
async def next_hop() -> AsyncIterator[NextHop]:
    agency, outside = FakeUpstream(), FakeUpstream()
    await agency.start()
    await outside.start()
    base = instance_dir()
    postfix = Postfix(base, free_port(), ("127.0.0.1", outside.port), milter=None, extra={
        "mydestination": "anm.gov.my",
        "relay_domains": "",
        "local_transport": f"smtp:[127.0.0.1]:{agency.port}",
    })
    try:
        await asyncio.wait_for(asyncio.to_thread(postfix.start), 60)
        yield NextHop(postfix, agency, outside)
    finally:
        try:
            await asyncio.wait_for(asyncio.to_thread(postfix.stop), 60)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            await agency.stop()
            await outside.stop()


def transaction(addr: tuple[str, int], rcpts: list[str]) -> list[tuple[int, bytes]]:
    """One message to every recipient that is accepted: the RCPT replies, then DATA's."""
    s = client(addr)
    try:
        s.ehlo("outside.example")
        s.mail("a@example.com")
        replies = [s.docmd("RCPT", f"TO:<{rcpt}>") for rcpt in rcpts]
        if any(code == 250 for code, _ in replies):
            replies.append(s.data(message(sender="a@example.com")))
        return replies
    finally:
        s.quit()


async def queue_empty(postfix: Postfix) -> None:
    """Wait (bounded) until Postfix has tried every message it holds."""
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while True:
        out = await asyncio.to_thread(
            subprocess.run, ["/usr/sbin/postqueue", "-c", str(postfix.config_dir), "-p"],
            capture_output=True, text=True, timeout=15, check=False)
        if "Mail queue is empty" in out.stdout:
            return
        assert asyncio.get_running_loop().time() < deadline, out.stdout + postfix.log()
        await asyncio.sleep(0.2)


async def delivered(sink: FakeUpstream, count: int, postfix: Postfix) -> None:
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while len(sink.messages) < count:
        assert asyncio.get_running_loop().time() < deadline, postfix.log()
        await asyncio.sleep(0.1)


async def test_routing_tricks_never_reach_the_outside(
        make_gateway: GatewayFactory, next_hop: NextHop) -> None:
    postfix = next_hop.postfix
    # The next hop really does route these forms onwards for a client it trusts.
    direct = await in_thread(lambda: transaction(("127.0.0.1", postfix.port), ROUTING_RCPTS))
    assert all(code == 250 for code, _ in direct), direct
    await delivered(next_hop.outside, 1, postfix)
    await queue_empty(postfix)
    routed = sorted(r for m in next_hop.outside.messages for r in m.rcpt_to)
    assert routed and all(r == "victim@evil.example" for r in routed), routed
    assert not next_hop.agency.messages
    next_hop.outside.messages.clear()

    # Through the gateway's inbound listener, from a client outside relay_networks.
    gw: GatewayHandle = await make_gateway(upstream=f"smtp://127.0.0.1:{postfix.port}",
                                           relay_networks=["127.0.0.5/32"])
    replies = await in_thread(
        lambda: transaction(gw.inbound, [*ROUTING_RCPTS, "pegawai@anm.gov.my"]))
    *refused, plain, data = replies
    assert all(code == 550 and b"rule=relay-address" in text for code, text in refused), \
        refused
    assert plain[0] == 250 and data[0] == 250, replies
    await delivered(next_hop.agency, 1, postfix)
    await queue_empty(postfix)
    assert next_hop.outside.messages == []
    assert [m.rcpt_to for m in next_hop.agency.messages] == [["pegawai@anm.gov.my"]]
    assert [r["rule_id"] for r in gw.records()] == ["relay-address"] * len(ROUTING_RCPTS)
