"""Inspection time and peak memory for 2 KB, 1 MB and 25 MB messages, a 10 MB text
body, and for one document of each format the readers know (`make bench`).

Each message goes through `gateway.pipeline.inspect` with the shipped config and
rules (inbound from outside to the agency: every shipped rule runs to the end),
and through a direct path measured in the same run: the stdlib parse
(`email.message_from_bytes`, compat32) plus walking every part and decoding its
payload. The ratio says what the policy costs over reading the message at all.

Time: median of N runs. Memory: tracemalloc peak of one extra run (Python
allocations, i.e. the copies of the message the inspection makes; the direct
path's peak beside it) and the growth
of the process's peak RSS across the whole size (what the OS saw). Not a test:
nothing is asserted; numbers depend on the machine.
"""

# ruff: noqa: E402  (the path fix below must run before any import)
from __future__ import annotations

import os
import sys

# This file is named like the stdlib's `inspect`; drop its directory from the path
# so that `import inspect` (dataclasses, pydantic...) finds the real one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import argparse
import base64
import email
import email.policy
import functools
import gc
import random
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.pipeline import inspect
from gateway.policy_state import PolicyState, load_policy_for
from tests.support.corpus import wrap

KiB, MiB = 1024, 1024 * 1024
# Inbound from outside: no sender-size rule stops early, every shipped rule runs.
ENV = Envelope(direction="inbound", listener="bench", client_ip="127.0.0.1", helo="bench",
               mail_from="luar@example.org", rcpt_to=("pegawai@anm.gov.my",))
PROSE = ("Dengan hormatnya dimaklumkan bahawa mesyuarat jawatankuasa akan diadakan "
         "seperti berikut. Sila rujuk https://www.anm.gov.my/pekeliling untuk butiran. ")


def message(size: int, pdf: bool = False) -> bytes:
    """A realistic message of about `size` bytes: text + HTML body, then an
    attachment of incompressible bytes filling the rest (base64 on the wire).
    `pdf`: the attachment starts like a PDF, so the PDF reader tries it (and finds
    no pages: the worst case for it)."""
    rng = random.Random(size)
    text = (PROSE * (1 + min(size, 64 * KiB) // (2 * len(PROSE))))[: max(200, size // 4)]
    html = "<html><body><p>" + text.replace(". ", ".</p><p>") + "</p></body></html>"
    head = ("From: Pegawai <pegawai@anm.gov.my>\r\nTo: penerima@example.org\r\n"
            "Subject: Minit Mesyuarat Bil. 4/2025\r\nDate: Mon, 03 Mar 2025 09:00:00 +0800\r\n"
            "Message-ID: <bench@anm.gov.my>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="m"\r\n\r\n')
    body = ('--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
            "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + "\r\n"
            "--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n--a--\r\n")
    raw = (head + body).encode()
    room = size - len(raw) - 300
    if room <= 0:
        return raw + b"--m--\r\n"
    data = (b"%PDF-1.4\n" if pdf else b"") + rng.randbytes(room * 3 // 4)
    name = b"lampiran.pdf" if pdf else b"lampiran.bin"
    ctype = b"application/pdf" if pdf else b"application/octet-stream"
    attachment = (b"--m\r\nContent-Type: " + ctype + b'; name="' + name + b'"\r\n'
                  b'Content-Disposition: attachment; filename="' + name + b'"\r\n'
                  b"Content-Transfer-Encoding: base64\r\n\r\n"
                  + base64.encodebytes(data).replace(b"\n", b"\r\n"))
    return raw + attachment + b"--m--\r\n"


def text_message(size: int) -> bytes:
    """A message whose one part is a text body of about `size` bytes: Malay prose in
    short lines where the marking words occur in prose (`maklumat sulit`, `tempat
    terhad`), as in real mail, so no cheap word test skips the line-by-line rules."""
    head = (b"From: Pegawai <pegawai@anm.gov.my>\r\nTo: penerima@example.org\r\n"
            b"Subject: Laporan Bil. 4/2025\r\nDate: Mon, 03 Mar 2025 09:00:00 +0800\r\n"
            b"Message-ID: <bench-text@anm.gov.my>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n")
    lines = [PROSE[i:i + 72].strip() for i in range(0, len(PROSE), 72)]
    lines += ["Maklumat ini sulit dan hanya untuk penerima.",
              "Tempat terhad: sila daftar segera."]
    block = ("\r\n".join(lines) + "\r\n").encode()
    return head + block * max(1, (size - len(head)) // len(block))


def direct(raw: bytes) -> None:
    """Reading the message at all: parse, walk, decode every leaf."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in msg.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)


def timed(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB  # Linux: KiB


def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd (antivirus: none): the figures are the gateway's own; a scan adds
    # clamd's time, which is clamd's to measure, and no bench machine runs one.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


# One line per document format: the largest corpus file of each kind, as the one
# attachment of a message (the same wrapping the corpus test uses).
FORMATS = ("docx", "xlsx", "pptx", "doc", "xls", "ppt", "odt", "ods", "odp", "fodt", "fods", "rtf",
           "pdf", "msg", "dat", "zip")
CORPUS = REPO / "tests" / "corpus" / "cases"


def _marked(path: Path) -> bool:
    """The corpus sidecar says the file is marked and not encrypted: the reader has to
    find the marking (an encrypted file's reader stops at its encryption)."""
    sidecar = path.with_name(path.name + ".expect.yaml")
    if not sidecar.is_file():
        return False
    text = sidecar.read_text()
    return "classification: null" not in text and "classification:" in text and \
        "encrypted:\n- true" not in text


def format_cases() -> list[tuple[str, Path]]:
    """(extension, file) for each format the corpus has a file of: the largest marked
    one (the reader must find its marking), else the largest."""
    found: list[tuple[str, Path]] = []
    for ext in FORMATS:
        files = sorted(CORPUS.rglob(f"*.{ext}"),
                       key=lambda p: (_marked(p), p.stat().st_size, p.name))
        if files:
            found.append((ext, files[-1]))
    return found


@dataclass(frozen=True)
class Measured:
    """One message through the policy and through the direct path, in the same run."""

    t_inspect: float  # seconds, median
    t_direct: float
    py_peak: int  # bytes (tracemalloc)
    direct_peak: int
    verdict: str  # outcome and deciding rule

    def columns(self) -> str:
        return (f"{self.t_inspect * 1000:>8.2f}ms {self.t_direct * 1000:>8.2f}ms "
                f"{self.t_inspect / self.t_direct:>6.1f} {self.py_peak / MiB:>8.2f}MB")


def measure(state: PolicyState, raw: bytes, runs: int) -> Measured:
    verdict = inspect(state, raw, ENV).verdict
    run_inspect = functools.partial(inspect, state, raw, ENV)
    run_direct = functools.partial(direct, raw)
    return Measured(timed(run_inspect, runs), timed(run_direct, runs), peak(run_inspect),
                    peak(run_direct), f"{verdict.outcome.value} {verdict.rule_id or ''}")


def bench_formats(state: PolicyState, runs: int) -> None:
    print(f"\n{'format':>8} {'file':>9} {'runs':>5} {'inspect':>10} {'direct':>10} "
          f"{'ratio':>6} {'py peak':>10} {'direct pk':>10}  verdict (file)")
    for ext, path in format_cases():
        m = measure(state, wrap(path.name, path.read_bytes()), runs)
        print(f"{ext:>8} {path.stat().st_size / KiB:>7.1f}KB {runs:>5} {m.columns()} "
              f"{m.direct_peak / MiB:>8.2f}MB  {m.verdict} ({path.relative_to(CORPUS)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=0, help="runs per size (default: by size)")
    ap.add_argument("--pdf", action="store_true",
                    help="make the attachment a (broken) PDF: measures the PDF reader too")
    args = ap.parse_args()
    state = policy()
    print(f"{'size':>8} {'runs':>5} {'inspect':>10} {'direct':>10} {'ratio':>6} "
          f"{'py peak':>10} {'peak/size':>9} {'direct pk':>10} {'rss +':>9}  verdict")
    # The text body before the 25 MB message: the process's peak RSS only grows.
    for label, size, runs in (("2 KB", 2 * KiB, 200), ("1 MB", MiB, 20),
                              ("10 MB txt", 10 * MiB, 5), ("25 MB", 25 * MiB, 5)):
        raw = text_message(size) if label.endswith("txt") else message(size, args.pdf)
        runs = args.runs or runs
        rss_before = maxrss()
        m = measure(state, raw, runs)
        rss = maxrss() - rss_before
        print(f"{label:>8} {runs:>5} {m.columns()} {m.py_peak / len(raw):>8.1f}x "
              f"{m.direct_peak / MiB:>8.2f}MB {rss / MiB:>7.1f}MB  {m.verdict}")
    bench_formats(state, args.runs or 20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
