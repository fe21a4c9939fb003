"""Removing Authentication-Results fields that claim the gateway's own authserv-id.

RFC 8601 section 5: a border MTA MUST delete (or rename) every Authentication-Results
field that claims to come from its own ADMD, since it cannot have added one before the
message arrived; otherwise a sender forges "spf=pass" in the gateway's name and
downstream filters and readers believe it. The gateway's authserv-id is the config's
`hostname`, the one `gateway.auth.authres.header_value` writes, and the removal
applies to every relayed message in both directions, whether or not a rule evaluated
sender authentication: the gateway's name must be trustworthy wherever its mail goes.

How a field is recognised (RFC 8601 2.2 and 2.5):
- its name is `Authentication-Results` in any case (white space before the colon is
  tolerated, as RFC 5322 4.5 obs-optional allows); `Authentication-Results-Foo` is
  another field;
- its value is unfolded and leading comments and white space (CFWS) are skipped; the
  authserv-id is the token (or quoted-string) that follows, compared with ours without
  regard to case. What comes after it (an `authres-version` such as `1`, the `;`) is
  not looked at, so `GW.Example 1; spf=pass` is ours too.
A field whose value cannot be read that way makes no claim and is kept.

Where the header block ends is not agreed on. Postfix's cleanup (and so the milter's
view of the message) ends it at the first line that is neither a field nor a folded
continuation; Dovecot (src/lib-mail/message-header-parser.c, "missing ':', assume the
whole line is name") and Python's parser read on to the first empty line. `forged`,
which numbers fields for the milter's SMFIR_CHGHEADER, counts as Postfix does (and
Postfix writes an empty line before such a line, so what it delivers is unambiguous:
tests/integration/test_authres_forgery.py);
`strip_forged`, which makes the bytes the proxy relays, removes a claiming field
anywhere before the first empty line, so that no reader downstream (IMAP clients and
Sieve over the `maildir:` upstream served by Dovecot) finds one after a malformed
line. Everything else, every other field and every malformed line included, stays
byte for byte. Pure functions over bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

FIELD = "Authentication-Results"
_FIELD_KEY = FIELD.lower().encode("ascii")
# RFC 5322 field name (printable ASCII but ':'), optional obsolete white space, colon.
_FIELD_LINE = re.compile(rb"([!-9;-~]+)[ \t]*:")
# RFC 2045 token: what an authserv-id is when not a quoted-string (RFC 8601 2.2).
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


@dataclass(frozen=True)
class _Field:
    name: bytes  # as written, without white space before the colon
    value: bytes  # after the colon, folding and line ending included
    start: int  # offset of the name
    end: int  # offset just past the field's last line ending


def _fields(raw: bytes, *, past_malformed: bool = False) -> Iterator[_Field]:
    """The fields of the header block, in order. The block ends at the first empty line;
    without `past_malformed`, also at the first line that is neither a field nor a
    fold (Postfix's reading), which with it is skipped (Dovecot's)."""
    pos = 0
    current: tuple[bytes, int, int] | None = None  # name, value offset, start
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        stop = len(raw) if nl == -1 else nl + 1
        line = raw[pos:stop]
        if line[:1] in (b" ", b"\t"):
            pos = stop  # a folded line belongs to the field above it
            continue
        if current is not None:
            name, value_at, start = current
            yield _Field(name, raw[value_at:pos], start, pos)
            current = None
        match = _FIELD_LINE.match(line)
        if match is None:
            if past_malformed and line not in (b"\r\n", b"\n"):
                pos = stop  # kept; folds under it belong to no field either
                continue
            return  # the empty line, or a line that starts the body
        current = (match.group(1), pos + match.end(), pos)
        pos = stop
    if current is not None:
        name, value_at, start = current
        yield _Field(name, raw[value_at:pos], start, pos)


def _skip_cfws(text: str, i: int) -> int | None:
    """The index after white space and (nested) comments from `i`; None if a comment
    is left open."""
    depth = 0
    while i < len(text):
        ch = text[i]
        if depth and ch == "\\":
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif not depth and ch not in " \t\r\n":
            return i
        i += 1
    return None if depth else i


def authserv_id(value: bytes) -> str | None:
    """The authserv-id an Authentication-Results value claims, lower-cased; None when
    the value does not start with one (after comments and white space)."""
    # Unfolding removes only CRLF before white space; treating CR and LF as white
    # space while skipping CFWS comes to the same.
    text = value.decode("latin-1")
    i = _skip_cfws(text, 0)
    if i is None or i >= len(text):
        return None
    if text[i] == '"':
        out: list[str] = []
        i += 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                return "".join(out).lower()
            if ch not in "\r\n":
                out.append(ch)
            i += 1
        return None  # unterminated quoted-string
    token = _TOKEN.match(text, i)
    return token.group(0).lower() if token else None


def _claims(field: _Field, own: str) -> bool:
    return field.name.lower() == _FIELD_KEY and authserv_id(field.value) == own


def forged(raw: bytes, own_id: str) -> tuple[int, ...]:
    """Which Authentication-Results fields claim `own_id`: their 1-based numbers among
    the message's Authentication-Results fields (any case), in header order, as the
    milter's SMFIR_CHGHEADER counts them."""
    own = own_id.strip().lower()
    if not own:
        return ()
    numbers: list[int] = []
    n = 0
    for field in _fields(raw):
        if field.name.lower() == _FIELD_KEY:
            n += 1
            if authserv_id(field.value) == own:
                numbers.append(n)
    return tuple(numbers)


def strip_forged(raw: bytes, own_id: str) -> bytes:
    """`raw` without its Authentication-Results fields that claim `own_id`; `raw`
    itself (the same object) when it has none."""
    own = own_id.strip().lower()
    if not own:
        return raw
    drop = [f for f in _fields(raw, past_malformed=True) if _claims(f, own)]
    if not drop:
        return raw
    pieces: list[bytes] = []
    pos = 0
    for field in drop:
        pieces.append(raw[pos:field.start])
        pos = field.end
    pieces.append(raw[pos:])
    return b"".join(pieces)
