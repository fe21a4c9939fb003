"""Classification markings (MARKINGS.md): where a marking counts and which is highest.

The four levels are also ordinary Malay words, so a marking counts only in the
places and shapes a marking is written, never in prose:

- subject (RFC 2047-decoded, reply prefixes such as `Re:`/`Fwd:`/`BLS:` and leading
  bracket tags skipped): the marking in capitals as a whole token, alone; at the
  start followed by a delimiter (`:` `-` `–` `—` `|` `/`); at the end preceded by
  one; between two delimiters; at the start or the end with no delimiter when the
  rest of the subject is not in capitals (`SULIT Minit mesyuarat`); or in brackets
  anywhere, in any case (`Minit mesyuarat (Sulit)`).
- body lines and plain-text attachments: a line that is nothing but the marking
  once whitespace, `*`, `-`, `=`, `_`, brackets, quotes and similar decoration are
  removed (so `S U L I T` and `> SULIT` count), in capitals; or a label line
  (`Klasifikasi: SULIT`, `Pengelasan Keselamatan: Rahsia`, `Classification: TERHAD`)
  where, the label being explicit, any case counts.
- headers: a Microsoft Purview `msip_labels` enabled label that the config's
  `label_map` names (by GUID or name) or whose name (`_Name=`) is a marking
  (`gateway.message.labels`), and the configured classification headers, whose
  value starts with a marking (any case).
- attachment file names, and names inside ZIP archives: the marking in capitals
  between non-letters (`RAHSIA-pelan.docx`, `SULIT_2025.pdf`; not
  `laporan_terhad_akses.xlsx`).
- documents in attachments, recursively through ZIP archives
  (`gateway.message.documents` reads them): Word paragraphs, Excel cells and
  PowerPoint slide paragraphs and PDF page lines by the body rules; Word and
  Excel headers and footers by `in_label` (each segment by the body or the
  subject rules); `MSIP_Label_*_Name` custom properties as msip_labels.
- forwarded messages (message/rfc822 parts): their subject and headers by the
  same rules; their bodies and attachments are walked as part of this message.

Everything is read after `text.fold` (NFKC, zero-width removed, look-alike letters
mapped). Each `Found.where` says where, as a small dict of structured fields
(`in`, `part`, `index`, `field`, `lineno`, `page`, `slide`...) plus `at`, a
readable path: `subject`, `body`, `header:msip_labels`, `attachment:NAME:footer`,
`attachment:NAME:page1`, `attachment:a.zip/inner.docx:header`. Message-derived
text in it sits only under `name` / `text` / `member` / `at`, keys the rejection
log drops for RAHSIA mail.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.message import documents, labels
from gateway.message.text import fold

if TYPE_CHECKING:
    from gateway.message.view import MessageView

LEVELS = ("TERHAD", "SULIT", "RAHSIA", "RAHSIA BESAR")  # lowest first
MAX_FOUND = 50  # per message: enough to say where, bounded for the log
MAX_PER_PART = 3


@dataclass(frozen=True)
class Found:
    marking: str
    where: dict[str, Any]


@dataclass(frozen=True)
class SeenLabel:
    """A Purview sensitivity label met in the message (`labels.Label`), where, and the
    marking it is: `by` `label_map` (the config names it), `name` (its name is a
    marking), or None with `marking` None (unknown, or not enabled)."""

    label: labels.Label
    at: str
    marking: str | None
    by: str | None

    def as_dict(self) -> dict[str, Any]:
        """For `gateway check --json`: `name` and `at` are message text (dropped from
        the log of RAHSIA mail: both are `rejection_log.CONTENT_KEYS`)."""
        return {"id": self.label.id, "name": self.label.name, "enabled": self.label.enabled,
                "at": self.at, "marking": self.marking, "by": self.by}


@dataclass(frozen=True)
class Markings:
    found: tuple[Found, ...] = field(default=())
    # Every sensitivity label met (at most MAX_LABELS_SEEN), mapped or not.
    labels: tuple[SeenLabel, ...] = field(default=())

    @property
    def highest(self) -> str | None:
        if not self.found:
            return None
        return max((f.marking for f in self.found), key=LEVELS.index)

    def where(self, marking: str) -> list[dict[str, Any]]:
        return [f.where for f in self.found if f.marking == marking]


# Case-insensitive matching takes the Turkish dotless ı and dotted İ for i; they must
# count as that letter here too, or `Klasifikasi: SULıT` would name no level at all.
_DOTTED_I = str.maketrans({"ı": "i", "İ": "I"})


def _level(token: str) -> str:
    """'RAHSIA  BESAR' / 'rahsia_besar' / 'RahsiaBesar' / 'SULıT' -> 'RAHSIA BESAR' / 'SULIT'."""
    letters = re.sub(r"[^A-Za-z]", "", token.translate(_DOTTED_I)).upper()
    return "RAHSIA BESAR" if letters == "RAHSIABESAR" else letters


# -- subject ------------------------------------------------------------------------

_M = r"(?<![A-Za-z0-9])(RAHSIA[ \t]+BESAR|RAHSIA|SULIT|TERHAD)(?![A-Za-z0-9])"
_D = r"[:\-–—|/]"
_OPEN, _CLOSE = r"[\[({<【〔「『]", r"[\])}>】〕」』]"
# Every leading prefix at once, however many (`Re: Fwd: [EXTERNAL] ...`): possessive,
# so one linear match; a loop that peeled twenty of them left a marking behind the
# twenty-first unread.
_SUBJECT_PREFIX = re.compile(
    r"(?i)^(?:\s*(?:(?:re|fw|fwd|aw|wg|sv|vs|tr|rv|r|bls|balas|mk|majukan|fyi)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]|" + _OPEN + r"[^\])}>】〕」』]{0,60}" + _CLOSE +
    r"))*+\s*")
# In brackets the marking counts in any case: `Minit mesyuarat (Sulit)`.
_S_BRACKET = re.compile(_OPEN + r"[\s*_\-=]*(?i:" + _M + r")[\s*_\-=]*" + _CLOSE)
# Quotes and emphasis a sender puts round the marking (`"RAHSIA" Pelan`, `*SULIT*:`),
# and the punctuation after it (`RAHSIA. Pelan`), leave it the marking.
_Q_OPEN = r"[\"'“”‘’«»„‹›*#]*"
# Possessive: `.` and `!` may also end a subject (`[\s.!]*$` after it), and two greedy
# runs over the same dots made `- RAHSIA........x` quadratic (seconds per subject).
_Q_CLOSE = r"[\"'“”‘’«»„‹›*.,;!]*+"
_S_ALONE = re.compile(r"^[\s*_\-=\"'.]*" + _M + r"[\s*_\-=\"'.!]*$")
_S_START = re.compile(r"^\s*" + _Q_OPEN + _M + _Q_CLOSE + r"\s*" + _D)
_S_END = re.compile(_D + r"\s*" + _Q_OPEN + _M + _Q_CLOSE + r"[\s.!]*$")
_S_BETWEEN = re.compile(_D + r"\s*" + _M + r"\s*(?=" + _D + ")")
# At the start or the end with no delimiter: a marking only when the rest of the
# subject is not in capitals, so that the marking stands out as one (`SULIT Minit
# mesyuarat`, `Laporan RAHSIA BESAR`); `PENDAFTARAN DIBUKA - TEMPAT TERHAD` is a sentence.
_S_START_BARE = re.compile(r"^\s*" + _Q_OPEN + _M + _Q_CLOSE + r"\s+(?P<rest>\S.*)$")
_S_END_BARE = re.compile(r"^(?P<rest>.*?\S)\s+" + _Q_OPEN + _M + _Q_CLOSE + r"[\s.!]*$")


def _in_capitals(text: str) -> bool:
    """The text has cased letters and none of them is lower case."""
    cased = [c for c in text if c.isalpha() and (c.isupper() or c.islower())]
    return bool(cased) and not any(c.islower() for c in cased)


def in_subject(subject: str) -> list[str]:
    """Markings in a subject line, by the subject rules (module docstring)."""
    s = fold(subject)
    if not re.search(r"(?i)RAHSIA|SULIT|TERHAD", s):
        return []
    found = [_level(m.group(1)) for m in _S_BRACKET.finditer(s)]
    prefixes = _SUBJECT_PREFIX.match(s)  # `Re: Fwd: [EXTERNAL] ...`, all of them
    if prefixes:
        s = s[prefixes.end():]
    for rx in (_S_ALONE, _S_START, _S_END):
        m = rx.search(s)
        if m:
            found.append(_level(m.group(1)))
    for rx, group in ((_S_START_BARE, 1), (_S_END_BARE, 2)):
        m = rx.search(s)
        if m and not _in_capitals(m.group("rest")):
            found.append(_level(m.group(group)))
    found.extend(_level(m.group(1)) for m in _S_BETWEEN.finditer(s))
    return list(dict.fromkeys(found))


# -- body lines ---------------------------------------------------------------------

_DECORATION = " \t\r\f\v*-=_()[]{}<>\"'`“”‘’«»„‹›#~+|.:!•·–—\u3000【】〔〕「」『』"
_STRIP_DECORATION = str.maketrans("", "", _DECORATION)
_BY_LETTERS = {"TERHAD": "TERHAD", "SULIT": "SULIT", "RAHSIA": "RAHSIA",
               "RAHSIABESAR": "RAHSIA BESAR"}
_QUOTE = re.compile(r"^[\s>|]*")
_LABELS = (r"klasifikasi|pengelasan|classification|security\s+classification|"
           r"taraf|peringkat|tahap|kategori|darjah|sensitivity|security\s+marking|marking|"
           r"status\s+keselamatan|pengkelasan|klasifikasi\s+keselamatan|"
           r"(?:klasifikasi|pengelasan|taraf|peringkat|tahap|kategori|darjah)"
           r"\s+(?:keselamatan|dokumen|maklumat|fail|e-?mel)"
           r"(?:\s+keselamatan)?")
_LABEL_LINE = re.compile(
    r"(?i)^[\W_]*(?:" + _LABELS + r")\s*[:=\-–—]\s*[\W_]*?"
    r"(?<![A-Za-z])(rahsia[ \t]+besar|rahsia|sulit|terhad)(?![A-Za-z])[\W_]*$")


def in_line(line: str) -> str | None:
    """The marking a body line is, by the body rules, or None. `line` is folded."""
    s = _QUOTE.sub("", line, count=1)
    if not s:
        return None
    # No length cap: decoration around a marking (`*** ... SULIT ... ***`) may be as
    # long as a sender likes, and the line is read once whatever its length.
    letters = s.translate(_STRIP_DECORATION)
    # Spaced letters (`S U L I T`) collapse with the whitespace removal above.
    found = _BY_LETTERS.get("".join(letters.split()))
    if found is not None:
        return found
    if len(letters) <= 60 and (":" in s or "=" in s or "-" in s or "–" in s):
        m = _LABEL_LINE.match(s)
        if m:
            return _level(m.group(1))
    return None


# -- the scan of a whole text (in_text) ------------------------------------------------
#
# A marking line is rare; a 10 MB body is all prose. Folding every line and
# judging it (`in_text_reference`) spent most of a large body's inspection, so
# `in_text` looks first, at C speed, for the only lines either body rule can
# take, and judges those by `in_line`: the same answers, line numbers included.
#
# Why the look is sound (it never skips a line `in_line` would take), on the
# folded line: the decoration rule leaves the marking's capitals with nothing but
# decoration and blanks between them and after them (`S U L I T`, `SU LIT`,
# `*** SULIT ***`); the label rule ends with the marking word, in any case as
# `re.IGNORECASE` compares it, and then only non-word characters. Both end the
# word with non-word characters (or `_`) up to the line end, which rules out
# nearly every word of prose (`maklumat sulit dan`). So the candidates are, with
# `_TAIL` that end: the capitals spaced by decoration and blanks (`_UPPER`), and the
# word in a caseless copy (`_LOWER`). The caseless copy is `str.lower()` after the
# only letters IGNORECASE takes for i and s that lower() does not give (U+0130 İ,
# whose lower case is two characters, U+0131 ı, U+017F ſ): the same length, so a
# place in the copy is the place in the text. The folding itself is not skipped
# but cut: it is line-local (NFKC never merges across a line feed; the invisible
# and look-alike maps go character by character; an `l` read as `I` needs capitals
# on both sides), so the text is folded a slice at a time, each slice ending at a
# line feed; an ASCII slice, whose only fold is that `l`, is searched unfolded with
# [Il] wherever an I stands, and a candidate line alone is folded. Line numbers
# are those of `str.splitlines()` of the folded text, counted over its breaks.
#
# Why `re` and not RE2 (google-re2, measured on 10 MB of Malay prose with marking
# words in it): five patterns that each start with a literal are found by `re`'s
# literal-prefix search, about 55 ms in all with the lower-case copy; one RE2
# pattern for the same candidates took 50 ms (RE2 converts a str to UTF-8 first),
# 0.24 s without the line-end condition. No gain to pay a compiled dependency for.

# Where str.splitlines() breaks a line, as characters and as a pattern class.
_BREAK_CHARS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_OTHER_BREAKS = tuple(_BREAK_CHARS[2:])
_BREAK = "\\n\\r\\x0b\\x0c\\x1c\\x1d\\x1e\\x85\\u2028\\u2029"
# Non-word characters (and `_`) up to the line end, possessive: linear on any input.
_TAIL = rf"(?:[^\w{_BREAK}]|_)*+(?:[{_BREAK}]|\Z)"
# What may stand between a decorated marking's capitals: decoration, or any blank
# `str.split()` removes, but no line break.
_SEP = ("(?:[" + re.escape("".join(sorted(set(_DECORATION) - set(_BREAK_CHARS)))) +
        rf"]|[^\S{_BREAK}])*+")


def _spaced(word: str) -> str:
    return _SEP.join("[Il]" if c == "I" else c for c in word)


_UPPER = tuple(re.compile(p + _TAIL) for p in (
    _spaced("SULIT"), _spaced("TERHAD"),
    _spaced("RAHSIA") + "(?:" + _SEP + _spaced("BESAR") + ")?"))
_LOWER = tuple(re.compile(p + _TAIL) for p in (
    "sul[il]t", "terhad", r"rahs[il]a(?:[ \t]+besar)?"))
# The same capitals anywhere, not only at a line end (a document header's segments).
_SPACED_ANY = tuple(re.compile(_spaced(w)) for w in ("SULIT", "TERHAD", "RAHSIA"))
_SLICE = 1 << 18  # characters folded at a time
_SHORT = 512  # characters of ASCII text judged line by line once the letters are there


def _caseless(text: str) -> str:
    """lower(), also for the letters IGNORECASE matches to i and s (see above)."""
    if not text.isascii():
        text = text.replace("\u0130", "i").replace("\u0131", "i").replace("\u017f", "s")
    return text.lower()


def _may_hold(folded: str) -> bool:
    """Whether a folded text may hold a marking by any rule here: a marking word in any
    case (the label, subject and header rules), or its capitals with nothing but
    decoration and blanks between them (the body rules: `S U L I T`, `SU LIT`).
    Sound: no where no rule can say yes."""
    low = _caseless(folded)
    return any(w in low for w in ("sulit", "rahsia", "terhad")) or any(
        rx.search(folded) for rx in _SPACED_ANY)


def _breaks(text: str, start: int, end: int, others: tuple[str, ...]) -> int:
    """Line breaks str.splitlines() sees in text[start:end] (both at line starts)."""
    n = text.count("\n", start, end)
    cr = text.count("\r", start, end)
    if cr:
        n += cr - text.count("\r\n", start, end)
    return n + sum(text.count(c, start, end) for c in others)


def _ascii_breaks(text: str, start: int, end: int) -> tuple[str, ...]:
    """The `_OTHER_BREAKS` in text[start:end], an ASCII stretch (the others are not)."""
    return tuple(c for c in _OTHER_BREAKS
                 if c.isascii() and text.find(c, start, end) >= 0)


def _letters_for(text: str, low: str) -> bool:
    """What every candidate needs, at `in` speed (most of a document's paragraphs have
    not): the caseless words' first letters, or the capitals of a spaced form but its
    I (an l may stand for it). `low` is `_caseless(text)`."""
    return "sul" in low or "rahs" in low or "terhad" in low or (
        "S" in text and "U" in text and "L" in text and "T" in text) or (
        "T" in text and "E" in text and "R" in text and "H" in text and "A" in text and
        "D" in text) or ("R" in text and "A" in text and "H" in text and "S" in text)


def _judge(text: str, folded: bool, lineno: int, low: str | None = None
           ) -> Iterator[tuple[int, str]]:
    """The marking lines of one slice (`folded`, or ASCII and folded line by line), the
    first of them numbered `lineno`; `low`: `_caseless(text)` if already made."""
    if low is None:
        low = _caseless(text)
    if not _letters_for(text, low):
        return
    starts: set[int] = set()
    for rx in _UPPER:
        starts.update(m.start() for m in rx.finditer(text))
    for rx in _LOWER:
        starts.update(m.start() for m in rx.finditer(low))
    if not starts:
        return
    others = tuple(c for c in _OTHER_BREAKS if c in text)
    seps = ("\n", "\r", *others)
    counted = 0  # line breaks before `counted` are in `lineno`
    done = -1
    # Where each break character next occurs (-1: nowhere further). Candidates come
    # in order, so each is searched forward once over the slice, and backward only
    # since the line judged before: linear, where a search from the slice's ends for
    # a break character it lacks made 40,000 one-word lines take half a second.
    ahead: dict[str, int] = {}
    for at in sorted(starts):
        if at < done:
            continue  # another candidate of a line already judged
        # A candidate starts with a letter: the break ending the line before (at
        # `done`) lies in [done, at), so the search back need not go further.
        lo = max(done, 0)
        begin = max(text.rfind(c, lo, at) for c in seps) + 1
        if begin == 0 and lo > 0:
            begin = max(text.rfind(c, 0, at) for c in seps) + 1
        done = len(text)
        for c in seps:
            after = ahead.get(c, -2)
            if after != -1 and after < at:
                after = ahead[c] = text.find(c, at)
            if 0 <= after < done:
                done = after
        lineno += _breaks(text, counted, begin, others)
        counted = begin
        line = text[begin:done]
        found = in_line(line if folded else fold(line))
        if found is not None:
            yield lineno, found


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_SPARSE = 64  # lines with other characters in a slice, folded alone; more: the slice


def _folded_lines(piece: str) -> list[tuple[str, bool]]:
    """A slice as runs of whole lines, each (text, folded): the lines that hold a
    character other than ASCII folded, the ASCII ones as they are. A slice where
    such lines are many is folded whole (folding costs the same; judging fewer
    pieces costs less)."""
    out: list[tuple[str, bool]] = []
    start = stop = 0  # the lines being gathered to fold
    m = _NON_ASCII.search(piece)
    while m is not None:
        if len(out) > 2 * _SPARSE:
            return [(fold(piece), True)]
        newline = piece.rfind("\n", stop, m.start())
        begin = newline + 1 if newline >= 0 else stop
        if begin > stop:  # ASCII lines between: what was gathered is folded
            if stop > start:
                out.append((fold(piece[start:stop]), True))
            out.append((piece[stop:begin], False))
            start = begin
        newline = piece.find("\n", m.end())
        stop = newline + 1 if newline >= 0 else len(piece)
        m = _NON_ASCII.search(piece, stop)
    if stop > start:
        out.append((fold(piece[start:stop]), True))
    if stop < len(piece):
        out.append((piece[stop:], False))
    return out


def in_text(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, marking) for every marking line of a text: exactly
    `in_text_reference`, found without judging every line (see above)."""
    # The whole text, however long: a marking on the last line of a 10 MB body counts.
    if len(text) <= _SLICE and text.isascii():
        # Most texts: one piece, no lines to count. A short one with the letters is
        # judged line by line: cheaper than setting up the searches.
        if len(text) > _SHORT:
            yield from _judge(text, False, 1)
        elif _letters_for(text, text.lower()):
            yield from in_text_reference(text)
        return
    yield from _scan(text, 1, count=False)


def in_text_from(text: str, lineno: int) -> tuple[list[tuple[int, str]], int]:
    """`in_text` of a text that goes on a longer one at its line `lineno` (what came
    before ends at a line feed): its marking lines numbered as in the longer text, and
    the number of the line after it. Pieces of a text cut after line feeds, each
    scanned so from where the one before ended, find what `in_text` finds in the whole
    (gateway.message.textscan reads a body so while it arrives)."""
    after: list[int] = []

    def scan() -> Iterator[tuple[int, str]]:
        after.append((yield from _scan(text, lineno, count=True)))
    found = list(scan())
    return found, after[0]


def _scan(text: str, lineno: int, *, count: bool
          ) -> Generator[tuple[int, str], None, int]:
    """`in_text`'s search slice by slice, its first line numbered `lineno`; returns
    the number of the line after the text when `count`, else 0 (the lines after the
    last slice with a candidate are then never counted)."""
    counted = 0  # the line breaks of text[:counted] are in `lineno`
    pos = 0
    while pos < len(text):
        cut = text.find("\n", pos + _SLICE)
        end = len(text) if cut < 0 else cut + 1
        piece = text if pos == 0 and end == len(text) else text[pos:end]
        start, pos = pos, end
        if piece.isascii():
            low = piece.lower()
            if not _letters_for(piece, low):
                # Nothing to judge: its lines are counted only if a later slice has a
                # candidate (most of a long text has none; counting was three passes).
                continue
            # Each slice ends at a line feed: counting across slices counts the same.
            lineno += _breaks(text, counted, start, _ascii_breaks(text, counted, start))
            counted = end
            yield from _judge(piece, False, lineno, low)
            lineno += _breaks(piece, 0, len(piece), _ascii_breaks(piece, 0, len(piece)))
            continue
        lineno += _breaks(text, counted, start, _ascii_breaks(text, counted, start))
        counted = end
        for run, folded in _folded_lines(piece):
            yield from _judge(run, folded, lineno)
            lineno += _breaks(run, 0, len(run), tuple(c for c in _OTHER_BREAKS if c in run))
    if not count:
        return 0
    return lineno + _breaks(text, counted, len(text), _ascii_breaks(text, counted, len(text)))


def in_text_reference(text: str) -> Iterator[tuple[int, str]]:
    """`in_text` the slow way, the grammar itself: the whole text folded and every line
    judged by `in_line`. Kept as what `in_text` must equal
    (tests/fuzz/test_fuzz_fast_paths.py)."""
    for n, line in enumerate(fold(text).splitlines(), start=1):
        found = in_line(line)
        if found is not None:
            yield n, found


# -- headers ------------------------------------------------------------------------

_LABEL_PARTS = re.compile(r"\s*[\\/|:\-–—]\s*")
_HEADER_VALUE = re.compile(
    r"(?i)^[\W_]*(rahsia[ \t_-]*besar|rahsia|sulit|terhad)(?![A-Za-z])")


def _label_name(name: str) -> str | None:
    name = fold(name).strip().strip("\"'")
    for piece in (name, *_LABEL_PARTS.split(name)):
        level = _level(piece) if re.fullmatch(r"(?i)\s*(rahsia\s*besar|rahsia|sulit|terhad)\s*",
                                               piece) else None
        if level is not None:
            return level
    return None


def label_marking(label: labels.Label, label_map: labels.LabelMap | None = None
                  ) -> tuple[str | None, str | None]:
    """(marking, by) of one sensitivity label: an enabled label named by `label_map`
    (by `label_map`), else one whose name is a marking (by `name`); (None, None) else."""
    if not label.enabled:
        return None, None
    if label_map:
        level = label_map.marking(label)
        if level is not None:
            return level, "label_map"
    level = _label_name(label.name)
    return (level, "name") if level is not None else (None, None)


def in_msip_labels(value: str, label_map: labels.LabelMap | None = None) -> list[str]:
    """Markings of the enabled labels in msip_labels pairs (`label_marking`)."""
    found = [label_marking(label, label_map)[0] for label in labels.parse(value)]
    return [m for m in found if m is not None]


def in_header_value(value: str) -> str | None:
    """A configured classification header (`X-Classification: SULIT`): its leading marking."""
    m = _HEADER_VALUE.match(fold(value))
    return _level(m.group(1)) if m else None


# -- file names ---------------------------------------------------------------------

_FILENAME = re.compile(r"(?<![A-Za-z])(RAHSIA[\s_\-.]*BESAR|RAHSIA|SULIT|TERHAD)(?![A-Za-z])")


def in_filename(name: str) -> list[str]:
    return list(dict.fromkeys(_level(m.group(1)) for m in _FILENAME.finditer(fold(name))))


_SEGMENT = re.compile(r"[\t\n\r\v\f]+| {3,}")


def in_label(text: str) -> list[str]:
    """Markings in a document header or footer: each tab-, line- or wide-space-separated
    segment by the body rules or the subject rules (`SULIT`, `Minit - TERHAD`)."""
    found: list[str] = []
    if not _may_hold(fold(text)):
        return found  # a header of a million tab-separated cells costs one scan
    for segment in (text, *_SEGMENT.split(text)):
        segment = segment.strip()
        if not segment:
            continue
        line = in_line(fold(segment))
        if line is not None:
            found.append(line)
        else:
            # Whatever its length (the subject rules are linear): a segment of more
            # than a thousand characters ending `- RAHSIA` was never judged.
            found.extend(in_subject(segment))
    return list(dict.fromkeys(found))


# -- the message --------------------------------------------------------------------

MAX_LABELS_SEEN = 50  # per message, for `gateway check --json`


class _Collector:
    def __init__(self, label_map: labels.LabelMap | None = None) -> None:
        self.found: list[Found] = []
        self.labels: list[SeenLabel] = []
        self.label_map = label_map
        self._per_at: dict[tuple[str, str], int] = {}

    def msip(self, value: str, where: dict[str, Any]) -> None:
        """msip_labels pairs: each enabled label that is a marking is one, its evidence
        naming the label (`label`: its name, or its id when it has none; `label_id`)."""
        for label in labels.parse(value):
            marking, by = label_marking(label, self.label_map)
            if len(self.labels) < MAX_LABELS_SEEN:
                self.labels.append(SeenLabel(label, str(where.get("at", "")), marking, by))
            if marking is not None:
                self.add(marking, {**where, "label": label.name or label.id,
                                   "label_id": label.id, "label_by": by})

    def add(self, marking: str, where: dict[str, Any]) -> None:
        # Bounded for the log, but a higher marking is never dropped for space.
        key = (marking, str(where.get("at", "")))
        seen = self._per_at.get(key, 0)
        if seen >= MAX_PER_PART:
            return
        if len(self.found) >= MAX_FOUND and any(f.marking == marking for f in self.found):
            return
        self._per_at[key] = seen + 1
        self.found.append(Found(marking, where))

    def text(self, text: str, where: dict[str, Any]) -> None:
        # Every line is read: the fourth marking line may be the highest. `add` bounds
        # how many of them are kept as evidence.
        for lineno, marking in in_text(text):
            self.add(marking, {**where, "lineno": lineno})

    def piece(self, piece: documents.Piece, base: dict[str, Any], name: str) -> None:
        """A text from inside an attachment, by the rule its reader gave it."""
        where = {**base, "field": piece.part,
                 "at": f"attachment:{_join(name, piece.path)}:{piece.location}"}
        if piece.number:
            where[piece.part] = piece.number
        if piece.path:
            where["member"] = piece.path
        if piece.rule == "unreadable":
            return  # a finding for the view (`Attachment.unreadable`), not text
        if piece.rule == "filename":
            where["field"] = "archive_entry"
            where["text"] = piece.text
            found = in_filename(piece.text)
        elif piece.rule == "lines":
            self.text(piece.text, where)
            return
        elif piece.rule == "label":
            found = in_label(piece.text)
        elif piece.rule == "subject":
            found = in_subject(piece.text)
        else:
            self.msip(piece.text, where)
            return
        for marking in found:
            self.add(marking, where)


def _join(name: str, path: str) -> str:
    return f"{name}/{path}" if path else name


def detect(view: MessageView, *, attachments: bool = True) -> Markings:
    """Every marking in the message, in the places MARKINGS.md lists.

    Raises NotInspectable when an attachment's documents are beyond the inspection
    bounds (a ZIP bomb, nesting, bytes or time): such a message cannot be called
    unmarked. `attachments=False`: the subject, headers, forwarded headers and bodies
    only (never raises): what the view keeps for the log of a message that could not
    be inspected, bounded like the rest (a higher marking is never dropped)."""
    out = _Collector(view.label_map)
    for marking in in_subject(view.subject):
        out.add(marking, {"in": "subject", "at": "subject"})
    for value in view.header_values("msip_labels"):
        out.msip(value, {"in": "header", "header": "msip_labels", "at": "header:msip_labels"})
    for name in view.classification_headers:
        for value in view.header_values(name):
            found = in_header_value(value)
            if found is not None:
                out.add(found, {"in": "header", "header": name, "at": f"header:{name}"})
    for fwd in view.forwarded:
        base: dict[str, Any] = {"in": "forwarded", "index": fwd.index}
        at = f"forwarded:{fwd.index}"
        for marking in in_subject(fwd.subject):
            out.add(marking, {**base, "field": "subject", "at": f"{at}:subject"})
        for value in fwd.header_values("msip_labels"):
            out.msip(value, {**base, "header": "msip_labels", "at": f"{at}:header:msip_labels"})
        for name in view.classification_headers:
            for value in fwd.header_values(name):
                found = in_header_value(value)
                if found is not None:
                    out.add(found, {**base, "header": name, "at": f"{at}:header:{name}"})
    for part in view.text_parts:
        where: dict[str, Any] = {"in": "body", "part": part.index, "at": part.where}
        if part.nested:
            where["nested"] = part.nested
        if part.scanned is None:
            out.text(part.text, where)
        else:
            # Found while the message arrived: the lines `text` would take, in order.
            for lineno, marking in part.scanned.markings:
                out.add(marking, {**where, "lineno": lineno})
    for att in view.attachments if attachments else ():
        base = {"in": "attachment", "index": att.index, "name": att.filename}
        prefix = f"{att.container_path}/" if att.container_path else ""
        if att.container is not None:
            base["container"] = att.container
        for name in att.filenames:  # every variant: a client may show any of them
            for marking in in_filename(name):
                out.add(marking, {**base, "name": name, "field": "filename",
                                  "at": f"attachment:{prefix}{name}:filename"})
        if att.is_message:
            continue  # its subject, headers and parts are read as a forwarded message
        if att.category == "text":
            out.text(att.text(), {**base, "field": "content",
                                  "at": f"attachment:{att.path}:content"})
        # Also for text: a document libmagic takes for text (a PDF after a page of text)
        # is read by what it is.
        try:
            read = att.document_pieces
        except documents.LimitExceeded as e:
            from gateway.message.view import NotInspectable  # the view imports us
            raise NotInspectable(f"attachment {att.index}: {e.reason}") from None
        for piece in read:
            out.piece(piece, base, att.path)
    return Markings(tuple(out.found), tuple(out.labels))
