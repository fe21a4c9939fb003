"""Integration fixtures: a programmable upstream SMTP server and a gateway on loopback.

Both run on the test's own event loop on ephemeral ports; the client is the
standard library's smtplib, run in a worker thread so the loop keeps serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .support import BigUpstream, FakeUpstream, GatewayFactory, GatewayHandle, write_config


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream()
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def big_upstream() -> AsyncIterator[FakeUpstream]:
    """An upstream that takes messages of megabytes (spooled ones)."""
    up = BigUpstream()
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[Gateway] = []

    async def make(**kwargs: Any) -> GatewayHandle:
        path = write_config(tmp_path, **kwargs)
        gateway = Gateway(load_policy(path))
        await gateway.start()
        started.append(gateway)
        return GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")

    yield make
    for gateway in started:
        await gateway.stop(drain_timeout=1.0)


