"""Builds the red-team cases of issue 10: tests/corpus/cases/redteam/.

Each case is a document or message an insider (hiding a marking) or a careless
sender (tripping a false alarm) could send, found while trying to break the
readers. Run `python tests/corpus/make_redteam.py` from the repository root with
LibreOffice (`soffice`, 7.4 was used) and `7zz` on the PATH; the outputs are
committed, so the tests never need either.

- LibreOffice converts flat OpenDocument sources written here (the builders of
  `make_odf_rtf`) into `.docx`, `.doc`, `.odt`, `.rtf`, `.xlsx`, `.xls`, `.ppt`:
  a header typed `rahsia` and formatted All caps (shown `RAHSIA`), also in `.doc` by
  a paragraph or a character style (and a style's capitals switched off on the run:
  shown `rahsia`); the document title and a custom property shown by fields in a
  header; a formula whose result is the marking; a text box on a sheet; a
  presentation footer set in Insert > Header and Footer; prose and a table with the
  words, formatted All caps too;
- LibreOffice `.docx` files whose header (and prose) is in a paragraph style set
  UPPERCASE: All caps set in word/styles.xml, not on the run;
- a LibreOffice `.docx` whose header part is renamed (Office finds parts by their
  relationships, whatever their names);
- by hand: PDFs marked by an annotation (a text box, a stamp, a form field), a word
  letter-spaced glyph by glyph, a file whose cross-reference table is missing, a
  PDF after a page of text or after a picture; and messages: a SULIT document in a
  fake PGP/MIME wrapper or beside a PGP armour line, a Notepad "Unicode" text file,
  a message saved as `.eml` inside a ZIP and inside an Outlook item, a ZIP behind a
  prefix, a damaged Outlook item inside a ZIP.

Cases with a `.expect.yaml` sidecar are checked by tests/unit/test_corpus.py. The
files without one are checked by tests/unit/test_redteam_issue10.py itself: a plain
tar.gz (read since documents/compressed.py) and a plain 7z (its files are not read:
reported unreadable).

LibreOffice stamps dates into what it writes, so those files change from run to
run; their expectations do not.
"""

from __future__ import annotations

import base64
import email.policy
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import make_outlook as outlook  # noqa: E402
from make_odf_rtf import fodp, fods, fodt, p, table  # noqa: E402
from make_pdf_lines import glyph_by_glyph, hand_pdf, text_line  # noqa: E402

OUT = HERE / "cases" / "redteam"
PROFILE = Path("/tmp/lo-redteam-corpus")
BODY = "Laporan audit dalaman tahun 2025."

# An automatic text style that shows its text in capitals (Format > Character >
# Font effects > Case: UPPERCASE; Word's All caps).
_CAPS_STYLE = ('<style:style style:name="T1" style:family="text"><style:text-properties '
               'fo:text-transform="uppercase"/></style:style>')


def _caps(source: str, old: str, text: str) -> str:
    """`source` with the paragraph `old` replaced by `text` in the capitals style."""
    source = source.replace("<office:automatic-styles>",
                            "<office:automatic-styles>" + _CAPS_STYLE)
    return source.replace(p(old), f'<text:p><text:span text:style-name="T1">{text}'
                                  "</text:span></text:p>")


def _styled_header(text: str, *, paragraph: bool = True, off: bool = False) -> str:
    """A header `text` in a common style shown in capitals: a paragraph style, or a
    character style on its one span; `off`: the span switches capitals off again
    (direct formatting over the style, Word's toggle)."""
    family = "paragraph" if paragraph else "text"
    style = (f'<style:style style:name="Klasifikasi" style:family="{family}">'
             '<style:text-properties fo:text-transform="uppercase"/></style:style>')
    source = fodt((p(BODY),), header="PLACE").replace("<office:styles/>",
                                                       f"<office:styles>{style}</office:styles>")
    if off:
        source = source.replace("<office:automatic-styles>", '<office:automatic-styles>'
                                '<style:style style:name="T2" style:family="text">'
                                '<style:text-properties fo:text-transform="none"/>'
                                "</style:style>")
        text = f'<text:span text:style-name="T2">{text}</text:span>'
    if paragraph:
        return source.replace(p("PLACE"), f'<text:p text:style-name="Klasifikasi">{text}'
                                          "</text:p>")
    return source.replace(p("PLACE"), f'<text:p><text:span text:style-name="Klasifikasi">'
                                      f"{text}</text:span></text:p>")


# A paragraph style (Format > Paragraph Style, Font Effects > Case: UPPERCASE):
# LibreOffice writes it to a .docx as `w:style/w:rPr/w:caps` in word/styles.xml, and
# the paragraph names it (`w:pStyle`) with no formatting of its own.
_CAPS_PARAGRAPH_STYLE = ('<office:styles><style:style style:name="Klasifikasi" '
                         'style:family="paragraph"><style:text-properties '
                         'fo:text-transform="uppercase"/></style:style></office:styles>')


def _caps_style(source: str, old: str, text: str) -> str:
    """`source` with the paragraph `old` replaced by `text` in the capitals paragraph
    style."""
    source = source.replace("<office:styles/>", _CAPS_PARAGRAPH_STYLE)
    return source.replace(p(old), f'<text:p text:style-name="Klasifikasi">{text}</text:p>')


def _header_xml(source: str, xml: str) -> str:
    return source.replace(p("PLACE"), f"<text:p>{xml}</text:p>")


# -- LibreOffice cases: (file name, flat source, target, expectations or None) ---------

def _lo_cases() -> list[tuple[str, str, str, dict[str, Any] | None]]:
    caps_header = _caps(fodt((p(BODY),), header="PLACE"), "PLACE", "rahsia")
    caps_prose = _caps(fodt((p(BODY),), header="PLACE"), "PLACE",
                       "Pendaftaran dibuka - tempat terhad")
    style_header = _caps_style(fodt((p(BODY),), header="PLACE"), "PLACE", "rahsia")
    style_prose = _caps_style(fodt((p("PLACE"), p(BODY)), header="Minit"), "PLACE",
                              "Pendaftaran dibuka - tempat terhad")
    title = _header_xml(fodt((p(BODY),), header="PLACE"), "<text:title>RAHSIA</text:title>")
    title = title.replace("<office:meta>", "<office:meta><dc:title>RAHSIA</dc:title>")
    custom = _header_xml(fodt((p(BODY),), header="PLACE"),
                         '<text:user-defined text:name="Klasifikasi">RAHSIA</text:user-defined>')
    custom = custom.replace("<office:meta>", '<office:meta><meta:user-defined meta:name='
                                             '"Klasifikasi">RAHSIA</meta:user-defined>')
    formula = fods((("Bil", "Perkara"),)).replace(
        '<table:table-cell office:value-type="string"><text:p>Bil</text:p></table:table-cell>',
        '<table:table-cell table:formula="=&quot;RAH&quot;&amp;&quot;SIA&quot;" '
        'office:value-type="string" office:string-value="RAHSIA"><text:p>RAHSIA</text:p>'
        "</table:table-cell>")
    textbox = fods((("Bil", "Perkara"),)).replace(
        "<table:table-column", '<table:shapes><draw:frame draw:z-index="0" svg:x="2cm" '
        'svg:y="1cm" svg:width="8cm" svg:height="2cm"><draw:text-box><text:p>RAHSIA</text:p>'
        "</draw:text-box></draw:frame></table:shapes><table:table-column", 1)
    prose_table = fodt((table((("Bil", "Nama kursus", "Terhad"), ("1", "Kursus ICT", "Ya"),
                               ("2", "Kursus Pengurusan", "Tidak"))),
                        p("Tempat terhad: daftar segera."),
                        p("Maklumat ini sulit dan hanya untuk penerima.")),
                       header="PENDAFTARAN DIBUKA - TEMPAT TERHAD")

    def marked(name: str, part: str, marking: str = "RAHSIA") -> dict[str, Any]:
        return {"classification": marking, "where": [f"attachment:{name}:{part}"]}

    none: dict[str, Any] = {"classification": None}
    return [
        ("Kepala-huruf-besar.docx", caps_header, "docx", marked("Kepala-huruf-besar.docx",
                                                                 "header")),
        ("Kepala-huruf-besar.odt", caps_header, "odt", marked("Kepala-huruf-besar.odt",
                                                               "header")),
        ("Kepala-huruf-besar.rtf", caps_header, "rtf", marked("Kepala-huruf-besar.rtf",
                                                               "header")),
        ("Kepala-huruf-besar.doc", caps_header, "doc", marked("Kepala-huruf-besar.doc",
                                                              "header")),
        ("Kepala-gaya-perenggan.doc", _styled_header("rahsia"), "doc",
         marked("Kepala-gaya-perenggan.doc", "header")),
        ("Kepala-gaya-aksara.doc", _styled_header("rahsia", paragraph=False), "doc",
         marked("Kepala-gaya-aksara.doc", "header")),
        ("Kepala-gaya-dimatikan.doc", _styled_header("rahsia", off=True), "doc", none),
        ("Prosa-huruf-besar.doc", caps_prose, "doc", none),
        ("Prosa-huruf-besar.docx", caps_prose, "docx", none),
        ("Kepala-gaya-huruf-besar.docx", style_header, "docx",
         marked("Kepala-gaya-huruf-besar.docx", "header")),
        ("Prosa-gaya-huruf-besar.docx", style_prose, "docx", none),
        ("Prosa-huruf-besar.odt", caps_prose, "odt", none),
        ("Prosa-huruf-besar.rtf", caps_prose, "rtf", none),
        ("Kepala-tajuk.odt", title, "odt", marked("Kepala-tajuk.odt", "header")),
        ("Kepala-medan.odt", custom, "odt", marked("Kepala-medan.odt", "header")),
        ("Formula.xlsx", formula, "xlsx", marked("Formula.xlsx", "cell")),
        ("Kotak-teks.xlsx", textbox, "xlsx", marked("Kotak-teks.xlsx", "textbox")),
        ("Kotak-teks.xls", textbox, "xls", marked("Kotak-teks.xls", "textbox")),
        ("Kaki-slaid.ppt", fodp((("Taklimat",), ("Isi",)), footer="RAHSIA"), "ppt",
         marked("Kaki-slaid.ppt", "footer1")),
        ("Jadual-terhad.docx", prose_table, "docx", none),
        ("Jadual-terhad.pdf", prose_table, "pdf", none),
    ]


def soffice(*args: str) -> None:
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{PROFILE}", *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300)


def renamed_header(docx: bytes) -> bytes:
    """The package with `word/header1.xml` renamed `word/kepala.xml` (and its
    relationship and content type with it): Word opens it the same."""
    src = zipfile.ZipFile(io.BytesIO(docx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            data = src.read(info).replace(b"header1.xml", b"kepala.xml")
            zf.writestr(info.filename.replace("header1.xml", "kepala.xml"), data)
    return out.getvalue()


# -- hand-built PDFs ------------------------------------------------------------------

def _pdf(objects: dict[int, bytes], *, page_extra: bytes = b"", catalog_extra: bytes = b""
         ) -> bytes:
    """One page with the body line, /Annots and catalog entries as given."""
    content = text_line(BODY, 72, 600).encode()
    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 612 792] >>",
        3: b"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 4 0 R >> >> "
           b"/Contents 5 0 R " + page_extra + b">>",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        5: b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        **objects,
    }
    out = b"%PDF-1.6\n%\xe2\xe3\xcf\xd3\n"
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref = len(out)
    size = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, size))
    return out + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)


_APPEARANCE = b"BT /F1 18 Tf 2 6 Td (RAHSIA) Tj ET"
_AP = (b"<< /Type /XObject /Subtype /Form /BBox [0 0 100 30] /Resources << /Font << /F1 4 0 R"
       b" >> >> /Length %d >>\nstream\n" % len(_APPEARANCE) + _APPEARANCE + b"\nendstream")


def annotated(kind: str) -> bytes:
    """The marking only in an annotation's appearance: a FreeText box, a Stamp, or a
    form field (Widget) whose value is the marking."""
    annot = {
        "FreeText": b"<< /Type /Annot /Subtype /FreeText /Rect [250 740 350 770] "
                    b"/Contents (RAHSIA) /DA (/Helv 18 Tf 0 g) /F 4 /AP << /N 7 0 R >> >>",
        "Stamp": b"<< /Type /Annot /Subtype /Stamp /Rect [250 740 350 770] /F 4 "
                 b"/AP << /N 7 0 R >> >>",
        "Widget": b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (klasifikasi) /V (RAHSIA) "
                  b"/Rect [250 740 350 770] /F 4 /DA (/Helv 18 Tf 0 g) /AP << /N 7 0 R >> "
                  b"/P 3 0 R >>",
    }[kind]
    catalog = b"/AcroForm << /Fields [6 0 R] >> " if kind == "Widget" else b""
    return _pdf({6: annot, 7: _AP}, page_extra=b"/Annots [6 0 R] ", catalog_extra=catalog)


def marked_pdf() -> bytes:
    return hand_pdf([text_line("RAHSIA", 280, 750) + "\n" + text_line(BODY, 72, 600)])


_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
                        "hgGAWjR9awAAAABJRU5ErkJggg==")


def _pdfs() -> dict[str, tuple[bytes, dict[str, Any]]]:
    def marked(name: str) -> dict[str, Any]:
        return {"classification": "RAHSIA", "where": [f"attachment:{name}:page1"]}

    plain = marked_pdf()
    spaced = hand_pdf([glyph_by_glyph("RAHSIA", 250, 750, slack=6.0) + "\n"
                       + text_line(BODY, 72, 600)])
    return {
        "Anotasi-kotak-teks.pdf": (annotated("FreeText"), marked("Anotasi-kotak-teks.pdf")),
        "Anotasi-cop.pdf": (annotated("Stamp"), marked("Anotasi-cop.pdf")),
        "Medan-borang.pdf": (annotated("Widget"), marked("Medan-borang.pdf")),
        "Huruf-jarang.pdf": (spaced, marked("Huruf-jarang.pdf")),
        "Tanpa-xref.pdf": (plain[:plain.rfind(b"xref")] + b"%%EOF\n",
                           marked("Tanpa-xref.pdf")),
        "Awalan-teks.pdf": (b"Laporan\n" * 100 + plain, marked("Awalan-teks.pdf")),
        "Gambar-PDF.pdf": (_PNG + plain, marked("Gambar-PDF.pdf")),
    }


# -- messages -----------------------------------------------------------------------

def _message(subject: str = "Dokumen", body: str = "Salam, dokumen dilampirkan.\n"
             ) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Pegawai <pegawai@anm.gov.my>"
    msg["To"] = "penerima@example.org"
    msg["Subject"] = subject
    msg["Message-ID"] = "<redteam@anm.gov.my>"
    msg.set_content(body)
    return msg


def _bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=email.policy.SMTP)


def fake_pgp_mime(docx: bytes) -> bytes:
    """A plain SULIT .docx in a multipart/encrypted wrapper: clients without PGP show
    it as an attachment; nothing in it is encrypted."""
    return (b"From: Pegawai <pegawai@anm.gov.my>\r\nTo: penerima@example.org\r\n"
            b"Subject: Minit\r\nMessage-ID: <redteam@anm.gov.my>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; "
            b"boundary=\"B\"\r\n\r\n--B\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
            b"Version: 1\r\n\r\n--B\r\nContent-Type: application/octet-stream; "
            b"name=\"Minit.docx\"\r\nContent-Disposition: attachment; filename=\"Minit.docx\""
            b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(docx).replace(b"\n", b"\r\n") + b"\r\n--B--\r\n")


def saved_message(attachment: bytes) -> bytes:
    """A RAHSIA message, saved as a file: marked subject, the document attached."""
    msg = _message("[RAHSIA] Pelan operasi", "Pelan dilampirkan.\n")
    msg.add_attachment(attachment, maintype="application", subtype="msword",
                       filename="Pelan.doc")
    return _bytes(msg)


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2025, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def damaged_msg() -> bytes:
    """An Outlook item whose subject stream claims more bytes than the file has: it
    is still an Outlook item, but one that cannot be read (at the top level the
    message is not inspectable)."""
    data = bytearray(outlook.outlook_msg(outlook.Message(subject="[RAHSIA] Pelan",
                                                         body="Pelan.")))
    first_dir = int.from_bytes(data[48:52], "little")
    raw = "__substg1.0_0037001F\0".encode("utf-16-le")
    for entry in range(512 * (first_dir + 1), len(data) - 127, 128):
        if data[entry:entry + len(raw)] == raw:
            data[entry + 120:entry + 124] = (0x7FFFFFF0).to_bytes(4, "little")
            return bytes(data)
    raise AssertionError("no subject stream")


def _messages(docx: bytes, doc: bytes) -> dict[str, tuple[bytes, dict[str, Any]]]:
    sulit_rejected = {"classification": "SULIT", "outcome_outbound": "reject",
                      "rule_outbound": "klasifikasi-lampiran-tidak-disulitkan"}
    cases: dict[str, tuple[bytes, dict[str, Any]]] = {}
    cases["pgp-mime-palsu.eml"] = (fake_pgp_mime(docx), {**sulit_rejected,
                                                         "encrypted": [False]})
    armour = _message("Minit")
    armour.add_attachment(b"{\\rtf1\\ansi{\\v -----BEGIN PGP MESSAGE-----}\\par SULIT\\par "
                          b"Minit mesyuarat.\\par}", maintype="application", subtype="rtf",
                          filename="Minit.rtf")
    cases["perisai-pgp.eml"] = (_bytes(armour), {**sulit_rejected, "encrypted": [False]})
    notepad = _message()
    notepad.add_attachment(b"\xff\xfe" + "RAHSIA\r\nPelan operasi.\r\n".encode("utf-16-le"),
                           maintype="text", subtype="plain", filename="nota.txt")
    cases["notepad-unicode.eml"] = (_bytes(notepad), {
        "classification": "RAHSIA", "where": ["attachment:nota.txt:content"]})
    in_zip = _message()
    in_zip.add_attachment(zip_of({"fwd.eml": saved_message(doc)}), maintype="application",
                          subtype="zip", filename="emel.zip")
    cases["eml-dalam-zip.eml"] = (_bytes(in_zip), {
        "classification": "RAHSIA", "where": ["attachment:emel.zip/fwd.eml:subject",
                                              "attachment:emel.zip/fwd.eml/Pelan.doc:header"]})
    in_msg = outlook.outlook_msg(outlook.Message(subject="Dokumen", body="Salam.", attachments=[
        outlook.Attachment(long_name="fwd.eml", data=saved_message(doc),
                           mime="message/rfc822")]))
    cases["Eml-dalam-msg.msg"] = (in_msg, {
        "classification": "RAHSIA", "where": ["attachment:Eml-dalam-msg.msg/fwd.eml:subject"]})
    prefixed = _message()
    prefixed.add_attachment(b"Arkib dokumen\n" * 20 + zip_of({
        "RAHSIA-pelan.txt": b"RAHSIA\nPelan operasi.\n"}), maintype="application",
        subtype="zip", filename="arkib.zip")
    cases["zip-berawalan.eml"] = (_bytes(prefixed), {
        "classification": "RAHSIA", "where": ["attachment:arkib.zip/RAHSIA-pelan.txt:content"]})
    broken = _message()
    broken.add_attachment(zip_of({"Pelan.msg": damaged_msg()}), maintype="application",
                          subtype="zip", filename="pelan.zip")
    cases["msg-rosak-dalam-zip.eml"] = (_bytes(broken), {
        "inspectable": False, "outcome_outbound": "reject",
        "rule_outbound": "struktur-melebihi-had"})
    return cases


# -- archives: a tar.gz that is read, a 7z whose files are not (test_redteam_issue10) ---

def archives(doc: bytes, scratch: Path) -> dict[str, bytes]:
    (scratch / "Pelan.doc").write_bytes(doc)
    subprocess.run(["7zz", "a", "-bso0", "-bsp0", str(scratch / "pelan.7z"), "Pelan.doc"],
                   cwd=scratch, check=True, timeout=120)
    subprocess.run(["tar", "czf", str(scratch / "pelan.tar.gz"), "Pelan.doc"], cwd=scratch,
                   check=True, timeout=120)
    return {"Arkib-7z.7z": (scratch / "pelan.7z").read_bytes(),
            "Arkib-tar.tar.gz": (scratch / "pelan.tar.gz").read_bytes()}


def main() -> int:
    for tool in ("soffice", "7zz"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed to build these cases", file=sys.stderr)
            return 1
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    written: dict[str, tuple[bytes, dict[str, Any] | None]] = {}
    with tempfile.TemporaryDirectory(prefix="make-redteam-") as tmp:
        scratch = Path(tmp)
        cases = _lo_cases()
        for target in sorted({t for _n, _s, t, _e in cases}):
            batch = [(n, s) for n, s, t, _e in cases if t == target]
            src_dir = scratch / f"src-{target}"
            out_dir = scratch / f"out-{target}"
            src_dir.mkdir()
            for name, source in batch:
                kind = "fods" if target in ("xlsx", "xls") else \
                    "fodp" if target == "ppt" else "fodt"
                (src_dir / f"{Path(name).stem}.{kind}").write_text(source, encoding="utf-8")
            soffice("--convert-to", target, "--outdir", str(out_dir),
                    *sorted(str(f) for f in src_dir.iterdir()))
            for name, _source in batch:
                data = (out_dir / f"{Path(name).stem}.{target}").read_bytes()
                expect = next(e for n, _s, _t, e in cases if n == name)
                written[name] = (data, expect)
        plain_header = fodt((p(BODY),), header="RAHSIA")
        (scratch / "Kepala.fodt").write_text(plain_header, encoding="utf-8")
        soffice("--convert-to", "docx", "--outdir", str(scratch / "plain"),
                str(scratch / "Kepala.fodt"))
        written["Kepala-nama-lain.docx"] = (
            renamed_header((scratch / "plain" / "Kepala.docx").read_bytes()),
            {"classification": "RAHSIA", "where": ["attachment:Kepala-nama-lain.docx:header"]})
        for name, (data, expect) in _pdfs().items():
            written[name] = (data, expect)
        docx = (HERE / "cases" / "documents" / "Minit-footer.docx").read_bytes()
        doc = (HERE / "cases" / "office" / "legacy" / "Minit-header.doc").read_bytes()
        for name, (data, expect) in _messages(docx, doc).items():
            written[name] = (data, expect)
        for name, data in archives(doc, scratch).items():
            written[name] = (data, None)
    for name, (data, expect) in written.items():
        (OUT / name).write_bytes(data)
        if expect is not None:
            expect = {**expect, "note": "red team, issue 10 (tests/corpus/make_redteam.py)"}
            (OUT / f"{name}.expect.yaml").write_text(
                yaml.safe_dump(expect, sort_keys=False, allow_unicode=True, width=100),
                encoding="utf-8")
    print(f"wrote {len(written)} cases under {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
