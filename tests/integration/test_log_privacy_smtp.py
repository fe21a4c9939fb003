"""Issue 14 item 4 end to end: a TERHAD/SULIT message refused by a real gateway (proxy
and milter) leaves only keyed hashes of its subject and Message-ID in the log,
`gateway log find` (a real process) finds it, `log_subjects: clear` keeps the text,
and the same record reaches a real UDP syslog receiver with ECS field names."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .milter_client import MilterClient
from .support import FakeUpstream, GatewayFactory, GatewayHandle, client, in_thread, write_config

REPO = Path(__file__).resolve().parents[2]
RULES = """
rules:
  - id: klasifikasi-ujian
    description: "Mel bertanda ditolak (ujian)"
    reference: "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(b)"
    direction: both
    when: {classification: [SULIT, TERHAD]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Ditolak.", en: "Refused."}}
"""
WORDS = ("Perolehan", "Kapal", "Selam", "Zulu")
SUBJECT = "SULIT: Perolehan  Kapal Selam Zulu"
MESSAGE_ID = "<sulit-42@anm.gov.my>"

Factory = Callable[..., Awaitable[GatewayHandle]]


@pytest.fixture
def gateway_with(make_gateway: GatewayFactory) -> Factory:
    async def make(upstream: FakeUpstream, **extra: Any) -> GatewayHandle:
        return await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                                  rules=RULES, extra=extra)

    return make


def send_marked(addr: tuple[str, int], subject: str = SUBJECT) -> int:
    msg = (f"From: Ali <a@anm.gov.my>\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
           f"Message-ID: {MESSAGE_ID}\r\n\r\nIsi surat {WORDS[3]}.\r\n").encode()
    s = client(addr)
    try:
        s.mail("a@anm.gov.my")
        s.rcpt("b@example.com")
        code, _ = s.data(msg)
        return code
    finally:
        s.close()


def log_find(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gateway", "log", "find", "--config",
                           str(config), *args], capture_output=True, text=True, env=env,
                          timeout=60)


async def test_sulit_subject_is_hashed_and_found(
        gateway_with: Factory, upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = await gateway_with(upstream)
    assert await in_thread(lambda: send_marked(gw.outbound)) == 550
    text = gw.log_path.read_text()
    for word in (*WORDS, "sulit-42"):
        assert word.lower() not in text.lower().replace('"sulit"', "")
    [rec] = gw.records()
    assert rec["classification"] == "SULIT"
    assert rec["subject"].startswith("hmac-sha256:") and len(rec["subject"]) == 12 + 64
    assert rec["message_id"].startswith("hmac-sha256:")
    key = tmp_path / "rejection-log.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == 32
    assert key.read_bytes().hex() not in text
    # The help desk types the subject as the user saw it: case and spacing differ.
    found = log_find(tmp_path / "gateway.yaml", "--subject", "sulit: perolehan kapal selam ZULU")
    assert found.returncode == 0, found.stderr
    [line] = found.stdout.splitlines()
    assert json.loads(line)["ref"] == rec["ref"]
    by_id = log_find(tmp_path / "gateway.yaml", "--message-id", "sulit-42@anm.gov.my",
                     "--subject", SUBJECT)
    assert by_id.returncode == 0 and json.loads(by_id.stdout)["ref"] == rec["ref"]
    missing = log_find(tmp_path / "gateway.yaml", "--subject", "SULIT: Perolehan Kapal")
    assert missing.returncode == 1 and missing.stdout == ""


async def test_terhad_in_body_only_is_hashed_too(
        gateway_with: Factory, upstream: FakeUpstream) -> None:
    gw = await gateway_with(upstream)
    msg = (b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Perolehan Kapal\r\n"
           b"Message-ID: <t1@anm.gov.my>\r\n\r\nTERHAD\r\n\r\nIsi.\r\n")

    def send() -> int:
        s = client(gw.outbound)
        try:
            s.mail("a@anm.gov.my")
            s.rcpt("b@example.com")
            return s.data(msg)[0]
        finally:
            s.close()

    assert await in_thread(send) == 550
    [rec] = gw.records()
    assert rec["classification"] == "TERHAD"
    assert "Perolehan" not in gw.log_path.read_text()
    assert rec["subject"].startswith("hmac-sha256:")


async def test_clear_keeps_the_text(gateway_with: Factory, upstream: FakeUpstream) -> None:
    gw = await gateway_with(upstream, log_subjects="clear")
    assert await in_thread(lambda: send_marked(gw.outbound)) == 550
    [rec] = gw.records()
    assert rec["subject"] == SUBJECT
    assert rec["message_id"] == MESSAGE_ID
    found = log_find(gw.tmp / "gateway.yaml", "--subject", "sulit: perolehan kapal selam zulu")
    assert found.returncode == 0 and json.loads(found.stdout)["ref"] == rec["ref"]


async def test_key_readable_by_others_stops_the_start(tmp_path: Path,
                                                       upstream: FakeUpstream) -> None:
    key = tmp_path / "k" / "log.key"
    key.parent.mkdir()
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}", rules=RULES)
    config = yaml.safe_load(path.read_text())
    config["log_key_file"] = str(key)
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    with pytest.raises(OSError, match=r"log_key_file: .*log.key: mode 0644 lets others read"):
        await gateway.start()
    await gateway.stop(drain_timeout=0.1)
    assert key.read_bytes().hex() not in (tmp_path / "rejections.jsonl").read_text()


async def test_records_reach_a_udp_syslog_receiver_as_ecs(
        gateway_with: Factory, upstream: FakeUpstream) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5.0)
    port = receiver.getsockname()[1]
    try:
        gw = await gateway_with(upstream, syslog={"address": f"udp://127.0.0.1:{port}",
                                                  "facility": "mail"})
        assert await in_thread(lambda: send_marked(gw.outbound)) == 550
        datagram = await in_thread(lambda: receiver.recv(65535))
    finally:
        receiver.close()
    [rec] = gw.records()
    # <PRI>: facility mail (2) * 8 + warning (4) = 20 (RFC 5424 6.2.1)
    assert datagram.startswith(b"<20>gateway[")
    doc = json.loads(datagram.split(b"]: ", 1)[1].rstrip(b"\x00"))
    assert doc["@timestamp"] == rec["ts"]
    assert doc["event"]["action"] == "reject" and doc["event"]["outcome"] == "failure"
    assert doc["event"]["id"] == rec["ref"]
    assert doc["rule"] == {"id": "klasifikasi-ujian",
                           "reference": "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(b)"}
    assert doc["source"]["ip"] == "127.0.0.1"
    assert doc["email"]["from"]["address"] == ["a@anm.gov.my"]
    assert doc["email"]["to"]["address"] == ["b@example.com"]
    assert doc["email"]["subject"] == rec["subject"]
    assert doc["email"]["subject"].startswith("hmac-sha256:")
    assert doc["email"]["message_id"] == rec["message_id"]
    assert doc["gateway"]["classification"] == "SULIT"
    for word in WORDS:
        assert word.encode() not in datagram


async def test_milter_records_hash_the_same_way(
        gateway_with: Factory, upstream: FakeUpstream) -> None:
    gw = await gateway_with(upstream, listeners=[
        {"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"},
        {"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"},
        {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"}])
    milter = await MilterClient.open(gw.gateway.address("milter"))
    try:
        await milter.connect("192.0.2.10")
        raw = (f"From: x@example.com\r\nTo: b@anm.gov.my\r\nSubject: {SUBJECT}\r\n"
               f"Message-ID: {MESSAGE_ID}\r\n\r\nIsi.\r\n").encode()
        out = await milter.message(raw, "x@example.com", ["b@anm.gov.my"])
    finally:
        await milter.close()
    assert out.text.startswith("550")
    assert await in_thread(lambda: send_marked(gw.outbound)) == 550
    via_milter, via_proxy = gw.records()
    assert via_milter["listener"] == "milter"
    assert via_milter["subject"] == via_proxy["subject"]
    assert via_milter["subject"].startswith("hmac-sha256:")
    assert via_milter["message_id"] == via_proxy["message_id"]
    assert "Perolehan" not in gw.log_path.read_text()
