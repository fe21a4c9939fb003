"""Logs that tell the truth: the rejection log, the journal and /healthz against what the
client was really told, with real clients against a running gateway.

- A sender refused at MAIL FROM is logged with the address the client gave (proxy and
  milter), so `gateway report` counts its domain, not a bounce `<>`.
- The gateway's own refusals carry their stable rule id and the clause they enforce.
- Every journal line that names a reply names the one the client got.
- A rejection log that cannot be written (its path is /dev/full: ENOSPC, which root
  cannot bypass) changes nothing for clients: they hear the policy's 550, not a 451;
  the failure is one ERROR in the journal, metrics and a 503 /healthz; the records wait
  in memory and reach the file, in order, once the path works again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import smtplib
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.observe import report
from gateway.policy import builtin
from gateway.policy_state import load_policy
from gateway.service import Gateway

from .milter_client import MilterClient
from .support import (
    FakeUpstream,
    GatewayFactory,
    GatewayHandle,
    in_thread,
    message,
    started_gateway,
    write_config,
)

SMTP_LOG = "gateway.smtp"


def mail_refused(addr: tuple[str, int], sender: str, *options: str) -> tuple[int, bytes]:
    with smtplib.SMTP(addr[0], addr[1], timeout=5) as s:
        s.ehlo("client.test")
        return s.mail(sender, list(options))


def send_one(addr: tuple[str, int], raw: bytes, sender: str = "a@anm.gov.my"
             ) -> tuple[int, bytes]:
    """(code, text) of the reply to the message (MAIL, RCPT and DATA must be accepted)."""
    with smtplib.SMTP(addr[0], addr[1], timeout=5) as s:
        s.ehlo("client.test")
        assert s.mail(sender)[0] == 250
        assert s.rcpt("b@example.com")[0] == 250
        code, text = s.data(raw)
        return code, text


async def test_sender_refused_at_mail_from_is_logged_with_its_address(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"max_message_size": "1MB"})

    def run() -> list[tuple[int, bytes]]:
        return [mail_refused(gw.outbound, "pegawai@gmail.com"),
                mail_refused(gw.outbound, "a@anm.gov.my", "SIZE=999999999")]

    (sender_code, sender_text), (size_code, _) = await in_thread(run)
    assert (sender_code, size_code) == (550, 552)
    assert b"rule=relay-sender" in sender_text
    relay_sender, size = gw.records()
    assert (relay_sender["rule_id"], relay_sender["mail_from"]) == \
        ("relay-sender", "pegawai@gmail.com")
    assert relay_sender["reference"] == builtin.RELAY_SENDER.reference
    assert relay_sender["reference"].startswith("PPPA Bil. 3 Tahun 2025, Lampiran A, 1.2.2(b)(iv)")
    assert (size["rule_id"], size["mail_from"]) == ("saiz-maksimum", "a@anm.gov.my")
    assert size["reference"] == builtin.SIZE.reference
    summary = report.summarise([gw.log_path])
    assert summary.sender_domains.counts == {"gmail.com": 1, "anm.gov.my": 1}
    assert "<>" not in report.to_text(summary)


async def test_client_outside_relay_networks_is_logged_with_its_sender(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            relay_networks=["192.0.2.0/24"])
    code, text = await in_thread(lambda: mail_refused(gw.outbound, "a@anm.gov.my"))
    assert code == 554 and b"rule=relay-access" in text
    [rec] = gw.records()
    assert (rec["rule_id"], rec["mail_from"], rec["event"]) == \
        ("relay-access", "a@anm.gov.my", "reject")
    assert rec["reference"] == "PPPA Bil. 3 Tahun 2025, Lampiran A, 1.2.2(b)(iv) dan 1.4.1(f)-(g)"
    assert (rec["smtp_code"], rec["enhanced_code"]) == (554, "5.7.1")
    assert upstream.connections == 0


@pytest.fixture
async def milter_gw(tmp_path: Path) -> AsyncIterator[GatewayHandle]:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}",
                        limits={"max_message_size": "1MB"})
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"].append({"name": "submission", "listen": "127.0.0.1:0",
                                "direction": "outbound", "mode": "milter"})
    path.write_text(yaml.safe_dump(config))
    async with started_gateway(path) as gw:
        yield gw


async def test_milter_refusals_at_mail_from_are_logged_with_the_sender(
        milter_gw: GatewayHandle) -> None:
    c = await MilterClient.open(milter_gw.gateway.address("submission"))
    try:
        await c.connect("127.0.0.1")
        refused = await c.message(message(), "pegawai@gmail.com", ["b@example.com"])
        too_big = await c.message(message(), "a@anm.gov.my", ["b@example.com"],
                                  mail_args=("SIZE=999999999",))
        await c.connect("192.0.2.10")
        outside = await c.message(message(), "a@anm.gov.my", ["b@example.com"])
    finally:
        await c.close()
    assert (refused.stage, too_big.stage, outside.stage) == ("mail", "mail", "mail")
    got = [(r["rule_id"], r["mail_from"], r["reference"]) for r in milter_gw.records()]
    assert got == [
        ("relay-sender", "pegawai@gmail.com", builtin.RELAY_SENDER.reference),
        ("saiz-maksimum", "a@anm.gov.my", builtin.SIZE.reference),
        ("relay-access", "a@anm.gov.my", builtin.RELAY_ACCESS.reference),
    ]


def journal_replies(records: list[logging.LogRecord], ref: str) -> set[str]:
    """The `reply=CODE ENHANCED` each journal line about `ref` names."""
    out = set()
    for r in records:
        text = r.getMessage()
        if f"ref={ref}" in text:
            found = re.search(r"reply=(\d{3} [245]\.\d+\.\d+)", text)
            if found:
                out.add(found.group(1))
    return out


async def test_journal_names_the_reply_the_client_got_when_the_upstream_drops(
        make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture) -> None:
    up = FakeUpstream(drop_mid_data=True)
    await up.start()
    try:
        gw = await make_gateway(upstream=f"smtp://127.0.0.1:{up.port}")
        with caplog.at_level(logging.INFO, logger=SMTP_LOG):
            code, text = await in_thread(lambda: send_one(gw.outbound, message(
                subject="x" * 50)))
    finally:
        await up.stop()
    assert code == 451 and text.startswith(b"4.4.1 ")
    ref = text.decode().rsplit("ref=", 1)[1]
    assert journal_replies(caplog.records, ref) == {"451 4.4.1"}
    [rec] = gw.records()
    assert (rec["ref"], rec["event"], rec["rule_id"], rec["smtp_code"]) == \
        (ref, "tempfail", "pelayan-seterusnya-tiada", 451)
    assert rec["message_id"] == "<m1@anm.gov.my>"  # one record, with the message in it


# -- a rejection log that cannot be written ------------------------------------------------

def http_get(addr: tuple[str, int], path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


@pytest.fixture
async def full_disk_gateway(tmp_path: Path, upstream: FakeUpstream
                            ) -> AsyncIterator[GatewayHandle]:
    """A gateway whose rejection log path leads to /dev/full: every write is ENOSPC."""
    log_path = tmp_path / "logs" / "rejections.jsonl"
    log_path.parent.mkdir()
    os.symlink("/dev/full", log_path)
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}")
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["rejection_log"] = str(log_path)
    config["metrics"] = {"listen": "127.0.0.1:0"}
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        yield GatewayHandle(gateway, tmp_path, log_path)
    finally:
        await gateway.stop(drain_timeout=1.0)


async def test_unwritable_rejection_log_keeps_the_policy_answer_and_is_loud(
        full_disk_gateway: GatewayHandle, caplog: pytest.LogCaptureFixture) -> None:
    gw = full_disk_gateway
    assert gw.gateway.metrics_server is not None and gw.gateway.metrics_server.address
    metrics_addr = gw.gateway.metrics_server.address
    blocked = message(sender="x@blocked.anm.gov.my")

    def run() -> list[tuple[int, bytes]]:
        return [send_one(gw.outbound, blocked, sender="x@blocked.anm.gov.my"),
                send_one(gw.outbound, blocked, sender="x@blocked.anm.gov.my"),
                mail_refused(gw.outbound, "pegawai@gmail.com")]

    with caplog.at_level(logging.INFO):
        answers = await in_thread(run)
    # The policy's answers, not 451s.
    assert [code for code, _ in answers] == [550, 550, 550]
    assert b"rule=penghantar-dilarang" in answers[0][1]
    assert b"rule=relay-sender" in answers[2][1]
    refs = [text.decode().rsplit("ref=", 1)[1] for _, text in answers]
    # Loud: one ERROR for the episode, not one per message.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR
              and "rejection log" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "No space left on device" in errors[0].getMessage()
    # The journal still tells the truth about the replies.
    for ref in refs:
        assert journal_replies(caplog.records, ref) <= {"550 5.7.1"}
    status, body = await in_thread(lambda: http_get(metrics_addr, "/metrics"))
    assert status == 200
    assert metric(body, "gateway_rejection_log_failures_total") == 3
    assert metric(body, "gateway_rejection_log_buffered") == 3
    assert metric(body, "gateway_rejection_log_dropped_total") == 0
    status, body = await in_thread(lambda: http_get(metrics_addr, "/healthz"))
    assert status == 503
    assert "rejection log not writable" in body and "No space left on device" in body
    assert "3 record(s) buffered" in body

    # The disk has room again (the path is a plain file once more): the records are
    # written in order, health comes back, and the journal says so.
    os.unlink(gw.log_path)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        status, body = await in_thread(lambda: http_get(metrics_addr, "/healthz"))
    assert (status, body) == (200, "ready\n")
    assert any("writable again" in r.getMessage() for r in caplog.records)
    assert [r["ref"] for r in gw.records()] == refs
    assert [r["mail_from"] for r in gw.records()] == \
        ["x@blocked.anm.gov.my", "x@blocked.anm.gov.my", "pegawai@gmail.com"]
    status, body = await in_thread(lambda: http_get(metrics_addr, "/metrics"))
    assert metric(body, "gateway_rejection_log_buffered") == 0


async def test_records_kept_while_failing_reach_the_disk_without_new_traffic(
        full_disk_gateway: GatewayHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = full_disk_gateway
    code, _ = await in_thread(lambda: send_one(gw.outbound, message(
        sender="x@blocked.anm.gov.my"), sender="x@blocked.anm.gov.my"))
    assert code == 550
    assert gw.gateway.ctx.rejection_log.pending == 1
    os.unlink(gw.log_path)
    # The service retries on its own every LOG_RETRY_INTERVAL (5 s); bounded wait.
    deadline = time.monotonic() + 8
    while not gw.log_path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert [r["event"] for r in gw.records()] == ["reject"]
    assert gw.gateway.ctx.rejection_log.problem is None
