"""Password candidates in a message's own text: the grammar of "the password is X".

PPPA Bil. 3 Tahun 2025, Lampiran A 3.2.2(a)(ii)(d) and Garis Panduan Emel Kelantan 5.3
ask that the password of an encrypted attachment travel by another channel. Officers
who send it in the same message write it in a few set ways; this module finds those
(`find(text, where)`), and `gateway.message.unlock` tries each one on the encrypted
attachments. A candidate that opens nothing proves nothing, so the grammar may be
generous; what it must not be is so loose that ordinary prose floods the bounded
number of candidates (`unlock.MAX_CANDIDATES`).

The grammar, any case (the candidate keeps its own case):

    LABEL  = "kata laluan" | "katalaluan" | "kata-laluan" | "password" | "pass word"
           | "passwd" | "pwd" | "kod laluan"
    QUAL   = up to three of: bagi untuk for of fail lampiran dokumen file attachment
             document zip pdf ini tersebut itu this the  (e.g. "fail ini", "for the file")
    SEP    = ":" | "=" (the value may start the next line) | "-" between spaces
             | "ialah" | "adalah" | "is" | nothing but spaces, after "pwd" alone
    VALUE  = a quoted run ("...", '...', “...”, ‘...’), or a run of non-space characters;
             1 to 64 characters

    LABEL [QUAL] SEP VALUE, the label starting a word (not "compassword", "katalaluannya").

Examples: `Kata laluan: Rahsia#2025`, `Katalaluan = abc123`, `Password: X`, `pwd X`,
`kata laluan fail ini ialah X`, `Password for the attachment is "two words"`.
Not candidates (false friends): `kata laluan akan dihantar melalui SMS` (no separator),
`password-protected`, `pwdx`, `Passport: A1234567`, `Tukar kata laluan anda`.

A value ending in sentence punctuation (`.`, `,`, `;`, `)`) gives two candidates, with
and without it: `Kata laluan: abc123.` may mean either.

A `Candidate` never shows its password in `repr` or `str`: it must never reach a log,
a reply, `gateway check --json` or the disk. Only `where` is evidence. Text the
gateway does write (a subject kept in clear in the log, the subject and file names
`gateway check` prints) goes through `mask`, which puts `MASK` where a value stood.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_VALUE = 64

_LABEL = r"(?:kata[\s-]*laluan|kod\s+laluan|pass\s?word|passwd|(?P<pwd>pwd))"
_QUAL_WORD = (r"(?:bagi|untuk|for|of|fail|lampiran|dokumen|file|attachment|document|zip|pdf"
              r"|ini|tersebut|itu|this|the)")
_QUAL = rf"(?:[ \t]+{_QUAL_WORD}){{0,3}}"
_SEP = r"(?:[ \t]*[:=：][ \t]*(?:\r?\n[ \t]*)?|[ \t]+-[ \t]+|[ \t]+(?:ialah|adalah|is)[ \t]+)"
_QUOTED = r"\"([^\"\n]{1,64})\"|'([^'\n]{1,64})'|“([^”\n]{1,64})”|‘([^’\n]{1,64})’"
_BARE = r"(\S{1,64})(?!\S)"
_GRAMMAR = re.compile(
    rf"(?<![\w-]){_LABEL}(?![\w-]){_QUAL}(?P<sep>{_SEP}|[ \t]+)(?:{_QUOTED}|{_BARE})",
    re.IGNORECASE)
_TRAILING = ".,;:!?)]}>"
MASK = "********"


@dataclass(frozen=True)
class Candidate:
    """A possible password and where in the message it stood (`subject`, `body`,
    `forwarded:1:body`, `attachment`, `attachment_name`...). `password` is excluded
    from `repr` so that it cannot leak through a log line or a traceback's message."""

    where: str
    password: str = field(repr=False)

    def __str__(self) -> str:
        return f"Candidate(where={self.where!r})"


def find(text: str, where: str) -> list[Candidate]:
    """The password candidates of one text, in order of appearance, without repeats.

    `text`: decoded text (a subject, a body part, a text attachment, a file name).
    `where`: what the evidence will say about the place. Never raises."""
    out: dict[str, Candidate] = {}
    for m in _GRAMMAR.finditer(text):
        if not _counts(m):
            continue  # only "pwd X" may go without a separator
        quoted = next((g for g in m.groups()[2:6] if g is not None), None)
        values = [quoted] if quoted is not None else []
        if quoted is None:
            bare = m.group(7)
            values.append(bare)
            stripped = bare.rstrip(_TRAILING)
            if stripped and stripped != bare:
                values.append(stripped)
        for value in values:
            if value and value not in out:
                out[value] = Candidate(where, value)
    return list(out.values())


def _counts(m: re.Match[str]) -> bool:
    return bool(m.group("sep").strip()) or m.group("pwd") is not None


# Shorter candidate values are not masked where they stand alone: a two-letter value
# would blank ordinary words, and tells little.
MIN_MASKED_VALUE = 3


def mask(text: str, values: Iterable[str] = ()) -> str:
    """`text` with every candidate value replaced by MASK (label and separator kept):
    `Laporan, kata laluan: abc123` -> `Laporan, kata laluan: ********`; and every
    occurrence of each of `values` (the message's candidates, `secret_values`) of at
    least MIN_MASKED_VALUE characters, wherever it stands: a subject or a matched line
    may repeat the password without its label. Never raises."""
    text = _mask_labelled(text)
    for value in sorted({v for v in values if len(v) >= MIN_MASKED_VALUE}, key=len,
                        reverse=True):
        text = text.replace(value, MASK)
    return text


def _mask_labelled(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        if not _counts(m):
            return m.group(0)
        value_at = next(i for i in range(3, 8) if m.group(i) is not None)
        start = m.start(value_at) - m.start(0)
        end = m.end(value_at) - m.start(0)
        whole = m.group(0)
        return whole[:start] + MASK + whole[end:]
    return _GRAMMAR.sub(replace, text)


def mask_evidence(evidence: Any, values: Iterable[str] = ()) -> Any:
    """A copy of JSON-like evidence (mappings, lists, strings) with `mask` (and
    `values`) applied to every string: what a check quotes (an attachment's name, a
    matched line) may hold a password. Never raises."""
    values = tuple(values)
    if isinstance(evidence, str):
        return mask(evidence, values)
    if isinstance(evidence, Mapping):
        return {k: mask_evidence(v, values) for k, v in evidence.items()}
    if isinstance(evidence, list | tuple):
        return [mask_evidence(v, values) for v in evidence]
    return evidence
