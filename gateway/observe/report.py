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
select records by their `ts` (UTC in the log, compared as instants).

Written for an auditor: times and days are in the agency's time zone (config
`timezone`, an IANA name; days split at local midnight), each rule is shown with the
description and clause (`reference`) of the loaded rules (or of the gateway's own
refusals, gateway.policy.builtin), a rule no longer loaded by its id only, marked so,
and a "by clause" table counts records per cited clause (`clauses`). Output as an
aligned text table (ANSI colours per event when asked), JSON, or a self-contained
bilingual HTML page with inline SVG bar charts and a CSS class per event.
"""

from __future__ import annotations

import gzip
import html
import io
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.addresses import address_domain
from gateway.policy import builtin

if TYPE_CHECKING:
    from gateway.policy.rules import Rule

EVENTS = ("reject", "tempfail", "tag", "monitor")
NO_RULE = "(none)"
NULL_SENDER = "<>"
OTHER = "(other)"
NO_CLAUSE = "(no clause)"
RETIRED = "(no longer in the loaded rules / tiada lagi dalam peraturan yang dimuatkan)"
# ANSI SGR colours per event on a terminal (ECMA-48 8.3.117); the HTML page has a CSS
# class per event instead: refusals red, tempfails yellow, tags blue, monitor purple.
ANSI = {"reject": "\x1b[1;31m", "tempfail": "\x1b[33m", "tag": "\x1b[36m",
        "monitor": "\x1b[35m"}
ANSI_RESET = "\x1b[0m"
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


def parse_when(text: str, *, end: bool = False, tz: tzinfo = UTC) -> datetime:
    """A `--since`/`--until` value as a UTC instant: a date (YYYY-MM-DD) or an RFC 3339
    time.

    A date, and a time without an offset, are in `tz` (the report's time zone), so a
    date is a local day, as the report's days are. For `end`, a bare date means the
    end of that day, so `--since D --until D` selects the whole day D. Raises
    ValueError for anything else.
    """
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end:
                after = datetime.combine(day + timedelta(days=1), time(), tz)
                return after.astimezone(UTC) - timedelta(microseconds=1)
            return datetime.combine(day, time(), tz).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise ValueError(f"bad date or time {text!r}: expected YYYY-MM-DD or "
                         "YYYY-MM-DDTHH:MM:SSZ") from None
    return (moment.replace(tzinfo=tz) if moment.tzinfo is None else moment).astimezone(UTC)


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


def _split_outside_parentheses(text: str, separator: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        depth += (ch == "(") - (ch == ")")
        if depth <= 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _document_prefix(citation: str) -> str:
    """"PPPA Bil. 3 Tahun 2025, Lampiran A, " of "PPPA ..., Lampiran A, 3.2.2(a)"."""
    cut = _split_outside_parentheses(citation, ", ")
    if len(cut) > 1:
        return ", ".join(cut[:-1]) + ", "
    return citation[:citation.rfind(" ") + 1]


def clauses(reference: str) -> list[str]:
    """The clauses a rule's `reference` cites, each with its document, in order, once.

    Citations are separated by `;`; within one, `X dan Y` (Malay "and") cites two
    clauses of the same document, so a bare clause after `dan` (starting with a digit,
    `(` or `para `) takes the document of the one before it:
    "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(g) dan 3.2.2(a)(v)(f); Garis
    Panduan Emel Kelantan 5.4" is ["PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(ii)(g)",
    "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.2.2(a)(v)(f)", "Garis Panduan Emel Kelantan
    5.4"]. A range (`1.4.1(f)-(g)`), a list within a clause (`5.1(c),(j)`) and anything
    in parentheses stay one clause, as written. Empty: [].
    """
    out: list[str] = []
    for citation in _split_outside_parentheses(reference, ";"):
        parts = [p.strip() for p in _split_outside_parentheses(citation.strip(), " dan ")]
        prefix = _document_prefix(parts[0])
        for i, part in enumerate(parts):
            bare = i > 0 and (part[:1].isdigit() or part.startswith(("(", "para ")))
            clause = prefix + part if bare else part
            if clause and clause not in out:
                out.append(clause)
    return out


@dataclass(frozen=True)
class RuleInfo:
    """What the report says about a rule id: its description and the clause it cites."""

    description: str
    reference: str


def rule_catalogue(rules: Iterable[Rule]) -> dict[str, RuleInfo]:
    """Rule id -> RuleInfo for the gateway's own refusals (gateway.policy.builtin: their
    README `when` text as description) and the loaded rules (which win on a shared id)."""
    out = {own.id: RuleInfo(own.when, own.reference) for own in builtin.ALL}
    for rule in rules:
        out[rule.id] = RuleInfo(rule.description, rule.reference)
    return out


def read_rules(config_path: Path) -> tuple[str, dict[str, RuleInfo]]:
    """(the config's `timezone`, rule_catalogue of its `rules_dir`) from a config file;
    raises gateway.problems.LoadError (FILE:LINE problems) as `gateway rules check`
    would. Nothing else is checked: a report can be read away from the gateway."""
    from gateway.config import load_config
    from gateway.policy_state import load_policy_for

    config = load_config(config_path)
    return config.timezone, rule_catalogue(load_policy_for(config).rules.rules)


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
    tz: tzinfo = UTC  # days are split at this zone's midnight; times are shown in it
    by_event: CappedCounter = field(init=False)
    by_rule: CappedCounter = field(init=False)
    by_rule_event: dict[str, CappedCounter] = field(default_factory=dict)
    by_direction: CappedCounter = field(init=False)
    sender_domains: CappedCounter = field(init=False)
    recipient_domains: CappedCounter = field(init=False)
    per_day: CappedCounter = field(init=False)
    per_day_event: dict[str, CappedCounter] = field(default_factory=dict)
    # Records by the clause text their log line cites (`reference`), and, for lines
    # without one, by rule id (the loaded rules' clause is looked up when shown).
    by_citation: CappedCounter = field(init=False)
    by_citation_event: dict[str, CappedCounter] = field(default_factory=dict)
    uncited: CappedCounter = field(init=False)
    uncited_event: dict[str, CappedCounter] = field(default_factory=dict)
    _first_at: datetime | None = None
    _last_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("by_event", "by_rule", "by_direction", "sender_domains",
                     "recipient_domains", "per_day", "by_citation", "uncited"):
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
        day = at.astimezone(self.tz).date().isoformat()
        if self.per_day.add(day):
            self.per_day_event.setdefault(day, CappedCounter(len(EVENTS) + 16)).add(event)
        cited = record.get("reference")
        if isinstance(cited, str) and cited.strip():
            if self.by_citation.add(cited):
                self.by_citation_event.setdefault(cited, CappedCounter(len(EVENTS) + 16)
                                                  ).add(event)
        elif self.uncited.add(rule):
            self.uncited_event.setdefault(rule, CappedCounter(len(EVENTS) + 16)).add(event)
        ts = str(record["ts"])
        if self._first_at is None or at < self._first_at:
            self._first_at, self.first = at, ts
        if self._last_at is None or at > self._last_at:
            self._last_at, self.last = at, ts

    @property
    def zone(self) -> str:
        """The time zone's name: the IANA key (Asia/Kuala_Lumpur) or UTC."""
        return str(self.tz)

    def local(self, at: datetime | None) -> str | None:
        """`at` in the report's zone, to the second: 2025-03-01 00:30:00+08:00."""
        return None if at is None else at.astimezone(self.tz).isoformat(" ", "seconds")

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
              on_warning: Callable[[str], None] | None = None,
              tz: tzinfo = UTC) -> Summary:
    """Stream every log and count its records; problems become warnings.

    `since` and `until` are inclusive bounds on each record's `ts`; `tz` is the zone
    whose midnight splits the days (gateway.config.time_zone gives it from a name).
    """
    summary = Summary(top=top, since=since, until=until, max_keys=max_keys, tz=tz)

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


Catalogue = Mapping[str, RuleInfo]


def clause_table(summary: Summary, rules: Catalogue | None = None
                 ) -> tuple[list[tuple[str, dict[str, int], int]], int]:
    """([(clause, {event: count}, total)] by total then clause, records not placed).

    A record counts once under each clause its rule cites (`clauses`), so the totals
    may add up to more than the records. The clause is the one the log line cites
    (what the sender was told at the time); a line without one takes the clause of
    its rule in `rules`; neither: NO_CLAUSE. The second value counts the records of
    citations or rules folded into "other" (max_keys).
    """
    table: dict[str, dict[str, int]] = {}

    def put(reference: str, events: CappedCounter) -> None:
        for clause in clauses(reference) or [NO_CLAUSE]:
            row = table.setdefault(clause, {})
            for event, n in events.counts.items():
                row[event] = row.get(event, 0) + n
            if events.folded:
                row[OTHER] = row.get(OTHER, 0) + events.folded

    for cited in summary.by_citation.counts:
        put(cited, summary.by_citation_event[cited])
    for rule in summary.uncited.counts:
        info = rules.get(rule) if rules is not None else None
        put(info.reference if info is not None else "", summary.uncited_event[rule])
    rows = [(clause, events, sum(events.values())) for clause, events in table.items()]
    rows.sort(key=lambda r: (-r[2], r[0]))
    return rows, summary.by_citation.folded + summary.uncited.folded


def to_dict(summary: Summary, rules: Catalogue | None = None) -> dict[str, Any]:
    """The report as JSON-ready data; names as logged (not escaped). `rules` (from
    rule_catalogue) gives each rule's description and clause; None: not read."""
    s = summary
    clause_rows, clause_folded = clause_table(s, rules)
    return {
        "files": s.files,
        "records": s.records,
        "skipped": s.skipped,
        "out_of_range": s.out_of_range,
        "timezone": s.zone,
        "since": s.since.isoformat().replace("+00:00", "Z") if s.since else None,
        "until": s.until.isoformat().replace("+00:00", "Z") if s.until else None,
        "first": s.first,
        "last": s.last,
        "first_local": s.local(s._first_at),
        "last_local": s.local(s._last_at),
        "by_event": _ranked_dict(s.by_event),
        "by_rule": _ranked_dict(s.by_rule),
        "by_rule_event": {rule: _ranked_dict(s.by_rule_event[rule])
                          for rule, _ in s.by_rule.ranked()},
        # null: no rules were read; else per rule its description and clause, or
        # loaded: false for a rule no longer loaded (and the gateway's own none).
        "rules": None if rules is None else {
            rule: ({"description": rules[rule].description,
                    "reference": rules[rule].reference, "loaded": True}
                   if rule in rules else {"loaded": False})
            for rule, _ in s.by_rule.ranked() if rule != NO_RULE},
        "by_clause": [{"clause": clause, "total": total, **dict(sorted(events.items()))}
                      for clause, events, total in clause_rows],
        "by_direction": _ranked_dict(s.by_direction),
        "top_sender_domains": [{"domain": d, "count": n}
                               for d, n in s.sender_domains.ranked(s.top)],
        "top_recipient_domains": [{"domain": d, "count": n}
                                  for d, n in s.recipient_domains.ranked(s.top)],
        "per_day": [{"date": day, "total": n, **_ranked_dict(s.per_day_event[day])}
                    for day, n in sorted(s.per_day.counts.items())],
        # Records counted under "other" because a dimension reached max_keys.
        "folded": {**s.folded, **({"clause": clause_folded} if clause_folded else {})},
        "warnings": s.warning_count,
    }


def _span(summary: Summary) -> str | None:
    first, last = summary.local(summary._first_at), summary.local(summary._last_at)
    return f"{first} .. {last}" if first else None


# -- text --------------------------------------------------------------------------------
def columns(head: tuple[str, ...], rows: Iterable[tuple[object, ...]], *,
            styles: Sequence[str | None] = (), row_styles: Sequence[str | None] = ()
            ) -> list[str]:
    """Aligned rows: the first column left-aligned, the others (numbers) right-aligned.

    Every cell is shown through `printable`. `styles` (per column) and `row_styles`
    (per data row) are ANSI SGR sequences put around a cell after it is padded, so
    colours never shift a column: a column's style applies to its heading and to its
    non-zero cells, a row's to the first cell.
    """
    table = [tuple(str(c) for c in head), *(tuple(printable(str(c)) for c in r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]

    def paint(text: str, style: str | None) -> str:
        return f"{style}{text}{ANSI_RESET}" if style and text.strip() not in ("", "0") \
            else text

    out = []
    for n, row in enumerate(table):
        first_style = row_styles[n - 1] if 0 < n <= len(row_styles) else None
        cells = [paint(row[0].ljust(widths[0]), first_style)]
        for i, (c, w) in enumerate(zip(row[1:], widths[1:], strict=True), start=1):
            cells.append(paint(c.rjust(w), styles[i] if i < len(styles) else None))
        out.append(("  " + "  ".join(cells)).rstrip())
    out.insert(1, "  " + "  ".join("-" * w for w in widths))
    return out


def _section(title: str, head: tuple[str, ...], rows: list[tuple[object, ...]],
             folded: int = 0, *, styles: Sequence[str | None] = (),
             row_styles: Sequence[str | None] = ()) -> list[str]:
    if folded:
        rows = [*rows, (OTHER, *([""] * (len(head) - 2)), folded)]
    if not rows:
        return [title, "  (none)", ""]
    return [title, *columns(head, rows, styles=styles, row_styles=row_styles), ""]


def _rule_lines(summary: Summary, rules: Catalogue | None) -> list[str]:
    """Each counted rule with its description and clause, or marked as not loaded."""
    lines = ["rules / peraturan (description, clause):"]
    counted = [rule for rule, _ in summary.by_rule.ranked() if rule != NO_RULE]
    if not counted:
        return [*lines, "  (none)", ""]
    for rule in counted:
        info = rules.get(rule) if rules is not None else None
        if info is None:
            lines.append(f"  {printable(rule)}" + (f"  {RETIRED}" if rules is not None else ""))
            continue
        lines.append(f"  {printable(rule)}: {printable(info.description) or '-'}")
        lines.append(f"      fasal / clause: {printable(info.reference) or NO_CLAUSE}")
    return [*lines, ""]


def to_text(summary: Summary, rules: Catalogue | None = None, *, color: bool = False) -> str:
    """The report as aligned text tables. `rules` as for to_dict; `color`: ANSI colours
    per event (for a terminal; every name from the log is escaped either way)."""
    s, d = summary, to_dict(summary, rules)
    span = _span(s) or "no dated records"
    head = (f"{d['records']} records from {len(d['files'])} file(s), {span}"
            + (f"; {d['skipped']} corrupt line(s) skipped" if d["skipped"] else "")
            + (f"; {d['out_of_range']} outside --since/--until" if d["out_of_range"] else ""))
    zone = (f"time zone / zon waktu: {s.zone} (days split at local midnight / "
            "hari bermula tengah malam waktu tempatan)")
    lines = [printable(head), printable(zone)]
    if rules is None:
        lines.append("rules not read (no config): rules shown by id only / "
                     "peraturan tidak dibaca: ditunjukkan dengan id sahaja")
    lines.append("")
    styles: list[str | None] = [None, *(ANSI[e] for e in EVENTS), None] if color else []

    def row_style(name: str) -> str | None:
        return ANSI.get(name) if color else None

    lines += _section("by event / mengikut peristiwa:", ("event", "count"),
                      list(d["by_event"].items()), s.by_event.folded,
                      row_styles=[row_style(e) for e in d["by_event"]])
    lines += _section("by rule / mengikut peraturan:", ("rule", *EVENTS, "total"),
                      [(rule, *(d["by_rule_event"][rule].get(e, 0) for e in EVENTS), n)
                       for rule, n in d["by_rule"].items()], s.by_rule.folded, styles=styles)
    lines += _rule_lines(s, rules)
    lines += _section("by clause / mengikut fasal (a record counts under each clause its "
                      "rule cites):", ("clause", *EVENTS, "total"),
                      [(x["clause"], *(x.get(e, 0) for e in EVENTS), x["total"])
                       for x in d["by_clause"]], d["folded"].get("clause", 0), styles=styles)
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
    lines += _section(f"per day ({printable(s.zone)}) / setiap hari:", ("date", *EVENTS, "total"),
                      [(x["date"], *(x.get(e, 0) for e in EVENTS), x["total"])
                       for x in d["per_day"]], s.per_day.folded, styles=styles)
    return "\n".join(lines).rstrip("\n")


# -- HTML ----------------------------------------------------------------------------------
_CSS = ("body{font-family:sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #999;padding:.2em .6em;text-align:left}"
        "td.n{text-align:right}svg{display:block;margin:.5em 0 1em}"
        "svg text{font-family:sans-serif;font-size:12px}.bar{fill:#2b6cb0}"
        # One colour per event, the same as the terminal's: refusals red, tag blue.
        ".ev-reject{color:#b91c1c;font-weight:bold}.ev-tempfail{color:#a16207}"
        ".ev-tag{color:#1d4ed8}.ev-monitor{color:#7e22ce}"
        ".retired{color:#666;font-style:italic}")


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


@dataclass(frozen=True)
class _Cell:
    value: object
    cls: str


def _event_class(event: str) -> str:
    return f"ev-{event}" if event in EVENTS else ""


def _html_table(title: str, head: tuple[str, ...], rows: Iterable[tuple[Any, ...]],
                classes: Sequence[str] = ()) -> str:
    """A table; `classes` per column (an event's class on its heading and non-zero
    cells); a _Cell carries its own class. Every text cell is escaped and printable."""
    e = html.escape

    def cell(c: Any, col: int) -> str:
        cls = classes[col] if col < len(classes) else ""
        if isinstance(c, _Cell):
            c, cls = c.value, c.cls
        if isinstance(c, int):
            names = " ".join(x for x in ("n", cls if c else "") if x)
            return f'<td class="{names}">{c}</td>'
        attr = f' class="{cls}"' if cls else ""
        return f"<td{attr}>{e(printable(str(c)))}</td>"

    cells = "".join("<tr>" + "".join(cell(c, i) for i, c in enumerate(row)) + "</tr>"
                    for row in rows)
    header = "".join((f'<th class="{classes[i]}">' if i < len(classes) and classes[i]
                      else "<th>") + f"{e(h)}</th>" for i, h in enumerate(head))
    return f"<h2>{e(title)}</h2>\n<table><tr>{header}</tr>{cells}</table>\n"


def _with_other(rows: list[tuple[Any, ...]], folded: int, width: int) -> list[tuple[Any, ...]]:
    return [*rows, (OTHER, *([""] * (width - 2)), folded)] if folded else rows


def _html_rule_rows(summary: Summary, d: dict[str, Any], rules: Catalogue | None
                    ) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for rule, n in d["by_rule"].items():
        info = rules.get(rule) if rules is not None else None
        counts = tuple(d["by_rule_event"][rule].get(ev, 0) for ev in EVENTS)
        if info is not None:
            rows.append((rule, info.description or "-", info.reference or NO_CLAUSE,
                         *counts, n))
        elif rules is not None and rule != NO_RULE:
            rows.append((_Cell(rule, "retired"), _Cell(RETIRED, "retired"), "", *counts, n))
        else:
            rows.append((rule, "", "", *counts, n))
    if summary.by_rule.folded:
        rows.append((OTHER, "", "", *([""] * len(EVENTS)), summary.by_rule.folded))
    return rows


def to_html(summary: Summary, rules: Catalogue | None = None) -> str:
    """A self-contained bilingual page: inline CSS and SVG, no scripts, all text escaped.
    `rules` as for to_dict."""
    s, d = summary, to_dict(summary, rules)
    e = html.escape
    span = _span(s) or "tiada rekod / no records"
    day_rows = [(x["date"], x["total"]) for x in d["per_day"]]
    rule_rows = list(d["by_rule"].items())
    event_classes = ("", *(_event_class(ev) for ev in EVENTS), "")
    parts = [
        "<!DOCTYPE html>\n<html lang=\"ms\"><head><meta charset=\"utf-8\">"
        "<title>Laporan gerbang e-mel / Gateway report</title>"
        f"<style>{_CSS}</style></head><body>",
        "<h1>Laporan gerbang e-mel / Gateway report</h1>",
        f"<p>{d['records']} rekod / records: {e(printable(span))}<br>"
        f"Zon waktu / time zone: {e(printable(s.zone))} (hari bermula tengah malam waktu "
        "tempatan / days split at local midnight)<br>"
        f"Fail / files: {e(printable(', '.join(d['files'])))}"
        + ("<br>Peraturan tidak dibaca (tiada konfigurasi): ditunjukkan dengan id sahaja / "
           "rules not read (no config): shown by id only" if rules is None else "")
        + (f"<br>{d['skipped']} baris rosak dilangkau / corrupt line(s) skipped"
           if d["skipped"] else "")
        + (f"<br>{d['out_of_range']} di luar julat / outside --since/--until"
           if d["out_of_range"] else "") + "</p>",
        "<h2>Setiap hari / Per day</h2>",
        bar_chart(day_rows, "Rekod setiap hari / Records per day"),
        "<h2>Mengikut peraturan / By rule</h2>",
        bar_chart(rule_rows, "Rekod mengikut peraturan / Records by rule"),
        _html_table("Mengikut peristiwa / By event", ("peristiwa / event", "bilangan / count"),
                    _with_other([(_Cell(ev, _event_class(ev)), _Cell(n, _event_class(ev)))
                                 for ev, n in d["by_event"].items()], s.by_event.folded, 2)),
        _html_table("Peraturan dan peristiwa / Rules and events",
                    ("peraturan / rule", "keterangan / description", "fasal / clause",
                     *EVENTS, "jumlah / total"),
                    _html_rule_rows(s, d, rules), ("", "", "", *event_classes[1:])),
        _html_table("Mengikut fasal / By clause (satu rekod dikira di bawah setiap fasal "
                    "yang dipetik peraturannya / a record counts under each clause its "
                    "rule cites)", ("fasal / clause", *EVENTS, "jumlah / total"),
                    _with_other([(x["clause"], *(x.get(ev, 0) for ev in EVENTS), x["total"])
                                 for x in d["by_clause"]], d["folded"].get("clause", 0),
                                len(EVENTS) + 2), event_classes),
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
        _html_table(f"Setiap hari / Per day ({printable(s.zone)})",
                    ("tarikh / date", *EVENTS, "jumlah / total"),
                    _with_other([(x["date"], *(x.get(ev, 0) for ev in EVENTS), x["total"])
                                 for x in d["per_day"]], s.per_day.folded, len(EVENTS) + 2),
                    event_classes),
    ]
    if s.warnings:
        more = s.warning_count - len(s.warnings)
        parts.append("<h2>Amaran / Warnings</h2><ul>"
                     + "".join(f"<li>{e(w)}</li>" for w in s.warnings)
                     + (f"<li>... {more} lagi / more</li>" if more else "") + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
