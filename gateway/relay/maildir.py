"""Delivery into a Maildir, durable before the gateway says 250.

The message is written to `tmp/`, fsynced, renamed into `new/` and the `new/`
directory fsynced, so an acknowledged message survives a power cut. The bytes
are exactly those given: no trace header is added. Blocking: run it in a thread.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path

_counter = itertools.count(1)


def ensure(maildir: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)


def unique_name() -> str:
    # The classic Maildir recipe: time, pid + per-process counter, host.
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{next(_counter)}.{host}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def deliver(maildir: Path, message: bytes) -> Path:
    """Write one message durably; returns its path in `new/`."""
    ensure(maildir)
    name = unique_name()
    tmp = maildir / "tmp" / name
    final = maildir / "new" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        view = memoryview(message)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    return final
