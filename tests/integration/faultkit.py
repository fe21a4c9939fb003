"""Fault injection for the reliability tests: a scripted upstream and a raw SMTP client.

`ScriptedUpstream` is a real SMTP server on loopback whose misbehaviour is chosen
per transaction, so many concurrent transactions can each meet a different fault:
the envelope sender's local part carries it after a `+` (`m17+slow-rcpt@...`), or,
without one, the next entry of `queued` is used. A fault is `KIND-STAGE`:

  tempfail-S   answer 451 4.3.0 at stage S        permfail-S  answer 554 5.7.1
  slow-S       sleep `slow` seconds, then answer  lag-S       sleep `lag` seconds
  close-S      close the connection, no answer    hangup-S    answer, then close
  drop-body    close after the first bytes of the message (mid-DATA)

with S one of mail, rcpt, data (the 354), end (the reply after the final dot).
Like a real MTA, a message is kept when its final dot has been read and the END
answer is 2xx, before that answer is written (so `slow-end` keeps it: RFC 1047).
Every connection keeps a log of what it saw (commands, `<dot>`, `<eof>`).

`Client` is a bounded asyncio SMTP client whose transactions can hang up at chosen
points of DATA; `serve` starts `python -m gateway serve` and follows its stderr.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("mail", "rcpt", "data", "end")
_MSGID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


def message_id(data: bytes) -> str | None:
    m = _MSGID.search(data.split(b"\r\n\r\n", 1)[0])
    return m.group(1).decode() if m else None


@dataclass
class Kept:
    conn: int
    mail_from: str
    rcpt_to: list[str]
    data: bytes

    @property
    def message_id(self) -> str | None:
        return message_id(self.data)


@dataclass
class ScriptedUpstream:
    greeting: str = "220 upstream.test ESMTP"
    slow: float = 2.5
    lag: float = 0.2
    queued: list[str] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    # connection number -> what it saw, in order
    seen: dict[int, list[str]] = field(default_factory=dict)
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _open: set[int] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def counts(self) -> collections.Counter[str | None]:
        return collections.Counter(k.message_id for k in self.kept)

    def open_connections(self) -> int:
        return len(self._open)

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until every upstream connection has ended (a slow fault may still sleep)."""
        async with asyncio.timeout(timeout):
            while self._open:
                await asyncio.sleep(0.02)

    @staticmethod
    def fault_of(sender: str) -> str | None:
        local = sender.rsplit("@", 1)[0]
        return local.split("+", 1)[1] if "+" in local else None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = len(self.seen) + 1
        seen: list[str] = []
        self.seen[conn] = seen
        self._open.add(conn)
        fault: str | None = None
        mail_from, rcpts = "", []

        async def answer(stage: str, ok: str) -> bool:
            """Write the reply for a stage (or misbehave); False when the connection ends."""
            reply = ok
            if fault is not None and fault.endswith("-" + stage):
                kind = fault.rsplit("-", 1)[0]
                if kind == "close":
                    return False
                if kind == "slow":
                    await asyncio.sleep(self.slow)
                elif kind == "lag":
                    await asyncio.sleep(self.lag)
                elif kind == "tempfail":
                    reply = "451 4.3.0 Upstream says try later"
                elif kind == "permfail":
                    reply = "554 5.7.1 Upstream refuses"
                writer.write((reply + "\r\n").encode())
                await writer.drain()
                return kind != "hangup"
            writer.write((reply + "\r\n").encode())
            await writer.drain()
            return True

        try:
            writer.write((self.greeting + "\r\n").encode())
            await writer.drain()
            if not self.greeting.startswith("220"):
                await asyncio.wait_for(reader.read(1024), 2)
                return
            while True:
                line = await asyncio.wait_for(reader.readline(), 30)
                if not line:
                    seen.append("<eof>")
                    return
                cmd = line.decode(errors="replace").rstrip("\r\n")
                seen.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    writer.write(b"250-upstream.test\r\n250-SIZE 100000000\r\n"
                                 b"250-8BITMIME\r\n250 PIPELINING\r\n")
                    await writer.drain()
                elif verb == "MAIL":
                    mail_from = cmd[10:].split(">")[0].lstrip("<")
                    rcpts = []
                    fault = self.fault_of(mail_from)
                    if fault is None and self.queued:
                        fault = self.queued.pop(0)
                    if not await answer("mail", "250 2.1.0 Sender ok"):
                        return
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].split(">")[0].lstrip("<"))
                    if not await answer("rcpt", "250 2.1.5 Recipient ok"):
                        return
                elif verb == "DATA":
                    if not await answer("data", "354 go ahead"):
                        return
                    if fault is not None and fault in ("tempfail-data", "permfail-data"):
                        continue
                    if fault == "drop-body":
                        await asyncio.wait_for(reader.read(10), 10)
                        seen.append("<dropped>")
                        return
                    raw = await asyncio.wait_for(reader.readuntil(b"\r\n.\r\n"), 30)
                    seen.append("<dot>")
                    body = raw[:-3]
                    if body.startswith(b"."):
                        body = body[1:]
                    body = body.replace(b"\r\n.", b"\r\n")
                    end_ok = not (fault is not None and fault.endswith("-end")
                                  and fault.split("-")[0] in ("tempfail", "permfail", "close"))
                    if end_ok:
                        self.kept.append(Kept(conn, mail_from, list(rcpts), body))
                    if not await answer("end", "250 2.0.0 Ok: queued"):
                        return
                    fault = None
                elif verb == "RSET":
                    mail_from, rcpts, fault = "", [], None
                    writer.write(b"250 2.0.0 Ok\r\n")
                    await writer.drain()
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 5.5.2 Error\r\n")
                    await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            seen.append("<eof>")
            return
        finally:
            self._open.discard(conn)
            writer.close()


# -- the client --------------------------------------------------------------------------

# Points in DATA where `transact` can hang up: after the 354, and after sending the
# given number of bytes of the message, or after the message but before / inside the
# final dot.
DISCONNECTS = ("after-354", "mid-header", "mid-body", "before-dot", "partial-dot", "dot-cr")


@dataclass
class Outcome:
    """How one transaction ended for the client."""

    code: int | None  # None: the client hung up itself (no reply expected)
    text: str = ""
    stage: str = ""  # where the reply came: mail, rcpt, data, end

    @property
    def accepted(self) -> bool:
        return self.code == 250 and self.stage == "end"


class Client:
    """A minimal SMTP client on asyncio streams; every read is bounded."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout

    @classmethod
    async def connect(cls, addr: tuple[str, int], timeout: float = 10.0) -> Client:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), timeout)
        c = cls(reader, writer, timeout)
        code, text = await c.reply()
        if code != 220:
            c.close()
            raise ConnectionError(f"greeting {code} {text}")
        code, text = await c.command("EHLO client.test")
        if code != 250:
            c.close()
            raise ConnectionError(f"EHLO {code} {text}")
        return c

    async def reply(self) -> tuple[int, str]:
        lines = []
        async with asyncio.timeout(self.timeout):
            while True:
                line = await self.reader.readline()
                if not line.endswith(b"\n"):
                    raise ConnectionError("connection closed by the gateway")
                lines.append(line[4:].decode(errors="replace").rstrip("\r\n"))
                if line[3:4] != b"-":
                    return int(line[:3]), "\n".join(lines)

    async def command(self, line: str) -> tuple[int, str]:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def transaction(self, sender: str, rcpts: Sequence[str], msg: bytes,
                          disconnect: str | None = None) -> Outcome:
        code, text = await self.command(f"MAIL FROM:<{sender}>")
        if code != 250:
            return Outcome(code, text, "mail")
        for r in rcpts:
            code, text = await self.command(f"RCPT TO:<{r}>")
            if code not in (250, 251):
                await self.command("RSET")
                return Outcome(code, text, "rcpt")
        code, text = await self.command("DATA")
        if code != 354:
            return Outcome(code, text, "data")
        wire = msg.replace(b"\r\n.", b"\r\n..")
        if wire.startswith(b"."):
            wire = b"." + wire
        if disconnect is not None:
            cut = {"after-354": b"", "mid-header": wire[:20],
                   "mid-body": wire[: len(wire) - 5], "before-dot": wire,
                   "partial-dot": wire + b".", "dot-cr": wire + b".\r"}[disconnect]
            self.writer.write(cut)
            await self.writer.drain()
            await asyncio.sleep(0.05)
            self.close()
            return Outcome(None, "", "data")
        self.writer.write(wire + b".\r\n")
        await self.writer.drain()
        code, text = await self.reply()
        return Outcome(code, text, "end")

    async def quit(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            await self.command("QUIT")
        self.close()

    def close(self) -> None:
        self.writer.close()


# -- the gateway as a process ---------------------------------------------------------

class Served:
    """A `gateway serve` child process and the lines it writes to stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def wait_for_line(self, pattern: str, after: int = 0, timeout: float = 10.0
                            ) -> re.Match[str]:
        rx = re.compile(pattern)
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines[after:]:
                    if m := rx.search(line):
                        return m
                if self.proc.returncode is not None:
                    raise AssertionError(f"exited, no {pattern!r}:\n" + "\n".join(self.lines))
                await asyncio.sleep(0.02)


async def serve(config: Path, cwd: Path) -> tuple[Served, tuple[str, int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(config),
        stderr=asyncio.subprocess.PIPE, cwd=cwd)
    served = Served(proc)
    m = await served.wait_for_line(r"listener outbound \(outbound\) listening on "
                                   r"127\.0\.0\.1:(\d+)")
    return served, ("127.0.0.1", int(m.group(1)))


async def finish(served: Served) -> None:
    if served.proc.returncode is None:
        served.proc.kill()
        await served.proc.wait()
    await asyncio.wait_for(served.reader, 5)


def make_message(mid: str, subject: str = "Ujian", body: bytes = b"Hello.\r\n",
                 sender: str = "a@anm.gov.my") -> bytes:
    return (f"From: {sender}\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{mid}>\r\n\r\n").encode() + body
