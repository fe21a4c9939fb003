"""Header fields read straight from the raw header block, decoded on request.

Working on the raw bytes keeps the relay byte-exact and avoids a full MIME parse
for checks that only need the envelope-ish headers (From, Subject).
"""

from __future__ import annotations

import re
from email.header import decode_header
from email.utils import getaddresses

_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)


def header_end(raw: bytes) -> int:
    """Offset just past the blank line that ends the header block (len(raw) if none)."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    return m.end() if m else len(raw)


def raw_values(block: bytes, name: str) -> list[bytes]:
    want = name.lower().encode("ascii")
    return [m.group(2) for m in _FIELD.finditer(block) if m.group(1).lower() == want]


def _unfold(value: bytes) -> str:
    text = value.decode("utf-8", errors="replace")
    return re.sub(r"\r?\n(?=[ \t])", "", text).strip()


def decode(value: bytes) -> str:
    """RFC 2047 decoding; unknown charsets and malformed words degrade, never raise."""
    text = _unfold(value)
    if "=?" not in text:
        return text
    try:
        parts = decode_header(text)
    except Exception:  # email.errors.HeaderParseError and friends on hostile input
        return text
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        try:
            out.append(chunk.decode(charset or "ascii", errors="replace"))
        except LookupError:
            out.append(chunk.decode("utf-8", errors="replace"))
    return "".join(out)


def addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    """The addr-specs in address headers, lower-cased domain, display names dropped."""
    found = []
    for _name, addr in getaddresses(list(values)):
        if addr and "@" in addr:
            local, _, domain = addr.rpartition("@")
            found.append(f"{local}@{domain.lower()}")
    return tuple(found)
