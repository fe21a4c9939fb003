"""The milter front end's bounds on what the MTA sends besides the message size: the
header block (`limits.max_header_bytes`, refused with `pengepala-terlalu-besar`, 552
5.3.4) and macros and packets (a protocol error: the connection is dropped and the MTA
applies its `milter_default_action`). The client is tests/integration/milter_client.py.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.frontends.milter import protocol as p
from gateway.policy_state import load_policy
from gateway.service import Gateway

from .milter_client import MilterClient
from .support import GatewayHandle, message, write_config

OUTSIDE = "192.0.2.10"
LIMIT = 4096


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[GatewayHandle]:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}",
                        limits={"max_header_bytes": LIMIT, "spool_dir": str(tmp_path)})
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"].append(
        {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"})
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        yield GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")
    finally:
        await gateway.stop(drain_timeout=1.0)


async def open_client(gw: GatewayHandle, protocol: int = 0x1FFFFF) -> MilterClient:
    client = await MilterClient.open(gw.gateway.address("milter"), protocol=protocol)
    assert await client.connect(OUTSIDE) == [p.Continue()]
    return client


def assert_header_refusal(text: str) -> None:
    lines = text.split("\r\n")
    assert [line[:10] for line in lines] == ["552-5.3.4 ", "552-5.3.4 ", "552 5.3.4 "], lines
    assert "Pengepala mesej melebihi had saiz 4KB." in lines[0]
    assert "The message header exceeds the size limit of 4KB." in lines[1]
    assert "rule=pengepala-terlalu-besar ref=" in lines[2]


async def test_one_oversized_header_field_is_refused_at_the_end_of_the_headers(
        gw: GatewayHandle) -> None:
    client = await open_client(gw)
    try:
        assert client.protocol & p.SMFIP_NOHREPL  # no reply per header: refused at EOH
        raw = message(extra=b"X-Besar: " + b"a" * LIMIT + b"\r\n")
        out = await client.message(raw, "a@example.com", ["b@anm.gov.my"])
        assert out.stage == "eoh", out
        assert_header_refusal(out.text)
        [record] = gw.records()
        assert record["rule_id"] == "pengepala-terlalu-besar"
        assert record["event"] == "reject"
        assert record["ref"] in out.text
        # The same connection takes the next (ordinary) message.
        out = await client.message(message(), "a@example.com", ["b@anm.gov.my"])
        assert out.replies == [p.Continue()]
    finally:
        await client.close()


async def test_a_header_block_over_the_limit_is_refused(gw: GatewayHandle) -> None:
    client = await open_client(gw)
    try:
        # Each field well under the limit, together over it.
        extra = b"".join(b"X-Baris-%d: " % i + b"b" * 300 + b"\r\n" for i in range(20))
        out = await client.message(message(extra=extra), "a@example.com", ["b@anm.gov.my"])
        assert out.stage == "eoh", out
        assert_header_refusal(out.text)
        # Just under the limit passes.
        extra = b"".join(b"X-Baris-%d: " % i + b"b" * 300 + b"\r\n" for i in range(10))
        out = await client.message(message(extra=extra), "a@example.com", ["b@anm.gov.my"])
        assert out.replies == [p.Continue()]
    finally:
        await client.close()
    assert [r["rule_id"] for r in gw.records()] == ["pengepala-terlalu-besar"]


async def test_an_mta_wanting_header_replies_is_refused_at_the_header(
        gw: GatewayHandle) -> None:
    client = await open_client(gw, protocol=0)
    try:
        assert not client.protocol & p.SMFIP_NOHREPL
        raw = message(extra=b"X-Besar: " + b"a" * LIMIT + b"\r\n")
        out = await client.message(raw, "a@example.com", ["b@anm.gov.my"])
        assert out.stage == "header", out
        assert_header_refusal(out.text)
        await client.send(p.Abort())
        out = await client.message(message(), "a@example.com", ["b@anm.gov.my"])
        assert out.replies == [p.Continue()]
    finally:
        await client.close()


async def assert_dropped(client: MilterClient, wire: bytes) -> None:
    client.writer.write(wire)
    await client.writer.drain()
    with pytest.raises(ConnectionError):
        await client.read_reply()


@pytest.mark.parametrize("macros", [
    (("{x}", "v" * (p.MAX_MACRO_VALUE + 1)),),  # one absurd value
    tuple((f"{{m{i}}}", "v" * 1000) for i in range(80)),  # a packet over 64 KiB
], ids=["value", "packet"])
async def test_absurd_macro_packets_drop_the_connection(
        gw: GatewayHandle, macros: tuple[tuple[str, str], ...]) -> None:
    client = await open_client(gw)
    try:
        await assert_dropped(client, p.encode_command(p.Macro(b"M", macros)))
    finally:
        await client.close()
    # Nothing was refused in the log: the MTA tempfails on its own.
    assert gw.records() == []


async def test_macros_piling_up_over_many_packets_drop_the_connection(
        gw: GatewayHandle) -> None:
    client = await open_client(gw)
    try:
        # Each packet small, distinct names: what is held per connection is bounded too.
        wire = b"".join(p.encode_command(p.Macro(b"M", (((f"{{m{i}}}", "v" * 4000),))))
                        for i in range(20))
        await assert_dropped(client, wire)
    finally:
        await client.close()


async def test_a_4_gib_length_field_drops_the_connection_at_once(gw: GatewayHandle) -> None:
    client = await open_client(gw)
    try:
        # Only the length and the code: nothing waits for the 4 GiB announced.
        await assert_dropped(client, struct.pack(">I", 2**32 - 1) + p.SMFIC_MACRO)
    finally:
        await client.close()
    # Other connections go on.
    good = await open_client(gw)
    try:
        out = await good.message(message(), "a@example.com", ["b@anm.gov.my"])
        assert out.replies == [p.Continue()]
    finally:
        await good.close()
