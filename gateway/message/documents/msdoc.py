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
- text shown in capitals: All caps and Small caps are character properties
  ([MS-DOC] 2.4.6 Determining Formatting Properties, 2.4.6.2 Direct Character
  Formatting; sprmCFCaps 0x083B, sprmCFSmallCaps 0x083A, their operand a
  ToggleOperand, 2.9.327: 0 off, 1 on, 0x80 as the style, 0x81 the style's opposite).
  Direct formatting is the Chpx (a grpprl of Prl; Sprm: the operand size by spra) of
  each run of the ChpxFkps (512-byte pages of the WordDocument stream) that the bin
  table PlcBteChpx (fcPlcfBteChpx) names, runs keyed by FC. The style is the
  paragraph's (the istd of its PapxInFkp, in the PapxFkps of PlcBtePapx, 2.8.6) with
  the run's character style (sprmCIstd 0x4A30) over it, each followed down its
  istdBase chain in the STSH at fcStshf (2.9.271 STSH, 2.9.274 Stshif, 2.9.135 LPStd,
  STD and StdfBase, 2.9.113 GrLPUpxSw, 2.9.138 LPUpxChpx). Every character whose FC
  (through the piece table) falls in a run so shown is read in capitals, one letter
  for one, in every story: `rahsia` shown `RAHSIA` reads `RAHSIA`. Paragraphs are
  taken as the PapxFkps' FC ranges, exact for text stored in order (one piece, as
  Word and LibreOffice save); piece-level formatting (Pcd.prm, fast-saved files) is
  not applied. A bin table or FKP that does not fit (FCs not ascending, runs
  overlapping, a page or a Chpx out of range, crun or cpara out of range) leaves the
  whole document as typed; a style sheet that does not fit keeps the styles read
  before the damage (an unknown style has no caps: 0x80 reads off, 0x81 on); an
  istdBase loop ends after as many steps as there are styles;
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
`textbox`). Text formatted in capitals is read in capitals (above). Field
instructions (between 0x13 and 0x14) are dropped, field results kept. Comments and
macros are not read. Word 6/95 files (no table stream) and encrypted files give
nothing.

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
_STSHF = 1
_PLCF_HDD = 11
_PLCF_BTE_CHPX = 12
_PLCF_BTE_PAPX = 13
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
# Character formatting ([MS-DOC] character sprms): sprmCFSmallCaps,
# sprmCFCaps (ToggleOperand, 2.9.327: 0 off, 1 on, 0x80 as the style, 0x81 the
# opposite of the style), sprmCIstd (the character style); a run is shown in capitals
# when either flag is on. FKPs are 512-byte pages of the WordDocument stream
# (ChpxFkp, PapxFkp) with at most 0x65 runs or 0x1D paragraphs.
_SPRM_C_F_SMALL_CAPS = 0x083A
_SPRM_C_F_CAPS = 0x083B
_SPRM_C_ISTD = 0x4A30
_SPRM_T_DEF_TABLE = 0xD608
_SPRM_P_CHG_TABS = 0xC615
_FKP = 512
_MAX_CRUN = 0x65
_MAX_CPARA = 0x1D
_BX_PAP_SIZE = 13
_ISTD_NIL = 0x0FFF
# sprm.spra ([MS-DOC] Sprm) -> operand size; 6 is variable (a size byte).
_OPERAND_SIZE = (1, 1, 2, 4, 2, 2, -1, 3)
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
    """Every story's text, in CP order, from the piece table, runs shown in capitals
    in capitals; what a damaged piece table leaves readable (possibly nothing)."""
    total = sum(found.ccp.values()) + 1
    try:
        pieces_ = _piece_table(table, *found.pair(_CLX))
    except _Damaged:
        return ""
    capitals = _capital_runs(word, table, found, bounds)
    capital_starts = [start for start, _end in capitals]
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
            width = 1
        else:
            start = fc & 0x3FFFFFFF
            raw = word[start:start + 2 * count]
            bounds.charge(len(raw))
            chunk = raw[:len(raw) & ~1].decode("utf-16le", "replace")
            width = 2
        if capitals:
            chunk = _shown(chunk, start, width, capitals, capital_starts)
        out.append(chunk)
        have += len(chunk)
        if len(chunk) < count:
            break  # the piece runs past the stream: what follows would be misplaced
    return "".join(out)


def _shown(chunk: str, fc: int, width: int, capitals: list[tuple[int, int]],
           starts: list[int]) -> str:
    """`chunk`, whose character i is at WordDocument offset fc + width * i, with the
    characters in a `capitals` run (FC ranges, ascending; `starts` their starts) in
    capitals. Each run taken moves on through the chunk's bytes, so the work is bounded
    by its length."""
    end = fc + width * len(chunk)
    k = max(0, bisect.bisect_right(starts, fc) - 1)
    parts: list[str] = []
    done = 0
    while k < len(capitals) and capitals[k][0] < end:
        run_start, run_end = capitals[k]
        k += 1
        first = max(done, -(-(run_start - fc) // width))
        last = min(len(chunk), -(-(run_end - fc) // width))
        if first >= last:
            continue
        parts.append(chunk[done:first])
        parts.append(_upper(chunk[first:last]))
        done = last
    if not parts:
        return chunk
    parts.append(chunk[done:])
    return "".join(parts)


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


# -- capitals by formatting ([MS-DOC] 2.4.6 Determining Formatting Properties) --------

Caps = tuple[bool, bool]  # (fCaps, fSmallCaps)
_PLAIN: Caps = (False, False)


def _capital_runs(word: bytes, table: bytes, found: Fib, bounds: Bounds
                  ) -> list[tuple[int, int]]:
    """[start, end) WordDocument stream offsets (FCs) of the text shown in capitals,
    ascending and apart: the CHPX runs whose All caps or Small caps, over the
    paragraph's and the character style's, is on (module docstring). [] when the bin
    tables or their FKPs do not fit: the text is then read as typed."""
    try:
        chpx = _chpx_runs(word, table, found, bounds)
        papx = _papx_runs(word, table, found, bounds)
    except _Damaged:
        return []
    styles = _style_sheet(table, found, bounds)
    resolved: dict[tuple[int, Caps], Caps] = {}

    def style_caps(istd: int, under: Caps) -> Caps:
        key = (istd, under)
        if key not in resolved:
            resolved[key] = _style_caps(styles, istd, under)
        return resolved[key]

    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(chpx) and j < len(papx):  # each step moves i or j on
        if (i + j) % _CHECK_EVERY == 0:
            bounds.check_time()
        c_start, c_end, grpprl = chpx[i]
        p_start, p_end, istd = papx[j]
        start, end = max(c_start, p_start), min(c_end, p_end)
        if start < end:
            shown = style_caps(istd, _PLAIN)
            if grpprl:
                character = _sprm_bytes(grpprl, _SPRM_C_ISTD)
                if len(character) == 2:
                    shown = style_caps(int.from_bytes(character, "little"), shown)
                shown = _apply_caps(grpprl, shown, shown)
            if any(shown):
                if out and out[-1][1] == start:
                    out[-1] = (out[-1][0], end)
                else:
                    out.append((start, end))
        if c_end <= p_end:
            i += 1
        else:
            j += 1
    return out


def _chpx_runs(word: bytes, table: bytes, found: Fib, bounds: Bounds
               ) -> list[tuple[int, int, bytes]]:
    """(start FC, end FC, Chpx grpprl) of every run of the ChpxFkps that PlcBteChpx
    ([MS-DOC] PlcBteChpx, ChpxFkp, Chpx) names, ascending and apart; b"" for
    a run of default properties. Raises _Damaged when anything does not fit."""
    out: list[tuple[int, int, bytes]] = []
    for n, page in enumerate(_fkp_pages(word, table, found.pair(_PLCF_BTE_CHPX))):
        if n % 64 == 0:
            bounds.check_time()
        crun = page[_FKP - 1]
        if not 1 <= crun <= _MAX_CRUN:
            raise _Damaged("ChpxFkp crun")
        rgfc = _fkp_fcs(page, crun, out[-1][1] if out else 0)
        rgb = 4 * (crun + 1)
        for k in range(crun):
            offset = 2 * page[rgb + k]
            grpprl = b""
            if offset:
                if offset < rgb + crun or offset + 1 + page[offset] > _FKP - 1:
                    raise _Damaged("Chpx outside its FKP")
                grpprl = page[offset + 1:offset + 1 + page[offset]]
            out.append((rgfc[k], rgfc[k + 1], grpprl))
    return out


def _papx_runs(word: bytes, table: bytes, found: Fib, bounds: Bounds
               ) -> list[tuple[int, int, int]]:
    """(start FC, end FC, paragraph style istd) of every paragraph of the PapxFkps that
    PlcBtePapx ([MS-DOC] 2.8.6 PlcBtePapx, PapxFkp, BxPap, PapxInFkp, GrpPrlAndIstd)
    names, ascending and apart. Raises _Damaged when anything does not
    fit."""
    out: list[tuple[int, int, int]] = []
    for n, page in enumerate(_fkp_pages(word, table, found.pair(_PLCF_BTE_PAPX))):
        if n % 64 == 0:
            bounds.check_time()
        cpara = page[_FKP - 1]
        if not 1 <= cpara <= _MAX_CPARA:
            raise _Damaged("PapxFkp cpara")
        rgfc = _fkp_fcs(page, cpara, out[-1][1] if out else 0)
        rgbx = 4 * (cpara + 1)
        for k in range(cpara):
            offset = 2 * page[rgbx + _BX_PAP_SIZE * k]
            istd = 0  # no PapxInFkp: the Normal style
            if offset:
                if offset < rgbx + _BX_PAP_SIZE * cpara or offset + 3 > _FKP - 1:
                    raise _Damaged("PapxInFkp outside its FKP")
                cb = page[offset]
                size, at = (2 * cb - 1, offset + 1) if cb else (2 * page[offset + 1],
                                                                offset + 2)
                if size < 2 or at + size > _FKP - 1:
                    raise _Damaged("GrpPrlAndIstd outside its FKP")
                istd, = struct.unpack_from("<H", page, at)
            out.append((rgfc[k], rgfc[k + 1], istd))
    return out


def _fkp_pages(word: bytes, table: bytes, pair: tuple[int, int]) -> Iterator[bytes]:
    """The 512-byte FKPs a bin table (PlcBteChpx / PlcBtePapx: FCs, then 4-byte
    PnFkp*, pn in the low 22 bits) at table[fc:fc+lcb] names, in order."""
    fc, lcb = pair
    if lcb < 12 or (lcb - 4) % 8 or fc + lcb > len(table):
        raise _Damaged("bin table does not fit")
    count = (lcb - 4) // 8
    fcs = struct.unpack_from(f"<{count + 1}I", table, fc)
    if any(b <= a for a, b in itertools.pairwise(fcs)):
        raise _Damaged("bin table FCs not ascending")
    for pn, in struct.iter_unpack("<I", table[fc + 4 * (count + 1):fc + lcb]):
        start = (pn & 0x3FFFFF) * _FKP
        if start + _FKP > len(word):
            raise _Damaged("FKP past the stream")
        yield word[start:start + _FKP]


def _fkp_fcs(page: bytes, count: int, after: int) -> tuple[int, ...]:
    """An FKP's rgfc (count + 1 FCs): ascending, never before `after` (the end of the
    previous FKP's last run), so runs never overlap; raises _Damaged otherwise."""
    rgfc = struct.unpack_from(f"<{count + 1}I", page, 0)
    if rgfc[0] < after or any(b <= a for a, b in itertools.pairwise(rgfc)):
        raise _Damaged("FKP FCs not ascending")
    return rgfc


def _prls(grpprl: bytes) -> Iterator[tuple[int, bytes]]:
    """(sprm, operand) of each Prl ([MS-DOC] Prl, Sprm: the operand size by
    spra); stops at the first Prl that does not fit. sprmTDefTable and
    sprmPChgTabs (never character properties) end it too."""
    pos = 0
    while pos + 2 <= len(grpprl):  # every Prl moves pos on by 3 bytes or more
        sprm, = struct.unpack_from("<H", grpprl, pos)
        size = _OPERAND_SIZE[sprm >> 13]
        pos += 2
        if size < 0:
            if sprm in (_SPRM_T_DEF_TABLE, _SPRM_P_CHG_TABS) or pos >= len(grpprl):
                return
            size = grpprl[pos]
            pos += 1
        if pos + size > len(grpprl):
            return
        yield sprm, grpprl[pos:pos + size]
        pos += size


def _sprm_bytes(grpprl: bytes, wanted: int) -> bytes:
    """The operand of the last `wanted` sprm in `grpprl`, b"" without one."""
    found = b""
    for sprm, operand in _prls(grpprl):
        if sprm == wanted:
            found = operand
    return found


def _apply_caps(grpprl: bytes, value: Caps, style: Caps) -> Caps:
    """`value` after the sprmCFCaps / sprmCFSmallCaps of `grpprl`; their ToggleOperand
    ([MS-DOC] 2.9.327) 0x80 / 0x81 is `style`'s value / its opposite, any other value
    than 0, 1, 0x80, 0x81 changes nothing."""
    caps, small = value
    for sprm, operand in _prls(grpprl):
        if sprm not in (_SPRM_C_F_CAPS, _SPRM_C_F_SMALL_CAPS):
            continue
        index = 0 if sprm == _SPRM_C_F_CAPS else 1
        toggle = {0x00: False, 0x01: True, 0x80: style[index],
                  0x81: not style[index]}.get(operand[0])
        if toggle is None:
            continue
        if index == 0:
            caps = toggle
        else:
            small = toggle
    return caps, small


@dataclass(frozen=True)
class _Style:
    base: int  # istdBase, _ISTD_NIL for none
    chpx: bytes  # the style's character grpprl (UpxChpx), b"" for none


def _style_sheet(table: bytes, found: Fib, bounds: Bounds) -> dict[int, _Style]:
    """istd -> style of the STSH at fcStshf ([MS-DOC] 2.9.271 STSH, 2.9.274 Stshif,
    2.9.135 LPStd, STD, StdfBase, 2.9.113 GrLPUpxSw, 2.9.138 LPUpxChpx): the styles
    read before anything that does not fit; {} when none (0x80 then reads as off,
    0x81 as on)."""
    fc, lcb = found.pair(_STSHF)
    end = fc + lcb
    if lcb < 6 or end > len(table):
        return {}
    cb_stshi, cstd, cb_base = struct.unpack_from("<3H", table, fc)
    pos = fc + 2 + cb_stshi
    out: dict[int, _Style] = {}
    for istd in range(cstd):  # cstd < 0x10000; every style moves pos on
        if istd % _CHECK_EVERY == 0:
            bounds.check_time()
        if pos + 2 > end:
            break
        cb_std, = struct.unpack_from("<H", table, pos)
        std, pos = pos + 2, pos + 2 + cb_std + (cb_std & 1)
        if cb_std == 0:
            continue
        if cb_std < max(cb_base, 10) + 2 or std + cb_std > end:
            break
        stk_base, cupx_next = struct.unpack_from("<HH", table, std + 2)
        stk, base, cupx = stk_base & 0x000F, stk_base >> 4, cupx_next & 0x000F
        name_chars, = struct.unpack_from("<H", table, std + cb_base)
        upx = std + cb_base + 2 + 2 * name_chars + 2  # Xstz: cch, chars, terminator
        # The character UPX: second of a paragraph style, first of a character
        # style, third of a table style; numbering styles have none.
        wanted = {1: 1, 2: 0, 3: 2}.get(stk)
        chpx = b""
        for k in range(min(cupx, 3)):
            if upx + 2 > std + cb_std:
                break
            size, = struct.unpack_from("<H", table, upx)
            if upx + 2 + size > std + cb_std:
                break
            if k == wanted:
                chpx = table[upx + 2:upx + 2 + size]
                break
            upx += 2 + size + (size & 1)
        out[istd] = _Style(base, chpx)
    return out


def _style_caps(styles: Mapping[int, _Style], istd: int, under: Caps) -> Caps:
    """Caps of style `istd` laid over `under` (nothing for a paragraph style, the
    paragraph's for a character style): its istdBase chain from the root down, each
    toggle relative to its base. A chain longer than the style sheet (a loop) or an
    unknown istd stops where it is."""
    chain: list[_Style] = []
    while istd in styles and len(chain) <= len(styles):
        style = styles[istd]
        chain.append(style)
        istd = style.base
    value = under
    for style in reversed(chain):
        if style.chpx:
            value = _apply_caps(style.chpx, value, value)
    return value


def _upper(text: str) -> str:
    """`text` in capitals, one character for one (ß stays ß), so CPs keep their place."""
    up = text.upper()
    if len(up) == len(text):
        return up
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)
