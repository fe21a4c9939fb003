"""Builds the legacy Office cases of the corpus: tests/corpus/cases/office/legacy/.

Run `.venv/bin/python tests/corpus/make_legacy_office.py` from the repository root
on a machine with LibreOffice (`soffice`; CI has none, so the outputs are committed).
It rewrites every generated case and its `.expect.yaml` sidecar:

- flat OpenDocument sources (.fodt, .fods, .fodp) written here, converted by
  LibreOffice (`--convert-to doc|xls|ppt`, its own profile directory so that other
  soffice runs on the machine do not interfere) into Word 97, Excel 97 and
  PowerPoint 97 files;
- the .ppt files are repacked by `cfb` below without their `SummaryInformation`
  stream: LibreOffice puts a 440 KB uncompressed preview bitmap there. Every other
  stream is LibreOffice's, byte for byte;
- LibreOffice 7.4 writes no HeaderFooter record (first-page and even-page sheet
  headers, [MS-XLS] 2.4.137), so `Bajet-first-header.xls` is LibreOffice's workbook
  with one added just before its sheet's EOF, repacked by `cfb`;
- `Minit-berkata-laluan.doc` and `Bajet-berkata-laluan.xls` are saved with a password
  by LibreOffice itself (RC4, as an officer's "Save with password" writes them), through
  make_odf_rtf.py's Basic macro and profile: `--convert-to` takes no password;
- the real password-protected and plain files of tests/corpus/fixtures/office/
  (msoffcrypto-tool's test inputs, MIT licence, Copyright (c) 2015 nolze; see that
  folder's README) are copied with sidecars for their encryption scheme.

LibreOffice stamps times into its files, so outputs differ between runs; their
expectations do not. `cfb` (a minimal [MS-CFB] version 3 writer) is also used by
tests/unit/test_documents_legacy.py to build hostile files.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases" / "office" / "legacy"
FIXTURES = HERE / "fixtures" / "office"
PROFILE = "file:///tmp/lo-legacy-office-corpus"

OFFICE = 'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
NS = " ".join([
    OFFICE,
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"',
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"',
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"',
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"',
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"',
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"',
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"',
])

PROSE = ("Maklumat ini sulit dan hanya untuk penerima.",
         "PENDAFTARAN DIBUKA - TEMPAT TERHAD",
         "Sila jaga kerahsiaan dokumen ini.",
         "Kata laluan anda adalah rahsia. Jangan kongsi dengan sesiapa.")
LICENCE = ("msoffcrypto-tool test inputs, MIT licence, Copyright (c) 2015 nolze "
           "(tests/corpus/fixtures/README)")


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;")


def _p(text: str) -> str:
    return f"<text:p>{_esc(text)}</text:p>"


# -- Writer -------------------------------------------------------------------------

_WATERMARK_GEOMETRY = (
    '<draw:enhanced-geometry svg:viewBox="0 0 21600 21600" draw:text-areas="0 0 21600 21600" '
    'draw:text-path="true" draw:text-path-mode="shape" draw:text-path-scale="shape" '
    'draw:type="fontwork-plain-text" draw:modifiers="10800" '
    'draw:enhanced-path="M ?f3 0 L ?f5 0 N M ?f6 21600 L ?f7 21600 N">'
    '<draw:equation draw:name="f0" draw:formula="$0 -10800"/>'
    '<draw:equation draw:name="f1" draw:formula="?f0 *2"/>'
    '<draw:equation draw:name="f2" draw:formula="abs(?f1 )"/>'
    '<draw:equation draw:name="f3" draw:formula="if(?f0 ,0,?f2 )"/>'
    '<draw:equation draw:name="f4" draw:formula="21600-?f2 "/>'
    '<draw:equation draw:name="f5" draw:formula="if(?f0 ,?f4 ,21600)"/>'
    '<draw:equation draw:name="f6" draw:formula="if(?f0 ,?f2 ,0)"/>'
    '<draw:equation draw:name="f7" draw:formula="if(?f0 ,21600,?f4 )"/>'
    '</draw:enhanced-geometry>')


def watermark(text: str) -> str:
    """A text-path (fontwork) shape as LibreOffice's Format > Watermark makes it."""
    return ('<text:p><draw:custom-shape text:anchor-type="char" draw:z-index="0" '
            'draw:name="PowerPlusWaterMarkObject1" draw:style-name="gr1" svg:width="14cm" '
            f'svg:height="4cm" svg:x="2cm" svg:y="10cm">{_p(text)}{_WATERMARK_GEOMETRY}'
            '</draw:custom-shape></text:p>')


def frame(text: str, name: str = "Bingkai1") -> str:
    return (f'<draw:frame draw:name="{name}" text:anchor-type="paragraph" svg:width="6cm" '
            f'svg:height="2cm"><draw:text-box>{_p(text)}</draw:text-box></draw:frame>')


def fodt(body: list[str], page: dict[str, list[str]] | None = None) -> str:
    """A Writer document: body paragraphs (XML) and page header/footer kinds
    (`header`, `header-left` = even, `header-first`, `footer`...) with their content."""
    regions = "".join(f"<style:{kind}>{''.join(content)}</style:{kind}>"
                      for kind, content in (page or {}).items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><office:document {NS} '
            'office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.text">'
            "<office:styles/><office:automatic-styles>"
            '<style:page-layout style:name="pm1"><style:page-layout-properties '
            'fo:page-width="21cm" fo:page-height="29.7cm"/></style:page-layout>'
            '<style:style style:name="gr1" style:family="graphic"><style:graphic-properties '
            'draw:stroke="none" draw:fill="solid" draw:fill-color="#c0c0c0" '
            'style:wrap="run-through" style:run-through="background"/></style:style>'
            "</office:automatic-styles><office:master-styles>"
            '<style:master-page style:name="Standard" style:page-layout-name="pm1">'
            f"{regions}</style:master-page></office:master-styles>"
            f"<office:body><office:text>{''.join(body)}</office:text></office:body>"
            "</office:document>")


def _table(rows: list[list[str]]) -> str:
    cols = max(len(r) for r in rows)
    body = "".join("<table:table-row>" + "".join(
        f"<table:table-cell>{_p(c)}</table:table-cell>" for c in row) + "</table:table-row>"
        for row in rows)
    return (f'<table:table table:name="Jadual1"><table:table-column '
            f'table:number-columns-repeated="{cols}"/>{body}</table:table>')


def _footnote(anchor: str, note: str) -> str:
    return (f"<text:p>{_esc(anchor)}<text:note text:note-class=\"footnote\">"
            f"<text:note-citation>1</text:note-citation><text:note-body>{_p(note)}"
            "</text:note-body></text:note></text:p>")


MINIT = [_p("Minit Mesyuarat Jawatankuasa Pengurusan Bil. 4/2025"),
         _p("Mesyuarat telah diadakan di Bilik Mesyuarat Utama pada 3 Mac 2025."),
         _p("Perkara berbangkit dibincangkan dan diterima tanpa pindaan.")]


def word_cases() -> dict[str, tuple[str, dict[str, object]]]:
    return {
        "Minit-badan.doc": (fodt([MINIT[0], _p("SULIT"), *MINIT[1:]]), {
            "classification": "SULIT", "where": ["attachment:Minit-badan.doc:body"]}),
        "Minit-header.doc": (fodt(MINIT, {"header": [_p("RAHSIA")]}), {
            "classification": "RAHSIA", "where": ["attachment:Minit-header.doc:header"],
            "not_where": ["attachment:Minit-header.doc:body"]}),
        "Minit-footer.doc": (fodt(MINIT, {"footer": [_p("TERHAD")]}), {
            "classification": "TERHAD", "where": ["attachment:Minit-footer.doc:footer"]}),
        "Minit-first-header.doc": (fodt(MINIT, {
            "header": [_p("Kementerian Contoh Malaysia")],
            "header-first": [_p("SULIT")]}), {
            "classification": "SULIT",
            "where": ["attachment:Minit-first-header.doc:header"],
            "note": "only the first-page header carries the marking"}),
        "Minit-even-footer.doc": (fodt(MINIT, {
            "footer": [_p("Muka surat")],
            "footer-left": [_p("RAHSIA BESAR")]}), {
            "classification": "RAHSIA BESAR",
            "where": ["attachment:Minit-even-footer.doc:footer"],
            "note": "only the even-page footer carries the marking"}),
        "Minit-even-header.doc": (fodt(MINIT, {
            "header": [_p("Kementerian Contoh Malaysia")],
            "header-left": [_p("TERHAD")]}), {
            "classification": "TERHAD",
            "where": ["attachment:Minit-even-header.doc:header"],
            "note": "only the even-page header carries the marking"}),
        "Minit-first-footer.doc": (fodt(MINIT, {
            "footer": [_p("Muka surat")],
            "footer-first": [_p("RAHSIA")]}), {
            "classification": "RAHSIA",
            "where": ["attachment:Minit-first-footer.doc:footer"],
            "note": "only the first-page footer carries the marking"}),
        "Minit-header-subject.doc": (fodt(MINIT, {
            "header": [_p("Minit Mesyuarat Pengurusan - TERHAD")]}), {
            "classification": "TERHAD",
            "where": ["attachment:Minit-header-subject.doc:header"],
            "note": "a header segment by the subject rules"}),
        "Minit-textbox.doc": (fodt([MINIT[0], f"<text:p>{frame('TERHAD')}</text:p>",
                                    *MINIT[1:]]), {
            "classification": "TERHAD", "where": ["attachment:Minit-textbox.doc:textbox"]}),
        "Minit-header-textbox.doc": (fodt(MINIT, {
            "header": [f"<text:p>{frame('SULIT')}Kementerian Contoh</text:p>"]}), {
            "classification": "SULIT",
            "where": ["attachment:Minit-header-textbox.doc:header"]}),
        "Minit-footer-textbox.doc": (fodt(MINIT, {
            "footer": [f"<text:p>{frame('SULIT')}Kementerian Contoh</text:p>"]}), {
            "classification": "SULIT",
            "where": ["attachment:Minit-footer-textbox.doc:footer"],
            "not_where": ["attachment:Minit-footer-textbox.doc:header"],
            "note": "a text box in the footer: header and footer text boxes share one "
                    "story, told apart by their shapes' anchors"}),
        "Minit-header-footer-textbox.doc": (fodt(MINIT, {
            "header": [f"<text:p>{frame('SULIT')}Minit Mesyuarat</text:p>"],
            "footer": [f"<text:p>{frame('Kementerian Contoh', 'Bingkai2')}Muka surat"
                       "</text:p>"]}), {
            "classification": "SULIT",
            "where": ["attachment:Minit-header-footer-textbox.doc:header"],
            "not_where": ["attachment:Minit-header-footer-textbox.doc:footer"],
            "note": "a marked text box in the header beside an unmarked one in the footer"}),
        "Minit-jadual.doc": (fodt([MINIT[0], _table([["SULIT", "Rujukan: ANM.100-1/2/3"],
                                                     ["Tarikh", "3 Mac 2025"]]),
                                   *MINIT[1:]]), {
            "classification": "SULIT", "where": ["attachment:Minit-jadual.doc:body"],
            "note": "a table cell that is only the marking, beside a reference cell"}),
        "Minit-nota-kaki.doc": (fodt([MINIT[0], _footnote(
            "Laporan penuh dilampirkan.", "RAHSIA"), *MINIT[1:]]), {
            "classification": "RAHSIA",
            "where": ["attachment:Minit-nota-kaki.doc:footnote"]}),
        "Minit-tera-air.doc": (fodt(MINIT, {"header": [watermark("SULIT")]}), {
            "classification": "SULIT",
            "where": ["attachment:Minit-tera-air.doc:watermark"],
            "note": "LibreOffice watermark: a fontwork shape in the header drawing"}),
        "Notis-prosa.doc": (fodt([_p(t) for t in PROSE] + [_table([[PROSE[1], "Dewan"]])],
                                 {"header": [_p(PROSE[1])], "footer": [_p(PROSE[2])]}), {
            "classification": None,
            "note": "the words in prose, in a capitalised sentence and in longer words"}),
    }


# -- Calc ---------------------------------------------------------------------------

def fods(cells: list[list[str]], header: str = "", footer: str = "",
         bold_header: bool = False) -> str:
    """A one-sheet workbook; `header`/`footer` in the centre region."""
    def region(kind: str, text: str) -> str:
        if not text:
            return ""
        inner = f'<text:span text:style-name="T1">{_esc(text)}</text:span>' \
            if bold_header and kind == "header" else _esc(text)
        return (f"<style:{kind}><style:region-left><text:p>Kementerian Contoh</text:p>"
                f"</style:region-left><style:region-center><text:p>{inner}</text:p>"
                "</style:region-center><style:region-right><text:p>Muka "
                "<text:page-number>1</text:page-number></text:p></style:region-right>"
                f"</style:{kind}>")

    def cell(value: str) -> str:
        return f'<table:table-cell office:value-type="string">{_p(value)}</table:table-cell>'

    rows = "".join("<table:table-row>" + "".join(cell(c) for c in row) + "</table:table-row>"
                   for row in cells)
    return (f'<?xml version="1.0" encoding="UTF-8"?><office:document {NS} '
            'office:version="1.3" '
            'office:mimetype="application/vnd.oasis.opendocument.spreadsheet">'
            '<office:font-face-decls><style:font-face style:name="Arial" '
            'svg:font-family="Arial"/></office:font-face-decls>'
            "<office:styles/><office:automatic-styles>"
            '<style:style style:name="T1" style:family="text"><style:text-properties '
            'style:font-name="Arial" fo:font-weight="bold"/></style:style>'
            '<style:page-layout style:name="pm1"><style:page-layout-properties/>'
            "</style:page-layout></office:automatic-styles><office:master-styles>"
            '<style:master-page style:name="Default" style:page-layout-name="pm1">'
            f'{region("header", header)}{region("footer", footer)}</style:master-page>'
            "</office:master-styles><office:body><office:spreadsheet>"
            f'<table:table table:name="Helaian1">{rows}</table:table>'
            "</office:spreadsheet></office:body></office:document>")


SENARAI = [["Bil.", "Nama", "Jawatan"], ["1", "Ahmad bin Ali", "Pegawai Tadbir"],
           ["2", "Siti binti Abu", "Penolong Pegawai"]]


def excel_cases() -> dict[str, tuple[str, dict[str, object]]]:
    return {
        "Senarai-sel.xls": (fods([["SULIT"], *SENARAI]), {
            "classification": "SULIT", "where": ["attachment:Senarai-sel.xls:cell"]}),
        "Senarai-label.xls": (fods([["Klasifikasi: RAHSIA"], *SENARAI]), {
            "classification": "RAHSIA", "where": ["attachment:Senarai-label.xls:cell"]}),
        "Bajet-header.xls": (fods(SENARAI, header="TERHAD", bold_header=True), {
            "classification": "TERHAD", "where": ["attachment:Bajet-header.xls:header"],
            "note": 'sheet header &C&"Arial,Bold"TERHAD'}),
        "Bajet-footer.xls": (fods(SENARAI, footer="RAHSIA"), {
            "classification": "RAHSIA", "where": ["attachment:Bajet-footer.xls:footer"]}),
        "Jadual-prosa.xls": (fods([[t] for t in PROSE] + SENARAI, header=PROSE[1],
                                  footer=PROSE[2]), {"classification": None}),
    }


# -- Impress ------------------------------------------------------------------------

def _box(text: str, y: str, cls: str = "") -> str:
    attr = f' presentation:class="{cls}"' if cls else ""
    return (f'<draw:frame{attr} svg:width="20cm" svg:height="2cm" svg:x="2cm" svg:y="{y}">'
            f"<draw:text-box>{_p(text)}</draw:text-box></draw:frame>")


def fodp(slides: list[list[str]], master: list[str] | None = None,
         notes: dict[int, str] | None = None) -> str:
    """Slides (their frames' XML), shapes on the master page, notes per slide index."""
    pages = []
    for i, shapes in enumerate(slides):
        note = (notes or {}).get(i)
        note_xml = (f"<presentation:notes>{_box(note, '14cm', 'notes')}"
                    "</presentation:notes>") if note else ""
        pages.append(f'<draw:page draw:name="Slaid{i + 1}" draw:master-page-name="Induk">'
                     f"{''.join(shapes)}{note_xml}</draw:page>")
    master_xml = "".join(f'<draw:frame draw:layer="backgroundobjects" svg:width="10cm" '
                         f'svg:height="1cm" svg:x="1cm" svg:y="0.2cm"><draw:text-box>{_p(t)}'
                         "</draw:text-box></draw:frame>" for t in master or [])
    return (f'<?xml version="1.0" encoding="UTF-8"?><office:document {NS} '
            'office:version="1.3" '
            'office:mimetype="application/vnd.oasis.opendocument.presentation">'
            # office:styles must be there, or LibreOffice ignores the master page.
            "<office:styles/><office:automatic-styles>"
            '<style:page-layout style:name="PM1"><style:page-layout-properties '
            'fo:page-width="28cm" fo:page-height="15.75cm"/></style:page-layout>'
            "</office:automatic-styles><office:master-styles>"
            '<style:master-page style:name="Induk" style:page-layout-name="PM1">'
            f"{master_xml}</style:master-page></office:master-styles>"
            f"<office:body><office:presentation>{''.join(pages)}</office:presentation>"
            "</office:body></office:document>")


TAKLIMAT = [_box("Taklimat Projek Digital", "1cm", "title"),
            _box("Jadual pelaksanaan dan belanjawan", "5cm", "outline")]


def powerpoint_cases() -> dict[str, tuple[str, dict[str, object]]]:
    return {
        "Taklimat-slaid.ppt": (fodp([TAKLIMAT, [_box("SULIT", "1cm", "title"),
                                                _box("Butiran kos", "5cm", "outline")]]), {
            "classification": "SULIT", "where": ["attachment:Taklimat-slaid.ppt:slide2"],
            "not_where": ["attachment:Taklimat-slaid.ppt:slide1"]}),
        "Taklimat-kotak.ppt": (fodp([[*TAKLIMAT, _box("TERHAD", "12cm")]]), {
            "classification": "TERHAD", "where": ["attachment:Taklimat-kotak.ppt:slide1"],
            "note": "a text box that is not a placeholder"}),
        "Taklimat-induk.ppt": (fodp([TAKLIMAT], master=["RAHSIA"]), {
            "classification": "RAHSIA",
            "where": ["attachment:Taklimat-induk.ppt:slide_master"]}),
        "Taklimat-nota.ppt": (fodp([TAKLIMAT], notes={0: "SULIT"}), {
            "classification": "SULIT", "where": ["attachment:Taklimat-nota.ppt:notes"]}),
        "Taklimat-prosa.ppt": (fodp([[_box(PROSE[1], "1cm", "title"),
                                      _box(PROSE[0], "5cm", "outline"),
                                      _box(PROSE[2], "12cm")]],
                                    notes={0: PROSE[3]}), {"classification": None}),
    }


# -- OLE compound files ([MS-CFB] version 3) ----------------------------------------

_SECTOR = 512
_MINI = 64
_CUTOFF = 4096
_FREE, _END, _FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
_NONE = 0xFFFFFFFF


def cfb(streams: dict[str, bytes]) -> bytes:
    """A compound file with these streams at its root, as [MS-CFB] lays it out:
    streams under 4096 bytes in the mini stream, the rest in 512-byte sectors."""
    names = sorted(streams, key=lambda n: (len(n), n.upper()))
    sectors: list[bytes] = []
    fat: list[int] = []

    def chain(data: bytes) -> int:
        if not data:
            return _END
        first = len(sectors)
        count = (len(data) + _SECTOR - 1) // _SECTOR
        for i in range(count):
            sectors.append(data[i * _SECTOR:(i + 1) * _SECTOR].ljust(_SECTOR, b"\0"))
            fat.append(first + i + 1 if i + 1 < count else _END)
        return first

    mini = bytearray()
    minifat: list[int] = []
    starts: dict[str, int] = {}
    for name in names:
        data = streams[name]
        if len(data) >= _CUTOFF:
            starts[name] = chain(data)
        elif data:
            first = len(mini) // _MINI
            count = (len(data) + _MINI - 1) // _MINI
            mini += data.ljust(count * _MINI, b"\0")
            minifat += [first + i + 1 if i + 1 < count else _END for i in range(count)]
            starts[name] = first
        else:
            starts[name] = _END
    mini_start = chain(bytes(mini))
    minifat_bytes = struct.pack(f"<{len(minifat)}I", *minifat) if minifat else b""
    minifat_start = chain(minifat_bytes.ljust(-(-len(minifat_bytes) // _SECTOR) * _SECTOR,
                                              b"\xff"))
    minifat_count = -(-len(minifat_bytes) // _SECTOR)

    entries = [_entry("Root Entry", 5, _NONE, _NONE, _NONE, mini_start, len(mini))]
    ids = {name: i + 1 for i, name in enumerate(names)}

    links: dict[str, tuple[int, int]] = {}

    def build(part: list[str]) -> int:
        if not part:
            return _NONE
        mid = len(part) // 2
        links[part[mid]] = (build(part[:mid]), build(part[mid + 1:]))
        return ids[part[mid]]

    root_child = build(names)
    entries[0] = _entry("Root Entry", 5, _NONE, _NONE, root_child, mini_start, len(mini))
    for name in names:
        left, right = links[name]
        entries.append(_entry(name, 2, left, right, _NONE, starts[name], len(streams[name])))
    directory = b"".join(entries)
    directory = directory.ljust(-(-len(directory) // _SECTOR) * _SECTOR, b"\0")
    # Unused directory slots: empty entries with no siblings.
    empty = _entry("", 0, _NONE, _NONE, _NONE, 0, 0)
    used = len(entries)
    slots = len(directory) // 128
    directory = directory[:used * 128] + empty * (slots - used)
    dir_start = chain(directory)

    fat_count = 1
    while len(sectors) + fat_count > fat_count * (_SECTOR // 4):
        fat_count += 1
    if fat_count > 109:
        raise ValueError("too large for a header-only DIFAT")
    fat_start = len(sectors)
    fat += [_FATSECT] * fat_count
    fat += [_FREE] * (fat_count * (_SECTOR // 4) - len(fat))
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    for i in range(fat_count):
        sectors.append(fat_bytes[i * _SECTOR:(i + 1) * _SECTOR])
    difat = [fat_start + i for i in range(fat_count)] + [_FREE] * (109 - fat_count)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16
              + struct.pack("<HHHHH", 0x003E, 0x0003, 0xFFFE, 9, 6) + b"\0" * 6
              + struct.pack("<IIIIIIIII", 0, fat_count, dir_start, 0, _CUTOFF,
                            minifat_start if minifat else _END, minifat_count, _END, 0)
              + struct.pack("<109I", *difat))
    return header + b"".join(sectors)


def _entry(name: str, kind: int, left: int, right: int, child: int, start: int,
           size: int) -> bytes:
    encoded = name.encode("utf-16le")
    name_field = (encoded + b"\0\0").ljust(64, b"\0") if name else b"\0" * 64
    return (name_field + struct.pack("<HBB", len(encoded) + 2 if name else 0, kind, 1)
            + struct.pack("<III", left, right, child) + b"\0" * 16 + b"\0" * 4
            + b"\0" * 16 + struct.pack("<IQ", start, size))


def ole_streams(data: bytes) -> dict[str, bytes]:
    """The root-level streams of a compound file (LibreOffice's have no storages)."""
    import olefile  # the generator's own dependency, installed with the gateway

    ole = olefile.OleFileIO(io.BytesIO(data))
    try:
        return {"/".join(path): ole.openstream(path).read() for path in ole.listdir()}
    finally:
        ole.close()


def xls_string(text: str) -> bytes:
    """An XLUnicodeString, Latin-1 compressed ([MS-XLS] 2.5.294)."""
    return struct.pack("<HB", len(text), 0) + text.encode("latin-1")


def header_footer_record(*, even_header: str = "", even_footer: str = "",
                         first_header: str = "", first_footer: str = "") -> bytes:
    """A HeaderFooter record ([MS-XLS] 2.4.137) with its record header."""
    texts = (even_header, even_footer, first_header, first_footer)
    flags = (1 if even_header or even_footer else 0) | (2 if first_header or first_footer
                                                         else 0)
    body = (struct.pack("<HH8x", 0x089C, 0) + b"\0" * 16 + struct.pack("<H", flags)
            + struct.pack("<4H", *(len(t) for t in texts))
            + b"".join(xls_string(t) for t in texts if t))
    return struct.pack("<HH", 0x089C, len(body)) + body


def with_record_before_last_eof(workbook: bytes, record: bytes) -> bytes:
    """The Workbook stream with `record` inserted before the last substream's EOF."""
    pos = 0
    last_eof = -1
    while pos + 4 <= len(workbook):
        rtype, size = struct.unpack_from("<HH", workbook, pos)
        if rtype == 0x000A:
            last_eof = pos
        pos += 4 + size
    if last_eof < 0:
        raise ValueError("no EOF record")
    return workbook[:last_eof] + record + workbook[last_eof:]


# -- conversion and output ----------------------------------------------------------

def convert(sources: dict[str, str], fmt: str) -> dict[str, bytes]:
    """LibreOffice's conversion of each flat ODF source (name -> XML) to `fmt`."""
    suffix = {"doc": ".fodt", "xls": ".fods", "ppt": ".fodp"}[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, xml in sources.items():
            (work / (Path(name).stem + suffix)).write_text(xml, encoding="utf-8")
        subprocess.run(["soffice", "--headless", f"-env:UserInstallation={PROFILE}",
                        "--convert-to", fmt, "--outdir", str(work / "out"),
                        *sorted(str(p) for p in work.glob(f"*{suffix}"))],
                       check=True, capture_output=True, timeout=600)
        return {name: (work / "out" / (Path(name).stem + "." + fmt)).read_bytes()
                for name in sources}


def with_password(sources: dict[str, str], filter_name: str) -> dict[str, bytes]:
    """LibreOffice's own password-protected save of each flat ODF source (name -> XML)
    with `filter_name` (`MS Word 97`, `MS Excel 97`): `--convert-to` takes no password,
    so make_odf_rtf.py's Basic macro stores it (XStorable.storeToURL with `Password`)."""
    import make_odf_rtf as odf
    suffix = ".fods" if "Excel" in filter_name else ".fodt"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        odf._prepare_profile(odf.PROFILE, work, odf11=False)
        out = {}
        for name, xml in sources.items():
            src = work / (Path(name).stem + suffix)
            src.write_text(xml, encoding="utf-8")
            dst = work / name
            odf.soffice(odf.PROFILE, f'macro:///Standard.Module1.Encrypt("{src}","{dst}",'
                                     f'"{filter_name}","{odf.PASSWORD}")')
            out[name] = dst.read_bytes()
        return out


def encrypted_cases() -> dict[str, tuple[str, str, dict[str, object]]]:
    """Name -> (flat source, LibreOffice filter, expectation): marked documents saved
    with a password by LibreOffice (RC4, [MS-OFFCRYPTO] 2.3.6), nothing readable."""
    return {
        "Minit-berkata-laluan.doc": (fodt(MINIT, {"header": [_p("SULIT")]}), "MS Word 97", {
            "classification": None, "encrypted": [True], "schemes": ["rc4"],
            "categories": ["office"]}),
        "Bajet-berkata-laluan.xls": (fods([["SULIT"], *SENARAI]), "MS Excel 97", {
            "classification": None, "encrypted": [True], "schemes": ["rc4"],
            "categories": ["office"]}),
    }


def write(name: str, data: bytes, expect: dict[str, object]) -> None:
    expect.setdefault("source", "LibreOffice 7.4, by tests/corpus/make_legacy_office.py")
    (CASES / name).write_bytes(data)
    (CASES / f"{name}.expect.yaml").write_text(
        yaml.safe_dump(expect, sort_keys=False, allow_unicode=True), encoding="utf-8")


def main() -> None:
    if shutil.which("soffice") is None:
        sys.exit("LibreOffice (soffice) is needed to build these cases")
    CASES.mkdir(parents=True, exist_ok=True)
    for cases, fmt in ((word_cases(), "doc"), (excel_cases(), "xls"),
                       (powerpoint_cases(), "ppt")):
        made = convert({name: source for name, (source, _e) in cases.items()}, fmt)
        for name, (_source, expect) in cases.items():
            data = made[name]
            if fmt == "ppt":
                streams = ole_streams(data)
                streams.pop("\x05SummaryInformation", None)
                data = cfb(streams)
            write(name, data, expect)

    # First-page sheet header: LibreOffice's workbook with a HeaderFooter record added.
    base = convert({"Bajet-first-header.xls": fods(SENARAI, header="Bajet 2026")}, "xls")
    streams = ole_streams(base["Bajet-first-header.xls"])
    streams["Workbook"] = with_record_before_last_eof(
        streams["Workbook"], header_footer_record(first_header='&C&"Arial,Bold"SULIT'))
    streams.pop("\x05SummaryInformation", None)
    write("Bajet-first-header.xls", cfb(streams), {
        "classification": "SULIT", "where": ["attachment:Bajet-first-header.xls:header"],
        "note": "first-page header in a HeaderFooter record (0x089C)"})

    # Saved with a password by LibreOffice itself.
    for filter_name in ("MS Word 97", "MS Excel 97"):
        chosen = {name: case for name, case in encrypted_cases().items()
                  if case[1] == filter_name}
        made = with_password({name: source for name, (source, _f, _e) in chosen.items()},
                             filter_name)
        for name, (_source, _filter, expect) in chosen.items():
            write(name, made[name], expect)

    # Real files: encrypted (with their scheme) and plain.
    real = {
        "rc4cryptoapi_password.doc": ([True], ["rc4"]),
        "rc4cryptoapi_password.xls": ([True], ["rc4"]),
        "rc4cryptoapi_password.ppt": ([True], ["rc4"]),
        "xor_password_123456789012345.xls": ([True], ["xor"]),
        "example_password.docx": ([True], ["aes"]),
        "ecma376standard_password.docx": ([True], ["aes"]),
        "plain.doc": ([False], [None]),
        "plain.xls": ([False], [None]),
        "plain.ppt": ([False], [None]),
    }
    for name, (encrypted, schemes) in real.items():
        write(name, (FIXTURES / name).read_bytes(), {
            "classification": None, "encrypted": encrypted, "schemes": schemes,
            "source": f"tests/corpus/fixtures/office/{name}", "licence": LICENCE})


if __name__ == "__main__":
    main()
