"""`incident: true` on rules, the `incidents:` config, and the alert mail's text
(gateway.observe.incidents); the alerts through the running gateway are in
tests/integration/test_incidents_smtp.py."""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from gateway.config import IncidentSettings, load_config
from gateway.envelope import Envelope
from gateway.observe.incidents import alert_of, incident_rule, render_mail
from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.policy.verdict import Outcome, Reply, Verdict
from gateway.problems import LoadError

REPO = Path(__file__).resolve().parents[2]
BUILTINS = builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ("127.0.0.0/8",))
REPLY = "reply: {code: 550, enhanced: '5.7.1', text: {ms: Ditolak, en: Refused}}"
SHIPPED_INCIDENTS = {"klasifikasi-rahsia", "perisian-hasad-virus", "makro-autoexec-mencurigakan",
                     "hebahan-tag-palsu", "hebahan-tag-palsu-masuk", "hebahan-spf-gagal",
                     "hebahan-dmarc-gagal"}


def load(tmp_path: Path, text: str) -> RuleSet:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "10-a.yaml").write_text(text.lstrip("\n"))
    return load_rules(d, BUILTINS)


def test_shipped_incident_rules() -> None:
    rs = load_rules(REPO / "rules", BUILTINS)
    marked = {r.id for r in rs.rules if r.incident}
    assert marked >= SHIPPED_INCIDENTS
    for rule in rs.rules:
        if rule.incident:
            assert rule.action == "reject" and rule.mode == "enforce", rule.id


def test_incident_flag_loads_and_is_checked(tmp_path: Path) -> None:
    rs = load(tmp_path, f"""
rules:
  - id: a
    incident: true
    when: {{sender_domain: [x.example]}}
    action: reject
    {REPLY}
  - id: b
    when: {{sender_domain: [y.example]}}
    action: reject
    {REPLY}
""")
    assert [r.incident for r in rs.rules] == [True, False]
    with pytest.raises(LoadError) as info:
        load(tmp_path, """
rules:
  - id: a
    incident: "ya"
    when: {sender_domain: [x.example]}
    action: tag
    tag: "[X]"
  - id: b
    incident: true
    when: {sender_domain: [x.example]}
    action: tag
    tag: "[X]"
""")
    found = [(p.line, p.message) for p in info.value.problems]
    assert found == [(3, "incident must be true or false, got 'ya'"),
                     (8, "incident: true only goes with action: reject (a refusal is what "
                         "is reported)")]


def test_incidents_config(tmp_path: Path) -> None:
    base = {"listeners": [{"name": "o", "listen": "127.0.0.1:0", "direction": "outbound"}],
            "upstream": "maildir:mail", "agency_domains": ["anm.gov.my"]}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({**base, "incidents": {
        "to": ["ICTSO@ANM.gov.my", "helpdesk@anm.gov.my"], "from": "gateway@anm.gov.my"}}))
    settings = load_config(path).incidents
    assert settings == IncidentSettings.model_validate(
        {"to": ["ictso@anm.gov.my", "helpdesk@anm.gov.my"], "from": "gateway@anm.gov.my",
         "max_per_hour": 60, "batch_seconds": 60, "retry_seconds": 3600})
    path.write_text(yaml.safe_dump({**base, "incidents": {
        "to": ["ictso"], "from": "gateway@anm.gov.my", "max_per_hour": 0}}))
    with pytest.raises(LoadError) as info:
        load_config(path)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "incidents.to" in text and "bad address 'ictso'" in text
    assert "incidents.max_per_hour" in text


def test_alert_mail_carries_facts_not_content() -> None:
    rs = load_rules(REPO / "rules", BUILTINS)
    verdict = Verdict(
        outcome=Outcome.REJECT, reply=Reply(550, "5.7.1", ("a", "b")),
        rule_id="klasifikasi-rahsia", classification="RAHSIA",
        evidence={"classification": "RAHSIA", "where": [
            {"in": "subject", "at": "subject", "text": "RAHSIA Pelan X"},
            {"in": "attachment", "name": "a.docx", "at": "attachment:a.docx:header"}]})
    rule = incident_rule(rs, verdict)
    assert rule is not None and rule.id == "klasifikasi-rahsia"
    assert incident_rule(rs, Verdict(outcome=Outcome.ACCEPT)) is None
    envelope = Envelope(direction="outbound", listener="keluar", client_ip="10.1.2.3",
                        helo="pc", mail_from="a\r\nBcc: x@evil@anm.gov.my",
                        rcpt_to=("b@example.com",))
    alert = alert_of(rule, verdict, envelope, "20261130-abc",
                     datetime(2026, 11, 30, 16, 30, tzinfo=UTC))
    settings = IncidentSettings.model_validate({"to": ["ictso@anm.gov.my"],
                                                "from": "gw@anm.gov.my"})
    raw = render_mail([alert], 3, settings, ZoneInfo("Asia/Kuala_Lumpur"), "gw.test")
    msg = email.message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    assert b"\r\nBcc:" not in raw and msg["Bcc"] is None
    body = msg.get_body()
    assert body is not None
    text = str(body.get_content())
    assert "Masa / Time: 2026-12-01 00:30:00 +0800 (Asia/Kuala_Lumpur)" in text
    assert "Ditemui di / Found at: subject, attachment:a.docx:header" in text
    assert "Pengirim / Sender: <a\\x0d\\x0aBcc: x@evil@anm.gov.my>" in text
    assert "Pelan X" not in text
    assert "3 more alert(s) dropped by the limit of 60 per hour" in text


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False)


def test_check_and_rules_check_name_the_incident(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "listeners": [{"name": "o", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": f"maildir:{tmp_path / 'mail'}", "agency_domains": ["anm.gov.my"],
        "rules_dir": str(REPO / "rules"), "rejection_log": str(tmp_path / "r.jsonl"),
        "incidents": {"to": ["ictso@anm.gov.my"], "from": "gw@anm.gov.my"}}))
    eml = tmp_path / "r.eml"
    eml.write_bytes(b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: RAHSIA: Pelan\r\n"
                    b"\r\nx\r\n")
    proc = gateway("check", "--json", "--direction", "outbound", "--config", str(config),
                   str(eml))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["incident"] == {"rule_id": "klasifikasi-rahsia",
                                                   "to": ["ictso@anm.gov.my"]}
    proc = gateway("check", "--direction", "outbound", "--config", str(config), str(eml))
    assert "incident: klasifikasi-rahsia, told to ictso@anm.gov.my" in proc.stdout
    proc = gateway("rules", "check", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^incidents: refusals by \d+ rule\(s\) are told to ictso@anm.gov.my ",
                     proc.stdout, re.M)


def test_virus_alert_names_the_signature_not_the_file() -> None:
    rs = load_rules(REPO / "rules", BUILTINS)
    verdict = Verdict(
        outcome=Outcome.REJECT, reply=Reply(554, "5.7.1", ("a", "b")),
        rule_id="perisian-hasad-virus",
        evidence={"clamd": "unix:/run/clamd.ctl", "scanned": 2, "virus": [
            {"signature": "Win.Test.EICAR_HDB-1", "part": "attachment", "index": 0,
             "filename": "laporan-rahsia.zip"}]})
    rule = incident_rule(rs, verdict)
    assert rule is not None
    envelope = Envelope(direction="inbound", listener="masuk", client_ip="192.0.2.1",
                        helo="mx", mail_from="x@example.com", rcpt_to=("b@anm.gov.my",))
    alert = alert_of(rule, verdict, envelope, "20261130-def")
    assert alert.signatures == (("Win.Test.EICAR_HDB-1", "attachment 0"),)
    settings = IncidentSettings.model_validate({"to": ["ictso@anm.gov.my"],
                                                "from": "gw@anm.gov.my"})
    raw = render_mail([alert], 0, settings, UTC, "gw.test")
    assert b"Virus: Win.Test.EICAR_HDB-1 (attachment 0)" in raw
    assert b"laporan-rahsia" not in raw and b"dropped" not in raw
