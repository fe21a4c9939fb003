"""Builds the document cases of the corpus: tests/corpus/cases/documents/.

Run `python tests/corpus/make_documents.py` from the repository root; it rewrites
every case and its `.expect.yaml` sidecar. The unit tests import the builders
from here too, so a case and its unit test are the same bytes.

Everything is written by this script, nothing is copied from elsewhere:
- OOXML (Word, Excel, PowerPoint) with zipfile and XML strings, fixed timestamps;
- PDFs by hand (a text content stream, one text object per line), and PDFs
  encrypted by pypdf (owner password only / user password);
- ZIPs, nested ZIPs, and ZIP bombs (overlapping entries, ratio, nesting);
- RAR 4 and RAR 5 block headers written from RARLAB's format documents (no RAR
  program is free to use here): correct header CRCs, placeholder data areas.
Output is byte-identical between runs except the pypdf-encrypted PDFs, whose
encryption salts are random; their expectations do not change.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sidecars import write_cases

CASES = Path(__file__).parent / "cases" / "documents"
DATE = (2025, 1, 1, 0, 0, 0)
W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
S_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
A_NS = ('xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
        'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"')
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;")


def zip_of(members: dict[str, bytes], *, deflate: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            zf.writestr(info, data)
    return buf.getvalue()


def _content_types(main: str, overrides: dict[str, str]) -> bytes:
    parts = "".join(f'<Override PartName="/{name}" ContentType="{ctype}"/>'
                    for name, ctype in overrides.items())
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/{main}" ContentType="main+xml"/>{parts}</Types>').encode()


def custom_labels(name: str, *, enabled: bool = True,
                  guid: str = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d") -> bytes:
    """docProps/custom.xml with a Microsoft Purview sensitivity label."""
    props = [("Enabled", "true" if enabled else "false"), ("SetDate", "2025-01-01T00:00:00Z"),
             ("Method", "Standard"), ("Name", name), ("SiteId", "1111")]
    body = "".join(
        f'<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" pid="{i}" '
        f'name="MSIP_Label_{guid}_{key}"><vt:lpwstr>{_esc(value)}</vt:lpwstr></property>'
        for i, (key, value) in enumerate(props, start=2))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Properties '
            'xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties" '
            'xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes">'
            f"{body}</Properties>").encode()


def _w_paragraph(text: str, split: bool) -> str:
    """A Word paragraph; `split` puts each character in its own run (as Word does after
    edits or spell-checking), with a tab element for each tab."""
    pieces = list(text) if split else [text]
    runs = "".join('<w:r><w:tab/></w:r>' if p == "\t" else
                   f'<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">{_esc(p)}</w:t></w:r>'
                   for p in pieces)
    return f"<w:p><w:pPr><w:jc w:val=\"center\"/></w:pPr>{runs}</w:p>"


def docx(body: tuple[str, ...] = ("Isi laporan.",), *, headers: tuple[str, ...] = (),
         footers: tuple[str, ...] = (), label: bytes | None = None,
         split: bool = True, extra: dict[str, bytes] | None = None) -> bytes:
    paras = "".join(_w_paragraph(t, split) for t in body)
    members: dict[str, bytes] = {}
    overrides: dict[str, str] = {}
    for kind, texts, root in (("header", headers, "hdr"), ("footer", footers, "ftr")):
        for i, text in enumerate(texts, start=1):
            name = f"word/{kind}{i}.xml"
            members[name] = f"<w:{root} {W_NS}>{_w_paragraph(text, split)}</w:{root}>".encode()
            overrides[name] = f"{kind}+xml"
    if label is not None:
        members["docProps/custom.xml"] = label
    members = {"[Content_Types].xml": _content_types("word/document.xml", overrides),
               "word/document.xml": f"<w:document {W_NS}><w:body>{paras}</w:body>"
                                    "</w:document>".encode(), **members, **(extra or {})}
    return zip_of(members)


def xlsx(strings: tuple[str, ...] = ("Bil", "Perkara"), *, header: str = "",
         footer: str = "", inline: tuple[str, ...] = (), label: bytes | None = None) -> bytes:
    """A workbook: shared strings (with one split into rich-text runs), a sheet whose
    header/footer are Excel code strings, and inline-string cells."""
    si = "".join(f"<si><t>{_esc(s)}</t></si>" if len(s) < 4 else
                 f"<si><r><t>{_esc(s[:2])}</t></r><r><rPr><b/></rPr><t>{_esc(s[2:])}</t></r>"
                 "<rPh><t>X</t></rPh></si>" for s in strings)
    cells = "".join(f'<c r="A{i}" t="s"><v>{i - 1}</v></c>'
                    for i in range(1, len(strings) + 1))
    cells += "".join(f'<c r="B{i}" t="inlineStr"><is><t>{_esc(s)}</t></is></c>'
                     for i, s in enumerate(inline, start=1))
    hf = ""
    if header or footer:
        hf = ("<headerFooter>" + (f"<oddHeader>{_esc(header)}</oddHeader>" if header else "")
              + (f"<oddFooter>{_esc(footer)}</oddFooter>" if footer else "")
              + "</headerFooter>")
    members = {
        "[Content_Types].xml": _content_types("xl/workbook.xml", {}),
        "xl/workbook.xml": f'<workbook {S_NS}><sheets><sheet name="Helaian1" sheetId="1"/>'
                           "</sheets></workbook>".encode(),
        "xl/sharedStrings.xml": f'<sst {S_NS} count="{len(strings)}">{si}</sst>'.encode(),
        "xl/worksheets/sheet1.xml": f"<worksheet {S_NS}><sheetData><row r=\"1\">{cells}</row>"
                                    f"</sheetData>{hf}</worksheet>".encode(),
    }
    if label is not None:
        members["docProps/custom.xml"] = label
    return zip_of(members)


def pptx(slides: tuple[tuple[str, ...], ...], *, master: tuple[str, ...] = ()) -> bytes:
    def sld(root: str, paragraphs: tuple[str, ...]) -> bytes:
        paras = "".join(f"<a:p><a:r><a:rPr lang=\"ms-MY\"/><a:t>{_esc(t)}</a:t></a:r></a:p>"
                        for t in paragraphs)
        return (f"<p:{root} {A_NS}><p:cSld><p:spTree><p:sp><p:txBody><a:bodyPr/>{paras}"
                f"</p:txBody></p:sp></p:spTree></p:cSld></p:{root}>").encode()
    members = {"[Content_Types].xml": _content_types("ppt/presentation.xml", {}),
               "ppt/presentation.xml": f"<p:presentation {A_NS}/>".encode()}
    for i, paragraphs in enumerate(slides, start=1):
        members[f"ppt/slides/slide{i}.xml"] = sld("sld", paragraphs)
    if master:
        members["ppt/slideMasters/slideMaster1.xml"] = sld("sldMaster", master)
    return zip_of(members)


def pdf(*pages: tuple[str, ...], bottom: tuple[str, ...] = ()) -> bytes:
    """A PDF by hand: on each page the lines from the top, and `bottom[i]` (if given)
    as a line at the foot of page i, each a text object of its own."""
    page_ids = [3 + 2 * i for i in range(len(pages))]
    font_id = 3 + 2 * len(pages)
    objs: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % i for i in page_ids)
           + b"] /Count %d >>" % len(pages),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i, lines in enumerate(pages):
        ops = [f"BT /F1 12 Tf 72 {740 - 16 * n} Td ({_pdf_str(line)}) Tj ET"
               for n, line in enumerate(lines)]
        if i < len(bottom):
            ops.append(f"BT /F1 12 Tf 260 40 Td ({_pdf_str(bottom[i])}) Tj ET")
        stream = "\n".join(ops).encode("latin-1")
        objs[page_ids[i]] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                             b"/Contents %d 0 R /Resources << /Font << /F1 %d 0 R >> >> >>"
                             % (page_ids[i] + 1, font_id))
        objs[page_ids[i] + 1] = (b"<< /Length %d >>\nstream\n" % len(stream) + stream
                                 + b"\nendstream")
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets: dict[int, int] = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref = len(out)
    size = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return out


def _pdf_str(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_encrypted(plain: bytes, *, user: str, owner: str) -> bytes:
    """`plain` encrypted by pypdf (AES-128): user "" means only an owner password."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    writer.encrypt(user_password=user, owner_password=owner, algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# -- ZIP bombs ------------------------------------------------------------------------

def zip_overlapping(copies: int = 50) -> bytes:
    """The overlapping-entries bomb: many central-directory entries, one compressed stream."""
    one = zip_of({"isi.txt": b"\x00" * 1024 * 1024})
    eocd = one.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", one, eocd + 12)
    record = one[cd_offset:cd_offset + cd_size]
    directory = record * copies
    end = (b"PK\x05\x06" + struct.pack("<HHHHII", 0, 0, copies, copies, len(directory),
                                       cd_offset) + b"\x00\x00")
    return one[:cd_offset] + directory + end


def zip_ratio(megabytes: int = 8) -> bytes:
    """One member of zeros: about 1000 times smaller compressed than declared."""
    return zip_of({"sifar.bin": b"\x00" * megabytes * 1024 * 1024})


def zip_nested(levels: int, inner: bytes, name: str = "SULIT.docx") -> bytes:
    """`inner` as `name` inside `levels` ZIPs, each named lapisN.zip inside the next."""
    data = zip_of({name: inner})
    for n in range(levels - 1, 0, -1):
        data = zip_of({f"lapis{n}.zip": data})
    return data


# -- RAR headers (RAR 5.0 format; RAR 4.x TECHNOTE) -----------------------------------

def _vint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rar5_block(htype: int, flags: int, fields: bytes, *, extra: bytes = b"",
                data: bytes = b"") -> bytes:
    if extra:
        flags |= 0x0001
    if data:
        flags |= 0x0002
    body = _vint(htype) + _vint(flags)
    if extra:
        body += _vint(len(extra))
    if data:
        body += _vint(len(data))
    body += fields + extra
    sized = _vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(sized)) + sized + data


def rar5(files: tuple[tuple[str, bool], ...], *, encrypted_headers: bool = False) -> bytes:
    """A RAR 5 archive: each (name, encrypted) a stored file header with placeholder data;
    encrypted files carry a file encryption extra record (type 0x01)."""
    out = b"Rar!\x1a\x07\x01\x00"
    if encrypted_headers:
        # Archive encryption header: version 0, flags 1 (password check), KDF count 15,
        # salt 16 bytes, check value 12 bytes. Everything after it is ciphertext.
        fields = _vint(0) + _vint(1) + bytes([15]) + b"\x11" * 16 + b"\x22" * 12
        return out + _rar5_block(4, 0, fields) + b"\x5a" * 64
    out += _rar5_block(1, 0, _vint(0))  # main archive header, no archive flags
    for name, encrypted in files:
        data = b"\x33" * 32
        raw_name = name.encode()
        fields = (_vint(0x0004) + _vint(len(data)) + _vint(0x20)
                  + struct.pack("<I", zlib.crc32(data)) + _vint(0) + _vint(0)
                  + _vint(len(raw_name)) + raw_name)
        extra = b""
        if encrypted:
            record = (_vint(0x01) + _vint(0) + _vint(0x0001) + bytes([15]) + b"\x44" * 16
                      + b"\x55" * 16 + b"\x66" * 12)
            extra = _vint(len(record)) + record
        out += _rar5_block(2, 0, fields, extra=extra, data=data)
    return out + _rar5_block(5, 0, _vint(0))


def _rar4_block(htype: int, flags: int, fields: bytes, data: bytes = b"") -> bytes:
    size = 7 + len(fields)
    after_crc = struct.pack("<BHH", htype, flags, size) + fields
    return struct.pack("<H", zlib.crc32(after_crc) & 0xFFFF) + after_crc + data


def rar4(files: tuple[tuple[str, bool], ...], *, encrypted_headers: bool = False) -> bytes:
    """A RAR 4 archive: MAIN_HEAD (MHD_PASSWORD if `encrypted_headers`), then a FILE_HEAD
    per (name, encrypted) with LHD_PASSWORD when encrypted, then ENDARC."""
    out = b"Rar!\x1a\x07\x00"
    out += _rar4_block(0x73, 0x0080 if encrypted_headers else 0, b"\x00" * 6)
    if encrypted_headers:
        return out + b"\x5a" * 64
    for name, encrypted in files:
        data = b"\x33" * 32
        raw_name = name.encode()
        fields = struct.pack("<IIBIIBBHI", len(data), len(data), 2, zlib.crc32(data),
                             0x5A210000, 29, 0x30, len(raw_name), 0x20) + raw_name
        flags = 0x8000 | (0x0004 if encrypted else 0)
        out += _rar4_block(0x74, flags, fields, data)
    return out + _rar4_block(0x7B, 0x4000, b"")


# -- the cases ------------------------------------------------------------------------

def cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """File name -> (bytes, expectation). See the module docstring."""
    sulit_docx = docx(headers=("SULIT",))
    c: dict[str, tuple[bytes, dict[str, object]]] = {
        "Minit-footer.docx": (
            docx(("Minit Mesyuarat Pengurusan Bil. 4/2025", "Maklumat ini sulit."),
                 footers=("SULIT",)),
            {"classification": "SULIT", "where": ["attachment:Minit-footer.docx:footer"],
             "encrypted": [False], "types": [DOCX], "categories": ["office"],
             "outcome_inbound": "reject", "outcome_outbound": "reject"}),
        "Laporan-header-label.docx": (
            docx(("Laporan.",), headers=("Klasifikasi: TERHAD\tSalinan 1",)),
            {"classification": "TERHAD",
             "where": ["attachment:Laporan-header-label.docx:header"],
             "categories": ["office"]}),
        "Pelan-body.docx": (
            docx(("*** RAHSIA ***", "Pelan operasi.")),
            {"classification": "RAHSIA", "where": ["attachment:Pelan-body.docx:body"],
             "categories": ["office"]}),
        "Header-subject-style.docx": (
            docx(("Isi.",), headers=("Minit Mesyuarat - SULIT",)),
            {"classification": "SULIT",
             "where": ["attachment:Header-subject-style.docx:header"]}),
        "Disclaimer.docx": (
            docx(("MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI", "Sila jaga kerahsiaan dokumen.",
                  "Tindakan TERHADAP aduan."),
                 footers=("E-MEL INI MUNGKIN MENGANDUNGI MAKLUMAT SULIT",),
                 headers=("PENDAFTARAN DIBUKA - TEMPAT TERHAD",)),
            {"classification": None, "encrypted": [False], "categories": ["office"]}),
        "Label-msip.docx": (
            docx(("Isi.",), label=custom_labels("RAHSIA")),
            {"classification": "RAHSIA", "where": ["attachment:Label-msip.docx:msip_labels"]}),
        "Label-msip-disabled.xlsx": (
            xlsx(label=custom_labels("RAHSIA", enabled=False)),
            {"classification": None}),
        "Bajet-hf.xlsx": (
            xlsx(("Bajet", "Jumlah"), header='&C&"Arial,Bold"SULIT'),
            {"classification": "SULIT", "where": ["attachment:Bajet-hf.xlsx:header"],
             "types": [XLSX], "categories": ["office"]}),
        "Jadual-lr.xlsx": (
            xlsx(("Jadual",), footer="&LTERHAD&RMuka &P daripada &N"),
            {"classification": "TERHAD", "where": ["attachment:Jadual-lr.xlsx:footer"]}),
        "Senarai-cell.xlsx": (
            xlsx(("Senarai", "RAHSIA BESAR", "Tempat terhad")),
            {"classification": "RAHSIA BESAR", "where": ["attachment:Senarai-cell.xlsx:cell"]}),
        "Sheet-prose.xlsx": (
            xlsx(("Tempat terhad", "TERHADAP", "MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI"),
                 header="&CLaporan Kewangan&R&D", inline=("Maklumat sulit",)),
            {"classification": None}),
        "Taklimat.pptx": (
            pptx((("Taklimat Keselamatan", "Agenda"), ("SULIT", "Pelan tindakan"))),
            {"classification": "SULIT", "where": ["attachment:Taklimat.pptx:slide2"],
             "types": [PPTX], "categories": ["office"]}),
        "Laporan-page.pdf": (
            pdf(("TERHAD", "Laporan Audit Dalaman", "Isi laporan."), ("Muka 2",)),
            {"classification": "TERHAD", "where": ["attachment:Laporan-page.pdf:page1"],
             "encrypted": [False], "types": ["application/pdf"], "categories": ["pdf"]}),
        "Laporan-bottom.pdf": (
            pdf(("Laporan",), ("Lampiran A",), bottom=("", "SULIT")),
            {"classification": "SULIT", "where": ["attachment:Laporan-bottom.pdf:page2"]}),
        "Prose.pdf": (
            pdf(("E-MEL INI MUNGKIN MENGANDUNGI MAKLUMAT SULIT",
                 "Kata laluan anda adalah rahsia.", "KERAHSIAAN")),
            {"classification": None, "encrypted": [False]}),
        "Owner-only.pdf": (
            pdf_encrypted(pdf(("SULIT", "Dokumen dengan kata laluan pemilik sahaja.")),
                          user="", owner="pemilik123"),
            {"classification": "SULIT", "where": ["attachment:Owner-only.pdf:page1"],
             "encrypted": [False], "categories": ["pdf"], "outcome_outbound": "reject"}),
        "User-password.pdf": (
            pdf_encrypted(pdf(("SULIT", "Dokumen berkata laluan.")),
                          user="buka123", owner="pemilik123"),
            {"classification": None, "encrypted": [True], "categories": ["pdf"],
             "outcome_outbound": "accept"}),
        "pakej.zip": (
            zip_of({"inner.docx": sulit_docx, "nota.txt": b"Sila semak.\n"}),
            {"classification": "SULIT", "where": ["attachment:pakej.zip/inner.docx:header"],
             "encrypted": [False], "categories": ["archive"]}),
        "bersarang.zip": (
            zip_nested(2, docx(("Isi.",)), "SULIT.docx"),
            {"classification": "SULIT",
             "where": ["attachment:bersarang.zip/lapis1.zip/SULIT.docx:filename"]}),
        "nota-dalam.zip": (
            zip_of({"nota.txt": b"Perkara\n\nKlasifikasi: RAHSIA\n"}),
            {"classification": "RAHSIA",
             "where": ["attachment:nota-dalam.zip/nota.txt:content"]}),
        "overlap-bomb.zip": (
            zip_overlapping(),
            {"encrypted": [None], "inspectable": False, "categories": ["archive"],
             "outcome_inbound": "reject", "outcome_outbound": "reject"}),
        "ratio-bomb.zip": (
            zip_ratio(),
            {"encrypted": [None], "inspectable": False, "outcome_inbound": "reject"}),
        "deep-bomb.zip": (
            zip_nested(5, b"Isi.\n", "nota.txt"),
            {"encrypted": [False], "inspectable": False, "outcome_inbound": "reject"}),
        "rar5-encrypted.rar": (
            rar5((("a.txt", True), ("b.txt", True))),
            {"encrypted": [True], "categories": ["archive"]}),
        "rar5-headers-encrypted.rar": (
            rar5((), encrypted_headers=True), {"encrypted": [True]}),
        "rar5-mixed.rar": (
            rar5((("a.txt", True), ("b.txt", False))), {"encrypted": [False]}),
        "rar4-encrypted.rar": (
            rar4((("a.txt", True), ("b.txt", True))),
            {"encrypted": [True], "categories": ["archive"]}),
        "rar4-headers-encrypted.rar": (
            rar4((), encrypted_headers=True), {"encrypted": [True]}),
        "rar4-plain.rar": (
            rar4((("a.txt", False),)), {"encrypted": [False]}),
    }
    return c


def main() -> int:
    print(f"{write_cases(CASES, cases())} document cases in {CASES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
