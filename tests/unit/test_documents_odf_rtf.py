"""Markings in OpenDocument and RTF files (MARKINGS.md section 4), and hostile input."""

from __future__ import annotations

import email.policy
import io
import sys
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.message import documents, encryption
from gateway.message.documents import odf, rtf, xmltext
from gateway.message.documents.piece import Piece
from gateway.message.view import MessageView, NotInspectable

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_odf_rtf as make

CASES = Path(__file__).parents[1] / "corpus" / "cases" / "office"


def view_with(name: str, data: bytes) -> MessageView:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["Subject"] = "Lampiran"
    msg.set_content("Salam.")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP))


def assert_not_inspectable(view: MessageView) -> None:
    """A document beyond the bounds leaves the view incomplete (fail closed)."""
    try:
        view.markings  # noqa: B018
    except NotInspectable:
        return
    assert not view.complete


def found(name: str, data: bytes) -> list[tuple[str, str]]:
    return sorted((f.marking, f.where["at"]) for f in view_with(name, data).markings.found)


def read(data: bytes) -> list[tuple[str, str, str]]:
    """(rule, location, text) of every piece, through the content dispatch."""
    return [(p.rule, p.location, p.text) for p in documents.pieces(data, documents.Bounds())]


def flat(xml: str) -> list[tuple[str, str, str]]:
    return [(p.rule, p.location, p.text)
            for p in odf.flat_pieces(xml.encode(), documents.Bounds())]


def package(flat_xml: str, *, extra: dict[str, bytes] | None = None) -> bytes:
    """An ODF package made the way LibreOffice splits a flat document: the same XML as
    content.xml, styles.xml and meta.xml (each part reads only its own sections)."""
    body = flat_xml.split("<office:body>")[1].split("</office:body>")[0]
    masters = flat_xml.split("<office:master-styles>")[1].split("</office:master-styles>")[0]
    meta = flat_xml.split("<office:meta>")[1].split("</office:meta>")[0]
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    members = {
        "mimetype": b"application/vnd.oasis.opendocument.text",
        "content.xml": f"{head}<office:document-content {make.NS}><office:body>{body}"
                       "</office:body></office:document-content>".encode(),
        "styles.xml": f"{head}<office:document-styles {make.NS}><office:master-styles>"
                      f"{masters}</office:master-styles></office:document-styles>".encode(),
        "meta.xml": f"{head}<office:document-meta {make.NS}><office:meta>{meta}</office:meta>"
                    "</office:document-meta>".encode(),
        "META-INF/manifest.xml": MANIFEST.format(entries="").encode(),
        **(extra or {}),
    }
    return make.zip_of(members)


MANIFEST = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
            'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
            'manifest:version="1.3"><manifest:file-entry manifest:full-path="/" '
            'manifest:media-type="application/vnd.oasis.opendocument.text"/>{entries}'
            "</manifest:manifest>")


def encrypted_entry(path: str, algorithm: str) -> str:
    return (f'<manifest:file-entry manifest:full-path="{path}" manifest:media-type="text/xml">'
            '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x">'
            f'<manifest:algorithm manifest:algorithm-name="{algorithm}" '
            'manifest:initialisation-vector="x"/><manifest:key-derivation '
            'manifest:key-derivation-name="PBKDF2" manifest:iteration-count="1024" '
            'manifest:salt="x"/></manifest:encryption-data></manifest:file-entry>')


# -- OpenDocument text ---------------------------------------------------------------------

def test_text_document_parts() -> None:
    xml = make.fodt((make.p("Minit"), f"<text:p>{make.frame('RAHSIA BESAR')}Nota</text:p>",
                     make.table((("TERHAD", "Rujukan"),))),
                    header="SULIT", header_first="RAHSIA", footer="Muka 1",
                    footer_left="Klasifikasi: TERHAD", meta=make.meta_labels("SULIT"))
    expected = [("label", "header", "SULIT"), ("label", "header", "RAHSIA"),
                ("label", "footer", "Muka 1"), ("label", "footer", "Klasifikasi: TERHAD"),
                ("lines", "body", "Minit"), ("lines", "textbox", "RAHSIA BESAR"),
                ("lines", "body", "Nota"), ("lines", "cell", "TERHAD"),
                ("lines", "cell", "Rujukan")]
    pieces = flat(xml)
    assert pieces[:-1] == expected
    rule, where, text = pieces[-1]
    assert (rule, where) == ("msip", "msip_labels") and "_Name=SULIT;" in text
    in_package = read(package(xml))
    assert sorted(in_package) == sorted(pieces)


def test_markings_found_in_a_package_where_they_stand() -> None:
    xml = make.fodt((make.p("Maklumat ini sulit dan hanya untuk penerima."),
                     make.table((("Bil", "SULIT"),))), header="Minit Mesyuarat - TERHAD",
                    footer_left="RAHSIA")
    assert found("m.odt", package(xml)) == [
        ("RAHSIA", "attachment:m.odt:footer"), ("SULIT", "attachment:m.odt:cell"),
        ("TERHAD", "attachment:m.odt:header")]


def test_spaces_tabs_and_breaks_as_written() -> None:
    body = ('<text:p>S<text:s/>U L I T</text:p>'
            '<text:p>Muka 1<text:s text:c="6"/>TERHAD</text:p>'
            '<text:p>Jabatan<text:tab/>RAHSIA<text:line-break/>Salinan 1</text:p>'
            '<text:p>x<text:s text:c="99999999999"/>y</text:p>')
    pieces = flat(make.fodt((body,)))
    assert [t for _r, _w, t in pieces] == [
        "S U L I T", "Muka 1      TERHAD", "Jabatan\tRAHSIA\nSalinan 1",
        "x" + " " * xmltext.MAX_SPACE_RUN + "y"]


def test_text_that_is_not_shown_is_not_read() -> None:
    body = ('<text:p>Laporan<office:annotation><dc:creator>A</dc:creator>'
            "<text:p>SULIT</text:p></office:annotation></text:p>"
            "<text:tracked-changes><text:changed-region text:id='c1'><text:deletion>"
            "<text:p>RAHSIA</text:p></text:deletion></text:changed-region>"
            "</text:tracked-changes>"
            '<text:p><draw:frame draw:name="logo"><draw:image/><svg:title>Logo</svg:title>'
            "<svg:desc>Jata</svg:desc></draw:frame>TERHAD</text:p>"
            '<text:p>Nota<text:note text:note-class="footnote"><text:note-citation>1'
            "</text:note-citation><text:note-body><text:p>SULIT</text:p></text:note-body>"
            "</text:note></text:p>")
    assert flat(make.fodt((body,))) == [
        ("lines", "body", "Laporan"), ("lines", "body", "TERHAD"),
        ("lines", "footnote", "SULIT"), ("lines", "body", "Nota")]


def test_watermark_and_text_box_in_a_header_are_the_header() -> None:
    box = f"<text:p>{make.frame('TERHAD')}</text:p>"
    xml = make.fodt((make.p("Isi"),), header="Jabatan",
                    header_xml=make.watermark("RAHSIA") + box)
    assert flat(xml) == [("label", "header", "RAHSIA"), ("label", "header", "TERHAD"),
                         ("label", "header", "Jabatan"), ("lines", "body", "Isi")]


def test_cell_with_several_paragraphs_is_a_line_each() -> None:
    cell = ('<table:table><table:table-row><table:table-cell><text:p>Rujukan</text:p>'
            "<text:p>SULIT</text:p></table:table-cell></table:table-row></table:table>")
    assert flat(make.fodt((cell,))) == [("lines", "cell", "Rujukan"), ("lines", "cell", "SULIT")]


def test_text_document_prose_is_not_a_marking() -> None:
    xml = make.fodt(tuple(make.p(t) for t in make.PROSE), header=make.PROSE[1],
                    footer="Sila jaga kerahsiaan dokumen ini")
    assert found("p.odt", package(xml)) == []


# -- spreadsheets and presentations ---------------------------------------------------------

def test_spreadsheet_cells_and_header_regions() -> None:
    xml = make.fods((("Bil", "SULIT"),), header=("Jabatan", "TERHAD", "Muka 1"),
                    footer="Klasifikasi: RAHSIA")
    assert flat(xml) == [("label", "header", "Jabatan"), ("label", "header", "TERHAD"),
                         ("label", "header", "Muka 1"), ("label", "footer", "Klasifikasi: RAHSIA"),
                         ("lines", "cell", "Bil"), ("lines", "cell", "SULIT")]


def test_presentation_slides_notes_master_and_footer() -> None:
    xml = make.fodp((("Taklimat",), ("Agenda", "SULIT")), master=("RAHSIA",),
                    notes=("", "TERHAD"), footer="Klasifikasi: SULIT")
    assert flat(xml) == [("lines", "slide_master", "RAHSIA"),
                         ("label", "footer", "Klasifikasi: SULIT"),
                         ("lines", "slide1", "Taklimat"), ("lines", "slide2", "Agenda"),
                         ("lines", "slide2", "SULIT"), ("lines", "notes2", "TERHAD")]


@pytest.mark.parametrize(("name", "marking", "at"), [
    ("odf/Minit-header.odt", "SULIT", "header"),
    ("odf/Laporan-footer.odt", "TERHAD", "footer"),
    ("odf/Pelan-first-header.odt", "RAHSIA", "header"),
    ("odf/Bajet-left-footer.odt", "SULIT", "footer"),
    ("odf/Nota-textbox.odt", "RAHSIA BESAR", "textbox"),
    ("odf/Senarai-cell.odt", "TERHAD", "cell"),
    ("odf/Label-msip.odt", "RAHSIA", "msip_labels"),
    ("odf/Tera-air.odt", "RAHSIA", "header"),
    ("odf/Nota-kaki.odt", "SULIT", "footnote"),
    ("odf/Jadual.ods", "SULIT", "cell"),
    ("odf/Bajet-header.ods", "TERHAD", "header"),
    ("odf/Taklimat.odp", "SULIT", "slide2"),
    ("odf/Master.odp", "RAHSIA", "slide_master"),
    ("odf/Nota-penceramah.odp", "TERHAD", "notes2"),
    ("odf/Kaki-slaid.odp", "SULIT", "footer"),
    ("odf/Prose.odt", None, ""), ("odf/Prose.ods", None, ""), ("odf/Prose.odp", None, ""),
    ("rtf/Minit-header.rtf", "SULIT", "header"),
    ("rtf/Laporan-footer.rtf", "TERHAD", "footer"),
    ("rtf/Senarai-cell.rtf", "RAHSIA", "cell"),
    ("rtf/Nota-textbox.rtf", "TERHAD", "textbox"),
    ("rtf/Tera-air.rtf", "RAHSIA", "header"),
    ("rtf/Nota-kaki.rtf", "SULIT", "footnote"),
    ("rtf/Fullwidth.rtf", "SULIT", "body"),
    ("rtf/Cyrillic.rtf", "RAHSIA", "body"),
    ("rtf/Prose.rtf", None, ""),
])
def test_files_libreoffice_wrote(name: str, marking: str | None, at: str) -> None:
    data = (CASES / name).read_bytes()
    leaf = Path(name).name
    view = view_with(leaf, data)
    assert view.attachments[0].category == "office"
    assert view.classification == marking
    if marking:
        assert f"attachment:{leaf}:{at}" in [w["at"] for w in view.markings.where(marking)]


def test_flat_documents_by_content() -> None:
    for name, part in (("Minit-flat.fodt", "header"), ("Jadual-flat.fods", "header")):
        data = (CASES / "odf" / name).read_bytes()
        assert documents.walk.kind(data[:4096]) == "flat_odf"
        assert any(p.location == part and p.rule == "label" for p in
                   documents.pieces(data, documents.Bounds()))


# -- encryption ------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "scheme"), [("Berkata-laluan.odt", "aes"),
                                              ("Berkata-laluan-lama.odt", "blowfish")])
def test_password_protected_files(name: str, scheme: str) -> None:
    data = (CASES / "odf" / name).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert odf.encryption(zf) == (True, scheme)
    assert encryption.attachment_protection(data, "application/zip") == \
        encryption.Protection(True, scheme)
    assert read(data) == []


def test_plain_package_is_not_encrypted() -> None:
    data = (CASES / "odf" / "Jadual.ods").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert odf.encryption(zf) == (False, None)


@pytest.mark.parametrize(("entries", "expected"), [
    ([("content.xml", "http://www.w3.org/2009/xmlenc11#aes256-gcm")], (True, "aes")),
    ([("content.xml", "http://www.w3.org/2001/04/xmlenc#aes256-cbc"),
      ("styles.xml", "Blowfish CFB")], (True, "blowfish")),
    ([("content.xml", "urn:example:unknown")], (True, None)),
    ([("Object 1/content.xml", "http://www.w3.org/2001/04/xmlenc#aes256-cbc")],
     (True, "aes")),
    ([("Pictures/a.png", "http://www.w3.org/2001/04/xmlenc#aes256-cbc")], (False, None)),
    ([], (False, None)),
])
def test_manifest_encryption(entries: list[tuple[str, str]],
                             expected: tuple[bool, str | None]) -> None:
    manifest = MANIFEST.format(entries="".join(encrypted_entry(p, a) for p, a in entries))
    data = make.zip_of({"mimetype": b"application/vnd.oasis.opendocument.text",
                        "content.xml": b"\x8f\x01ciphertext", "META-INF/manifest.xml":
                        manifest.encode()})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert odf.encryption(zf) == expected


def test_encrypted_parts_are_not_read_but_plain_meta_is() -> None:
    xml = make.fodt((make.p("SULIT"),), meta=make.meta_labels("TERHAD"))
    manifest = MANIFEST.format(entries=encrypted_entry("content.xml", "Blowfish CFB"))
    data = package(xml, extra={"META-INF/manifest.xml": manifest.encode()})
    assert [r for r, _w, _t in read(data)] == ["msip"]


def test_no_or_broken_manifest() -> None:
    data = make.zip_of({"mimetype": b"application/vnd.oasis.opendocument.text",
                        "content.xml": b"<x/>", "META-INF/manifest.xml": b"<manifest"})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert odf.encryption(zf) == (False, None)
    data = make.zip_of({"mimetype": b"x", "content.xml": b"<x/>"})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert odf.encryption(zf) == (False, None)


def test_is_odf_and_embedded_members() -> None:
    assert odf.is_odf({"mimetype", "content.xml"})
    assert odf.is_odf({"content.xml", "META-INF/manifest.xml"})
    assert not odf.is_odf({"mimetype", "OEBPS/content.opf"})
    data = package(make.fodt(), extra={"Object 2": b"\xd0\xcf\x11\xe0", "Pictures/a.png": b"p",
                                       "Pictures/b.pdf": b"%PDF", "Object 1/content.xml": b"<x/>",
                                       "Thumbnails/thumbnail.png": b"p", "SULIT.pdf": b"%PDF"})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert [i.filename for i in odf.embedded(zf)] == ["Object 2", "Pictures/b.pdf",
                                                          "SULIT.pdf"]


def test_embedded_object_parts_are_read_with_their_folder() -> None:
    chart = (f"<office:document-content {make.NS}><office:body><office:text>"
             "<text:p>RAHSIA</text:p></office:text></office:body></office:document-content>")
    data = package(make.fodt(), extra={"Object 1/content.xml": chart.encode()})
    pieces = list(documents.pieces(data, documents.Bounds(), path="a.odt"))
    assert Piece("lines", "body", "RAHSIA", path="a.odt/Object 1") in pieces


# -- hostile OpenDocument ----------------------------------------------------------------------

_DOCTYPE = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<office:document-content xmlns:office='urn:oasis:names:tc:opendocument:xmlns:"
            b"office:1.0'>&x;</office:document-content>")


def test_doctype_in_content_is_hostile() -> None:
    data = package(make.fodt(), extra={"content.xml": _DOCTYPE})
    with pytest.raises(documents.LimitExceeded):
        read(data)
    assert_not_inspectable(view_with("d.odt", data))


def test_doctype_in_flat_document_and_manifest() -> None:
    with pytest.raises(documents.LimitExceeded):
        list(odf.flat_pieces(b'<?xml version="1.0"?><!DOCTYPE office:document []>'
                             b"<office:document/>", documents.Bounds()))
    data = make.zip_of({"mimetype": b"x", "content.xml": b"<x/>",
                        "META-INF/manifest.xml": _DOCTYPE})
    with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(documents.LimitExceeded):
        odf.encryption(zf)
    assert encryption.attachment_protection(data, "application/zip").encrypted is None


def test_deeply_nested_containers_are_hostile() -> None:
    deep = "<draw:frame>" * (xmltext.MAX_CONTEXT_DEPTH + 1)
    with pytest.raises(documents.LimitExceeded):
        flat(make.fodt((deep,)))
    ok = "<draw:frame>" * 50 + "<text:p>SULIT</text:p>" + "</draw:frame>" * 50
    assert flat(make.fodt((ok,))) == [("lines", "textbox", "SULIT")]


def test_deep_spans_and_many_paragraphs_end_in_time() -> None:
    spans = "<text:span>" * 20000 + "SULIT" + "</text:span>" * 20000
    started = time.monotonic()
    assert flat(make.fodt((f"<text:p>{spans}</text:p>",))) == [("lines", "body", "SULIT")]
    assert time.monotonic() - started < 10


def test_truncated_and_damaged_packages_end_quietly() -> None:
    data = (CASES / "odf" / "Minit-header.odt").read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 30):
        read(data[:cut])  # nothing but LimitExceeded may escape; here nothing at all
    xml = make.fodt((make.p("Isi"),), header="SULIT")
    broken = package(xml, extra={"content.xml": b"<office:document-content><text:p>SU"})
    assert read(broken) == [("label", "header", "SULIT")]
    truncated = xml.encode()[: xml.index("</style:header>")]
    assert flat(truncated.decode()) == [("label", "header", "SULIT")]  # what was read


def test_flat_document_bounded_by_the_budget() -> None:
    xml = make.fodt(tuple(make.p("x" * 200) for _ in range(2000)))
    bounds = documents.Bounds(documents.Bounds().limits)
    bounds.budget.limit = 10_000
    with pytest.raises(documents.LimitExceeded):
        list(odf.flat_pieces(xml.encode(), bounds))


# -- RTF -----------------------------------------------------------------------------------

def rtf_doc(body: str, head: str = r"\ansi\ansicpg1252\deff0") -> bytes:
    return ("{\\rtf1" + head + r"{\fonttbl{\f0\fswiss\fcharset0 Arial;}"
            r"{\f1\froman\fcharset204 Times Cyr;}{\f2\fnil\fcharset134 SimSun;}}"
            r"{\colortbl;\red0\green0\blue0;}" + body + "}").encode("latin-1")


def rtf_read(body: str, head: str = r"\ansi\ansicpg1252\deff0") -> list[tuple[str, str, str]]:
    return [(p.rule, p.location, p.text)
            for p in rtf.pieces(rtf_doc(body, head), documents.Bounds())]


def test_rtf_body_header_footer_and_cells() -> None:
    body = (r"{\header\pard\plain SULIT\par}{\headerf\pard FIRST\par}{\headerl LEFT\par}"
            r"{\headerr RIGHT\par}{\footer\pard Muka\tab\chpgn\tab TERHAD\par}"
            r"{\footerf F1\par}{\footerl F2\par}{\footerr F3\par}"
            r"\pard\plain Minit {\b mesy}uarat\par "
            r"\trowd\cellx1000\cellx2000\pard\intbl RAHSIA\cell Rujukan: A\par B\cell\row"
            r"\pard Akhir\line baris\par")
    assert rtf_read(body) == [
        ("label", "header", "SULIT"), ("label", "header", "FIRST"),
        ("label", "header", "LEFT"), ("label", "header", "RIGHT"),
        ("label", "footer", "Muka\t \tTERHAD"), ("label", "footer", "F1"),
        ("label", "footer", "F2"), ("label", "footer", "F3"),
        ("lines", "body", "Minit mesyuarat"), ("lines", "cell", "RAHSIA"),
        ("lines", "cell", "Rujukan: A"), ("lines", "cell", "B"),
        ("lines", "body", "Akhir\nbaris")]


def test_rtf_characters_and_code_pages() -> None:
    body = (r"caf\'e9\~\emdash\'93q\'94\par "
            r"{\f1 \'d1\'d3\'cb\'b2\'d2}\par "           # cp1251 (font charset 204)
            r"{\f2 \'d6\'d0\'ce\'c4}\par "                # cp936, double-byte
            "line\\\nnext\\par "                        # backslash-newline is \par
            r"a\{b\}c\\d\-e\_f\par")
    assert [t for _r, _w, t in rtf_read(body)] == [
        "café\u00a0\u2014\u201cq\u201d", "СУЛІТ", "中文", "line", "next",
        "a{b}c\\de\u2011f"]
    cyrillic = rtf_read(r"\'d1\'d3\'cb\'b2\'d2\par", head=r"\ansi\ansicpg1251")
    assert cyrillic == [("lines", "body", "СУЛІТ")]


def test_rtf_unicode_escapes_and_skip_counts() -> None:
    body = (r"\uc1\u65331?\u65333?\u65324?\u65321?\u65332?\par "   # full-width SULIT
            r"SUL\u1030\'3fT\par "                                 # Cyrillic І, hex fallback
            r"{\uc2\u8212\'97\'97x}\par "                          # two fallback bytes
            r"{\uc0\u8211 y}\par "                                 # no fallback
            r"\u-10179?\u-8527?\par "                              # surrogate pair, negative
            r"\uc3\u1057{ab}\par "                                 # a brace ends the skip
            r"\uc1\u1057\bin3 {}}z\par")                           # \bin is one character
    texts = [t for _r, _w, t in rtf_read(body)]
    assert texts == ["ＳＵＬＩＴ", "SULІT", "\u2014x", "\u2013y", "\U0001f6b1", "Сab", "Сz"]
    assert found("u.rtf", rtf_doc(body)) == [("SULIT", "attachment:u.rtf:body")] * 2


def test_rtf_destinations_that_are_not_text() -> None:
    body = (r"{\info{\title SULIT}{\author RAHSIA}}{\stylesheet{\s0 TERHAD;}}"
            r"{\*\generator SULIT;}{\*\themedata 53554c4954}{\*\datastore 0105}"
            r"{\pict\pngblip 89504e47 53554c4954}{\*\unknownthing SULIT}"
            r"{\*\pgdsctbl{\pgdsc0{\header SULIT\par}}}"
            r"{\field{\*\fldinst DOCPROPERTY SULIT}{\fldrslt RAHSIA}}\par "
            r"{\listtext 1.\tab}TERHAD\par "
            r"{\object\objemb{\*\objclass Word}{\*\objdata 0105}{\result Hasil}}\par "
            r"{\*\bkmkstart SULIT}{\*\bkmkend SULIT}Isi\par "
            r"Tinggal {\deleted SULIT}kekal\par")
    assert [t for _r, _w, t in rtf_read(body)] == ["RAHSIA", "TERHAD", "Hasil", "Isi",
                                                   "Tinggal kekal"]


def test_rtf_shapes_text_boxes_and_wordart() -> None:
    textbox = (r"{\shp{\*\shpinst\shpleft0{\sp{\sn shapeType}{\sv 202}}"
               r"{\shptxt\pard SULIT\par}}{\shprslt{\*\do\dptxbxtext SULIT}}}")
    wordart = r"{\shp{\*\shpinst{\sp{\sn gtextUNICODE}{\sv RAHSIA}}{\sp{\sn fHidden}{\sv 0}}}}"
    assert rtf_read(r"\pard Isi" + textbox + r"\par" + wordart) == [
        ("lines", "textbox", "SULIT"), ("lines", "body", "Isi"),
        ("lines", "textbox", "RAHSIA")]
    in_header = r"{\header\pard " + wordart + textbox + r"Jabatan\par}"
    assert rtf_read(in_header) == [("label", "header", "RAHSIA"), ("label", "header", "SULIT"),
                                   ("label", "header", "Jabatan")]
    assert found("w.rtf", rtf_doc(in_header)) == [
        ("RAHSIA", "attachment:w.rtf:header"), ("SULIT", "attachment:w.rtf:header")]


def test_rtf_document_properties_and_footnotes() -> None:
    body = (r"{\*\userprops{\propname MSIP_Label_abc_Enabled}\proptype30{\staticval true}"
            r"{\propname MSIP_Label_abc_Name}\proptype30{\staticval TERHAD}"
            r"{\propname Lain}\proptype30{\staticval SULIT}}"
            r"Isi{\super\chftn}{\footnote\pard{\super\chftn} SULIT\par}\par")
    assert rtf_read(body) == [
        ("lines", "footnote", "  SULIT"), ("lines", "body", "Isi "),
        ("msip", "msip_labels", "MSIP_Label_abc_Enabled=true; MSIP_Label_abc_Name=TERHAD;")]


def test_rtf_plain_text_body_then_margins() -> None:
    data = rtf_doc(r"{\header SULIT\par}Salam,\par\par Isi.\par{\footer Muka 1\par}Akhir")
    assert rtf.plain_text(data, documents.Bounds()) == "Salam,\n\nIsi.\nAkhir\nSULIT\nMuka 1"
    assert rtf.plain_text(b"not rtf", documents.Bounds()) == ""
    written = (CASES / "rtf" / "Minit-header.rtf").read_bytes()
    assert rtf.plain_text(written, documents.Bounds()).splitlines() == ["Minit Mesyuarat.",
                                                                          "SULIT"]


def test_rtf_prose_is_not_a_marking() -> None:
    body = "".join(f"{t}\\par " for t in make.PROSE) + r"{\header Jabatan Audit\par}"
    assert found("p.rtf", rtf_doc(body)) == []


def test_rtf_two_destinations_in_one_group() -> None:
    assert rtf_read(r"{\header A\footer B}Isi\par") == [
        ("label", "header", "A"), ("label", "footer", "B"), ("lines", "body", "Isi")]


def test_rtf_text_after_the_document_is_not_part_of_it() -> None:
    assert rtf_read(r"Isi\par}SULIT\par{more") == [("lines", "body", "Isi")]


# -- hostile RTF ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [rtf.MAX_DEPTH + 1, 100_000])
def test_rtf_nested_groups_beyond_the_bound(depth: int) -> None:
    data = b"{\\rtf1 " + b"{" * depth + b"SULIT" + b"}" * depth + b"}"
    started = time.monotonic()
    with pytest.raises(documents.LimitExceeded):
        list(rtf.pieces(data, documents.Bounds()))
    assert time.monotonic() - started < 5
    assert_not_inspectable(view_with("deep.rtf", data))


def test_rtf_nesting_within_the_bound_is_read() -> None:
    depth = rtf.MAX_DEPTH - 2
    data = b"{\\rtf1 " + b"{" * depth + b"SULIT\\par" + b"}" * depth + b"}"
    assert [p.text for p in rtf.pieces(data, documents.Bounds())] == ["SULIT"]


@pytest.mark.parametrize("data", [
    b"{\\rtf1 Isi\\par \\bin999999999999 SULIT}",          # \bin longer than the data
    b"{\\rtf1 Isi\\par \\bin-5 x\\par}",
    b"{\\rtf1 Isi\\par \\bin4 {{{{ \\par}",                # braces inside binary data
    b"{\\rtf1 Isi\\par {\\header SUL",                     # truncated
    b"{\\rtf1 Isi\\par \\",                                # a lone backslash at the end
    b"{\\rtf1 Isi\\par \\u99999999999 \\uc999999999 \\u65 xx}",
    b"{\\rtf1 Isi\\par }}}}}}",
    b"{\\rtf1 Isi\\par \\'zz\\'4",
    b"{\\rtf1\\ansicpg99999\\mac Isi\\par \\fcharset999 \\cpg-1 \\f9999999999}",
    b"{\\rtf1 Isi\\par " + b"\\" + b"a" * 100 + b"}",
    b"{\\rtf1 Isi\\par \\u-55296 \\u-55296 \\u-9216 x\\par}",
])
def test_rtf_damaged_input_ends_quietly(data: bytes) -> None:
    pieces = list(rtf.pieces(data, documents.Bounds()))
    assert pieces[:1] == [Piece("lines", "body", "Isi")]
    rtf.plain_text(data, documents.Bounds())


def test_rtf_bounded_by_budget_and_clock() -> None:
    data = b"{\\rtf1 " + b"Perenggan panjang\\par " * 20000 + b"}"
    bounds = documents.Bounds(documents.Bounds().limits)
    bounds.budget.limit = 10_000
    with pytest.raises(documents.LimitExceeded):
        list(rtf.pieces(data, bounds))
    late = documents.Bounds(seconds=0)
    time.sleep(0.01)
    with pytest.raises(documents.LimitExceeded):
        list(rtf.pieces(data, late))


def test_rtf_large_picture_is_quick() -> None:
    picture = b"{\\pict\\pngblip " + b"0123456789abcdef" * 64 + b"\r\n}"
    data = b"{\\rtf1 SULIT\\par " + picture * 5000 + b"}}"
    started = time.monotonic()
    assert [p.text for p in rtf.pieces(data, documents.Bounds())] == ["SULIT"]
    assert time.monotonic() - started < 5


_RTF_ALPHABET = st.sampled_from([b"{", b"}", b"\\", b"\\par ", b"\\u", b"\\uc2 ", b"\\'",
                                 b"\\bin", b"\\*", b"\\header ", b"\\cell ", b"\\shptxt ",
                                 b"\\sp", b"\\sn ", b"\\sv ", b"-12", b"9", b"e9", b"SULIT",
                                 b" ", b"\r\n", b"\xff", b"\\f1 ", b"\\fonttbl "])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RTF_ALPHABET, max_size=80))
def test_rtf_fuzz_never_raises(parts: list[bytes]) -> None:
    data = b"{\\rtf1 " + b"".join(parts)
    for piece in rtf.pieces(data, documents.Bounds()):
        assert isinstance(piece.text, str)
        piece.text.encode("utf-8")  # no lone surrogates


_XML_ALPHABET = st.sampled_from([
    "<text:p>", "</text:p>", "<draw:frame>", "</draw:frame>", "<text:s text:c='3'/>",
    "<style:header>", "</style:header>", "<draw:page>", "</draw:page>", "SULIT", "&amp;",
    "<text:tab/>", "<office:annotation>", "</office:annotation>", "<", ">", "&"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_XML_ALPHABET, max_size=40))
def test_flat_odf_fuzz_never_raises_but_limits(parts: list[str]) -> None:
    xml = make.fodt(("".join(parts),))
    list(odf.flat_pieces(xml.encode(), documents.Bounds()))
