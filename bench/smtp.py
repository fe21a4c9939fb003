"""SMTP throughput, latency and memory: through the gateway vs straight to the sink.

`make bench` runs this after bench/inspect.py. Postfix's `smtp-sink` listens on a
loopback port; the gateway (`python -m gateway serve`, a real subprocess) runs
with the shipped config and every shipped rule, its upstream that sink. For
2 KB, 100 KB, 1 MB and 10 MB messages at 1 and 20 parallel sessions, Postfix's
`smtp-source` sends a bounded number of messages through the gateway and, in the
same run, straight to the sink (the direct path). The messages go out as the
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
import contextlib
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
KiB, MiB = 1024, 1024 * 1024
SENDER, RECIPIENT = "pegawai@anm.gov.my", "rakan@jpn.gov.my"
SUBJECT = "Laporan prestasi suku tahun"
SIZES = (2 * KiB, 100 * KiB, 1 * MiB, 10 * MiB)
SESSIONS = (1, 20)
# Messages per run: enough for a stable rate, bounded so the whole bench takes a
# few minutes on 2 cores.
COUNTS = {(2 * KiB, 1): 400, (2 * KiB, 20): 4000, (100 * KiB, 1): 200, (100 * KiB, 20): 600,
          (1 * MiB, 1): 40, (1 * MiB, 20): 100, (10 * MiB, 1): 6, (10 * MiB, 20): 20}
LATENCY_COUNTS = {2 * KiB: 300, 100 * KiB: 200, 1 * MiB: 40, 10 * MiB: 8}
RUN_TIMEOUT = 300.0


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
def gateway(tmp: Path, sink_port: int, workers: str) -> Iterator[tuple[int, int]]:
    """The gateway on the shipped config and rules, relaying to the sink: (port, pid)."""
    config = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text())
    port = free_port()
    config.update({
        "listeners": [{"name": "outbound", "listen": f"127.0.0.1:{port}",
                       "direction": "outbound"}],
        "upstream": f"smtp://127.0.0.1:{sink_port}",
        "rules_dir": str(REPO / "rules"),
        "rejection_log": str(tmp / "rejections.jsonl"),
        "workers": int(workers) if workers.isdigit() else workers,
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
    """Seconds smtp-source takes to send `count` messages; fails on any refusal."""
    # -d: many messages per connection (as an MTA relaying to a gateway does).
    args = [tool("smtp-source"), "-d", "-s", str(sessions), "-m", str(count),
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


def latencies(port: int, size: int, count: int) -> list[float]:
    """Seconds per message, MAIL to the final reply, one message after the other."""
    msg = latency_message(size)
    out = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("bench.anm.gov.my")
        for _ in range(count):
            start = time.perf_counter()
            refused = client.sendmail(SENDER, [RECIPIENT], msg)
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
    args = ap.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else SIZES
    cpus = len(os.sched_getaffinity(0))
    print(f"SMTP benchmark: {cpus} CPUs, gateway workers: {args.workers}, shipped rules, "
          f"outbound {SENDER} -> {RECIPIENT}")
    rows: list[Row] = []
    lat: dict[int, tuple[list[float], list[float]]] = {}
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
                lat[size] = (latencies(port, size, n), latencies(sink_port, size, n))
        rejected = tmp / "rejections.jsonl"
        if rejected.exists() and rejected.stat().st_size:
            print(f"WARNING: the gateway logged refusals: {rejected.read_text()[:300]}")

    print()
    print("| size | sessions | msgs | gateway msg/s | direct msg/s | gateway MB/s | direct MB/s "
          "| ratio | peak RSS (MB) | RSS growth / (sessions x size) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {size_label(r.size)} | {r.sessions} | {r.count} | {r.gw_rate:.0f} "
              f"| {r.direct_rate:.0f} | {r.mbps(r.gw_s):.1f} | {r.mbps(r.direct_s):.1f} "
              f"| {r.gw_rate / r.direct_rate:.0%} | {r.peak_rss / MiB:.0f} "
              f"| {r.rss_per_message:.1f}x |")
    print()
    print("Latency, one session, messages sent one after the other (ms):")
    print()
    print("| size | msgs | gateway p50 | gateway p99 | direct p50 | direct p99 "
          "| added p50 | added p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for size, (gw, direct) in lat.items():
        g50, g99, d50, d99 = (pct(gw, 50) * 1e3, pct(gw, 99) * 1e3,
                              pct(direct, 50) * 1e3, pct(direct, 99) * 1e3)
        print(f"| {size_label(size)} | {len(gw)} | {g50:.1f} | {g99:.1f} | {d50:.1f} "
              f"| {d99:.1f} | {g50 - d50:.1f} | {g99 - d99:.1f} |")
    print()
    amavis = 77.0  # msg/s at 2 KB, the top of the amavisd-new figure
    for r in rows:
        if r.size == 2 * KiB and r.sessions == 20:
            print(f"2 KB x20: {r.gw_rate:.0f} msg/s (target >= 1000 and >= 10x amavisd-new's "
                  f"{amavis:.0f}: {'met' if r.gw_rate >= max(1000, 10 * amavis) else 'NOT met'})")
        if r.size == 10 * MiB:
            ratio = r.mbps(r.gw_s) / r.mbps(r.direct_s)
            print(f"10 MB x{r.sessions}: {ratio:.0%} of the direct path's MB/s "
                  f"(target >= 50 %: {'met' if ratio >= 0.5 else 'NOT met'})")
    if 100 * KiB in lat:
        gw, direct = lat[100 * KiB]
        added = (pct(gw, 99) - pct(direct, 99)) * 1e3
        print(f"100 KB x1: added p99 latency {added:.1f} ms "
              f"(target <= 10 ms: {'met' if added <= 10 else 'NOT met'})")
    worst = max(r.rss_per_message for r in rows if r.size >= MiB)
    print(f">= 1 MB: worst RSS growth per message in flight {worst:.1f}x its size "
          f"(target <= 2x: {'met' if worst <= 2 else 'NOT met'})")
    print("(percentiles by rank; RSS sampled every 10 ms, total of the gateway's processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
