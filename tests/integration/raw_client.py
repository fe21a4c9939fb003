"""A raw-socket SMTP client for tests that must send exactly the bytes they mean.

smtplib normalises line endings and stuffs dots, which hides exactly what the
smuggling, limit and spool tests are about. Every read has a timeout.
"""

from __future__ import annotations

import re
import socket

TIMEOUT = 5.0
_LAST_LINE = re.compile(rb"(?:^|\r\n)(\d{3}) [^\r\n]*\r\n$")


class RawClient:
    """One connection; `reply()` reads one whole (multi-line) reply."""

    def __init__(self, addr: tuple[str, int], timeout: float = TIMEOUT,
                 source: str | None = None) -> None:
        # `source`: a loopback address to connect from (any of 127.0.0.0/8 works on Linux).
        self.sock = socket.create_connection(
            addr, timeout=timeout, source_address=None if source is None else (source, 0))
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, bytes]:
        """The next reply: (code, every line joined by CRLF). (0, b'') at end of stream."""
        while True:
            end = self._complete()
            if end is not None:
                text, self._buf = self._buf[:end], self._buf[end:]
                return int(text[:3]), text.rstrip(b"\r\n")
            chunk = self.sock.recv(65536)
            if not chunk:
                return 0, self._buf
            self._buf += chunk

    def _complete(self) -> int | None:
        start = 0
        while True:
            nl = self._buf.find(b"\r\n", start)
            if nl < 0:
                return None
            line = self._buf[start:nl]
            if (len(line) >= 4 and line[3:4] == b" ") or len(line) == 3:
                return nl + 2
            start = nl + 2

    def command(self, line: bytes) -> tuple[int, bytes]:
        self.send(line + b"\r\n")
        return self.reply()

    def rest(self) -> bytes:
        """Everything the server still sends until it closes (bounded by the timeout)."""
        data, self._buf = self._buf, b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except (TimeoutError, ConnectionError):
            return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_transaction(addr: tuple[str, int], sender: bytes = b"a@anm.gov.my",
                     rcpt: bytes = b"b@example.com") -> RawClient:
    """A connection that got 220, EHLO, MAIL, RCPT and DATA (354) accepted."""
    c = RawClient(addr)
    try:
        for line, want in ((None, 220), (b"EHLO client.test", 250),
                           (b"MAIL FROM:<" + sender + b">", 250),
                           (b"RCPT TO:<" + rcpt + b">", 250), (b"DATA", 354)):
            code, text = c.reply() if line is None else c.command(line)
            if code != want:
                raise AssertionError(f"{line!r}: {code} {text!r}")
    except BaseException:
        c.close()
        raise
    return c
