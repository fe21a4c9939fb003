"""Red-team regressions for reading on arrival (gateway.frontends.pool read_on_arrival).

Each test drives the real gateway with a real SMTP client, upstream and inspection
processes, and states what must hold whether or not a message is being read while
it arrives:

- a reading process holds READ_COST of the memory budget: a message whose own
  estimate needs that memory must take the reading back, exactly as a message that
  finds no free process does, instead of waiting until `inspection_wait` and being
  answered 451 (decode_on_arrival: false would have accepted it at once);
- a reading told to finish (the client's final dot came) is bounded by
  `inspection_timeout` even when the client hangs up while it finishes: a frozen
  reading process is then killed, not held for ever with its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from pathlib import Path

from gateway.frontends.pool import InspectionPool

from .raw_client import open_transaction
from .support import FakeUpstream, GatewayFactory, in_thread
from .test_read_on_arrival import INNOCENT, eventually, open_half, pool_of, reading, start
from .test_spool import big_message


async def test_a_message_short_of_memory_takes_the_reading_back(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    # 16 MB for the inspections: a reading holds 4 MB, a 1.5 MB message needs 13 MB.
    handle, _spool = await start(make_gateway, big_upstream, tmp_path, processes=2,
                                  inspection_memory="16MB", inspection_wait=3)
    pool = pool_of(handle)
    dripping = await open_half(handle, INNOCENT)
    try:
        await eventually(lambda: len(pool.reading_pids) == 1)
        other = big_message(1536 * 1024)

        def send() -> tuple[int, bytes]:
            with open_transaction(handle.outbound) as client:
                client.send(other + b".\r\n")
                return client.reply()
        started = time.monotonic()
        code, text = await in_thread(send)
        # Without the reading it is inspected at once; with it, not after a 451.
        assert code == 250, text
        assert time.monotonic() - started < 2.5
    finally:
        dripping.close()
    await eventually(lambda: pool.reading_pids == [] and pool.memory_in_use == 0)


def finishing(pool: InspectionPool, pid: int) -> bool:
    """The pool has told process `pid` the message is whole and waits for its answer."""
    worker = pool._workers.get(pid)
    return worker is not None and worker.lease is not None \
        and worker.lease.state == "finishing"


async def test_a_frozen_finishing_reading_of_a_vanished_client_is_killed(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2,
                                inspection_timeout=2)
    pool = pool_of(handle)
    client, reader = await reading(handle, INNOCENT)
    os.kill(reader, signal.SIGSTOP)
    try:
        # The final dot: the gateway tells the reading to finish and waits for it;
        # the client hangs up meanwhile (its transaction is cancelled).
        await in_thread(lambda: client.send(INNOCENT[len(INNOCENT) // 2:] + b".\r\n"))
        await eventually(lambda: finishing(pool, reader))
        client.close()
        # Still bounded by inspection_timeout (2 s): killed, its memory given back.
        await eventually(lambda: reader not in pool.pids, timeout=8.0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(reader, signal.SIGCONT)
    await eventually(lambda: pool.memory_in_use == 0 and list(spool.iterdir()) == [])


async def test_no_decoded_file_is_left_when_no_process_can_be_started(
        make_gateway: GatewayFactory, big_upstream: FakeUpstream, tmp_path: Path) -> None:
    # Descriptors run out (EMFILE) between the decoded file and the process's socket
    # pair: the aid is skipped, the message is spooled and inspected as without it,
    # and neither its descriptor nor its file outlives the transaction.
    handle, spool = await start(make_gateway, big_upstream, tmp_path, processes=2)
    pool = pool_of(handle)
    assert pool.pids == []  # processes are started on demand: none yet
    client = await in_thread(lambda: open_transaction(handle.outbound))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    first, second = os.open(os.devnull, os.O_RDONLY), os.open(os.devnull, os.O_RDONLY)
    os.close(first)
    os.close(second)
    # Room for the spool file and the decoded file, not for a socket pair.
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(first, second) + 1, hard))
    try:
        await in_thread(lambda: client.send(INNOCENT[:len(INNOCENT) // 2]))
        # The front end has spooled it (listing the directory would need a descriptor).
        await asyncio.sleep(1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        await in_thread(lambda: client.send(INNOCENT[len(INNOCENT) // 2:] + b".\r\n"))
        code, text = await in_thread(client.reply)
    finally:
        client.close()
    # The transaction is over: no file of it is left, whatever the answer.
    await asyncio.sleep(0.2)
    assert list(spool.iterdir()) == []
    assert code == 250, text
