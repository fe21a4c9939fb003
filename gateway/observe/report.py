"""`gateway report`: a summary of rejection logs for the administrators who watch mail flow.

Reads JSON Lines rejection logs (plain or `.gz`, as logrotate leaves them) and
counts records by event, rule, direction, envelope sender domain and day. A line
that is not a JSON object (a torn write, a hand edit) is skipped with a warning
naming FILE:LINE; the rest of the file still counts. Output as text, JSON or a
self-contained HTML page.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.addresses import address_domain

EVENTS = ("reject", "tempfail", "tag", "monitor")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")
NO_RULE = "(none)"
NULL_SENDER = "<>"


@dataclass
class Summary:
    files: list[str] = field(default_factory=list)
    records: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    first: str | None = None
    last: str | None = None
    by_event: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    by_rule_event: dict[str, Counter[str]] = field(default_factory=dict)
    by_direction: Counter[str] = field(default_factory=Counter)
    sender_domains: Counter[str] = field(default_factory=Counter)
    per_day: dict[str, Counter[str]] = field(default_factory=dict)
    top: int = 10

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        event = str(record.get("event") or "unknown")
        rule = str(record.get("rule_id") or NO_RULE)
        self.by_event[event] += 1
        self.by_rule[rule] += 1
        self.by_rule_event.setdefault(rule, Counter())[event] += 1
        self.by_direction[str(record.get("direction") or "unknown")] += 1
        mail_from = record.get("mail_from")
        if isinstance(mail_from, str):
            self.sender_domains[address_domain(mail_from) or
                                (NULL_SENDER if not mail_from.strip("<> ") else "(no domain)")] += 1
        else:
            self.sender_domains["(unknown)"] += 1
        ts = record.get("ts")
        day = ts[:10] if isinstance(ts, str) and _DAY.match(ts) else "unknown"
        self.per_day.setdefault(day, Counter())[event] += 1
        if isinstance(ts, str) and _DAY.match(ts):
            self.first = ts if self.first is None or ts < self.first else self.first
            self.last = ts if self.last is None or ts > self.last else self.last


def _open(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _lines(path: Path, summary: Summary) -> Iterator[tuple[int, bytes]]:
    try:
        with _open(path) as stream:
            yield from enumerate(stream, start=1)
    except (OSError, EOFError) as exc:  # missing file, truncated or corrupt gzip
        summary.warnings.append(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")


def summarise(paths: Iterable[Path], top: int = 10) -> Summary:
    """Read every log and count its records; problems become `summary.warnings`."""
    summary = Summary(top=top)
    for path in paths:
        summary.files.append(str(path))
        for number, line in _lines(path, summary):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:  # also UnicodeDecodeError
                record = None
            if not isinstance(record, dict):
                summary.skipped += 1
                summary.warnings.append(f"{path}:{number}: skipped: not a JSON object")
                continue
            summary.add(record)
    return summary


def _sorted(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def to_dict(summary: Summary) -> dict[str, Any]:
    return {
        "files": summary.files,
        "records": summary.records,
        "skipped": summary.skipped,
        "first": summary.first,
        "last": summary.last,
        "by_event": _sorted(summary.by_event),
        "by_rule": _sorted(summary.by_rule),
        "by_rule_event": {rule: _sorted(summary.by_rule_event[rule])
                          for rule in _sorted(summary.by_rule)},
        "by_direction": _sorted(summary.by_direction),
        "top_sender_domains": [{"domain": d, "count": n}
                               for d, n in list(_sorted(summary.sender_domains).items())
                               [:summary.top]],
        "per_day": [{"date": day, "total": sum(c.values()), **_sorted(c)}
                    for day, c in sorted(summary.per_day.items())],
    }


def _table(title: str, rows: Iterable[tuple[str, int]]) -> list[str]:
    rows = list(rows)
    out = [title]
    if not rows:
        return [*out, "  (none)"]
    width = max(len(name) for name, _ in rows)
    out += [f"  {name:<{width}}  {count:>7}" for name, count in rows]
    return out


def to_text(summary: Summary) -> str:
    d = to_dict(summary)
    span = f"{d['first']} .. {d['last']}" if d["first"] else "no dated records"
    lines = [f"{d['records']} records from {len(d['files'])} file(s), {span}"
             + (f"; {d['skipped']} corrupt line(s) skipped" if d["skipped"] else ""), ""]
    lines += _table("by event:", d["by_event"].items())
    lines.append("")
    rule_rows = []
    for rule, count in d["by_rule"].items():
        events = ", ".join(f"{e} {n}" for e, n in d["by_rule_event"][rule].items())
        rule_rows.append((f"{rule} ({events})", count))
    lines += _table("by rule:", rule_rows)
    lines.append("")
    lines += _table("by direction:", d["by_direction"].items())
    lines.append("")
    lines += _table(f"top sender domains (envelope, top {summary.top}):",
                    ((x["domain"], x["count"]) for x in d["top_sender_domains"]))
    lines.append("")
    lines += _table("per day:", ((f"{x['date']} ("
                                  + ", ".join(f"{e} {x[e]}" for e in EVENTS if e in x) + ")",
                                  x["total"]) for x in d["per_day"]))
    return "\n".join(lines)


def _html_table(title: str, head: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> str:
    e = html.escape
    cells = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                    for row in rows)
    header = "".join(f"<th>{e(h)}</th>" for h in head)
    return f"<h2>{e(title)}</h2>\n<table><tr>{header}</tr>{cells}</table>\n"


def to_html(summary: Summary) -> str:
    """A self-contained page (no scripts, no external resources); all text escaped."""
    d = to_dict(summary)
    e = html.escape
    parts = [
        "<!DOCTYPE html>\n<html lang=\"ms\"><head><meta charset=\"utf-8\">"
        "<title>Laporan gerbang e-mel / Gateway report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:.2em .6em;text-align:left}</style></head><body>",
        "<h1>Laporan gerbang e-mel / Gateway report</h1>",
        f"<p>{d['records']} records from {e(', '.join(d['files']))}"
        + (f", {e(str(d['first']))} .. {e(str(d['last']))}" if d["first"] else "")
        + (f"; {d['skipped']} corrupt line(s) skipped" if d["skipped"] else "") + "</p>",
        _html_table("By event", ("event", "count"), d["by_event"].items()),
        _html_table("By rule", ("rule", *EVENTS, "total"),
                    ((rule, *(d["by_rule_event"][rule].get(ev, 0) for ev in EVENTS), n)
                     for rule, n in d["by_rule"].items())),
        _html_table("By direction", ("direction", "count"), d["by_direction"].items()),
        _html_table("Top sender domains", ("domain", "count"),
                    ((x["domain"], x["count"]) for x in d["top_sender_domains"])),
        _html_table("Per day", ("date", *EVENTS, "total"),
                    ((x["date"], *(x.get(ev, 0) for ev in EVENTS), x["total"])
                     for x in d["per_day"])),
    ]
    if summary.warnings:
        parts.append("<h2>Warnings</h2><ul>"
                     + "".join(f"<li>{e(w)}</li>" for w in summary.warnings) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
