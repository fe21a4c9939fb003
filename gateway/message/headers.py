"""Header fields read straight from the raw header block, decoded on request.

Working on the raw bytes keeps the relay byte-exact and avoids a full MIME parse
for checks that only need the envelope-ish headers (From, Subject).

RFC 2047 decoding is our own, lenient one: adjacent encoded words in one
charset are joined before decoding (a UTF-8 character split across two words
survives), whitespace between encoded words is dropped, bad base64 is repaired
or skipped, unknown charsets fall back to UTF-8. It never raises.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.utils import getaddresses

from gateway.message.text import decode_bytes

_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")


def header_end(raw: bytes) -> int:
    """Offset just past the blank line that ends the header block (len(raw) if none)."""
    m = re.search(rb"\r?\n\r?\n", raw)
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    return m.end() if m else len(raw)


def raw_values(block: bytes, name: str) -> list[bytes]:
    want = name.lower().encode("ascii")
    return [m.group(2) for m in _FIELD.finditer(block) if m.group(1).lower() == want]


def unfold(value: bytes) -> str:
    """A raw header value as text: unfolded, 8-bit bytes read as UTF-8 (SMTPUTF8)."""
    text = decode_bytes(value, None)
    return re.sub(r"\r?\n(?=[ \t])", "", text).strip()


def _word_bytes(encoding: str, payload: str) -> bytes:
    if encoding in "qQ":
        raw = payload.replace("_", " ").encode("ascii", errors="replace")
        return binascii.a2b_qp(raw)
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
    cleaned += "=" * (-len(cleaned) % 4)
    if len(cleaned) % 4 == 1:  # one stray character cannot be decoded; drop it
        cleaned = cleaned[:-1]
    try:
        return base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return b""


def decode_text(text: str) -> str:
    """RFC 2047 decoding of an unfolded header value; never raises."""
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset))
        pending, pending_charset = [], ""

    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos:m.start()]
        # Whitespace between two encoded words is not part of the text (RFC 2047 6.2).
        if not (pending and _BETWEEN_WORDS.fullmatch(gap)):
            flush()
            out.append(gap)
        charset = m.group(1).split("*", 1)[0].lower()  # RFC 2231 language suffix
        if pending and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.append(_word_bytes(m.group(2), m.group(3)))
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def decode(value: bytes) -> str:
    """A raw header value, unfolded and RFC 2047-decoded; never raises."""
    return decode_text(unfold(value))


def decode_str(value: str) -> str:
    """Same, for a value the compat32 parser produced (8-bit bytes surrogate-escaped)."""
    try:
        raw = value.encode("utf-8", errors="surrogateescape")
    except UnicodeError:
        raw = value.encode("utf-8", errors="replace")
    return decode(raw)


def addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    """The addr-specs in address headers, lower-cased domain, display names dropped.

    Pass values that are unfolded but NOT RFC 2047-decoded: an addr-spec is never
    encoded, and decoding first would let an encoded display name pose as an address.
    """
    found: list[str] = []
    try:
        pairs = getaddresses(list(values))
    except Exception:  # hostile address lists must not stop inspection
        pairs = []
    for _name, addr in pairs:
        if addr and "@" in addr:
            local, _, domain = addr.rpartition("@")
            found.append(f"{local}@{domain.strip().rstrip('.').lower()}")
    return tuple(found)
