"""`gateway report`: a summary of rejection logs for the administrators who watch mail flow.

Reads JSON Lines rejection logs, plain or gzip (sniffed by content, so logrotate's
`.1`, `.2.gz` and `delaycompress` names all work), one line at a time, and keeps
only counters: by event, rule, direction, envelope sender domain, recipient domain
and day. Memory is bounded whatever the log size: each dimension keeps exact counts
for at most `max_keys` distinct keys and folds the records of any further key into
"other" (reported), an over-long line is skipped without being held whole, and only
the first warnings are kept for the page (all are passed to `on_warning`).

A line that is not JSON, not an object, or lacks `ts`/`event` is skipped with a
warning naming FILE:LINE; the rest of the file still counts. `since`/`until`
select records by their `ts` (UTC). Output as an aligned text table, JSON, or a
self-contained bilingual HTML page with inline SVG bar charts.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from gateway.addresses import address_domain

EVENTS = ("reject", "tempfail", "tag", "monitor")
NO_RULE = "(none)"
NULL_SENDER = "<>"
OTHER = "(other)"
# Per dimension: enough for every real rule, day and most domains, small enough
# that a log full of random sender domains stays a few MB.
MAX_KEYS = 10_000
MAX_LINE = 1024 * 1024  # a longer "line" is a torn or hostile write, not a record
MAX_KEPT_WARNINGS = 1000
_GZIP_MAGIC = b"\x1f\x8b"
# Unicode categories shown as escapes: controls (ESC sequences repaint a terminal), format
# characters (bidi overrides such as U+202E reorder what follows, zero-width ones hide),
# line and paragraph separators, surrogates and unassigned code points.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def printable(text: str) -> str:
    r"""`text` with every control, bidi or invisible character as a visible escape
    (`\x1b`, `\u202e`; a backslash itself as `\\`), so a log field can neither drive the
    terminal nor reorder or hide what the administrator reads. The table and the HTML
    page show every name from the log this way; JSON keeps the values as logged."""
    if text.isprintable() and text.isascii() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) in _ESCAPED_CATEGORIES or ch == "\\":
            code = ord(ch)
            out.append("\\\\" if ch == "\\" else f"\\x{code:02x}" if code < 0x100
                       else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


class CappedCounter:
    """Exact counts for at most `cap` distinct keys; later new keys are folded."""

    __slots__ = ("cap", "counts", "folded")

    def __init__(self, cap: int = MAX_KEYS) -> None:
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.folded = 0  # records whose key was not kept

    def add(self, key: str, n: int = 1) -> bool:
        """Count `key`; False when it was folded into "other"."""
        if key in self.counts:
            self.counts[key] += n
            return True
        if len(self.counts) < self.cap:
            self.counts[key] = n
            return True
        self.folded += n
        return False

    def get(self, key: str, default: int = 0) -> int:
        return self.counts.get(key, default)

    def total(self) -> int:
        return sum(self.counts.values()) + self.folded

    def ranked(self, top: int | None = None) -> list[tuple[str, int]]:
        rows = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return rows if top is None else rows[:top]


def parse_when(text: str, *, end: bool = False) -> datetime:
    """A `--since`/`--until` value: a date (YYYY-MM-DD) or an RFC 3339 time.

    Naive times are UTC. For `end`, a bare date means the end of that day, so
    `--since D --until D` selects the whole day D.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), UTC)
            return start + timedelta(days=1) - timedelta(microseconds=1) if end else start
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"bad date or time {text!r}: expected YYYY-MM-DD or "
                         "YYYY-MM-DDTHH:MM:SSZ") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _record_time(ts: object) -> datetime | None:
    if not isinstance(ts, str) or len(ts) < 10:
        return None
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sender_domain(mail_from: object) -> str:
    if not isinstance(mail_from, str):
        return "(unknown)"
    if not mail_from.strip("<> "):
        return NULL_SENDER
    return address_domain(mail_from) or "(no domain)"


@dataclass
class Summary:
    files: list[str] = field(default_factory=list)
    records: int = 0
    skipped: int = 0  # corrupt lines
    out_of_range: int = 0  # good records outside --since/--until
    warnings: list[str] = field(default_factory=list)  # the first MAX_KEPT_WARNINGS
    warning_count: int = 0
    since: datetime | None = None
    until: datetime | None = None
    first: str | None = None
    last: str | None = None
    top: int = 10
    max_keys: int = MAX_KEYS
    by_event: CappedCounter = field(init=False)
    by_rule: CappedCounter = field(init=False)
    by_rule_event: dict[str, CappedCounter] = field(default_factory=dict)
    by_direction: CappedCounter = field(init=False)
    sender_domains: CappedCounter = field(init=False)
    recipient_domains: CappedCounter = field(init=False)
    per_day: CappedCounter = field(init=False)
    per_day_event: dict[str, CappedCounter] = field(default_factory=dict)
    _first_at: datetime | None = None
    _last_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("by_event", "by_rule", "by_direction", "sender_domains",
                     "recipient_domains", "per_day"):
            setattr(self, name, CappedCounter(self.max_keys))

    def warn(self, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_KEPT_WARNINGS:
            self.warnings.append(message)

    def add(self, record: dict[str, Any], at: datetime) -> None:
        self.records += 1
        event = str(record["event"])
        rule = str(record.get("rule_id") or NO_RULE)
        self.by_event.add(event)
        if self.by_rule.add(rule):
            self.by_rule_event.setdefault(rule, CappedCounter(len(EVENTS) + 16)).add(event)
        self.by_direction.add(str(record.get("direction") or "unknown"))
        self.sender_domains.add(_sender_domain(record.get("mail_from")))
        rcpts = record.get("rcpt_to")
        domains = {address_domain(r) or "(no domain)" for r in rcpts if isinstance(r, str)} \
            if isinstance(rcpts, list) else set()
        for domain in sorted(domains) or ["(unknown)"]:
            self.recipient_domains.add(domain)
        day = at.date().isoformat()
        if self.per_day.add(day):
            self.per_day_event.setdefault(day, CappedCounter(len(EVENTS) + 16)).add(event)
        ts = str(record["ts"])
        if self._first_at is None or at < self._first_at:
            self._first_at, self.first = at, ts
        if self._last_at is None or at > self._last_at:
            self._last_at, self.last = at, ts

    @property
    def folded(self) -> dict[str, int]:
        named = {"event": self.by_event, "rule": self.by_rule, "direction": self.by_direction,
                 "sender_domain": self.sender_domains,
                 "recipient_domain": self.recipient_domains, "day": self.per_day}
        return {k: c.folded for k, c in named.items() if c.folded}


def _open(path: Path) -> io.BufferedIOBase:
    stream: io.BufferedIOBase = path.open("rb")
    if stream.read(2) == _GZIP_MAGIC:
        stream.close()
        return gzip.open(path, "rb")
    stream.seek(0)
    return stream


def _lines(path: Path, warn: Callable[[str], None]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line); None for a line longer than MAX_LINE (never held whole)."""
    number = 0
    try:
        with _open(path) as stream:
            while True:
                line = stream.readline(MAX_LINE)
                if not line:
                    return
                number += 1
                if len(line) == MAX_LINE and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):
                        line = stream.readline(MAX_LINE)
                    yield number, None
                    continue
                yield number, line
    except (OSError, EOFError) as exc:  # missing file, truncated or corrupt gzip
        warn(f"{printable(str(path))}: cannot read: "
             f"{printable(str(getattr(exc, 'strerror', None) or exc))}")


def _problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("event"), str) or not record["event"]:
        return "missing field 'event'"
    if "ts" not in record:
        return "missing field 'ts'"
    return None


def summarise(paths: Iterable[Path], top: int = 10, *, since: datetime | None = None,
              until: datetime | None = None, max_keys: int = MAX_KEYS,
              on_warning: Callable[[str], None] | None = None) -> Summary:
    """Stream every log and count its records; problems become warnings.

    `since` and `until` are inclusive bounds on each record's `ts`.
    """
    summary = Summary(top=top, since=since, until=until, max_keys=max_keys)

    def warn(message: str) -> None:
        summary.warn(message)
        if on_warning is not None:
            on_warning(message)

    for path in paths:
        summary.files.append(str(path))
        for number, line in _lines(path, warn):
            if line is not None and not line.strip():
                continue
            problem: str | None
            if line is None:
                record: Any = None
                problem = f"line longer than {MAX_LINE} bytes"
            else:
                try:
                    record = json.loads(line)
                except ValueError:  # also UnicodeDecodeError
                    record = None
                    problem = "not valid JSON"
                else:
                    problem = _problem(record)
            at = _record_time(record["ts"]) if problem is None else None
            if problem is None and at is None:
                problem = f"bad 'ts' {str(record['ts'])[:40]!r}"
            if problem is not None or at is None:
                summary.skipped += 1
                warn(f"{printable(str(path))}:{number}: skipped: {printable(str(problem))}")
                continue
            if (since is not None and at < since) or (until is not None and at > until):
                summary.out_of_range += 1
                continue
            summary.add(record, at)
    return summary


def _ranked_dict(counter: CappedCounter, top: int | None = None) -> dict[str, int]:
    return dict(counter.ranked(top))


def to_dict(summary: Summary) -> dict[str, Any]:
    s = summary
    return {
        "files": s.files,
        "records": s.records,
        "skipped": s.skipped,
        "out_of_range": s.out_of_range,
        "since": s.since.isoformat().replace("+00:00", "Z") if s.since else None,
        "until": s.until.isoformat().replace("+00:00", "Z") if s.until else None,
        "first": s.first,
        "last": s.last,
        "by_event": _ranked_dict(s.by_event),
        "by_rule": _ranked_dict(s.by_rule),
        "by_rule_event": {rule: _ranked_dict(s.by_rule_event[rule])
                          for rule, _ in s.by_rule.ranked()},
        "by_direction": _ranked_dict(s.by_direction),
        "top_sender_domains": [{"domain": d, "count": n}
                               for d, n in s.sender_domains.ranked(s.top)],
        "top_recipient_domains": [{"domain": d, "count": n}
                                  for d, n in s.recipient_domains.ranked(s.top)],
        "per_day": [{"date": day, "total": n, **_ranked_dict(s.per_day_event[day])}
                    for day, n in sorted(s.per_day.counts.items())],
        # Records counted under "other" because a dimension reached max_keys.
        "folded": s.folded,
        "warnings": s.warning_count,
    }


# -- text --------------------------------------------------------------------------------
def columns(head: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> list[str]:
    """Aligned rows: the first column left-aligned, the others (numbers) right-aligned."""
    table = [tuple(str(c) for c in head), *(tuple(printable(str(c)) for c in r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    out = []
    for row in table:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                        strict=True)]
        out.append("  " + "  ".join(cells).rstrip())
    out.insert(1, "  " + "  ".join("-" * w for w in widths))
    return out


def _section(title: str, head: tuple[str, ...], rows: list[tuple[object, ...]],
             folded: int = 0) -> list[str]:
    if folded:
        rows = [*rows, (OTHER, *([""] * (len(head) - 2)), folded)]
    if not rows:
        return [title, "  (none)", ""]
    return [title, *columns(head, rows), ""]


def to_text(summary: Summary) -> str:
    s, d = summary, to_dict(summary)
    span = f"{d['first']} .. {d['last']}" if d["first"] else "no dated records"
    head = (f"{d['records']} records from {len(d['files'])} file(s), {span}"
            + (f"; {d['skipped']} corrupt line(s) skipped" if d["skipped"] else "")
            + (f"; {d['out_of_range']} outside --since/--until" if d["out_of_range"] else ""))
    lines = [printable(head), ""]
    lines += _section("by event / mengikut peristiwa:", ("event", "count"),
                      list(d["by_event"].items()), s.by_event.folded)
    lines += _section("by rule / mengikut peraturan:", ("rule", *EVENTS, "total"),
                      [(rule, *(d["by_rule_event"][rule].get(e, 0) for e in EVENTS), n)
                       for rule, n in d["by_rule"].items()], s.by_rule.folded)
    lines += _section("by direction / mengikut arah:", ("direction", "count"),
                      list(d["by_direction"].items()), s.by_direction.folded)
    lines += _section(f"top sender domains (envelope, top {s.top}) / domain pengirim:",
                      ("domain", "count"),
                      [(x["domain"], x["count"]) for x in d["top_sender_domains"]],
                      s.sender_domains.folded)
    lines += _section(f"top recipient domains (top {s.top}) / domain penerima:",
                      ("domain", "count"),
                      [(x["domain"], x["count"]) for x in d["top_recipient_domains"]],
                      s.recipient_domains.folded)
    lines += _section("per day / setiap hari:", ("date", *EVENTS, "total"),
                      [(x["date"], *(x.get(e, 0) for e in EVENTS), x["total"])
                       for x in d["per_day"]], s.per_day.folded)
    return "\n".join(lines).rstrip("\n")


# -- HTML ----------------------------------------------------------------------------------
_CSS = ("body{font-family:sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #999;padding:.2em .6em;text-align:left}"
        "td.n{text-align:right}svg{display:block;margin:.5em 0 1em}"
        "svg text{font-family:sans-serif;font-size:12px}.bar{fill:#2b6cb0}")


def bar_chart(rows: list[tuple[str, int]], label: str) -> str:
    """A horizontal bar chart as inline SVG (no external resources)."""
    e = html.escape
    if not rows:
        return ""
    peak = max(n for _, n in rows) or 1
    label_w, bar_w, row_h = 260, 420, 20
    height = row_h * len(rows) + 4
    parts = [f'<svg role="img" aria-label="{e(label)}" width="{label_w + bar_w + 80}" '
             f'height="{height}" viewBox="0 0 {label_w + bar_w + 80} {height}">'
             f"<title>{e(label)}</title>"]
    for i, (name, n) in enumerate(rows):
        y = i * row_h + 2
        w = max(1, round(bar_w * n / peak)) if n else 0
        name = printable(name)
        short = name if len(name) <= 40 else name[:39] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{e(short)}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w}" '
                     f'height="{row_h - 6}"><title>{e(name)}: {n}</title></rect>'
                     f'<text x="{label_w + w + 6}" y="{y + 14}">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(title: str, head: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> str:
    e = html.escape
    cells = "".join("<tr>" + "".join(
        f'<td class="n">{c}</td>' if isinstance(c, int) else f"<td>{e(printable(str(c)))}</td>"
        for c in row) + "</tr>" for row in rows)
    header = "".join(f"<th>{e(h)}</th>" for h in head)
    return f"<h2>{e(title)}</h2>\n<table><tr>{header}</tr>{cells}</table>\n"


def _with_other(rows: list[tuple[Any, ...]], folded: int, width: int) -> list[tuple[Any, ...]]:
    return [*rows, (OTHER, *([""] * (width - 2)), folded)] if folded else rows


def to_html(summary: Summary) -> str:
    """A self-contained bilingual page: inline CSS and SVG, no scripts, all text escaped."""
    s, d = summary, to_dict(summary)
    e = html.escape
    span = f"{d['first']} .. {d['last']}" if d["first"] else "tiada rekod / no records"
    day_rows = [(x["date"], x["total"]) for x in d["per_day"]]
    rule_rows = list(d["by_rule"].items())
    parts = [
        "<!DOCTYPE html>\n<html lang=\"ms\"><head><meta charset=\"utf-8\">"
        "<title>Laporan gerbang e-mel / Gateway report</title>"
        f"<style>{_CSS}</style></head><body>",
        "<h1>Laporan gerbang e-mel / Gateway report</h1>",
        f"<p>{d['records']} rekod / records: {e(printable(span))}<br>"
        f"Fail / files: {e(printable(', '.join(d['files'])))}"
        + (f"<br>{d['skipped']} baris rosak dilangkau / corrupt line(s) skipped"
           if d["skipped"] else "")
        + (f"<br>{d['out_of_range']} di luar julat / outside --since/--until"
           if d["out_of_range"] else "") + "</p>",
        "<h2>Setiap hari / Per day</h2>",
        bar_chart(day_rows, "Rekod setiap hari / Records per day"),
        "<h2>Mengikut peraturan / By rule</h2>",
        bar_chart(rule_rows, "Rekod mengikut peraturan / Records by rule"),
        _html_table("Mengikut peristiwa / By event", ("peristiwa / event", "bilangan / count"),
                    _with_other(list(d["by_event"].items()), s.by_event.folded, 2)),
        _html_table("Peraturan dan peristiwa / Rules and events",
                    ("peraturan / rule", *EVENTS, "jumlah / total"),
                    _with_other([(rule, *(d["by_rule_event"][rule].get(ev, 0) for ev in EVENTS),
                                  n) for rule, n in d["by_rule"].items()],
                                s.by_rule.folded, len(EVENTS) + 2)),
        _html_table("Mengikut arah / By direction", ("arah / direction", "bilangan / count"),
                    _with_other(list(d["by_direction"].items()), s.by_direction.folded, 2)),
        _html_table("Domain pengirim utama / Top sender domains",
                    ("domain", "bilangan / count"),
                    _with_other([(x["domain"], x["count"]) for x in d["top_sender_domains"]],
                                s.sender_domains.folded, 2)),
        _html_table("Domain penerima utama / Top recipient domains",
                    ("domain", "bilangan / count"),
                    _with_other([(x["domain"], x["count"]) for x in d["top_recipient_domains"]],
                                s.recipient_domains.folded, 2)),
        _html_table("Setiap hari / Per day", ("tarikh / date", *EVENTS, "jumlah / total"),
                    _with_other([(x["date"], *(x.get(ev, 0) for ev in EVENTS), x["total"])
                                 for x in d["per_day"]], s.per_day.folded, len(EVENTS) + 2)),
    ]
    if s.warnings:
        more = s.warning_count - len(s.warnings)
        parts.append("<h2>Amaran / Warnings</h2><ul>"
                     + "".join(f"<li>{e(w)}</li>" for w in s.warnings)
                     + (f"<li>... {more} lagi / more</li>" if more else "") + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
