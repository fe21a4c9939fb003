"""Reading a message while it arrives: what its inspection can be spared after the final dot.

The inspection of a message starts at its final dot (RFC 5321 4.1.1.4: only then
is it whole), and for a large attachment most of that time went into two scans
of bytes that had long arrived: the count of MIME delimiter lines that bounds the
part count (`mime.too_many_delimiters`) and base64 decoding. `Prescan` is fed the
message a piece at a time as the front end receives it (`feed`, in order, every
byte once) and does both on the way:

- the delimiter count's inputs: the number of `\\n--` and every `boundary=`
  parameter value (a superset of what `mime._boundaries_and_lines` finds, which
  keeps `too_many_delimiters` exact: it only uses them as an upper bound);
- the parts of a multipart message (RFC 2046 5.1.1), nested ones too: each part's
  header block is parsed by the same code as the final parse (`mime.header_block`);
  a multipart part opens a level (its delimiter joins the ones searched for, and a
  delimiter of an enclosing level closes it, as the final parse splits the outer body
  first), a message/* part's header block comes next (RFC 2046 5.2.1); the content of
  a leaf part in base64 is decoded as its lines arrive (`transfer.Base64Stream`),
  written to a `Sink` (the front end's file beside the spool file), and recorded as a
  `Part`: its span in the message and where its decoded bytes are;
- text/plain leaves (and a message that is one), in an identity transfer encoding or
  quoted-printable (`transfer.QuotedPrintableStream`), searched a run of lines at a
  time (gateway.message.textscan) and recorded as a `Text`.

Nothing here decides anything, and nothing is trusted: the inspection uses a part's
decoded bytes only for a leaf of the final parse whose span is exactly the recorded
one in the very message bytes (`mime.Decoded`), so a part the final parse reads
differently (or through the feedparser) is decoded again, and the verdict is the one
of the ordinary path. Anything this reader does not model (a message that is one part
but text, digests, multiparts deeper than `MAX_LEVELS` or with a boundary longer than
`MAX_BOUNDARY`, enclosed messages in base64 or quoted-printable, damaged base64, a
header block past `MAX_HEADER`, a part header block past `MAX_PART_HEADER`) just gets
no entry; more than `MAX_PARTS` delimiters, a line past `MAX_LINE`, or a part the
byte-level parse leaves to the feedparser (message/delivery-status, a header block it
refuses: then no part has a span to serve) end the reading of the structure, and
anything unexpected (the stdlib raising on a hostile parameter) ends the prescan:
`feed` never raises, the message never fails because of it. Memory is bounded: the
unread tail of a line or header block, a window for `boundary=` values, the delimiters
of at most `MAX_LEVELS` open multiparts, and one entry per part up to `MAX_PARTS`.
Time is linear: the unread buffer keeps the line end before its first line (the anchor
the delimiter pattern starts from), every search runs in place, resumes where the last
one stopped and waits for a line feed among the bytes fed since (a long line fed a
byte at a time is looked through once), and whole lines that cannot hold a delimiter
go to the decoder straight from the piece.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.message import mime, textscan, transfer
from gateway.message.text import line_codec

Sink = Callable[[bytes], object]

MAX_HEADER = 1024 * 1024  # bytes of the top-level header block looked at
MAX_PART_HEADER = 64 * 1024  # bytes of a part's header block looked at
MAX_PARTS = 1000  # parts recorded: further ones are decoded after the dot as before
MAX_LINE = 1024 * 1024  # a line longer than this ends the prescan (decoded after the dot)
MAX_LEVELS = 16  # multiparts open at once: the parts of deeper ones are read after the dot
# Characters of a boundary followed (RFC 2046 5.1.1 allows 70): the open delimiters are
# one pattern, compiled again at each open and close, so their length is bounded.
MAX_BOUNDARY = 200
# A `boundary=` value is at most 200 characters after any blanks: one that starts
# within this many bytes of a piece's end waits for the next piece.
_BOUNDARY_REACH = 512
_MAX_BOUNDARY_WAIT = 64 * 1024  # blanks after `boundary` longer than this: no count given
_WORD = b"boundary"
_BLANKS = b" \t\n\r\x0b\x0c"  # what `\s` matches in a bytes pattern


@dataclass(frozen=True)
class Part:
    """A leaf part in base64: its content is raw[start:end] (as the final
    parse spans it); its decoded bytes are `length` bytes at `offset` in the sink."""

    start: int
    end: int
    offset: int
    length: int
    clean: bool


@dataclass(frozen=True)
class Text:
    """A text/plain leaf in an identity transfer encoding or quoted-printable
    (`quoted`), scanned on the way (gateway.message.textscan): its content is
    raw[start:end]; `charset` the parameter as its header block gives it."""

    start: int
    end: int
    charset: str | None
    scanned: textscan.Scanned
    quoted: bool = False


@dataclass(frozen=True)
class Prescanned:
    """What a `Prescan` found in the `size` bytes fed to it (picklable).

    `lines`: occurrences of `\\n--`; `boundaries`: lower-cased `boundary=` values,
    None when they could not be gathered (the inspection counts them itself)."""

    size: int
    lines: int
    boundaries: frozenset[bytes] | None
    parts: tuple[Part, ...]
    texts: tuple[Text, ...] = ()


class Prescan:
    """A message fed a piece at a time (module docstring). Sans-io but for `sink`,
    which gets the decoded bytes in order; `result()` once the last piece is fed."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._written = 0
        self._size = 0
        # delimiter count
        self._lines = 0
        self._last2 = b""
        self._window = b""  # the last bytes fed, from where `boundary` is still to be tried
        self._window_at = 0  # offset of _window[0] in the message
        self._tried_to = 0  # `boundary` occurrences starting before this were tried
        self._boundaries: set[bytes] | None = set()
        # structure
        self._state = "head"  # head, text, preamble, part_head, body, skip, done
        self._buf = bytearray()  # unread bytes from _buf_at (a line, a header block)
        self._buf_at = 0
        self._consumed = b""  # the last two bytes forgotten from _buf
        self._delimiters_open: list[bytes] = []  # `--b` of each open multipart, outermost first
        self._line: re.Pattern[bytes] | None = None  # their delimiter lines
        self._body_start = 0
        self._stream: transfer.Base64Stream | None = None
        self._part_offset = 0
        self._parts: list[Part] = []
        self._text: textscan.TextScan | None = None  # the text leaf being read
        self._text_charset: str | None = None
        self._qp: transfer.QuotedPrintableStream | None = None  # a quoted-printable text's
        self._texts: list[Text] = []
        self._resume = 0  # _buf searched up to here (the state's own search)
        # No line feed in the bytes of _buf from here on that the state has not searched
        # (the state's searches wait for one: `_waiting`).
        self._looked = 0
        self._delimiters = 0
        self._failed = False

    # -- feeding -------------------------------------------------------------------

    def feed(self, piece: bytes) -> None:
        """The next bytes of the message. Never raises: anything unexpected ends the
        prescan (`result` then offers nothing), never the message."""
        if not piece or self._failed:
            return
        try:
            self._size += len(piece)
            self._count(piece)
            if self._state == "text":
                self._content(piece)
                if self._text_broken:
                    self._give_up()  # nothing more to read on the way: fruitless
                return
            if self._state == "done":
                return
            if self._state in ("preamble", "body", "skip") and self._content_lines(piece):
                return
            self._buf += piece
            self._advance()
        except Exception:  # a bug or a stdlib surprise on hostile input: fail safe
            self._failed = True
            self._give_up()

    def _content_lines(self, piece: bytes) -> bool:
        """The common case without copying the piece into _buf: no line of it can be
        a delimiter line (none starts with `--`), so its whole lines are content.
        False, nothing done, when one may be: the general path reads it."""
        end = piece.rfind(b"\n") + 1
        if end == 0:
            if len(self._buf) + len(piece) > MAX_LINE:
                self._give_up()  # a line this long is no MIME we read on the way
                return True
            return False
        first = bytes(self._buf[1:3]) + piece[:2]
        if first.startswith(b"--") or piece.find(b"\n--", 0, end) >= 0:
            return False
        if self._state == "body":
            lines = bytes(self._buf[1:]) + piece[:end] if len(self._buf) > 1 else piece[:end]
            self._content(lines)
        # The piece's last line end is the new anchor; what precedes it is forgotten.
        gone = bytes(self._buf[-2:]) + piece[max(0, end - 3):end - 1]
        self._consumed = (self._consumed + gone)[-2:]
        self._buf_at += len(self._buf) + end - 1
        self._buf = bytearray(piece[end - 1:])
        self._resume = 0
        self._looked = len(self._buf)
        return True

    @property
    def fruitless(self) -> bool:
        """Nothing fed from here on can be of use: the structure is read no more (not
        a multipart nor a text we read, or given up) and no part or text was recorded,
        so the inspection would take nothing from `result` (a count of delimiters
        serves only with parts)."""
        return (self._failed or self._state == "done") and not self._parts \
            and not self._texts

    def result(self) -> Prescanned:
        """What was found; the message ends here (a part still open gets no entry)."""
        if self._failed:
            return Prescanned(self._size, self._lines, None, ())
        try:
            if self._boundaries is not None:
                self._try_boundaries(final=True)
            if self._state == "text":
                # The body of a message that is one text: it runs to the end.
                self._end_text(self._body_start, self._size, 0)
        except Exception:
            return Prescanned(self._size, self._lines, None, ())
        return Prescanned(self._size, self._lines,
                          None if self._boundaries is None else frozenset(self._boundaries),
                          tuple(self._parts), tuple(self._texts))

    # -- the delimiter count -------------------------------------------------------

    def _count(self, piece: bytes) -> None:
        # A `\n--` starting in the last two bytes of the previous piece is counted here.
        edge = self._last2 + piece[:2]
        self._lines += piece.count(b"\n--") + sum(
            1 for k in range(len(self._last2)) if edge[k:k + 3] == b"\n--")
        self._last2 = (self._last2 + piece[-2:])[-2:]
        if self._boundaries is None:
            return
        edge = self._window + piece[:len(_WORD) - 1]
        if len(self._window) < len(_WORD) and _WORD not in edge.lower() \
                and _WORD not in piece.lower():
            # Nothing to try: keep only what may begin a word across the next edge.
            end = self._window_at + len(self._window) + len(piece)
            self._window = (self._window + piece[-(len(_WORD) - 1):])[-(len(_WORD) - 1):]
            self._window_at = end - len(self._window)
            self._tried_to = self._window_at
            return
        self._window += piece
        self._try_boundaries(final=False)

    def _try_boundaries(self, *, final: bool) -> None:
        assert self._boundaries is not None
        window = self._window
        low = window.lower()
        at = low.find(_WORD, max(0, self._tried_to - self._window_at))
        keep_from = max(0, len(window) - len(_WORD) + 1)
        while at >= 0:
            found = self._boundary_at(window, at, final=final)
            if found is _WAIT:
                keep_from = at
                break
            if isinstance(found, bytes):
                self._boundaries.add(found)
            at = low.find(_WORD, at + 1)
        # Occurrences from keep_from on are tried again: a WAIT, or a word not yet whole.
        self._tried_to = self._window_at + keep_from
        if not final:
            if len(window) - keep_from > _MAX_BOUNDARY_WAIT:
                self._boundaries = None  # hostile blanks: the inspection counts alone
                self._window = b""
                return
            self._window = window[keep_from:]
            self._window_at += keep_from

    @staticmethod
    def _boundary_at(window: bytes, at: int, *, final: bool) -> bytes | object | None:
        """The value `mime._BOUNDARY_PARAM` takes at `at` in the whole message: bytes,
        None (no match), or _WAIT when bytes not yet fed could change the answer."""
        found = mime.BOUNDARY_PARAM_ANY_CASE.match(window, at)
        if found is not None and (final or found.end() < len(window)):
            return found.group(1).lower()
        if final:
            return None
        if found is not None:
            return _WAIT  # the value may go on in the next piece
        rest = window[at + len(_WORD):].lstrip(_BLANKS)
        if not rest:
            return _WAIT
        if not rest.startswith(b"="):
            return None
        rest = rest[1:].lstrip(_BLANKS)
        if rest.startswith(b'"'):
            rest = rest[1:]
        return _WAIT if not rest else None

    # -- the structure -------------------------------------------------------------

    def _give_up(self) -> None:
        self._state = "done"
        self._buf = bytearray()
        self._stream = None
        self._text = None
        self._qp = None
        self._delimiters_open = []

    def _advance(self) -> None:
        # Bounded: every turn consumes bytes of _buf or leaves for more input.
        for _ in range(len(self._buf) + 2):
            before = (self._state, self._buf_at)
            if self._state == "head":
                self._head()
            elif self._state == "part_head":
                self._part_head()
            elif self._state in ("preamble", "body", "skip"):
                self._delimited()
            if self._state == "done" or (self._state, self._buf_at) == before:
                return

    def _line_start(self) -> int:
        """Where to search again in _buf: the start of the last line not yet whole
        when _buf was last searched (searches resume, never start over: linear)."""
        return self._buf.rfind(b"\n", 0, max(0, self._resume - 1)) + 1

    def _waiting(self) -> bool:
        """No line feed among the bytes fed since the state last searched _buf: nothing
        it looks for (a blank line, a delimiter line) can have completed. Only those
        bytes are looked at, so a long line fed in small pieces stays linear."""
        if self._buf.find(b"\n", self._looked) >= 0:
            return False
        self._looked = len(self._buf)
        return True

    def _head(self) -> None:
        if self._waiting():
            if len(self._buf) > MAX_HEADER:
                self._give_up()
            return
        blank = mime.BLANK_LINE.search(self._buf, self._line_start())
        if blank is None:
            self._resume = self._looked = len(self._buf)
            if len(self._buf) > MAX_HEADER:
                self._give_up()
            return
        block = bytes(self._buf[:blank.end()])
        try:
            part, body = mime.header_block(block, 0, len(block))
            delimiter = self._opens(part)
        except Exception:  # Unmodelled, or the stdlib on a hostile parameter
            self._give_up()
            return
        if body == len(block) and part.get_content_maintype() != "multipart" \
                and self._read_text(part):
            # A message that is one text: the rest of it is that text.
            self._state = "text"
            self._body_start = self._buf_at + body
            rest = bytes(self._buf[body:])
            self._buf = bytearray()
            self._content(rest)
            if self._text_broken:
                self._give_up()
            return
        if body != len(block) or delimiter is None:
            self._give_up()
            return
        self._open(delimiter)
        self._consume(body - 1)  # the blank line's \n stays: the anchor
        self._state = "preamble"

    def _opens(self, part: email.message.Message) -> bytes | None:
        """The delimiter of a multipart read on the way (RFC 2046 5.1.1), None for
        anything else (a leaf, a digest, no boundary, too deep). Raises on a boundary
        the final parse leaves to the feedparser."""
        if part.get_content_maintype() != "multipart" \
                or part.get_content_type() == "multipart/digest" \
                or len(self._delimiters_open) >= MAX_LEVELS:
            return None
        delimiter = mime.delimiter(part)
        return None if delimiter is None or len(delimiter) > 2 + MAX_BOUNDARY else delimiter

    def _open(self, delimiter: bytes) -> None:
        self._delimiters_open.append(delimiter)
        self._line = mime.delimiter_lines(self._delimiters_open)

    def _close_from(self, level: int) -> None:
        """The multiparts from `level` inward end."""
        del self._delimiters_open[level:]
        self._line = mime.delimiter_lines(self._delimiters_open) \
            if self._delimiters_open else None

    @property
    def _text_broken(self) -> bool:
        return self._text is None or self._text.broken \
            or (self._qp is not None and self._qp.broken)

    def _consume(self, upto: int) -> None:
        """Forget _buf before `upto` (an offset into _buf); _buf[upto] is a line end,
        the anchor the delimiter pattern starts from."""
        if upto:
            self._consumed = (self._consumed + bytes(self._buf[max(0, upto - 2):upto]))[-2:]
        del self._buf[:upto]
        self._buf_at += upto
        self._resume = 0
        self._looked = 1  # _buf[0], the anchor, is a line end: the rest is unsearched

    def _delimited(self) -> None:
        """Read whole lines up to the next delimiter line of any open multipart: feed
        them to the part's decoder or text scan when in a part read on the way; at the
        delimiter, end the part, close the multiparts it ends, and read the next part's
        header block (or skip to the enclosing delimiter after a closing one). _buf[0]
        is the line end before the lines to read."""
        assert self._line is not None
        if self._waiting():
            return
        last = self._buf.rfind(b"\n")
        if last <= 0:
            return
        found = self._line.search(self._buf, max(0, self._resume - 1), last + 1)
        content = self._state == "body"
        if found is None:
            if content:
                self._content(bytes(self._buf[1:last + 1]))
            self._consume(last)
            self._looked = len(self._buf)  # the anchor and the last line, not yet whole
            return
        here = self._buf_at + found.start()  # the \n before the delimiter line
        if content:
            self._content(bytes(self._buf[1:found.start() + 1]))
            self._end_part(here)
        self._delimiters += 1
        # RFC 2046 5.1.1: a delimiter of an enclosing multipart ends the ones inside
        # it (the final parse splits the outer body first); a closing one ends its own.
        # The closing delimiter first (in a preamble): no parts, as the final parse
        # reads it; the rest up to the enclosing delimiter is skipped.
        level = next(k for k in range(len(self._delimiters_open))
                     if found.group(k + 1) is not None)
        closing = found.group(len(self._delimiters_open) + 1) is not None
        self._close_from(level + 1 if not closing else level)
        if not self._delimiters_open or self._delimiters > MAX_PARTS:
            self._give_up()  # the end, or more parts than are worth reading on the way
            return
        self._consume(found.end() - 1)
        self._stream = None
        self._text = None
        self._qp = None
        self._state = "skip" if closing else "part_head"

    def _part_head(self) -> None:
        assert self._line is not None
        if self._waiting():
            if len(self._buf) > MAX_PART_HEADER:
                self._state = "skip"
                self._resume = self._looked = 0
            return
        last = self._buf.rfind(b"\n")
        start = max(1, self._line_start())
        blank = mime.BLANK_LINE.search(self._buf, start, last + 1)
        delimiter = self._line.search(self._buf, start - 1, last + 1)
        if delimiter is not None and (blank is None or delimiter.start() < blank.start()):
            self._state = "skip"  # a part with no body: its header block is all it has
            self._resume = self._looked = 0
            return
        if blank is None:
            self._resume = last + 1
            self._looked = len(self._buf)
            if len(self._buf) > MAX_PART_HEADER:
                self._state = "skip"
                self._resume = self._looked = 0
            return
        block = bytes(self._buf[1:blank.end()])
        kind = ""
        try:
            part, body = mime.header_block(block, 0, len(block))
            kind = part.get_content_maintype()
            opened = self._opens(part) if kind == "multipart" and body == len(block) else None
        except Exception:
            # Unmodelled, or the stdlib on a hostile header: the final parse meets the
            # same bytes and leaves the whole message to the feedparser, whose parts
            # have no span: nothing read on the way could serve.
            self._give_up()
            return
        if part.get_content_type() == "message/delivery-status":
            self._give_up()  # the byte-level parse leaves such a message to the feedparser
            return
        room = len(self._parts) + len(self._texts) < MAX_PARTS
        self._state = "skip"
        if body != len(block):
            pass  # a line that is no header ends the block: the final parse's business
        elif opened is not None:
            self._open(opened)
            self._state = "preamble"
        elif kind == "message":
            # An enclosed message: its header block next. Not one in base64 or
            # quoted-printable: the inspection parses its decoded bytes anew
            # (`mime._decode_enclosed`), which hold no span of the message's.
            if mime.transfer_encoding(part) in transfer.IDENTITY:
                self._state = "part_head"
        elif mime.transfer_encoding(part) == "base64" and room:
            self._stream = transfer.Base64Stream()
            self._part_offset = self._written
            self._state = "body"
        elif room and self._read_text(part):
            self._state = "body"
        self._consume(blank.end() - 1)
        self._body_start = self._buf_at + 1

    def _read_text(self, part: email.message.Message) -> bool:
        """Start reading a text leaf as it comes (gateway.message.textscan), if it is
        one whose scan can be done so: text/plain, its content its bytes or
        quoted-printable (decoded a run of lines at a time), a charset read a run of
        lines at a time."""
        encoding = mime.transfer_encoding(part)
        if part.get_content_type() != "text/plain" \
                or (encoding not in transfer.IDENTITY and encoding != _QP):
            return False
        charset = mime.params(part).get("charset")
        codec = line_codec(charset)
        if codec is None:
            return False
        self._text = textscan.TextScan(codec)
        self._text_charset = charset
        self._qp = transfer.QuotedPrintableStream() if encoding == _QP else None
        return True

    def _content(self, data: bytes) -> None:
        """Whole lines of the current part's content."""
        if self._stream is not None:
            self._emit(self._stream.feed(data))
        elif self._text is not None:
            self._text.feed(data if self._qp is None else self._qp.feed(data))

    def _end_text(self, start: int, end: int, drop: int) -> None:
        scan, self._text = self._text, None
        qp, self._qp = self._qp, None
        if scan is None or (qp is not None and qp.broken):
            return
        if qp is not None:
            # The line end that is not the text's goes before decoding, not after.
            scan.feed(qp.end(drop))
            drop = 0
        scanned = scan.end(drop)
        if scanned is not None:
            self._texts.append(Text(start, end, self._text_charset, scanned,
                                    quoted=qp is not None))

    def _emit(self, data: bytes) -> None:
        if data:
            self._sink(data)
            self._written += len(data)

    def _end_part(self, newline: int) -> None:
        """The part whose content ends at the line end `newline` (offset of its \\n)."""
        stream, self._stream = self._stream, None
        if stream is not None and stream.broken:
            return
        # RFC 2046 5.1.1: the CRLF before a delimiter belongs to the delimiter; the
        # final parse strips it as `mime._strip_eol` does. Pieces here are CRLF lines.
        start, end = self._body_start, newline + 1
        if end - start >= 2 and self._byte(newline - 1) == b"\r":
            end -= 2
        elif end > start:
            end -= 1
        else:
            self._text = None
            self._qp = None
            return
        if stream is None:
            self._end_text(start, end, newline + 1 - end)
            return
        last, clean = stream.end()
        self._emit(last)
        self._parts.append(Part(self._body_start, end, self._part_offset,
                                self._written - self._part_offset, clean))

    def _byte(self, offset: int) -> bytes:
        at = offset - self._buf_at
        if at < 0:  # consumed: only the last two bytes are kept
            return self._consumed[at:len(self._consumed) + at + 1] if -at <= 2 else b""
        return bytes(self._buf[at:at + 1])


_WAIT = object()
_QP = "quoted-printable"


class Known:
    """The prescanned parts of one message for `mime.Decoded`: a part's decoded bytes
    when the final parse spans it exactly as recorded in these very bytes, read back
    with `read(offset, length)` (the inspection process reads the front end's file);
    and for the view (`text`), what a text leaf's scan found, on the same terms."""

    def __init__(self, raw: bytes, found: Prescanned,
                 read: Callable[[int, int], bytes]) -> None:
        self._raw = raw
        whole = found.size == len(raw)
        self._parts = {(p.start, p.end): p for p in found.parts} if whole else {}
        self._texts = {(t.start, t.end): t for t in found.texts} if whole else {}
        self._read = read
        self.counted: tuple[int, frozenset[bytes]] | None = (
            (found.lines, found.boundaries)
            if whole and found.boundaries is not None else None)
        self.used = 0  # parts served: what tests and the bench look at
        self.scanned = 0  # texts served

    def __call__(self, part: email.message.Message) -> tuple[bytes, bool] | None:
        span = mime.wire_span(part)
        if span is None or span[0] is not self._raw:
            return None
        found = self._parts.get((span[1], span[2]))
        if found is None or mime.transfer_encoding(part) != "base64":
            return None
        data = self._read(found.offset, found.length)
        if len(data) != found.length:
            return None  # the file lost bytes: decode the part here
        self.used += 1
        return data, found.clean

    def text(self, part: email.message.Message) -> textscan.Scanned | None:
        """What the scan of a text leaf found while it arrived, when the final parse
        spans it exactly as recorded and reads it the same way (text/plain, the same
        charset parameter, the same kind of transfer encoding: identity, or
        quoted-printable when it was read so); None: scan it here."""
        span = mime.wire_span(part)
        if span is None or span[0] is not self._raw:
            return None
        found = self._texts.get((span[1], span[2]))
        if found is None or part.get_content_type() != "text/plain" \
                or mime.params(part).get("charset") != found.charset:
            return None
        encoding = mime.transfer_encoding(part)
        if (encoding == _QP) != found.quoted or \
                (not found.quoted and encoding not in transfer.IDENTITY):
            return None
        self.scanned += 1
        return found.scanned
