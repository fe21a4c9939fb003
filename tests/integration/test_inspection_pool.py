"""Inspection in worker processes, on a real gateway with real SMTP clients and upstream.

The expensive message is real content, not a test-only condition: an HTML body of
a few megabytes of small tags, which the rule below makes the gateway render and
read whole (links, body text, markings), about half a second per megabyte on the
development machine. Tiny `inspection_timeout`, `inspection_wait`,
`inspection_queue` and `inspection_memory` values make each limit bite:

- past the timeout the message is answered 451 4.3.0 and its process is killed
  (gone from the process table) and replaced;
- a process killed from outside mid-inspection: 451 4.3.0, nothing relayed, the
  pool carries on;
- a full queue, and a message that waits for memory past `inspection_wait`: 451 4.3.2;
- clients sending expensive mail in parallel do not hold back another client's
  small message for more than a couple of expensive ones (round robin per client:
  the clients are told apart by XFORWARD, from 127.0.0.1);
- SIGTERM during an inspection (`gateway serve` as a process): the message is
  answered, the gateway exits 0 and none of its processes is left; a gateway killed
  outright (SIGKILL) takes its inspection processes with it;
- a reload retires the processes of the old policy: the new rules apply;
- a large (spooled) message whose header block the gateway changes is relayed as the
  new header block followed by the body read from the spool, byte for byte.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.frontends.pool import SMALL_MESSAGE, cost_of
from gateway.policy_state import load_policy
from gateway.service import Gateway

from .faultkit import Client, Outcome, ScriptedUpstream, finish, serve
from .support import BigUpstream, FakeUpstream, GatewayHandle, write_config

BIG = 64 * 1024 * 1024  # the upstreams read messages of megabytes (asyncio's default: 64 KB)


class BigScriptedUpstream(ScriptedUpstream):
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=BIG)
        self.port = self._server.sockets[0].getsockname()[1]


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = BigUpstream()
    await up.start()
    yield up
    await up.stop()

MiB = 1024 * 1024
RULES = """
rules:
  - id: kandungan-disekat
    description: "Pautan atau teks yang disekat"
    reference: "PPPA test"
    direction: both
    when:
      any:
        - {link_domain: [disekat.example]}
        - {body_matches: '(?i)kata\\s+laluan\\s+anda'}
        - {classification: [RAHSIA BESAR]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Kandungan disekat.", en: "Blocked content."}}
"""
RULES_V2 = RULES.replace("disekat.example]", "disekat.example, contoh.example]")
SENDER, RCPT = "a@anm.gov.my", "b@example.com"


def expensive(size: int, mid: str, head: bytes = b"") -> bytes:
    """An HTML message of about `size` bytes of small tags: costly to render and read."""
    line = b"<b>a</b> " * 8 + b"\r\n"
    return head + (f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: Laporan\r\n"
                   f"Message-ID: <{mid}>\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: text/html; charset=utf-8\r\n\r\n").encode() + \
        line * (size // len(line))


def small(mid: str, body: bytes = b"Salam.\r\n") -> bytes:
    return (f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: Ringkas\r\n"
            f"Message-ID: <{mid}>\r\n\r\n").encode() + body


def medium(mid: str) -> bytes:
    """A message just above the small-message lane's size (pool.SMALL_MESSAGE), quick
    to inspect: it waits for the regular processes like any other."""
    return small(mid, b"Salam sejahtera.\r\n" * (SMALL_MESSAGE // 18 + 1))


def alive(pid: int) -> bool:
    """The process exists at all (a zombie too: it must have been reaped)."""
    return Path(f"/proc/{pid}").exists()


def running(pid: int) -> bool:
    """The process exists and is not a zombie (whose parent, gone, cannot reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


@pytest.fixture
async def start(tmp_path: Path, upstream: FakeUpstream
                ) -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def make(limits: dict[str, Any], **extra: Any) -> GatewayHandle:
        path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                            rules=RULES, limits=limits)
        if extra:
            config = yaml.safe_load(path.read_text())
            config.update(extra)
            path.write_text(yaml.safe_dump(config))
        gateway = Gateway(load_policy(path))
        await gateway.start()
        started.append(gateway)
        return GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")

    yield make
    for gateway in started:
        pids = gateway.pool.pids
        await gateway.stop(drain_timeout=1.0)
        assert gateway.pool.pids == []
        assert not any(alive(pid) for pid in pids), "an inspection process outlived its pool"


async def send(addr: tuple[str, int], msg: bytes, *, client: str | None = None,
               timeout: float = 30.0) -> Outcome:
    """One transaction on a new connection; `client`: the address XFORWARD names."""
    c = await Client.connect(addr, timeout=timeout)
    try:
        if client is not None:
            code, text = await c.command(f"XFORWARD ADDR={client}")
            assert code == 250, text
        return await c.transaction(SENDER, [RCPT], msg)
    finally:
        await c.quit()


async def busy_pid(gw: GatewayHandle) -> int:
    """The process inspecting the one message in flight, once it has started."""
    await eventually(lambda: len(gw.gateway.pool.busy_pids) == 1)
    [pid] = gw.gateway.pool.busy_pids
    return pid


async def test_message_past_the_timeout_is_killed_with_its_process_and_answered_451(
        start: Callable[..., Any], upstream: FakeUpstream) -> None:
    # 1 s: the 8 MB message takes several; a small one, even in a fresh process on a
    # busy machine, a fraction of it.
    gw = await start({"inspection_timeout": 1.0})
    sending = asyncio.ensure_future(send(gw.outbound, expensive(8 * MiB, "lama@anm.gov.my")))
    pid = await busy_pid(gw)
    started = time.monotonic()
    out = await sending
    waited = time.monotonic() - started
    assert (out.code, out.stage) == (451, "end"), out
    assert out.text.startswith("4.3.0 ") and "rule=pemeriksaan-tidak-selesai" in out.text
    assert waited < 1.0 + 2.0  # answered at the deadline, not when the rendering ends
    # Killed and reaped: no process keeps burning a core for a message already answered.
    await eventually(lambda: not alive(pid))
    assert pid not in gw.gateway.pool.pids
    assert upstream.messages == []
    [rec] = gw.records()
    assert (rec["event"], rec["rule_id"], rec["reason"]) == \
        ("tempfail", "pemeriksaan-tidak-selesai", "inspection timeout")
    # Replaced: the next message gets a new process and goes through.
    out = await send(gw.outbound, small("baru@anm.gov.my"))
    assert out.accepted, out
    assert [m.data.count(b"Message-ID: <baru@anm.gov.my>") for m in upstream.messages] == [1]
    assert pid not in gw.gateway.pool.pids and len(gw.gateway.pool.pids) == 1


async def test_process_killed_from_outside_tempfails_its_message_and_the_pool_recovers(
        start: Callable[..., Any], upstream: FakeUpstream) -> None:
    gw = await start({"inspection_timeout": 20.0})
    sending = asyncio.ensure_future(send(gw.outbound, expensive(4 * MiB, "mati@anm.gov.my")))
    pid = await busy_pid(gw)
    os.kill(pid, signal.SIGKILL)
    out = await sending
    assert (out.code, out.stage) == (451, "end"), out
    assert out.text.startswith("4.3.0 ") and "rule=ralat-dalaman" in out.text
    assert upstream.messages == []  # never relayed unseen
    [rec] = gw.records()
    assert (rec["event"], rec["reason"]) == ("tempfail", "internal error")
    await eventually(lambda: not alive(pid))
    out = await send(gw.outbound, small("pulih@anm.gov.my"))
    assert out.accepted, out
    assert len(upstream.messages) == 1


async def test_full_queue_is_451_4_3_2(start: Callable[..., Any],
                                      upstream: FakeUpstream) -> None:
    gw = await start({"inspection_timeout": 20.0, "inspection_processes": 1,
                      "inspection_queue": 1, "inspection_wait": 20.0})
    pool = gw.gateway.pool
    first = asyncio.ensure_future(send(gw.outbound, expensive(4 * MiB, "q1@anm.gov.my")))
    await busy_pid(gw)
    second = asyncio.ensure_future(send(gw.outbound, medium("q2@anm.gov.my")))
    await eventually(lambda: pool.waiting == 1)
    started = time.monotonic()
    third = await send(gw.outbound, medium("q3@anm.gov.my"))
    assert time.monotonic() - started < 2.0  # refused at once, not after a wait
    assert (third.code, third.stage) == (451, "end"), third
    assert third.text.startswith("4.3.2 ") and "rule=gerbang-sibuk" in third.text
    assert (await first).accepted and (await second).accepted
    assert sorted(m.data.split(b"Message-ID: <")[1][:2] for m in upstream.messages) == \
        [b"q1", b"q2"]
    [rec] = gw.records()
    assert (rec["event"], rec["rule_id"], rec["smtp_code"], rec["enhanced_code"]) == \
        ("tempfail", "gerbang-sibuk", 451, "4.3.2")
    assert rec["reason"].startswith("gateway busy: inspection queue full")


async def test_message_that_does_not_fit_the_memory_budget_waits_then_451_4_3_2(
        start: Callable[..., Any], upstream: FakeUpstream) -> None:
    # Estimated inspection memory: 65 MB for the 8 MB message (several seconds of
    # rendering), 33 MB for a 4 MB one: together more than the 80 MB budget, though a
    # second process is free.
    gw = await start({"inspection_timeout": 30.0, "inspection_processes": 2,
                      "inspection_memory": "80MB", "inspection_wait": 1.0})
    pool = gw.gateway.pool
    heavy = expensive(8 * MiB, "m1@anm.gov.my")
    first = asyncio.ensure_future(send(gw.outbound, heavy))
    await busy_pid(gw)
    started = time.monotonic()
    second = asyncio.ensure_future(send(gw.outbound, expensive(4 * MiB, "m2@anm.gov.my")))
    await eventually(lambda: pool.waiting == 1)
    assert len(pool.busy_pids) == 1
    assert pool.memory_in_use == cost_of(len(heavy)) < 80 * MiB
    out = await second
    waited = time.monotonic() - started
    assert (out.code, out.stage) == (451, "end"), out
    assert out.text.startswith("4.3.2 ") and "rule=gerbang-sibuk" in out.text
    assert 1.0 <= waited < 1.0 + 3.0  # it waited for the budget, then gave up
    assert (await first).accepted
    [rec] = gw.records()
    assert rec["rule_id"] == "gerbang-sibuk"
    assert "no inspection process or memory within 1s" in rec["reason"]
    # Memory freed: the same message now goes through.
    assert (await send(gw.outbound, expensive(4 * MiB, "m3@anm.gov.my"))).accepted
    assert pool.memory_in_use == 0


async def test_small_message_is_not_held_back_by_clients_sending_expensive_mail(
        start: Callable[..., Any], upstream: FakeUpstream) -> None:
    # XFORWARD (from 127.0.0.1, trusted) names each client; all may relay outbound.
    gw = await start({"inspection_timeout": 30.0, "inspection_processes": 2,
                      "inspection_wait": 60.0}, xforward_peers=["127.0.0.1/32"],
                     relay_networks=["127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24"])
    pool = gw.gateway.pool
    stop = asyncio.Event()
    done: list[float] = []  # when each expensive message was answered

    async def heavy(client: str, session: int) -> None:
        for n in range(4):  # bounded; stops early once the small message is through
            if stop.is_set():
                return
            out = await send(gw.outbound, expensive(2 * MiB, f"{client}-{session}-{n}@x"),
                             client=client)
            assert out.accepted, out
            done.append(time.monotonic())

    # Three clients, three sessions each: nine expensive messages on two processes.
    heavies = [asyncio.ensure_future(heavy(f"192.0.2.{c}", s))
               for c in (1, 2, 3) for s in range(3)]
    try:
        await eventually(lambda: pool.waiting >= 6, timeout=20)
        asked = time.monotonic()
        out = await send(gw.outbound, small("kecil@anm.gov.my"), client="198.51.100.9")
        answered = time.monotonic()
        assert out.accepted, out
        # First in first out would have waited for the 6+ queued before it. The round
        # robin lets through at most one message of each client ahead of it (counted,
        # not timed: the machine's speed does not matter).
        overtaking = sum(asked < t < answered for t in done)
        assert overtaking <= 3, overtaking
        assert answered - asked < 20.0  # generous: correctness, not speed
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*heavies), 60)


async def test_reload_gives_the_processes_the_new_policy(
        start: Callable[..., Any], upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = await start({"inspection_processes": 1})
    link = small("l1@anm.gov.my", b'<a href="https://contoh.example/x">x</a>\r\n')
    assert (await send(gw.outbound, link)).accepted
    [old] = gw.gateway.pool.pids
    (tmp_path / "rules" / "10-test.yaml").write_text(RULES_V2)
    assert await gw.gateway.reload(tmp_path / "gateway.yaml")
    await eventually(lambda: not alive(old))  # the idle process of the old rules is gone
    out = await send(gw.outbound, link.replace(b"l1@", b"l2@"))
    assert (out.code, out.stage) == (550, "end") and "kandungan-disekat" in out.text
    assert old not in gw.gateway.pool.pids


async def test_sigterm_during_an_inspection_drains_and_leaves_no_process(
        tmp_path: Path) -> None:
    up = BigScriptedUpstream()
    await up.start()
    config = write_config(tmp_path, upstream=up.url, rules=RULES,
                          limits={"inspection_timeout": 20.0, "upstream_timeout": 5.0})
    served, addr = await serve(config, tmp_path)
    try:
        sending = asyncio.ensure_future(send(addr, expensive(4 * MiB, "akhir@anm.gov.my")))
        # The gateway forks its inspection process when the message has arrived.
        async with asyncio.timeout(20):
            while not children(served.proc.pid):
                await asyncio.sleep(0.01)
        pool = children(served.proc.pid)
        mark = len(served.lines)
        served.proc.send_signal(signal.SIGTERM)
        await served.wait_for_line(r"stopping: draining", mark)
        assert not sending.done()  # still in inspection when the drain began
        out = await asyncio.wait_for(sending, 30)
        assert out.accepted, out  # finished, relayed and answered
        assert await asyncio.wait_for(served.proc.wait(), 30) == 0
        assert not any(alive(pid) for pid in pool), "an inspection process was left behind"
        assert up.counts() == {"<akhir@anm.gov.my>": 1}
    finally:
        await finish(served)
        await up.stop()


async def test_spooled_message_with_a_changed_header_is_relayed_head_then_spool(
        start: Callable[..., Any], upstream: FakeUpstream, tmp_path: Path) -> None:
    # The forged field claims the gateway's own authserv-id (gw.test): it is removed
    # (RFC 8601 5), so the relayed header block differs from the received one.
    forged = b"Authentication-Results: gw.test; spf=pass smtp.mailfrom=anm.gov.my\r\n"
    msg = expensive(3 * MiB, "besar@anm.gov.my", head=forged)
    spool = tmp_path / "spool"
    gw = await start({"inspection_timeout": 20.0, "spool_threshold": "64KB",
                      "spool_dir": str(spool)})
    sending = asyncio.ensure_future(send(gw.outbound, msg))
    await busy_pid(gw)
    # Spooled: the process reads the file (beside it the file of decoded parts,
    # limits.decode_on_arrival).
    assert [p.suffix for p in spool.iterdir()].count(".msg") == 1
    out = await sending
    assert out.accepted, out
    [got] = upstream.messages
    assert got.data == msg[len(forged):]
    assert list(spool.iterdir()) == []  # the spool file is gone


async def test_gateway_killed_outright_takes_its_inspection_processes_with_it(
        tmp_path: Path) -> None:
    up = BigScriptedUpstream()
    await up.start()
    config = write_config(tmp_path, upstream=up.url, rules=RULES,
                          limits={"inspection_timeout": 20.0})
    served, addr = await serve(config, tmp_path)
    try:
        sending = asyncio.ensure_future(send(addr, expensive(8 * MiB, "yatim@anm.gov.my")))
        async with asyncio.timeout(20):
            while not children(served.proc.pid):
                await asyncio.sleep(0.01)
        pool = children(served.proc.pid)
        served.proc.kill()  # no drain, no close: the kernel must end them (PDEATHSIG)
        await asyncio.wait_for(served.proc.wait(), 10)
        await eventually(lambda: not any(running(pid) for pid in pool))
        # The client sees the connection drop, as it would for any crash: no reply.
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(sending, 30)
    finally:
        await finish(served)
        await up.stop()
    assert up.kept == []


async def test_a_small_message_does_not_wait_for_an_expensive_inspection(
        start: Callable[..., Any], upstream: FakeUpstream) -> None:
    # One process, inspecting an 8 MB HTML message for seconds; a message above the
    # lane's size waits behind it, a small one goes to the lane's process at once.
    gw = await start({"inspection_timeout": 30.0, "inspection_processes": 1,
                      "inspection_wait": 25.0})
    pool = gw.gateway.pool
    first = asyncio.ensure_future(send(gw.outbound, expensive(8 * MiB, "l1@anm.gov.my")))
    expensive_pid = await busy_pid(gw)
    waiting = asyncio.ensure_future(send(gw.outbound, medium("l2@anm.gov.my")))
    await eventually(lambda: pool.waiting == 1)
    out = await send(gw.outbound, small("l3@anm.gov.my"))
    assert out.accepted, out
    # The lane's process is kept for the next small message.
    assert len(pool.pids) == 2 and expensive_pid in pool.pids
    assert (await first).accepted and (await waiting).accepted
    # Relayed first, though the same client's larger message was queued before it
    # (first in first out would have put it after that one).
    order = [m.data.split(b"Message-ID: <")[1][:2] for m in upstream.messages]
    assert order[0] == b"l3" and sorted(order) == [b"l1", b"l2", b"l3"]
