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
- headers: a Microsoft Purview `msip_labels` label name (`_Name=`) and the
  configured classification headers, whose value starts with a marking (any case).
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.message import documents
from gateway.message.text import fold

if TYPE_CHECKING:
    from gateway.message.view import MessageView

LEVELS = ("TERHAD", "SULIT", "RAHSIA", "RAHSIA BESAR")  # lowest first
MAX_FOUND = 50  # per message: enough to say where, bounded for the log
MAX_PER_PART = 3
# Longest text the subject rules judge as one segment of a document header or footer;
# a longer one is still judged line by line by the body rules, whatever its length.
MAX_LINE = 1000


@dataclass(frozen=True)
class Found:
    marking: str
    where: dict[str, Any]


@dataclass(frozen=True)
class Markings:
    found: tuple[Found, ...] = field(default=())

    @property
    def highest(self) -> str | None:
        if not self.found:
            return None
        return max((f.marking for f in self.found), key=LEVELS.index)

    def where(self, marking: str) -> list[dict[str, Any]]:
        return [f.where for f in self.found if f.marking == marking]


def _level(token: str) -> str:
    """'RAHSIA  BESAR' / 'rahsia_besar' / 'RahsiaBesar' -> 'RAHSIA BESAR'."""
    letters = re.sub(r"[^A-Za-z]", "", token).upper()
    return "RAHSIA BESAR" if letters == "RAHSIABESAR" else letters


# -- subject ------------------------------------------------------------------------

_M = r"(?<![A-Za-z0-9])(RAHSIA[ \t]+BESAR|RAHSIA|SULIT|TERHAD)(?![A-Za-z0-9])"
_D = r"[:\-–—|/]"
_OPEN, _CLOSE = r"[\[({<【〔「『]", r"[\])}>】〕」』]"
_SUBJECT_PREFIX = re.compile(
    r"(?i)^\s*(?:(?:re|fw|fwd|aw|wg|sv|vs|tr|rv|r|bls|balas|mk|majukan|fyi)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]|" + _OPEN + r"[^\])}>】〕」』]{0,60}" + _CLOSE + r")\s*")
# In brackets the marking counts in any case: `Minit mesyuarat (Sulit)`.
_S_BRACKET = re.compile(_OPEN + r"[\s*_\-=]*(?i:" + _M + r")[\s*_\-=]*" + _CLOSE)
# Quotes and emphasis a sender puts round the marking (`"RAHSIA" Pelan`, `*SULIT*:`),
# and the punctuation after it (`RAHSIA. Pelan`), leave it the marking.
_Q_OPEN = r"[\"'“”‘’«»„‹›*#]*"
_Q_CLOSE = r"[\"'“”‘’«»„‹›*.,;!]*"
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
    for _ in range(20):  # peel `Re: Fwd: [EXTERNAL] ...` one prefix at a time
        m = _SUBJECT_PREFIX.match(s)
        if not m or not m.end():
            break
        s = s[m.end():]
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


_GAP = r"[\W_]{1,8}"
_SPACED = re.compile("|".join(_GAP.join(word) for word in ("SULIT", "TERHAD", "RAHSIA")))


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


def _may_hold(folded: str) -> bool:
    """Cheap guard: no marking word and no spaced-out capitals means no marking."""
    upper = folded.upper()
    return any(w in upper for w in ("TERHAD", "SULIT", "RAHSIA")) or bool(
        _SPACED.search(folded))


def in_text(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, marking) for every marking line of a text."""
    # The whole text, however long: a marking on the last line of a 10 MB body counts.
    folded = fold(text)
    if not _may_hold(folded):
        return
    for n, line in enumerate(folded.splitlines(), start=1):
        found = in_line(line)
        if found is not None:
            yield n, found


# -- headers ------------------------------------------------------------------------

_MSIP = re.compile(r"MSIP_Label_([0-9A-Za-z-]+)_([A-Za-z]+)\s*=\s*([^;]*)")
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


def in_msip_labels(value: str) -> list[str]:
    """Markings named by the `_Name=` of an enabled label in an msip_labels header."""
    labels: dict[str, dict[str, str]] = {}
    for m in _MSIP.finditer(value):
        labels.setdefault(m.group(1), {})[m.group(2).lower()] = m.group(3).strip()
    found: list[str] = []
    for fields in labels.values():
        if fields.get("enabled", "true").lower() == "false":
            continue
        level = _label_name(fields.get("name", ""))
        if level is not None:
            found.append(level)
    return found


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
        elif len(segment) <= MAX_LINE:
            found.extend(in_subject(segment))
    return list(dict.fromkeys(found))


# -- the message --------------------------------------------------------------------

class _Collector:
    def __init__(self) -> None:
        self.found: list[Found] = []
        self._per_at: dict[tuple[str, str], int] = {}

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
            found = in_msip_labels(piece.text)
        for marking in found:
            self.add(marking, where)


def _join(name: str, path: str) -> str:
    return f"{name}/{path}" if path else name


def detect(view: MessageView) -> Markings:
    """Every marking in the message, in the places MARKINGS.md lists.

    Raises NotInspectable when an attachment's documents are beyond the inspection
    bounds (a ZIP bomb, nesting, bytes or time): such a message cannot be called
    unmarked."""
    out = _Collector()
    for marking in in_subject(view.subject):
        out.add(marking, {"in": "subject", "at": "subject"})
    for value in view.header_values("msip_labels"):
        for marking in in_msip_labels(value):
            out.add(marking, {"in": "header", "header": "msip_labels",
                              "at": "header:msip_labels"})
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
            for marking in in_msip_labels(value):
                out.add(marking, {**base, "header": "msip_labels",
                                  "at": f"{at}:header:msip_labels"})
        for name in view.classification_headers:
            for value in fwd.header_values(name):
                found = in_header_value(value)
                if found is not None:
                    out.add(found, {**base, "header": name, "at": f"{at}:header:{name}"})
    for part in view.text_parts:
        where: dict[str, Any] = {"in": "body", "part": part.index, "at": part.where}
        if part.nested:
            where["nested"] = part.nested
        out.text(part.text, where)
    for att in view.attachments:
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
    return Markings(tuple(out.found))
