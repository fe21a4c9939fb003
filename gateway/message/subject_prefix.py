"""Reply and forward prefixes of a subject, and a tag quoted after them.

An officer who answers or passes on an announcement keeps its subject behind the
mail program's prefix: `Re: [HEBAHAN JANM] Makluman Cuti Umum`. That tag is quoted,
not claimed. This module finds such a quote; the rules decide what it is worth
(`subject_quotes_tag`) and the transforms defang it (`gateway.transforms.subject_tag`).

The prefixes recognised, in any case, with or without space before or after the
colon (`RE:RE:`, `Fwd :`), a full-width colon too (NFKC):
- reply: `Re` (RFC 5322 3.6.5; Outlook in English writes `RE`), `Balas` and `BLS`
  (Outlook and webmail in Malay);
- forward: `Fwd`, `FW`/`Fw` (Outlook), `Majukan` (Outlook in Malay).
A chain of them (`RE: RE: Fwd:`) is one prefix; its first (outermost) word says
whether the message is a reply or a forward. Nothing else may come before the tag:
`[LUAR] Re: [HEBAHAN JANM]` or `Re: Makluman [HEBAHAN JANM]` is not a quote. The tag
must occur once: `Re: [HEBAHAN JANM] x [HEBAHAN JANM]` is not a quote either.

The tag is compared as the forged-tag rule compares it: case and white space
ignored, and on the folded text (`gateway.message.text.fold`: NFKC, zero-width and
invisible characters dropped, look-alike letters mapped), so `Re: [HEBΑHAN JANM]`
with a Greek Alpha or a zero-width space inside quotes the tag as well. The fold is
made one character at a time so every match maps back to the characters of the
subject as received (`QuotedTag.span`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from gateway.message.text import fold

REPLY_PREFIXES: tuple[str, ...] = ("re", "balas", "bls")
FORWARD_PREFIXES: tuple[str, ...] = ("fwd", "fw", "majukan")
_WORDS = "|".join(sorted(REPLY_PREFIXES + FORWARD_PREFIXES, key=len, reverse=True))
_PREFIX = re.compile(rf"\s*({_WORDS})\s*:", re.IGNORECASE)

Kind = Literal["reply", "forward"]
# What a quoted, unverified [HEBAHAN JANM] becomes by default (config hebahan_defang).
HEBAHAN_DEFANG = "[HEBAHAN JANM - TIDAK DISAHKAN]"


@dataclass(frozen=True)
class QuotedTag:
    """A tag quoted after a reply or forward prefix.

    `kind` is the outermost prefix's ("reply" or "forward"); `prefix` the prefix chain
    as folded (e.g. "RE: Fwd:"); `span` the tag's (start, end) character offsets in
    the subject as given (decoded, not folded), end exclusive.
    """

    kind: Kind
    prefix: str
    span: tuple[int, int]


def _fold_mapped(subject: str) -> tuple[str, list[int]]:
    """The folded subject and, per folded character, the index of the subject's
    character it comes from (one character at a time; see the module docstring)."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(subject):
        out = ch if ch.isascii() else fold(ch)
        chars.extend(out)
        origin.extend([i] * len(out))
    folded = "".join(chars)
    # fold's context rules (a lower-case l between capitals read as I) replace one
    # character by one: apply them over the whole text when the mapping survives.
    again = fold(folded)
    return (again if len(again) == len(folded) else folded), origin


def tag_pattern(tag: str) -> re.Pattern[str]:
    """A pattern matching `tag` (folded) with any white space between its characters,
    in any case; ValueError for a tag without a visible character."""
    visible = [c for c in fold(tag) if not c.isspace()]
    if not visible:
        raise ValueError(f"expected a tag such as [HEBAHAN JANM], got {tag!r}")
    return re.compile(r"\s*".join(re.escape(c) for c in visible), re.IGNORECASE)


def find_quoted(subject: str, tag: re.Pattern[str]) -> QuotedTag | None:
    """The quote of the tag `tag` (from `tag_pattern`) in the decoded `subject`, or None
    when the subject does not quote it (see the module docstring)."""
    folded, origin = _fold_mapped(subject)
    pos = 0
    words: list[str] = []
    while (m := _PREFIX.match(folded, pos)) is not None:
        words.append(m.group(1))
        pos = m.end()
    if not words:
        return None
    while pos < len(folded) and folded[pos].isspace():
        pos += 1
    found = tag.match(folded, pos)
    if found is None or found.end() == found.start():
        return None
    if tag.search(folded, found.end()) is not None:
        return None
    kind: Kind = "reply" if words[0].casefold() in REPLY_PREFIXES else "forward"
    prefix = " ".join(w + ":" for w in words)
    return QuotedTag(kind, prefix, (origin[found.start()], origin[found.end() - 1] + 1))
