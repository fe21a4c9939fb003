"""`gateway report` golden files: a fixed log (tests/unit/data/report/records.jsonl), a
fixed config and rule set beside it, and the exact table and HTML page in two time zones,
Asia/Kuala_Lumpur (the config's) and UTC (`--timezone UTC`).

The log holds a record at 16:30 UTC on 1 March, which is 00:30 on 2 March in Kuala
Lumpur: it counts on 2 March in one file and on 1 March in the other. It also holds a
rule no longer in the rules, a gateway's own refusal, a line without `reference`, and
control and bidi characters in a rule id and a sender domain.

After an intended change of the output, rewrite the files with
`REPORT_GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/unit/test_report_golden.py`
and read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import time_zone
from gateway.observe import report

DATA = Path(__file__).parent / "data" / "report"
GOLDEN = DATA / "golden"
CASES = {
    "kuala-lumpur.txt": [],
    "utc.txt": ["--timezone", "UTC"],
    "kuala-lumpur.html": ["--format", "html"],
    "utc.html": ["--format", "html", "--timezone", "UTC"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_matches_its_golden_file(name: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(DATA)  # relative paths: the file names in the report are stable
    assert main(["report", "--config", "gateway.yaml", "--color", "always", *CASES[name],
                 "records.jsonl"]) == 0
    out = capsys.readouterr().out
    if name.endswith(".txt"):  # stdout is not a terminal here: --color always drives it
        assert "\x1b[1;31m" in out
        out = out.replace("\x1b[0m", "")
        for sgr in report.ANSI.values():
            out = out.replace(sgr, "")
    golden = GOLDEN / name
    if os.environ.get("REPORT_GOLDEN_UPDATE"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(out, encoding="utf-8")
    assert out == golden.read_text(encoding="utf-8")


def test_a_record_at_1630_utc_is_on_the_next_day_in_kuala_lumpur() -> None:
    log = [DATA / "records.jsonl"]
    kl = report.to_dict(report.summarise(log, tz=time_zone("Asia/Kuala_Lumpur")))
    utc = report.to_dict(report.summarise(log, tz=time_zone("UTC")))
    assert [(x["date"], x["total"]) for x in kl["per_day"]] == [
        ("2025-03-01", 2), ("2025-03-02", 6), ("2025-03-03", 1)]
    assert [(x["date"], x["total"]) for x in utc["per_day"]] == [
        ("2025-03-01", 4), ("2025-03-02", 5)]
    assert kl["timezone"] == "Asia/Kuala_Lumpur" and utc["timezone"] == "UTC"
    assert kl["first_local"] == "2025-03-01 16:00:00+08:00"
    assert utc["first_local"] == "2025-03-01 08:00:00+00:00"


def test_the_golden_files_say_what_an_auditor_needs() -> None:
    kl = (GOLDEN / "kuala-lumpur.txt").read_text(encoding="utf-8")
    assert "time zone / zon waktu: Asia/Kuala_Lumpur" in kl
    assert "per day (Asia/Kuala_Lumpur)" in kl
    assert ("  klasifikasi-rahsia: RAHSIA dan RAHSIA BESAR tidak dibenarkan dihantar, "
            "diterima atau disimpan melalui e-mel") in kl
    assert f"  blok-yahoo-lama  {report.RETIRED}" in kl
    assert "klasifikasi-rahsia\\x1b[2J" in kl and "evil\\u202eexample" in kl
    rows = {line.split("  ")[1]: line.split()[-5:] for line in kl.splitlines()
            if line.startswith("  PPPA Bil. 3 Tahun 2025, Lampiran A, ")}
    # Cited by the malware rule and the scan-failed rule: a refusal and a tempfail.
    assert rows["PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(g)"] == ["1", "1", "0", "0", "2"]
    # relay-access has no reference in its log line: the built-in's clause is used.
    assert rows["PPPA Bil. 3 Tahun 2025, Lampiran A, 1.2.2(b)(iv)"] == ["1", "0", "0", "0", "1"]
    page = (GOLDEN / "kuala-lumpur.html").read_text(encoding="utf-8")
    assert '<td class="n ev-reject">' in page and '<td class="n ev-tag">' in page
    assert '<td class="retired">blok-yahoo-lama</td>' in page
    assert "\x1b" not in page and "\u202e" not in page
