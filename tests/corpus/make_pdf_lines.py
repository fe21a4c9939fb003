"""Builds the PDF line cases of the corpus: tests/corpus/cases/pdf/.

What a reader sees as one line of a PDF (MARKINGS.md, point 4): text drawn one
glyph per operator is one line; cells of a table row that stand apart are separate
lines; an image-only (scanned) page has no text and is reported unreadable; the
page limit is not silent. Sources:

- by hand (this script writes the PDF objects): glyph-per-operator text, a
  diagonal watermark drawn glyph by glyph in reverse order, an image-only scan, a
  document with more pages than the inspection bound;
- by LibreOffice (headless, from flat OpenDocument sources this script writes):
  table rows, prose, a capitalised justified sentence, page header and footer, a
  text frame rotated by 45 degrees, a page with only a picture;
- encrypted by pypdf from the LibreOffice header/footer case: RC4-128 and AES-256
  with a user password, AES-256 with only an owner password.

The unit tests (tests/unit/test_documents_pdf.py) import the hand builders from here.

Run `python tests/corpus/make_pdf_lines.py` from the repository root on a machine
with LibreOffice (`soffice`); the outputs are committed, so the tests never need it.
`--no-soffice` rewrites only the hand-built cases (the encrypted ones are then made
from the committed LibreOffice header/footer case). LibreOffice stamps a creation
date and pypdf random salts into their files, so those bytes change between runs;
their expectations do not.
"""

from __future__ import annotations

import base64
import io
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import yaml

CASES = Path(__file__).parent / "cases" / "pdf"
SOURCE = "LibreOffice headless from a flat OpenDocument source this script writes"

# Advance widths (1/1000 em) of the Helvetica glyphs the hand-built cases draw (Adobe
# Helvetica AFM); Courier's are all 600, which the rule tests rely on.
HELVETICA = {"S": 667, "U": 722, "L": 556, "I": 278, "T": 611, "R": 722, "A": 667, "H": 722}
COURIER = 600


# -- hand-built PDFs ------------------------------------------------------------------

def _pdf_str(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def hand_pdf(pages: list[str], *, image: bool = False, deflate: bool = False) -> bytes:
    """A PDF of US-letter pages, each drawn by the content stream given (an empty one
    is a blank page without contents), deflated with `deflate`. Resources, inherited
    by every page: /F1 Helvetica, /F2 Courier, and with `image` /Im1, an 8x8
    DeviceGray picture."""
    xobjects = b" /XObject << /Im1 5 0 R >>" if image else b""
    ids = iter(range(6, 6 + 2 * len(pages)))
    page_ids: list[int] = []
    objs: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>",
    }
    if image:
        pixels = zlib.compress(bytes((16 * (x + y)) % 256 for y in range(8) for x in range(8)))
        objs[5] = (b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace "
                   b"/DeviceGray /BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\n"
                   b"stream\n" % len(pixels) + pixels + b"\nendstream")
    for content in pages:
        page_id = next(ids)
        page_ids.append(page_id)
        if not content:
            objs[page_id] = b"<< /Type /Page /Parent 2 0 R >>"
            continue
        stream = content.encode("latin-1")
        flate = b""
        if deflate:
            stream, flate = zlib.compress(stream, 9), b" /Filter /FlateDecode"
        contents_id = next(ids)
        objs[page_id] = b"<< /Type /Page /Parent 2 0 R /Contents %d 0 R >>" % contents_id
        objs[contents_id] = (b"<< /Length %d%s >>\nstream\n" % (len(stream), flate) + stream
                             + b"\nendstream")
    objs[2] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % i for i in page_ids)
               + b"] /Count %d /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R "
               b"/F2 4 0 R >>%s >> >>" % (len(pages), xobjects))
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets: dict[int, int] = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref = len(out)
    size = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] if n in offsets else
                    b"0000000000 65535 f \n" for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return out


def text_line(text: str, x: float, y: float, size: float = 12, font: str = "F1") -> str:
    """One text object: `text` with its origin at (x, y)."""
    return f"BT /{font} {size} Tf {x:.2f} {y:.2f} Td ({_pdf_str(text)}) Tj ET"


def glyph_by_glyph(word: str, x: float, y: float, size: float = 12, *,
                   angle: float = 0.0, reverse: bool = False, slack: float = 0.0) -> str:
    """`word` in Helvetica, each glyph a text object of its own placed by its own text
    matrix (as report generators and some scanners' OCR layers draw), `slack` points
    after each glyph; at `angle` degrees; drawn last glyph first with `reverse`."""
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    placed = []
    advance = 0.0
    for char in word:
        gx, gy = x + advance * cos, y + advance * sin
        placed.append(f"BT /F1 {size} Tf {cos:.4f} {sin:.4f} {-sin:.4f} {cos:.4f} "
                      f"{gx:.2f} {gy:.2f} Tm ({_pdf_str(char)}) Tj ET")
        advance += HELVETICA[char] * size / 1000 + slack
    return "\n".join(reversed(placed) if reverse else placed)


def courier_row(left: str, right: str, blank_em: float, *, x: float = 72, y: float = 700,
                size: float = 12, same_run: bool = False) -> str:
    """`left` and `right` in Courier on one baseline with `blank_em` em between them:
    two text objects (as two table cells are), or with `same_run` one `TJ` whose
    kerning opens the blank (as LibreOffice justifies a line)."""
    if same_run:
        return (f"BT /F2 {size} Tf {x:.2f} {y:.2f} Td [({_pdf_str(left)}) "
                f"{-blank_em * 1000:.0f} ({_pdf_str(right)})] TJ ET")
    right_x = x + COURIER * size / 1000 * len(left) + blank_em * size
    return "\n".join((text_line(left, x, y, size, "F2"), text_line(right, right_x, y, size, "F2")))


def scanned_page() -> str:
    """A page that only paints the picture /Im1 over most of the page."""
    return "q 540 0 0 720 36 36 cm /Im1 Do Q"


def glyphs_case() -> bytes:
    return hand_pdf(["\n".join((
        glyph_by_glyph("SULIT", 280, 750, 14, slack=0.3),
        text_line("Minit Mesyuarat Pengurusan Bil. 4/2025", 72, 700),
        text_line("Maklumat ini sulit dan hanya untuk penerima.", 72, 684)))])


def watermark_case() -> bytes:
    return hand_pdf(["\n".join((
        text_line("Laporan Audit Dalaman", 72, 740),
        text_line("Isi laporan tahunan.", 72, 724),
        "0.8 g",
        glyph_by_glyph("RAHSIA", 150, 250, 72, angle=45, reverse=True),
        "0 g"))])


def many_pages_case(count: int, marked: int) -> bytes:
    """`count` empty pages but page `marked`, which says SULIT at its top."""
    return hand_pdf([text_line("SULIT", 290, 750) if n == marked else ""
                     for n in range(1, count + 1)])


# -- LibreOffice ------------------------------------------------------------------------

NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
      'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
      'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
      'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
      'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
      'xmlns:xlink="http://www.w3.org/1999/xlink" '
      'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
      'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"')
STYLES = (
    '<style:style style:name="Tengah" style:family="paragraph">'
    '<style:paragraph-properties fo:text-align="center"/></style:style>'
    '<style:style style:name="Sempit" style:family="paragraph"><style:paragraph-properties '
    'fo:text-align="justify" fo:margin-right="12.5cm"/></style:style>'
    '<style:style style:name="Sel" style:family="table-cell"><style:table-cell-properties '
    'fo:padding="0.1cm" fo:border="0.5pt solid #000000"/></style:style>'
    '<style:style style:name="gr1" style:family="graphic"><style:graphic-properties '
    'draw:stroke="none" draw:fill="none" style:wrap="run-through" '
    'style:run-through="foreground"/></style:style>')


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fodt(body: str, *, header: str = "", footer: str = "", styles: str = "") -> str:
    """A flat OpenDocument text: A4, Liberation Sans 12 pt, `body` as ODF XML, and a
    centred page header and footer paragraph when given."""
    hf = "".join(
        f'<style:{kind}><text:p text:style-name="Tengah">{_esc(text)}</text:p></style:{kind}>'
        for kind, text in (("header", header), ("footer", footer)) if text)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document {NS} office:version="1.3" '
        'office:mimetype="application/vnd.oasis.opendocument.text">'
        '<office:font-face-decls><style:font-face style:name="Liberation Sans" '
        'svg:font-family="\'Liberation Sans\'"/></office:font-face-decls>'
        '<office:styles><style:default-style style:family="paragraph"><style:text-properties '
        'style:font-name="Liberation Sans" fo:font-size="12pt"/></style:default-style>'
        '</office:styles>'
        f'<office:automatic-styles>{STYLES}{styles}<style:page-layout style:name="pm1">'
        '<style:page-layout-properties fo:page-width="21cm" fo:page-height="29.7cm" '
        'fo:margin-top="1.5cm" fo:margin-bottom="1.5cm" fo:margin-left="2cm" '
        'fo:margin-right="2cm"/><style:header-style><style:header-footer-properties '
        'fo:min-height="0.6cm" fo:margin-bottom="0.4cm"/></style:header-style>'
        '<style:footer-style><style:header-footer-properties fo:min-height="0.6cm" '
        'fo:margin-top="0.4cm"/></style:footer-style></style:page-layout>'
        '</office:automatic-styles><office:master-styles><style:master-page '
        f'style:name="Standard" style:page-layout-name="pm1">{hf}</style:master-page>'
        f'</office:master-styles><office:body><office:text>{body}</office:text></office:body>'
        '</office:document>')


def para(text: str, style: str = "") -> str:
    attr = f' text:style-name="{style}"' if style else ""
    return f"<text:p{attr}>{_esc(text)}</text:p>"


def table(rows: list[tuple[str, ...]], widths_cm: tuple[float, ...], name: str = "J"
          ) -> tuple[str, str]:
    """(styles, body) of a bordered table with fixed column widths and LibreOffice's
    default cell padding, 0.1 cm."""
    styles = "".join(
        f'<style:style style:name="{name}{i}" style:family="table-column">'
        f'<style:table-column-properties style:column-width="{w}cm"/></style:style>'
        for i, w in enumerate(widths_cm))
    styles += (f'<style:style style:name="{name}" style:family="table"><style:table-properties '
               f'style:width="{sum(widths_cm)}cm" table:align="left"/></style:style>')
    columns = "".join(f'<table:table-column table:style-name="{name}{i}"/>'
                      for i in range(len(widths_cm)))
    body = "".join(
        "<table:table-row>" + "".join(
            f'<table:table-cell table:style-name="Sel">{para(cell)}</table:table-cell>'
            for cell in row) + "</table:table-row>" for row in rows)
    return styles, (f'<table:table table:name="{name}" table:style-name="{name}">'
                    f"{columns}{body}</table:table>")


def table_then(rows: list[tuple[str, ...]], widths_cm: tuple[float, ...], after: str) -> str:
    """A document: the table, then the `after` paragraphs."""
    styles, body = table(rows, widths_cm)
    return fodt(body + after, styles=styles)


def rotated_frame(text: str, radians: float = 0.785398) -> str:
    """A text frame turned by `radians` (LibreOffice's draw:transform rotate)."""
    return (f'<text:p><draw:frame text:anchor-type="paragraph" draw:style-name="gr1" '
            f'svg:width="12cm" svg:height="2cm" draw:transform="rotate ({radians}) '
            f'translate (3cm 18cm)"><draw:text-box>{para(text)}</draw:text-box></draw:frame>'
            "</text:p>")


# Character styles: a letter raised by a third of an em at full size (Format > Character
# > Position: raise 33%, relative size 100%), and a footnote-style superscript.
RAISED_STYLES = (
    '<style:style style:name="Naik" style:family="text"><style:text-properties '
    'style:text-position="33% 100%"/></style:style>'
    '<style:style style:name="Atas" style:family="text"><style:text-properties '
    'style:text-position="super 58%"/></style:style>')


def raised(text: str, style: str = "Naik") -> str:
    """`text` in the character style `style` (RAISED_STYLES), as ODF XML."""
    return f'<text:span text:style-name="{style}">{_esc(text)}</text:span>'


def marked_para(xml: str, style: str = "") -> str:
    """A paragraph of ODF XML (spans included), not escaped."""
    attr = f' text:style-name="{style}"' if style else ""
    return f"<text:p{attr}>{xml}</text:p>"


def png_grey(width: int = 32, height: int = 32) -> bytes:
    """A small grey-gradient PNG (what a scanner's picture looks like to a reader)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + bytes((4 * (x + y)) % 256 for x in range(width))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def picture_only() -> str:
    data = base64.b64encode(png_grey()).decode()
    return ('<text:p><draw:frame text:anchor-type="paragraph" svg:width="17cm" '
            f'svg:height="24cm"><draw:image><office:binary-data>{data}</office:binary-data>'
            "</draw:image></draw:frame></text:p>")


def convert(source: str) -> bytes:
    """`source` (flat ODF text) made into a PDF by LibreOffice, with a profile of its
    own (other LibreOffice processes may be running)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "source.fodt"
        src.write_text(source, encoding="utf-8")
        subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp}/profile",
                        "--convert-to", "pdf", "--outdir", tmp, str(src)],
                       check=True, capture_output=True, timeout=180)
        return (Path(tmp) / "source.pdf").read_bytes()


def encrypted(plain: bytes, *, user: str, owner: str, algorithm: str) -> bytes:
    """`plain` encrypted by pypdf (`user` "" means an owner password only)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    writer.encrypt(user_password=user, owner_password=owner, algorithm=algorithm)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# -- the cases ------------------------------------------------------------------------

PROSE = ("Tempat adalah terhad. Maklumat ini sulit dan hanya untuk penerima. Kata laluan "
         "anda adalah rahsia. Sila jaga kerahsiaan dokumen ini. Tindakan terhadap aduan.")
CAPITALS = "MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI"


def hand_cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    return {
        "Glif-SULIT.pdf": (glyphs_case(), {
            "classification": "SULIT", "where": ["attachment:Glif-SULIT.pdf:page1"],
            "encrypted": [False], "unreadable": [False],
            "note": "S U L I T each placed by its own text matrix and Tj"}),
        "Tera-air-RAHSIA.pdf": (watermark_case(), {
            "classification": "RAHSIA", "where": ["attachment:Tera-air-RAHSIA.pdf:page1"],
            "note": "a 45-degree watermark drawn one glyph per operator, last glyph first"}),
        "Imbasan.pdf": (hand_pdf([scanned_page()], image=True), {
            "classification": None, "unreadable": [True], "encrypted": [False],
            "note": "one page that only paints an image XObject: a scan without OCR"}),
        "Muka-101.pdf": (many_pages_case(101, 101), {
            "classification": "SULIT", "where": ["attachment:Muka-101.pdf:page101"],
            "inspectable": True,
            "note": "101 pages, SULIT on the last; every page is read (limits.max_pdf_pages, "
                    "default 2000, is a hard bound that makes a longer PDF not inspectable, "
                    "never a silent cut)"}),
    }


def soffice_sources() -> dict[str, tuple[str, dict[str, object]]]:
    return {
        "Jadual-RAHSIA-BESAR.pdf": (table_then(
            [("RAHSIA BESAR", "Rujukan: ANM.100-1/2/3"), ("Tarikh", "1 Januari 2025")],
            (8.5, 8.5), para("Perkara: pelan operasi.")), {
                "classification": "RAHSIA BESAR",
                "where": ["attachment:Jadual-RAHSIA-BESAR.pdf:page1"]}),
        "Jadual-sempit-RAHSIA-BESAR.pdf": (table_then(
            [("RAHSIA BESAR", "Rujukan: ANM.100-1/2/3")], (3.4, 7.0),
            para("Perkara: pelan operasi.")), {
                "classification": "RAHSIA BESAR",
                "where": ["attachment:Jadual-sempit-RAHSIA-BESAR.pdf:page1"],
                "note": "columns as narrow as their text: only the cell padding apart"}),
        "Jadual-tempat-terhad.pdf": (table_then(
            [("Tempat", "TERHAD kepada 30 peserta"), ("Tarikh", "1 Januari 2025")],
            (4.0, 9.0), para(PROSE)), {"classification": None}),
        "Ayat-besar.pdf": (fodt(
            para(CAPITALS, "Tengah") + para(" ".join([CAPITALS] * 3), "Sempit")
            + para(PROSE)), {
                "classification": None,
                "note": "a capitalised sentence, also justified in a narrow column"}),
        "Pengepala-SULIT.pdf": (fodt(
            para("Minit Mesyuarat Pengurusan Bil. 4/2025") + para(PROSE),
            header="SULIT", footer="SULIT"), {
                "classification": "SULIT", "where": ["attachment:Pengepala-SULIT.pdf:page1"],
                "encrypted": [False], "unreadable": [False]}),
        "Bingkai-condong-SULIT.pdf": (fodt(
            para("Isi dokumen biasa.") + rotated_frame("SULIT")), {
                "classification": "SULIT",
                "where": ["attachment:Bingkai-condong-SULIT.pdf:page1"],
                "note": "a text frame rotated by 45 degrees"}),
        "Imbasan-gambar.pdf": (fodt(picture_only()), {
            "classification": None, "unreadable": [True],
            "note": "a page with only a picture on it"}),
        "Huruf-naik-SULIT.pdf": (fodt(
            marked_para(f"SU{raised('L')}IT", "Tengah")
            + para("Minit Mesyuarat Pengurusan Bil. 4/2025") + para(PROSE),
            styles=RAISED_STYLES), {
                "classification": "SULIT", "where": ["attachment:Huruf-naik-SULIT.pdf:page1"],
                "note": "the heading SULIT with its L raised by 33% at full size (text rise)"}),
        "Nota-kaki-rahsia.pdf": (fodt(
            marked_para(f"Kata laluan anda adalah rahsia{raised('1', 'Atas')}. Maklumat ini "
                        f"sulit{raised('2', 'Atas')} dan tempat terhad{raised('3', 'Atas')}.")
            + marked_para(f"MAKLUMAT INI ADALAH RAHSIA{raised('4', 'Atas')} SYARIKAT KAMI",
                          "Tengah")
            + marked_para(f"Dokumen ini ra{raised('h')}sia dan su{raised('l')}it.")
            + para("1 Nota kaki."), styles=RAISED_STYLES), {
                "classification": None,
                "note": "footnote marks (superscript digits) after rahsia, sulit, terhad and "
                        "RAHSIA in a capitalised sentence; a raised letter in lower-case prose"}),
    }


def encrypted_cases(header_footer: bytes) -> dict[str, tuple[bytes, dict[str, object]]]:
    return {
        "Kata-laluan-RC4.pdf": (
            encrypted(header_footer, user="buka123", owner="pemilik123", algorithm="RC4-128"),
            {"classification": None, "encrypted": [True], "schemes": ["pdf-rc4"]}),
        "Kata-laluan-AES.pdf": (
            encrypted(header_footer, user="buka123", owner="pemilik123", algorithm="AES-256"),
            {"classification": None, "encrypted": [True], "schemes": ["pdf-aes"]}),
        "Pemilik-sahaja.pdf": (
            encrypted(header_footer, user="", owner="pemilik123", algorithm="AES-256"),
            {"classification": "SULIT", "where": ["attachment:Pemilik-sahaja.pdf:page1"],
             "encrypted": [False], "schemes": [None],
             "note": "only an owner password: opens without a question, read as plain"}),
    }


def _write(name: str, data: bytes, expect: dict[str, object]) -> None:
    (CASES / name).write_bytes(data)
    (CASES / f"{name}.expect.yaml").write_text(
        yaml.safe_dump(expect, sort_keys=False, allow_unicode=True, width=100))


def main(argv: list[str]) -> int:
    CASES.mkdir(parents=True, exist_ok=True)
    for name, (data, expect) in hand_cases().items():
        _write(name, data, expect)
    if "--no-soffice" in argv:
        header_footer = (CASES / "Pengepala-SULIT.pdf").read_bytes()
    else:
        if shutil.which("soffice") is None:
            print("soffice not found: install LibreOffice or use --no-soffice", file=sys.stderr)
            return 1
        for name, (source, expect) in soffice_sources().items():
            data = convert(source)
            _write(name, data, {**expect, "source": SOURCE})
            if name == "Pengepala-SULIT.pdf":
                header_footer = data
    for name, (data, expect) in encrypted_cases(header_footer).items():
        _write(name, data, {**expect, "source": "pypdf encryption of Pengepala-SULIT.pdf"})
    print(f"PDF line cases in {CASES}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
