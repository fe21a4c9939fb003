"""Word 97-2003 (`.doc`, [MS-DOC]): the text of every story where a marking may stand.

No Python library reads a .doc's headers and footers, so this is a small reader
written from the published specification:

- FIB ([MS-DOC] 2.5.1 Fib, 2.5.2 FibBase, 2.5.5 FibRgLw97, 2.5.6 FibRgFcLcb97), found
  by walking its counted parts (csw, cslw, cbRgFcLcb) rather than fixed offsets:
  wIdent 0xA5EC, fEncrypted / fObfuscated, fWhichTblStm (the `1Table` or `0Table`
  stream), the story lengths ccpText, ccpFtn, ccpHdd, ccpMcr, ccpAtn, ccpEdn, ccpTxbx,
  ccpHdrTxbx, and fcClx, fcPlcfHdd, fcPlcSpaHdr, fcDggInfo, fcPlcfHdrtxbxTxt in the
  table stream;
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
- header text boxes: Word keeps the text boxes of every header and footer in one
  story (ccpHdrTxbx). Which header or footer a box stands in is found by following its
  shape: PlcfHdrtxbxTxt (2.8.23) splits the story into text boxes, one FTXBXS (2.9.106)
  each (fReusable ones and the last are spares, not boxes); the header drawing's shape
  that shows box n (1-based) has lTxid ([MS-ODRAW] 2.3.21.1; the same value as
  OfficeArtClientTextbox, [MS-DOC] 2.9.170) with n in its high 16 bits and 0, the first
  of a linked chain, in the low 16; failing that, FTXBXS.lid names the shape. The
  shape's Spa (2.9.253, lid = OfficeArtFSP spid) in PlcSpaHdr (a PlcfSpa, 2.8.27,
  fcPlcSpaHdr) gives its anchor CP in the header document, and the Plcfhdd story that
  CP falls in says header or footer. A box whose chain breaks anywhere (no PLC, a
  damaged one, no shape, no anchor, an anchor in a separator story) is read as
  `header`, as is any text of the story outside the boxes: its text is never lost;
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
every kind: odd, even, first page); text boxes (`lines`, `textbox`); header and footer
text boxes (`label`, `header` or `footer` by their anchor, `header` when unknown);
WordArt in a header (`label`, `watermark`) or in the main document (`lines`,
`textbox`). Field instructions (between 0x13 and 0x14) are dropped, field
results kept. Comments and macros are not read. Word 6/95 files (no table stream) and
encrypted files give nothing.

Damage never raises: a structure that does not fit ends what depends on it, and what
was read still counts. Every decoded character is charged to the bounds.
"""

from __future__ import annotations

import bisect
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
_PLC_SPA_HDR = 41
_DGG_INFO = 50
_PLCF_HDRTXBX_TXT = 58
# Data element sizes of PlcfSpa (2.9.253 Spa) and PlcfHdrtxbxTxt (2.9.106 FTXBXS).
_SPA_SIZE = 26
_FTXBXS_SIZE = 22
# Plcfhdd: six separator stories come before the first section's six.
_SEPARATORS = 6
# OfficeArt records ([MS-ODRAW] 2.2.14 OfficeArtSpContainer, 2.2.40 OfficeArtFSP,
# [MS-DOC] 2.9.170 OfficeArtClientTextbox) and the lTxid property (2.3.21.1).
_RT_SP_CONTAINER = 0xF004
_RT_FSP = 0xF00A
_RT_CLIENT_TEXTBOX = 0xF00D
_LTXID = 0x0080
# Entries of a PLC between two clock checks.
_CHECK_EVERY = 4096
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
    yield from _header_textboxes(story("hdrtxbx"), table, found, bounds, path)
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
    ends = _hdd_starts(table, found)
    if not ends or ends[-1] > len(story):
        for para in _paragraphs(story):
            yield Piece("label", "header", para, path=path)
        return
    for i in range(len(ends) - 1):
        if i % _CHECK_EVERY == 0:
            bounds.check_time()
        text = story[ends[i]:ends[i + 1]]
        part = _hdd_part(i)
        for para in _paragraphs(text):
            yield Piece("lines" if part == "footnote" else "label", part, para, path=path)


def _hdd_starts(table: bytes, found: Fib) -> tuple[int, ...]:
    """Plcfhdd's CPs but the last (undefined, [MS-DOC] 2.8.22): story i is the header
    document's [ends[i], ends[i + 1]). () when missing, not ascending or past ccpHdd."""
    fc, lcb = found.pair(_PLCF_HDD)
    if lcb < 8 or fc + lcb > len(table):
        return ()
    ends = struct.unpack_from(f"<{lcb // 4}I", table, fc)[:-1]
    if any(b < a for a, b in itertools.pairwise(ends)) or ends[-1] > found.ccp["hdd"]:
        return ()
    return ends


def _hdd_part(index: int) -> str:
    """`footnote` for the six separator stories; then per section: even header, odd
    header, even footer, odd footer, first-page header, first-page footer."""
    if index < _SEPARATORS:
        return "footnote"
    return "header" if (index - _SEPARATORS) % 6 in (0, 1, 4) else "footer"


def _hdd_story_part(ends: tuple[int, ...], cp: int) -> str | None:
    """`header` or `footer`: the Plcfhdd story that header document CP `cp` is in;
    None in a separator story or outside every story."""
    i = bisect.bisect_right(ends, cp) - 1  # the non-empty story when empty ones share cp
    if i < _SEPARATORS or i >= len(ends) - 1:
        return None
    return _hdd_part(i)


def _header_textboxes(story: str, table: bytes, found: Fib, bounds: Bounds, path: str
                      ) -> Iterator[Piece]:
    """The header text box story (module docstring): each box `header` or `footer` by
    where its shape is anchored, the rest of the story `header`."""
    if not story:
        return
    try:
        boxes = _header_textbox_parts(table, found, bounds)
    except _Damaged:
        boxes = []
    pos = 0
    for start, end, part in boxes:  # ascending, apart, within ccpHdrTxbx
        for para in _paragraphs(story[pos:start]):
            yield Piece("label", "header", para, path=path)
        for para in _paragraphs(story[start:end]):
            yield Piece("label", part, para, path=path)
        pos = end
    for para in _paragraphs(story[pos:]):
        yield Piece("label", "header", para, path=path)


def _header_textbox_parts(table: bytes, found: Fib, bounds: Bounds
                          ) -> list[tuple[int, int, str]]:
    """(start CP, end CP, `header`/`footer`) in the header text box story of each box
    whose shape's anchor is known, in CP order; raises _Damaged when a PLC does not
    fit (the caller then reads the whole story as `header`)."""
    ends = _hdd_starts(table, found)
    if not ends:
        return []
    cps, data = _plc(table, *found.pair(_PLCF_HDRTXBX_TXT), _FTXBXS_SIZE)
    if cps[-1] > found.ccp["hdrtxbx"]:
        raise _Damaged("PlcfHdrtxbxTxt past ccpHdrTxbx")
    spa_cps, spa_data = _plc(table, *found.pair(_PLC_SPA_HDR), _SPA_SIZE)
    anchors: dict[int, int] = {}  # spid -> anchor CP in the header document
    for i in range(len(spa_cps) - 1):
        if i % _CHECK_EVERY == 0:
            bounds.check_time()
        spid, = struct.unpack_from("<I", table, spa_data + _SPA_SIZE * i)
        anchors.setdefault(spid, spa_cps[i])
    shapes = _header_shapes(table, found, bounds)
    out = []
    for k in range(len(cps) - 2):  # the last FTXBXS is a spare, never a box
        if k % _CHECK_EVERY == 0:
            bounds.check_time()
        at = data + _FTXBXS_SIZE * k
        reusable, = struct.unpack_from("<H", table, at + 8)
        if reusable & 0x0001:
            continue
        lid, = struct.unpack_from("<I", table, at + 14)
        cp = anchors.get(shapes.get(k + 1, lid))
        part = None if cp is None else _hdd_story_part(ends, cp)
        if part is not None:
            out.append((cps[k], cps[k + 1], part))
    return out


def _plc(table: bytes, fc: int, lcb: int, size: int) -> tuple[tuple[int, ...], int]:
    """A PLC ([MS-DOC] PLC: CPs, then data elements) of `size`-byte elements at
    table[fc:fc+lcb]: its CPs (one more than elements) and where its data begin; raises
    _Damaged when it does not fit or its CPs descend."""
    if lcb < 4 or (lcb - 4) % (4 + size) or fc + lcb > len(table):
        raise _Damaged("PLC does not fit")
    count = (lcb - 4) // (4 + size)
    cps = struct.unpack_from(f"<{count + 1}I", table, fc)
    if any(b < a for a, b in itertools.pairwise(cps)):
        raise _Damaged("PLC CPs descend")
    return cps, fc + 4 * (count + 1)


def _header_shapes(table: bytes, found: Fib, bounds: Bounds) -> dict[int, int]:
    """Header text box number (1-based, in PlcfHdrtxbxTxt) -> spid of the header
    drawing's shape that shows it first: lTxid in the shape's OfficeArtFOPT, or its
    OfficeArtClientTextbox, with that number in the high 16 bits and chain position 0."""
    out: dict[int, int] = {}
    for label, body, body_end in _drawing_bodies(table, found, bounds):
        if label != 1:
            continue
        spid: int | None = None
        txid: int | None = None
        shape_end = body
        for rec in msppt.records(table, body, body_end, bounds):
            if rec.type == _RT_SP_CONTAINER:
                spid, txid, shape_end = None, None, rec.end
                continue
            if rec.start >= shape_end:
                continue  # not inside a shape's container
            if rec.type == _RT_FSP and rec.end - rec.start >= 4:
                spid, = struct.unpack_from("<I", table, rec.start)
            elif rec.type in msppt.OPT_TYPES:
                txid = _ltxid(table, rec) if txid is None else txid
            elif rec.type == _RT_CLIENT_TEXTBOX and rec.end - rec.start >= 4:
                txid, = struct.unpack_from("<I", table, rec.start)
            if spid is not None and txid is not None and txid & 0xFFFF == 0:
                out.setdefault(txid >> 16, spid)
    return out


def _ltxid(table: bytes, rec: msppt.Record) -> int | None:
    """The lTxid property (0x0080, not complex) of an OfficeArtFOPT-like record."""
    if rec.start + 6 * rec.instance > rec.end:
        return None
    for i in range(rec.instance):
        opid, op = struct.unpack_from("<HI", table, rec.start + 6 * i)
        if opid & 0x3FFF == _LTXID and not opid & 0x8000:
            return int(op)
    return None


def _drawings(table: bytes, found: Fib, bounds: Bounds, path: str) -> Iterator[Piece]:
    """WordArt text of the main (dgglbl 0) and header (dgglbl 1) drawings."""
    for label, body, body_end in _drawing_bodies(table, found, bounds):
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


def _drawing_bodies(table: bytes, found: Fib, bounds: Bounds
                    ) -> Iterator[tuple[int, int, int]]:
    """(dgglbl, body start, body end) of each OfficeArtWordDrawing's OfficeArtDgContainer
    in the OfficeArtContent at fcDggInfo ([MS-DOC] 2.9.171, 2.9.172)."""
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
        yield label, body, body_end
        pos = body_end
