"""Header fields read straight from the raw header block, decoded on request.

Working on the raw bytes keeps the relay byte-exact and avoids a full MIME parse
for checks that only need the envelope-ish headers (From, Subject).

RFC 2047 decoding is our own, lenient one: adjacent encoded words in one
charset are joined before decoding (a UTF-8 character split across two words
survives), whitespace between encoded words is dropped, bad base64 is repaired
or skipped (the base64 of gateway.message.transfer), unknown charsets fall back
to UTF-8, 7-bit stateful charsets (ISO-2022-JP...) are decoded even though their
bytes are ASCII (gateway.message.text). It never raises. The `*_checked`
variants also say whether the value decoded without a guess: file-name variants
that disagree only because one of them could not be decoded are no conflict.
"""

from __future__ import annotations

import binascii
import re
from email.utils import getaddresses

from gateway.message.text import decode_checked
from gateway.message.transfer import decode_base64

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
    return _unfold(value)[0]


def _unfold(value: bytes) -> tuple[str, bool]:
    text, clean = decode_checked(value, None)
    return re.sub(r"\r?\n(?=[ \t])", "", text).strip(), clean


def _word_bytes(encoding: str, payload: str) -> tuple[bytes, bool]:
    if encoding in "qQ":
        raw = payload.replace("_", " ").encode("ascii", errors="replace")
        return binascii.a2b_qp(raw), True
    # The same lenient base64 as bodies (gateway.message.transfer): junk skipped,
    # a dangling character dropped, padding in the middle read past.
    return decode_base64(payload.encode("ascii", errors="replace"))


def decode_text(text: str) -> str:
    """RFC 2047 decoding of an unfolded header value; never raises."""
    return decode_text_checked(text)[0]


def decode_text_checked(text: str) -> tuple[str, bool]:
    """`decode_text`, and whether every encoded word decoded cleanly in its charset."""
    if "=?" not in text:
        return text, True
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    clean = True
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset, clean
        if pending:
            decoded, ok = decode_checked(b"".join(pending), pending_charset)
            out.append(decoded)
            clean = clean and ok
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
        data, ok = _word_bytes(m.group(2), m.group(3))
        clean = clean and ok
        pending.append(data)
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out), clean


def decode(value: bytes) -> str:
    """A raw header value, unfolded and RFC 2047-decoded; never raises."""
    return decode_checked_value(value)[0]


def decode_checked_value(value: bytes) -> tuple[str, bool]:
    """`decode`, and whether it needed no guess (raw 8-bit bytes in no known charset, an
    encoded word in an unknown charset or with broken base64 make it False)."""
    text, clean = _unfold(value)
    decoded, words_clean = decode_text_checked(text)
    return decoded, clean and words_clean


def decode_str(value: str) -> str:
    """Same, for a value the compat32 parser produced (8-bit bytes surrogate-escaped)."""
    return decode_str_checked(value)[0]


def decode_str_checked(value: str) -> tuple[str, bool]:
    """`decode_str`, and whether it decoded cleanly (`decode_checked_value`)."""
    try:
        raw = value.encode("utf-8", errors="surrogateescape")
    except UnicodeError:
        raw = value.encode("utf-8", errors="replace")
    return decode_checked_value(raw)


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
