"""Inserting header fields into a raw message, and the line-level rules all transforms share.

Added fields go at the top of the header block (as trace fields do, so they read
as the gateway's own), one per rule, in rule order. A value is reduced to one
logical line (CR, LF and other control characters become spaces, so no rule or
message text can inject a header), RFC 2047-encoded when it is not ASCII, and
folded at spaces to keep lines under 78 characters. The message keeps the line
ending it arrived with (CRLF on the wire, LF in files).
"""

from __future__ import annotations

import base64
import re

# RFC 5322 field name: printable ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
# RFC 5322 2.1.1: lines SHOULD stay within 78 characters.
MAX_LINE = 78
# RFC 2047 2: an encoded word is at most 75 characters.
_MAX_WORD = 75
_WORD_OVERHEAD = len("=?UTF-8?B??=")


def line_ending(raw: bytes) -> bytes:
    """The message's line ending: that of its first line (CRLF when it has none)."""
    nl = raw.find(b"\n")
    if nl == -1:
        return b"\r\n"
    return b"\r\n" if nl > 0 and raw[nl - 1:nl] == b"\r" else b"\n"


def one_line(text: str) -> str:
    """`text` as one safe header line: control characters (CR, LF...) become spaces."""
    cleaned = "".join(ch if ch.isprintable() or ch == "\t" else " " for ch in text)
    return " ".join(cleaned.split())


def encoded_words(text: str, first_room: int) -> list[str]:
    """`text` as RFC 2047 UTF-8 "B" words; the first fits in `first_room` characters.

    Words never split a UTF-8 sequence (RFC 2047 5), and each is at most 75 long.
    """
    words: list[str] = []
    room = max(min(first_room, _MAX_WORD), _WORD_OVERHEAD + 8)
    current = b""
    for ch in text:
        data = ch.encode("utf-8")
        candidate = current + data
        if current and _WORD_OVERHEAD + 4 * ((len(candidate) + 2) // 3) > room:
            words.append(_b_word(current))
            current = data
            room = _MAX_WORD
        else:
            current = candidate
    if current or not words:
        words.append(_b_word(current))
    return words


def _b_word(data: bytes) -> str:
    return "=?UTF-8?B?" + base64.b64encode(data).decode("ascii") + "?="


def fold(name: str, words: list[str], eol: bytes, *, sep: str = " ") -> bytes:
    """`name: w1 w2 ...` folded before a word when the line would pass 78 characters."""
    lines: list[str] = []
    line = f"{name}:"
    for i, word in enumerate(words):
        piece = (" " if i == 0 else sep) + word
        if i > 0 and len(line) + len(piece) > MAX_LINE:
            lines.append(line)
            line = " " + word
        else:
            line += piece
    lines.append(line)
    return eol.join(x.encode("ascii") for x in lines) + eol


def render_field(name: str, value: str, eol: bytes) -> bytes:
    """One header field, sanitised and folded; non-ASCII values as encoded words."""
    if not _FIELD_NAME.match(name):
        # The rule loader refuses such names; reaching here is a bug, and failing
        # (the message is tempfailed) is safer than writing a malformed header.
        raise ValueError(f"invalid header field name {name!r}")
    value = one_line(value)
    if value.isascii() and "=?" not in value:
        return fold(name, value.split(" ") if value else [""], eol)
    return fold(name, encoded_words(value, MAX_LINE - len(name) - 2), eol)


def add_headers(raw: bytes, fields: tuple[tuple[str, str], ...]) -> bytes:
    """`raw` with `fields` inserted, in order, at the top of the header block."""
    if not fields:
        return raw
    eol = line_ending(raw)
    block = b"".join(render_field(name, value, eol) for name, value in fields)
    return block + raw
