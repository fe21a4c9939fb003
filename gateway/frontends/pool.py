"""Inspection in worker processes that can be stopped: a bounded pool, fair queues, a memory budget.

Every message is inspected in a process of the gateway's pool, never on the event
loop nor in one of its threads: processes use every core, and one that runs past
`limits.inspection_timeout` is killed (SIGKILL) with its message and replaced,
where a thread could only be abandoned and would keep burning its core.

Processes are forked from the gateway when a message needs one (at most
`processes`), so each starts with the gateway's modules and the policy in memory,
and is then kept for the next messages (MAX_JOBS, then replaced: a long-lived heap
only grows). A process is forked with the policy of the transaction whose message
it inspects; after a reload (SIGHUP) idle processes of the old policy are stopped
and new messages get processes forked with the new one, so the new rules apply to
every message whose transaction started after the reload.

Scheduling. Waiting messages are queued per client address (the envelope's
`client_ip`: the real client behind XFORWARD or PROXY). A free process takes the
first message of the client with the fewest messages in inspection and, among
equals, the one served least recently (round robin; a client not served yet comes
first): a client that sends expensive mail gets its share of the processes, and a
client with nothing in inspection does not wait behind its queue. At
most `queue` messages wait in all; a message that finds the queue full pushes out
the newest message of the client with the most waiting, unless that client has
no more waiting than its own, and then it is itself refused. A message that
cannot start within `limits.inspection_wait` is refused too. Refused here means
`Busy`: the front end answers 451 4.3.2, and the client retries later.

Small messages. When every process is in use, a message of at most SMALL_MESSAGE
bytes may go to one more process, kept for small messages only (the lane), so that
it waits for no expensive inspection: its inspection takes milliseconds of CPU and
the kernel shares the cores. The lane serves one message at a time, in the same fair
order, within the same memory budget; a large message never goes there.

Memory. A message's inspection is estimated to cost COST_FACTOR times its size
plus COST_BASE; the inspections in flight may cost `memory` together. The message
whose turn it is waits until its cost fits, and holds back those behind it (a
large message is never passed over for ever); one that costs more than the whole
budget runs alone. The estimate does not see what an archive expands to: that is
bounded by `limits.max_expansion_bytes`.

Reading on arrival (`read_on_arrival`, config `limits.decode_on_arrival`). A process
can also be lent to a spooled message while it still arrives: it follows the spool
file as the front end writes it (looking again every READ_POLL seconds, and at once
when the gateway says the message is whole), decodes its base64 parts (nested ones
too) into a file beside it and searches its plain-text bodies
(gateway.message.prescan), so that receiving, decoding and the front end's work run on
different cores and the inspection after the final dot has less left to do. A message
in which the reading finds nothing to decode (not a multipart, or its structure given
up with no base64 part found) has the process given back as soon as that is known.
Only a process to spare is lent: none while a message waits for inspection, at most
all but one of the processes, READ_COST of the memory budget. A message that then
finds every process in use takes a reading one back (the reading stops, its message is
decoded after its dot as without). A reading that does not finish within READ_FINISH
(or `inspection_timeout` if shorter) once the message is whole, or does not stop
within STOP_GRACE, is killed with its process; its message is inspected all the same,
only without the aid.

The message is not copied to the process when it is large: a spooled message is
read by the process from the spool file (mapped), a message in memory (at most
`limits.spool_threshold`) goes over the process's socket. The process sends back
`pipeline.Inspected`: verdict, reply, log facts and the relayed header block.

No process outlives the gateway: each asks the kernel to kill it when the gateway
dies (PR_SET_PDEATHSIG), exits when its socket closes, ignores SIGTERM, SIGINT
and SIGHUP (systemd signals the whole cgroup; the gateway drains, then closes its
processes itself) and limits its own run time with an alarm; the pool reaps every
process it started, and `close` kills those that do not exit in time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import gc
import itertools
import logging
import math
import mmap
import os
import pickle
import select
import signal
import socket
import time
import traceback
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import pipeline
from gateway.auth import AuthResults
from gateway.config import GatewayConfig
from gateway.envelope import Envelope
from gateway.frontends.datastream import write_all
from gateway.message.prescan import Known, Prescan, Prescanned
from gateway.pipeline import Inspected
from gateway.policy_state import PolicyState

log = logging.getLogger("gateway.pool")

# Estimated peak memory of one inspection: bench/inspect.py measures the Python
# allocations of inspecting a message at 7.6x its size at 1 MB and 7.7x at 25 MB
# (the raw copy, the parse, decoded parts and folded text for the marking scan),
# and the process's RSS growing 6.8x the size at 25 MB; 8x rounds that up. The
# base covers the small fixed part (15x of a 2 KB message is 30 KB).
COST_FACTOR = 8
COST_BASE = 1024 * 1024
# DKIM signing (gateway.transforms.dkim_sign) on top, while the view is still held:
# the signed copy of the message (1x) and dkimpy's line list and canonicalized copies
# (tracemalloc: 3.6x at 26 MB); 5x rounds that up.
SIGN_COST_FACTOR = 5
# A message of at most this many bytes may be inspected in the small-message lane: one
# process beyond `processes`, for small messages only, used when every other process
# is in use (module docstring).
SMALL_MESSAGE = 256 * 1024
# Messages one process inspects before it is replaced.
MAX_JOBS = 1000
# After a message at least this large, the process collects and gives its free
# memory back to the system before the next one (not worth it for small ones).
TRIM_AFTER = 1024 * 1024
# Seconds a process told to exit (socket closed) has before it is killed, and the
# interval at which the pool looks whether a process has ended.
EXIT_GRACE = 2.0
REAP_POLL = 0.01
# After SIGKILL, seconds to wait for the kernel to end the process before giving up
# on reaping it (a process stuck in the kernel; never seen).
KILL_WAIT = 5.0
# A process's own alarm: seconds past the inspection timeout after which it ends
# itself, in case its gateway could not kill it.
ALARM_GRACE = 5.0

# Reading a spooled message while it arrives (`read_on_arrival`): the memory budget a
# reading process holds (a piece of the spool file, the prescan's bounded buffers,
# gateway.message.prescan), the seconds it waits before looking again at a spool file
# that had nothing new, and the seconds a process told to stop reading has to say so.
READ_COST = 4 * 1024 * 1024
READ_POLL = 0.005
STOP_GRACE = 5.0
# Seconds a reading has, at most, to finish once the message is whole (the caller's
# timeout if shorter). Reading what is left takes milliseconds; this bound keeps a
# stuck process from taking much of the time the session-timeout check leaves for the
# inspection and relay after the dot (gateway.config).
READ_FINISH = 10.0

_LENGTH = 8  # bytes of the big-endian length before each pickled frame
_READ_SIZE = 1024 * 1024
_PR_SET_PDEATHSIG = 1


def cost_of(size: int, *, signs: bool = False) -> int:
    """Estimated peak memory of inspecting a message of `size` bytes; `signs`: it may
    be DKIM-signed after (outbound under `dkim_sign:`), SIGN_COST_FACTOR more."""
    return (COST_FACTOR + (SIGN_COST_FACTOR if signs else 0)) * size + COST_BASE


def physical_memory() -> int:
    """The memory the gateway may use: the machine's, or its cgroup's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                limit = (Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "memory.max")
                value = limit.read_text().strip()
                if value.isdigit():
                    total = min(total, int(value))
    return total


@dataclass(frozen=True)
class PoolSettings:
    """One gateway process's pool: its share of the config's processes, queue, memory."""

    processes: int
    queue: int
    memory: int

    @classmethod
    def of(cls, config: GatewayConfig) -> PoolSettings:
        limits = config.limits
        # Each gateway worker (`workers`) has a pool of its own: the config's figures
        # are for the whole gateway, so each takes its share.
        share = config.worker_count
        processes = (len(os.sched_getaffinity(0)) if limits.inspection_processes == "auto"
                     else limits.inspection_processes)
        memory = (physical_memory() // 4 if limits.inspection_memory == "auto"
                  else limits.inspection_memory)
        return cls(processes=max(1, math.ceil(processes / share)),
                   queue=max(1, math.ceil(limits.inspection_queue / share)),
                   memory=max(1, memory // share))


@dataclass(frozen=True)
class SpoolFile:
    """A spooled message, read by the inspection process from the file itself; and
    what was read of it as it arrived, its decoded parts in `decoded_path`
    (gateway.message.prescan)."""

    path: str
    size: int
    prescanned: Prescanned | None = None
    decoded_path: str | None = None


Source = bytes | SpoolFile


@dataclass(frozen=True)
class Busy:
    """No process or memory for the message in time, or the queue was full (451 4.3.2)."""

    reason: str


@dataclass(frozen=True)
class TimedOut:
    """The inspection ran past the timeout; its process was killed (451 4.3.0)."""

    seconds: float


@dataclass(frozen=True)
class Failed:
    """The inspection raised, or its process ended (451 4.3.0): `detail` for the journal."""

    detail: str


Outcome = Inspected | Busy | TimedOut | Failed


class ArrivalLease:
    """A process of the pool reading one spooled message while it arrives
    (`InspectionPool.read_on_arrival`): `finish` once the message is whole, `stop`
    when it is not wanted any more (the transaction ended, the message was dropped)."""

    def __init__(self, pool: InspectionPool, worker: _Worker, ident: int) -> None:
        self._pool = pool
        self.worker = worker
        self.ident = ident
        self.state = "reading"  # reading, finishing, stopping, done
        self.answer: asyncio.Future[Prescanned | None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    async def finish(self, size: int, timeout: float) -> Prescanned | None:
        """What the process read of the message's `size` bytes (all written to the
        spool file by now); None when it read nothing usable, could not finish within
        `timeout` seconds, at most READ_FINISH (it is then killed), or was stopped for
        an inspection."""
        return await self._pool._finish(self, size, timeout)

    def stop(self) -> None:
        """Not wanted any more: the process goes back to the pool. Idempotent."""
        self._pool._stop(self)


class _Job:
    """One message: waiting in its client's queue, then in a process."""

    def __init__(self, ident: int, key: str, policy: PolicyState, frame: bytes, cost: int,
                 future: asyncio.Future[Outcome], *, small: bool = False) -> None:
        self.ident = ident
        self.key = key
        self.small = small  # may take the small-message lane
        self.policy = policy
        self.frame = frame
        self.cost = cost
        self.future = future
        self.queued = False
        self.worker: _Worker | None = None
        self.held = 0  # memory budget held while in a process
        self.timer: asyncio.TimerHandle | None = None  # waiting, then running deadline


class _Worker:
    """The gateway's side of one inspection process."""

    def __init__(self, pid: int, sock: socket.socket, policy: PolicyState, *,
                 lane: bool = False) -> None:
        self.pid = pid
        self.lane = lane  # the small-message lane's process
        self.sock = sock
        self.policy = policy
        self.job: _Job | None = None
        self.lease: ArrivalLease | None = None  # reading a message while it arrives
        self.buffer = bytearray()
        self.answered = 0
        self.open = True  # socket open: the process can be given messages
        self.ending = ""  # why the pool ended it ("" while it is in use)
        self.sending: asyncio.Task[None] | None = None


class InspectionPool:
    """The inspection processes of one gateway process, their queues and memory budget."""

    def __init__(self, settings: PoolSettings, policy: PolicyState) -> None:
        self.settings = settings
        self.policy = policy  # the policy in force: processes of another are retired
        self._workers: dict[int, _Worker] = {}  # pid -> process, until reaped
        # client -> its waiting messages; dict order is the round-robin order.
        self._queues: dict[str, collections.deque[_Job]] = {}
        self._running: collections.Counter[str] = collections.Counter()
        # client -> turn number of its last message started, while it has any waiting
        # or in inspection (a client seen again after that counts as not served yet).
        self._served: dict[str, int] = {}
        self._turns = itertools.count(1)
        self._waiting = 0
        self._memory = 0
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._spawn_failed = False

    # -- what the gateway and the tests read ------------------------------------------
    @property
    def pids(self) -> list[int]:
        """Every process the pool has started and not yet reaped."""
        return list(self._workers)

    @property
    def busy_pids(self) -> list[int]:
        return [w.pid for w in self._workers.values() if w.job is not None]

    @property
    def reading_pids(self) -> list[int]:
        """Processes reading a message while it arrives (`read_on_arrival`)."""
        return [w.pid for w in self._workers.values() if w.lease is not None]

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def memory_in_use(self) -> int:
        return self._memory

    # -- inspection --------------------------------------------------------------------
    async def inspect(self, policy: PolicyState, source: Source, envelope: Envelope,
                      ref: str, auth: AuthResults | None = None) -> Outcome:
        """Inspect one message in a process under `policy`; never raises for the message.

        `auth`: sender authentication already looked up (`pipeline.inspect`)."""
        if self._closed:
            return Busy("the gateway is stopping")
        loop = asyncio.get_running_loop()
        size = len(source) if isinstance(source, bytes) else source.size
        limits = policy.config.limits
        ident = next(self._ids)
        frame = _frame(("inspect", ident, envelope, ref, source, auth,
                        limits.inspection_timeout + ALARM_GRACE))
        signs = policy.config.dkim_sign is not None and envelope.direction == "outbound"
        job = _Job(ident, envelope.client_ip, policy, frame, cost_of(size, signs=signs),
                   loop.create_future(), small=size <= SMALL_MESSAGE)
        if not self._enqueue(job):
            return Busy(f"inspection queue full ({self.settings.queue} waiting)")
        wait = limits.waiting_time
        job.timer = loop.call_later(wait, self._wait_over, job, wait)
        self._dispatch()
        try:
            return await job.future
        except asyncio.CancelledError:
            # The transaction is gone (client hung up, drain deadline): free its turn,
            # and its process, which would otherwise work for nobody.
            self._give_up(job)
            raise

    def _enqueue(self, job: _Job) -> bool:
        if self._waiting >= self.settings.queue:
            own = len(self._queues.get(job.key, ()))
            heaviest = max(self._queues, key=lambda k: len(self._queues[k]))
            if len(self._queues[heaviest]) <= own:
                return False
            pushed = self._queues[heaviest][-1]
            self._unqueue(pushed)
            self._resolve(pushed, Busy(f"inspection queue full ({self.settings.queue} "
                                       "waiting): gave way to another client's message"))
        self._queues.setdefault(job.key, collections.deque()).append(job)
        self._waiting += 1
        job.queued = True
        return True

    def _unqueue(self, job: _Job) -> None:
        if not job.queued:
            return
        job.queued = False
        queue = self._queues[job.key]
        queue.remove(job)
        if not queue:
            del self._queues[job.key]
            self._forget(job.key)
        self._waiting -= 1

    def _forget(self, key: str) -> None:
        if key not in self._queues and self._running[key] <= 0:
            self._running.pop(key, None)
            self._served.pop(key, None)

    def _wait_over(self, job: _Job, wait: float) -> None:
        if job.queued:
            self._unqueue(job)
            self._resolve(job, Busy(f"no inspection process or memory within {wait:g}s"))

    def _give_up(self, job: _Job) -> None:
        if job.queued:
            self._unqueue(job)
        elif job.worker is not None and job.worker.job is job:
            self._end(job.worker, "its transaction ended", kill=True)
        self._resolve(job, Failed("abandoned"))
        self._dispatch()

    def _resolve(self, job: _Job, outcome: Outcome) -> None:
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        worker = job.worker
        if worker is not None and worker.job is job:
            worker.job = None
        if job.held:
            self._memory -= job.held
            job.held = 0
            self._running[job.key] -= 1
            self._forget(job.key)
        job.frame = b""
        if not job.future.done():
            job.future.set_result(outcome)

    # -- reading a message while it arrives ----------------------------------------------
    def read_on_arrival(self, spool_path: str, decoded_path: str) -> ArrivalLease | None:
        """Have a process read the spool file `spool_path` while the front end writes
        it, decoding its base64 parts into `decoded_path` (both made by the
        front end, which deletes them; gateway.message.prescan). Only with a process to
        spare: nothing waits for inspection, one process at least stays for the
        inspections (with more than one), and READ_COST fits the memory budget; None
        otherwise. An inspection that finds no process later takes a reading one back
        (the reading is stopped, its message decoded after the final dot as without)."""
        if self._closed or self._queues or self._memory + READ_COST > self.settings.memory:
            return None
        readers = sum(1 for w in self._workers.values() if w.lease is not None)
        if readers >= max(1, self.settings.processes - 1):
            return None
        worker = next((w for w in self._workers.values() if self._idle(w) and not w.lane),
                      None)
        if worker is None:
            if self._regular() >= self.settings.processes:
                return None
            worker = self._spawn(self.policy)
            if worker is None:
                return None
        limits = self.policy.config.limits
        # The process's own alarm: the whole DATA phase, then the finishing read.
        alarm = limits.data_timeout + limits.inspection_timeout + ALARM_GRACE
        bound = self.policy.max_message_size
        lease = ArrivalLease(self, worker, next(self._ids))
        if not self._post(worker, ("read", lease.ident, spool_path, decoded_path, alarm,
                                   bound)):
            return None
        worker.lease = lease
        self._memory += READ_COST
        return lease

    async def _finish(self, lease: ArrivalLease, size: int, timeout: float
                      ) -> Prescanned | None:
        if lease.state != "reading":
            return None
        worker = lease.worker
        lease.answer = asyncio.get_running_loop().create_future()
        if not self._post(worker, ("finish", size)):
            return None
        lease.state = "finishing"
        # A timer, not a wait_for: a transaction that ends meanwhile (its coroutine
        # cancelled) leaves the answer to free the process, and the deadline to kill it.
        timeout = min(timeout, READ_FINISH)
        lease.timer = asyncio.get_running_loop().call_later(
            timeout, self._finish_over, lease, timeout)
        return await asyncio.shield(lease.answer)

    def _finish_over(self, lease: ArrivalLease, timeout: float) -> None:
        if lease.state == "finishing":
            log.warning("inspection process %d killed: it did not finish reading a "
                        "message within %gs", lease.worker.pid, timeout)
            self._end(lease.worker, "reading timeout", kill=True)
            self._dispatch()

    def _stop(self, lease: ArrivalLease) -> None:
        if lease.state != "reading":
            return  # finishing: its answer frees the process; stopping or done already
        lease.state = "stopping"
        if self._post(lease.worker, ("stop",)):
            lease.timer = asyncio.get_running_loop().call_later(
                STOP_GRACE, self._stop_over, lease)

    def _stop_over(self, lease: ArrivalLease) -> None:
        if lease.state == "stopping":
            log.warning("inspection process %d killed: it did not stop reading within "
                        "%gs", lease.worker.pid, STOP_GRACE)
            self._end(lease.worker, "reading did not stop", kill=True)
            self._dispatch()

    def _release(self, lease: ArrivalLease, read: Prescanned | None) -> None:
        if lease.state == "done":
            return
        lease.state = "done"
        if lease.timer is not None:
            lease.timer.cancel()
            lease.timer = None
        if lease.worker.lease is lease:
            lease.worker.lease = None
        self._memory -= READ_COST
        if lease.answer is not None and not lease.answer.done():
            lease.answer.set_result(read)

    def _post(self, worker: _Worker, request: object) -> bool:
        """A small request to an idle or reading process, sent at once: its socket
        buffer is empty (the process has read everything before). A send that does not
        take it whole means a process that does not read: it is ended (False)."""
        frame = _frame(request)
        try:
            # A finished send whose done callback has not run yet is no obstacle.
            busy = worker.sending is not None and not worker.sending.done()
            sent = -1 if busy else worker.sock.send(frame)
        except OSError:
            sent = -1
        if sent != len(frame):
            self._end(worker, "it did not take a request", kill=True)
            self._dispatch()
            return False
        return True

    def _take_back(self) -> None:
        """A message waits for a process and all are in use: stop the most recent
        reading (one at a time; its answer frees the process for the message)."""
        leases = [w.lease for w in self._workers.values() if w.lease is not None]
        if not leases or any(lease.state == "stopping" for lease in leases):
            return
        reading = [lease for lease in leases if lease.state == "reading"]
        if reading:
            lease = max(reading, key=lambda lease: lease.ident)
            log.debug("inspection process %d stops reading a message on arrival: an "
                      "inspection needs it", lease.worker.pid)
            self._stop(lease)

    @staticmethod
    def _idle(worker: _Worker) -> bool:
        return worker.open and worker.job is None and worker.lease is None

    def _regular(self) -> int:
        """Processes counted against `processes` (the lane's is not), until reaped."""
        return sum(1 for w in self._workers.values() if not w.lane)

    # -- scheduling ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        # Each pass starts one message or returns, so this ends within `queue` passes.
        while self._queues and not self._closed:
            key = min(self._queues, key=lambda k: (self._running[k], self._served.get(k, 0)))
            queue = self._queues[key]
            job = queue[0]
            cost = min(job.cost, self.settings.memory)
            if self._memory + cost > self.settings.memory:
                # A reading holds memory only lent: the message takes it back.
                self._take_back()
                return  # its turn is kept until memory is freed
            worker = self._worker_for(job.policy)
            if worker is None:
                self._dispatch_small()
                if job.queued:  # not taken by the lane: a reading gives way to it
                    self._take_back()
                return
            self._begin(key, worker, cost)

    def _dispatch_small(self) -> None:
        """Every process is in use: the first small message in the fair order, if its
        memory fits, goes to the lane's process when that is free."""
        fair = sorted(self._queues, key=lambda k: (self._running[k], self._served.get(k, 0)))
        key = next((k for k in fair if self._queues[k][0].small), None)
        if key is None:
            return
        job = self._queues[key][0]
        cost = min(job.cost, self.settings.memory)
        if self._memory + cost > self.settings.memory:
            return
        worker = self._worker_for(job.policy, lane=True)
        if worker is not None:
            self._begin(key, worker, cost)

    def _begin(self, key: str, worker: _Worker, cost: int) -> None:
        """The first message of client `key` leaves its queue for `worker`."""
        queue = self._queues[key]
        job = queue.popleft()
        job.queued = False
        if not queue:
            del self._queues[key]
        self._waiting -= 1
        self._served[key] = next(self._turns)
        self._start(job, worker, cost)

    def _worker_for(self, policy: PolicyState, *, lane: bool = False) -> _Worker | None:
        """An idle process of `policy` among the regular ones (`lane`: the lane's),
        started if there is room; None if all are in use."""
        idle = [w for w in self._workers.values() if self._idle(w) and w.lane == lane]
        for worker in idle:
            if worker.policy is policy:
                return worker
        room = self.settings.processes - self._regular() if not lane else \
            1 - sum(1 for w in self._workers.values() if w.lane)
        if room > 0:
            return self._spawn(policy, lane=lane)
        if idle:
            # Full, and an idle process has another policy: it makes room.
            self._end(idle[0], "its policy was replaced")
        return None

    def _start(self, job: _Job, worker: _Worker, cost: int) -> None:
        loop = asyncio.get_running_loop()
        if job.timer is not None:
            job.timer.cancel()
        job.worker = worker
        worker.job = job
        job.held = cost
        self._memory += cost
        self._running[job.key] += 1
        timeout = job.policy.config.limits.inspection_timeout
        job.timer = loop.call_later(timeout, self._run_over, job, timeout)
        frame, job.frame = job.frame, b""
        worker.sending = self._background(self._send(worker, frame))
        worker.sending.add_done_callback(lambda _task: self._sent(worker))

    async def _send(self, worker: _Worker, frame: bytes) -> None:
        try:
            await asyncio.get_running_loop().sock_sendall(worker.sock, frame)
        except OSError:
            self._lost(worker)  # the process is gone

    def _sent(self, worker: _Worker) -> None:
        # A done callback, not a `finally`: it runs even for a task cancelled before
        # it started, and after asyncio stopped watching the socket for the send.
        worker.sending = None
        if not worker.open:
            worker.sock.close()

    def _run_over(self, job: _Job, timeout: float) -> None:
        worker = job.worker
        if worker is None or worker.job is not job:
            return
        log.warning("inspection process %d killed: its message ran past the %gs "
                    "inspection timeout", worker.pid, timeout)
        self._end(worker, "inspection timeout", kill=True)
        self._resolve(job, TimedOut(timeout))
        self._dispatch()

    # -- processes -----------------------------------------------------------------------
    def _spawn(self, policy: PolicyState, *, lane: bool = False) -> _Worker | None:
        loop = asyncio.get_running_loop()
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors (EMFILE, ENFILE)
            if not self._spawn_failed:
                log.error("cannot start an inspection process: %s", exc)
            self._spawn_failed = True
            return None
        gateway_pid = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            ours.close()
            theirs.close()
            if not self._spawn_failed:
                log.error("cannot start an inspection process: %s", exc)
            self._spawn_failed = True
            return None
        if pid == 0:  # the new process: never returns into the gateway's code
            code = 1
            try:
                _process_main(theirs.fileno(), policy, gateway_pid)
                code = 0
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            finally:
                os._exit(code)
        self._spawn_failed = False
        theirs.close()
        ours.setblocking(False)
        worker = _Worker(pid, ours, policy, lane=lane)
        self._workers[pid] = worker
        loop.add_reader(ours.fileno(), self._readable, worker)
        return worker

    def _readable(self, worker: _Worker) -> None:
        try:
            chunk = worker.sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._lost(worker)
            return
        worker.buffer += chunk
        # Bounded by the buffer: each pass consumes one whole frame or stops.
        while len(worker.buffer) >= _LENGTH:
            length = int.from_bytes(worker.buffer[:_LENGTH], "big")
            if len(worker.buffer) < _LENGTH + length:
                return
            payload = bytes(worker.buffer[_LENGTH:_LENGTH + length])
            del worker.buffer[:_LENGTH + length]
            self._answered(worker, payload)

    def _answered(self, worker: _Worker, payload: bytes) -> None:
        try:
            kind, ident, body = pickle.loads(payload)
        except Exception:
            log.exception("inspection process %d sent an unreadable answer", worker.pid)
            job = worker.job
            self._end(worker, "unreadable answer", kill=True)
            if job is not None:
                self._resolve(job, Failed("unreadable answer from the inspection process"))
            self._dispatch()
            return
        job = worker.job
        lease = worker.lease
        if kind in ("read", "stopped", "fruitless"):
            if lease is None or lease.ident != ident:
                return
            worker.answered += 1
            self._release(lease, body if kind == "read" else None)
        elif job is None or job.ident != ident:
            return
        else:
            worker.answered += 1
            self._resolve(job, body if kind == "ok" else Failed(str(body)))
        if worker.answered >= MAX_JOBS:
            self._end(worker, f"it inspected {MAX_JOBS} messages")
        elif worker.policy is not self.policy:
            self._end(worker, "its policy was replaced")
        self._dispatch()

    def _lost(self, worker: _Worker) -> None:
        """The process closed its socket: it ended (killed from outside, crashed)."""
        if not worker.open:
            return
        job = worker.job
        self._end(worker, "")
        if job is not None:
            self._resolve(job, Failed(f"inspection process {worker.pid} ended during the "
                                      "inspection"))
        self._dispatch()

    def _end(self, worker: _Worker, why: str, *, kill: bool = False) -> None:
        """Stop giving the process messages, close its socket (it exits), reap it."""
        if not worker.open:
            return
        worker.open = False
        worker.ending = why
        if worker.lease is not None:
            self._release(worker.lease, None)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(worker.sock.fileno())
        if worker.sending is None:
            worker.sock.close()
        elif worker.sending is not asyncio.current_task():
            # asyncio still watches the socket for the message being sent: closing it
            # now could leave that watch on a reused descriptor number. The sending
            # task's done callback closes it.
            worker.sending.cancel()
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
        self._background(self._reap(worker))

    async def _reap(self, worker: _Worker) -> None:
        deadline = time.monotonic() + EXIT_GRACE
        killed = False
        status: int | None = None
        for _ in range(int((EXIT_GRACE + KILL_WAIT) / REAP_POLL) + 1):
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                status = None
                break
            if pid != 0:
                break
            status = None
            if not killed and time.monotonic() >= deadline:
                log.warning("inspection process %d did not exit: killing it", worker.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                killed = True
            await asyncio.sleep(REAP_POLL)
        else:
            log.error("inspection process %d could not be reaped", worker.pid)
        self._workers.pop(worker.pid, None)
        if status is not None and not worker.ending:
            log.warning("inspection process %d ended unexpectedly (%s)", worker.pid,
                        _describe(status))
        self._dispatch()

    def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the service's calls -------------------------------------------------------------
    def reconfigure(self, settings: PoolSettings, policy: PolicyState) -> None:
        """A reload: new sizes, and idle processes of the old policy retired now."""
        self.settings = settings
        self.policy = policy
        for worker in list(self._workers.values()):
            if self._idle(worker) and worker.policy is not policy:
                self._end(worker, "its policy was replaced")
        self._dispatch()

    async def close(self) -> None:
        """Refuse what waits, end every process (killing those in inspection), reap all.

        The service calls this after its drain, so normally nothing is in inspection.
        """
        self._closed = True
        for queue in list(self._queues.values()):
            for job in list(queue):
                self._unqueue(job)
                self._resolve(job, Busy("the gateway is stopping"))
        for worker in list(self._workers.values()):
            running = worker.job
            self._end(worker, "the gateway is stopping", kill=running is not None)
            if running is not None:
                self._resolve(running, Failed("the gateway stopped during the inspection"))
        # Each reap ends within EXIT_GRACE + KILL_WAIT; a reap starts no other task
        # once the pool is closed, so two rounds see every one.
        for _ in range(2):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _frame(value: object) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(payload).to_bytes(_LENGTH, "big") + payload


# -- the inspection process ----------------------------------------------------------------

def _process_main(fd: int, policy: PolicyState, gateway_pid: int) -> None:
    """Body of an inspection process: read a request, carry it out, answer; until EOF.

    Requests: ("inspect", ...) a message, answered ("ok" | "error", ident, ...);
    ("read", ...) a spool file while it grows, answered after the gateway's "finish"
    ("read", ident, Prescanned | None) or "stop" ("stopped", ident, None), or unasked
    ("fruitless", ident, None) when reading on is of no use. After that last answer a
    "finish" or "stop" the gateway sent meanwhile arrives here, outside a reading, and
    is ignored (at most one a reading)."""
    _detach(fd, gateway_pid)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    sock.setblocking(True)
    # Bounded: the gateway replaces a process after MAX_JOBS answers, and each may
    # be followed by one ignored request (a reading that ended fruitless).
    for _ in range(2 * MAX_JOBS + 2):
        frame = _recv_frame(sock)
        if frame is None:
            return
        request = pickle.loads(frame)
        if request[0] == "read":
            _, ident, spool_path, decoded_path, alarm, bound = request
            signal.setitimer(signal.ITIMER_REAL, alarm)
            answered = _read_on_arrival(sock, spool_path, decoded_path, alarm, bound)
            signal.setitimer(signal.ITIMER_REAL, 0)
            if answered is None:
                return  # the gateway closed the socket
            sock.sendall(_frame((answered[0], ident, answered[1])))
            del answered
            continue
        if request[0] != "inspect":
            continue  # nothing else is asked outside a reading
        _, ident, envelope, ref, source, auth, alarm = request
        large = (len(source) if isinstance(source, bytes) else source.size) >= TRIM_AFTER
        signal.setitimer(signal.ITIMER_REAL, alarm)
        answer = _inspect(policy, envelope, ref, source, auth)
        signal.setitimer(signal.ITIMER_REAL, 0)
        sock.sendall(_frame((answer[0], ident, answer[1])))
        del answer, frame, source
        if large:
            # Give the message's memory back before waiting for the next one.
            gc.collect()
            _trim()


class _SpoolFollower:
    """A spool file read as it grows into a `Prescan`, whose decoded bytes go to the
    front end's file a megabyte at a time. Anything that fails (a file that cannot be
    read, a full disk) makes it `usable` no more: its reading is then not used."""

    def __init__(self, spool_path: str, decoded_path: str) -> None:
        self._fd = self._out = -1
        with contextlib.suppress(OSError):
            self._fd = os.open(spool_path, os.O_RDONLY | os.O_CLOEXEC)
            self._out = os.open(decoded_path, os.O_WRONLY | os.O_CLOEXEC)
        self.usable = self._out >= 0
        self.offset = 0
        self._decoded = bytearray()
        self._scan = Prescan(self._write)

    def step(self, upto: int | None) -> bool:
        """Read the next piece, up to `upto` bytes of the message (None: as far as the
        file has grown); False when there was nothing to read or it failed."""
        if not self.usable:
            return False
        try:
            end = os.fstat(self._fd).st_size if upto is None else upto
            if end <= self.offset:
                return False
            piece = os.pread(self._fd, min(_READ_SIZE, end - self.offset), self.offset)
        except OSError:
            piece = b""
        if not piece:
            self.usable = False  # shorter than the gateway says, or unreadable
            return False
        self.offset += len(piece)
        self._scan.feed(piece)
        return True

    @property
    def fruitless(self) -> bool:
        """Reading on could bring nothing the inspection would use (Prescan.fruitless)."""
        return not self.usable or self._scan.fruitless

    def result(self, size: int) -> Prescanned | None:
        """What was read, if it is all of the message's `size` bytes and all written."""
        self._flush()
        return self._scan.result() if self.usable and self.offset == size else None

    def close(self) -> None:
        for opened in (self._fd, self._out):
            if opened >= 0:
                os.close(opened)

    def _write(self, data: bytes) -> None:
        if self.usable:
            self._decoded += data
            if len(self._decoded) >= _READ_SIZE:
                self._flush()

    def _flush(self) -> None:
        if self.usable and self._decoded:
            try:
                write_all(self._out, self._decoded)
            except OSError:
                self.usable = False
        self._decoded = bytearray()


def _read_on_arrival(sock: socket.socket, spool_path: str, decoded_path: str,
                     alarm: float, bound: int) -> tuple[str, Prescanned | None] | None:
    """Feed the spool file to a `Prescan` as it grows, until the gateway says
    ("finish", size) or ("stop",), answered ("read", Prescanned | None) or ("stopped",
    None); or until reading on is fruitless (a message with no base64 part in sight),
    said unasked as ("fruitless", None) so the process goes back to the pool at once.
    None when the gateway closes the socket. `bound`: the largest message the gateway
    takes, in bytes."""
    follower = _SpoolFollower(spool_path, decoded_path)
    progressed = False
    try:
        # Bounded: a pass waits READ_POLL or reads at least a byte, and the alarm
        # ends the process after `alarm` seconds in any case. A file that cannot be
        # read ends the reading, not the wait for the gateway's word: the answer
        # comes only when asked for.
        for _ in range(int(alarm / READ_POLL) + bound + 2):
            ready, _w, _x = select.select([sock], [], [], 0 if progressed else READ_POLL)
            if ready:
                frame = _recv_frame(sock)
                if frame is None:
                    return None
                request = pickle.loads(frame)
                if request[0] != "finish":
                    return "stopped", None
                size = request[1]
                # Bounded: each step reads at least a byte towards `size` or stops.
                while follower.step(size):
                    pass
                return "read", follower.result(size)
            progressed = follower.step(None)
            if follower.fruitless:
                return "fruitless", None
        return None  # never reached within the alarm
    finally:
        follower.close()


def _inspect(policy: PolicyState, envelope: Envelope, ref: str, source: Source,
             auth: AuthResults | None) -> tuple[str, object]:
    try:
        raw = _load(source)
        with known_parts(raw, source) as known:
            # Through the module: the tests replace pipeline.inspect with one that fails.
            inspection = pipeline.inspect(policy, raw, envelope, ref, auth=auth,
                                          prescanned=known)
            return "ok", pipeline.summarize(inspection)
    except Exception:
        return "error", traceback.format_exc()


@contextlib.contextmanager
def known_parts(raw: bytes, source: Source) -> Iterator[Known | None]:
    """What was found in a spooled message while it arrived: its parts decoded then,
    read from the front end's file for as long as the inspection runs (none if the
    file is gone: the inspection decodes them itself), and its scanned texts; None
    when nothing was found."""
    if isinstance(source, bytes) or source.prescanned is None:
        yield None
        return
    found = source.prescanned
    if not found.parts and not found.texts:
        yield None
        return
    fd: int | None = None
    if found.parts and source.decoded_path is not None:
        with contextlib.suppress(OSError):
            fd = os.open(source.decoded_path, os.O_RDONLY | os.O_CLOEXEC)

    def read(offset: int, length: int) -> bytes:
        # No file: no bytes, and each part is decoded here (`Known` checks the length).
        return b"" if fd is None else os.pread(fd, length, offset)
    try:
        yield Known(raw, found, read)
    finally:
        if fd is not None:
            os.close(fd)


def _load(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    fd = os.open(source.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if source.size == 0:
            return b""
        with mmap.mmap(fd, source.size, prot=mmap.PROT_READ) as mapped:
            # The message view parses bytes, so this is the one copy the process makes.
            return mapped[:]
    finally:
        os.close(fd)


def _detach(fd: int, gateway_pid: int) -> None:
    """Make a freshly forked process independent of the gateway's sockets and signals."""
    with contextlib.suppress(ValueError):
        # The gateway's event loop listens to signals through this; not ours.
        signal.set_wakeup_fd(-1)
    # systemd and a terminal signal the whole group: the gateway drains and then
    # closes its processes itself. SIGALRM: the process's own deadline (default: end).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != gateway_pid:
        os._exit(0)  # the gateway died before the request above took effect
    # Listening sockets, client connections, the other processes' sockets: a copy
    # held here would keep them open after the gateway closes them.
    os.closerange(3, fd)
    os.closerange(fd + 1, _max_fd())
    # Objects of the gateway's heap are never collected here: a socket object's
    # finaliser would close a descriptor number this process may have reused.
    gc.freeze()


def _max_fd() -> int:
    try:
        return max(int(os.sysconf("SC_OPEN_MAX")), 1024)
    except (ValueError, OSError):
        return 65536


def _recv_frame(sock: socket.socket) -> bytes | None:
    head = _recv_exactly(sock, _LENGTH)
    if head is None:
        return None
    body = _recv_exactly(sock, int.from_bytes(head, "big"))
    if body is None:
        raise EOFError("the gateway closed the socket in the middle of a message")
    return body


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:  # bounded: each pass reads at least one byte or returns
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buf)


def _trim() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).malloc_trim(0)
