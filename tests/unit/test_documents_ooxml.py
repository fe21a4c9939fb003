"""Markings in Word, Excel and PowerPoint files (MARKINGS.md section 4), and safe XML."""

from __future__ import annotations

import email.policy
import io
import sys
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import documents
from gateway.message.documents.ooxml import header_footer_sections
from gateway.message.view import MessageView, NotInspectable

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_documents as make

FIXTURES = Path(__file__).parents[1] / "corpus" / "fixtures"


def view_with(name: str, data: bytes) -> MessageView:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["Subject"] = "Lampiran"
    msg.set_content("Salam.")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP))


def found(name: str, data: bytes) -> list[tuple[str, str]]:
    view = view_with(name, data)
    return sorted((f.marking, f.where["at"]) for f in view.markings.found)


# -- Word ------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "part"), [("footers", "footer"), ("headers", "header")])
def test_word_header_footer_split_over_runs(kind: str, part: str) -> None:
    data = make.docx(**{kind: ("SULIT",)}, split=True)
    xml = zipfile.ZipFile(io.BytesIO(data)).read(f"word/{part}1.xml").decode()
    assert "SULIT" not in xml  # one run per letter: only joined runs read as the marking
    assert found("Minit.docx", data) == [("SULIT", f"attachment:Minit.docx:{part}")]


@pytest.mark.parametrize(("text", "marking"), [
    ("Klasifikasi: TERHAD\tSalinan 1 daripada 3", "TERHAD"),   # label line, tab-separated
    ("Muka surat 1\t\tRAHSIA", "RAHSIA"),                       # a footer's right tab stop
    ("Minit Mesyuarat - SULIT", "SULIT"),                       # subject-style delimiter
    ("[ TERHAD ]", "TERHAD"),
    ("E-MEL INI MUNGKIN MENGANDUNGI MAKLUMAT SULIT", None),     # a disclaimer sentence
    ("MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI", None),
    ("PENDAFTARAN DIBUKA - TEMPAT TERHAD", None),
    ("Jabatan Kerahsiaan dan Keselamatan", None),
    ("TERHADAP", None),
])
def test_word_footer_rules(text: str, marking: str | None) -> None:
    view = view_with("a.docx", make.docx(footers=(text,)))
    assert view.classification == marking


@pytest.mark.parametrize(("body", "marking"), [
    (("*** RAHSIA ***", "Isi."), "RAHSIA"),
    (("Pengelasan Keselamatan: SULIT",), "SULIT"),
    (("S U L I T",), "SULIT"),
    (("Kata laluan anda adalah rahsia. Jangan kongsi.",), None),
    (("Maklumat ini sulit dan hanya untuk penerima.",), None),
    (("Tindakan TERHADAP aduan", "KERAHSIAAN"), None),
])
def test_word_body_paragraphs(body: tuple[str, ...], marking: str | None) -> None:
    view = view_with("b.docx", make.docx(body))
    assert view.classification == marking
    if marking:
        assert view.markings.where(marking)[0]["at"] == "attachment:b.docx:body"


def test_word_text_box_paragraph_is_its_own_paragraph() -> None:
    # A text box in a header: a paragraph nested in a paragraph. The marking is the
    # whole inner paragraph; the outer one's own text stays apart.
    w = make.W_NS
    hdr = (f'<w:hdr {w}><w:p><w:r><w:t>Jabatan Audit</w:t></w:r><w:r><w:pict><w:txbxContent>'
           '<w:p><w:r><w:t>SUL</w:t></w:r><w:r><w:t>IT</w:t></w:r></w:p></w:txbxContent>'
           '</w:pict></w:r></w:p></w:hdr>').encode()
    data = make.docx(extra={"word/header1.xml": hdr})
    assert found("c.docx", data) == [("SULIT", "attachment:c.docx:header")]


def test_word_deleted_and_field_code_text_is_not_read() -> None:
    w = make.W_NS
    doc = (f'<w:document {w}><w:body><w:p><w:del><w:r><w:delText>SULIT</w:delText></w:r>'
           '</w:del></w:p><w:p><w:r><w:instrText>SULIT</w:instrText></w:r></w:p>'
           '</w:body></w:document>').encode()
    assert found("d.docx", make.docx(extra={"word/document.xml": doc})) == []


# -- Excel -----------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "sections"), [
    ('&C&"Arial,Bold"SULIT', ["SULIT"]),
    ("&LTERHAD&RMuka &P daripada &N", ["TERHAD", "Muka   daripada"]),
    ("&L&12&KFF0000RAHSIA&C&D", ["RAHSIA"]),
    ("&CR&&D &B&IBajet&B", ["R&D Bajet"]),
    ("&K01+000SULIT", ["SULIT"]),
])
def test_excel_header_footer_codes(code: str, sections: list[str]) -> None:
    assert header_footer_sections(code) == sections


@pytest.mark.parametrize(("kwargs", "marking", "at"), [
    ({"header": '&C&"Arial,Bold"SULIT'}, "SULIT", "header"),
    ({"footer": "&LTERHAD&RMuka &P"}, "TERHAD", "footer"),
    ({"strings": ("Senarai", "RAHSIA BESAR")}, "RAHSIA BESAR", "cell"),  # split in runs
    ({"inline": ("Klasifikasi: SULIT",)}, "SULIT", "cell"),
    ({"header": "&CLaporan &D", "strings": ("Tempat terhad", "TERHADAP")}, None, ""),
    ({"strings": ("MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI",)}, None, ""),
])
def test_excel(kwargs: dict[str, object], marking: str | None, at: str) -> None:
    view = view_with("j.xlsx", make.xlsx(**kwargs))  # type: ignore[arg-type]
    assert view.attachments[0].category == "office"
    assert view.classification == marking
    if marking:
        assert view.markings.where(marking)[0]["at"] == f"attachment:j.xlsx:{at}"


def test_excel_phonetic_runs_are_not_text() -> None:
    # <rPh> holds a reading guide, not cell text: "SU" + "LIT" with a phonetic "X".
    assert found("k.xlsx", make.xlsx(("SULIT",))) == [("SULIT", "attachment:k.xlsx:cell")]


# -- PowerPoint ------------------------------------------------------------------------

def test_powerpoint_slide_paragraphs_numbered() -> None:
    data = make.pptx((("Taklimat",), ("Agenda", "TERHAD")), master=("Klik untuk edit",))
    view = view_with("t.pptx", data)
    assert view.classification == "TERHAD"
    (where,) = view.markings.where("TERHAD")
    assert (where["at"], where["slide"], where["field"]) == ("attachment:t.pptx:slide2", 2,
                                                              "slide")


def test_powerpoint_master_and_prose() -> None:
    assert found("m.pptx", make.pptx((("Isi",),), master=("SULIT",))) == [
        ("SULIT", "attachment:m.pptx:slide_master")]
    assert found("n.pptx", make.pptx((("Rahsia kejayaan pasukan",
                                       "MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI"),))) == []


# -- sensitivity labels ------------------------------------------------------------------

@pytest.mark.parametrize("build", [make.docx, make.xlsx])
def test_msip_label_custom_property(build: object) -> None:
    data = build(label=make.custom_labels("SULIT"))  # type: ignore[operator]
    assert found("l.docx", data) == [("SULIT", "attachment:l.docx:msip_labels")]
    off = build(label=make.custom_labels("SULIT", enabled=False))  # type: ignore[operator]
    assert found("l.docx", off) == []
    other = build(label=make.custom_labels("Umum"))  # type: ignore[operator]
    assert found("l.docx", other) == []


# -- safety ----------------------------------------------------------------------------

_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
           b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
           b"<w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>")
_EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
             b"<d>&x;</d>")


@pytest.mark.parametrize("xml", [_LAUGHS, _EXTERNAL])
def test_doctype_and_entities_make_the_document_not_inspectable(xml: bytes) -> None:
    data = make.docx(extra={"word/document.xml": xml})
    with pytest.raises(documents.LimitExceeded):
        list(documents.pieces(data, documents.Bounds()))
    view = view_with("e.docx", data)
    try:
        view.markings  # noqa: B018
    except NotInspectable:
        return
    assert not view.complete


def test_malformed_part_is_skipped_others_still_read() -> None:
    data = make.docx(footers=("SULIT",), extra={"word/document.xml": b"<w:document><w:p>"})
    assert found("f.docx", data) == [("SULIT", "attachment:f.docx:footer")]


def test_xml_part_bounded_by_the_expansion_budget() -> None:
    data = make.docx(tuple(f"Perenggan {i} " + "x" * 200 for i in range(2000)))
    bounds = documents.Bounds(documents.Bounds().limits, seconds=30)
    bounds.budget.limit = 10_000
    with pytest.raises(documents.LimitExceeded):
        list(documents.pieces(data, bounds))


# -- real files ------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "text"), [("example.docx", "Lorem ipsum"),
                                            ("example.xlsx", "lorem")])
def test_real_office_files_are_read_without_markings(name: str, text: str) -> None:
    data = (FIXTURES / "office" / name).read_bytes()
    pieces = list(documents.pieces(data, documents.Bounds()))
    assert text in [p.text for p in pieces]
    assert view_with(name, data).classification is None


def test_encrypted_office_file_gives_no_text() -> None:
    data = (FIXTURES / "office" / "example_password.docx").read_bytes()
    assert list(documents.pieces(data, documents.Bounds())) == []
