"""`gateway report` over logs written by the real RejectionLog, plain and gzipped."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.observe import report
from gateway.observe.rejection_log import RejectionLog, build_record
from gateway.policy.verdict import Hit, Outcome, Reply, Verdict


def record(event: str, rule: str, direction: str, mail_from: str, ts: str,
           subject: str = "x") -> dict[str, object]:
    env = Envelope(direction=direction, listener=direction, client_ip="192.0.2.1",  # type: ignore[arg-type]
                   helo="h", mail_from=mail_from, rcpt_to=("a@anm.gov.my",))
    view = MessageView(f"From: {mail_from or 'x@y'}\r\nSubject: {subject}\r\n\r\nb\r\n".encode())
    hit = Hit(rule_id=rule, action="reject", mode="monitor" if event == "monitor" else "enforce",
              reference="ref", evidence={})
    outcome = {"reject": Outcome.REJECT, "tempfail": Outcome.TEMPFAIL}.get(event, Outcome.ACCEPT)
    reply = Reply(550, "5.7.1", ("no",)) if event == "reject" else None
    verdict = Verdict(outcome=outcome, reply=reply,
                      rule_id=rule if event in ("reject", "tempfail") else None, hits=(hit,))
    rec = build_record(event=event, ref="r", envelope=env, view=view, verdict=verdict, reply=reply)
    rec["ts"] = ts
    return rec


@pytest.fixture
def logs(tmp_path: Path) -> list[Path]:
    plain = tmp_path / "rejections.jsonl"
    log = RejectionLog(plain)
    log.write(record("reject", "klasifikasi-rahsia", "outbound", "ali@anm.gov.my",
                     "2025-03-01T08:00:00.000Z"))
    log.write(record("reject", "pengirim-emel-peribadi", "outbound", "ali@gmail.com",
                     "2025-03-01T09:00:00.000Z", subject="<script>alert(1)</script>"))
    log.write(record("monitor", "pautan-storan-luar", "inbound", "x@mail.gmail.com",
                     "2025-03-02T10:00:00.000Z"))
    log.close()
    with plain.open("ab") as f:
        f.write(b'{"ts": "2025-03-02T11:00:00Z", "event": "reject", "rule_\n')  # torn write
        f.write(b"\n")
        f.write(b"[1, 2, 3]\n")
    rotated = tmp_path / "rejections.jsonl.1.gz"
    with gzip.open(rotated, "wt", encoding="utf-8") as g:
        for rec in (record("reject", "klasifikasi-rahsia", "inbound", "", "2025-02-28T23:59:59Z"),
                    record("tag", "hebahan-tag", "outbound", "hebahan@anm.gov.my",
                           "2025-02-28T12:00:00Z")):
            g.write(json.dumps(rec) + "\n")
    return [plain, rotated]


def test_counts(logs: list[Path]) -> None:
    s = report.summarise(logs)
    d = report.to_dict(s)
    assert d["records"] == 5
    assert d["skipped"] == 2
    assert d["by_event"] == {"reject": 3, "monitor": 1, "tag": 1}
    assert d["by_rule"] == {"klasifikasi-rahsia": 2, "hebahan-tag": 1,
                            "pautan-storan-luar": 1, "pengirim-emel-peribadi": 1}
    assert d["by_rule_event"]["klasifikasi-rahsia"] == {"reject": 2}
    assert d["by_direction"] == {"outbound": 3, "inbound": 2}
    assert d["top_sender_domains"] == [{"domain": "anm.gov.my", "count": 2},
                                       {"domain": "<>", "count": 1},
                                       {"domain": "gmail.com", "count": 1},
                                       {"domain": "mail.gmail.com", "count": 1}]
    assert d["per_day"] == [
        {"date": "2025-02-28", "total": 2, "reject": 1, "tag": 1},
        {"date": "2025-03-01", "total": 2, "reject": 2},
        {"date": "2025-03-02", "total": 1, "monitor": 1}]
    assert d["first"] == "2025-02-28T12:00:00Z"
    assert d["last"] == "2025-03-02T10:00:00.000Z"


def test_corrupt_lines_are_named_by_file_and_line(logs: list[Path]) -> None:
    s = report.summarise(logs)
    assert s.warnings == [f"{logs[0]}:4: skipped: not a JSON object",
                          f"{logs[0]}:6: skipped: not a JSON object"]


def test_missing_and_broken_gzip_files_are_warnings(tmp_path: Path, logs: list[Path]) -> None:
    broken = tmp_path / "broken.jsonl.2.gz"
    broken.write_bytes(gzip.compress(b'{"event": "reject"}\n' * 100)[:40])
    s = report.summarise([*logs, tmp_path / "missing.jsonl", broken])
    assert s.records >= 5
    assert any(w.startswith(f"{tmp_path / 'missing.jsonl'}: cannot read") for w in s.warnings)
    assert any(w.startswith(f"{broken}: cannot read") for w in s.warnings)


def test_top_limits_the_domain_list(logs: list[Path]) -> None:
    assert len(report.to_dict(report.summarise(logs, top=2))["top_sender_domains"]) == 2


def test_text_output(logs: list[Path]) -> None:
    text = report.to_text(report.summarise(logs))
    assert "5 records from 2 file(s), 2025-02-28T12:00:00Z .. 2025-03-02T10:00:00.000Z" in text
    assert "2 corrupt line(s) skipped" in text
    assert "klasifikasi-rahsia (reject 2)" in text
    assert "2025-03-02 (monitor 1)" in text


def test_cli_json_html_and_warnings(logs: list[Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--json", "--html", str(out), *map(str, logs)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["records"] == 5
    assert f"warning: {logs[0]}:4: skipped" in captured.err
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "pengirim-emel-peribadi" in page
    assert "<script" not in page


def test_cli_text_and_empty_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert main(["report", str(empty)]) == 0
    assert "0 records from 1 file(s)" in capsys.readouterr().out
    assert main(["report"]) == 2  # a LOG is required
