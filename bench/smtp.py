"""SMTP throughput, latency and memory: through the gateway vs straight to the sink.

`make bench` runs this after bench/inspect.py. Postfix's `smtp-sink` listens on a
loopback port; the gateway (`python -m gateway serve`, a real subprocess) runs
with the shipped config and every shipped rule, its upstream that sink. For
2 KB, 100 KB, 1 MB and 10 MB messages at 1 and 20 parallel sessions, Postfix's
`smtp-source` sends a bounded number of messages through the gateway and, in the
same run, straight to the sink (the direct path), one message per connection
(smtp-source's default). smtp-source writes text bodies only, so a small Python
client sends the rows of messages with one base64 attachment (`attachment_message`:
10 MB at 1 and 10 sessions, 24 MB at 1, sent by pegawai@kkm.gov.my: anm.gov.my is
JANM's, whose attachments stop at 10 MB, so the bench adds kkm.gov.my to
agency_domains) the same way. The messages go out as the
agency would send them: envelope sender and From pegawai@anm.gov.my (the relay
control and the sender rules pass), recipient in another agency, so every
outbound rule is evaluated and the message relayed.

Per row: msg/s and MB/s (payload bytes / wall time of the whole smtp-source run),
the ratio to the direct path, and the peak RSS of the gateway's processes sampled
every 10 ms during the run (total over parent and workers, and the growth over
their idle RSS per message in flight). smtp-source gives no per-message times,
so latency is measured by a small Python client sending messages one after the
other on one connection (MAIL to the reply after the final dot), through the
gateway and directly; "added" is the gateway's extra time.

Then the inspection processes under load (gateway/frontends/pool.py), each on a
gateway of its own: 10 sessions sending a 25 MB message each at once (an HTML
body and a base64 attachment), with the default pool (a process per CPU, a
quarter of the memory) and with 10 processes and a 512 MB budget, so the budget
rather than the processes is the bound: peak RSS and PSS of all the gateway's
processes, inspection processes included, against the budget; and the starvation
case: 8 sessions of 4 clients (told apart by XFORWARD) sending 2 MB HTML messages
that take the rules about a second each, while a fifth client sends 2 KB
messages one after the other: their latency p50/p99, against the same client on
the idle gateway. `--pool-only` runs just these.

Then cut-through (`cut_through: true`, relaying while the message arrives) against
store and forward, each on a gateway of its own with the same shipped rules: 2 KB at
20 sessions and 10 MB at 1 and 20 sessions through smtp-source, and the latency of
2 KB and 10 MB messages one after the other. `--cut-through-only` runs just these.

Then decoding on arrival (`limits.decode_on_arrival`, on in the shipped config: an
inspection process to spare decodes a spooled message's attachments and searches
its plain-text bodies while it arrives) against all of it after the final dot, each
on a gateway of its own, taking turns: the attachment rows' and a 10 MB text's msg/s
(best of ARRIVAL_REPEATS) against the direct path, and the wait after the final dot
of a client sending a 10 MB attachment, or text, at 10 MB/s. `--arrival-only` runs
just these.

Not a test: nothing is asserted; figures depend on the machine.
"""

# ruff: noqa: E402  (the path fix below must run before any import)
from __future__ import annotations

import os
import sys

# bench/inspect.py is named like the stdlib's `inspect`; drop this directory from
# the path so that `import inspect` (dataclasses...) finds the real one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import base64
import collections
import concurrent.futures
import contextlib
import random
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
KiB, MiB = 1024, 1024 * 1024
SENDER, RECIPIENT = "pegawai@anm.gov.my", "rakan@jpn.gov.my"
# The attachment rows: anm.gov.my is JANM's, whose mail takes attachments up to 10 MB
# (saiz-lampiran-janm-10mb); a 24 MB message needs an agency under MyGovUC's 25 MB.
MYGOVUC_SENDER = "pegawai@kkm.gov.my"
SUBJECT = "Laporan prestasi suku tahun"
SIZES = (2 * KiB, 100 * KiB, 1 * MiB, 10 * MiB)
SESSIONS = (1, 20)
# Messages per run: enough for a stable rate, bounded so the whole bench takes a
# few minutes on 2 cores.
COUNTS = {(2 * KiB, 1): 400, (2 * KiB, 20): 4000, (100 * KiB, 1): 200, (100 * KiB, 20): 600,
          (1 * MiB, 1): 40, (1 * MiB, 20): 100, (10 * MiB, 1): 6, (10 * MiB, 20): 20}
LATENCY_COUNTS = {2 * KiB: 300, 100 * KiB: 200, 1 * MiB: 40, 10 * MiB: 8}
# Messages with one attachment (attachment_message: about this size on the wire), by
# (size, sessions): messages per run, and per latency run at one session.
ATTACHMENT_ROWS = ((10 * MiB, 1), (10 * MiB, 10), (24 * MiB, 1))
ATTACHMENT_COUNTS = {(10 * MiB, 1): 8, (10 * MiB, 10): 20, (24 * MiB, 1): 5}
RUN_TIMEOUT = 300.0
# Config keys every gateway of the run gets (--event-loop).
COMMON_CONFIG: dict[str, object] = {"agency_domains": ["anm.gov.my", "kkm.gov.my"]}


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        sys.exit(f"{name} not found: install Postfix (`make bench` does: package postfix)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def size_label(n: int) -> str:
    return f"{n // MiB} MB" if n >= MiB else f"{n // KiB} KB"


# -- processes ---------------------------------------------------------------------------

@contextlib.contextmanager
def smtp_sink(port: int) -> Iterator[subprocess.Popen[bytes]]:
    args = [tool("smtp-sink")]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
    # -m: connections it serves at once; backlog 1024.
    args += ["-m", "1024", f"127.0.0.1:{port}", "1024"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(5)


@contextlib.contextmanager
def gateway(tmp: Path, sink_port: int, workers: str, extra: dict[str, object] | None = None
            ) -> Iterator[tuple[int, int]]:
    """The gateway on the shipped config and rules, relaying to the sink: (port, pid).
    `extra`: config keys to set besides."""
    config = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text())
    port = free_port()
    config.update({
        "listeners": [{"name": "outbound", "listen": f"127.0.0.1:{port}",
                       "direction": "outbound"}],
        "upstream": f"smtp://127.0.0.1:{sink_port}",
        "rules_dir": str(REPO / "rules"),
        "rejection_log": str(tmp / "rejections.jsonl"),
        "workers": int(workers) if workers.isdigit() else workers,
        # Without clamd, as bench/inspect.py: the gateway's own cost, not clamd's.
        "antivirus": None,
        **COMMON_CONFIG,
        **(extra or {}),
    })
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(path)],
                            cwd=tmp, stdout=log, stderr=log)
    try:
        wait_port(port)
        time.sleep(0.5)  # every worker listening, not only the first
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {(tmp / 'gateway.log').read_text()}")
        yield port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def family(pid: int) -> list[int]:
    """The process and its children (the workers)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                kids = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
                pids += [int(k) for k in kids]
    return pids


def rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


class RssSampler:
    """Peak total RSS of a process family, sampled every 10 ms while running."""

    def __init__(self, pid: int) -> None:
        self.pids = family(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pids))
            self._stop.wait(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- load --------------------------------------------------------------------------------

def smtp_source(port: int, size: int, sessions: int, count: int) -> float:
    """Seconds smtp-source takes to send `count` messages; fails on any refusal.
    One message per connection, smtp-source's default (issue 12 measures so)."""
    args = [tool("smtp-source"), "-s", str(sessions), "-m", str(count),
            "-l", str(size), "-f", SENDER, "-t", RECIPIENT, "-S", SUBJECT,
            "-M", "bench.anm.gov.my", f"127.0.0.1:{port}"]
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, timeout=RUN_TIMEOUT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or done.stderr.strip():
        raise RuntimeError(f"smtp-source to port {port} failed ({done.returncode}): "
                           f"{done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def latency_message(size: int) -> bytes:
    """Like smtp-source's messages: headers, then `size` bytes of 80-column text."""
    head = (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: {SUBJECT}\r\n"
            "Message-Id: <bench@bench.anm.gov.my>\r\n\r\n").encode()
    line = b"X" * 78 + b"\r\n"
    body = line * (size // len(line) + 1)
    return head + body[:size - 2] + b"\r\n"


def py_source(port: int, msg: bytes, sessions: int, count: int,
              sender: str = SENDER) -> float:
    """Seconds `sessions` parallel clients take to send `count` copies of `msg`, one
    message per connection (what smtp-source does, for messages it cannot make: MIME
    with an attachment). Fails on any refusal."""
    data = msg.replace(b"\r\n.", b"\r\n..") + b".\r\n"
    left = iter(range(count))
    lock = threading.Lock()

    def one() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=RUN_TIMEOUT) as sock:
            reader = sock.makefile("rb")

            def reply(want: int) -> None:
                while True:
                    line = reader.readline()
                    if line[3:4] != b"-":
                        break
                if int(line[:3] or 0) != want:
                    raise RuntimeError(f"port {port}: {line!r}, wanted {want}")

            reply(220)
            for line, want in ((b"EHLO bench.anm.gov.my", 250),
                               (f"MAIL FROM:<{sender}>".encode(), 250),
                               (f"RCPT TO:<{RECIPIENT}>".encode(), 250), (b"DATA", 354)):
                sock.sendall(line + b"\r\n")
                reply(want)
            sock.sendall(data)
            reply(250)
            sock.sendall(b"QUIT\r\n")

    def session() -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            one()

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(sessions) as pool:
        for done in [pool.submit(session) for _ in range(sessions)]:
            done.result(timeout=RUN_TIMEOUT)
    return time.perf_counter() - start


def latencies(port: int, size: int, count: int, msg: bytes | None = None,
              sender: str = SENDER) -> list[float]:
    """Seconds per message, MAIL to the final reply, one message after the other."""
    msg = msg if msg is not None else latency_message(size)
    out = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("bench.anm.gov.my")
        for _ in range(count):
            start = time.perf_counter()
            refused = client.sendmail(sender, [RECIPIENT], msg)
            out.append(time.perf_counter() - start)
            if refused:
                raise RuntimeError(f"refused: {refused}")
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- the run -----------------------------------------------------------------------------

@dataclass
class Row:
    size: int
    sessions: int
    count: int
    gw_s: float
    direct_s: float
    peak_rss: int
    idle_rss: int
    kind: str = ""  # "" smtp-source's text; "attachment": attachment_message

    @property
    def label(self) -> str:
        return f"{size_label(self.size)} {self.kind}".strip()

    @property
    def gw_rate(self) -> float:
        return self.count / self.gw_s

    @property
    def direct_rate(self) -> float:
        return self.count / self.direct_s

    def mbps(self, seconds: float) -> float:
        return self.count * self.size / seconds / MiB

    @property
    def rss_per_message(self) -> float:
        """RSS growth over idle per message in flight, in multiples of its size."""
        return max(0, self.peak_rss - self.idle_rss) / (self.sessions * self.size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="auto", help="gateway workers (default: auto)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the message counts (e.g. 0.1 for a quick look)")
    ap.add_argument("--sizes", default="", help="only these sizes in bytes, comma-separated")
    ap.add_argument("--cut-through-only", action="store_true",
                    help="only the cut-through on/off comparison (2 KB and 10 MB)")
    ap.add_argument("--arrival-only", action="store_true",
                    help="only the decode_on_arrival off/on comparison (attachments, text)")
    ap.add_argument("--pool-only", action="store_true",
                    help="only the inspection-process runs (25 MB x10, starvation)")
    ap.add_argument("--smtp-only", action="store_true",
                    help="only the smtp-source table and latencies (no cut-through, no pool)")
    ap.add_argument("--event-loop", choices=("auto", "asyncio", "uvloop"),
                    help="the gateway's event_loop (default: the shipped config's)")
    args = ap.parse_args()
    if args.event_loop:
        COMMON_CONFIG["event_loop"] = args.event_loop
    if args.pool_only:
        return pool_bench(args.workers)
    if args.arrival_only:
        return arrival_bench(args.workers, args.scale)
    if args.cut_through_only:
        return cut_through_bench(args.workers, args.scale)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else SIZES
    cpus = len(os.sched_getaffinity(0))
    print(f"SMTP benchmark: {cpus} CPUs, gateway workers: {args.workers}, shipped rules, "
          f"event loop: {args.event_loop or 'default'}, outbound {SENDER} -> {RECIPIENT}")
    rows: list[Row] = []
    lat: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmpdir:
        tmp = Path(tmpdir)
        sink_port = free_port()
        with smtp_sink(sink_port), gateway(tmp, sink_port, args.workers) as (port, pid):
            # Warm up both paths (imports, libmagic, first connections).
            smtp_source(port, 2 * KiB, 2, 20)
            for size in sizes:
                for sessions in SESSIONS:
                    count = max(sessions, round(COUNTS.get((size, sessions), 20) * args.scale))
                    idle = rss(family(pid))
                    with RssSampler(pid) as sampler:
                        gw_s = smtp_source(port, size, sessions, count)
                    direct_s = smtp_source(sink_port, size, sessions, count)
                    rows.append(Row(size, sessions, count, gw_s, direct_s, sampler.peak, idle))
                    print(f"  {size_label(size):>6} x{sessions:<2} {count:5d} msgs: gateway "
                          f"{gw_s:6.2f}s, direct {direct_s:6.2f}s", flush=True)
                n = max(5, round(LATENCY_COUNTS.get(size, 20) * args.scale))
                lat[size_label(size)] = (latencies(port, size, n),
                                         latencies(sink_port, size, n))
            # What smtp-source cannot send: an attachment, as officers send them.
            for size, sessions in ATTACHMENT_ROWS:
                if args.sizes and size not in sizes:
                    continue
                msg = attachment_message(size, MYGOVUC_SENDER)
                count = max(sessions, round(ATTACHMENT_COUNTS[(size, sessions)] * args.scale))
                idle = rss(family(pid))
                with RssSampler(pid) as sampler:
                    gw_s = py_source(port, msg, sessions, count, MYGOVUC_SENDER)
                direct_s = py_source(sink_port, msg, sessions, count, MYGOVUC_SENDER)
                rows.append(Row(len(msg), sessions, count, gw_s, direct_s, sampler.peak, idle,
                                "attachment"))
                print(f"  {rows[-1].label:>14} x{sessions:<2} {count:5d} msgs: gateway "
                      f"{gw_s:6.2f}s, direct {direct_s:6.2f}s", flush=True)
                if sessions == 1:
                    n = max(5, round(ATTACHMENT_COUNTS[(size, 1)] * args.scale))
                    lat[rows[-1].label] = (latencies(port, size, n, msg, MYGOVUC_SENDER),
                                           latencies(sink_port, size, n, msg,
                                                     MYGOVUC_SENDER))
        rejected = tmp / "rejections.jsonl"
        if rejected.exists() and rejected.stat().st_size:
            print(f"WARNING: the gateway logged refusals: {rejected.read_text()[:300]}")

    print()
    print("| size | sessions | msgs | gateway msg/s | direct msg/s | gateway MB/s | direct MB/s "
          "| ratio | peak RSS (MB) | RSS growth / (sessions x size) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.label} | {r.sessions} | {r.count} | {r.gw_rate:.0f} "
              f"| {r.direct_rate:.0f} | {r.mbps(r.gw_s):.1f} | {r.mbps(r.direct_s):.1f} "
              f"| {r.gw_rate / r.direct_rate:.0%} | {r.peak_rss / MiB:.0f} "
              f"| {r.rss_per_message:.1f}x |")
    print()
    print("Latency, one session, messages sent one after the other (ms):")
    print()
    print("| size | msgs | gateway p50 | gateway p99 | direct p50 | direct p99 "
          "| added p50 | added p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for label, (gw, direct) in lat.items():
        g50, g99, d50, d99 = (pct(gw, 50) * 1e3, pct(gw, 99) * 1e3,
                              pct(direct, 50) * 1e3, pct(direct, 99) * 1e3)
        print(f"| {label} | {len(gw)} | {g50:.1f} | {g99:.1f} | {d50:.1f} "
              f"| {d99:.1f} | {g50 - d50:.1f} | {g99 - d99:.1f} |")
    print()
    amavis = 77.0  # msg/s at 2 KB, the top of the amavisd-new figure
    for r in rows:
        if r.size == 2 * KiB and r.sessions == 20:
            print(f"2 KB x20: {r.gw_rate:.0f} msg/s (target >= 1000 and >= 10x amavisd-new's "
                  f"{amavis:.0f}: {'met' if r.gw_rate >= max(1000, 10 * amavis) else 'NOT met'})")
        if r.size >= 10 * MiB:
            ratio = r.mbps(r.gw_s) / r.mbps(r.direct_s)
            print(f"{r.label} x{r.sessions}: {ratio:.0%} of the direct path's MB/s "
                  f"(target >= 50 %: {'met' if ratio >= 0.5 else 'NOT met'})")
    if "100 KB" in lat:
        gw, direct = lat["100 KB"]
        added = (pct(gw, 99) - pct(direct, 99)) * 1e3
        print(f"100 KB x1: added p99 latency {added:.1f} ms "
              f"(target <= 10 ms: {'met' if added <= 10 else 'NOT met'})")
    worst = max((r.rss_per_message for r in rows if r.size >= MiB), default=0.0)
    print(f">= 1 MB: worst RSS growth per message in flight {worst:.1f}x its size "
          f"(target <= 2x: {'met' if worst <= 2 else 'NOT met'})")
    print("(percentiles by rank; RSS sampled every 10 ms, total of the gateway's processes)")
    if args.smtp_only:
        return 0
    cut_through_bench(args.workers, args.scale)
    arrival_bench(args.workers, args.scale)
    return pool_bench(args.workers)


# -- inspection processes under load -----------------------------------------------------

POOL_BIG = 25 * MiB
POOL_BIG_SESSIONS = 10
STARVE_CLIENTS, STARVE_SESSIONS, STARVE_SMALL = 4, 2, 60


def tree(pid: int) -> list[int]:
    """The process and all its descendants (workers and their inspection processes)."""
    found, todo = [], [pid]
    for _ in range(10000):  # bounded: a process tree of the gateway is small
        if not todo:
            break
        current = todo.pop()
        found.append(current)
        todo += family(current)[1:]
    return found


def pss(pids: list[int]) -> int:
    """Proportional set size: pages shared by forked processes counted once in all."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
    return total


class TreeSampler(RssSampler):
    """Peak RSS and PSS of the whole process tree, looked up again at every sample (the
    inspection processes come and go)."""

    def __init__(self, pid: int) -> None:
        super().__init__(pid)
        self.root = pid
        self.peak_pss = 0
        self.most = 0  # processes at once

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = tree(self.root)
            self.most = max(self.most, len(pids))
            self.peak = max(self.peak, rss(pids))
            self.peak_pss = max(self.peak_pss, pss(pids))
            self._stop.wait(0.02)


def big_message(size: int, n: int) -> bytes:
    """A message as an officer sends large files: some HTML, then three base64
    attachments (each under the shipped rules' 10 MB for JANM cader mail)."""
    rng = random.Random(n)
    html = ("<p>" + "Laporan suku tahun dilampirkan untuk semakan. " * 40 + "</p>\r\n") * 20
    out = (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: {SUBJECT} {n}\r\n"
           f"Message-Id: <besar{n}@bench.anm.gov.my>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n").encode()
    # base64 with CRLF every 76 characters: 4/3 of the data, and 78/76 of that.
    per_file = (size - len(out)) // 3 * 3 * 76 // (4 * 78) - 200
    for i in range(3):
        out += (f"--b\r\nContent-Type: application/octet-stream; name=data{i}.bin\r\n"
                f"Content-Disposition: attachment; filename=data{i}.bin\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n").encode()
        out += base64.encodebytes(rng.randbytes(per_file)).replace(b"\n", b"\r\n")
    return out + b"--b--\r\n"


def expensive_message(size: int, n: int) -> bytes:
    """An HTML body of small tags: every content rule renders and reads all of it."""
    line = b"<b>a</b> " * 8 + b"\r\n"
    return (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: {SUBJECT}\r\n"
            f"Message-Id: <mahal{n}@bench.anm.gov.my>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n").encode() + \
        line * (size // len(line))


def send_one(port: int, msg: bytes, client: str | None = None) -> tuple[int, float]:
    """(reply code after the final dot, seconds from MAIL to it) on a new connection."""
    with smtplib.SMTP("127.0.0.1", port, timeout=RUN_TIMEOUT) as smtp:
        smtp.ehlo("bench.anm.gov.my")
        if client is not None:
            smtp.docmd("XFORWARD", f"ADDR={client}")
        start = time.perf_counter()
        try:
            smtp.sendmail(SENDER, [RECIPIENT], msg)
            code = 250
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
        except smtplib.SMTPRecipientsRefused:
            code = 550
        return code, time.perf_counter() - start


def budget_of(extra: dict[str, object]) -> int:
    """The memory budget of the whole gateway (every worker's share together)."""
    sys.path.insert(0, str(REPO))
    from gateway.frontends.pool import physical_memory
    from gateway.sizes import parse_size

    limits = extra.get("limits", {})
    assert isinstance(limits, dict)
    value = limits.get("inspection_memory", "auto")
    return physical_memory() // 4 if value == "auto" else parse_size(value)


def big_run(tmp: Path, sink_port: int, workers: str, label: str,
            limits: dict[str, object]) -> str:
    extra: dict[str, object] = {"limits": limits} if limits else {}
    run = tmp / label.replace(" ", "-")
    run.mkdir()
    msgs = [big_message(POOL_BIG, n) for n in range(POOL_BIG_SESSIONS)]
    with gateway(run, sink_port, workers, extra) as (port, pid):
        idle, idle_pss = rss(tree(pid)), pss(tree(pid))
        with TreeSampler(pid) as sampler, \
                concurrent.futures.ThreadPoolExecutor(POOL_BIG_SESSIONS) as pool:
            start = time.perf_counter()
            results = list(pool.map(lambda m: send_one(port, m), msgs))
            wall = time.perf_counter() - start
    codes = collections.Counter(code for code, _ in results)
    budget = budget_of(extra)
    return (f"| {label} | {POOL_BIG_SESSIONS} x {size_label(POOL_BIG)} | "
            f"{', '.join(f'{n}x {c}' for c, n in sorted(codes.items()))} | {wall:.1f} | "
            f"{idle / MiB:.0f} / {idle_pss / MiB:.0f} | {sampler.peak / MiB:.0f} / "
            f"{sampler.peak_pss / MiB:.0f} | {budget / MiB:.0f} | {sampler.most} |")


def starvation_run(tmp: Path, sink_port: int, workers: str) -> tuple[str, str]:
    run = tmp / f"starvation-{workers}"
    run.mkdir()
    heavy_clients = [f"192.0.2.{c + 1}" for c in range(STARVE_CLIENTS)]
    small_client = "198.51.100.9"
    extra: dict[str, object] = {
        "xforward_peers": ["127.0.0.1/32"],
        "relay_networks": ["127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24"]}
    small_msg = latency_message(2 * KiB)
    stop = threading.Event()
    heavy_done: list[float] = []

    def heavy(client: str, session: int) -> None:
        for n in range(1000):  # bounded; ends when the small client is done
            if stop.is_set():
                return
            _code, seconds = send_one(port, expensive_message(2 * MiB, n), client)
            heavy_done.append(seconds)

    def smalls(count: int) -> list[float]:
        out = []
        for _ in range(count):
            code, seconds = send_one(port, small_msg, small_client)
            if code != 250:
                raise RuntimeError(f"small message answered {code}")
            out.append(seconds)
        return out

    with gateway(run, sink_port, workers, extra) as (port, _pid):
        idle = smalls(STARVE_SMALL)
        threads = [threading.Thread(target=heavy, args=(c, s))
                   for c in heavy_clients for s in range(STARVE_SESSIONS)]
        for t in threads:
            t.start()
        time.sleep(3.0)  # every heavy session has a message in or waiting for inspection
        try:
            loaded = smalls(STARVE_SMALL)
        finally:
            stop.set()
            for t in threads:
                t.join(RUN_TIMEOUT)
    heavy_p50 = pct(heavy_done, 50) if heavy_done else float("nan")
    return (f"| {workers} | idle gateway | {len(idle)} | {pct(idle, 50) * 1e3:.1f} | "
            f"{pct(idle, 99) * 1e3:.1f} | - |",
            f"| {workers} | {STARVE_CLIENTS * STARVE_SESSIONS} sessions of {STARVE_CLIENTS} "
            f"clients sending 2 MB HTML | {len(loaded)} | {pct(loaded, 50) * 1e3:.1f} | "
            f"{pct(loaded, 99) * 1e3:.1f} | {len(heavy_done)} done, p50 "
            f"{heavy_p50 * 1e3:.0f} ms |")


def pool_bench(workers: str) -> int:
    cpus = len(os.sched_getaffinity(0))
    print(f"\nInspection processes: {cpus} CPUs, gateway workers: {workers}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gw-bench-pool-") as tmpdir:
        tmp = Path(tmpdir)
        sink_port = free_port()
        with smtp_sink(sink_port):
            rows = [big_run(tmp, sink_port, workers, "default pool", {}),
                    big_run(tmp, sink_port, workers, "10 processes, 512MB",
                            {"inspection_processes": 10, "inspection_memory": "512MB"})]
            # Also one gateway process: each worker has a pool of its own, so with
            # several the small client meets only its worker's share of the processes.
            starving = [row for w in dict.fromkeys((workers, "1"))
                        for row in starvation_run(tmp, sink_port, w)]
    print_table(("pool", "messages", "replies", "seconds", "idle RSS / PSS (MB)",
                 "peak RSS / PSS (MB)", "budget (MB)", "processes at most"), rows)
    print()
    print("Small messages (2 KB, one client, one after the other) while other clients "
          "send expensive mail, in ms:")
    print_table(("workers", "load", "msgs", "p50", "p99", "expensive messages (latency)"),
                starving)
    print("(RSS counts pages shared by forked processes in each; PSS shares them out)")
    return 0


# -- cut-through on and off -------------------------------------------------------------

CUT_ROWS = ((2 * KiB, 20), (10 * MiB, 1), (10 * MiB, 20))
CUT_LATENCY = {2 * KiB: 300, 10 * MiB: 8}
CUT_REPEATS = 3
# A client on a slower link than loopback (a branch office, a WAN): 10 MB at 10 MB/s.
PACED_SIZE, PACED_RATE, PACED_COUNT = 10 * MiB, 10 * MiB, 5


def attachment_message(size: int, sender: str = SENDER) -> bytes:
    """A short text and one attachment (random bytes in base64) of about `size` bytes
    on the wire: what an officer sends, where smtp-source sends text."""
    data = random.Random(size).randbytes(size * 3 // 4)
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (f"From: <{sender}>\r\nTo: <{RECIPIENT}>\r\nSubject: {SUBJECT}\r\n"
            "Message-Id: <bench-attachment@bench.anm.gov.my>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="sempadan"\r\n\r\n'
            "--sempadan\r\nContent-Type: text/plain\r\n\r\nLampiran.\r\n"
            "--sempadan\r\nContent-Type: application/octet-stream; name=data.bin\r\n"
            "Content-Disposition: attachment; filename=data.bin\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode() + encoded + \
        b"--sempadan--\r\n"


def dot_waits(port: int, message: bytes, rate: float, count: int) -> list[float]:
    """Seconds from the client's final dot to the gateway's reply, for messages sent at
    `rate` bytes a second (what a client on a slower link waits once it has sent all)."""
    msg = message.replace(b"\r\n.", b"\r\n..")
    piece = 64 * KiB
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=RUN_TIMEOUT) as sock:
        reader = sock.makefile("rb")

        def reply() -> int:
            while True:
                line = reader.readline()
                if not line:
                    raise RuntimeError("connection closed")
                if line[3:4] != b"-":
                    return int(line[:3])

        def command(line: bytes, want: int) -> None:
            sock.sendall(line + b"\r\n")
            code = reply()
            if code != want:
                raise RuntimeError(f"{line!r}: {code}")

        if reply() != 220:
            raise RuntimeError("no greeting")
        command(b"EHLO bench.anm.gov.my", 250)
        for _ in range(count):
            command(f"MAIL FROM:<{SENDER}>".encode(), 250)
            command(f"RCPT TO:<{RECIPIENT}>".encode(), 250)
            command(b"DATA", 354)
            started = time.perf_counter()
            for i, start in enumerate(range(0, len(msg), piece)):
                sock.sendall(msg[start:start + piece])
                ahead = started + (i + 1) * piece / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            dot = time.perf_counter()
            sock.sendall(b".\r\n")
            if reply() != 250:
                raise RuntimeError("message refused")
            out.append(time.perf_counter() - dot)
        command(b"QUIT", 221)
    return out


def cpu_seconds(root: int) -> float:
    """User and system CPU of a process tree so far, children it reaped included."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in tree(root):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / tick


def gateway_pair(stack: contextlib.ExitStack, tmp: Path, sink_port: int, workers: str,
                 extra: Callable[[bool], dict[str, object]]) -> dict[bool, tuple[int, int]]:
    """Two gateways relaying to the sink, with `extra(False)` and `extra(True)` (in
    tmp/off and tmp/on), warmed up: {on: (port, pid)}, stopped with `stack`."""
    running: dict[bool, tuple[int, int]] = {}
    for on in (False, True):
        run = tmp / ("on" if on else "off")
        run.mkdir()
        running[on] = stack.enter_context(gateway(run, sink_port, workers, extra(on)))
        smtp_source(running[on][0], 2 * KiB, 2, 20)  # warm up
    return running


def print_table(columns: tuple[str, ...], rows: list[str]) -> None:
    """A Markdown table of made rows after a blank line (the README's are pasted from
    these: `make bench` output, header by header)."""
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print(row)


def print_paced(rows: list[str]) -> None:
    """The table of `paced_rows`, under its title."""
    print()
    print("A client on a slower link: wait from its final dot to the reply (ms):")
    print_table(("mode", "message", "msgs", "p50", "max"), rows)


def warn_refusals(tmp: Path) -> None:
    """Say so if a gateway of a pair (`gateway_pair`, a directory each under `tmp`)
    refused anything: its figures would not be those of relayed mail."""
    rejected = [p for p in tmp.glob("*/rejections.jsonl") if p.stat().st_size]
    if rejected:
        print(f"WARNING: the gateway logged refusals: {rejected[0].read_text()[:300]}")


def paced_rows(modes: tuple[tuple[str, bool], ...], running: dict[bool, tuple[int, int]],
               sink_port: int, kind: str, message: bytes) -> list[str]:
    """Table rows of the wait after the final dot of a client sending `message` at
    PACED_RATE, through each gateway (taking turns) and straight to the sink."""
    waits: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(PACED_COUNT):
        for _label, on in modes:
            waits[on] += dot_waits(running[on][0], message, PACED_RATE, 1)
    direct = dot_waits(sink_port, message, PACED_RATE, PACED_COUNT)
    return [f"| {label} | {size_label(PACED_SIZE)} {kind} at {PACED_RATE // MiB} MB/s "
            f"| {len(values)} | {pct(values, 50) * 1e3:.1f} | {max(values) * 1e3:.1f} |"
            for label, values in (*((lb, waits[on]) for lb, on in modes),
                                  ("direct to the sink", direct))]


def cut_through_bench(workers: str, scale: float) -> int:
    """The same load through a store-and-forward and a cut-through gateway, both running
    at once and taking turns, each row CUT_REPEATS times: a change in the machine's load
    hits both. Reported: the best wall time of the repeats, and the gateway's own CPU
    time per message (its process tree, inspection processes included), which other
    load on the machine does not change."""
    cpus = len(os.sched_getaffinity(0))
    print(f"\nCut-through on and off: {cpus} CPUs, gateway workers: {workers}, shipped rules, "
          f"best of {CUT_REPEATS}", flush=True)
    modes = (("store and forward", False), ("cut-through", True))
    table: list[str] = []
    latency: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-cut-") as tmpdir, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        sink_port = free_port()
        stack.enter_context(smtp_sink(sink_port))
        running = gateway_pair(stack, tmp, sink_port, workers,
                               lambda on: {"cut_through": on})
        log = (tmp / "on" / "gateway.log").read_text()
        if "cut-through on: messages are relayed" not in log:
            raise RuntimeError(f"cut-through is not in force:\n{log[-800:]}")
        for size, sessions in CUT_ROWS:
            count = max(sessions, round(COUNTS[(size, sessions)] * scale))
            best: dict[bool, float] = {}
            cpu: dict[bool, list[float]] = {False: [], True: []}
            peak: dict[bool, int] = {False: 0, True: 0}
            for _ in range(CUT_REPEATS):
                for _label, on in modes:
                    port, pid = running[on]
                    before = cpu_seconds(pid)
                    with RssSampler(pid) as sampler:
                        seconds = smtp_source(port, size, sessions, count)
                    cpu[on].append((cpu_seconds(pid) - before) / count)
                    best[on] = min(best.get(on, seconds), seconds)
                    peak[on] = max(peak[on], sampler.peak)
            for label, on in modes:
                row = Row(size, sessions, count, best[on], best[on], peak[on], 0)
                table.append(f"| {label} | {size_label(size)} | {sessions} | {count} "
                             f"| {row.gw_rate:.0f} | {row.mbps(best[on]):.1f} "
                             f"| {pct(cpu[on], 50) * 1e3:.1f} | {peak[on] / MiB:.0f} |")
                print(f"  {label:>17} {size_label(size):>6} x{sessions:<2} {count:5d} "
                      f"msgs: best {best[on]:6.2f}s, CPU {pct(cpu[on], 50) * 1e3:.1f} "
                      f"ms/msg", flush=True)
        for size, n in CUT_LATENCY.items():
            for label, on in modes:
                times = latencies(running[on][0], size, max(5, round(n * scale)))
                latency.append(f"| {label} | {size_label(size)} | {len(times)} "
                               f"| {pct(times, 50) * 1e3:.1f} | {pct(times, 99) * 1e3:.1f} |")
            times = latencies(sink_port, size, max(5, round(n * scale)))
            latency.append(f"| direct to the sink | {size_label(size)} | {len(times)} "
                           f"| {pct(times, 50) * 1e3:.1f} | {pct(times, 99) * 1e3:.1f} |")
        paced = [*paced_rows(modes, running, sink_port, "text", latency_message(PACED_SIZE)),
                 *paced_rows(modes, running, sink_port, "attachment",
                             attachment_message(PACED_SIZE))]
        warn_refusals(tmp)
    print_table(("mode", "size", "sessions", "msgs", "msg/s", "MB/s", "gateway CPU (ms/msg)",
                 "peak RSS (MB)"), table)
    print()
    print("Latency at one session, MAIL to the reply after the final dot (ms):")
    print_table(("mode", "size", "msgs", "p50", "p99"), latency)
    print_paced(paced)
    return 0


# -- decoding on arrival off and on -------------------------------------------------------

ARRIVAL_REPEATS = 3


def arrival_bench(workers: str, scale: float) -> int:
    """The attachment rows through a gateway decoding after the final dot and one
    decoding on arrival, both running at once and taking turns (best of
    ARRIVAL_REPEATS), against the direct path; then the wait after the final dot of a
    client on a slower link."""
    cpus = len(os.sched_getaffinity(0))
    print(f"\nDecoding on arrival off and on: {cpus} CPUs, gateway workers: {workers}, "
          f"shipped rules, best of {ARRIVAL_REPEATS}", flush=True)
    shipped = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text()).get("limits")
    modes = (("decoded after the dot", False), ("decoded on arrival", True))
    table: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-arrival-") as tmpdir, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        sink_port = free_port()
        stack.enter_context(smtp_sink(sink_port))
        running = gateway_pair(stack, tmp, sink_port, workers, lambda on: {
            "limits": {**(shipped or {}), "decode_on_arrival": on}})
        rows = [(f"{size_label(size)} attachment", attachment_message(size, MYGOVUC_SENDER),
                 sessions, ATTACHMENT_COUNTS[(size, sessions)], MYGOVUC_SENDER)
                for size, sessions in ATTACHMENT_ROWS]
        # A text body: searched for marking lines and links on arrival (textscan).
        rows.append((f"{size_label(10 * MiB)} text", latency_message(10 * MiB), 1, 8, SENDER))
        for kind, msg, sessions, base, sender in rows:
            count = max(sessions, round(base * scale))
            best: dict[bool, float] = {}
            for _ in range(ARRIVAL_REPEATS):
                for _label, on in modes:
                    seconds = py_source(running[on][0], msg, sessions, count, sender)
                    best[on] = min(best.get(on, seconds), seconds)
            direct = py_source(sink_port, msg, sessions, count, sender)
            for label, on in modes:
                table.append(f"| {label} | {kind} | {sessions} "
                             f"| {count} | {count / best[on]:.2f} | {count / direct:.2f} "
                             f"| {direct / best[on]:.0%} |")
            print(f"  {kind} x{sessions}: after the dot "
                  f"{count / best[False]:.2f} msg/s, on arrival {count / best[True]:.2f}, "
                  f"direct {count / direct:.2f}", flush=True)
        paced = [*paced_rows(modes, running, sink_port, "attachment",
                             attachment_message(PACED_SIZE, MYGOVUC_SENDER)),
                 *paced_rows(modes, running, sink_port, "text", latency_message(PACED_SIZE))]
        warn_refusals(tmp)
    print_table(("mode", "message", "sessions", "msgs", "gateway msg/s", "direct msg/s",
                 "ratio"), table)
    print_paced(paced)
    return 0


if __name__ == "__main__":
    sys.exit(main())
