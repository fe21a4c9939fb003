"""A text body scanned while it arrives: its marking lines and its URLs.

A text/plain leaf whose charset decodes a run of whole lines at a time
(`text.line_codec`) is fed here a piece at a time by `gateway.message.prescan`: its
bytes in an identity transfer encoding (7bit, 8bit, binary), or what
`transfer.QuotedPrintableStream` decodes of them. Runs of whole lines are
decoded (`text.decode_lines`) and searched as they come: for marking lines by
`markings.in_text_from`, numbered as in the whole text, and for URLs by
`links.candidates`; both find in a text cut after line feeds what they find in the
whole (tests/fuzz/test_fuzz_textscan.py). The last line waits for `end`, which is
told how many bytes of it are not the part's (RFC 2046 5.1.1: the line end before a
delimiter belongs to the delimiter).

What is kept is what the inspection keeps of the text: the first MAX_PER_PART
marking lines of each level, in order (more of one level in one text are never
evidence: `markings._Collector.add`), and each distinct URL once, in order
(`links.extract` takes no other). Anything this reader does not vouch for - a byte
order mark or NUL at the start, an escape, a byte the charset rejects, a line past
MAX_LINE, more than MAX_URLS distinct URLs or MAX_URL_CHARS of them - makes the text
`broken`: the inspection then scans it after the final dot, as without this. So the
reading holds about MAX_LINE + _RUN bytes and MAX_URL_CHARS, whatever the text.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.message import links, markings
from gateway.message.text import decode_lines, plain_start

MAX_LINE = 1024 * 1024  # bytes of one line held while its end has not come
MAX_URLS = links.MAX_LINKS  # distinct URLs kept; more: scanned after the dot
MAX_URL_CHARS = 1024 * 1024  # characters of them in all (the reading's memory is lent)
_RUN = 256 * 1024  # bytes gathered before a run of lines is decoded and searched


@dataclass(frozen=True)
class Scanned:
    """What the inspection would find in a text: (line number, marking) of its marking
    lines as `markings.in_text` numbers them (at most MAX_PER_PART of each level), and
    its distinct URLs in order of appearance."""

    markings: tuple[tuple[int, str], ...]
    urls: tuple[str, ...]


class TextScan:
    """One text's bytes fed in order (`feed`), then `end`. Sans-io; never raises."""

    def __init__(self, codec: str) -> None:
        self._codec = codec
        self._pending = bytearray()  # not yet searched: from the last run's end
        self._started = False  # the text's first bytes were checked (`plain_start`)
        # No line feed in _pending before here but maybe its last byte: a long line fed
        # in small pieces is looked through once, not at every piece.
        self._looked = 0
        self._lineno = 1
        self._markings: list[tuple[int, str]] = []
        self._per_level: dict[str, int] = {}
        self._urls: dict[str, None] = {}
        self._url_chars = 0
        self.broken = False

    def feed(self, data: bytes) -> None:
        """The text's next bytes."""
        if self.broken or not data:
            return
        self._pending += data
        if len(self._pending) < _RUN:
            return
        # The last line (and its line end) waits: `end` may take bytes off it.
        cut = self._pending.rfind(b"\n", self._looked, len(self._pending) - 1)
        if cut < 0:
            self._looked = max(0, len(self._pending) - 1)
            if len(self._pending) > MAX_LINE:
                self._break()
            return
        run = bytes(self._pending[:cut + 1])
        self._search(run, bytes(self._pending[cut + 1:cut + 3]))
        del self._pending[:cut + 1]
        self._looked = max(0, len(self._pending) - 1)

    def end(self, drop: int) -> Scanned | None:
        """What was found, once every byte is fed and the last `drop` bytes (0-2) are
        known not to be the text's; None if the text is `broken`."""
        rest = bytes(self._pending[:len(self._pending) - drop])
        self._pending = bytearray()
        if not self.broken:
            self._search(rest, b"")
        if self.broken:
            return None
        return Scanned(tuple(self._markings), tuple(self._urls))

    def _break(self) -> None:
        self.broken = True
        self._pending = bytearray()
        self._markings.clear()
        self._urls.clear()

    def _search(self, run: bytes, after: bytes) -> None:
        """Decode and search a run of whole lines (`after`: the bytes that follow it)."""
        if not self._started:
            self._started = True
            if not plain_start(run[:2] + after):
                self._break()
                return
        text = decode_lines(run, self._codec)
        if text is None:
            self._break()
            return
        found, self._lineno = markings.in_text_from(text, self._lineno)
        for lineno, marking in found:
            seen = self._per_level.get(marking, 0)
            if seen < markings.MAX_PER_PART:
                self._per_level[marking] = seen + 1
                self._markings.append((lineno, marking))
        for url in links.candidates(text):
            if url not in self._urls:
                self._url_chars += len(url)
                if len(self._urls) >= MAX_URLS or self._url_chars > MAX_URL_CHARS:
                    self._break()
                    return
                self._urls[url] = None
