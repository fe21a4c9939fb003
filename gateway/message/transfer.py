"""Content-Transfer-Encoding decoding: the one place a part's content is decoded.

Every reader of a part's bytes (bodies, attachments, enclosed messages, the
uuencoded files cut out of text parts) goes through `decode`, so the filter sees
what the most lenient mail client shows. A reader that stops earlier than the
recipient's client is a hiding place: compat32 stops base64 at the first `=`
padding, so a second base64 stream glued after a padded first line went unread.

- The encoding name (RFC 2045 6.1) is a token: trimmed, comments dropped,
  compared case-insensitively (`Base64 ` is base64).
- Identity encodings (`7bit`, `8bit`, `binary`, none; RFC 2045 6.2): the bytes.
- base64 (RFC 2045 6.8): characters outside the alphabet are skipped, line
  lengths do not matter, and `=` padding ends one stream, not the part: decoding
  goes on with the next quantum after it, as Thunderbird and MimeKit do. A
  dangling single character (no byte can come of it) is dropped; a missing final
  padding is tolerated.
- quoted-printable (RFC 2045 6.7): trailing whitespace on a line is transport
  padding and removed (rule 3), so `=` followed by spaces before the line end is
  still a soft line break; `=XY` that is not a hex escape is kept literally
  (RFC 2045 6.7, note 2, the robust reading); a line end may be CRLF, LF or CR.
- `x-uuencode` / `uuencode` / `x-uue` / `uue` (no RFC: the Unix uuencode
  format, `begin MODE NAME`, lines whose first character says how many bytes
  the line holds, `end`): the first block.
- Any other encoding (RFC 2045 6.4: an unrecognised encoding must be treated as
  opaque): the bytes as they are.

`decode` also says whether the encoding was clean. Damaged data (junk in base64,
padding in the middle, a bad quoted-printable escape, a broken uuencoded line,
an unknown encoding) is decoded all the same, but the bytes may not be what the
sender's program meant: callers treat facts that need exact bytes (is this
attachment encrypted?) as unknown. For base64 `clean` is exactly
`not base64_damaged(data)`, found in the same pass that decodes: the view's
`bad_base64` defect comes from the one decode every reader shares, not from a
second pass over the payload.

`decode` takes the encoded content as bytes or as a memoryview of the raw
message (the byte-level MIME parse hands out slices without copying them):
base64, the bulk of any large message, is checked a slice at a time and
decoded straight from the view, so decoding a 25 MB attachment costs its
decoded bytes and no second copy of the encoded text.

`uu_blocks` finds the uuencoded files inside a text (RFC-less, the classic
format above, and `begin-base64` ... `====`), bounded and in one linear pass:
mail programs show them as attachments.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

IDENTITY = frozenset({"", "7bit", "8bit", "binary"})
UUENCODE = frozenset({"x-uuencode", "uuencode", "x-uue", "uue"})

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_WHITESPACE = b" \t\r\n\v\f"
# bytes.translate(None, delete) tables: C speed on 25 MB attachments.
_NOT_ALPHABET = bytes(b for b in range(256) if b not in _ALPHABET)
_NOT_ALPHABET_OR_PAD = bytes(b for b in _NOT_ALPHABET if b != ord("="))
_WELL_FORMED = _ALPHABET + _WHITESPACE + b"="
_PADS = (b"", b"", b"==", b"=")  # by the stream's length modulo 4
_a2b = binascii.a2b_base64  # non-strict by default: junk is skipped
_COMMENT = re.compile(r"\([^()]*\)")


def encoding_name(value: object) -> str:
    """A Content-Transfer-Encoding value as a token: `Base64 ` -> `base64`."""
    text = "" if value is None else str(value)
    if "(" in text:
        text = _COMMENT.sub(" ", text)
    return text.strip().strip('"').strip().lower()


def decode(data: bytes | memoryview, encoding: str) -> tuple[bytes, bool]:
    """(decoded bytes, clean) for content in the named transfer encoding (`encoding_name`)."""
    if encoding in IDENTITY:
        return bytes(data), True
    if encoding == "base64":
        return decode_base64(data)
    if isinstance(data, memoryview):
        data = data.tobytes()  # text-sized in practice; the decoders below want bytes
    if encoding == "quoted-printable":
        return decode_quoted_printable(data)
    if encoding in UUENCODE:
        return decode_uu(data)
    return data, False


# -- base64 --------------------------------------------------------------------------

def _stream(alpha: bytes) -> tuple[bytes, bool]:
    """One base64 stream of alphabet characters only; clean unless a character dangles."""
    rest = len(alpha) % 4
    if rest == 1:
        # Six bits make no byte: the character is dropped, as every client does.
        return _a2b(alpha[:-1]), False
    return _a2b(alpha + _PADS[rest]), True


_SCAN_CHUNK = 1 << 20  # bytes checked at a time: a bounded copy, whatever the part's size


def _base64_scan(data: bytes | memoryview) -> tuple[bool, int, bool]:
    """(junk, offset of the first `=` or -1, alphabet after it), one slice at a time:
    what `decode_base64` and `base64_damaged` judge, without copying the whole text."""
    view = memoryview(data)
    junk = False
    pad = -1
    after_pad = False
    for start in range(0, len(view), _SCAN_CHUNK):
        chunk = view[start:start + _SCAN_CHUNK].tobytes()
        junk = junk or bool(chunk.translate(None, _WELL_FORMED))
        if pad < 0:
            at = chunk.find(b"=")
            if at >= 0:
                pad = start + at
                after_pad = bool(chunk[at:].translate(None, _NOT_ALPHABET))
        elif not after_pad:
            after_pad = bool(chunk.translate(None, _NOT_ALPHABET))
    return junk, pad, after_pad


def decode_base64(data: bytes | memoryview) -> tuple[bytes, bool]:
    """Lenient base64 (module docstring); clean is `not base64_damaged(data)`."""
    junk, pad, after_pad = _base64_scan(data)
    if pad < 0 or not after_pad:
        # Padding, if any, only at the end: one stream, binascii at full speed (it
        # reads a memoryview in place).
        try:
            return binascii.a2b_base64(data, strict_mode=False), not junk
        except binascii.Error:
            out, whole = _stream(bytes(data).translate(None, _NOT_ALPHABET))
            return out, whole and not junk
    # Padding in the middle: several streams glued together. binascii stops at the
    # first one's padding; the recipient's client reads on. One call per stream: on
    # hostile input (`AA==` repeated) that is about 2 s for 25 MB, linear.
    streams = bytes(data).translate(None, _NOT_ALPHABET_OR_PAD).split(b"=")
    return b"".join([_a2b(s + _PADS[len(s) & 3]) if len(s) & 3 != 1 else _a2b(s[:-1])
                     for s in streams if s]), False


class Base64Stream:
    """`decode_base64` fed a piece at a time, for content that arrives in pieces
    (gateway.message.prescan): the decoded bytes of each piece as it comes, and at
    the end the same (bytes, clean) `decode_base64` gives for the whole.

    Only well-formed base64 is decoded on the way: the alphabet, whitespace, and
    `=` padding at the end. Whole quanta are decoded as they complete (binascii
    reads quanta on their own, so the pieces' outputs joined are the whole's);
    what follows the last whole quantum is decoded at the end by `decode_base64`
    itself. Anything else (junk, data after padding) makes the stream `broken`:
    it gives up and the caller decodes the whole part the ordinary way."""

    def __init__(self) -> None:
        self.broken = False
        self._carry = b""  # alphabet characters of a quantum not yet complete
        self._padding = b""  # `=` seen: nothing but more of it may follow

    def feed(self, data: bytes | memoryview) -> bytes:
        """Decoded bytes of the whole quanta completed by `data` (b"" once broken)."""
        if self.broken:
            return b""
        text = bytes(data).translate(None, _WHITESPACE)
        if not text:
            return b""
        if self._padding or text.translate(None, _ALPHABET):
            return self._feed_odd(text)
        start = 0
        head = b""
        if self._carry:
            start = 4 - len(self._carry)
            if len(text) < start:
                self._carry += text
                return b""
            head = _a2b(self._carry + text[:start])
        whole = start + (len(text) - start) // 4 * 4
        self._carry = text[whole:]
        # binascii reads the view in place: no copy of the piece's quanta.
        body = _a2b(memoryview(text)[start:whole]) if whole > start else b""
        return head + body if head else body

    def _feed_odd(self, text: bytes) -> bytes:
        """`feed` of text holding `=` or junk, or after padding: only the final
        padding is well-formed; anything else breaks the stream."""
        pad = text.find(b"=")
        if self._padding:
            if text.strip(b"="):
                self.broken = True  # data after padding: several streams, decode_base64's
                return b""
            self._padding += text
            return b""
        if pad < 0 or text[pad:].strip(b"=") or text[:pad].translate(None, _ALPHABET):
            self.broken = True
            return b""
        self._padding = text[pad:]
        text = self._carry + text[:pad]
        whole = len(text) - len(text) % 4
        self._carry = text[whole:]
        return _a2b(text[:whole]) if whole else b""

    def end(self) -> tuple[bytes, bool]:
        """(the last decoded bytes, clean): `decode_base64` of what the quanta left.
        Not to be called on a broken stream."""
        if self.broken:
            raise ValueError("a broken Base64Stream has no end")
        if not self._carry and not self._padding:
            return b"", True
        return decode_base64(self._carry + self._padding)


def base64_damaged(data: bytes) -> bool:
    """Base64 text with characters outside the alphabet, data after padding, or a
    dangling character: what `decode_base64` calls not clean."""
    if data.translate(None, _WELL_FORMED):
        return True
    pad = data.find(b"=")
    if pad >= 0 and data[pad:].translate(None, _NOT_ALPHABET):
        return True
    return len(data.translate(None, _NOT_ALPHABET)) % 4 == 1


# -- quoted-printable ------------------------------------------------------------------

# The look-behind makes each run of blanks start one match only: linear on hostile
# input (a million spaces that never reach a line end).
_TRAILING_BLANKS = re.compile(rb"(?<![ \t])[ \t]++(?=\r|\n|\Z)")
_SOFT_BREAK = re.compile(rb"=(?:\r\n|\n|\r)")
_BAD_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2})")


def _has_trailing_blanks(data: bytes) -> bool:
    # memchr-speed look before the regex, which tries every blank of the text.
    return data.endswith((b" ", b"\t")) or any(
        end in data for end in (b" \n", b"\t\n", b" \r", b"\t\r"))


def decode_quoted_printable(data: bytes) -> tuple[bytes, bool]:
    """Lenient quoted-printable (module docstring); clean when every `=` is an escape."""
    text = _TRAILING_BLANKS.sub(b"", data) if _has_trailing_blanks(data) else data
    if b"=" not in text:
        return text, True
    # binascii.a2b_qp drops everything up to the next LF after `=` and a bare CR;
    # soft breaks are removed here so that it never sees one.
    text = _SOFT_BREAK.sub(b"", text)
    bad = _BAD_ESCAPE.search(text)
    clean = bad is None or (bad.start() == len(text) - 1 and text.endswith(b"="))
    return binascii.a2b_qp(text), clean


_QP_LOOK_BACK = 256


class QuotedPrintableStream:
    """`decode_quoted_printable` fed a piece at a time, for content that arrives in
    pieces (gateway.message.prescan): decoded bytes as lines complete, and at `end`
    the rest; joined, they are the whole's decoded bytes (the `clean` flag is not
    kept: the reader of the whole part reports it).

    The content is cut only after a line feed whose line, less its line end and
    trailing blanks (and any line ends and blanks before them), does not end in `=`:
    no soft line break, trailing-blank run or escape spans such a cut, and
    binascii's scan never reads past it, so the pieces decode to the whole's bytes
    (tests/fuzz/test_fuzz_prescan.py). The last line always waits for `end`, which
    is told how many bytes of the content are not the part's (RFC 2046 5.1.1: the
    line end before a delimiter). Content with no such cut for MAX_HELD bytes makes
    the stream `broken`: the caller decodes the whole part the ordinary way."""

    MAX_HELD = 1024 * 1024  # bytes held waiting for a cut

    def __init__(self) -> None:
        self.broken = False
        self._held = bytearray()
        self._tried = 0  # line feeds before this offset in _held were no cut

    def feed(self, data: bytes) -> bytes:
        """Decoded bytes of the lines `data` completes (b"" once broken)."""
        if self.broken or not data:
            return b""
        self._held += data
        # The last byte is never a cut: `end` may take the line end off.
        nl = self._held.rfind(b"\n", self._tried, len(self._held) - 1)
        out = b""
        while nl >= self._tried:
            if self._cut_after(nl):
                piece = bytes(self._held[:nl + 1])
                del self._held[:nl + 1]
                out = decode_quoted_printable(piece)[0]
                break
            nl = self._held.rfind(b"\n", self._tried, nl)
        # Every line feed held now but the last byte was tried: none is a cut.
        self._tried = max(0, len(self._held) - 1)
        if len(self._held) > self.MAX_HELD:
            self.broken = True
            self._held = bytearray()
            return b""
        return out

    def _cut_after(self, nl: int) -> bool:
        # A bounded look back keeps hostile input linear: a longer run of line ends
        # and blanks is taken for no cut (the text then waits for a later one).
        tail = bytes(self._held[max(0, nl - _QP_LOOK_BACK):nl]).rstrip(b" \t\r\n")
        return not tail.endswith(b"=") and (bool(tail) or nl <= _QP_LOOK_BACK)

    def end(self, drop: int = 0) -> bytes:
        """The rest decoded, once every byte is fed and the last `drop` bytes (0-2) are
        known not to be the content's. Not to be called on a broken stream."""
        if self.broken:
            raise ValueError("a broken QuotedPrintableStream has no end")
        rest = bytes(self._held[:len(self._held) - drop])
        self._held = bytearray()
        return decode_quoted_printable(rest)[0] if rest else b""


# -- uuencode ----------------------------------------------------------------------------

_UU_CHARS = bytes(range(32, 97))  # space to backquote: all a uuencoded line may hold
_BEGIN = re.compile(rb"(?m)^begin(-base64)?[ \t]+([0-7]{1,4})[ \t]+([^\r\n]*)")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)?")


@dataclass(frozen=True)
class UUBlock:
    """One uuencoded file found in a text: its name (raw bytes), content and extent."""

    name: bytes
    mode: int
    data: bytes
    clean: bool
    start: int
    end: int


def _uu_line(line: bytes) -> bytes | None:
    """The bytes of one uuencoded line, or None when it is not one."""
    if not line or line.translate(None, _UU_CHARS):
        return None
    count = (line[0] - 32) & 63
    need = (count * 4 + 2) // 3  # characters that carry the bytes
    # Encoders that strip trailing blanks leave a line a character or two short (a2b_uu
    # reads the missing ones as zero bits); some add a checksum character. Anything
    # further off is not a uuencoded line (prose after a `begin` line, say).
    if not need - 2 <= len(line) - 1 <= ((count + 2) // 3) * 4 + 2:
        return None
    try:
        return binascii.a2b_uu(line[:1 + need])
    except binascii.Error:
        return None


def _uu_body(data: bytes, pos: int) -> tuple[bytes, bool, int, int]:
    """Decode uuencoded lines from `pos`: (bytes, clean, data lines, end offset)."""
    out: list[bytes] = []
    lines = 0
    for m in _LINE.finditer(data, pos):
        raw = m.group()
        if not raw:
            break
        line = raw.rstrip(b"\r\n")
        if line.rstrip() == b"end":
            return b"".join(out), True, lines, m.end()
        if not line.strip():
            continue  # blank lines between the data and `end`
        got = _uu_line(line)
        if got is None:
            return b"".join(out), False, lines, m.start()
        out.append(got)
        lines += 1
    return b"".join(out), False, lines, len(data)


def _base64_body(data: bytes, pos: int) -> tuple[bytes, bool, int, int]:
    """`begin-base64` content from `pos` up to the `====` line."""
    start = pos
    lines = 0
    for m in _LINE.finditer(data, pos):
        raw = m.group()
        if not raw:
            break
        line = raw.strip()
        if line == b"====":
            got, clean = decode_base64(data[start:m.start()])
            return got, clean, lines, m.end()
        if line.translate(None, _ALPHABET + b"="):
            got, _clean = decode_base64(data[start:m.start()])
            return got, False, lines, m.start()
        lines += 1
    got, _clean = decode_base64(data[start:])
    return got, False, lines, len(data)


def uu_blocks(data: bytes, limit: int) -> list[UUBlock]:
    """The uuencoded files in a text, at most `limit` of them, in order.

    A `begin` line counts only when a data line follows it, so prose such as
    "begin 2025 ..." is not a file. One pass: each block resumes the search
    where it ended."""
    found: list[UUBlock] = []
    if b"begin" not in data or limit <= 0:
        return found
    pos = 0
    while len(found) < limit:
        m = _BEGIN.search(data, pos)
        if m is None:
            break
        name = m.group(3).strip()
        body = m.end() + (2 if data.startswith(b"\r\n", m.end()) else 1)
        decoder = _base64_body if m.group(1) else _uu_body
        got, clean, lines, end = decoder(data, body)
        if lines == 0 or not name:
            pos = m.end()
            continue
        found.append(UUBlock(name, int(m.group(2), 8), got, clean, m.start(), end))
        pos = max(end, m.end())
    return found


def decode_uu(data: bytes) -> tuple[bytes, bool]:
    """A part in a uuencode transfer encoding: its first block; without one, the bytes
    as they are (not clean)."""
    blocks = uu_blocks(data, 1)
    if not blocks:
        return data, False
    return blocks[0].data, blocks[0].clean
