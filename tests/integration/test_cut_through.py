"""Cut-through (`cut_through: true`): the message goes upstream while it arrives, the final
dot only after the verdict. Real gateway, real upstream servers on loopback, real clients.

What is shown: bytes reach the upstream before the client's final dot; an accepted
message arrives byte for byte as the store-and-forward path relays it (subject tag,
added field, the gateway's Authentication-Results, forged ones removed); every other
end (a refusal at the final dot, the client vanishing, the upstream failing, a header
mismatch) leaves nothing upstream, the upstream connection dropped before any final
dot; a rule set that needs the body to decide a change, and a Maildir upstream, store
and forward; SIGTERM during a streamed DATA lets it finish. The same against a real
Postfix next hop is tests/integration/test_cut_through_postfix.py.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import pipeline
from gateway.frontends.smtp_session import cut_through_status
from gateway.policy_state import load_policy
from gateway.service import Gateway

from .faultkit import DISCONNECTS, Client, ScriptedUpstream, finish, make_message, serve
from .support import GatewayHandle, write_config

RCPT = "b@example.com"

TAG_RULES = """
rules:
  - id: larangan-badan
    description: "Kandungan dilarang"
    reference: "PPPA test"
    direction: both
    when: {body_matches: "KANDUNGAN-DILARANG"}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Dilarang.", en: "Forbidden."}}
  - id: tanda-hebahan
    description: "Tanda hebahan"
    reference: "PPPA test 2"
    direction: outbound
    when: {sender_in: [hebahan@anm.gov.my]}
    action: tag
    tag: "[HEBAHAN JANM]"
  - id: tambah-pengepala
    description: "Pengepala"
    reference: "PPPA test 3"
    direction: outbound
    when: {subject_matches: "Mesyuarat"}
    action: add_header
    header: {name: X-Gerbang, value: "diperiksa"}
"""

# A change that only the body can decide: cut-through would have to guess.
BODY_TAG_RULES = """
rules:
  - id: tanda-badan
    description: "Tanda ikut kandungan"
    reference: "PPPA test"
    direction: both
    when: {body_matches: "SEGERA"}
    action: tag
    tag: "[SEGERA]"
"""


def config_file(tmp_path: Path, *, upstream: str, rules: str = TAG_RULES,
                cut_through: bool = True, limits: dict[str, Any] | None = None) -> Path:
    path = write_config(tmp_path, upstream=upstream, rules=rules, limits=limits)
    config = yaml.safe_load(path.read_text())
    config["cut_through"] = cut_through
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Gateway] = []

    async def start(**kwargs: Any) -> GatewayHandle:
        gateway = Gateway(load_policy(config_file(tmp_path, **kwargs)))
        await gateway.start()
        started.append(gateway)
        return GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")

    yield start
    for gateway in started:
        await gateway.stop(drain_timeout=1.0)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    up = ScriptedUpstream(slow=2.5)
    await up.start()
    yield up
    await up.stop()


@dataclass
class Watching:
    """An upstream SMTP server that records the message bytes as they come in DATA."""

    data: bytearray = field(default_factory=bytearray)
    events: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 watching.test ESMTP\r\n")
            while True:
                line = await asyncio.wait_for(reader.readline(), 10)
                if not line:
                    self.events.append("<eof>")
                    return
                verb = line[:4].upper()
                self.events.append(verb.decode())
                if verb == b"EHLO":
                    writer.write(b"250-watching.test\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    self.data = bytearray()
                    while not self.data.endswith(b"\r\n.\r\n"):
                        chunk = await asyncio.wait_for(reader.read(65536), 10)
                        if not chunk:
                            self.events.append("<eof-in-data>")
                            return
                        self.data += chunk
                    self.events.append("<dot>")
                    body = bytes(self.data[:-3]).replace(b"\r\n..", b"\r\n.")
                    self.messages.append(body[1:] if body.startswith(b"..") else body)
                    writer.write(b"250 2.0.0 Ok: kept\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            self.events.append("<eof>")
        finally:
            writer.close()


@pytest.fixture
async def watching() -> AsyncIterator[Watching]:
    up = Watching()
    await up.start()
    yield up
    await up.stop()


async def open_data(addr: tuple[str, int], sender: str = "a@anm.gov.my") -> Client:
    c = await Client.connect(addr)
    assert (await c.command(f"MAIL FROM:<{sender}>"))[0] == 250
    assert (await c.command(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await c.command("DATA")
    assert code == 354, text
    return c


async def until(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# About 40 KB: more than one read, less than what ScriptedUpstream takes (64 KB).
BODY = b"".join(b"baris %d mesej ini\r\n" % i for i in range(2000))


async def test_bytes_reach_the_upstream_before_the_final_dot(
        start_gateway: Any, watching: Watching) -> None:
    gw = await start_gateway(upstream=watching.url)
    msg = make_message("ct1@x", body=BODY)
    c = await open_data(gw.outbound)
    try:
        half = len(msg) // 2
        c.writer.write(msg[:half])
        await c.writer.drain()
        # Header block and body bytes are upstream while the client is still sending.
        await until(lambda: len(watching.data) >= half - 1024)
        assert b"Message-ID: <ct1@x>" in watching.data
        assert "<dot>" not in watching.events
        c.writer.write(msg[half:] + b".\r\n")
        await c.writer.drain()
        code, text = await c.reply()
        assert (code, text) == (250, "2.0.0 Ok: kept")
    finally:
        await c.quit()
    assert watching.messages == [msg]
    assert gw.records() == []


@pytest.mark.parametrize("cut_through", [True, False])
async def test_header_changes_are_those_of_store_and_forward(
        start_gateway: Any, watching: Watching, cut_through: bool) -> None:
    # A registered announcement sender (tag), a Mesyuarat subject (added field) and an
    # Authentication-Results field forged in the gateway's name (removed).
    gw = await start_gateway(upstream=watching.url, cut_through=cut_through)
    forged = b"Authentication-Results: gw.test; spf=pass smtp.mailfrom=anm.gov.my\r\n"
    msg = (b"Authentication-Results: other.example; spf=none\r\n" + forged
           + make_message("ct2@x", subject="Mesyuarat agung", body=BODY,
                          sender="hebahan@anm.gov.my"))
    c = await open_data(gw.outbound, sender="hebahan@anm.gov.my")
    try:
        c.writer.write(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        await c.writer.drain()
        assert (await c.reply())[0] == 250
    finally:
        await c.quit()
    [got] = watching.messages
    expected = (b"X-Gerbang: diperiksa\r\n"
                b"Authentication-Results: other.example; spf=none\r\n"
                + make_message("ct2@x", subject="[HEBAHAN JANM] Mesyuarat agung", body=BODY,
                               sender="hebahan@anm.gov.my"))
    assert got == expected
    assert [r["event"] for r in gw.records()] == ["tag"]


@pytest.mark.parametrize("where", ["body", "size", "bare-lf"])
async def test_refusal_at_the_final_dot_leaves_nothing_upstream(
        start_gateway: Any, scripted: ScriptedUpstream, where: str) -> None:
    # (ScriptedUpstream reads a message of at most 64 KB: the size limit is below that.)
    gw = await start_gateway(upstream=scripted.url, limits={"max_message_size": "50KB"})
    body = {"body": BODY + b"KANDUNGAN-DILARANG\r\n",
            "size": BODY * 2,
            "bare-lf": BODY + b"bare\nLF\r\n"}[where]
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("ct3@x", body=body))
        assert out.code == {"body": 550, "size": 552, "bare-lf": 550}[where], out
        # The session goes on: a clean message afterwards is relayed.
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("ct4@x"))
        assert out.accepted, out
    finally:
        await c.quit()
    await scripted.settled()
    assert scripted.counts() == {"<ct4@x>": 1}
    first, second = scripted.seen.values()
    # The refused message: DATA went upstream, then the connection was dropped with
    # no final dot; the next message came on a fresh connection.
    assert "DATA" in first and "<dot>" not in first and first[-1] == "<eof>", first
    assert "<dot>" in second


async def test_upstream_refusing_data_is_passed_back_before_any_354(
        start_gateway: Any, scripted: ScriptedUpstream) -> None:
    gw = await start_gateway(upstream=scripted.url)
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction("a+permfail-data@anm.gov.my", [RCPT], make_message("r@x"))
        assert (out.code, out.stage) == (554, "data"), out
        assert out.text == "5.7.1 Upstream refuses"
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("r2@x"))
        assert out.accepted
    finally:
        await c.quit()
    assert scripted.counts() == {"<r2@x>": 1}


@pytest.mark.parametrize("fault", ["drop-body", "close-end", "slow-end"])
async def test_upstream_failing_mid_stream_is_never_250(
        start_gateway: Any, scripted: ScriptedUpstream, fault: str) -> None:
    gw = await start_gateway(upstream=scripted.url)
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction(f"a+{fault}@anm.gov.my", [RCPT],
                                  make_message("f1@x", body=BODY))
        assert out.code == 451 and out.text.startswith("4.4.1 "), out
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("f2@x"))
        assert out.accepted, out
    finally:
        await c.quit()
    await scripted.settled()
    # slow-end: the final dot had gone out, the upstream may keep it (RFC 1047), as
    # with store and forward. Otherwise nothing of the failed attempt was kept.
    assert scripted.counts() == ({"<f1@x>": 1, "<f2@x>": 1} if fault == "slow-end"
                                 else {"<f2@x>": 1})
    [rec] = [r for r in gw.records() if r["event"] == "tempfail"]
    assert (rec["smtp_code"], rec["enhanced_code"]) == (451, "4.4.1")


@pytest.mark.parametrize("point", DISCONNECTS)
async def test_client_vanishing_mid_stream_aborts_the_upstream_transaction(
        start_gateway: Any, scripted: ScriptedUpstream, point: str) -> None:
    gw = await start_gateway(upstream=scripted.url)
    c = await Client.connect(gw.outbound)
    out = await c.transaction("a@anm.gov.my", [RCPT], make_message("v1@x", body=BODY),
                              disconnect=point)
    assert out.code is None
    async with asyncio.timeout(5):
        while gw.gateway.ctx.sessions:
            await asyncio.sleep(0.02)
    await scripted.settled()
    assert scripted.kept == []
    [seen] = scripted.seen.values()
    assert "<dot>" not in seen and seen[-1] == "<eof>", seen
    assert [r for r in gw.records() if r.get("reason") == "internal error"] == []


async def test_a_header_mismatch_is_451_and_never_completed(
        start_gateway: Any, scripted: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # A decision that differs from the verdict's (a bug by construction): the message
    # must not be completed upstream with a header the verdict did not make.
    real = pipeline.decide_header

    def wrong(*args: Any) -> pipeline.HeaderDecision:
        decision = real(*args)
        return pipeline.HeaderDecision(decision.received, b"X-Bug: 1\r\n" + decision.block,
                                       ("[TIDAK]",), (), (), (), None)

    monkeypatch.setattr(pipeline, "decide_header", wrong)
    gw = await start_gateway(upstream=scripted.url)
    c = await Client.connect(gw.outbound)
    try:
        with caplog.at_level(logging.ERROR, "gateway.smtp"):
            out = await c.transaction("a@anm.gov.my", [RCPT], make_message("m1@x", body=BODY))
    finally:
        await c.quit()
    assert out.code == 451 and out.text.startswith("4.3.0 "), out
    assert any("BUG" in r.message and "cut-through" in r.message for r in caplog.records)
    await scripted.settled()
    assert scripted.kept == []
    [seen] = scripted.seen.values()
    assert "<dot>" not in seen, seen
    [rec] = gw.records()
    assert (rec["event"], rec["rule_id"]) == ("tempfail", "ralat-dalaman")


async def test_rules_that_need_the_body_for_a_change_store_and_forward(
        start_gateway: Any, watching: Watching, tmp_path: Path) -> None:
    gw = await start_gateway(upstream=watching.url, rules=BODY_TAG_RULES)
    status = cut_through_status(gw.gateway.policy)
    assert "stored and forwarded" in status and "tanda-badan" in status, status
    assert "body_matches" in status
    msg = make_message("sf@x", body=BODY + b"SEGERA\r\n")
    c = await open_data(gw.outbound)
    try:
        c.writer.write(msg[:len(msg) // 2])
        await c.writer.drain()
        await asyncio.sleep(0.3)
        assert "DATA" not in watching.events  # nothing goes upstream before the dot
        c.writer.write(msg[len(msg) // 2:] + b".\r\n")
        await c.writer.drain()
        assert (await c.reply())[0] == 250
    finally:
        await c.quit()
    [got] = watching.messages
    assert b"Subject: [SEGERA] Ujian\r\n" in got


async def test_maildir_upstream_stores_and_forwards(start_gateway: Any, tmp_path: Path) -> None:
    box = tmp_path / "mail"
    gw = await start_gateway(upstream=f"maildir:{box}")
    assert "Maildir" in cut_through_status(gw.gateway.policy)
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction("hebahan@anm.gov.my", [RCPT],
                                  make_message("md@x", sender="hebahan@anm.gov.my"))
    finally:
        await c.quit()
    assert out.accepted
    [path] = (box / "new").iterdir()
    assert b"Subject: [HEBAHAN JANM] Ujian\r\n" in path.read_bytes()


async def test_message_ending_inside_its_header_block_is_stored_and_forwarded(
        start_gateway: Any, watching: Watching) -> None:
    gw = await start_gateway(upstream=watching.url)
    msg = b"From: hebahan@anm.gov.my\r\nSubject: Tiada badan\r\n"
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction("hebahan@anm.gov.my", [RCPT], msg)
    finally:
        await c.quit()
    assert out.accepted, out
    assert watching.messages == [b"From: hebahan@anm.gov.my\r\n"
                                 b"Subject: [HEBAHAN JANM] Tiada badan\r\n"]


async def test_sigterm_during_a_streamed_data_lets_it_finish(
        tmp_path: Path, scripted: ScriptedUpstream) -> None:
    config = config_file(tmp_path, upstream=scripted.url)
    served, addr = await serve(config, tmp_path)
    try:
        msg = make_message("term@x", body=BODY)
        c = await open_data(addr)
        half = len(msg) // 2
        c.writer.write(msg[:half])
        await c.writer.drain()
        await until(lambda: any("DATA" in s for s in scripted.seen.values()))
        mark = len(served.lines)
        served.proc.send_signal(signal.SIGTERM)
        await served.wait_for_line(r"stopping: draining", mark)
        c.writer.write(msg[half:] + b".\r\n")
        await c.writer.drain()
        code, _ = await c.reply()
        c.close()
        assert await asyncio.wait_for(served.proc.wait(), 10) == 0
    finally:
        await finish(served)
    assert code == 250
    assert scripted.counts() == {"<term@x>": 1}
    assert any("cut-through on" in line for line in served.lines)
