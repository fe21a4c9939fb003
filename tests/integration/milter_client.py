"""A milter client for the tests: the MTA side of the protocol, on the gateway's own codec.

It speaks like Postfix does: offers version 6 with every action and protocol step,
sends macros before the stages, honours the flags the filter asked for (no reply
to headers, leading space kept), and sends the message as header events plus
body chunks of at most 65535 bytes. Every read is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from gateway.frontends.milter import protocol as p

TIMEOUT = 8.0
CHUNK = 65535
FINAL = (p.Continue, p.Accept, p.Reject, p.Tempfail, p.ReplyCode, p.OptNegReply)


@dataclass
class Outcome:
    stage: str  # where the filter gave a non-continue answer, or "eob"
    replies: list[p.Reply]
    rcpt_replies: list[p.Reply] = field(default_factory=list)

    @property
    def final(self) -> p.Reply:
        return self.replies[-1]

    @property
    def text(self) -> str:
        final = self.final
        assert isinstance(final, p.ReplyCode), self.replies
        return final.text


class MilterClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = p.ReplyDecoder()
        self.pending: list[p.Reply] = []
        self.protocol = 0

    @classmethod
    async def open(cls, where: tuple[str, int] | str, protocol: int = 0x1FFFFF
                   ) -> MilterClient:
        if isinstance(where, str):
            conn = asyncio.open_unix_connection(where)
        else:
            conn = asyncio.open_connection(where[0], where[1])
        reader, writer = await asyncio.wait_for(conn, TIMEOUT)
        client = cls(reader, writer)
        answer = await client.call(p.OptNeg(6, 0x1FF, protocol))
        assert isinstance(answer[-1], p.OptNegReply), answer
        client.protocol = answer[-1].protocol
        return client

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)

    async def send(self, cmd: p.Command) -> None:
        self.writer.write(p.encode_command(cmd))
        await self.writer.drain()

    async def read_reply(self) -> p.Reply:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                raise ConnectionError("filter closed the connection")
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    async def call(self, cmd: p.Command) -> list[p.Reply]:
        """Send a command and read its replies up to the final one."""
        await self.send(cmd)
        out: list[p.Reply] = []
        while True:
            reply = await self.read_reply()
            if isinstance(reply, p.Progress):
                continue
            out.append(reply)
            if isinstance(reply, FINAL):
                return out

    async def connect(self, client_ip: str, hostname: str = "client.test",
                      macros: dict[str, str] | None = None) -> list[p.Reply]:
        await self.send(p.Macro(b"C", tuple({"j": "mx.test", "{daemon_name}": "smtpd",
                                             "{client_addr}": client_ip,
                                             **(macros or {})}.items())))
        family = "6" if ":" in client_ip else "4"
        return await self.call(p.Connect(hostname, family, 40000, client_ip))

    async def message(self, raw: bytes, sender: str, rcpts: list[str], *,
                      helo: str = "client.test",
                      mail_macros: dict[str, str] | None = None,
                      mail_args: tuple[str, ...] = ()) -> Outcome:
        """One transaction; stops at the first stage that does not answer continue."""
        r = await self.call(p.Helo(helo))
        if not isinstance(r[-1], p.Continue):
            return Outcome("helo", r)
        if mail_macros:
            await self.send(p.Macro(b"M", tuple(mail_macros.items())))
        r = await self.call(p.Mail((f"<{sender}>", *mail_args)))
        if not isinstance(r[-1], p.Continue):
            await self.send(p.Abort())
            return Outcome("mail", r)
        rcpt_replies: list[p.Reply] = []
        accepted = 0
        for rcpt in rcpts:
            r = await self.call(p.Rcpt((f"<{rcpt}>",)))
            rcpt_replies += r
            accepted += isinstance(r[-1], p.Continue)
        if not accepted:
            await self.send(p.Abort())
            return Outcome("rcpt", rcpt_replies, rcpt_replies)
        r = await self.call(p.Data())
        if not isinstance(r[-1], p.Continue):
            return Outcome("data", r)
        head, _, body = raw.partition(b"\r\n\r\n")
        for name, value in fields(head):
            if not self.protocol & p.SMFIP_HDR_LEADSPC:
                value = value.lstrip(" \t")
            if self.protocol & p.SMFIP_NOHREPL:
                await self.send(p.Header(name, value))
            else:
                r = await self.call(p.Header(name, value))
                if not isinstance(r[-1], p.Continue):
                    return Outcome("header", r)
        r = await self.call(p.EndOfHeaders())
        if not isinstance(r[-1], p.Continue):
            return Outcome("eoh", r)
        for start in range(0, len(body), CHUNK):
            r = await self.call(p.Body(body[start:start + CHUNK]))
            if not isinstance(r[-1], p.Continue):
                await self.send(p.Abort())
                return Outcome("body", r)
        return Outcome("eob", await self.call(p.EndOfBody()), rcpt_replies)


def fields(head: bytes) -> list[tuple[str, str]]:
    """Header fields as Postfix passes them: name, value after the colon, folds as LF."""
    out: list[tuple[str, str]] = []
    for line in head.decode("utf-8", errors="surrogateescape").split("\r\n"):
        if line[:1] in (" ", "\t") and out:
            name, value = out[-1]
            out[-1] = (name, value + "\n" + line)
        else:
            name, _, value = line.partition(":")
            out.append((name, value))
    return out
