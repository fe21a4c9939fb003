"""Legacy Office readers (`ole`, `msdoc`, `msxls`, `msppt`) on real files and on hostile ones.

Real files: the LibreOffice-made cases of tests/corpus/cases/office/legacy/ (made by
tests/corpus/make_legacy_office.py) and msoffcrypto-tool's encrypted and plain files.
Hostile files are those cases with their structures broken: truncated, bogus FIB and
piece-table offsets, record lengths past the end, loops, random bytes. Nothing may
raise but LimitExceeded, and nothing may hang.
"""

from __future__ import annotations

import random
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.message.documents import LimitExceeded, msdoc, msppt, msxls, ole
from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece
from gateway.message.limits import DEFAULT_LIMITS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import make_legacy_office as make

CASES = Path(__file__).resolve().parents[1] / "corpus" / "cases" / "office" / "legacy"


def case(name: str) -> bytes:
    return (CASES / name).read_bytes()


def read(data: bytes, bounds: Bounds | None = None) -> list[Piece]:
    return list(ole.pieces(data, bounds or Bounds()))


def found(pieces: list[Piece]) -> set[tuple[str, str, str]]:
    return {(p.rule, p.location, p.text.strip()) for p in pieces}


def streams(name: str) -> dict[str, bytes]:
    return make.ole_streams(case(name))


# -- Word ---------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("Minit-badan.doc", ("lines", "body", "SULIT")),
    ("Minit-header.doc", ("label", "header", "RAHSIA")),
    ("Minit-footer.doc", ("label", "footer", "TERHAD")),
    ("Minit-first-header.doc", ("label", "header", "SULIT")),
    ("Minit-even-footer.doc", ("label", "footer", "RAHSIA BESAR")),
    ("Minit-header-subject.doc", ("label", "header", "Minit Mesyuarat Pengurusan - TERHAD")),
    ("Minit-textbox.doc", ("lines", "textbox", "TERHAD")),
    ("Minit-header-textbox.doc", ("label", "header", "SULIT")),
    ("Minit-footer-textbox.doc", ("label", "footer", "SULIT")),
    ("Minit-header-footer-textbox.doc", ("label", "header", "SULIT")),
    ("Minit-header-footer-textbox.doc", ("label", "footer", "Kementerian Contoh")),
    ("Minit-nota-kaki.doc", ("lines", "footnote", "RAHSIA")),
    ("Minit-tera-air.doc", ("label", "watermark", "SULIT")),
])
def test_word_stories(name: str, expected: tuple[str, str, str]) -> None:
    assert expected in found(read(case(name)))


def test_word_first_page_header_and_odd_header_are_separate_stories() -> None:
    got = found(read(case("Minit-first-header.doc")))
    assert ("label", "header", "Kementerian Contoh Malaysia") in got
    assert ("label", "header", "SULIT") in got


def test_word_even_footer_is_a_footer_not_a_header() -> None:
    got = read(case("Minit-even-footer.doc"))
    assert {p.part for p in got if p.text.strip() in ("RAHSIA BESAR", "Muka surat")} == {
        "footer"}


def test_word_header_and_footer_text_boxes_are_told_apart() -> None:
    # Both boxes are in the one header text box story, the footer's after the header's.
    got = [(p.part, p.text.strip()) for p in read(case("Minit-header-footer-textbox.doc"))
           if p.text.strip() in ("SULIT", "Kementerian Contoh")]
    assert got == [("header", "SULIT"), ("footer", "Kementerian Contoh")]


def _pair(word: bytes, index: int) -> tuple[int, int]:
    """(fc, lcb) of FibRgFcLcb97 pair `index`."""
    _lw, fclcb = _fib_offsets(word)
    fc, lcb = struct.unpack_from("<II", word, fclcb + 8 * index)
    return fc, lcb


def _set_lcb(word: bytearray, table: bytearray, index: int) -> None:
    _lw, fclcb = _fib_offsets(bytes(word))
    struct.pack_into("<I", word, fclcb + 8 * index + 4, 0)


def _zero_ftxbxs_lid(word: bytearray, table: bytearray) -> None:
    fc, lcb = _pair(bytes(word), 58)  # PlcfHdrtxbxTxt: 3 CPs, 2 FTXBXS
    assert lcb == 3 * 4 + 2 * 22
    struct.pack_into("<I", table, fc + 3 * 4 + 14, 0)


def _cps(index: int, *cps: int) -> Callable[[bytearray, bytearray], None]:
    def mutate(word: bytearray, table: bytearray) -> None:
        fc, _lcb = _pair(bytes(word), index)
        struct.pack_into(f"<{len(cps)}I", table, fc, *cps)
    return mutate


def _both(*steps: Callable[[bytearray, bytearray], None]
          ) -> Callable[[bytearray, bytearray], None]:
    def mutate(word: bytearray, table: bytearray) -> None:
        for step in steps:
            step(word, table)
    return mutate


def _drop(index: int) -> Callable[[bytearray, bytearray], None]:
    return lambda word, table: _set_lcb(word, table, index)


@pytest.mark.parametrize(("mutation", "part"), [
    pytest.param(None, "footer", id="intact"),
    # One link lost, another still names the shape: FTXBXS.lid without the drawing,
    # the drawing's lTxid without FTXBXS.lid.
    pytest.param(_drop(50), "footer", id="no_drawing"),
    pytest.param(_zero_ftxbxs_lid, "footer", id="no_ftxbxs_lid"),
    # The chain broken: the box is read as before, `header`, never lost.
    pytest.param(_both(_drop(50), _zero_ftxbxs_lid), "header", id="no_shape"),
    pytest.param(_drop(58), "header", id="no_plcfhdrtxbxtxt"),
    pytest.param(_cps(58, 7, 0, 8), "header", id="plcfhdrtxbxtxt_descends"),
    pytest.param(_cps(58, 0, 7, 0x7FFFFFFF), "header", id="plcfhdrtxbxtxt_past_story"),
    pytest.param(_drop(41), "header", id="no_plcspahdr"),
    pytest.param(_cps(41, 30, 212), "header", id="anchor_outside_every_story"),
    pytest.param(_cps(41, 300, 212), "header", id="plcspahdr_descends"),
    pytest.param(_drop(11), "header", id="no_plcfhdd"),
    pytest.param(_cps(11, 5, 0), "header", id="plcfhdd_descends"),
])
def test_word_footer_text_box_chain(mutation: Callable[[bytearray, bytearray], None] | None,
                                    part: str) -> None:
    parts = streams("Minit-footer-textbox.doc")
    word = bytearray(parts["WordDocument"])
    name = "1Table" if struct.unpack_from("<H", word, 10)[0] & 0x0200 else "0Table"
    table = bytearray(parts[name])
    if mutation is not None:
        mutation(word, table)
    parts["WordDocument"], parts[name] = bytes(word), bytes(table)
    got = {p.part for p in msdoc.pieces(parts, Bounds()) if p.text.strip() == "SULIT"}
    assert got == {part}


def test_word_table_cells_are_lines_of_their_own() -> None:
    texts = [p.text for p in read(case("Minit-jadual.doc")) if p.part == "body"]
    assert "SULIT" in texts and "Rujukan: ANM.100-1/2/3" in texts


def test_word_body_paragraphs_in_order() -> None:
    texts = [p.text for p in read(case("Minit-badan.doc")) if p.part == "body"]
    assert texts[:2] == ["Minit Mesyuarat Jawatankuasa Pengurusan Bil. 4/2025", "SULIT"]


def test_word_prose_is_read_as_prose() -> None:
    got = found(read(case("Notis-prosa.doc")))
    assert ("label", "header", "PENDAFTARAN DIBUKA - TEMPAT TERHAD") in got
    assert ("lines", "body", "Maklumat ini sulit dan hanya untuk penerima.") in got


def test_word_fields_keep_results_and_drop_instructions() -> None:
    text = "A\x13 PAGE \\* MERGEFORMAT \x14 3\x15B\x13 IF \x13 DOCPROPERTY x \x14y\x15 \x14" \
           "SULIT\x15C\x13 TC \"hidden\" \x15D"
    assert msdoc._visible(text) == "A 3BSULITCD"
    assert msdoc._visible("\x15\x14x\x13") == "x"  # stray marks never raise


def test_word_compressed_text_follows_the_spec_table() -> None:
    # [MS-DOC] 2.9.73: 0x93/0x94 are curly quotes, 0x80 stays U+0080 (not the euro).
    raw = bytes([0x93, 0x53, 0x94, 0x80])
    assert raw.decode("latin-1").translate(msdoc._COMPRESSED_MAP) == "\u201cS\u201d\x80"


def test_word_encryption_flags() -> None:
    word = bytearray(streams("Minit-badan.doc")["WordDocument"])
    assert msdoc.encryption(bytes(word)) == (False, None)
    struct.pack_into("<H", word, 10, struct.unpack_from("<H", word, 10)[0] | 0x0100)
    assert msdoc.encryption(bytes(word)) == (True, "rc4")
    struct.pack_into("<H", word, 10, struct.unpack_from("<H", word, 10)[0] | 0x8000)
    assert msdoc.encryption(bytes(word)) == (True, "xor")
    assert msdoc.encryption(b"\0" * 10) == (None, None)


def test_word_obfuscated_file_is_xor_and_unread() -> None:
    parts = streams("Minit-badan.doc")
    word = bytearray(parts["WordDocument"])
    struct.pack_into("<H", word, 10, struct.unpack_from("<H", word, 10)[0] | 0x8100)
    parts["WordDocument"] = bytes(word)
    data = make.cfb(parts)
    assert ole.encryption(data) == (True, "xor")
    assert read(data) == []


# -- Word: text shown in capitals (All caps / Small caps, [MS-DOC] sprmCFCaps) ----------

RED = Path(__file__).resolve().parents[1] / "corpus" / "cases" / "redteam"


def _red_streams(name: str) -> dict[str, bytes]:
    parts: dict[str, bytes] = make.ole_streams((RED / name).read_bytes())
    return parts


def _header(parts: dict[str, bytes]) -> list[str]:
    return [p.text for p in msdoc.pieces(parts, Bounds()) if p.part == "header"]


@pytest.mark.parametrize(("name", "shown"), [
    ("Kepala-huruf-besar.doc", "RAHSIA"),  # direct formatting: sprmCFCaps 1
    ("Kepala-gaya-perenggan.doc", "RAHSIA"),  # a paragraph style with caps (STSH)
    ("Kepala-gaya-aksara.doc", "RAHSIA"),  # a character style with caps (sprmCIstd)
    ("Kepala-gaya-dimatikan.doc", "rahsia"),  # caps style, switched off on the run
    ("Prosa-huruf-besar.doc", "PENDAFTARAN DIBUKA - TEMPAT TERHAD"),
])
def test_word_text_in_capitals_is_read_as_shown(name: str, shown: str) -> None:
    parts = _red_streams(name)
    assert _header(parts) == [shown]
    assert [p.text for p in msdoc.pieces(parts, Bounds()) if p.part == "body"] == [
        "Laporan audit dalaman tahun 2025."]


def _chpx_page(parts: dict[str, bytes]) -> tuple[str, int, int]:
    """(table stream name, where the PlcBteChpx is in it, where its first ChpxFkp is in
    the WordDocument stream)."""
    word = parts["WordDocument"]
    table = "1Table" if struct.unpack_from("<H", word, 10)[0] & 0x0200 else "0Table"
    fc, _lcb = _pair(word, 12)
    pn, = struct.unpack_from("<I", parts[table], fc + 8)
    return table, fc, (pn & 0x3FFFFF) * 512


def _edit_grpprl(parts: dict[str, bytes], old: bytes, new: bytes) -> None:
    _table, _fc, page = _chpx_page(parts)
    word = bytearray(parts["WordDocument"])
    at = word.index(old, page, page + 512)
    word[at:at + len(old)] = new
    parts["WordDocument"] = bytes(word)


@pytest.mark.parametrize(("name", "old", "new", "shown"), [
    ("Kepala-huruf-besar.doc", b"\x3b\x08\x01", b"\x3b\x08\x00", "rahsia"),
    ("Kepala-huruf-besar.doc", b"\x3b\x08\x01", b"\x3a\x08\x01", "RAHSIA"),  # small caps
    # ToggleOperand (2.9.327): 0x80 as the style (Header: no caps), 0x81 its opposite.
    ("Kepala-huruf-besar.doc", b"\x3b\x08\x01", b"\x3b\x08\x80", "rahsia"),
    ("Kepala-huruf-besar.doc", b"\x3b\x08\x01", b"\x3b\x08\x81", "RAHSIA"),
    ("Kepala-huruf-besar.doc", b"\x3b\x08\x01", b"\x3b\x08\x07", "rahsia"),  # no such value
    # The paragraph style has caps: 0x80 keeps them, 0x81 switches them off.
    ("Kepala-gaya-dimatikan.doc", b"\x3b\x08\x00", b"\x3b\x08\x80", "RAHSIA"),
    ("Kepala-gaya-dimatikan.doc", b"\x3b\x08\x00", b"\x3b\x08\x81", "rahsia"),
    ("Kepala-gaya-dimatikan.doc", b"\x3a\x08\x00", b"\x3a\x08\x01", "RAHSIA"),
])
def test_word_caps_operands(name: str, old: bytes, new: bytes, shown: str) -> None:
    parts = _red_streams(name)
    _edit_grpprl(parts, old, new)
    assert _header(parts) == [shown]


def test_word_caps_is_one_character_for_one() -> None:
    # ß has no one-letter capital: it stays, so every CP after it keeps its place.
    assert msdoc._upper("straße rahsia") == "STRAßE RAHSIA"


def _damage_chpx(mutation: str, parts: dict[str, bytes]) -> None:
    table_name, fc, page = _chpx_page(parts)
    word = bytearray(parts["WordDocument"])
    table = bytearray(parts[table_name])
    crun = word[page + 511]
    if mutation == "crun_zero":
        word[page + 511] = 0
    elif mutation == "crun_too_big":
        word[page + 511] = 0x66
    elif mutation == "fcs_descend":
        struct.pack_into("<I", word, page + 4, 0xFFFFFFF0)
    elif mutation == "chpx_in_rgfc":
        word[page + 4 * (crun + 1):page + 4 * (crun + 1) + crun] = bytes([1]) * crun
    elif mutation == "chpx_past_page":
        at = page + 4 * (crun + 1) + 1  # the run of the header, which has a Chpx
        word[page + 2 * word[at]] = 0xFF
    elif mutation == "fkp_past_stream":
        struct.pack_into("<I", table, fc + 8, 0x3FFFFF)
    elif mutation == "bin_table_lcb":
        _lw, fclcb = _fib_offsets(bytes(word))
        struct.pack_into("<I", word, fclcb + 8 * 12 + 4, 13)
    elif mutation == "papx_cpara":
        papx_fc, _lcb = _pair(bytes(word), 13)
        pn, = struct.unpack_from("<I", table, papx_fc + 8)
        word[(pn & 0x3FFFFF) * 512 + 511] = 0xFF
    parts["WordDocument"] = bytes(word)
    parts[table_name] = bytes(table)


@pytest.mark.parametrize("mutation", ["crun_zero", "crun_too_big", "fcs_descend",
                                      "chpx_in_rgfc", "chpx_past_page", "fkp_past_stream",
                                      "bin_table_lcb", "papx_cpara"])
def test_word_damaged_formatting_reads_text_as_typed(mutation: str) -> None:
    parts = _red_streams("Kepala-huruf-besar.doc")
    _damage_chpx(mutation, parts)
    assert _header(parts) == ["rahsia"]


def test_word_style_sheet_loop_and_damage_never_hang() -> None:
    parts = _red_streams("Kepala-gaya-perenggan.doc")
    word = parts["WordDocument"]
    name = "1Table" if struct.unpack_from("<H", word, 10)[0] & 0x0200 else "0Table"
    fc, lcb = _pair(word, 1)
    table = bytearray(parts[name])
    styles = msdoc._style_sheet(bytes(table), msdoc.fib(word), Bounds())
    istd = next(i for i, s in styles.items() if s.chpx)
    # Every style its own base: the chain stops, the caps stay.
    stsh = bytes(table[fc:fc + lcb])
    looped = bytearray(table)
    pos = fc + 2 + struct.unpack_from("<H", stsh, 0)[0]
    for _istd in range(struct.unpack_from("<H", stsh, 2)[0]):
        cb, = struct.unpack_from("<H", looped, pos)
        if cb:
            stk_base, = struct.unpack_from("<H", looped, pos + 4)
            struct.pack_into("<H", looped, pos + 4, (stk_base & 0xF) | (istd << 4))
        pos += 2 + cb + (cb & 1)
    parts[name] = bytes(looped)
    started = time.monotonic()
    assert _header(parts) == ["RAHSIA"]
    assert time.monotonic() - started < 5
    # A style sheet cut short: no style known, the text as typed.
    cut = bytearray(table)
    struct.pack_into("<H", cut, fc + 2 + struct.unpack_from("<H", stsh, 0)[0], 0xFFFF)
    parts[name] = bytes(cut)
    assert _header(parts) == ["rahsia"]


@pytest.mark.parametrize("name", ["Kepala-gaya-perenggan.doc", "Kepala-gaya-aksara.doc"])
def test_random_damage_to_formatting(name: str) -> None:
    # Random bytes in the FKPs, the bin tables and the style sheet: never raises, never
    # hangs, and the text is always there, in capitals or as typed.
    rng = random.Random(name)
    original = _red_streams(name)
    word = original["WordDocument"]
    table_name = "1Table" if struct.unpack_from("<H", word, 10)[0] & 0x0200 else "0Table"
    table_spans = [_pair(word, index) for index in (1, 12, 13)]
    pages = sorted({(pn & 0x3FFFFF) * 512 for fc, lcb in table_spans[1:]
                    for pn in struct.unpack_from(f"<{(lcb - 4) // 8}I", original[table_name],
                                                 fc + 4 * ((lcb - 4) // 8 + 1))})
    for _round in range(300):
        parts = dict(original)
        data, table = bytearray(word), bytearray(original[table_name])
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.5:
                data[rng.choice(pages) + rng.randrange(512)] = rng.randrange(256)
            else:
                fc, lcb = rng.choice(table_spans)
                table[fc + rng.randrange(lcb)] = rng.randrange(256)
        parts["WordDocument"], parts[table_name] = bytes(data), bytes(table)
        started = time.monotonic()
        headers = _header(parts)
        assert time.monotonic() - started < 5
        assert len(headers) == 1 and headers[0].upper() == "RAHSIA"


# -- Excel --------------------------------------------------------------------------

def test_excel_cells() -> None:
    got = found(read(case("Senarai-sel.xls")))
    assert ("lines", "cell", "SULIT") in got
    assert ("lines", "cell", "Ahmad bin Ali") in got
    assert ("lines", "cell", "Klasifikasi: RAHSIA") in found(read(case("Senarai-label.xls")))


def test_excel_header_codes_are_removed() -> None:
    workbook = streams("Bajet-header.xls")["Workbook"]
    assert b'&C&"Arial,Bold"TERHAD' in workbook  # as LibreOffice wrote it
    got = [p for p in read(case("Bajet-header.xls")) if p.rule == "label"]
    assert ("header", "TERHAD") in {(p.part, p.text) for p in got}
    assert all("&" not in p.text for p in got)


def test_excel_footer() -> None:
    assert ("label", "footer", "RAHSIA") in found(read(case("Bajet-footer.xls")))


def test_excel_first_page_header_record() -> None:
    got = found(read(case("Bajet-first-header.xls")))
    assert ("label", "header", "SULIT") in got
    assert ("label", "header", "Bajet 2026") in got


def test_excel_even_page_footer_record() -> None:
    parts = streams("Senarai-sel.xls")
    parts["Workbook"] = make.with_record_before_last_eof(
        parts["Workbook"], make.header_footer_record(even_header="&LKementerian",
                                                     even_footer="&RRAHSIA BESAR"))
    got = found(read(make.cfb(parts)))
    assert ("label", "footer", "RAHSIA BESAR") in got
    assert ("label", "header", "Kementerian") in got


def _rec(rtype: int, data: bytes) -> bytes:
    return struct.pack("<HH", rtype, len(data)) + data


def _bof(kind: int) -> bytes:
    return _rec(0x0809, struct.pack("<HHHHII", 0x0600, kind, 0x0DBB, 0x07CC, 0, 6))


def biff8(sheet_records: bytes, globals_records: bytes = b"") -> bytes:
    """A minimal BIFF8 Workbook stream: globals with one BOUNDSHEET, then one sheet."""
    def globals_(at: int) -> bytes:
        return (_bof(0x0005) + globals_records + _rec(0x0085, struct.pack("<IBBBB", at, 0, 0,
                                                                         2, 0) + b"S1")
                + _rec(0x000A, b""))
    at = len(globals_(0))
    return globals_(at) + _bof(0x0010) + sheet_records + _rec(0x000A, b"")


def test_excel_formula_string_result() -> None:
    # A cached string result: FormulaValue type 0 with fExprO 0xFFFF, then a STRING record.
    formula = struct.pack("<HHH", 0, 0, 15) + b"\0" * 6 + b"\xff\xff" + struct.pack(
        "<HIH", 0, 0, 0)
    stream = biff8(_rec(0x0006, formula) + _rec(0x0207, make.xls_string("SULIT")))
    assert ("lines", "cell", "SULIT") in found(list(msxls.pieces(stream, Bounds())))


def test_excel_biff5_header_in_its_codepage() -> None:
    bof5 = _rec(0x0809, struct.pack("<HHHH", 0x0500, 0x0010, 0, 0))
    stream = bof5 + _rec(0x0042, struct.pack("<H", 1252)) + _rec(
        0x0014, bytes([9]) + b"&C\x93SULIT\x94") + _rec(0x000A, b"")
    assert ("header", "\u201cSULIT\u201d") in {
        (p.part, p.text) for p in msxls.pieces(stream, Bounds())}


def test_excel_encryption() -> None:
    assert ole.encryption(case("rc4cryptoapi_password.xls")) == (True, "rc4")
    assert ole.encryption(case("xor_password_123456789012345.xls")) == (True, "xor")
    assert ole.encryption(case("plain.xls")) == (False, None)
    assert read(case("rc4cryptoapi_password.xls")) == []
    assert read(case("xor_password_123456789012345.xls")) == []
    assert msxls.encryption(b"") == (None, None)
    bof5 = _rec(0x0809, struct.pack("<HHHH", 0x0500, 0x0005, 0, 0))
    assert msxls.encryption(bof5 + _rec(0x002F, b"\x01\x00\x02\x00")) == (True, "xor")
    assert msxls.encryption(_bof(0x0005) + _rec(0x000A, b"")) == (False, None)


# -- PowerPoint ---------------------------------------------------------------------

def test_powerpoint_slides_are_numbered_in_order() -> None:
    got = found(read(case("Taklimat-slaid.ppt")))
    assert ("lines", "slide2", "SULIT") in got
    assert ("lines", "slide1", "Taklimat Projek Digital") in got


def test_powerpoint_text_box_master_and_notes() -> None:
    assert ("lines", "slide1", "TERHAD") in found(read(case("Taklimat-kotak.ppt")))
    assert ("lines", "slide_master", "RAHSIA") in found(read(case("Taklimat-induk.ppt")))
    assert ("lines", "notes", "SULIT") in found(read(case("Taklimat-nota.ppt")))


def test_powerpoint_made_by_powerpoint() -> None:
    got = found(read(case("plain.ppt")))
    assert ("lines", "slide1", "Lorem ipsum") in got
    assert ("lines", "slide_master", "Click to edit Master title style") in got


def test_powerpoint_encryption() -> None:
    assert ole.encryption(case("rc4cryptoapi_password.ppt")) == (True, "rc4")
    assert ole.encryption(case("plain.ppt")) == (False, None)
    assert read(case("rc4cryptoapi_password.ppt")) == []


def test_powerpoint_encrypted_token() -> None:
    parts = streams("Taklimat-slaid.ppt")
    user = bytearray(parts["Current User"])
    struct.pack_into("<I", user, 12, msppt.TOKEN_ENCRYPTED)
    parts["Current User"] = bytes(user)
    data = make.cfb(parts)
    assert ole.encryption(data) == (True, "rc4")
    assert read(data) == []


def test_powerpoint_without_current_user_is_still_read() -> None:
    parts = streams("Taklimat-slaid.ppt")
    del parts["Current User"]
    got = found(read(make.cfb(parts)))
    assert ("lines", "slide", "SULIT") in got  # no persist chain: slides unnumbered


def test_powerpoint_wordart_text() -> None:
    # An OfficeArtFOPT with gtextUNICODE (complex) inside a slide's drawing.
    text = "RAHSIA\0".encode("utf-16le")
    fopt_body = struct.pack("<HI", 0x0004, 0) + struct.pack("<HI", 0x80C0, len(text)) + text
    fopt = struct.pack("<HHI", 0x0023, 0xF00B, len(fopt_body)) + fopt_body
    container = struct.pack("<HHI", 0x000F, 0xF004, len(fopt)) + fopt
    assert list(msppt.shape_texts(container, 0, len(container), Bounds())) == ["RAHSIA"]


# -- OLE dispatch and OOXML encryption ----------------------------------------------

def test_other_ole_files_give_nothing() -> None:
    data = make.cfb({"Contents": b"SULIT\r" * 10, "Book1": b"\0" * 5000})
    assert read(data) == []
    assert ole.encryption(data) == (False, None)


def test_ooxml_in_ole() -> None:
    assert ole.encryption(case("example_password.docx")) == (True, "aes")
    assert ole.encryption(case("ecma376standard_password.docx")) == (True, "aes")
    assert read(case("example_password.docx")) == []


@pytest.mark.parametrize(("info", "scheme"), [
    (struct.pack("<HHI", 4, 4, 0x40) + b'<keyData cipherAlgorithm="AES"/>', "aes"),
    (struct.pack("<HHI", 4, 4, 0x40) + b'<keyData cipherAlgorithm="RC4"/>', "rc4"),
    (struct.pack("<HHIIIII", 3, 2, 0x24, 32, 0x24, 0, 0x660E) + b"\0" * 40, "aes"),
    (struct.pack("<HHIIIII", 3, 2, 0x04, 32, 0x04, 0, 0x6801) + b"\0" * 40, "rc4"),
    (struct.pack("<HHI", 4, 3, 0), None),
    (b"", None),
])
def test_ooxml_scheme(info: bytes, scheme: str | None) -> None:
    data = make.cfb({"EncryptionInfo": info, "EncryptedPackage": b"\0" * 5000})
    assert ole.encryption(data) == (True, scheme)


def test_unreadable_ole() -> None:
    assert ole.encryption(ole.MAGIC + b"\0" * 600) == (None, None)
    assert read(ole.MAGIC + b"\0" * 600) == []


# -- hostile inputs -----------------------------------------------------------------

REAL = sorted(p.name for p in CASES.glob("*.*") if not p.name.endswith(".yaml"))


def quietly(call: Callable[..., object], *args: object) -> float:
    """Run a reader to the end; only LimitExceeded may come out. Returns seconds."""
    start = time.monotonic()
    try:
        result = call(*args)
        if isinstance(result, Iterator):
            list(result)
    except LimitExceeded:
        pass
    return time.monotonic() - start


@pytest.mark.parametrize("name", REAL)
def test_truncated_files(name: str) -> None:
    data = case(name)
    for size in (0, 8, 512, 1536, 3000, len(data) // 2, len(data) - 1):
        assert quietly(ole.pieces, data[:size], Bounds()) < 5
        assert quietly(ole.encryption, data[:size]) < 5


def _fib_offsets(word: bytes) -> tuple[int, int]:
    """Where FibRgLw97 and FibRgFcLcb97 begin."""
    csw, = struct.unpack_from("<H", word, 32)
    lw = 34 + 2 * csw + 2
    cslw, = struct.unpack_from("<H", word, lw - 2)
    return lw, lw + 4 * cslw + 2


@pytest.mark.parametrize(("field", "value"), [
    ("fcClx", 0xFFFFFFF0), ("lcbClx", 0xFFFFFFF0), ("lcbClx", 3), ("fcClx", 0),
    ("fcPlcfHdd", 0xFFFFFFF0), ("lcbPlcfHdd", 0x7FFFFFFF), ("fcDggInfo", 0),
    ("lcbDggInfo", 0xFFFFFFFF), ("ccpText", 0x7FFFFFFF), ("ccpHdd", -5),
    ("ccpHdd", 0x7FFFFFFF), ("csw", 0xFFFF), ("cslw", 0xFFFF), ("cbRgFcLcb", 0xFFFF),
])
def test_bogus_fib(field: str, value: int) -> None:
    parts = streams("Minit-header.doc")
    word = bytearray(parts["WordDocument"])
    lw, fclcb = _fib_offsets(bytes(word))
    where = {"fcClx": (fclcb + 8 * 33, "<I"), "lcbClx": (fclcb + 8 * 33 + 4, "<I"),
             "fcPlcfHdd": (fclcb + 8 * 11, "<I"), "lcbPlcfHdd": (fclcb + 8 * 11 + 4, "<I"),
             "fcDggInfo": (fclcb + 8 * 50, "<I"), "lcbDggInfo": (fclcb + 8 * 50 + 4, "<I"),
             "ccpText": (lw + 12, "<i"), "ccpHdd": (lw + 20, "<i"), "csw": (32, "<H"),
             "cslw": (lw - 2, "<H"), "cbRgFcLcb": (fclcb - 2, "<H")}
    at, fmt = where[field]
    struct.pack_into(fmt, word, at, value)
    parts["WordDocument"] = bytes(word)
    assert quietly(msdoc.pieces, parts, Bounds(), "") < 5
    assert quietly(ole.pieces, make.cfb(parts), Bounds()) < 5


def _clx(parts: dict[str, bytes]) -> tuple[str, int]:
    word = parts["WordDocument"]
    _lw, fclcb = _fib_offsets(word)
    fc, = struct.unpack_from("<I", word, fclcb + 8 * 33)
    table = "1Table" if struct.unpack_from("<H", word, 10)[0] & 0x0200 else "0Table"
    return table, fc


@pytest.mark.parametrize("mutation", ["descending", "huge_cp", "fc_past_end", "huge_count",
                                      "prc_loop", "negative_prc"])
def test_bogus_piece_table(mutation: str) -> None:
    parts = streams("Minit-header.doc")
    name, fc = _clx(parts)
    table = bytearray(parts[name])
    pcdt = fc
    while table[pcdt] == 0x01:
        pcdt += 3 + struct.unpack_from("<H", table, pcdt + 1)[0]
    plc = pcdt + 5
    if mutation == "descending":
        struct.pack_into("<II", table, plc, 50, 10)
    elif mutation == "huge_cp":
        struct.pack_into("<I", table, plc + 4, 0xFFFFFFFF)
    elif mutation == "fc_past_end":
        lcb, = struct.unpack_from("<I", table, pcdt + 1)
        count = (lcb - 4) // 12
        struct.pack_into("<I", table, plc + 4 * (count + 1) + 2, 0x3FFFFFF0)
    elif mutation == "huge_count":
        struct.pack_into("<I", table, pcdt + 1, 0xFFFFFFF0)
    elif mutation == "prc_loop":
        table[fc:fc + 3] = b"\x01\x00\x00"  # a zero-size Prc still moves on
    else:
        table[fc:fc + 3] = b"\x01\xff\xff"
    parts[name] = bytes(table)
    assert quietly(msdoc.pieces, parts, Bounds(), "") < 5


def test_piece_table_reaching_far_is_charged() -> None:
    # A piece claiming two billion characters: charged before it is sliced, and the
    # slice cannot exceed the stream anyway.
    parts = streams("Minit-badan.doc")
    word = bytearray(parts["WordDocument"])
    lw, _fclcb = _fib_offsets(bytes(word))
    struct.pack_into("<i", word, lw + 12, 0x7FFFFFFF)
    parts["WordDocument"] = bytes(word)
    name, fc = _clx(parts)
    table = bytearray(parts[name])
    plc = fc + 5
    struct.pack_into("<I", table, plc + 4, 0x7FFFFFFF)
    parts[name] = bytes(table)
    got = list(msdoc.pieces(parts, Bounds()))
    assert any(p.text == "SULIT" for p in got)


def _ppt_edit_offset(parts: dict[str, bytes]) -> int:
    offset: int = struct.unpack_from("<I", parts["Current User"], 16)[0]
    return offset


@pytest.mark.parametrize("mutation", ["edit_loop", "bad_edit", "bad_persist", "bad_doc_ref",
                                      "record_past_end", "huge_persist_count"])
def test_bogus_powerpoint(mutation: str) -> None:
    parts = streams("Taklimat-slaid.ppt")
    doc = bytearray(parts["PowerPoint Document"])
    edit = _ppt_edit_offset(parts)
    body = edit + 8
    if mutation == "edit_loop":
        struct.pack_into("<I", doc, body + 8, edit)  # offsetLastEdit: itself
    elif mutation == "bad_edit":
        user = bytearray(parts["Current User"])
        struct.pack_into("<I", user, 16, 0xFFFFFF00)
        parts["Current User"] = bytes(user)
    elif mutation == "bad_persist":
        struct.pack_into("<I", doc, body + 12, 0xFFFFFF00)
    elif mutation == "bad_doc_ref":
        struct.pack_into("<I", doc, body + 16, 0xABCDE)
    elif mutation == "record_past_end":
        struct.pack_into("<I", doc, 4, 0xFFFFFFFF)  # the DocumentContainer's recLen
    else:
        persist_at, = struct.unpack_from("<I", doc, body + 12)
        struct.pack_into("<I", doc, persist_at + 8, 0xFFFFFFFF)  # cPersist 4095
    parts["PowerPoint Document"] = bytes(doc)
    assert quietly(msppt.pieces, parts.get("Current User"), parts["PowerPoint Document"],
                   Bounds(), "") < 5
    assert quietly(ole.pieces, make.cfb(parts), Bounds()) < 5


def test_powerpoint_record_past_end_still_reads_what_is_there() -> None:
    parts = streams("Taklimat-slaid.ppt")
    doc = bytearray(parts["PowerPoint Document"])
    struct.pack_into("<I", doc, 4, 0xFFFFFFFF)
    got = found(list(msppt.pieces(parts["Current User"], bytes(doc), Bounds())))
    assert ("lines", "slide2", "SULIT") in got


def test_excel_record_past_end_and_bogus_header_footer() -> None:
    stream = biff8(_rec(0x089C, b"\0" * 30 + struct.pack("<4H", 255, 255, 255, 255) + b"\x05"))
    assert quietly(msxls.pieces, stream, Bounds(), "") < 5
    cut = biff8(b"") + struct.pack("<HH", 0x0014, 0xFFFF) + b"&CSULIT"
    assert quietly(msxls.pieces, cut, Bounds(), "") < 5
    mulrk = biff8(_rec(0x00BD, struct.pack("<HH", 65535, 0) + b"\0" * 6 + struct.pack(
        "<H", 65535)))
    assert quietly(msxls.pieces, mulrk, Bounds(), "") < 5


def test_excel_far_cells_are_charged_before_xlrd_builds_them() -> None:
    # One RK cell per row, each in the last column: xlrd would hold 65536 x 256 slots.
    cells = b"".join(_rec(0x027E, struct.pack("<HHHI", row, 255, 15, 0))
                     for row in range(65536))
    stream = biff8(cells)
    assert msxls._cell_cost(stream, Bounds()) >= 65536 * 256 * 8
    small = Bounds(replace(DEFAULT_LIMITS, max_expansion_bytes=64 * 1024 * 1024))
    with pytest.raises(LimitExceeded):
        list(msxls.pieces(stream, small))


@pytest.mark.parametrize("name", ["Minit-header.doc", "Bajet-header.xls",
                                  "Taklimat-slaid.ppt"])
def test_limits_are_raised_not_swallowed(name: str) -> None:
    tiny = Bounds(replace(DEFAULT_LIMITS, max_expansion_bytes=100))
    with pytest.raises(LimitExceeded):
        read(case(name), tiny)
    with pytest.raises(LimitExceeded):
        read(case(name), Bounds(seconds=-1))


def _fuzz_targets(parts: dict[str, bytes]
                  ) -> list[tuple[Callable[..., object], tuple[object, ...]]]:
    if "WordDocument" in parts:
        return [(msdoc.pieces, (parts, Bounds(), ""))]
    if "Workbook" in parts:
        return [(msxls.pieces, (parts["Workbook"], Bounds(), ""))]
    return [(msppt.pieces, (parts.get("Current User"), parts["PowerPoint Document"],
                            Bounds(), ""))]


@pytest.mark.parametrize("name", ["Minit-header.doc", "Minit-tera-air.doc", "Minit-jadual.doc",
                                  "Bajet-first-header.xls", "Taklimat-slaid.ppt",
                                  "plain.ppt"])
def test_random_damage(name: str) -> None:
    # The readers themselves (not ole's safety net) on streams with random bytes changed.
    rng = random.Random(name)
    original = streams(name)
    key = next(k for k in ("WordDocument", "Workbook", "PowerPoint Document") if k in original)
    others = [k for k in original if k in ("0Table", "1Table")]
    for _round in range(150):
        parts = dict(original)
        for target in [key, *others]:
            data = bytearray(parts[target])
            for _ in range(rng.randint(1, 12)):
                at = rng.randrange(len(data))
                data[at] = rng.randrange(256)
            parts[target] = bytes(data)
        for call, args in _fuzz_targets(parts):
            assert quietly(call, *args) < 5


def _ppt_record(rtype: int, body: bytes, *, container: bool = False, instance: int = 0
                ) -> bytes:
    return struct.pack("<HHI", (instance << 4) | (0xF if container else 0), rtype,
                       len(body)) + body


def synthetic_ppt(slide: bytes, list_entries: int) -> tuple[bytes, bytes]:
    """(Current User, PowerPoint Document): one slide container, a slide list naming it
    `list_entries` times, a persist directory and one user edit ([MS-PPT] 3.2)."""
    persist_atom = struct.pack("<IIIII", 1, 0, 0, 256, 0)
    slide_list = _ppt_record(0x0FF0, _ppt_record(0x03F3, persist_atom) * list_entries,
                             container=True)
    document = _ppt_record(0x03E8, slide_list, container=True)
    stream = slide + document
    directory_at = len(stream)
    stream += _ppt_record(0x1772, struct.pack("<III", 1 | (2 << 20), 0, len(slide)))
    edit_at = len(stream)
    stream += _ppt_record(0x0FF5, struct.pack("<IHBBIIIIHH", 0, 0, 0, 3, 0, directory_at,
                                              2, 3, 1, 0))
    user = _ppt_record(0x0FF6, struct.pack("<III", 0x14, msppt.TOKEN_PLAIN, edit_at)
                       + b"\0" * 12)
    return user, stream


def test_powerpoint_slide_named_many_times_is_read_once() -> None:
    text = _ppt_record(0x0FA8, b"SULIT")
    slide = _ppt_record(0x03EE, _ppt_record(0xF00D, text * 20000, container=True),
                        container=True)
    user, document = synthetic_ppt(slide, 20000)
    start = time.monotonic()
    got = list(msppt.pieces(user, document, Bounds()))
    assert time.monotonic() - start < 5
    assert got[0] == Piece("lines", "slide", "SULIT", number=1)
    assert {p.number for p in got} == {1}
