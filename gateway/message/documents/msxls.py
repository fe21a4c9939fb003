"""Excel 97-2003 (`.xls`, [MS-XLS] BIFF8; BIFF5/7 `Book` streams too): cell text, sheet
headers and footers, and the workbook's encryption.

- Cells: xlrd reads the `Workbook` stream (handed the stream itself, so that xlrd's own
  compound-file reader never sees a hostile container). Every text cell, including a
  formula's string result, is a `lines` piece with part `cell`; a text that stands in
  many cells is read once. xlrd builds each sheet as lists of rows, as long as the
  furthest cell in a row: that memory is charged to the bounds before xlrd builds it,
  from the cell records' coordinates, so a few bytes claiming far-away cells cannot
  make it allocate gigabytes.
- Headers and footers: xlrd does not expose them, so a small BIFF record walker
  ([MS-XLS] 2.1.4 record layout: 16-bit type, 16-bit size) reads Header (2.4.136,
  0x0014) and Footer (2.4.124, 0x0015), an XLUnicodeString (2.5.294) each, and
  HeaderFooter (2.4.137, 0x089C: after FrtHeader and guidSView, flags, four counts,
  then the even header, even footer, first-page header and first-page footer, each
  an XLUnicodeString present only when its count is not zero). BIFF5 strings are
  byte strings with an 8-bit length in the workbook's CODEPAGE (2.4.52). The
  `&`-codes are removed by `ooxml.header_footer_sections`; each section is a `label`
  piece, part `header` or `footer`.
- Encryption: a FilePass record (2.4.117, 0x002F) in the globals substream;
  wEncryptionType 0 is XOR obfuscation, 1 is RC4 (RC4 or RC4 CryptoAPI). An
  encrypted workbook gives no pieces.

- Text boxes and comments on sheets: a TxO record (2.4.329, 0x01B6) and the Continue
  records after it hold the text (`lines`, part `textbox`).
"""

from __future__ import annotations

import codecs
import io
import struct
from collections.abc import Iterator

import xlrd

from gateway.message.documents import ooxml
from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.piece import Piece

BOF = 0x0809
EOF = 0x000A
FILEPASS = 0x002F
CODEPAGE = 0x0042
HEADER = 0x0014
FOOTER = 0x0015
HEADER_FOOTER = 0x089C
MERGED_CELLS = 0x00E5
TXO = 0x01B6
CONTINUE = 0x003C
# Cell records with (row, column) first, whose values xlrd keeps (without formatting).
_CELLS = frozenset({0x0203, 0x00FD, 0x0204, 0x00D6, 0x027E, 0x0006, 0x0205})
_MULRK = 0x00BD
# Bytes xlrd holds per cell slot (a list entry) and per row (two lists).
_SLOT_BYTES = 8
_ROW_BYTES = 128
_CHECK_EVERY = 4096


def records(stream: bytes, bounds: Bounds | None = None) -> Iterator[tuple[int, int, bytes]]:
    """(offset, type, data) of each BIFF record; a record cut short ends the walk."""
    pos = 0
    seen = 0
    while pos + 4 <= len(stream):
        seen += 1
        if bounds is not None and seen % _CHECK_EVERY == 0:
            bounds.check_time()
        rtype, size = struct.unpack_from("<HH", stream, pos)
        if pos + 4 + size > len(stream):
            return
        yield pos, rtype, stream[pos + 4:pos + 4 + size]
        pos += 4 + size


def encryption(stream: bytes) -> tuple[bool | None, str | None]:
    """(encrypted, scheme) from the globals substream's FilePass record; BIFF5 knows
    only XOR obfuscation (its FilePass has no wEncryptionType)."""
    biff8 = True
    for n, (_pos, rtype, data) in enumerate(records(stream)):
        if n == 0:
            if rtype != BOF or len(data) < 2:
                return None, None
            biff8 = struct.unpack_from("<H", data, 0)[0] >= 0x0600
        if rtype == FILEPASS:
            if not biff8:
                return True, "xor"
            if len(data) < 2:
                return True, None
            kind, = struct.unpack_from("<H", data, 0)
            return True, {0: "xor", 1: "rc4"}.get(kind)
        if rtype == EOF:
            return False, None
    return None, None


def pieces(stream: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Text of a workbook (module docstring); nothing when it is encrypted."""
    encrypted, _scheme = encryption(stream)
    if encrypted:
        return  # a stream cut before its globals end is read for what it has
    for part, text in _headers_footers(stream, bounds):
        for section in ooxml.header_footer_sections(text):
            yield Piece("label", part, section, path=path)
    for text in _text_boxes(stream, bounds):
        yield Piece("lines", "textbox", text, path=path)
    cost = _cell_cost(stream, bounds)
    bounds.charge(len(stream) + cost)  # the decoded shared strings, and the sheets
    yield from _cells(stream, bounds, path)


def _headers_footers(stream: bytes, bounds: Bounds) -> Iterator[tuple[str, str]]:
    biff8 = True
    codec = "cp1252"
    for _pos, rtype, data in records(stream, bounds):
        if rtype == BOF and len(data) >= 2:
            biff8 = struct.unpack_from("<H", data, 0)[0] >= 0x0600
        elif rtype == CODEPAGE and len(data) >= 2:
            codec = _codec(struct.unpack_from("<H", data, 0)[0], codec)
        elif rtype in (HEADER, FOOTER) and data:
            text = _string(data, 0, biff8, codec)[0]
            if text:
                bounds.charge(2 * len(text))
                yield ("header" if rtype == HEADER else "footer"), text
        elif rtype == HEADER_FOOTER:
            for part, text in _header_footer(data):
                bounds.charge(2 * len(text))
                yield part, text


def _text_boxes(stream: bytes, bounds: Bounds) -> Iterator[str]:
    """The text of text boxes and comments drawn on the sheets: a TxO record (2.4.329,
    0x01B6; cchText at offset 10) and the Continue records (0x003C) after it, each
    starting with a flag byte (bit 0: UTF-16LE, else one byte a character) before its
    part of the characters (BIFF8 only)."""
    want = have = 0
    got: list[str] = []
    for _pos, rtype, data in records(stream, bounds):
        if rtype == TXO:
            want = struct.unpack_from("<H", data, 10)[0] if len(data) >= 12 else 0
            have, got = 0, []
            continue
        if want and rtype == CONTINUE and data:
            count = want - have
            if data[0] & 0x01:
                raw = data[1:1 + 2 * count]
                part = raw[:len(raw) & ~1].decode("utf-16le", "replace")
            else:
                part = data[1:1 + count].decode("latin-1")
            got.append(part)
            have += len(part)
            if part and have < want:
                continue
        if want and got:
            text = "".join(got)
            bounds.charge(2 * len(text))
            if text.strip():
                yield text.replace("\r", "\n")
        want, have, got = 0, 0, []


def _header_footer(data: bytes) -> Iterator[tuple[str, str]]:
    """Even and first-page headers and footers of a HeaderFooter record (2.4.137)."""
    pos = 12 + 16 + 2  # FrtHeader, guidSView, flags
    if pos + 8 > len(data):
        return
    counts = struct.unpack_from("<4H", data, pos)
    pos += 8
    for count, part in zip(counts, ("header", "footer", "header", "footer"), strict=True):
        if not count:
            continue
        text, pos = _string(data, pos, True, "cp1252")
        if text is None:
            return
        if text:
            yield part, text


def _string(data: bytes, pos: int, biff8: bool, codec: str) -> tuple[str | None, int]:
    """An XLUnicodeString (BIFF8: 16-bit count, flags, Latin-1 or UTF-16LE characters)
    or a BIFF5 byte string (8-bit count); (None, pos) when it does not fit."""
    if not biff8:
        if pos + 1 > len(data):
            return None, pos
        count = data[pos]
        raw = data[pos + 1:pos + 1 + count]
        return raw.decode(codec, "replace"), pos + 1 + count
    if pos + 3 > len(data):
        return None, pos
    count, flags = struct.unpack_from("<HB", data, pos)
    pos += 3
    if flags & 0x01:
        raw = data[pos:pos + 2 * count]
        return raw[:len(raw) & ~1].decode("utf-16le", "replace"), pos + 2 * count
    raw = data[pos:pos + count]
    return raw.decode("latin-1"), pos + count


def _codec(codepage: int, default: str) -> str:
    if codepage == 1200:  # UTF-16: BIFF8 strings say so themselves
        return default
    try:
        return codecs.lookup(f"cp{codepage}").name
    except LookupError:
        return default


def _cell_cost(stream: bytes, bounds: Bounds) -> int:
    """Bytes xlrd will hold for the sheets' cells (module docstring): per sheet, rows up
    to the furthest one, each as long as its furthest cell."""
    total = 0
    widths: dict[int, int] = {}
    rows = 0
    for _pos, rtype, data in records(stream, bounds):
        if rtype in _CELLS and len(data) >= 4:
            row, col = struct.unpack_from("<HH", data, 0)
            widths[row] = max(widths.get(row, 0), col + 1)
            rows = max(rows, row + 1)
        elif rtype == _MULRK and len(data) >= 6:
            row, = struct.unpack_from("<H", data, 0)
            last, = struct.unpack_from("<H", data, len(data) - 2)
            widths[row] = max(widths.get(row, 0), last + 1)
            rows = max(rows, row + 1)
        elif rtype == MERGED_CELLS and len(data) >= 2:
            count = min(struct.unpack_from("<H", data, 0)[0], (len(data) - 2) // 8)
            for i in range(count):
                rows = max(rows, struct.unpack_from("<H", data, 2 + 8 * i + 2)[0] + 1)
        elif rtype == EOF:
            total += sum(widths.values()) * _SLOT_BYTES + rows * _ROW_BYTES
            widths.clear()
            rows = 0
    return total + sum(widths.values()) * _SLOT_BYTES + rows * _ROW_BYTES


def _cells(stream: bytes, bounds: Bounds, path: str) -> Iterator[Piece]:
    """Text cells, sheet by sheet; a sheet xlrd cannot read is skipped, the others are
    still read (xlrd raises anything from struct.error to AssertionError on damage)."""
    try:
        book = xlrd.open_workbook(file_contents=stream, on_demand=True,
                                  formatting_info=False, ragged_rows=True,
                                  logfile=_Discard(), verbosity=0)
    except Exception:  # a damaged workbook: nothing more to read
        return
    seen: set[str] = set()
    try:
        for index in range(book.nsheets):
            bounds.check_time()
            try:
                sheet = book.sheet_by_index(index)
                texts = _sheet_texts(sheet, bounds)
            except LimitExceeded:
                raise
            except Exception:  # this sheet is damaged; the next may not be
                continue
            finally:
                _unload(book, index)
            for text in texts:
                if text not in seen:
                    seen.add(text)
                    bounds.charge(2 * len(text))
                    yield Piece("lines", "cell", text, path=path)
    finally:
        book.release_resources()


class _Discard(io.TextIOBase):
    """xlrd's log: it writes warnings even at verbosity 0, one per bad record of some
    kinds, so a hostile file could fill a buffer; they are of no use here."""

    def write(self, text: str) -> int:
        return len(text)


def _sheet_texts(sheet: xlrd.sheet.Sheet, bounds: Bounds) -> list[str]:
    texts: list[str] = []
    for row in range(sheet.nrows):
        if row % 1024 == 0:
            bounds.check_time()
        for ctype, value in zip(sheet.row_types(row), sheet.row_values(row), strict=False):
            if ctype == xlrd.XL_CELL_TEXT and isinstance(value, str) and value.strip():
                texts.append(value)
    return texts


def _unload(book: xlrd.book.Book, index: int) -> None:
    try:
        book.unload_sheet(index)
    except Exception:  # never loaded: nothing to free
        return
