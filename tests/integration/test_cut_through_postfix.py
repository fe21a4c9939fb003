"""Cut-through against a real Postfix next hop: a refused message is never queued there.

The gateway (`cut_through: true`, the SHIPPED rules) relays to a private Postfix
instance (tests/integration/postfix_support.py) that relays on to a test sink. An
accepted message reaches the sink through Postfix. A RAHSIA message, whose marking
only the end of its body shows, is streamed into Postfix while it arrives and then
refused at the final dot: the client hears the gateway's 550, Postfix's log shows the
gateway's connection lost in the middle of DATA after the streamed bytes, its queue
is empty, the queue file it had opened for the message never reached its queue
manager, and the sink never sees the message (RFC 5321 3.8, 4.1.1.4: no final dot,
no message).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import smtplib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gateway.frontends.smtp_session import cut_through_status
from gateway.policy_state import load_policy
from gateway.service import Gateway

from .postfix_support import Postfix, available, free_port, instance_dir
from .support import CLIENT_TIMEOUT, FakeUpstream, GatewayHandle, write_config

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

REPO = Path(__file__).resolve().parents[2]
DELIVERY_WAIT = 30.0
SENDER, RCPT = "pegawai@anm.gov.my", "rakan@jpn.gov.my"
# About 55 KB of ordinary text (the test sink, FakeUpstream, takes at most 64 KB).
BODY = b"".join(b"Perenggan %05d laporan suku tahun yang biasa sahaja.\r\n" % i
                for i in range(1000))


def message(mid: str, body: bytes) -> bytes:
    return (f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: Laporan suku tahun\r\n"
            f"Message-ID: <{mid}>\r\n\r\n").encode() + body


@dataclass
class Hop:
    gateway: GatewayHandle
    postfix: Postfix
    sink: FakeUpstream


@pytest.fixture
async def hop(tmp_path: Path) -> AsyncIterator[Hop]:
    sink = FakeUpstream()
    await sink.start()
    base = instance_dir()
    postfix = Postfix(base, free_port(), ("127.0.0.1", sink.port), milter=None,
                      extra={"message_size_limit": "20480000"})
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{postfix.port}",
                        rules="rules: []",
                        limits={"upstream_timeout": 20.0, "upstream_connect_timeout": 5.0,
                                "inspection_timeout": 20.0})
    for rule_file in (REPO / "rules").glob("*.yaml"):
        shutil.copy(rule_file, tmp_path / "rules" / rule_file.name)
    config = yaml.safe_load(path.read_text())
    config["cut_through"] = True
    path.write_text(yaml.safe_dump(config))
    gateway: Gateway | None = None
    try:
        await asyncio.wait_for(asyncio.to_thread(postfix.start), 60)
        gateway = Gateway(load_policy(path))
        await gateway.start()
        yield Hop(GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl"), postfix,
                  sink)
    finally:
        try:
            if gateway is not None:
                await gateway.stop(drain_timeout=1.0)
            await asyncio.wait_for(asyncio.to_thread(postfix.stop), 60)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            await sink.stop()


def send(addr: tuple[str, int], msg: bytes) -> tuple[int, bytes]:
    s = smtplib.SMTP(addr[0], addr[1], timeout=CLIENT_TIMEOUT * 4)
    try:
        s.ehlo("client.anm.gov.my")
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        return s.data(msg)
    finally:
        s.quit()


async def queue_empty(postfix: Postfix) -> bool:
    out = await asyncio.to_thread(
        subprocess.run, ["/usr/sbin/postqueue", "-c", str(postfix.config_dir), "-p"],
        capture_output=True, text=True, timeout=15, check=False)
    return "Mail queue is empty" in out.stdout


async def test_refused_at_the_final_dot_is_never_queued_by_postfix(hop: Hop) -> None:
    gw, postfix, sink = hop.gateway, hop.postfix, hop.sink
    assert cut_through_status(gw.gateway.policy).startswith("cut-through on: messages are "
                                                            "relayed while they arrive")

    # Accepted: Postfix's own reply comes back, and the message reaches the sink.
    code, text = await asyncio.wait_for(asyncio.to_thread(
        send, gw.outbound, message("lulus@anm.gov.my", BODY)), 60)
    assert code == 250 and b"queued as" in text, (code, text, postfix.log())
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while not sink.messages:
        assert asyncio.get_running_loop().time() < deadline, postfix.log()
        await asyncio.sleep(0.1)
    [kept] = sink.messages
    # (Postfix adds its Received field and the Date it finds missing.)
    assert b"Message-ID: <lulus@anm.gov.my>\r\n" in kept.data and kept.data.endswith(BODY)

    # Refused: the marking is in the last line, so the whole body streams first.
    code, text = await asyncio.wait_for(asyncio.to_thread(
        send, gw.outbound, message("rahsia@anm.gov.my", BODY + b"\r\nRAHSIA\r\n")), 60)
    assert code == 550, (code, text)
    assert b"rule=klasifikasi-rahsia" in text
    [rec] = gw.records()
    assert (rec["event"], rec["rule_id"]) == ("reject", "klasifikasi-rahsia")

    # Postfix: the gateway's connection was lost inside DATA, after the streamed bytes...
    log = ""
    lost: re.Match[str] | None = None
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while lost is None:
        assert asyncio.get_running_loop().time() < deadline, postfix.log()
        await asyncio.sleep(0.2)
        log = postfix.log_file.read_text()
        lost = re.search(r"lost connection after DATA \((\d+) bytes\) from localhost"
                         r"\[127\.0\.0\.1\]", log)
    assert int(lost.group(1)) > len(BODY) // 2, lost.group(0)
    # ... the queue file opened for it (cleanup read its Message-ID while it streamed)
    # never reached the queue manager, nor was anything sent for it ...
    opened = re.findall(r"([0-9A-F]{6,}): message-id=<rahsia@anm\.gov\.my>", log)
    assert opened, log
    for queue_id in opened:
        assert not re.search(rf"{queue_id}: (from=|to=)", log), log
    assert "rahsia@anm.gov.my" not in "".join(
        line for line in log.splitlines() if "status=" in line)
    # ... and nothing is waiting in its queue or reached the sink.
    assert await queue_empty(postfix), postfix.log()
    await asyncio.sleep(1.0)
    assert len(sink.messages) == 1
    assert b"rahsia@anm.gov.my" not in b"".join(m.data for m in sink.messages)
