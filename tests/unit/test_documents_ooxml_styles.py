"""Word All caps / Small caps set in styles (word/styles.xml) read as shown.

ECMA-376 Part 1, 17.7: document defaults, then the paragraph's style, then the run's
character style (each with its `w:basedOn` chain), then the run's own formatting,
which is absolute. Where Word (toggle properties, 17.7.3) and LibreOffice (the nearer
style wins) disagree, the text is read in capitals: a marking one reader shows in
capitals is found. The corpus pair (LibreOffice-made) is under
tests/corpus/cases/redteam/ (tests/corpus/make_redteam.py).
"""

from __future__ import annotations

import base64
import io
import time
import zipfile
from pathlib import Path

import pytest

from gateway.message import documents
from gateway.message.documents import Bounds, ooxml
from gateway.message.view import MessageView

CASES = Path(__file__).parents[1] / "corpus" / "cases" / "redteam"
W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
OOXML = "application/vnd.openxmlformats-officedocument.wordprocessingml."
TYPES = {"word/document.xml": OOXML + "document.main+xml",
         "word/header1.xml": OOXML + "header+xml",
         "word/footer1.xml": OOXML + "footer+xml",
         "word/footnotes.xml": OOXML + "footnotes+xml",
         "word/styles.xml": OOXML + "styles+xml"}


def package(members: dict[str, bytes]) -> bytes:
    overrides = "".join(f'<Override PartName="/{n}" ContentType="{TYPES[n]}"/>'
                        for n in members if n in TYPES)
    ct = ('<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          f'<Default Extension="xml" ContentType="application/xml"/>{overrides}</Types>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", ct)
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def styles(*defs: str, defaults: str = "") -> bytes:
    doc_defaults = (f"<w:docDefaults><w:rPrDefault><w:rPr>{defaults}</w:rPr></w:rPrDefault>"
                    "</w:docDefaults>" if defaults else "")
    return f"<w:styles {W_NS}>{doc_defaults}{''.join(defs)}</w:styles>".encode()


def style(style_id: str, rpr: str = "", *, kind: str = "paragraph", based_on: str = "",
          default: bool = False) -> str:
    base = f'<w:basedOn w:val="{based_on}"/>' if based_on else ""
    flag = ' w:default="1"' if default else ""
    return (f'<w:style w:type="{kind}" w:styleId="{style_id}"{flag}><w:name w:val="{style_id}"/>'
            f"{base}<w:pPr/><w:rPr>{rpr}</w:rPr></w:style>")


def header_para(text: str = "rahsia", *, p_style: str = "", r_style: str = "",
                direct: str = "") -> str:
    ppr = f'<w:pPr><w:pStyle w:val="{p_style}"/></w:pPr>' if p_style else ""
    rstyle = f'<w:rStyle w:val="{r_style}"/>' if r_style else ""
    return f"<w:p>{ppr}<w:r><w:rPr>{rstyle}{direct}</w:rPr><w:t>{text}</w:t></w:r></w:p>"


def with_header(paragraphs: str, styles_xml: bytes | None) -> bytes:
    members = {"word/document.xml": f"<w:document {W_NS}><w:body><w:p><w:r><w:t>Isi</w:t>"
                                    "</w:r></w:p></w:body></w:document>".encode(),
               "word/header1.xml": f"<w:hdr {W_NS}>{paragraphs}</w:hdr>".encode()}
    if styles_xml is not None:
        members["word/styles.xml"] = styles_xml
    return package(members)


def header_texts(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [p.text for p in ooxml.pieces(zf, Bounds()) if p.part == "header"]


# -- the hierarchy -------------------------------------------------------------------------

@pytest.mark.parametrize(("para", "styles_xml", "shown"), [
    # A paragraph style; a character style; Small caps as well as All caps.
    (header_para(p_style="Klas"), styles(style("Klas", "<w:caps/>")), "RAHSIA"),
    (header_para(r_style="Huruf"),
     styles(style("Huruf", "<w:smallCaps/>", kind="character")), "RAHSIA"),
    # Inherited through w:basedOn, two steps up.
    (header_para(p_style="Klas"), styles(style("Klas", based_on="Tengah"),
                                         style("Tengah", based_on="Asas"),
                                         style("Asas", '<w:caps w:val="true"/>')), "RAHSIA"),
    # The document defaults; the default paragraph style of a paragraph that names none
    # (or names a style that is not defined).
    (header_para(), styles(style("Normal"), defaults="<w:caps/>"), "RAHSIA"),
    (header_para(), styles(style("Normal", "<w:caps/>", default=True)), "RAHSIA"),
    (header_para(p_style="Tiada"), styles(style("Normal", "<w:caps/>", default=True)),
     "RAHSIA"),
    # LibreOffice's pair: a paragraph style and a character style both in capitals
    # (Word's toggle would cancel them; LibreOffice shows capitals).
    (header_para(p_style="Klas", r_style="Huruf"),
     styles(style("Klas", "<w:caps/>"), style("Huruf", "<w:caps/>", kind="character")),
     "RAHSIA"),
    # The run's own formatting is absolute: off over a style in capitals...
    (header_para(p_style="Klas", direct='<w:caps w:val="0"/>'),
     styles(style("Klas", "<w:caps/>")), "rahsia"),
    (header_para(direct='<w:caps w:val="false"/>'), styles(defaults="<w:caps/>"), "rahsia"),
    # ...but only for the property it names: Small caps from the style still shows.
    (header_para(p_style="Klas", direct='<w:caps w:val="0"/>'),
     styles(style("Klas", "<w:smallCaps/>")), "RAHSIA"),
    # Styles that do not show capitals: switched off, only an old revision's, only the
    # paragraph mark's, a table style's conditional formatting.
    (header_para(p_style="Klas"), styles(style("Klas", '<w:caps w:val="off"/>')), "rahsia"),
    (header_para(p_style="Klas"),
     styles(style("Klas", "<w:rPrChange><w:rPr><w:caps/></w:rPr></w:rPrChange>")), "rahsia"),
    (header_para(p_style="Klas"), styles(style("Klas"), style("Lain", "<w:caps/>")),
     "rahsia"),
    ('<w:p><w:pPr><w:rPr><w:caps/></w:rPr></w:pPr><w:r><w:t>rahsia</w:t></w:r></w:p>',
     None, "rahsia"),
    ('<w:p><w:r><w:rPr><w:rPrChange><w:rPr><w:caps/></w:rPr></w:rPrChange></w:rPr>'
     "<w:t>rahsia</w:t></w:r></w:p>", None, "rahsia"),
])
def test_capitals_from_the_style_hierarchy(para: str, styles_xml: bytes | None,
                                           shown: str) -> None:
    assert header_texts(with_header(para, styles_xml)) == [shown]


def test_styles_apply_in_every_word_part() -> None:
    sty = styles(style("Klas", "<w:caps/>"))
    para = header_para("sulit", p_style="Klas")
    box = (f'<w:p><w:r><w:pict><v:shape xmlns:v="urn:schemas-microsoft-com:vml"><v:textbox>'
           f"<w:txbxContent>{header_para('terhad', p_style='Klas')}</w:txbxContent>"
           "</v:textbox></v:shape></w:pict></w:r></w:p>")
    data = package({
        "word/document.xml": f"<w:document {W_NS}><w:body>{para}{box}</w:body>"
                             "</w:document>".encode(),
        "word/footer1.xml": f"<w:ftr {W_NS}>{para}</w:ftr>".encode(),
        "word/footnotes.xml": f"<w:footnotes {W_NS}><w:footnote w:id=\"1\">{para}"
                              "</w:footnote></w:footnotes>".encode(),
        "word/styles.xml": sty})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        got = sorted((p.part, p.text) for p in ooxml.pieces(zf, Bounds()))
    assert got == [("body", ""), ("body", "SULIT"), ("body", "TERHAD"),
                   ("footer", "SULIT"), ("footnote", "SULIT")]


# -- bounded and fail-safe -------------------------------------------------------------------

def test_based_on_cycles_end() -> None:
    cycle = styles(style("A", based_on="B"), style("B", based_on="A"))
    assert header_texts(with_header(header_para(p_style="A"), cycle)) == ["rahsia"]
    cycle = styles(style("A", based_on="B"), style("B", "<w:caps/>", based_on="A"))
    assert header_texts(with_header(header_para(p_style="A"), cycle)) == ["RAHSIA"]
    own = styles(style("A", "<w:caps/>", based_on="A"))
    assert header_texts(with_header(header_para(p_style="A"), own)) == ["RAHSIA"]


def test_based_on_chain_is_followed_a_bounded_number_of_steps() -> None:
    def chain(length: int) -> bytes:
        defs = [style(f"S{i}", based_on=f"S{i + 1}") for i in range(length - 1)]
        return styles(*defs, style(f"S{length - 1}", "<w:caps/>"))
    near = with_header(header_para(p_style="S0"), chain(ooxml.MAX_BASED_ON))
    assert header_texts(near) == ["RAHSIA"]
    far = with_header(header_para(p_style="S0"), chain(ooxml.MAX_BASED_ON + 1))
    assert header_texts(far) == ["rahsia"]


def test_many_styles_in_long_chains_cost_little() -> None:
    # 10,000 styles in one chain, each used by a paragraph: each style is walked once.
    count = 10_000
    defs = [style(f"S{i}", based_on=f"S{i + 1}") for i in range(count)]
    paras = "".join(header_para("x", p_style=f"S{i}") for i in range(count))
    data = with_header(paras, styles(*defs, style(f"S{count}", "<w:caps/>")))
    started = time.monotonic()
    texts = header_texts(data)
    assert time.monotonic() - started < 5
    assert len(texts) == count and texts[0] == "x" and texts[-1] == "X"


@pytest.mark.parametrize("broken", [
    b"<w:styles><w:style",                                    # cut short
    b"not xml at all",
    styles(style("Klas", "<w:caps/>"))[:-20],                 # damaged after the style
])
def test_damaged_styles_part_falls_back_to_what_was_read(broken: bytes) -> None:
    paras = header_para(p_style="Klas") + header_para("sulit", direct="<w:caps/>")
    want = ["RAHSIA" if b"Klas" in broken else "rahsia", "SULIT"]
    assert header_texts(with_header(paras, broken)) == want


def test_no_styles_part_is_direct_formatting_only() -> None:
    paras = header_para(p_style="Klas") + header_para("sulit", direct="<w:smallCaps/>")
    assert header_texts(with_header(paras, None)) == ["rahsia", "SULIT"]


def test_styles_part_with_a_doctype_makes_the_document_not_inspectable() -> None:
    hostile = (b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x "x">]>'
               + styles(style("Klas", "<w:caps/>")))
    with pytest.raises(documents.LimitExceeded):
        header_texts(with_header(header_para(p_style="Klas"), hostile))


# -- real files (LibreOffice) ------------------------------------------------------------

def test_libreoffice_paragraph_style_in_capitals() -> None:
    data = (CASES / "Kepala-gaya-huruf-besar.docx").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert b"<w:caps/>" in zf.read("word/styles.xml")
        header = zf.read("word/header1.xml")
        assert b"rahsia" in header and b"caps" not in header.lower()
    assert "RAHSIA" in header_texts(data)


def test_libreoffice_prose_in_a_capitals_style_is_not_a_marking() -> None:
    data = (CASES / "Prosa-gaya-huruf-besar.docx").read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        body = [p.text for p in ooxml.pieces(zf, Bounds()) if p.part == "body"]
    assert "PENDAFTARAN DIBUKA - TEMPAT TERHAD" in body  # read as shown...
    raw = (b"From: a@anm.gov.my\r\nTo: b@example.org\r\nSubject: Minit\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: text/plain\r\n\r\nSalam.\r\n--B\r\nContent-Type: application/"
           b"octet-stream\r\nContent-Disposition: attachment; filename=Prosa.docx\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--B--\r\n")
    assert MessageView(raw).classification is None  # ...and still prose
