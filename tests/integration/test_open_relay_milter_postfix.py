"""No open relay through sender-specified routing in the milter front end, proved with a
real Postfix that counts what it routes where (issue 11 item 1).

One private Postfix instance (postfix_support.py) is the agency's mail server: the final
destination for anm.gov.my (`mydestination`, `local_transport` to the agency sink),
everything else to `relayhost` (the outside sink), and it trusts loopback clients
(`mynetworks = 127.0.0.0/8`), so it would itself route `"victim@evil.example"@anm.gov.my`
to evil.example. It has two smtpd services: one without the milter (the baseline that
shows Postfix does route these forms, so the test can fail) and one with the gateway's
milter, whose `relay_networks` (127.0.0.5 only) does not hold the client.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .postfix_support import Postfix, available, free_port, running
from .support import (
    CLIENT_TIMEOUT,
    FakeUpstream,
    GatewayHandle,
    message,
    started_gateway,
    write_config,
)
from .test_open_relay_postfix import ROUTING_RCPTS, delivered, queue_empty

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@dataclass
class Setup:
    gw: GatewayHandle
    postfix: Postfix
    plain_port: int  # smtpd without the milter
    milter_port: int  # smtpd with the gateway's milter
    agency: FakeUpstream
    outside: FakeUpstream


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    agency, outside = FakeUpstream(), FakeUpstream()
    await agency.start()
    await outside.start()
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules="rules: []",
                        relay_networks=["127.0.0.5/32"])
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"] = [{"name": "milter", "listen": "127.0.0.1:0",
                            "direction": "inbound", "mode": "milter"}]
    path.write_text(yaml.safe_dump(config))
    try:
        async with started_gateway(path) as gw:
            host, port = gw.gateway.address("milter")
            plain, milter = free_port(), free_port()
            services = "\n".join([
                f"127.0.0.1:{plain} inet n - n - - smtpd",
                "  -o smtpd_milters=",
                f"127.0.0.1:{milter} inet n - n - - smtpd",
            ])
            async with running(outside.port, f"inet:{host}:{port}", port=milter,
                               services=services, extra={
                                   "mydestination": "anm.gov.my",
                                   "relay_domains": "",
                                   "local_transport": f"smtp:[127.0.0.1]:{agency.port}",
                               }) as postfix:
                yield Setup(gw, postfix, plain, milter, agency, outside)
    finally:
        await agency.stop()
        await outside.stop()


def transaction(port: int, rcpts: list[str]) -> list[tuple[int, bytes]]:
    """One message from 127.0.0.1 through Postfix's smtpd on `port`: every RCPT reply,
    then DATA's when a recipient was accepted."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=CLIENT_TIMEOUT * 3)
    try:
        s.ehlo("outside.example")
        s.mail("a@example.com")
        replies = [s.docmd("RCPT", f"TO:<{rcpt}>") for rcpt in rcpts]
        if any(code == 250 for code, _ in replies):
            replies.append(s.data(message(sender="a@example.com")))
        return replies
    finally:
        s.quit()


async def in_thread(port: int, rcpts: list[str]) -> list[tuple[int, bytes]]:
    return await asyncio.wait_for(asyncio.to_thread(transaction, port, rcpts), 60)


async def test_routing_tricks_never_leave_through_the_milter(setup: Setup) -> None:
    postfix = setup.postfix
    # Baseline: this Postfix routes every form to evil.example when no milter refuses it.
    direct = await in_thread(setup.plain_port, ROUTING_RCPTS)
    assert all(code == 250 for code, _ in direct), direct
    await delivered(setup.outside, 1, postfix)
    await queue_empty(postfix)
    routed = sorted(r for m in setup.outside.messages for r in m.rcpt_to)
    assert routed and all(r == "victim@evil.example" for r in routed), routed
    assert not setup.agency.messages
    setup.outside.messages.clear()

    # With the gateway's milter: each routing form refused at RCPT, the plain one delivered.
    replies = await in_thread(setup.milter_port, [*ROUTING_RCPTS, "pegawai@anm.gov.my"])
    *refused, plain, data = replies
    assert all(code == 550 and b"rule=relay-address" in text for code, text in refused), \
        (refused, postfix.log())
    assert plain[0] == 250 and data[0] == 250, replies
    await delivered(setup.agency, 1, postfix)
    await queue_empty(postfix)
    assert setup.outside.messages == []
    assert [m.rcpt_to for m in setup.agency.messages] == [["pegawai@anm.gov.my"]]
    assert [r["rule_id"] for r in setup.gw.records()] == ["relay-address"] * len(ROUTING_RCPTS)
