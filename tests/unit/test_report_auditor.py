"""`gateway report` for an auditor: the config's time zone (validated at load, FILE:LINE),
days split at local midnight, clauses split from a rule's reference, colours only on a
terminal or when asked, `--html OUT` without the table, rule texts escaped. The command
runs for real (in process, or as a subprocess on a real pseudo-terminal for `auto`)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import DEFAULT_TIMEZONE, load_config, time_zone
from gateway.observe import report
from gateway.problems import LoadError

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "report"
CONFIG = """\
listeners:
  - {name: outbound, listen: "127.0.0.1:0", direction: outbound}
upstream: "maildir:var/mail"
agency_domains: [anm.gov.my]
"""
RULE = """\
rules:
  - id: r1
    description: "%s"
    reference: "%s"
    direction: both
    when: {classification: [RAHSIA]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Tidak.", en: "No."}}
"""


def record(ts: str, event: str = "reject", rule: str = "r1",
           reference: str | None = None) -> str:
    return json.dumps({"ts": ts, "event": event, "rule_id": rule, "reference": reference,
                       "direction": "outbound", "mail_from": "a@anm.gov.my",
                       "rcpt_to": ["b@gmail.com"]})


def setup(tmp_path: Path, *, config: str = CONFIG, description: str = "Keterangan",
          reference: str = "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(f)",
          records: tuple[str, ...] = ()) -> Path:
    # rules_dir, relative, would be read from the working directory (as by the gateway).
    (tmp_path / "gateway.yaml").write_text(f"{config}rules_dir: {tmp_path / 'rules'}\n",
                                           encoding="utf-8")
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(RULE % (description, reference),
                                               encoding="utf-8")
    log = tmp_path / "rejections.jsonl"
    log.write_text("".join(r + "\n" for r in records), encoding="utf-8")
    return log


# -- clauses -----------------------------------------------------------------------------
@pytest.mark.parametrize(("reference", "expected"), [
    ("PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(g) dan 3.2.2(a)(v)(f); "
     "Garis Panduan Emel Kelantan 5.4",
     ["PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(g)",
      "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(v)(f)", "Garis Panduan Emel Kelantan 5.4"]),
    ("PPPA Bil. 3 Tahun 2025, Lampiran A, 1.4.1(f)-(g); RFC 2046 5.2.2",
     ["PPPA Bil. 3 Tahun 2025, Lampiran A, 1.4.1(f)-(g)", "RFC 2046 5.2.2"]),
    ("PTPA Bil. 3 Tahun 2017, Lampiran 1, para 10(vii) (dibatalkan oleh PPPA Bil. 3 "
     "Tahun 2025, para 17)",
     ["PTPA Bil. 3 Tahun 2017, Lampiran 1, para 10(vii) (dibatalkan oleh PPPA Bil. 3 "
      "Tahun 2025, para 17)"]),
    ("Surat Arahan KP MAMPU 1 Jun 2007, 3(e)-(f); Garis Panduan Emel Kelantan 5.1(c),(j)",
     ["Surat Arahan KP MAMPU 1 Jun 2007, 3(e)-(f)", "Garis Panduan Emel Kelantan 5.1(c),(j)"]),
    ("Garis Panduan Emel Kelantan 5.3 dan 5.4", ["Garis Panduan Emel Kelantan 5.3",
                                                 "Garis Panduan Emel Kelantan 5.4"]),
    ("A, 1 dan para 2 dan A, 1", ["A, 1", "A, para 2"]),
    ("", []),
])
def test_clauses(reference: str, expected: list[str]) -> None:
    assert report.clauses(reference) == expected


def test_a_record_counts_under_each_clause_and_falls_back_to_the_loaded_rule(
        tmp_path: Path) -> None:
    log = setup(tmp_path, reference="X 1 dan 2; Y 3", records=(
        record("2025-03-01T00:00:00Z"),  # no reference logged: the loaded rule's
        record("2025-03-01T00:00:01Z", event="monitor", reference="X 1"),
        record("2025-03-01T00:00:02Z", rule="gone"),  # neither
    ))
    _, rules = report.read_rules(tmp_path / "gateway.yaml")
    d = report.to_dict(report.summarise([log]), rules)
    assert d["by_clause"] == [
        {"clause": "X 1", "total": 2, "monitor": 1, "reject": 1},
        {"clause": "(no clause)", "total": 1, "reject": 1},
        {"clause": "X 2", "total": 1, "reject": 1},
        {"clause": "Y 3", "total": 1, "reject": 1}]
    assert d["rules"] == {"r1": {"description": "Keterangan", "reference": "X 1 dan 2; Y 3",
                                 "loaded": True}, "gone": {"loaded": False}}


# -- time zone ---------------------------------------------------------------------------
def test_timezone_defaults_to_kuala_lumpur_and_is_checked_at_load(tmp_path: Path) -> None:
    setup(tmp_path)
    assert load_config(tmp_path / "gateway.yaml").timezone == DEFAULT_TIMEZONE == \
        "Asia/Kuala_Lumpur"
    (tmp_path / "utc.yaml").write_text(CONFIG + "timezone: UTC\n", encoding="utf-8")
    assert load_config(tmp_path / "utc.yaml").timezone == "UTC"
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG + "timezone: Asia/Kuala_Lumpr\n", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_config(bad)
    assert [str(p) for p in caught.value.problems] == [
        f"{bad}:5: timezone: unknown time zone 'Asia/Kuala_Lumpr': expected an IANA name "
        "such as Asia/Kuala_Lumpur or UTC"]
    for name in ("", " UTC", "../../etc/passwd", "/etc/localtime"):
        with pytest.raises(ValueError, match="unknown time zone"):
            time_zone(name)


def test_report_refuses_a_config_with_an_unknown_zone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = setup(tmp_path, config=CONFIG + "timezone: Mars/Olympus\n")
    assert main(["report", "--config", str(tmp_path / "gateway.yaml"), str(log)]) == 2
    assert f"{tmp_path / 'gateway.yaml'}:5: timezone: unknown time zone" in \
        capsys.readouterr().err
    assert main(["report", "--timezone", "Nowhere", "--config",
                 str(DATA / "gateway.yaml"), str(log)]) == 2
    assert "unknown time zone 'Nowhere'" in capsys.readouterr().err


def test_since_until_dates_are_local_days(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    kl = time_zone("Asia/Kuala_Lumpur")
    assert report.parse_when("2025-03-01", tz=kl) == datetime(2025, 2, 28, 16, tzinfo=UTC)
    assert report.parse_when("2025-03-01", end=True, tz=kl) == \
        datetime(2025, 3, 1, 15, 59, 59, 999999, tzinfo=UTC)
    assert report.parse_when("2025-03-01T08:00:00", tz=kl) == datetime(2025, 3, 1, tzinfo=UTC)
    assert report.parse_when("2025-03-01T08:00:00Z", tz=kl) == \
        datetime(2025, 3, 1, 8, tzinfo=UTC)
    log = setup(tmp_path, config=CONFIG + "timezone: Asia/Kuala_Lumpur\n", records=(
        record("2025-02-28T15:59:59Z"), record("2025-02-28T16:00:00Z"),
        record("2025-03-01T15:59:59Z"), record("2025-03-01T16:00:00Z")))
    assert main(["report", "--json", "--config", str(tmp_path / "gateway.yaml"),
                 "--since", "2025-03-01", "--until", "2025-03-01", str(log)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["records"], d["out_of_range"], d["timezone"]) == (2, 2, "Asia/Kuala_Lumpur")
    assert d["per_day"] == [{"date": "2025-03-01", "total": 2, "reject": 2}]


# -- colours -----------------------------------------------------------------------------
def run_on_pty(args: list[str], cwd: Path) -> str:
    """The command's output when its stdout is a real pseudo-terminal."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "report", *args], cwd=cwd,
                            stdout=secondary, stderr=subprocess.DEVNULL, env=env)
    os.close(secondary)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(primary)
        proc.wait(timeout=30)
    return out.decode()


def test_colours_on_a_terminal_only(tmp_path: Path) -> None:
    args = ["--config", str(DATA / "gateway.yaml"), str(DATA / "records.jsonl")]
    on_tty = run_on_pty(args, DATA)
    assert "\x1b[1;31m" in on_tty and "\x1b[36m" in on_tty  # refusals red, tags cyan
    assert report.ANSI["reject"] != report.ANSI["tag"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    piped = subprocess.run([sys.executable, "-m", "gateway", "report", *args], cwd=DATA,
                           capture_output=True, text=True, timeout=60, env=env, check=True)
    assert "\x1b" not in piped.stdout
    assert "\x1b" not in run_on_pty(["--color", "never", *args], DATA)
    forced = subprocess.run([sys.executable, "-m", "gateway", "report", "--color", "always",
                             *args], cwd=DATA, capture_output=True, text=True, timeout=60,
                            env=env, check=True)
    assert "\x1b[1;31m" in forced.stdout


def test_colours_never_let_a_log_value_through_raw(tmp_path: Path) -> None:
    log = setup(tmp_path, records=(record("2025-03-01T00:00:00Z", rule="x\x1b[2Jy",
                                          reference="R\x1b]2\x07 1"),))
    text = report.to_text(report.summarise([log]), {}, color=True)
    stripped = text.replace(report.ANSI_RESET, "")
    for sgr in report.ANSI.values():
        stripped = stripped.replace(sgr, "")
    assert "\x1b" not in stripped and "\x07" not in stripped
    assert "x\\x1b[2Jy" in text and "R\\x1b]2\\x07 1" in text


# -- --html OUT --------------------------------------------------------------------------
def test_html_out_writes_the_page_and_prints_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "laporan.html"
    args = ["--config", str(DATA / "gateway.yaml"), str(DATA / "records.jsonl")]
    assert main(["report", "--html", str(out), *args]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"report written to / laporan ditulis ke: {out}\n"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Asia/Kuala_Lumpur" in page
    assert main(["report", "--json", "--html", str(out), *args]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["records"] == 9  # stdout stays valid JSON
    assert f"laporan ditulis ke: {out}" in captured.err


# -- without a config, and rule texts escaped -------------------------------------------
def test_without_a_config_rules_are_shown_by_id_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no config/gateway.yaml here
    log = setup(tmp_path, records=(record("2025-03-01T16:30:00Z"),))
    assert main(["report", str(log)]) == 0
    captured = capsys.readouterr()
    assert "warning: no config/gateway.yaml (give --config)" in captured.err
    assert "rules not read (no config)" in captured.out
    assert "  r1\n" in captured.out and report.RETIRED not in captured.out
    assert "2025-03-02       1" in captured.out  # the default zone: Asia/Kuala_Lumpur
    assert main(["report", "--config", str(tmp_path / "missing.yaml"), str(log)]) == 2


def test_rule_description_and_clause_are_escaped(tmp_path: Path) -> None:
    log = setup(tmp_path, description="Lihat\\e[2J\\u202eini", reference="X\\u2066 1",
                records=(record("2025-03-01T00:00:00Z"),))
    _, rules = report.read_rules(tmp_path / "gateway.yaml")
    assert rules["r1"].description == "Lihat\x1b[2J\u202eini"
    summary = report.summarise([log])
    for out in (report.to_text(summary, rules, color=True), report.to_html(summary, rules)):
        for raw in ("\x1b[2J", "\u202e", "\u2066"):
            assert raw not in out
        assert "Lihat\\x1b[2J\\u202eini" in out and "X\\u2066 1" in out
