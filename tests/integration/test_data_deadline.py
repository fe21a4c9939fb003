"""A client dripping bytes inside DATA is closed (421 4.4.2), not kept alive by each byte.

`limits.data_timeout` bounds the whole DATA phase in the client's own time and
`limits.data_min_rate` (over `data_rate_window`, after `data_rate_grace`) its pace;
the idle timer (`session_timeout`, reset by any byte) alone would let a client
sending one byte a minute hold the session (and, with cut-through, an upstream
transaction) for ever. Real gateway, real upstream, a real client writing slowly;
the deadlines are shrunk to fractions of a second so every case is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .faultkit import Client, ScriptedUpstream, make_message
from .support import GatewayHandle, write_config

RCPT = "b@example.com"
# Tight DATA limits; the session's idle timer stays long, so only they can end DATA.
TIGHT = {"session_timeout": 20, "data_timeout": 30, "data_min_rate": "1KB",
         "data_rate_window": 0.5, "data_rate_grace": 0.5}


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    up = ScriptedUpstream()
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def gateway_with(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Gateway] = []

    async def start(upstream: str, limits: dict[str, Any], cut_through: bool
                    ) -> GatewayHandle:
        path = write_config(tmp_path, upstream=upstream, limits=limits, rules="rules: []")
        config = yaml.safe_load(path.read_text())
        config["cut_through"] = cut_through
        path.write_text(yaml.safe_dump(config))
        gateway = Gateway(load_policy(path))
        await gateway.start()
        started.append(gateway)
        return GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")

    yield start
    for gateway in started:
        await gateway.stop(drain_timeout=1.0)


async def drip(c: Client, data: bytes, piece: int, pause: float, budget: float
               ) -> tuple[float, bytes]:
    """Write `data` `piece` bytes at a time every `pause` seconds until the gateway
    closes the connection (or `budget` runs out); (seconds taken, what it said)."""
    started = time.monotonic()
    said = b""
    for start in range(0, len(data), piece):
        if time.monotonic() - started > budget:
            break
        try:
            c.writer.write(data[start:start + piece])
            await c.writer.drain()
        except ConnectionError:
            break
        try:
            said += await asyncio.wait_for(c.reader.read(4096), pause)
        except TimeoutError:
            continue
        if said.endswith(b"\r\n") or c.reader.at_eof():
            break
    return time.monotonic() - started, said


async def closed(c: Client) -> bool:
    try:
        rest = await asyncio.wait_for(c.reader.read(4096), 3)
    except (ConnectionError, TimeoutError):
        return False
    return rest == b""


@pytest.mark.parametrize("cut_through", [False, True])
async def test_client_below_the_minimum_rate_is_closed_with_421(
        gateway_with: Any, scripted: ScriptedUpstream, cut_through: bool) -> None:
    gw = await gateway_with(scripted.url, TIGHT, cut_through)
    c = await Client.connect(gw.outbound)
    assert (await c.command("MAIL FROM:<a@anm.gov.my>"))[0] == 250
    assert (await c.command(f"RCPT TO:<{RCPT}>"))[0] == 250
    assert (await c.command("DATA"))[0] == 354
    # 20 bytes a second, far below 1 KB/s: every byte would reset the idle timer.
    took, said = await drip(c, make_message("slow@x", body=b"x" * 4000 + b"\r\n"), 1, 0.05,
                            budget=8)
    assert said.startswith(b"421-4.4.2 ") and b"too slowly" in said, said
    assert 0.4 < took < 4, took
    assert await closed(c)
    c.close()
    await scripted.settled()
    assert scripted.kept == []
    for seen in scripted.seen.values():
        assert "<dot>" not in seen
        # Store and forward never started the upstream's DATA; cut-through dropped it.
        assert ("DATA" in seen) == cut_through
    assert gw.records() == []  # a session limit: journal only


@pytest.mark.parametrize("cut_through", [False, True])
async def test_data_longer_than_data_timeout_is_closed_with_421(
        gateway_with: Any, scripted: ScriptedUpstream, cut_through: bool) -> None:
    limits = {**TIGHT, "data_timeout": 1.0, "data_min_rate": 0}
    gw = await gateway_with(scripted.url, limits, cut_through)
    c = await Client.connect(gw.outbound)
    assert (await c.command("MAIL FROM:<a@anm.gov.my>"))[0] == 250
    assert (await c.command(f"RCPT TO:<{RCPT}>"))[0] == 250
    assert (await c.command("DATA"))[0] == 354
    # A steady 1 KB every 0.1 s: no rate floor to break, but the whole DATA is too long.
    took, said = await drip(c, make_message("long@x", body=b"y" * 100_000 + b"\r\n"), 1000,
                            0.1, budget=8)
    assert said.startswith(b"421-4.4.2 "), said
    assert 0.8 < took < 4, took
    assert await closed(c)
    c.close()
    await scripted.settled()
    assert scripted.kept == []


@pytest.mark.parametrize("cut_through", [False, True])
async def test_a_client_at_a_normal_pace_is_not_affected(
        gateway_with: Any, scripted: ScriptedUpstream, cut_through: bool) -> None:
    gw = await gateway_with(scripted.url, TIGHT, cut_through)
    c = await Client.connect(gw.outbound)
    try:
        msg = make_message("ok@x", body=b"z" * 40_000 + b"\r\n")
        out = await c.transaction("a@anm.gov.my", [RCPT], msg)
        assert out.accepted, out
        # A pause between transactions is the idle timer's business, not DATA's.
        await asyncio.sleep(1.2)
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("ok2@x"))
        assert out.accepted, out
    finally:
        await c.quit()
    assert scripted.counts() == {"<ok@x>": 1, "<ok2@x>": 1}
