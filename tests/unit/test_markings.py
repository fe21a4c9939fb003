"""The marking grammar of MARKINGS.md, row by row, plus the evasions it names."""

from __future__ import annotations

import email.policy
import io
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message.markings import Found, Markings, in_line, in_subject
from gateway.message.view import MessageView
from gateway.observe.rejection_log import CONTENT_KEYS

DATA = Path(__file__).parent / "data"


def message(subject: str = "Makluman", body: str = "Salam sejahtera.", *,
            headers: tuple[tuple[str, str], ...] = (),
            attachments: tuple[tuple[str, bytes, str], ...] = ()) -> MessageView:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["To"] = "penerima@anm.gov.my"
    msg["Subject"] = subject
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP))


# -- the examples table --------------------------------------------------------------

@pytest.mark.parametrize(("subject", "marking"), [
    ("SULIT: Minit Mesyuarat Pengurusan Bil. 4/2025", "SULIT"),
    ("[RAHSIA BESAR] Pelan Operasi", "RAHSIA BESAR"),
    ("Laporan Audit Dalaman - TERHAD", "TERHAD"),
    ("Tempat terhad: daftar segera untuk kursus ICT", None),
    ("PENDAFTARAN DIBUKA - TEMPAT TERHAD", None),
    ("Rahsia kejayaan pasukan kita", None),
    ("Tindakan terhadap aduan pelanggan", None),
    ("SULIT Minit mesyuarat", "SULIT"),
    ("Laporan RAHSIA BESAR", "RAHSIA BESAR"),
    ("Re: TERHAD Senarai pembekal", "TERHAD"),
    ("Minit mesyuarat (Sulit)", "SULIT"),
    ("Bengkel Rahsia Kejayaan Pasukan", None),
])
def test_table_subject(subject: str, marking: str | None) -> None:
    view = message(subject=subject)
    assert view.classification == marking
    if marking:
        assert view.markings.where(marking) == [{"in": "subject", "at": "subject"}]


def test_table_subject_rfc2047() -> None:
    raw = (b"From: pegawai@anm.gov.my\r\nSubject: =?UTF-8?B?W1JBSFNJQV0gTGFwb3Jhbg==?=\r\n"
           b"\r\nIsi.\r\n")
    view = MessageView(raw)
    assert view.subject == "[RAHSIA] Laporan"
    assert view.classification == "RAHSIA"


@pytest.mark.parametrize(("body", "marking"), [
    ("SULIT\n\nMinit mesyuarat dilampirkan.", "SULIT"),
    ("Tuan,\n\n*** RAHSIA ***\n\nSila ambil tindakan.", "RAHSIA"),
    ("Klasifikasi: TERHAD\n\nSila semak.", "TERHAD"),
    ("Kata laluan anda adalah rahsia. Jangan kongsi dengan sesiapa.", None),
    ("Maklumat ini sulit dan hanya untuk penerima.", None),
    ("Sila jaga kerahsiaan dokumen ini.", None),
])
def test_table_body_line(body: str, marking: str | None) -> None:
    view = message(body=body)
    assert view.classification == marking
    if marking:
        (where,) = view.markings.where(marking)
        assert where["in"] == "body" and where["part"] == 0


def test_table_msip_labels_header() -> None:
    guid = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
    value = (f"MSIP_Label_{guid}_Enabled=true; MSIP_Label_{guid}_SetDate=2025-01-01T00:00:00Z;"
             f" MSIP_Label_{guid}_Name=SULIT; MSIP_Label_{guid}_Method=Standard;")
    view = message(headers=(("msip_labels", value),))
    assert view.classification == "SULIT"
    assert view.markings.where("SULIT") == [{"in": "header", "header": "msip_labels",
                                             "at": "header:msip_labels", "label": "SULIT",
                                             "label_id": "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
                                             "label_by": "name"}]


@pytest.mark.parametrize(("name", "marking"), [
    ("RAHSIA-pelan-keselamatan.docx", "RAHSIA"),
    ("laporan_terhad_akses.xlsx", None),
    ("SULIT_Laporan.pdf", "SULIT"),
    ("RAHSIA_BESAR_operasi.pdf", "RAHSIA BESAR"),
    ("KERAHSIAAN.pdf", None),
])
def test_table_file_name(name: str, marking: str | None) -> None:
    view = message(attachments=((name, b"%PDF-1.4\n", "application/octet-stream"),))
    assert view.classification == marking
    if marking:
        assert view.markings.where(marking) == [
            {"in": "attachment", "index": 0, "name": name, "field": "filename",
             "at": f"attachment:{name}:filename"}]


def test_table_forwarded_rfc822_subject() -> None:
    view = MessageView((DATA / "forwarded-sulit.eml").read_bytes())
    assert view.classification == "SULIT"
    assert {"in": "forwarded", "index": 0, "field": "subject",
            "at": "forwarded:0:subject"} in view.markings.where("SULIT")


def _docx_with_footer(text: str) -> bytes:
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", (
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            '2006/content-types"><Override PartName="/word/document.xml" ContentType="'
            'application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"'
            '/><Override PartName="/word/footer1.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.footer+xml"/></Types>'))
        zf.writestr("word/document.xml", f'<w:document {w}><w:body><w:p><w:r><w:t>Isi '
                                         'laporan</w:t></w:r></w:p></w:body></w:document>')
        zf.writestr("word/footer1.xml", f'<w:ftr {w}><w:p><w:r><w:t>{text}</w:t></w:r></w:p>'
                                        '</w:ftr>')
    return buf.getvalue()


def _pdf_with_first_line(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1, xref)
    return out


def test_table_docx_footer() -> None:
    view = message(attachments=(("laporan.docx", _docx_with_footer("SULIT"),
                                 "application/octet-stream"),))
    assert view.attachments[0].category == "office"
    assert view.classification == "SULIT"
    (where,) = view.markings.where("SULIT")
    assert where["at"] == "attachment:laporan.docx:footer"
    assert (where["in"], where["field"]) == ("attachment", "footer")


def test_table_pdf_first_line() -> None:
    view = message(attachments=(("laporan.pdf", _pdf_with_first_line("TERHAD"),
                                 "application/pdf"),))
    assert view.attachments[0].category == "pdf"
    assert view.classification == "TERHAD"
    (where,) = view.markings.where("TERHAD")
    assert where["at"] == "attachment:laporan.pdf:page1"
    assert (where["page"], where["lineno"]) == (1, 1)


@pytest.mark.parametrize("text", [
    "E-MEL INI MUNGKIN MENGANDUNGI MAKLUMAT SULIT",
    "MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI",
    "Maklumat ini sulit dan hanya untuk penerima.",
    "KERAHSIAAN",
    "TERHADAP",
])
def test_table_document_prose_is_not_a_marking(text: str) -> None:
    view = message(attachments=(("a.docx", _docx_with_footer(text), "application/octet-stream"),
                                ("b.pdf", _pdf_with_first_line(text), "application/pdf")))
    assert view.classification is None


# -- subject rules beyond the table ---------------------------------------------------

@pytest.mark.parametrize(("subject", "found"), [
    ("SULIT", ["SULIT"]),
    ("Re: Fwd: SULIT: Minit", ["SULIT"]),
    ("BLS: [EXTERNAL] TERHAD | Jadual", ["TERHAD"]),
    ("Laporan (SULIT) Bil. 3", ["SULIT"]),
    ("Minit | RAHSIA | Bil. 2", ["RAHSIA"]),
    ("TERHAD/Dalaman: Pekeliling", ["TERHAD"]),
    ("Minit Mesyuarat – SULIT", ["SULIT"]),
    # No delimiter: a marking only when the rest is not in capitals (MARKINGS.md).
    ("SULIT Minit Mesyuarat", ["SULIT"]),
    ("Minit Mesyuarat TERHAD", ["TERHAD"]),
    ("SULIT 2025", ["SULIT"]),
    ("SULIT MINIT MESYUARAT", []),
    ("MINIT MESYUARAT TERHAD", []),
    ("Kursus TERHAD kepada pegawai", []),    # in the middle, not at an end
    ("Laporan (rahsia besar) Bil. 2", ["RAHSIA BESAR"]),
    ("Bengkel (terhad kepada 30 orang)", []),
    ("MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI", []),
    ("KERAHSIAAN: notis", []),
    ("Tindakan TERHADAP aduan", []),
    ("sulit: huruf kecil", []),
])
def test_subject_rules(subject: str, found: list[str]) -> None:
    assert in_subject(subject) == found


@pytest.mark.parametrize("subject", [
    "ＳＵＬＩＴ: Minit",             # full-width letters (NFKC)
    "S\u200bULIT: Minit",             # zero-width space
    "SUL\u0406T: Minit",              # Cyrillic capital I
    "S\u00adU\u200dLIT: Minit",       # soft hyphen, zero-width joiner
])
def test_subject_evasions(subject: str) -> None:
    assert in_subject(subject) == ["SULIT"]


# -- body rules beyond the table -------------------------------------------------------

@pytest.mark.parametrize(("line", "found"), [
    ("S U L I T", "SULIT"),
    ("[ TERHAD ]", "TERHAD"),
    ("> SULIT", "SULIT"),
    (">> *** RAHSIA BESAR ***", "RAHSIA BESAR"),
    ("===== TERHAD =====", "TERHAD"),
    ("\"SULIT\"", "SULIT"),
    ("R A H S I A   B E S A R", "RAHSIA BESAR"),
    ("Pengelasan Keselamatan: RAHSIA", "RAHSIA"),
    ("Classification: TERHAD", "TERHAD"),
    ("Klasifikasi: Sulit", "SULIT"),
    ("PENDAFTARAN DIBUKA - TEMPAT TERHAD", None),
    ("MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI", None),
    ("KERAHSIAAN", None),
    ("TERHADAP", None),
    ("Sulit", None),
    ("Nota: maklumat ini sulit", None),
])
def test_body_line_rules(line: str, found: str | None) -> None:
    assert in_line(line) == found


def test_body_line_evasion_zero_width_and_fullwidth() -> None:
    view = message(body="Tuan,\n\u200bＲＡＨＳ\u200dＩＡ\nTerima kasih.")
    assert view.classification == "RAHSIA"
    assert view.markings.where("RAHSIA")[0]["lineno"] == 2


def test_body_utf16_base64() -> None:
    raw = (b"From: a@anm.gov.my\r\nContent-Type: text/plain; charset=utf-16\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + __import__("base64").b64encode("Salam\nSULIT\n".encode("utf-16")) + b"\r\n")
    assert MessageView(raw).classification == "SULIT"


def test_html_body_marking_line() -> None:
    view = MessageView((DATA / "html-qp-marking.eml").read_bytes())
    assert view.classification == "RAHSIA"
    assert view.markings.where("RAHSIA")[0]["part"] == 1


# -- headers, attachments, highest -----------------------------------------------------

def test_configured_classification_header() -> None:
    view = message(headers=(("X-Classification", "Terhad"),))
    assert view.classification == "TERHAD"
    assert view.markings.where("TERHAD") == [{"in": "header", "header": "X-Classification",
                                              "at": "header:X-Classification"}]
    other = MessageView(message(headers=(("X-Label", "SULIT"),)).raw,
                        classification_headers=("X-Label",))
    assert other.classification == "SULIT"
    assert message(headers=(("X-Label", "SULIT"),)).classification is None


def test_msip_label_disabled_or_other_name_is_not_a_marking() -> None:
    guid = "11111111-2222-3333-4444-555555555555"
    off = f"MSIP_Label_{guid}_Enabled=false; MSIP_Label_{guid}_Name=RAHSIA;"
    general = f"MSIP_Label_{guid}_Enabled=true; MSIP_Label_{guid}_Name=Umum;"
    assert message(headers=(("msip_labels", off),)).classification is None
    assert message(headers=(("msip_labels", general),)).classification is None


def test_plain_text_attachment_by_body_rules() -> None:
    view = message(attachments=(("nota.txt", b"Perkara\n\n*** TERHAD ***\n", "text/plain"),))
    assert view.classification == "TERHAD"
    (where,) = view.markings.where("TERHAD")
    assert where == {"in": "attachment", "index": 0, "name": "nota.txt", "field": "content",
                     "lineno": 3, "at": "attachment:nota.txt:content"}
    prose = message(attachments=(("nota.txt", b"tempat terhad, sila daftar\n", "text/plain"),))
    assert prose.classification is None


def test_zip_entry_names() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fail/SULIT-minit.docx", b"x")
        zf.writestr("fail/laporan_terhad.txt", b"y")
    view = message(attachments=(("pakej.zip", buf.getvalue(), "application/zip"),))
    assert view.classification == "SULIT"
    (where,) = view.markings.where("SULIT")
    assert where["field"] == "archive_entry" and where["text"] == "fail/SULIT-minit.docx"


def test_highest_wins_and_where_keeps_content_under_content_keys() -> None:
    view = message(subject="TERHAD: Minit",
                   attachments=(("RAHSIA-pelan.docx", b"x", "application/octet-stream"),))
    assert view.classification == "RAHSIA"
    assert {f.marking for f in view.markings.found} == {"TERHAD", "RAHSIA"}
    content_free = {"in", "part", "index", "field", "header", "lineno", "nested", "page",
                    "slide"}
    for f in view.markings.found:
        assert set(f.where) - content_free <= {"name", "text", "match", "at", "member"}
        assert set(f.where) - content_free <= CONTENT_KEYS


def test_levels_order() -> None:
    found = tuple(Found(m, {"in": "subject"}) for m in ("TERHAD", "RAHSIA BESAR", "SULIT"))
    assert Markings(found).highest == "RAHSIA BESAR"
    assert Markings().highest is None


def test_no_marking_in_plain_business_mail() -> None:
    view = message(subject="Jemputan Mesyuarat", body=(
        "Tuan/Puan,\n\nTempat adalah terhad. Maklumat ini sulit.\nRAHSIA KEJAYAAN KITA\n"
        "Rujukan: TERHADAP ADUAN\n"))
    assert view.classification is None


@pytest.mark.parametrize(("line", "level"), [
    ("Klasifikasi: SULıT", "SULIT"), ("Klasifikasi: Sulİt", "SULIT"),
    ("Pengelasan: rahsıa besar", "RAHSIA BESAR")])
def test_dotless_and_dotted_i_in_a_label_line_name_the_level(line: str, level: str) -> None:
    # Case-insensitive matching takes ı and İ for i; the level named must be a real one
    # (it was `SULT`, and the message's classification raised instead of answering).
    assert in_line(line) == level
    view = message(body=f"Salam.\n\n{line}\n")
    assert view.classification == level
