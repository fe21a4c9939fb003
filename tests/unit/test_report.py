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
    assert s.warnings == [f"{logs[0]}:4: skipped: not valid JSON",
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
    assert ("5 records from 2 file(s), 2025-02-28 12:00:00+00:00 .. "
            "2025-03-02 10:00:00+00:00") in text
    assert "time zone / zon waktu: UTC" in text
    assert "2 corrupt line(s) skipped" in text
    # Columns: name, reject, tempfail, tag, monitor, total.
    assert any(line.split() == ["klasifikasi-rahsia", "2", "0", "0", "0", "2"]
               for line in text.splitlines())
    assert any(line.split() == ["2025-03-02", "0", "0", "0", "1", "1"]
               for line in text.splitlines())


def test_cli_json_html_and_warnings(logs: list[Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--json", "--html", str(out), "--timezone", "UTC",
                 *map(str, logs)]) == 0
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


# -- rotated names, gzip by content, since/until, corrupt lines, bounds -------------------
def write_log(path: Path, records: list[dict[str, object]], *, gz: bool = False,
              extra: bytes = b"") -> Path:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records) + extra
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def simple(ts: str, event: str = "reject", rule: str = "r1", sender: str = "a@x.example",
           rcpts: tuple[str, ...] = ("b@anm.gov.my",), direction: str = "inbound"
           ) -> dict[str, object]:
    return {"ts": ts, "event": event, "rule_id": rule, "direction": direction,
            "mail_from": sender, "rcpt_to": list(rcpts)}


def test_rotated_names_and_gzip_detected_by_content(tmp_path: Path) -> None:
    base = tmp_path / "rejections.jsonl"
    files = [
        write_log(base, [simple("2025-03-03T00:00:00Z")]),
        # delaycompress: `.1` is still plain; `.2.gz` is gzip; a gzip without the suffix too.
        write_log(tmp_path / "rejections.jsonl.1", [simple("2025-03-02T00:00:00Z")]),
        write_log(tmp_path / "rejections.jsonl.2.gz", [simple("2025-03-01T00:00:00Z")] * 2,
                  gz=True),
        write_log(tmp_path / "rejections.jsonl.3", [simple("2025-02-28T00:00:00Z")], gz=True),
    ]
    d = report.to_dict(report.summarise(files))
    assert d["records"] == 5 and d["skipped"] == 0
    assert [(x["date"], x["total"]) for x in d["per_day"]] == [
        ("2025-02-28", 1), ("2025-03-01", 2), ("2025-03-02", 1), ("2025-03-03", 1)]


def test_recipient_domains_count_each_domain_once_per_record(tmp_path: Path) -> None:
    log = write_log(tmp_path / "l.jsonl", [
        simple("2025-03-01T00:00:00Z", rcpts=("a@anm.gov.my", "b@anm.gov.my", "c@y.example")),
        simple("2025-03-01T00:00:01Z", rcpts=("d@Y.example",)),
        simple("2025-03-01T00:00:02Z", sender="", rcpts=()),
    ])
    d = report.to_dict(report.summarise([log]))
    assert d["top_recipient_domains"] == [{"domain": "y.example", "count": 2},
                                          {"domain": "(unknown)", "count": 1},
                                          {"domain": "anm.gov.my", "count": 1}]
    assert {"domain": "<>", "count": 1} in d["top_sender_domains"]


def test_since_until_boundaries_are_inclusive(tmp_path: Path) -> None:
    log = write_log(tmp_path / "l.jsonl", [
        simple("2025-02-28T23:59:59.999Z"),
        simple("2025-03-01T00:00:00Z"),
        simple("2025-03-01T08:00:00+08:00"),  # 00:00 UTC on 1 March
        simple("2025-03-01T23:59:59.999Z"),
        simple("2025-03-02T00:00:00Z"),
    ])

    def count(since: str | None, until: str | None) -> tuple[int, int]:
        s = report.summarise(
            [log], since=report.parse_when(since) if since else None,
            until=report.parse_when(until, end=True) if until else None)
        return s.records, s.out_of_range

    assert count("2025-03-01", "2025-03-01") == (3, 2)  # a date is the whole UTC day
    assert count("2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z") == (4, 1)
    assert count("2025-03-01T00:00:00.001Z", None) == (2, 3)
    assert count(None, "2025-02-28T23:59:59.999Z") == (1, 4)
    assert count("2025-03-01T08:00:00+08:00", "2025-03-01T00:00:00") == (2, 3)
    with pytest.raises(ValueError, match="bad date or time"):
        report.parse_when("yesterday")


def test_corrupt_lines_warn_with_file_and_line_number(tmp_path: Path) -> None:
    good = simple("2025-03-01T00:00:00Z")
    lines = [json.dumps(good), "{not json", json.dumps([1]), json.dumps({"event": "reject"}),
             json.dumps({"ts": "2025-03-01T00:00:00Z"}), json.dumps({**good, "ts": "soon"}),
             "", json.dumps(good)]
    path = tmp_path / "rejections.jsonl.1.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    seen: list[str] = []
    s = report.summarise([path], on_warning=seen.append)
    assert s.records == 2 and s.skipped == 5
    assert seen == s.warnings == [
        f"{path}:2: skipped: not valid JSON",
        f"{path}:3: skipped: not a JSON object",
        f"{path}:4: skipped: missing field 'ts'",
        f"{path}:5: skipped: missing field 'event'",
        f"{path}:6: skipped: bad 'ts' 'soon'",
    ]


def test_an_overlong_line_is_skipped_without_losing_the_next(tmp_path: Path) -> None:
    good = json.dumps(simple("2025-03-01T00:00:00Z")).encode()
    path = tmp_path / "l.jsonl"
    path.write_bytes(good + b"\n" + b"x" * (report.MAX_LINE * 2 + 5) + b"\n" + good + b"\n")
    s = report.summarise([path])
    assert s.records == 2
    assert s.warnings == [f"{path}:2: skipped: line longer than {report.MAX_LINE} bytes"]


def test_distinct_keys_are_capped_and_the_rest_counted_as_other(tmp_path: Path) -> None:
    # Memory is bounded by construction: 5000 distinct sender domains, 100 kept.
    records = [simple(f"2025-03-01T00:00:{i % 60:02d}Z", sender=f"u@d{i}.example")
               for i in range(5000)]
    log = write_log(tmp_path / "l.jsonl.2.gz", records, gz=True)
    s = report.summarise([log], top=5, max_keys=100)
    assert len(s.sender_domains.counts) == 100
    assert s.sender_domains.folded == 4900
    assert s.sender_domains.total() == 5000
    d = report.to_dict(s)
    assert d["records"] == 5000
    assert d["folded"] == {"sender_domain": 4900}
    assert len(d["top_sender_domains"]) == 5
    assert d["by_rule"] == {"r1": 5000}  # other dimensions are exact
    text = report.to_text(s)
    assert any(line.split() == ["(other)", "4900"] for line in text.splitlines())


def test_table_columns_are_aligned(logs: list[Path]) -> None:
    text = report.to_text(report.summarise(logs))
    sections = [s for s in text.split("\n\n")[1:] if not s.startswith("rules / ")]
    assert len(sections) == 7  # event, rule, clause, direction, senders, recipients, day
    for section in sections:
        rows = section.splitlines()[1:]  # after the title: header, rule, data
        assert rows[1].strip().startswith("---")
        ruler = rows[1]
        # every column (separated by 2 spaces in the ruler) ends at the same place
        ends = [i for i in range(1, len(ruler) + 1)
                if ruler[i - 1] == "-" and (i == len(ruler) or ruler[i] == " ")]
        for row in [rows[0], *rows[2:]]:
            assert len(row) == len(ruler), (row, ruler)
            for end in ends[1:]:  # number columns are right-aligned
                assert row[end - 1] != " ", (row, ruler)


def test_html_is_self_contained_with_svg_charts(logs: list[Path]) -> None:
    page = report.to_html(report.summarise(logs))
    assert page.count("<svg") == 2  # per day and per rule
    assert "<rect" in page
    for outside in ("http", "src=", "<script", "<link", "url(", "@import", "href="):
        assert outside not in page.lower(), outside
    assert "Setiap hari / Per day" in page and "Mengikut peraturan / By rule" in page
    assert "&lt;script&gt;" not in page  # the subject is not in the report at all
    assert "pengirim-emel-peribadi" in page


def test_cli_format_options(logs: list[Path], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--format", "json", "--since", "2025-03-01", "--timezone", "UTC",
                 *map(str, logs)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["records"] == 3 and d["out_of_range"] == 2
    assert d["since"] == "2025-03-01T00:00:00Z"
    assert main(["report", "--format", "html", "--until", "2025-02-28", "--timezone", "UTC",
                 *map(str, logs)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and "<svg" in out and "2 rekod" in out
    assert main(["report", "--format", "table", *map(str, logs)]) == 0
    assert capsys.readouterr().out.startswith("5 records from 2 file(s)")
    assert main(["report", "--since", "soon", *map(str, logs)]) == 2
    assert "bad date or time 'soon'" in capsys.readouterr().err
