"""Markings in PDF page text, PDF encryption for a reader, and the bounds on reading."""

from __future__ import annotations

import email.policy
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import documents, encryption
from gateway.message.documents import pdf
from gateway.message.view import MessageView

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_documents as make

FIXTURES = Path(__file__).parents[1] / "corpus" / "fixtures" / "pdf"


def view_with(name: str, data: bytes) -> MessageView:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["Subject"] = "Lampiran"
    msg.set_content("Salam.")
    msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP))


def test_first_line_of_page_one() -> None:
    view = view_with("l.pdf", make.pdf(("TERHAD", "Laporan Audit Dalaman")))
    assert view.classification == "TERHAD"
    (where,) = view.markings.where("TERHAD")
    assert where == {"in": "attachment", "index": 0, "name": "l.pdf", "field": "page",
                     "page": 1, "lineno": 1, "at": "attachment:l.pdf:page1"}


def test_bottom_line_of_a_later_page() -> None:
    view = view_with("b.pdf", make.pdf(("Muka 1",), ("Muka 2",), bottom=("", "*** SULIT ***")))
    assert view.classification == "SULIT"
    assert [w["at"] for w in view.markings.where("SULIT")] == ["attachment:b.pdf:page2"]


def test_highest_marking_over_pages() -> None:
    data = make.pdf(("TERHAD",), ("Isi",), ("RAHSIA",))
    view = view_with("h.pdf", data)
    assert view.classification == "RAHSIA"
    assert {f.marking for f in view.markings.found} == {"TERHAD", "RAHSIA"}


@pytest.mark.parametrize("line", [
    "E-MEL INI MUNGKIN MENGANDUNGI MAKLUMAT SULIT",
    "MAKLUMAT INI ADALAH RAHSIA SYARIKAT KAMI",
    "Kata laluan anda adalah rahsia.",
    "Tindakan terhadap aduan pelanggan",
    "KERAHSIAAN",
])
def test_prose_is_not_a_marking(line: str) -> None:
    assert view_with("p.pdf", make.pdf((line, "Isi."))).classification is None


def test_owner_password_only_is_plain_and_read() -> None:
    data = make.pdf_encrypted(make.pdf(("SULIT", "Isi.")), user="", owner="pemilik123")
    assert b"/Encrypt" in data
    assert pdf.encrypted(data) is False
    view = view_with("o.pdf", data)
    assert view.attachments[0].encrypted is False
    assert view.classification == "SULIT"


def test_user_password_is_encrypted_and_unread() -> None:
    data = make.pdf_encrypted(make.pdf(("SULIT", "Isi.")), user="buka123", owner="pemilik123")
    assert pdf.encrypted(data) is True
    view = view_with("u.pdf", data)
    assert view.attachments[0].encrypted is True
    assert view.classification is None  # an encrypted part cannot be searched: expected


def test_real_user_password_pdf_is_encrypted() -> None:
    data = (FIXTURES / "libreoffice-writer-password.pdf").read_bytes()
    assert pdf.encrypted(data) is True
    assert list(documents.pieces(data, documents.Bounds())) == []


@pytest.mark.parametrize("name", ["002-trivial-libre-office-writer.pdf",
                                  "google-doc-document.pdf", "with-attachment.pdf"])
def test_real_plain_pdfs_are_read(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    assert pdf.encrypted(data) is False
    pieces = list(documents.pieces(data, documents.Bounds()))
    assert pieces and pieces[0].number == 1 and pieces[0].text.strip()
    assert view_with(name, data).classification is None


def test_pages_beyond_the_bound_are_not_read() -> None:
    data = make.pdf(("Isi",), ("Isi",), ("SULIT",))
    assert [p.number for p in documents.pieces(data, documents.Bounds(max_pdf_pages=2))] == \
        [1, 2]
    assert [p.number for p in documents.pieces(data, documents.Bounds())] == [1, 2, 3]


def test_deadline_stops_reading() -> None:
    with pytest.raises(documents.LimitExceeded):
        list(documents.pieces(make.pdf(("SULIT",)), documents.Bounds(seconds=-1)))


def test_damaged_pdf() -> None:
    good = make.pdf(("SULIT",))
    truncated = good[:60]
    assert list(documents.pieces(truncated, documents.Bounds())) == []
    assert pdf.encrypted(truncated) is False  # no /Encrypt anywhere: nothing encrypted
    assert pdf.encrypted(truncated + b"/Encrypt 5 0 R") is None
    assert encryption.attachment_encrypted(b"not a pdf", "application/pdf") is None



def test_document_readers_stop_at_the_config_inspection_timeout() -> None:
    # A worker thread cannot be cancelled, so the readers must give up themselves
    # at the deadline the front end waits for.
    from gateway.config import Limits
    from gateway.message.view import NotInspectable

    limits = Limits(inspection_timeout=1e-9).inspection()
    assert limits.max_seconds == 1e-9
    m = EmailMessage()
    m["From"], m["Subject"] = "a@anm.gov.my", "Laporan"
    m.set_content("Lampiran.")
    pdf_bytes = (Path(__file__).parents[1] / "corpus" / "cases" / "documents"
                 / "Laporan-page.pdf").read_bytes()
    m.add_attachment(pdf_bytes, maintype="application", subtype="pdf", filename="l.pdf")
    view = MessageView(m.as_bytes(), limits=limits)
    _ = view.classification
    assert not view.complete
    with pytest.raises(NotInspectable, match="too long"):
        view.require_complete()
    assert MessageView(m.as_bytes()).classification == "TERHAD"
