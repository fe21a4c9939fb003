"""The DATA stream of one transaction: where a message ends, what it holds, where it is kept.

`DataDecoder` turns the wire bytes after 354 into the message: it ends the message
only at CRLF.CRLF and undoes dot-stuffing. It is the gateway's defence against SMTP
smuggling: every other end-of-data look-alike (`\\n.\\n`, `\\n.\\r\\n`, `\\r.\\r\\n`,
`\\r\\n.\\r`, NUL forms) stays inside the one message, and because a next hop may read
one of those as the end, the message never leaves with a bare CR, bare LF or NUL in
it: under `limits.bare_newlines: reject` it is refused, under `normalize` each bare
CR or LF becomes CRLF and each NUL is dropped before inspection and relay (the one
exception to byte-exact relay). Its optional `tap` sees each clean piece as it is made
(the proxy's cut-through relays them while the message still arrives); a refused
message stops feeding it at the first piece it would not relay.

`Spool` keeps the message: in memory up to `limits.spool_threshold`, then in a
mode-0600 temporary file, so a flood of large messages costs disk, not memory. The
owner closes it when the transaction ends, whatever happens; closing deletes the file.
With a `reader` (config `limits.decode_on_arrival`, on by default: the inspection pool's
`read_on_arrival`) a spooled message is also read as it arrives, by an inspection
process that follows the spool file as it grows (`gateway.message.prescan`): its
base64 parts (nested ones too) are decoded into a second mode-0600 file beside it, which the
inspection reads instead of decoding them after the final dot (`arrived`). That
file is an aid, never needed: with no process to spare, or if it cannot be written,
or when the pool takes the process back for an inspection, the inspection decodes
everything itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal, Protocol

from gateway.message.prescan import Prescanned

BareNewlines = Literal["reject", "normalize"]

# File writes happen on the event loop: a page-cache write of this size takes well under
# a millisecond, while a thread hop per network chunk would cost more than it saves.
FLUSH_SIZE = 1024 * 1024
READ_SIZE = 1024 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")


class ArrivalLease(Protocol):
    """Another process reading the spool file as it grows (gateway.frontends.pool)."""

    async def finish(self, size: int, timeout: float) -> Prescanned | None: ...

    def stop(self) -> None: ...


# (spool file, decoded file) -> a process reading the first as it grows, decoding
# into the second; None when none can be spared.
ArrivalReader = Callable[[str, str], ArrivalLease | None]


def bare_in(piece: bytes) -> str | None:
    """What makes `piece` unsafe to relay (bare CR, bare LF, NUL), or None."""
    crlf = piece.count(b"\r\n")
    if piece.count(b"\n") != crlf:
        return "bare LF"
    if piece.count(b"\r") != crlf:
        return "bare CR"
    if b"\x00" in piece:
        return "NUL"
    return None


def normalize(piece: bytes) -> bytes:
    """Every bare CR or LF as CRLF, NULs dropped."""
    return _LINE_END.sub(b"\r\n", piece.replace(b"\x00", b""))


class Spool:
    """The message bytes: memory below the threshold, a private temporary file above it."""

    def __init__(self, threshold: int, directory: Path | None = None, *,
                 reader: ArrivalReader | None = None) -> None:
        self.threshold = threshold
        self.directory = directory
        self.reader = reader
        self.size = 0
        self.path: str | None = None
        self.error: OSError | None = None
        self._mem = bytearray()
        self._fd: int | None = None
        self._dropped = False
        self._lease: ArrivalLease | None = None
        self._decoded_fd: int | None = None
        self._decoded_path: str | None = None

    def write(self, piece: bytes) -> None:
        if self._dropped:
            return
        self.size += len(piece)
        self._mem += piece
        try:
            self._store()
        except OSError as first:
            error = first
            if self._decoded_fd is not None:
                # The decoded file is an aid: its space goes to the message first.
                self._stop_reading()
                try:
                    self._store()
                    return
                except OSError as again:
                    error = again
            # A full or broken disk: keep draining the client, answer 451 at the end.
            self.error = error
            self.drop()

    def _store(self) -> None:
        if self._fd is None:
            if len(self._mem) > self.threshold:
                # mkstemp creates the file 0600 with O_EXCL: no other user reads it.
                self._fd, self.path = tempfile.mkstemp(
                    prefix="gateway-", suffix=".msg", dir=self.directory)
                if self.reader is not None:
                    self._start_reading(self.reader, self.path)
                self._flush()
        elif len(self._mem) >= FLUSH_SIZE:
            self._flush()

    def _flush(self) -> None:
        assert self._fd is not None
        write_all(self._fd, self._mem)

    def _start_reading(self, reader: ArrivalReader, path: str) -> None:
        """Have another process read the spool file from its first byte as it grows
        (nothing is written to it yet), when one can be spared."""
        try:
            fd, decoded = tempfile.mkstemp(prefix="gateway-", suffix=".dec",
                                           dir=self.directory)
        except OSError:
            return  # no room for the aid: the inspection decodes everything itself
        try:
            lease = reader(path, decoded)
        except OSError:
            lease = None  # no process to be had (out of descriptors): as without one
        if lease is None:
            _remove(fd, decoded)
            return
        self._lease, self._decoded_fd, self._decoded_path = lease, fd, decoded

    async def arrived(self, timeout: float) -> tuple[Prescanned, str] | None:
        """What was read of the message as it arrived and the file holding its
        decoded parts, once everything is written (`sync`); None when nothing was read,
        the reading was stopped or failed, or it did not finish in `timeout` seconds."""
        lease, self._lease = self._lease, None
        if lease is None or self._decoded_path is None:
            return None
        found = await lease.finish(self.size, timeout)
        if found is None or self._decoded_path is None:
            self._stop_reading()
            return None
        return found, self._decoded_path

    def _stop_reading(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.stop()
        fd, path = self._decoded_fd, self._decoded_path
        self._decoded_fd = self._decoded_path = None
        if fd is not None:
            # The reading process may still hold the file open: emptied, its space
            # is free at once (a full disk wants it for the message).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        _remove(fd, path)

    def drop(self) -> None:
        """Keep nothing more (oversize or refused message): free memory and disk now."""
        self._dropped = True
        self._mem = bytearray()
        self.close()

    @property
    def spooled(self) -> bool:
        return self.path is not None

    def sync(self) -> None:
        """Write what is still buffered to the file, so another process can read the
        whole message there (an inspection process, gateway.frontends.pool)."""
        if self._fd is not None:
            self._flush()

    def read(self) -> bytes:
        """The whole message as one bytes object (blocking: call it in a worker thread)."""
        if self._fd is None:
            data = bytes(self._mem)
            self._mem = bytearray()
            return data
        self._flush()
        return os.pread(self._fd, self.size, 0)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The spooled message in large pieces, read off the event loop."""
        assert self._fd is not None
        self._flush()
        offset = 0
        while offset < self.size:
            piece = await asyncio.to_thread(os.pread, self._fd, READ_SIZE, offset)
            if not piece:
                raise OSError("spool file shorter than the message")
            offset += len(piece)
            yield piece

    def close(self) -> None:
        """Delete the files (if any), stop their reading. Idempotent."""
        self._stop_reading()
        fd, path = self._fd, self.path
        self._fd = None
        self.path = None
        _remove(fd, path)


def write_all(fd: int, data: bytearray) -> None:
    """All of `data` to the file (os.write may write less than asked), taken out of
    `data` as it is written: after an OSError, `data` holds what was not written."""
    written = 0
    view = memoryview(data)
    try:
        while written < len(view):
            written += os.write(fd, view[written:])
    finally:
        view.release()
        del data[:written]


def _remove(fd: int | None, path: str | None) -> None:
    """Close and delete a private file (either may be gone already)."""
    if fd is not None:
        os.close(fd)
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class DataDecoder:
    """The DATA stream -> message bytes: ends only at CRLF.CRLF, undoes dot-stuffing.

    Sans-io apart from the spool, and bounded: once the message passes `limit`, or
    holds a bare newline under `reject`, the bytes are dropped and only counted, so
    the message is drained in constant memory and refused at the end, as RFC 5321
    4.2.5 implies.
    """

    def __init__(self, limit: int, *, bare_newlines: BareNewlines = "reject",
                 spool: Spool | None = None, tap: Callable[[bytes], None] | None = None
                 ) -> None:
        """`tap` sees every piece the spool gets, in order, as it is made (the proxy's
        cut-through relays them while the rest arrives). A piece never splits a CRLF
        and is never part of a refused message: once the message is refused (too big,
        a bare newline under `reject`) the tap gets nothing more."""
        self.limit = limit
        self.bare_newlines = bare_newlines
        self.spool = spool if spool is not None else Spool(threshold=limit + 1)
        self.tap = tap
        self.size = 0
        self.too_big = False
        self.bare: str | None = None  # the first bare CR/LF/NUL seen, if any
        self.done = False
        self._pending = b""
        self._bol = True  # the DATA stream starts at the beginning of a line

    @property
    def refused(self) -> bool:
        return self.too_big or (self.bare is not None and self.bare_newlines == "reject")

    def _emit(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.refused:
            return
        if self.size > self.limit:
            self.too_big = True
            self.spool.drop()
            return
        found = bare_in(piece)
        if found is not None:
            if self.bare is None:
                self.bare = found
            if self.bare_newlines == "reject":
                self.spool.drop()
                return
            piece = normalize(piece)
        self.spool.write(piece)
        if self.tap is not None:
            self.tap(piece)

    def feed(self, chunk: bytes) -> bytes | None:
        """Consume wire bytes. Once the end is seen, returns what followed it (maybe b'').

        Every piece emitted either ends in CRLF or ends in neither CR nor LF (a final
        CR is held back), so a CRLF is never split between pieces and `bare_in` can
        look at each piece on its own.
        """
        buf = self._pending + chunk if self._pending else chunk
        self._pending = b""
        i, n = 0, len(buf)
        while True:
            if self._bol:
                if i >= n:
                    return None
                if buf[i] == 0x2E:  # '.' at the start of a line
                    if n - i < 2 or (buf[i + 1] == 0x0D and n - i < 3):
                        self._pending = buf[i:]
                        return None
                    if buf[i + 1] == 0x0D and buf[i + 2] == 0x0A:
                        self.done = True
                        return buf[i + 3:]
                    i += 1  # a stuffed dot
                self._bol = False
            j = buf.find(b"\r\n.", i)
            if j < 0:
                if n - i >= 2 and buf[n - 2] == 0x0D and buf[n - 1] == 0x0A:
                    self._emit(buf[i:n])
                    self._bol = True
                elif n > i and buf[n - 1] == 0x0D:
                    # A CR at the end may begin the CRLF of a line that starts with '.'.
                    self._emit(buf[i:n - 1])
                    self._pending = b"\r"
                else:
                    self._emit(buf[i:n])
                return None
            self._emit(buf[i:j + 2])
            i = j + 2
            self._bol = True

    def message(self) -> bytes:
        """The message held in memory or spooled (blocking when spooled)."""
        return self.spool.read()
