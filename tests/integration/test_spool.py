"""Large messages go to a private spool file that never outlives its transaction."""

from __future__ import annotations

import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.relay.smtp import dot_stuff

from .raw_client import open_transaction
from .support import BigUpstream, FakeUpstream, GatewayFactory, in_thread

SECRET = b"Kod pelancaran: ZEBRA-7731-KILAT"
RAHSIA_RULE = """
rules:
  - id: rahsia-dilarang
    description: "Mesej RAHSIA tidak boleh dihantar"
    reference: "test"
    direction: both
    when: {classification: [RAHSIA]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Mesej RAHSIA.", en: "RAHSIA mail."}}
"""


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = BigUpstream()
    await up.start()
    yield up
    await up.stop()


def big_message(size: int, subject: bytes = b"Laporan", line: bytes = b"q" * 76) -> bytes:
    head = b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: " + subject + b"\r\n\r\n"
    body = (line + b"\r\n") * (size // (len(line) + 2) + 1)
    return head + body


def spool_files(spool: Path) -> list[Path]:
    return sorted(spool.iterdir())


def wait_for(cond: object, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def limits(spool: Path, **extra: object) -> dict[str, object]:
    return {"spool_threshold": "64KB", "spool_dir": str(spool), "max_message_size": "8MB",
            **extra}


async def test_large_message_is_spooled_relayed_exactly_then_removed(
        make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            limits=limits(spool))
    upstream.delay["END"] = 0.5  # the transaction stays open while the upstream thinks
    msg = big_message(3 * 1024 * 1024) + b".leading dot\r\n\r\n"
    seen: list[tuple[str, int]] = []

    def run() -> tuple[int, bytes]:
        with open_transaction(gw.outbound) as c:
            c.send(dot_stuff(msg) + b".\r\n")
            assert wait_for(lambda: spool_files(spool))
            for f in spool_files(spool):
                seen.append((f.suffix, stat.S_IMODE(f.stat().st_mode)))
            return c.reply()

    code, text = await in_thread(run)
    assert code == 250, text
    # The message's file, and the file for its decoded parts (limits.decode_on_arrival,
    # on by default), each private to the gateway.
    assert [suffix for suffix, _mode in seen].count(".msg") == 1
    assert {mode for _suffix, mode in seen} == {0o600}
    [got] = upstream.messages
    assert got.data == msg
    assert spool_files(spool) == []


async def test_small_message_never_touches_the_disk(
        make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            limits=limits(spool))
    upstream.delay["END"] = 0.3
    msg = big_message(32 * 1024)

    def run() -> tuple[int, list[Path]]:
        with open_transaction(gw.outbound) as c:
            c.send(msg + b".\r\n")
            time.sleep(0.15)
            during = spool_files(spool)
            return c.reply()[0], during

    code, during = await in_thread(run)
    assert code == 250 and during == []
    assert upstream.messages[0].data == msg


async def test_client_gone_mid_data_leaves_no_spool_file(
        make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            limits=limits(spool))
    msg = big_message(2 * 1024 * 1024)

    def run() -> bool:
        with open_transaction(gw.outbound) as c:
            c.send(msg[:1024 * 1024])
            return wait_for(lambda: spool_files(spool))

    assert await in_thread(run)  # the file existed while the client was sending
    assert await in_thread(lambda: wait_for(lambda: not spool_files(spool)))
    assert upstream.messages == []


async def test_rejected_rahsia_message_leaves_nothing_on_disk(
        make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules=RAHSIA_RULE,
                            limits=limits(spool))
    msg = big_message(512 * 1024, subject=b"RAHSIA: Pelan", line=SECRET)

    def run() -> tuple[int, bytes]:
        with open_transaction(gw.outbound) as c:
            c.send(msg + b".\r\n")
            return c.reply()

    code, text = await in_thread(run)
    assert code == 550 and b"rule=rahsia-dilarang" in text, text
    assert upstream.messages == []
    assert spool_files(spool) == []
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET in p.read_bytes()]
    assert leaks == []


async def test_oversize_and_bare_newline_messages_are_dropped_from_the_spool(
        make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            limits=limits(spool, max_message_size="1MB"))
    bare = big_message(256 * 1024) + b"bare\nLF\r\n" + big_message(512 * 1024)

    def run(msg: bytes) -> tuple[int, bool]:
        with open_transaction(gw.outbound) as c:
            c.send(msg)
            # Once refused, nothing of the message is kept while the rest drains.
            emptied = wait_for(lambda: not spool_files(spool))
            c.send(b".\r\n")
            return c.reply()[0], emptied

    assert await in_thread(lambda: run(big_message(2 * 1024 * 1024))) == (552, True)
    assert await in_thread(lambda: run(bare)) == (550, True)
    assert upstream.messages == []
    assert spool_files(spool) == []


async def test_unusable_spool_is_a_tempfail_never_a_relay(
        make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            limits=limits(tmp_path / "missing"))
    # The gateway made the spool directory when it started; it goes away while it runs
    # (a file takes its name, so even root cannot spool there).
    (tmp_path / "missing").rmdir()
    (tmp_path / "missing").write_text("not a directory")

    def run() -> tuple[int, bytes]:
        with open_transaction(gw.outbound) as c:
            c.send(big_message(256 * 1024) + b".\r\n")
            return c.reply()

    code, text = await in_thread(run)
    assert code == 451 and text.startswith(b"451-4.3.0 "), text
    assert b"missing" not in text  # no paths or exception text in replies
    assert upstream.messages == []
