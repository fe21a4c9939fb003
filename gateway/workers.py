"""Several gateway processes sharing the listening ports (config `workers: N`).

One Python process runs its inspection on one core at a time (the GIL), so with
`workers` above 1 the parent forks N workers and serves no mail itself: it
binds nothing, each worker creates its own listeners with SO_REUSEPORT and runs
the same `service.run` as a single-process gateway, and the kernel spreads the
incoming connections over them.

The parent only relays signals and watches: SIGTERM/SIGINT (stop and drain),
SIGHUP (reload) and SIGUSR1 (reopen the rejection log) go to every worker. It
restarts nothing. A worker that exits when it was not told to stop is a fault:
the parent stops the others and exits non-zero, so a supervisor sees it instead
of a gateway quietly running on fewer workers. Exit 0 only when every worker
stopped cleanly after a stop signal.

Under systemd the parent is the service's main process and the only one that
notifies: each worker writes its sd_notify states to a pipe to the parent, which
says READY=1 once every worker is ready (and again once every worker has finished
a reload), STOPPING=1 when it stops them, and WATCHDOG=1 each time every worker's
event loop has pinged since the last one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from gateway import eventloop, sdnotify, service
from gateway.policy_state import PolicyState

log = logging.getLogger("gateway.workers")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
# A worker drains for service.DRAIN_TIMEOUT; past this it is killed.
STOP_GRACE = service.DRAIN_TIMEOUT + 10.0
POLL = 0.05
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def _exit_code(status: int) -> int:
    """A wait status as a shell would report it (128 + signal for a killed worker)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _Notices:
    """The parent's side of the worker pipe: worker states in, systemd states out."""

    def __init__(self, fd: int, count: int) -> None:
        self.fd = fd
        self.count = count
        self.buffer = b""
        self.ready: set[int] = set()
        self.announced = False
        self.reloading: set[int] | None = None
        self.pinged: set[int] = set()

    def reload(self, workers: set[int]) -> None:
        sdnotify.notify(sdnotify.reloading_state())
        self.reloading = set(workers)

    def read(self, workers: set[int]) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            pid_text, _, state = line.decode("utf-8", "replace").partition(" ")
            with contextlib.suppress(ValueError):
                self._state(int(pid_text), state.split("\t"))
        self._settle(workers)

    def _state(self, pid: int, keys: list[str]) -> None:
        if "READY=1" in keys:
            self.ready.add(pid)
            if self.reloading is not None:
                self.reloading.discard(pid)
        if "WATCHDOG=1" in keys:
            self.pinged.add(pid)

    def _settle(self, workers: set[int]) -> None:
        if not self.announced and len(self.ready) >= self.count:
            self.announced = True
            sdnotify.notify(f"READY=1\nSTATUS=serving with {self.count} workers")
        if self.reloading is not None:
            self.reloading &= workers
            if not self.reloading:
                self.reloading = None
                sdnotify.notify(f"READY=1\nSTATUS=serving with {len(workers)} workers")
        if workers and self.pinged >= workers:
            self.pinged.clear()
            sdnotify.notify("WATCHDOG=1")


def _pipe_notifier(fd: int) -> Callable[[str], bool]:
    """A worker's sd_notify: one line per state to the parent, never blocking the loop."""
    os.set_blocking(fd, False)
    pid = os.getpid()

    def send(state: str) -> bool:
        # Under PIPE_BUF bytes, so lines from several workers never interleave.
        line = f"{pid} {state.replace(chr(10), chr(9))}\n".encode()[:512]
        try:
            os.write(fd, line)
        except OSError:
            return False
        return True

    return send


def _worker(index: int, config_path: Path, policy: PolicyState, notices: int = -1,
            watchdog: float | None = None) -> int:
    """The body of one forked worker: a whole gateway on shared ports."""
    # The parent's Python handlers were inherited; this process gets its own from
    # service.run, and until then the signals stay blocked (pending, not lost).
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    # Every log line names the worker's pid, so an operator can tell them apart.
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    log.info("worker %d started", index)

    def ready() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)

    notify = _pipe_notifier(notices) if notices >= 0 else sdnotify.notify
    return eventloop.run(service.run(config_path, policy, reuse_port=True, on_ready=ready,
                                     notify=notify, watchdog=watchdog),
                         policy.config.event_loop)


def _spawn(index: int, config_path: Path, policy: PolicyState, pipe: tuple[int, int],
           watchdog: float | None) -> int:
    pid = os.fork()
    if pid != 0:
        return pid
    code = 1
    try:
        os.close(pipe[0])
        code = _worker(index, config_path, policy, pipe[1], watchdog)
    except BaseException:  # the child must never return into the parent's code
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(config_path: Path, policy: PolicyState, count: int) -> int:
    """Fork `count` workers, forward signals, wait. 0 only after a clean stop of all."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
    workers: dict[int, int] = {}  # pid -> index
    stopping = False
    deadline: float | None = None
    failed = 0

    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    notices = _Notices(read_end, count)
    # Each worker pings the parent at half this; the parent pings systemd when all did.
    watchdog = sdnotify.watchdog_interval()

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            if not stopping:
                sdnotify.notify("STOPPING=1\nSTATUS=stopping: draining workers")
            stopping = True
        elif signum == signal.SIGHUP and not stopping:
            notices.reload(set(workers))
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)

    # Blocked across the forks: a signal arriving now is delivered once every
    # process has a handler for it, instead of killing a half-started worker.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        for index in range(count):
            pid = _spawn(index, config_path, policy, (read_end, write_end), watchdog)
            workers[pid] = index
        os.close(write_end)
        write_end = -1
        log.info("started %d workers: %s", count, " ".join(str(p) for p in workers))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)

        # Polled rather than a blocking wait, so the kill deadline is kept even when
        # a signal handler (which cannot interrupt a retried os.wait) began the stop.
        while workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not stopping:
                notices.read(set(workers))
            if pid == 0:
                if stopping and deadline is None:
                    deadline = time.monotonic() + STOP_GRACE
                if deadline is not None and time.monotonic() > deadline:
                    log.error("workers %s still running %.0fs after the stop: killing them",
                              " ".join(str(p) for p in workers), STOP_GRACE)
                    for left in workers:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(left, signal.SIGKILL)
                    deadline = float("inf")
                time.sleep(POLL)
                continue
            if pid not in workers:
                continue
            index = workers.pop(pid)
            code = _exit_code(status)
            if code != 0 or not stopping:
                log.error("worker %d (pid %d) exited with status %d%s", index, pid, code,
                          "" if stopping else " unexpectedly: stopping the others")
                failed = failed or code or 1
                if not stopping:
                    stopping = True
                    sdnotify.notify("STOPPING=1\nSTATUS=a worker failed: stopping")
                    for left in workers:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(left, signal.SIGTERM)
            else:
                log.info("worker %d (pid %d) stopped", index, pid)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        for sig, old in previous.items():
            signal.signal(sig, old)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    if failed:
        log.error("gateway stopped after a worker failure (status %d)", failed)
    else:
        log.info("all workers stopped")
    return failed
