"""A spooled message read by an inspection process while it arrives, on the real gateway.

With `limits.decode_on_arrival` the pool lends a process to each spooled message
while it arrives (gateway.frontends.pool `read_on_arrival`): the process follows
the spool file as the front end writes it and decodes its base64 attachments into
a file beside it, so the inspection after the final dot reads them there. What
must hold, each with a real SMTP client, upstream and processes:

- the decoding happens in that process and before the final dot (the decoded file
  grows while the client still sends), and the verdict is the inspection's own;
- a message that needs a process for its inspection takes a reading one back: it
  is inspected at once, and the message that was being read is inspected after its
  dot as without the reading (same verdict, nothing counted as decoded on arrival);
- a client that hangs up mid-stream gives its process back (not killed) and leaves
  no file; a reading process killed, or frozen, mid-stream costs nothing but the
  aid: the message gets its verdict, the pool a new process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.frontends.pool import SMALL_MESSAGE, InspectionPool
from gateway.relay.smtp import dot_stuff

from .raw_client import RawClient, open_transaction
from .support import FakeUpstream, GatewayFactory, GatewayHandle, in_thread
from .test_metrics import http_get, sample
from .test_spool import RAHSIA_RULE, big_message


def with_attachment(lines: int, last: bytes = b"") -> bytes:
    text = b"".join(b"Mesyuarat jawatankuasa daerah, perkara ke-%d.\r\n" % i
                    for i in range(lines)) + last
    encoded = base64.encodebytes(text).replace(b"\n", b"\r\n")
    return (b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Laporan\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"sempadan\"\r\n"
            b"\r\n--sempadan\r\nContent-Type: text/plain\r\n\r\nLampiran.\r\n"
            b"--sempadan\r\nContent-Type: text/plain; name=\"laporan.txt\"\r\n"
            b"Content-Disposition: attachment; filename=\"laporan.txt\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--sempadan--\r\n")


# The marking on the attachment's last line: found only if the part is read whole.
MARKED = dot_stuff(with_attachment(100000, b"RAHSIA\r\n"))
INNOCENT = dot_stuff(with_attachment(100000))
SMALL = b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Salam\r\n\r\nSalam.\r\n"
# Above the small-message lane's size (pool.SMALL_MESSAGE): it needs a regular process.
MEDIUM = SMALL + b"Salam sejahtera.\r\n" * (SMALL_MESSAGE // 18 + 1)


async def start(make_gateway: GatewayFactory, upstream: FakeUpstream, tmp_path: Path,
                processes: int, **limits: object) -> tuple[GatewayHandle, Path]:
    spool = tmp_path / "spool"
    spool.mkdir()
    handle = await make_gateway(
        upstream=f"smtp://127.0.0.1:{upstream.port}", rules=RAHSIA_RULE,
        limits={"spool_threshold": "64KB", "spool_dir": str(spool), "max_message_size": "16MB",
                "decode_on_arrival": True, "inspection_processes": processes, **limits},
        extra={"metrics": {"listen": "127.0.0.1:0"}})
    return handle, spool


def pool_of(handle: GatewayHandle) -> InspectionPool:
    return handle.gateway.pool


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # bounded by the deadline
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def decoded_bytes(spool: Path) -> int:
    return sum(p.stat().st_size for p in spool.iterdir() if p.suffix == ".dec")


async def decoded_on_arrival(handle: GatewayHandle) -> float:
    server = handle.gateway.metrics_server
    assert server is not None and server.address
    _status, text = await http_get(server.address, "/metrics")
    return sample(text, "gateway_parts_decoded_on_arrival_total")


async def open_half(handle: GatewayHandle, message: bytes) -> RawClient:
    """A transaction that has sent the first half of `message` (no final dot)."""
    client = await in_thread(lambda: open_transaction(handle.outbound))
    await in_thread(lambda: client.send(message[:len(message) // 2]))
    return client


async def reading(handle: GatewayHandle, message: bytes) -> tuple[RawClient, int]:
    """A transaction that has sent the first half of `message`, and the pool's
    process reading it: it has decoded some of it already."""
    client = await open_half(handle, message)
    pool = pool_of(handle)
    spool = handle.gateway.ctx.policy.config.limits.spool_dir
    assert spool is not None
    # Not merely lent: a process just forked still holds copies of this test
    # process's descriptors, the client's socket among them, until it closes them
    # (pool._detach). Frozen before that, it would keep the connection open after
    # `client.close()`. Decoding comes after.
    await eventually(lambda: len(pool.reading_pids) == 1 and decoded_bytes(spool) > 0)
    return client, pool.reading_pids[0]


async def finish(client: RawClient, message: bytes) -> tuple[int, bytes]:
    def rest() -> tuple[int, bytes]:
        client.send(message[len(message) // 2:] + b".\r\n")
        return client.reply()
    try:
        return await in_thread(rest)
    finally:
        client.close()


async def send_small(handle: GatewayHandle, message: bytes = SMALL) -> tuple[int, bytes]:
    def run() -> tuple[int, bytes]:
        with open_transaction(handle.outbound) as client:
            client.send(message + b".\r\n")
            return client.reply()
    return await in_thread(run)


async def test_a_process_decodes_the_attachment_before_the_final_dot(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2)
    pool = pool_of(handle)
    for message, want in ((MARKED, 550), (INNOCENT, 250)):
        client, reader = await reading(handle, message)
        assert reader != os.getpid() and reader in pool.pids
        # Decoded while the client has not finished: by the process, on the way.
        assert decoded_bytes(spool) > 0
        code, text = await finish(client, message)
        assert code == want, text
        assert pool.reading_pids == []
    assert [m.data for m in big_upstream.messages] == [INNOCENT]
    assert await decoded_on_arrival(handle) == 2
    await eventually(lambda: list(spool.iterdir()) == [])


async def test_an_inspection_takes_the_reading_process_back(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    # One process: reading the large message, it is the only one there is.
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=1)
    pool = pool_of(handle)
    client, reader = await reading(handle, MARKED)
    # A small message goes to the small-message lane: the reading goes on.
    code, text = await send_small(handle)
    assert code == 250, text
    assert pool.reading_pids == [reader] and len(pool.pids) == 2
    started = time.monotonic()
    code, text = await send_small(handle, MEDIUM)
    assert code == 250, text
    # Not after a timeout: the reading was stopped for it, and the process kept.
    assert time.monotonic() - started < 3.0
    assert pool.reading_pids == [] and reader in pool.pids
    code, text = await finish(client, MARKED)
    assert code == 550 and b"rule=rahsia-dilarang" in text, text
    assert await decoded_on_arrival(handle) == 0
    assert [m.data for m in big_upstream.messages] == [SMALL, MEDIUM]
    await eventually(lambda: list(spool.iterdir()) == [])


async def test_a_client_that_hangs_up_mid_stream_gives_the_process_back(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2)
    pool = pool_of(handle)
    client, reader = await reading(handle, INNOCENT)
    client.close()
    await eventually(lambda: pool.reading_pids == [] and list(spool.iterdir()) == [])
    assert reader in pool.pids  # stopped, not killed
    code, text = await send_small(handle)
    assert code == 250, text
    assert [m.data for m in big_upstream.messages] == [SMALL]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
async def test_a_reading_process_killed_or_frozen_costs_only_the_aid(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path,
        sig: signal.Signals) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2,
                                inspection_timeout=2)
    pool = pool_of(handle)
    client, reader = await reading(handle, MARKED)
    os.kill(reader, sig)
    try:
        # Frozen: the gateway waits `inspection_timeout` for the reading, kills the
        # process, and has the message inspected by another.
        code, text = await finish(client, MARKED)
    finally:
        if sig == signal.SIGSTOP:
            with contextlib.suppress(ProcessLookupError):
                os.kill(reader, signal.SIGCONT)
    assert code == 550 and b"rule=rahsia-dilarang" in text, text
    await eventually(lambda: reader not in pool.pids)
    assert await decoded_on_arrival(handle) == 0
    await eventually(lambda: list(spool.iterdir()) == [])
    code, text = await send_small(handle)
    assert code == 250, text


async def test_a_frozen_reading_process_of_a_vanished_client_is_killed(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2)
    pool = pool_of(handle)
    client, reader = await reading(handle, INNOCENT)
    os.kill(reader, signal.SIGSTOP)
    try:
        client.close()
        # Told to stop, it cannot answer: killed after the pool's grace.
        await eventually(lambda: reader not in pool.pids, timeout=10.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(reader, signal.SIGCONT)
    await eventually(lambda: list(spool.iterdir()) == [])


def html_only(last: bytes = b"") -> bytes:
    """A spooled message that is one HTML text: nothing for a reading to decode or scan
    (it scans text/plain bodies only)."""
    head, _, body = big_message(2 * 1024 * 1024, subject=b"Laporan",
                                line=b"<p>" + b"q" * 72 + b"</p>").partition(b"\r\n\r\n")
    return dot_stuff(head + b"\r\nContent-Type: text/html\r\n\r\n" + body + last)


def text_only(last: bytes = b"") -> bytes:
    """A spooled message that is one plain text: scanned by a reading as it arrives."""
    return dot_stuff(big_message(2 * 1024 * 1024, subject=b"Laporan") + last)


async def scanned_on_arrival(handle: GatewayHandle) -> float:
    server = handle.gateway.metrics_server
    assert server is not None and server.address
    _status, text = await http_get(server.address, "/metrics")
    return sample(text, "gateway_texts_scanned_on_arrival_total")


async def read_through(handle: GatewayHandle, message: bytes, want: int) -> None:
    """`message` sent in two halves with the pool's process reading it in between (not
    given back as fruitless), answered `want` (550: by the RAHSIA rule)."""
    pool = pool_of(handle)
    client = await open_half(handle, message)
    try:
        await eventually(lambda: len(pool.reading_pids) == 1)
        await asyncio.sleep(0.2)
        assert len(pool.reading_pids) == 1
    finally:
        code, text = await finish(client, message)
    assert code == want, text
    if want == 550:
        assert b"rule=rahsia-dilarang" in text, text


async def test_a_process_scans_a_text_body_before_the_final_dot(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2)
    for message, want in ((text_only(b"RAHSIA\r\n"), 550), (text_only(), 250)):
        await read_through(handle, message, want)
    assert [m.data for m in big_upstream.messages] == [text_only()]
    # Both texts' marking lines and links were the reading's: nothing to decode.
    assert await scanned_on_arrival(handle) == 2
    assert await decoded_on_arrival(handle) == 0
    await eventually(lambda: list(spool.iterdir()) == [])


async def test_a_text_the_reading_cannot_vouch_for_gives_the_process_back(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    # An escape on the second line (7-bit text that may be ISO-2022): the reading
    # stops at the run of lines that holds it, the process goes back, and the
    # inspection scans the text itself after the dot.
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=1)
    pool = pool_of(handle)
    # 4 MB: half of it is past the front end's first whole flush to the spool file.
    head, _, body = big_message(4 * 1024 * 1024, subject=b"Laporan").partition(b"\r\n\r\n")
    marked = dot_stuff(head + b"\r\n\r\nSalam.\r\n\x1b(B\r\n" + body + b"RAHSIA\r\n")
    client = await open_half(handle, marked)
    try:
        await eventually(lambda: pool.pids != [] and pool.reading_pids == []
                         and pool.memory_in_use == 0)
    finally:
        code, text = await finish(client, marked)
    assert code == 550 and b"rule=rahsia-dilarang" in text, text
    assert await scanned_on_arrival(handle) == 0
    await eventually(lambda: list(spool.iterdir()) == [])


async def test_a_message_with_nothing_to_decode_gives_the_process_back_at_once(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=1)
    pool = pool_of(handle)
    marked = html_only(b"<p>RAHSIA</p>\r\n")
    client = await open_half(handle, marked)
    try:
        # The message is still arriving: its header block already says there is no
        # base64 part nor plain text to come, and the process is back in the pool,
        # not killed.
        await eventually(lambda: pool.pids != [] and pool.reading_pids == []
                         and pool.memory_in_use == 0)
        [process] = pool.pids
    finally:
        code, text = await finish(client, marked)
    assert code == 550 and b"rule=rahsia-dilarang" in text, text
    assert pool.pids == [process]
    await eventually(lambda: list(spool.iterdir()) == [])


async def test_readings_that_end_fruitless_leave_the_process_in_step(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    # Sent whole, a message's final dot and the reading's "nothing to decode" may
    # cross: the process then gets the gateway's "finish" after it has left the
    # reading, and must ignore it. One process: any step lost shows as a failed
    # inspection of the next message.
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=1)
    pool = pool_of(handle)
    plain = html_only()

    async def whole(message: bytes) -> tuple[int, bytes]:
        def run() -> tuple[int, bytes]:
            with open_transaction(handle.outbound) as client:
                client.send(message + b".\r\n")
                return client.reply()
        return await in_thread(run)

    for _ in range(4):
        code, text = await whole(plain)
        assert code == 250, text
        code, text = await whole(MARKED)
        assert code == 550 and b"rule=rahsia-dilarang" in text, text
    assert len(big_upstream.messages) == 4
    assert len(pool.pids) == 1
    await eventually(lambda: list(spool.iterdir()) == [] and pool.memory_in_use == 0)


def outlook(last: bytes = b"") -> bytes:
    """Outlook's shape, spooled: a quoted-printable text in multipart/alternative in
    multipart/mixed, and a forwarded message (message/rfc822) holding a base64 file;
    `last` ends the text (a marking there is found only if the text is read whole)."""
    words = b"Mesyuarat jawatankuasa daerah =E2=80=93 perkara lanjut, sila rujuk =\r\nminit.\r\n"
    text = words * 30000 + last
    encoded = base64.encodebytes(b"Lampiran minit mesyuarat.\r\n" * 20000).replace(
        b"\n", b"\r\n")
    forwarded = (b"Content-Type: message/rfc822\r\n\r\nFrom: c@anm.gov.my\r\nSubject: asal\r\n"
                 b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"f\"\r\n\r\n"
                 b"--f\r\nContent-Type: text/plain; name=\"minit.txt\"\r\n"
                 b"Content-Disposition: attachment; filename=\"minit.txt\"\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--f--\r\n")
    return dot_stuff(
        b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Minit\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n"
        b"--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
        b"--a\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text +
        b"\r\n--a\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\r\n<p>Minit.</p>\r\n"
        b"--a--\r\n--m\r\n" + forwarded + b"--m--\r\n")


async def test_nested_parts_and_quoted_printable_are_read_before_the_final_dot(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2)
    # The marking split by a soft line break: RAHSIA once decoded.
    for message, want in ((outlook(b"RAH=\r\nSIA\r\n"), 550), (outlook(), 250)):
        await read_through(handle, message, want)
    assert len(big_upstream.messages) == 1
    # Each message's nested text and the forwarded message's file were the reading's.
    assert await scanned_on_arrival(handle) == 2
    assert await decoded_on_arrival(handle) == 2
    await eventually(lambda: list(spool.iterdir()) == [])
