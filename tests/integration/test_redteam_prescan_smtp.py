"""Red team of decoding on arrival (gateway.message.prescan) through the real gateway.

The claim: with `limits.decode_on_arrival` on, the verdict and the relayed bytes are
those with it off; nothing is left on disk when the transaction ends; and no message
makes the front end slow or fails it because of the prescan. Four of them were
defects found in review, fixed since; the others are claims that held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.frontends.milter import protocol as p
from gateway.policy_state import load_policy
from gateway.relay.smtp import dot_stuff
from gateway.service import Gateway

from .milter_client import MilterClient
from .raw_client import RawClient, open_transaction
from .support import FakeUpstream, GatewayFactory, in_thread, write_config
from .test_spool import BigUpstream, spool_files, wait_for

HEAD = (b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Laporan\r\n"
        b"Message-ID: <m1@anm.gov.my>\r\nMIME-Version: 1.0\r\n")


def filler(lines: int) -> bytes:
    return b"".join(b"Mesyuarat jawatankuasa, perkara ke-%d.\r\n" % i for i in range(lines))


def with_attachment(data: bytes) -> bytes:
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (HEAD + b"Content-Type: multipart/mixed; boundary=\"sempadan\"\r\n\r\n"
            b"--sempadan\r\nContent-Type: text/plain\r\n\r\nLampiran.\r\n"
            b"--sempadan\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"laporan.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--sempadan--\r\n")


# An RFC 2231 boundary in a charset whose codec refuses errors='replace'.
IDNA = (HEAD + b"Content-Type: multipart/mixed; boundary*=idna''abc\r\n\r\n--abc\r\n"
        b"Content-Type: text/plain\r\n\r\n" + filler(4000) + b"--abc--\r\n")


def _limits(spool: Path, on: bool, **extra: object) -> dict[str, object]:
    return {"spool_threshold": "64KB", "spool_dir": str(spool), "max_message_size": "8MB",
            "decode_on_arrival": on, **extra}


async def _send(make_gateway: GatewayFactory, tmp_path: Path, msg: bytes, on: bool,
                **extra: object) -> tuple[int, list[bytes], list[Path]]:
    upstream: FakeUpstream = BigUpstream()
    await upstream.start()
    spool = tmp_path / f"spool-{on}"
    spool.mkdir()
    try:
        gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                                rules="rules: []", limits=_limits(spool, on, **extra))

        def run() -> tuple[int, bytes]:
            with open_transaction(gw.outbound) as c:
                c.send(dot_stuff(msg) + b".\r\n")
                return c.reply()

        code, _text = await in_thread(run)
        return code, [m.data for m in upstream.messages], spool_files(spool)
    finally:
        await upstream.stop()


async def test_an_idna_boundary_is_relayed_as_without_the_prescan(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    off = await _send(make_gateway, tmp_path, IDNA, False)
    assert off[0] == 250 and off[1] == [IDNA]
    on = await _send(make_gateway, tmp_path, IDNA, True)
    assert on == off


async def _milter_gateway(tmp_path: Path, on: bool) -> Gateway:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules="rules: []",
                        limits=_limits(tmp_path, on))
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"].append(
        {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"})
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    return gateway


async def test_an_idna_boundary_through_the_milter_is_as_without_the_prescan(
        tmp_path: Path) -> None:
    outcomes: list[tuple[str, list[object]]] = []
    for on in (False, True):
        where = tmp_path / str(on)
        where.mkdir()
        gateway = await _milter_gateway(where, on)
        try:
            client = await MilterClient.open(gateway.address("milter"))
            try:
                assert await client.connect("192.0.2.10") == [p.Continue()]
                try:
                    out = await client.message(IDNA, "a@example.com", ["b@anm.gov.my"])
                    outcomes.append((out.stage, list(out.replies)))
                except (ConnectionError, TimeoutError) as exc:
                    outcomes.append(("dropped", [type(exc).__name__]))
            finally:
                await client.close()
        finally:
            await gateway.stop(drain_timeout=1.0)
    assert outcomes[0][0] == "eob"
    assert outcomes[1] == outcomes[0]


TINY_PARTS = (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
              b"--b\r\n\r\nx\r\n" * (400 * 1024 // 10) + b"--b--\r\n")


async def test_a_flood_of_tiny_parts_does_not_stall_other_connections(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    upstream: FakeUpstream = BigUpstream()
    await upstream.start()
    spool = tmp_path / "spool"
    spool.mkdir()
    try:
        gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                                rules="rules: []",
                                limits=_limits(spool, True, spool_threshold="256KB"))
        waited: list[float] = []

        def probe(stop: threading.Event) -> None:
            # Another client's banner, again and again while the flood arrives.
            while not stop.is_set():
                started = time.monotonic()
                with RawClient(gw.outbound, timeout=30) as other:
                    assert other.reply()[0] == 220
                waited.append(time.monotonic() - started)
                time.sleep(0.05)

        def run() -> int:
            stop = threading.Event()
            prober = threading.Thread(target=probe, args=(stop,))
            prober.start()
            try:
                with open_transaction(gw.outbound) as c:
                    c.sock.settimeout(30)
                    c.send(dot_stuff(TINY_PARTS) + b".\r\n")
                    return c.reply()[0]
            finally:
                stop.set()
                prober.join(30)

        code = await asyncio_wait(run)
        assert code in (250, 550, 451, 554)
        assert waited and max(waited) < 0.5, waited
    finally:
        await upstream.stop()


async def asyncio_wait(fn: Any) -> Any:
    """`in_thread` with room for the stall measured (60 s, not 8)."""
    return await asyncio.wait_for(asyncio.to_thread(fn), 60.0)


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` (root only), unmounted at the end."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(where)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr!r}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_nearly_full_spool_disk_relays_as_without_the_prescan(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    msg = with_attachment(os.urandom(2600 * 1024))  # ~3.5 MB encoded, 2.6 MB decoded
    codes = []
    for on in (False, True):
        upstream: FakeUpstream = BigUpstream()
        await upstream.start()
        try:
            with small_disk(tmp_path / f"disk-{on}", "4m") as spool:
                gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                                        rules="rules: []", limits=_limits(spool, on))

                def run(addr: tuple[str, int]) -> int:
                    with open_transaction(addr) as c:
                        c.send(dot_stuff(msg) + b".\r\n")
                        return c.reply()[0]

                address = gw.outbound
                codes.append((await in_thread(functools.partial(run, address)), [m.data == msg
                                                     for m in upstream.messages]))
                assert spool_files(spool) == []
                await gw.gateway.stop(drain_timeout=1.0)
        finally:
            await upstream.stop()
    assert codes[0] == (250, [True])
    assert codes[1] == codes[0]


# -- claims that held ----------------------------------------------------------------

async def test_the_decoded_file_goes_when_the_client_goes_mid_data(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    upstream: FakeUpstream = BigUpstream()
    await upstream.start()
    spool = tmp_path / "spool"
    spool.mkdir()
    try:
        gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                                rules="rules: []", limits=_limits(spool, True))
        msg = dot_stuff(with_attachment(os.urandom(3 * 1024 * 1024)))

        def run() -> bool:
            with open_transaction(gw.outbound) as c:
                c.send(msg[:len(msg) * 3 // 4])
                seen = wait_for(lambda: any(f.suffix == ".dec" for f in spool.iterdir()))
                c.sock.shutdown(socket.SHUT_RDWR)
            return seen

        assert await in_thread(run)
        assert await in_thread(lambda: wait_for(lambda: not spool_files(spool)))
        assert upstream.messages == []
    finally:
        await upstream.stop()


async def test_the_decoded_file_goes_after_an_upstream_failure_and_a_refusal(
        make_gateway: GatewayFactory, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    upstream: FakeUpstream = BigUpstream()
    upstream.drop_mid_data = True  # the relay fails after the inspection read the files
    await upstream.start()
    try:
        gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                                rules="rules: []", limits=_limits(spool, True))
        msg = with_attachment(os.urandom(2 * 1024 * 1024))

        def run(data: bytes) -> int:
            with open_transaction(gw.outbound) as c:
                c.send(dot_stuff(data) + b".\r\n")
                return c.reply()[0]

        assert await in_thread(lambda: run(msg)) // 100 == 4
        assert spool_files(spool) == []
        # A bare LF half-way: refused, the spool and decoded files dropped at once.
        bare = msg[:len(msg) // 2] + b"x\ny\r\n" + msg[len(msg) // 2:]
        assert await in_thread(lambda: run(bare)) == 550
        assert spool_files(spool) == []
    finally:
        await upstream.stop()
