"""Regressions from the red team of the nested prescan (gateway.message.prescan): work
that grew with the square of the input. Counted in searches, not timed: each search
below ran once per piece fed (or per open multipart, over its whole boundary) before."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from gateway.message import mime, prescan, textscan
from gateway.message.view import MessageView
from tests.unit.test_prescan_nested import HEAD, PDF, facts, multipart, read


class Counted:
    """A compiled pattern whose searches are counted."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self.searches = 0

    def search(self, *args: Any) -> re.Match[bytes] | None:
        self.searches += 1
        return self.pattern.search(*args)


def fed_by_the_byte(raw: bytes) -> prescan.Prescan:
    scan = prescan.Prescan(io.BytesIO().write)
    for at in range(len(raw)):
        scan.feed(raw[at:at + 1])
    return scan


def test_a_long_header_line_fed_a_byte_at_a_time_is_searched_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The blank-line search ran over the unfinished line at every piece: 80 KB in
    # one-byte pieces took 20 s.
    blank = Counted(mime.BLANK_LINE)
    monkeypatch.setattr(mime, "BLANK_LINE", blank)
    # Once per line end now (about 20,000 times before).
    raw = b"X-A: " + b"a" * 20000 + b"\r\n"
    fed_by_the_byte(raw)
    assert blank.searches <= raw.count(b"\n")
    # A part's header block, likewise.
    blank.searches = 0
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
           b"X-A: " + b"a" * 20000 + b"\r\n")
    fed_by_the_byte(raw)
    assert blank.searches <= raw.count(b"\n")


class CountingBuffer(bytearray):
    """A buffer that counts the bytes its `find` and `rfind` look through."""

    scanned = 0

    def rfind(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        stop = len(self) if end is None else end
        CountingBuffer.scanned += max(0, stop - start)
        return super().rfind(sub, start, stop)

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        stop = len(self) if end is None else end
        CountingBuffer.scanned += max(0, stop - start)
        return super().find(sub, start, stop)


def test_a_long_content_line_fed_a_byte_at_a_time_is_looked_through_once() -> None:
    # A part's content line not yet whole was looked through for its line end at
    # every piece (1 MB in one-byte pieces: 12.6 s).
    scan = prescan.Prescan(io.BytesIO().write)
    scan.feed(HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
              b"Content-Type: application/octet-stream\r\n\r\nx\r\n")
    scan._buf = CountingBuffer(scan._buf)
    CountingBuffer.scanned = 0
    line = b"a" * 50000
    for at in range(len(line)):
        scan.feed(line[at:at + 1])
    assert CountingBuffer.scanned <= 3 * len(line)


def test_a_text_s_long_line_is_looked_through_once() -> None:
    # Past 256 KB pending, the text scan looked for a line feed through all of it at
    # every piece (1 MB in one-byte pieces: 11 s).
    scan = textscan.TextScan("utf-8")
    scan._pending = CountingBuffer()
    CountingBuffer.scanned = 0
    line = b"a" * (textscan.MAX_LINE - 1000)
    for at in range(0, len(line), 16):
        scan.feed(line[at:at + 16])
    scan.feed(b"\nSULIT\n")
    assert CountingBuffer.scanned <= 3 * len(line)
    found = scan.end(0)
    assert found is not None and found.markings == ((2, "SULIT"),)


def test_a_boundary_past_max_boundary_is_not_followed() -> None:
    # The open delimiters are one pattern compiled again at each open and close: a
    # 1 MB outer boundary made each nested open cost a second and 8 MB.
    long = b"B" * (prescan.MAX_BOUNDARY + 1)
    inner = multipart(long, PDF)
    raw = HEAD + multipart(b"m", inner, PDF)
    found, known = read(raw)
    assert len(found.parts) == 1  # the outer's own file, not the one inside
    assert facts(MessageView(raw, prescanned=known)) == facts(MessageView(raw))
    top = HEAD + multipart(long, PDF)
    found, _known = read(top)
    assert found.parts == ()
    # At the bound it is followed.
    fit = HEAD + multipart(b"m", multipart(long[:-1], PDF), PDF)
    found, _known = read(fit)
    assert len(found.parts) == 2
