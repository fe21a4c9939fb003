"""The log key, what marked mail keeps in a record, ECS documents, syslog over a real
unix datagram socket, and `gateway log find` as an administrator runs it."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.observe.ecs import SyslogOutput, parse_syslog_address, to_ecs
from gateway.observe.log_privacy import (
    KEY_BYTES,
    LogKeyError,
    LogPrivacy,
    load_or_create_key,
    normalise_message_id,
    normalise_subject,
    read_key,
)
from gateway.observe.rejection_log import RejectionLog, build_record
from gateway.policy.verdict import Hit, Outcome, Reply, Verdict

REPO = Path(__file__).resolve().parents[2]
ENV = Envelope("outbound", "out", "192.0.2.7", "client.example", "a@anm.gov.my",
               ("b@example.com", "c@example.com"))
KEY = bytes(range(32))
SECRET_WORDS = "Perolehan Kapal Selam Zulu"


def marked(marking: str) -> bytes:
    return (f"From: Ali <a@anm.gov.my>\r\nSubject: [{marking}] {SECRET_WORDS}\r\n"
            "Message-ID: <m-77@anm.gov.my>\r\n\r\nbody\r\n").encode()


def verdict(evidence: dict[str, object]) -> Verdict:
    return Verdict(outcome=Outcome.REJECT, reply=Reply(550, "5.7.1", ("x",)), rule_id="r1",
                   reference="PPPA 3/2025", reason="because",
                   hits=(Hit("r1", "reject", "enforce", "PPPA 3/2025", evidence),),
                   evidence=evidence)


def record(marking: str, privacy: LogPrivacy | None) -> dict[str, object]:
    ev: dict[str, object] = {"classification": marking,
                             "where": [{"in": "subject", "text": SECRET_WORDS}],
                             "match": SECRET_WORDS}
    return build_record(event="reject", ref="R1", envelope=ENV,
                        view=MessageView(marked(marking)), verdict=verdict(ev),
                        reply=Reply(550, "5.7.1", ("x",)), privacy=privacy)


# -- the key -------------------------------------------------------------------------
def test_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "rejection-log.key"
    old = os.umask(0)  # the mode must not depend on the umask
    try:
        key = load_or_create_key(path)
    finally:
        os.umask(old)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key  # kept, not replaced, at the next start
    assert read_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["rejection-log.key"]  # no temp left


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    path.write_bytes(KEY)
    path.chmod(mode)
    with pytest.raises(LogKeyError, match=f"mode {mode:04o} lets others read"):
        load_or_create_key(path)
    assert path.read_bytes() == KEY  # never replaced


def test_short_key_and_missing_key_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(LogKeyError, match="5 bytes"):
        read_key(path)
    with pytest.raises(LogKeyError, match="No such file"):
        read_key(tmp_path / "none")


def test_key_never_in_repr() -> None:
    text = repr(LogPrivacy(key=KEY))
    assert KEY.hex() not in text and str(KEY) not in text


# -- normalisation and records ----------------------------------------------------------
def test_normalisation() -> None:
    assert normalise_subject("  SULIT:\tPerolehan \r\n Kapal  ") == "sulit: perolehan kapal"
    assert normalise_subject("Stra\u00dfe") == normalise_subject("STRASSE")
    assert normalise_subject("Cafe\u0301") == normalise_subject("Caf\u00e9")
    assert normalise_message_id(" <a.B@x>\r\n") == "a.B@x"
    p = LogPrivacy(key=KEY)
    assert p.subject("sulit:  PEROLEHAN kapal") == p.subject("SULIT: Perolehan Kapal")
    assert p.message_id("<a@x>") == p.message_id("a@x") != p.message_id("A@x")
    assert LogPrivacy(key=bytes(32)).subject("x") != p.subject("x")


@pytest.mark.parametrize("marking", ["SULIT", "TERHAD"])
def test_restricted_mail_keeps_only_hashes(marking: str) -> None:
    privacy = LogPrivacy(key=KEY)
    rec = record(marking, privacy)
    assert rec["classification"] == marking
    assert rec["subject"] == privacy.subject(f"[{marking}] {SECRET_WORDS}")
    assert rec["message_id"] == privacy.message_id("<m-77@anm.gov.my>")
    assert str(rec["subject"]).startswith("hmac-sha256:")
    assert rec["evidence"] == {"classification": marking, "where": [{"in": "subject"}]}
    text = json.dumps(rec)
    for word in [*SECRET_WORDS.split(), "m-77"]:
        assert word not in text


def test_without_a_key_nothing_is_kept() -> None:
    rec = record("SULIT", None)
    assert (rec["subject"], rec["message_id"]) == (None, None)


def test_clear_keeps_restricted_text_but_never_rahsia() -> None:
    clear = LogPrivacy(key=KEY, subjects="clear")
    rec = record("SULIT", clear)
    assert rec["subject"] == f"[SULIT] {SECRET_WORDS}"
    assert rec["message_id"] == "<m-77@anm.gov.my>"
    assert rec["evidence"]["match"] == SECRET_WORDS  # type: ignore[index]
    secret = record("RAHSIA", clear)
    assert secret["subject"] is None
    assert secret["message_id"] == clear.message_id("<m-77@anm.gov.my>")
    assert SECRET_WORDS not in json.dumps(secret)


def test_unmarked_mail_keeps_text() -> None:
    raw = b"From: a@anm.gov.my\r\nSubject: Minit mesyuarat\r\nMessage-ID: <1@x>\r\n\r\nb\r\n"
    rec = build_record(event="reject", ref="R", envelope=ENV, view=MessageView(raw),
                       verdict=verdict({"match": "Minit"}), reply=None,
                       privacy=LogPrivacy(key=KEY))
    assert (rec["subject"], rec["message_id"]) == ("Minit mesyuarat", "<1@x>")


# -- ECS and syslog ---------------------------------------------------------------------
def test_ecs_field_names() -> None:
    rec = record("SULIT", LogPrivacy(key=KEY))
    doc = to_ecs(rec)
    assert doc["@timestamp"] == rec["ts"]
    assert doc["ecs"] == {"version": "8.11.0"}
    assert doc["event"]["action"] == "reject"
    assert doc["event"]["outcome"] == "failure"
    assert doc["event"]["type"] == ["denied"] and doc["event"]["category"] == ["email"]
    assert doc["event"]["id"] == "R1" and doc["email"]["local_id"] == "R1"
    assert doc["rule"] == {"id": "r1", "reference": "PPPA 3/2025"}
    assert doc["source"] == {"ip": "192.0.2.7"}
    assert doc["email"]["from"]["address"] == ["a@anm.gov.my"]
    assert doc["email"]["sender"]["address"] == "a@anm.gov.my"
    assert doc["email"]["to"]["address"] == ["b@example.com", "c@example.com"]
    assert doc["email"]["subject"] == rec["subject"]
    assert doc["email"]["message_id"] == rec["message_id"]
    assert doc["email"]["direction"] == "outbound"
    assert doc["gateway"]["classification"] == "SULIT"
    assert doc["gateway"]["smtp_code"] == 550
    tag = to_ecs({**rec, "event": "tag"})
    assert tag["event"]["outcome"] == "success" and tag["event"]["type"] == ["allowed"]


def test_syslog_address_forms() -> None:
    assert parse_syslog_address("/dev/log") == "/dev/log"
    assert parse_syslog_address("udp://10.0.0.5:514") == ("10.0.0.5", 514)
    assert parse_syslog_address("udp://[2001:db8::1]:514") == ("2001:db8::1", 514)
    for bad in ("tcp://h:514", "udp://h", "udp://h:0", "log"):
        with pytest.raises(ValueError, match="bad syslog address"):
            parse_syslog_address(bad)


def test_records_reach_a_unix_datagram_socket(tmp_path: Path) -> None:
    where = tmp_path / "log.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(where))
    receiver.settimeout(5.0)
    output = SyslogOutput(str(where), facility="local3")
    log = RejectionLog(tmp_path / "r.jsonl", privacy=LogPrivacy(key=KEY), syslog=output)
    try:
        rec = record("TERHAD", LogPrivacy(key=KEY))
        log.write(rec)
        datagram = receiver.recv(65535)
    finally:
        log.close()
        output.close()
        receiver.close()
    # local3 (19) * 8 + warning (4) = 156 (RFC 5424 6.2.1)
    assert datagram.startswith(f"<156>gateway[{os.getpid()}]: ".encode())
    doc = json.loads(datagram.split(b"]: ", 1)[1].rstrip(b"\x00"))
    assert doc["email"]["subject"] == rec["subject"]
    assert doc["event"]["id"] == "R1"
    assert SECRET_WORDS.encode() not in datagram


def test_syslog_gone_never_fails_the_file_log(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    output = SyslogOutput(str(tmp_path / "nobody-listens.sock"))
    log = RejectionLog(tmp_path / "r.jsonl", syslog=output)
    for i in range(3):
        log.write({"ref": f"R{i}", "event": "reject"})
    log.close()
    output.close()
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3
    errors = [r for r in caplog.records if r.name == "gateway.syslog"]
    assert len(errors) == 1  # once per failure episode, not per record


# -- gateway log find -------------------------------------------------------------------
def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60)


def config_in(tmp_path: Path, **extra: object) -> Path:
    doc = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text())
    doc.pop("antivirus", None)
    doc["rejection_log"] = str(tmp_path / "log" / "rejections.jsonl")
    doc.update(extra)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_log_find_hashes_and_matches_clear_records(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    key = load_or_create_key(tmp_path / "log" / "rejection-log.key")
    privacy = LogPrivacy(key=key)
    log = RejectionLog(tmp_path / "log" / "rejections.jsonl")
    log.write(record("SULIT", privacy))
    log.write({**record("SULIT", LogPrivacy(key=key, subjects="clear")), "ref": "R2"})
    log.write({**record("RAHSIA", privacy), "ref": "R3"})
    log.close()
    # A rotated copy is searched too.
    rotated = tmp_path / "log" / "rejections.jsonl-20261129"
    rotated.write_text(json.dumps({**record("TERHAD", privacy), "ref": "R0"}) + "\n")
    found = run("log", "find", "--config", str(config), "--subject",
                "[sulit]   perolehan KAPAL selam zulu")
    assert found.returncode == 0, found.stderr
    assert [json.loads(line)["ref"] for line in found.stdout.splitlines()] == ["R1", "R2"]
    assert "2 record(s) found" in found.stderr
    by_id = run("log", "find", "--config", str(config), "--message-id", "m-77@anm.gov.my")
    assert [json.loads(line)["ref"] for line in by_id.stdout.splitlines()] == \
        ["R0", "R1", "R2", "R3"]
    only = run("log", "find", "--config", str(config), "--log", str(rotated),
               "--subject", f"[TERHAD] {SECRET_WORDS}")
    assert [json.loads(line)["ref"] for line in only.stdout.splitlines()] == ["R0"]
    none = run("log", "find", "--config", str(config), "--subject", "lain")
    assert (none.returncode, none.stdout) == (1, "")


def test_log_find_refuses_without_a_usable_key(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    config = config_in(tmp_path, log_key_file=str(key))
    missing = run("log", "find", "--config", str(config), "--subject", "x")
    assert missing.returncode == 2 and "log_key_file:" in missing.stderr
    assert not key.exists()  # log find never makes a key
    key.write_bytes(KEY)
    key.chmod(0o644)
    loose = run("log", "find", "--config", str(config), "--subject", "x")
    assert loose.returncode == 2 and "lets others read" in loose.stderr
    assert KEY.hex() not in loose.stderr
    usage = run("log", "find", "--config", str(config))
    assert usage.returncode == 2 and "--subject" in usage.stderr


def test_config_keys_are_checked(tmp_path: Path) -> None:
    bad = config_in(tmp_path, log_subjects="plain", syslog={"address": "tcp://x:1"})
    out = run("rules", "check", "--config", str(bad))
    assert out.returncode != 0
    assert "log_subjects" in out.stderr and "syslog.address" in out.stderr
