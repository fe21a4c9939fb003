"""Word 97-2003 (`.doc`, [MS-DOC]): the text of every story where a marking may stand.

No Python library reads a .doc's headers and footers, so this is a small reader
written from the published specification:

- FIB ([MS-DOC] 2.5.1 Fib, 2.5.2 FibBase, 2.5.5 FibRgLw97, 2.5.6 FibRgFcLcb97), found
  by walking its counted parts (csw, cslw, cbRgFcLcb) rather than fixed offsets:
  wIdent 0xA5EC, fEncrypted / fObfuscated, fWhichTblStm (the `1Table` or `0Table`
  stream), the story lengths ccpText, ccpFtn, ccpHdd, ccpMcr, ccpAtn, ccpEdn, ccpTxbx,
  ccpHdrTxbx, and fcClx, fcPlcfHdd, fcDggInfo in the table stream;
- the piece table (2.9.38 Clx: Prc entries then a Pcdt, 2.8.35 PlcPcd, 2.9.177 Pcd,
  2.9.73 FcCompressed; algorithm 2.4.1 Retrieving Text): compressed pieces hold one byte
  per character, Latin-1 except the 2.9.73 table (0x82 -> U+201A ... 0x9F -> U+0178),
  the others UTF-16LE;
- the stories follow one another in CP order ([MS-DOC] 2.3): main document, footnotes,
  headers, macro, comments, endnotes, text boxes, header text boxes;
- the header document (2.3, Headers and Footers) is split by Plcfhdd (2.8.22): six
  footnote/endnote separator stories, then six per section: even header, odd header,
  even footer, odd footer, first-page header, first-page footer. A damaged Plcfhdd
  (not ascending, out of range) leaves the whole header document read as `header`:
  the label rules are the same for both, so only the evidence name is less precise;
- watermarks: WordArt shapes in the header drawing keep their text in the shape
  property gtextUNICODE, not in any story. The drawings are OfficeArtContent (2.9.171)
  at fcDggInfo: an OfficeArtDggContainer, then OfficeArtWordDrawing entries whose
  dgglbl is 0 (main document) or 1 (header document). LibreOffice writes its watermark
  (Format > Watermark, a fontwork shape) there, in the table stream; Word's watermark
  is the same kind of WordArt shape (PowerPlusWaterMarkObject), untested here for want
  of a Word-made file.

Pieces: main text paragraphs and table cells (`lines`, `body`; the cell mark 0x07 ends a
cell as a paragraph mark ends a paragraph, so each cell is its own line); footnotes and
endnotes (`lines`, `footnote`); header and footer stories (`label`, `header`/`footer`,
every kind: odd, even, first page); text boxes (`lines`, `textbox`); header text boxes
(`label`, `header`); WordArt in a header (`label`, `watermark`) or in the main document
(`lines`, `textbox`). Field instructions (between 0x13 and 0x14) are dropped, field
results kept. Comments and macros are not read. Word 6/95 files (no table stream) and
encrypted files give nothing.

Damage never raises: a structure that does not fit ends what depends on it, and what
was read still counts. Every decoded character is charged to the bounds.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from gateway.message.documents import msppt
from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece

W_IDENT = 0xA5EC
F_ENCRYPTED = 0x0100
F_WHICH_TBL_STM = 0x0200
F_OBFUSCATED = 0x8000
# Indexes of fc/lcb pairs in FibRgFcLcb97 ([MS-DOC] 2.5.6).
_PLCF_HDD = 11
_CLX = 33
_DGG_INFO = 50
# FibRgLw97 fields, in order from ccpText ([MS-DOC] 2.5.5), and what each story is.
_STORIES = ("text", "ftn", "hdd", "mcr", "atn", "edn", "txbx", "hdrtxbx")

# [MS-DOC] 2.9.73: compressed text is Latin-1 except these bytes.
_COMPRESSED = {0x82: "\u201a", 0x83: "\u0192", 0x84: "\u201e", 0x85: "\u2026",
               0x86: "\u2020", 0x87: "\u2021", 0x88: "\u02c6", 0x89: "\u2030",
               0x8A: "\u0160", 0x8B: "\u2039", 0x8C: "\u0152", 0x91: "\u2018",
               0x92: "\u2019", 0x93: "\u201c", 0x94: "\u201d", 0x95: "\u2022",
               0x96: "\u2013", 0x97: "\u2014", 0x98: "\u02dc", 0x99: "\u2122",
               0x9A: "\u0161", 0x9B: "\u203a", 0x9C: "\u0153", 0x9F: "\u0178"}
_COMPRESSED_MAP = str.maketrans({chr(k): v for k, v in _COMPRESSED.items()})

# Paragraph mark, cell/row mark, page/section break, column break: each ends a line.
_PARAGRAPH_END = re.compile("[\r\x07\x0c\x0e]")
_FIELD_MARK = re.compile("[\x13\x14\x15]")
# Characters that stand for objects (pictures, anchors, note references) are dropped;
# a line break inside a paragraph becomes a newline, the hyphens and NBSP plain text.
_CLEAN = str.maketrans({"\x0b": "\n", "\x1e": "-", "\x1f": None, "\xa0": " ",
                        **{chr(c): None for c in (0, 1, 2, 3, 4, 5, 6, 8)}})


class _Damaged(Exception):
    """A structure that does not fit: the reader stops what depends on it."""


@dataclass(frozen=True)
class Fib:
    flags: int
    ccp: dict[str, int]
    fc_lcb: tuple[int, ...]

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & F_ENCRYPTED)

    @property
    def obfuscated(self) -> bool:
        return bool(self.flags & F_OBFUSCATED)

    @property
    def table_name(self) -> str:
        return "1Table" if self.flags & F_WHICH_TBL_STM else "0Table"

    def pair(self, index: int) -> tuple[int, int]:
        if 2 * index + 1 >= len(self.fc_lcb):
            return 0, 0
        return self.fc_lcb[2 * index], self.fc_lcb[2 * index + 1]


def fib(word: bytes) -> Fib:
    """The FIB at the start of the WordDocument stream; raises _Damaged."""
    if len(word) < 34:
        raise _Damaged("no FIB")
    ident, = struct.unpack_from("<H", word, 0)
    flags, = struct.unpack_from("<H", word, 10)
    if ident != W_IDENT:
        raise _Damaged("not a Word binary file")
    pos = 32
    csw, = struct.unpack_from("<H", word, pos)
    pos += 2 + 2 * csw
    if pos + 2 > len(word):
        raise _Damaged("FIB cut short")
    cslw, = struct.unpack_from("<H", word, pos)
    pos += 2
    if cslw < 3 + len(_STORIES) or pos + 4 * cslw + 2 > len(word):
        raise _Damaged("FIB cut short")
    # FibRgLw97 begins cbMac, two reserved longs, then the story lengths.
    lengths = struct.unpack_from(f"<{len(_STORIES)}i", word, pos + 12)
    pos += 4 * cslw
    cb, = struct.unpack_from("<H", word, pos)
    pos += 2
    count = min(cb * 2, (len(word) - pos) // 4)
    fc_lcb = struct.unpack_from(f"<{count}I", word, pos)
    return Fib(flags, {name: max(0, n) for name, n in zip(_STORIES, lengths, strict=True)},
               fc_lcb)


def encryption(word: bytes) -> tuple[bool | None, str | None]:
    """(encrypted, scheme) from FibBase: fObfuscated is XOR obfuscation, otherwise
    RC4 (RC4 or RC4 CryptoAPI, [MS-DOC] 2.2.6); (None, None) without a FIB."""
    try:
        found = fib(word)
    except _Damaged:
        return None, None
    if not found.encrypted:
        return False, None
    return True, "xor" if found.obfuscated else "rc4"


def pieces(streams: Mapping[str, bytes], bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Text of a Word document (module docstring). `streams`: WordDocument and the
    table streams (0Table, 1Table) the OLE file has."""
    word = streams.get("WordDocument")
    if word is None:
        return
    try:
        found = fib(word)
    except _Damaged:
        return
    table = streams.get(found.table_name)
    if found.encrypted or table is None:
        return
    text = _document_text(word, table, found, bounds)
    starts: dict[str, int] = {}
    cp = 0
    for name in _STORIES:
        starts[name] = cp
        cp += found.ccp[name]

    def story(name: str) -> str:
        return text[starts[name]:starts[name] + found.ccp[name]]

    for para in _paragraphs(story("text")):
        yield Piece("lines", "body", para, path=path)
    for name in ("ftn", "edn"):
        for para in _paragraphs(story(name)):
            yield Piece("lines", "footnote", para, path=path)
    yield from _headers(story("hdd"), table, found, bounds, path)
    for para in _paragraphs(story("txbx")):
        yield Piece("lines", "textbox", para, path=path)
    for para in _paragraphs(story("hdrtxbx")):
        yield Piece("label", "header", para, path=path)
    yield from _drawings(table, found, bounds, path)


def _document_text(word: bytes, table: bytes, found: Fib, bounds: Bounds) -> str:
    """Every story's text, in CP order, from the piece table; what a damaged piece
    table leaves readable (possibly nothing)."""
    total = sum(found.ccp.values()) + 1
    try:
        pieces_ = _piece_table(table, *found.pair(_CLX))
    except _Damaged:
        return ""
    out: list[str] = []
    have = 0
    for n, (cp_start, cp_end, fc) in enumerate(pieces_):
        if n % 256 == 0:
            bounds.check_time()
        if cp_start != have or cp_end <= cp_start:
            break  # CPs must run on without gaps; past a gap nothing can be placed
        count = min(cp_end, total) - cp_start
        if count <= 0:
            break
        if fc & 0x40000000:
            start = (fc & 0x3FFFFFFF) // 2
            raw = word[start:start + count]
            bounds.charge(2 * len(raw))
            chunk = raw.decode("latin-1").translate(_COMPRESSED_MAP)
        else:
            start = fc & 0x3FFFFFFF
            raw = word[start:start + 2 * count]
            bounds.charge(len(raw))
            chunk = raw[:len(raw) & ~1].decode("utf-16le", "replace")
        out.append(chunk)
        have += len(chunk)
        if len(chunk) < count:
            break  # the piece runs past the stream: what follows would be misplaced
    return "".join(out)


def _piece_table(table: bytes, fc: int, lcb: int) -> list[tuple[int, int, int]]:
    """(cp start, cp end, FcCompressed) of each Pcd in the Clx at table[fc:fc+lcb]."""
    end = fc + lcb
    if lcb <= 0 or end > len(table):
        raise _Damaged("no Clx")
    pos = fc
    # RgPrc: each Prc is clxt 0x01, a 16-bit size, then its grpprl; every step moves on.
    while pos < end and table[pos] == 0x01:
        if pos + 3 > end:
            raise _Damaged("Prc cut short")
        size, = struct.unpack_from("<h", table, pos + 1)
        if size < 0:
            raise _Damaged("negative Prc")
        pos += 3 + size
    if pos + 5 > end or table[pos] != 0x02:
        raise _Damaged("no Pcdt")
    plc_size, = struct.unpack_from("<I", table, pos + 1)
    plc = pos + 5
    if plc_size < 16 or plc + plc_size > end:
        raise _Damaged("PlcPcd out of range")
    count = (plc_size - 4) // 12
    cps = struct.unpack_from(f"<{count + 1}I", table, plc)
    data = plc + 4 * (count + 1)
    out = []
    for i in range(count):
        fc_value, = struct.unpack_from("<I", table, data + 8 * i + 2)
        out.append((cps[i], cps[i + 1], fc_value))
    return out


def _visible(text: str) -> str:
    """The text a reader sees: field instructions (0x13 ... 0x14) dropped, results
    (0x14 ... 0x15) kept, fields nested to any depth."""
    if "\x13" not in text:
        return text
    out: list[str] = []
    stack: list[bool] = []  # per open field: True once its result has begun
    hidden = 0  # open fields still in their instructions
    pos = 0
    for m in _FIELD_MARK.finditer(text):
        if hidden == 0:
            out.append(text[pos:m.start()])
        mark = m.group(0)
        if mark == "\x13":
            stack.append(False)
            hidden += 1
        elif mark == "\x14" and stack and not stack[-1]:
            stack[-1] = True
            hidden -= 1
        elif mark == "\x15" and stack and not stack.pop():
            hidden -= 1
        pos = m.end()
    if hidden == 0:
        out.append(text[pos:])
    return "".join(out)


def _paragraphs(story: str) -> Iterator[str]:
    for para in _PARAGRAPH_END.split(_visible(story).translate(_CLEAN)):
        if para.strip():
            yield para


def _headers(story: str, table: bytes, found: Fib, bounds: Bounds, path: str
             ) -> Iterator[Piece]:
    """Header document stories by Plcfhdd: separators as footnotes, then per section
    even/odd/first headers and footers."""
    if not story:
        return
    fc, lcb = found.pair(_PLCF_HDD)
    cps: tuple[int, ...] = ()
    if lcb >= 8 and fc + lcb <= len(table):
        cps = struct.unpack_from(f"<{lcb // 4}I", table, fc)
    ends = cps[:-1]  # the last CP is undefined ([MS-DOC] 2.8.22)
    if not ends or any(b < a for a, b in itertools.pairwise(ends)) or \
            ends[-1] > len(story):
        for para in _paragraphs(story):
            yield Piece("label", "header", para, path=path)
        return
    for i in range(len(ends) - 1):
        if i % 4096 == 0:
            bounds.check_time()
        text = story[ends[i]:ends[i + 1]]
        if i < 6:
            for para in _paragraphs(text):
                yield Piece("lines", "footnote", para, path=path)
            continue
        # Per section: even header, odd header, even footer, odd footer, first header,
        # first footer.
        part = "header" if (i - 6) % 6 in (0, 1, 4) else "footer"
        for para in _paragraphs(text):
            yield Piece("label", part, para, path=path)


def _drawings(table: bytes, found: Fib, bounds: Bounds, path: str) -> Iterator[Piece]:
    """WordArt text of the main (dgglbl 0) and header (dgglbl 1) drawings."""
    fc, lcb = found.pair(_DGG_INFO)
    end = min(fc + lcb, len(table))
    if lcb <= 0 or fc + msppt.HEADER.size > end:
        return
    _vi, rtype, length = msppt.HEADER.unpack_from(table, fc)
    if rtype != 0xF000:  # OfficeArtDggContainer
        return
    pos = fc + msppt.HEADER.size + length
    while pos + 1 + msppt.HEADER.size <= end:  # each drawing moves pos forward
        bounds.check_time()
        label = table[pos]
        _vi, rtype, length = msppt.HEADER.unpack_from(table, pos + 1)
        body = pos + 1 + msppt.HEADER.size
        if rtype != 0xF002:  # OfficeArtDgContainer
            return
        body_end = min(body + length, end)
        for rec in msppt.records(table, body, body_end, bounds):
            if rec.type not in msppt.OPT_TYPES:
                continue
            text = msppt.gtext(table, rec)
            if not text or not text.strip():
                continue
            bounds.charge(2 * len(text))
            if label == 1:
                yield Piece("label", "watermark", text, path=path)
            else:
                yield Piece("lines", "textbox", text, path=path)
        pos = body_end
