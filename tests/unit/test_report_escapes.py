"""`gateway report` never prints a log's control or bidi characters raw: a hostile record
(an ESC sequence in a rule id, U+202E in a sender domain) is shown with visible escapes
in the table, as in the HTML page; the JSON keeps the values as logged (escaped by JSON).
The log is a real file read by the real command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.observe.report import printable

REPO = Path(__file__).resolve().parents[2]
HOSTILE = {
    "ts": "2025-03-01T08:00:00.000Z", "ref": "R1", "event": "reject",
    "direction": "out\x1b[2Jbound",
    "mail_from": "ali@gmail\u202emoc.evil", "rcpt_to": ["b@anm.gov.my\u2066x"],
    "rule_id": "klasifikasi\x1b]0;pwned\x07-rahsia\u200b",
}
RAW = ("\x1b", "\x07", "\u202e", "\u2066", "\u200b")


def report(*args: str, log: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gateway", "report", *args, str(log)],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def write_log(tmp_path: Path) -> Path:
    log = tmp_path / "rejections.jsonl"
    log.write_text(json.dumps(HOSTILE, ensure_ascii=False) + "\n", encoding="utf-8")
    return log


def test_table_shows_control_and_bidi_characters_as_escapes(tmp_path: Path) -> None:
    proc = report(log=write_log(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for ch in RAW:
        assert ch not in proc.stdout, repr(ch)
    assert "klasifikasi\\x1b]0;pwned\\x07-rahsia\\u200b" in proc.stdout
    assert "gmail\\u202emoc.evil" in proc.stdout
    assert "out\\x1b[2Jbound" in proc.stdout


def test_html_page_escapes_them_the_same_way(tmp_path: Path) -> None:
    proc = report("--format", "html", log=write_log(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for ch in RAW:
        assert ch not in proc.stdout, repr(ch)
    assert "gmail\\u202emoc.evil" in proc.stdout


def test_json_keeps_the_logged_values(tmp_path: Path) -> None:
    proc = report("--json", log=write_log(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout  # JSON escapes control characters itself
    data = json.loads(proc.stdout)
    assert data["top_sender_domains"] == [{"domain": "gmail\u202emoc.evil", "count": 1}]


def test_printable() -> None:
    assert printable("anm.gov.my") == "anm.gov.my"
    assert printable("pengirim-émel") == "pengirim-émel"  # letters stay letters
    assert printable("a\x1bb\u202ec\U000e0041d\\e\nf") == "a\\x1bb\\u202ec\\U000e0041d\\\\e\\x0af"
