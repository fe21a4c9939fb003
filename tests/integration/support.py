"""Integration test parts: a programmable upstream SMTP server, config writing, a client.

Both run on the test's own event loop on ephemeral ports; the client is the
standard library's smtplib, run in a worker thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import smtplib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

T = TypeVar("T")
CLIENT_TIMEOUT = 5.0

SIZE_RULE = """
rules:
  - id: saiz-mesej
    description: "Mesej terlalu besar"
    reference: "PPPA test"
    direction: both
    when: {message_size_over: 20KB}
    action: reject
    reply: {code: 552, enhanced: "5.3.4", text: {ms: "Mesej besar.", en: "Message too big."}}
  - id: penghantar-dilarang
    description: "Domain penghantar disekat"
    reference: "PPPA test 2"
    direction: both
    when: {sender_domain: [blocked.anm.gov.my]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Penghantar disekat.", en: "Sender blocked."}}
"""


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes


@dataclass
class FakeUpstream:
    """A real SMTP server on asyncio streams that records and misbehaves on request.

    `answers` maps a stage (MAIL, RCPT, DATA, END = after the final dot) to the reply
    to give instead of 250/354; `delay` maps a stage to seconds to sleep before
    answering; `drop_mid_data` closes the connection after part of the message.
    """

    answers: dict[str, str] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    drop_mid_data: bool = False
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Down as a real server goes down: listener closed, open connections dropped
        (the gateway keeps idle upstream connections between sessions)."""
        if self._server is not None:
            self._server.close()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every open connection without a word, the listener left running."""
        for writer in list(self._open):
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, stage: str, default: str) -> None:
        if stage in self.delay:
            await asyncio.sleep(self.delay[stage])
        writer.write((self.answers.get(stage, default) + "\r\n").encode())
        await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        mail_from = ""
        rcpts: list[str] = []
        try:
            writer.write(b"220 upstream.test ESMTP\r\n")
            while True:
                line = await asyncio.wait_for(reader.readline(), 10)
                if not line:
                    return
                cmd = line.decode().rstrip("\r\n")
                self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    writer.write(b"250-upstream.test\r\n250-SIZE 100000000\r\n"
                                 b"250-8BITMIME\r\n250 PIPELINING\r\n")
                elif verb == "MAIL":
                    mail_from, rcpts = cmd[10:].split(">")[0].lstrip("<"), []
                    await self._answer(writer, "MAIL", "250 2.1.0 Sender ok")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].split(">")[0].lstrip("<"))
                    await self._answer(writer, "RCPT", "250 2.1.5 Recipient ok")
                elif verb == "DATA":
                    await self._answer(writer, "DATA", "354 go ahead")
                    if self.answers.get("DATA", "354").startswith("354"):
                        if self.drop_mid_data:
                            await reader.read(10)
                            writer.close()
                            return
                        raw = await asyncio.wait_for(reader.readuntil(b"\r\n.\r\n"), 10)
                        body = raw[:-3]
                        if body.startswith(b"."):
                            body = body[1:]
                        body = body.replace(b"\r\n.", b"\r\n")
                        if self.answers.get("END", "250").startswith("2"):
                            self.messages.append(Received(mail_from, list(rcpts), body))
                        await self._answer(writer, "END", "250 2.0.0 Ok: queued as X1")
                elif verb == "RSET":
                    mail_from, rcpts = "", []
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 5.5.2 Error\r\n")
                await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            return
        finally:
            self._open.discard(writer)
            writer.close()


GatewayFactory = Callable[..., Awaitable["GatewayHandle"]]


class BigUpstream(FakeUpstream):
    """The fake upstream, reading messages of megabytes (asyncio's default: 64 KB)."""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                  limit=64 * 1024 * 1024)
        self.port = self._server.sockets[0].getsockname()[1]


@dataclass
class GatewayHandle:
    gateway: Gateway
    tmp: Path
    log_path: Path

    @property
    def outbound(self) -> tuple[str, int]:
        return self.gateway.address("outbound")

    @property
    def inbound(self) -> tuple[str, int]:
        return self.gateway.address("inbound")

    def records(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


def write_config(tmp: Path, *, upstream: str, rules: str = SIZE_RULE,
                 relay_networks: list[str] | None = None,
                 limits: dict[str, Any] | None = None, host: str = "127.0.0.1",
                 port: int = 0, extra: dict[str, Any] | None = None) -> Path:
    """A test config in `tmp` (rules in tmp/rules/10-test.yaml, the log beside it);
    `extra`: further top-level keys, set over the defaults."""
    rules_dir = tmp / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "10-test.yaml").write_text(rules)
    config = {
        "listeners": [
            {"name": "outbound", "listen": f"{host}:{port}", "direction": "outbound"},
            {"name": "inbound", "listen": f"{host}:{port}", "direction": "inbound"},
        ],
        "upstream": upstream,
        "agency_domains": ["anm.gov.my"],
        "relay_networks": relay_networks if relay_networks is not None
        else ["127.0.0.0/8", "::1/128"],
        "hebahan_senders": ["hebahan@anm.gov.my"],
        "rules_dir": str(rules_dir),
        "rejection_log": str(tmp / "rejections.jsonl"),
        "hostname": "gw.test",
        "limits": {"upstream_connect_timeout": 1.0, "upstream_timeout": 1.0,
                   "inspection_timeout": 3.0, **(limits or {})},
        **(extra or {}),
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking client code off the loop, bounded so a hang fails the test."""
    return await asyncio.wait_for(asyncio.to_thread(fn), 8.0)


@contextlib.asynccontextmanager
async def started_gateway(config: Path) -> AsyncIterator[GatewayHandle]:
    """The gateway of `config`, started, as a handle whose log is `rejections.jsonl`
    beside the config (write_config's layout); stopped at the end."""
    gateway = Gateway(load_policy(config))
    await gateway.start()
    try:
        yield GatewayHandle(gateway, config.parent, config.parent / "rejections.jsonl")
    finally:
        await gateway.stop(drain_timeout=1.0)


def client(addr: tuple[str, int]) -> smtplib.SMTP:
    s = smtplib.SMTP(addr[0], addr[1], timeout=CLIENT_TIMEOUT)
    s.ehlo("client.test")
    return s


def transaction(addr: tuple[str, int], msg: bytes, *, mail_from: str,
                rcpts: tuple[str, ...] | list[str], helo: str = "client.test",
                source: str | None = None) -> tuple[int, bytes]:
    """One SMTP transaction through smtplib from the client address `source` (default:
    the system's choice): the first refusal of MAIL or a RCPT, else the reply to DATA,
    as (code, text)."""
    s = smtplib.SMTP(addr[0], addr[1], timeout=CLIENT_TIMEOUT,
                     source_address=None if source is None else (source, 0))
    try:
        s.ehlo(helo)
        code, text = s.mail(mail_from)
        if code != 250:
            return code, text
        for rcpt in rcpts:
            code, text = s.rcpt(rcpt)
            if code not in (250, 251):
                return code, text
        return s.data(msg)
    finally:
        s.close()


def message(subject: str = "Ujian", body: bytes = b"Hello.\r\n", sender: str = "a@anm.gov.my",
            extra: bytes = b"") -> bytes:
    return (f"From: {sender}\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
            "Message-ID: <m1@anm.gov.my>\r\n").encode() + extra + b"\r\n" + body
