"""The lockstep upstream SMTP session: one command out, the upstream's own reply back.

The proxy forwards MAIL and RCPT as the client sends them and passes the
upstream's replies (code, enhanced code, every text line) straight back, so the
client hears the real next hop. The message is sent exactly as given apart from
dot-stuffing; no library re-serialises or normalises line endings on the way
(aiosmtplib rewrites bare LF to CRLF, so it is not used here).

Every read and write is bounded by a timeout. Anything that stops the
conversation (refused connection, timeout, dropped connection, garbage reply)
raises UpstreamUnavailable; the caller answers 451 4.4.1 and drops the session.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

_REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*?)\r?\n$", re.DOTALL)
MAX_REPLY_LINES = 100
WRITE_CHUNK = 256 * 1024


class UpstreamUnavailable(Exception):
    """The upstream could not be reached or stopped answering properly."""


@dataclass(frozen=True)
class UpstreamReply:
    code: int
    lines: tuple[str, ...]  # text after "NNN-" / "NNN ", enhanced code included

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    def render(self) -> str:
        """The reply as the client should see it, multi-line kept, control chars removed."""
        out = []
        for i, line in enumerate(self.lines):
            clean = "".join(ch if ch.isprintable() else " " for ch in line).rstrip()
            sep = " " if i == len(self.lines) - 1 else "-"
            out.append(f"{self.code}{sep}{clean}".rstrip())
        return "\r\n".join(out)


def dot_stuff(message: bytes) -> bytes:
    """The message as it goes on the wire before the final `.` line (RFC 5321 4.5.2)."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if stuffed and not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed


class UpstreamSession:
    """One connection to the upstream SMTP server, driven one command at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self._reader = reader
        self._writer = writer
        self.timeout = timeout
        self.extensions: dict[str, str] = {}
        self.in_transaction = False
        self.closed = False

    @classmethod
    async def connect(cls, host: str, port: int, *, helo_name: str, connect_timeout: float,
                      timeout: float) -> UpstreamSession:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=64 * 1024), connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise UpstreamUnavailable(f"connect to {host}:{port}: {exc!r}") from exc
        session = cls(reader, writer, timeout)
        try:
            greeting = await session.read_reply()
            if greeting.code != 220:
                raise UpstreamUnavailable(f"greeting {greeting.code}")
            ehlo = await session.command(f"EHLO {helo_name}")
            if ehlo.ok:
                for line in ehlo.lines[1:]:
                    key, _, value = line.partition(" ")
                    session.extensions[key.upper()] = value
            else:
                helo = await session.command(f"HELO {helo_name}")
                if not helo.ok:
                    raise UpstreamUnavailable(f"HELO refused with {helo.code}")
        except BaseException:
            session.abort()
            raise
        return session

    async def read_reply(self) -> UpstreamReply:
        lines: list[str] = []
        code: int | None = None
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    raw = await self._reader.readline()
                    if not raw.endswith(b"\n"):
                        raise UpstreamUnavailable("connection closed by upstream")
                    m = _REPLY_LINE.match(raw)
                    if m is None or (code is not None and int(m.group(1)) != code):
                        raise UpstreamUnavailable("malformed reply from upstream")
                    code = int(m.group(1))
                    lines.append(m.group(3).decode("utf-8", "replace"))
                    if m.group(2) == b" ":
                        return UpstreamReply(code, tuple(lines))
                    if len(lines) >= MAX_REPLY_LINES:
                        raise UpstreamUnavailable("reply from upstream too long")
        except TimeoutError as exc:
            self.abort()
            raise UpstreamUnavailable("upstream timed out") from exc
        except (OSError, ValueError, asyncio.LimitOverrunError) as exc:
            self.abort()
            raise UpstreamUnavailable(f"reading from upstream: {exc!r}") from exc
        except UpstreamUnavailable:
            self.abort()
            raise

    async def _send(self, data: bytes) -> None:
        if self.closed:
            raise UpstreamUnavailable("upstream connection already closed")
        try:
            async with asyncio.timeout(self.timeout):
                for start in range(0, len(data), WRITE_CHUNK):
                    self._writer.write(data[start:start + WRITE_CHUNK])
                    await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            self.abort()
            raise UpstreamUnavailable(f"writing to upstream: {exc!r}") from exc

    async def command(self, line: str) -> UpstreamReply:
        await self._send(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return await self.read_reply()

    async def mail(self, sender: str, params: list[str]) -> UpstreamReply:
        tail = "".join(" " + p for p in params)
        reply = await self.command(f"MAIL FROM:<{sender}>{tail}")
        self.in_transaction = reply.ok
        return reply

    async def rcpt(self, recipient: str) -> UpstreamReply:
        return await self.command(f"RCPT TO:<{recipient}>")

    async def rset(self) -> None:
        """End any open transaction; an upstream that will not RSET is dropped."""
        if self.closed or not self.in_transaction:
            return
        self.in_transaction = False
        reply = await self.command("RSET")
        if not reply.ok:
            self.abort()

    async def data(self, message: bytes) -> UpstreamReply:
        """DATA, the message, the final dot; the upstream's reply to the whole message."""
        go = await self.command("DATA")
        if go.code != 354:
            return go
        await self._send(dot_stuff(message) + b".\r\n")
        reply = await self.read_reply()
        self.in_transaction = False
        return reply

    async def quit(self) -> None:
        if self.closed:
            return
        try:
            await self.command("QUIT")
        except UpstreamUnavailable:
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.in_transaction = False
            self._writer.close()
