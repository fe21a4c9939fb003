"""The lockstep upstream SMTP session: one command out, the upstream's own reply back.

The proxy forwards MAIL and RCPT as the client sends them and passes the
upstream's replies (code, enhanced code, every text line) straight back, so the
client hears the real next hop. The message is sent exactly as given apart from
dot-stuffing; no library re-serialises or normalises line endings on the way
(aiosmtplib rewrites bare LF to CRLF, so it is not used here).

Every read and write is bounded by a timeout. Anything that stops the
conversation (refused connection, timeout, dropped connection, garbage reply)
raises UpstreamUnavailable; the caller answers 451 4.4.1 and drops the session.

With `tls.upstream.mode` opportunistic (STARTTLS when offered) or required, the
session upgrades right after EHLO and says EHLO again. When TLS was to be used and
fails (not offered under `required`, handshake or certificate verification
failure) it raises UpstreamTlsFailed, a kind of UpstreamUnavailable: the message
is tempfailed, never sent in plaintext instead.

An upstream that lists XFORWARD in its EHLO reply (Postfix with
smtpd_authorized_xforward_hosts) is told the real client before each MAIL, the
attributes it listed and no others, as Postfix's own smtpd_proxy.c does.

DATA can also be driven piece by piece (`begin_data`, `send_data`, `end_data`) for
the proxy's cut-through, which relays a message while it still arrives. Such a
message is called off with `discard`: the connection is dropped before the final
dot. Only the end-of-data indicator completes a mail transaction (RFC 5321 4.1.1.4),
and a server whose connection is lost must act as on RSET, cancelling the pending
transaction (RFC 5321 3.8). Dot-stuffing (`DotStuffer`) holds back a trailing CRLF,
so nothing sent before the final dot can end the data.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.frontends.xforward import upstream_commands
from gateway.tls import client_context

if TYPE_CHECKING:
    from gateway.config import UpstreamTlsSettings

log = logging.getLogger(__name__)

_REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*?)\r?\n$", re.DOTALL)
MAX_REPLY_LINES = 100
WRITE_CHUNK = 256 * 1024


class UpstreamUnavailable(Exception):
    """The upstream could not be reached or stopped answering properly."""


class UpstreamTlsFailed(UpstreamUnavailable):
    """TLS to the upstream was required or started, and could not be established."""


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


class DotStuffer:
    """`dot_stuff` for a message that arrives in pieces: same bytes out, piece by piece.

    A piece's trailing CR or CRLF (a possible start of CRLF + '.') waits for the next
    piece; the stream starts as if after a CRLF, so a leading '.' is stuffed too.
    """

    def __init__(self) -> None:
        self._carry = b"\r\n"
        self._skip = 2  # the virtual CRLF in front of the message is never sent
        self._tail = b""  # last two bytes sent, to know whether the message ends in CRLF

    def _out(self, data: bytes) -> bytes:
        if self._skip:
            cut = min(self._skip, len(data))
            data, self._skip = data[cut:], self._skip - cut
        if data:
            self._tail = (self._tail + data)[-2:]
        return data

    def feed(self, piece: bytes) -> bytes:
        if not piece:
            return b""
        data = self._carry + piece
        keep = 2 if data.endswith(b"\r\n") else 1 if data.endswith(b"\r") else 0
        self._carry = data[len(data) - keep:]
        return self._out(data[:len(data) - keep].replace(b"\r\n.", b"\r\n.."))

    def end(self) -> bytes:
        """What is still held, and the CRLF the final '.' line needs before it."""
        out = self._out(self._carry)
        self._carry = b""
        if self._tail != b"\r\n" and (out or self._tail):
            out += b"\r\n"
        return out


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
        self.tls_version: str | None = None  # e.g. "TLSv1.3" once STARTTLS succeeded
        self.opened_at = time.monotonic()
        self.closing = False  # the upstream said 421: it is closing the connection

    @property
    def reusable(self) -> bool:
        """Between transactions and healthy, so another transaction may use it
        (gateway.relay.connection_cache): open, no transaction, no 421 heard, and
        nothing unread (an upstream's unsolicited 421 on idle would be read as the
        next command's reply)."""
        buffered = self._reader._buffer  # type: ignore[attr-defined]  # no public peek
        return (not self.closed and not self.in_transaction and not self.closing
                and not self._reader.at_eof() and not buffered)

    @classmethod
    async def connect(cls, host: str, port: int, *, helo_name: str, connect_timeout: float,
                      timeout: float, tls: UpstreamTlsSettings | None = None
                      ) -> UpstreamSession:
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
            await session.hello(helo_name)
            if tls is not None and tls.mode != "none":
                await session.starttls(tls, host, helo_name)
        except BaseException:
            session.abort()
            raise
        return session

    async def hello(self, helo_name: str) -> None:
        """EHLO (HELO if refused); the advertised extensions are kept for MAIL parameters."""
        self.extensions = {}
        ehlo = await self.command(f"EHLO {helo_name}")
        if ehlo.ok:
            for line in ehlo.lines[1:]:
                key, _, value = line.partition(" ")
                self.extensions[key.upper()] = value
        else:
            helo = await self.command(f"HELO {helo_name}")
            if not helo.ok:
                raise UpstreamUnavailable(f"HELO refused with {helo.code}")

    async def starttls(self, tls: UpstreamTlsSettings, host: str, helo_name: str) -> None:
        """Upgrade to TLS as `tls.mode` says, then EHLO again (RFC 3207 4.2)."""
        required = tls.mode == "required"
        if "STARTTLS" not in self.extensions:
            if required:
                raise UpstreamTlsFailed("TLS required but the upstream does not offer STARTTLS")
            return
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            if required:
                raise UpstreamTlsFailed(f"TLS required but STARTTLS refused with {reply.code}")
            # Opportunistic: the upstream offered and then declined; RFC 3207 lets the
            # client carry on in plaintext, as it would have without the offer.
            return
        buffered: bytearray = self._reader._buffer  # type: ignore[attr-defined]
        if buffered:
            # Bytes sent in plaintext behind the 220 would be read as if they came over
            # TLS (the client side of CVE-2011-0411): a broken or hostile upstream.
            raise UpstreamTlsFailed("upstream sent data after its 220 to STARTTLS")
        server_name = tls.server_name or host
        try:
            async with asyncio.timeout(self.timeout):
                await self._writer.start_tls(client_context(tls), server_hostname=server_name,
                                             ssl_handshake_timeout=self.timeout)
        except TimeoutError as exc:
            raise UpstreamTlsFailed("TLS handshake with upstream timed out") from exc
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamTlsFailed(f"upstream certificate not accepted for {server_name}: "
                                    f"{exc.verify_message or exc}") from exc
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UpstreamTlsFailed(f"TLS handshake with upstream failed: {exc!r}") from exc
        ssl_object = self._writer.get_extra_info("ssl_object")
        self.tls_version = ssl_object.version() if ssl_object is not None else "TLS"
        log.debug("upstream %s: STARTTLS done, %s", host, self.tls_version)
        await self.hello(helo_name)

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
                        if code == 421:
                            self.closing = True
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

    async def xforward(self, attributes: Mapping[str, str | None]) -> None:
        """XFORWARD the client's attributes when the upstream offers XFORWARD. Like
        Postfix's proxy client, a refusal is the upstream failing: the session ends."""
        offered = self.extensions.get("XFORWARD")
        if offered is None:
            return
        for line in upstream_commands(attributes, offered.split()):
            reply = await self.command(line)
            if not reply.ok:
                self.abort()
                raise UpstreamUnavailable(f"XFORWARD refused with {reply.code}")

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

    async def data_stream(self, pieces: AsyncIterable[bytes], *, begin: bool = True
                          ) -> UpstreamReply:
        """As `data`, with the message given in pieces (a spooled message, read in
        large blocks), dot-stuffed on the way so no whole stuffed copy is ever made.
        `begin=False`: DATA was already sent and answered 354 (`begin_data`)."""
        if begin:
            go = await self.begin_data()
            if go.code != 354:
                return go
        stuffer = DotStuffer()
        async for piece in pieces:
            out = stuffer.feed(piece)
            if out:
                await self._send(out)
        return await self.end_data(stuffer.end())

    async def begin_data(self) -> UpstreamReply:
        """The DATA command; its reply (354: send the message)."""
        return await self.command("DATA")

    async def send_data(self, wire: bytes) -> None:
        """Message bytes already dot-stuffed (`DotStuffer.feed`), never the final dot."""
        await self._send(wire)

    async def end_data(self, tail: bytes) -> UpstreamReply:
        """What the stuffer still holds (`DotStuffer.end`), then the final dot: the
        upstream's reply to the whole message."""
        await self._send(tail + b".\r\n")
        reply = await self.read_reply()
        self.in_transaction = False
        return reply

    def discard(self) -> None:
        """Call off a message in the middle of DATA: drop the connection (a reset, so
        nothing still buffered is sent after all) with the final dot never sent."""
        if not self.closed:
            self.closed = True
            self.in_transaction = False
            transport = self._writer.transport
            transport.abort()

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
