"""Incident alerts (issue 14 item 10, JANM 5.2.2(d)) through the running gateway.

smtplib against the proxy and the milter client against the milter; the shipped
RAHSIA rule (rules/20-klasifikasi.yaml, `incident: true`) and the tests' own rules;
a real upstream (FakeUpstream) or a Maildir receives the alert mails. Checked: the
alert carries rule id, ref and clause and none of the message's content; refusals
within `batch_seconds` share one mail; the hourly bound reports the dropped count;
an upstream that stalls or refuses never delays the client's reply, the failure is
logged and retried, then logged as lost; monitor-mode hits and other refusals send
nothing; pending alerts are sent when the gateway stops.
"""

from __future__ import annotations

import asyncio
import email
import logging
import smtplib
import time
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .milter_client import MilterClient
from .support import FakeUpstream, GatewayHandle, Received, client, in_thread, write_config

REPO = Path(__file__).resolve().parents[2]
CONTACTS = ["ictso@anm.gov.my", "helpdesk@anm.gov.my"]
SENDER = "gateway@anm.gov.my"
SECRET_SUBJECT = "RAHSIA: Pelan pemindahan pusat data Putrajaya"
SECRET_BODY = "Kod akses bilik pelayan ialah 884215 dan kunci di meja Encik Kamal."
CLAUSE = "PPPA Bil. 3 Tahun 2025, Lampiran A, 1.4.1(k)(iii) dan 3.2.2(a)(ii)(f)"

OWN_RULES = """
rules:
  - id: ujian-pantau-insiden
    description: "Pantauan ujian"
    reference: "Ujian 1"
    mode: monitor
    incident: true
    when: {sender_domain: [pantau.anm.gov.my]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Dipantau.", en: "Monitored."}}
  - id: penghantar-dilarang
    description: "Domain penghantar disekat"
    reference: "Ujian 2"
    when: {sender_domain: [blocked.anm.gov.my]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Penghantar disekat.", en: "Sender blocked."}}
"""


def config(tmp: Path, upstream: str, listeners: list[dict[str, Any]] | None = None,
           **incidents: Any) -> Path:
    path = write_config(tmp, upstream=upstream, rules=OWN_RULES)
    # The shipped RAHSIA rule as it stands in rules/ (with its `incident: true`); alone,
    # as the file's other rules use lists of other rule files.
    shipped = yaml.safe_load((REPO / "rules" / "20-klasifikasi.yaml").read_text())
    [rahsia] = [r for r in shipped["rules"] if r["id"] == "klasifikasi-rahsia"]
    (tmp / "rules" / "20-rahsia.yaml").write_text(yaml.safe_dump({"rules": [rahsia]}))
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["incidents"] = {"to": CONTACTS, "from": SENDER, **incidents}
    if listeners is not None:
        data["listeners"] = listeners
    path.write_text(yaml.safe_dump(data))
    return path


async def start(tmp: Path, upstream: FakeUpstream, **incidents: Any) -> GatewayHandle:
    gateway = Gateway(load_policy(config(tmp, f"smtp://127.0.0.1:{upstream.port}",
                                         **incidents)))
    await gateway.start()
    return GatewayHandle(gateway, tmp, tmp / "rejections.jsonl")


def secret(n: int = 1) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@anm.gov.my", "b@example.com", SECRET_SUBJECT
    m["Message-ID"] = f"<rahsia-{n}@anm.gov.my>"
    m.set_content(SECRET_BODY + "\n")
    return m.as_bytes(policy=SMTP)


def plain(sender: str) -> bytes:
    return (f"From: {sender}\r\nTo: b@example.com\r\nSubject: Mesyuarat biasa\r\n"
            "Message-ID: <p1@anm.gov.my>\r\n\r\nSalam.\r\n").encode()


def send(addr: tuple[str, int], raw: bytes, sender: str = "a@anm.gov.my",
         rcpts: tuple[str, ...] = ("b@example.com",)) -> tuple[int, str, float]:
    """(code, text, seconds from the end of DATA to the reply)."""
    s = client(addr)
    started = time.monotonic()
    try:
        s.sendmail(sender, list(rcpts), raw)
        return 250, "", time.monotonic() - started
    except smtplib.SMTPDataError as exc:
        error = exc.smtp_error
        text = error.decode() if isinstance(error, bytes) else error
        return exc.smtp_code, text, time.monotonic() - started
    finally:
        s.quit()


def alerts(upstream: FakeUpstream) -> list[Received]:
    return [m for m in upstream.messages if m.mail_from == SENDER]


def text_of(data: bytes) -> tuple[email.message.EmailMessage, str]:
    msg = email.message_from_bytes(data, policy=default)
    assert isinstance(msg, email.message.EmailMessage)
    body = msg.get_body()
    assert body is not None
    return msg, str(body.get_content())


async def wait_for(what: Any, seconds: float = 6.0) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_rahsia_refusal_alerts_the_contacts_without_content(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    gw = await start(tmp_path, upstream, batch_seconds=0.2)
    try:
        code, text, _ = await in_thread(lambda: send(
            gw.outbound, secret(), rcpts=("b@example.com", "c@example.org")))
        assert code == 550 and "rule=klasifikasi-rahsia" in text
        await wait_for(lambda: alerts(upstream))
    finally:
        await gw.gateway.stop(drain_timeout=1.0)
    [alert] = alerts(upstream)
    assert sorted(alert.rcpt_to) == sorted(CONTACTS)
    ref = gw.records()[-1]["ref"]
    assert ref in text
    msg, body = text_of(alert.data)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "[INSIDEN ICT]" in str(msg["Subject"])
    for expected in ("Peraturan / Rule: klasifikasi-rahsia", f"Rujukan / Ref: {ref}",
                     f"Klausa / Clause: {CLAUSE}", "Pengirim / Sender: <a@anm.gov.my>",
                     "<b@example.com>, <c@example.org>", "IP klien / Client IP: 127.0.0.1",
                     "Pendengar / Listener: outbound (outbound)",
                     "Pengelasan / Marking: RAHSIA", "Ditemui di / Found at: subject",
                     "(Asia/Kuala_Lumpur)", "+0800", "5.2.2(d)"):
        assert expected in body, (expected, body)
    # Nothing of the message: not its subject, not its body, not in any encoding.
    raw = alert.data.decode("ascii", "replace")
    for leak in ("Pelan pemindahan", "Putrajaya", "884215", "Encik Kamal", "Kod akses"):
        assert leak not in body and leak not in raw and leak not in str(msg["Subject"])


async def test_refusals_within_the_batch_window_share_one_mail(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    gw = await start(tmp_path, upstream, batch_seconds=2)
    try:
        for n in range(3):
            code, _, _ = await in_thread(lambda n=n: send(gw.outbound, secret(n)))  # type: ignore[misc]
            assert code == 550
        await wait_for(lambda: alerts(upstream))
        await asyncio.sleep(0.3)
    finally:
        await gw.gateway.stop(drain_timeout=1.0)
    [alert] = alerts(upstream)
    _, body = text_of(alert.data)
    refs = [r["ref"] for r in gw.records()]
    assert len(refs) == 3
    assert all(f"Rujukan / Ref: {ref}" in body for ref in refs)
    assert "[3]" in body and "dropped" not in body


async def test_beyond_the_hourly_bound_the_dropped_count_is_reported(
        tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "gateway.incidents")
    gw = await start(tmp_path, upstream, batch_seconds=2, max_per_hour=2)
    try:
        for n in range(4):
            code, _, _ = await in_thread(lambda n=n: send(gw.outbound, secret(n)))  # type: ignore[misc]
            assert code == 550
        await wait_for(lambda: alerts(upstream))
    finally:
        await gw.gateway.stop(drain_timeout=1.0)
    [alert] = alerts(upstream)
    _, body = text_of(alert.data)
    refs = [r["ref"] for r in gw.records()]
    assert all(f"Rujukan / Ref: {ref}" in body for ref in refs[:2])
    assert not any(ref in body for ref in refs[2:])
    assert "2 amaran lagi digugurkan kerana had 2 sejam" in body
    assert "2 more alert(s) dropped by the limit of 2 per hour" in body
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 2 and all(ref in " ".join(dropped) for ref in refs[2:])


async def test_a_stalled_upstream_never_delays_the_reply_and_the_alert_is_retried(
        tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "gateway.incidents")
    # The upstream stalls before its 354 (the refused messages never reach DATA, only
    # the alert does): the gateway's upstream_timeout is 1s.
    upstream.delay["DATA"] = 3.0
    gw = await start(tmp_path, upstream, batch_seconds=0)
    incidents = gw.gateway.incidents
    try:
        code, _, _ = await in_thread(lambda: send(gw.outbound, secret(1)))
        assert code == 550
        await wait_for(lambda: sum(c == "DATA" for c in upstream.commands) == 1)
        # The alert's transaction is stalled now; another refusal is answered at once.
        code, text, seconds = await in_thread(lambda: send(gw.outbound, secret(2)))
        assert code == 550 and "rule=klasifikasi-rahsia" in text
        assert seconds < 0.5, seconds
        assert alerts(upstream) == [] and incidents.sent == 0
        assert not any("not sent" in r.getMessage() for r in caplog.records)
        # The timeout is logged, the alerts kept; once the upstream answers, both go.
        await wait_for(lambda: any("not sent" in r.getMessage() for r in caplog.records))
        assert incidents.pending == 2
        del upstream.delay["DATA"]
        await wait_for(lambda: alerts(upstream))
    finally:
        await gw.gateway.stop(drain_timeout=1.0)
    refs = [r["ref"] for r in gw.records()]
    bodies = " ".join(text_of(a.data)[1] for a in alerts(upstream))
    assert all(f"Rujukan / Ref: {ref}" in bodies for ref in refs)
    assert incidents.lost == 0


async def test_an_upstream_refusing_alerts_is_logged_then_they_are_lost(
        tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "gateway.incidents")
    upstream.answers["DATA"] = "451 4.3.0 Cuba lagi"
    gw = await start(tmp_path, upstream, batch_seconds=0, retry_seconds=1.5)
    try:
        code, _, seconds = await in_thread(lambda: send(gw.outbound, secret()))
        assert code == 550 and seconds < 0.5
        await wait_for(lambda: any("lost" in r.getMessage() for r in caplog.records))
    finally:
        await gw.gateway.stop(drain_timeout=1.0)
    ref = gw.records()[-1]["ref"]
    failed = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert len(failed) >= 2 and "451 4.3.0 Cuba lagi" in failed[0] and ref in failed[0]
    [lost] = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert ref in lost and "klasifikasi-rahsia" in lost
    assert alerts(upstream) == [] and gw.gateway.incidents.lost == 1


async def test_monitor_hits_and_other_refusals_send_nothing(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    gw = await start(tmp_path, upstream, batch_seconds=0)
    try:
        code, _, _ = await in_thread(lambda: send(gw.outbound, plain("a@pantau.anm.gov.my"),
                                                  sender="a@pantau.anm.gov.my"))
        assert code == 250
        code, _, _ = await in_thread(lambda: send(gw.outbound, plain("a@blocked.anm.gov.my"),
                                                  sender="a@blocked.anm.gov.my"))
        assert code == 550
        await asyncio.sleep(0.5)
    finally:
        await gw.gateway.stop(drain_timeout=1.0)
    assert [r["event"] for r in gw.records()] == ["monitor", "reject"]
    assert [r["rule_id"] for r in gw.records()] == ["ujian-pantau-insiden",
                                                     "penghantar-dilarang"]
    assert alerts(upstream) == [] and len(upstream.messages) == 1


async def test_pending_alerts_are_sent_when_the_gateway_stops(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    gw = await start(tmp_path, upstream, batch_seconds=600)
    try:
        code, _, _ = await in_thread(lambda: send(gw.outbound, secret()))
        assert code == 550
        await asyncio.sleep(0.3)
        assert alerts(upstream) == []
    finally:
        await gw.gateway.stop(drain_timeout=1.0)
    [alert] = alerts(upstream)
    assert gw.records()[-1]["ref"] in text_of(alert.data)[1]


async def test_milter_refusal_alerts_once_into_the_maildir(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    path = config(tmp_path, f"maildir:{maildir}",
                  [{"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound",
                    "mode": "milter"}], batch_seconds=0.2)
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        c = await MilterClient.open(gateway.address("milter"))
        try:
            await c.connect("192.0.2.7")
            out = await c.message(secret(), "x@example.com", ["b@anm.gov.my"])
            assert out.stage == "eob" and "rule=klasifikasi-rahsia" in out.text
        finally:
            await c.close()
        await wait_for(lambda: any((maildir / "new").iterdir()))
        await asyncio.sleep(0.3)
    finally:
        await gateway.stop(drain_timeout=1.0)
    [file] = list((maildir / "new").iterdir())
    msg, body = text_of(file.read_bytes())
    ref = GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl").records()[-1]["ref"]
    assert f"Rujukan / Ref: {ref}" in body and "IP klien / Client IP: 192.0.2.7" in body
    assert "Pendengar / Listener: milter (inbound)" in body
    assert "Pengirim / Sender: <x@example.com>" in body
    assert "Pelan pemindahan" not in body and "884215" not in body
    assert msg["To"] == ", ".join(CONTACTS)
