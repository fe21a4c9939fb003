"""No silent caps (issue 10 item 8): every cap in the readers and the marking scan either
reads everything within the configured limits or makes the answer "cannot tell",
never a pass. One regression test per cap that used to drop content silently."""

from __future__ import annotations

import email.policy
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import links, markings
from gateway.message.documents import Bounds, pdf, pieces, rar
from gateway.message.view import MessageView

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import make_documents as make

CASES = Path(__file__).resolve().parents[1] / "corpus" / "cases"


def message(body: str, *attachments: tuple[str, bytes]) -> MessageView:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["Subject"] = "Makluman"
    msg.set_content(body)
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP))


def test_marking_on_the_last_line_of_a_large_body() -> None:
    # 9.9 MB of ordinary text, then the marking: the scan used to stop at 8 Mi characters.
    line = "Laporan kemajuan projek bagi suku tahun ketiga tahun semasa.\n"
    body = line * (9_900_000 // len(line)) + "RAHSIA\n"
    assert len(body) > 9_800_000
    view = message(body)
    assert view.classification == "RAHSIA"


def test_a_higher_marking_after_three_lower_ones_in_one_part() -> None:
    # Only three marking lines per part were read; the fourth may be the highest.
    view = message("TERHAD\n\nTERHAD\n\nTERHAD\n\nRAHSIA BESAR\n")
    assert view.classification == "RAHSIA BESAR"


def test_a_marking_line_with_long_decoration() -> None:
    # Lines over 1000 characters were never marking lines, whatever their letters.
    view = message("*" * 3000 + " SULIT " + "*" * 3000 + "\n")
    assert view.classification == "SULIT"


def test_a_word_paragraph_longer_than_twenty_thousand_characters() -> None:
    # Paragraph text was cut at 20000 characters; a soft line break later in the same
    # paragraph starts a line of its own, and that line may be the marking.
    long_text = "Isi laporan yang panjang. " * 1000
    body = (f'<w:p {make.W_NS}><w:r><w:t>{long_text}</w:t><w:br/><w:t>RAHSIA</w:t></w:r>'
            "</w:p>")
    docx = make.zip_of({
        "[Content_Types].xml": make._content_types("word/document.xml", {}),
        "word/document.xml": f"<w:document {make.W_NS}><w:body>{body}</w:body>"
                             "</w:document>".encode()})
    found = [p for p in pieces(docx, Bounds()) if "RAHSIA" in p.text]
    assert found and found[0].text.endswith("\nRAHSIA")
    assert message("Lampiran.", ("laporan.docx", docx)).classification == "RAHSIA"


@pytest.mark.parametrize("build", [make.rar4, make.rar5])
def test_a_rar_with_more_blocks_than_read_is_not_called_encrypted(
        build: object, monkeypatch: pytest.MonkeyPatch) -> None:
    files = tuple((f"f{i}.txt", i < 3) for i in range(6))  # three encrypted, then plain
    data = build(files)  # type: ignore[operator]
    assert rar.encrypted(data) is False
    # Reading stopped after the encrypted ones used to answer "all encrypted".
    monkeypatch.setattr(rar, "MAX_BLOCKS", 4)
    assert rar.encrypted(data) is None


def test_hosts_past_the_link_limit_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(links, "MAX_LINKS", 5)
    text = " ".join(f"https://agensi.gov.my/p{i}" for i in range(50))
    found = links.extract((text + " https://www.dropbox.com/s/x",), ())
    assert "www.dropbox.com" in {link.host for link in found}
    assert len(found) <= 6


# -- the audit of issue 10 item 8 (second pass): caps that still dropped content ---------

def test_a_marking_after_many_subject_prefixes() -> None:
    # Twenty prefixes were peeled, no more: the marking behind the next went unread.
    assert markings.in_subject("[LUARAN] " * 25 + "SULIT") == ["SULIT"]
    assert markings.in_subject("Re: " * 25 + "SULIT Minit mesyuarat") == ["SULIT"]
    view = MessageView(message("x").raw.replace(
        b"Subject: Makluman", b"Subject: " + b"Fwd: [EXT] " * 30 + b"RAHSIA Pelan operasi"))
    assert view.classification == "RAHSIA"


def test_subject_rules_stay_linear_on_trailing_punctuation() -> None:
    # Two greedy runs over the same dots: seconds for one subject of a few kilobytes.
    started = time.monotonic()
    assert markings.in_subject("Minit - RAHSIA" + "." * 100_000 + "x") == []
    assert markings.in_subject("Minit - RAHSIA" + "." * 100_000) == ["RAHSIA"]
    assert time.monotonic() - started < 2


def test_a_long_header_segment_is_judged_by_the_subject_rules() -> None:
    # A document header segment over 1000 characters was never judged as a subject.
    segment = "Laporan kemajuan projek " * 60 + "- RAHSIA"
    assert len(segment) > 1000
    assert markings.in_label(segment) == ["RAHSIA"]


def test_html_tag_with_a_long_attribute_value() -> None:
    # A quoted attribute value over 4000 characters left its tag as text, on the line
    # of the marking after it.
    style = "color:#000000;" * 400
    html = f'<html><body><p>Tuan,</p><div style="{style}">RAHSIA</div></body></html>'
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "pegawai@anm.gov.my", "Makluman"
    msg.set_content(html, subtype="html")
    assert MessageView(msg.as_bytes(policy=email.policy.SMTP)).classification == "RAHSIA"


def test_a_sensitivity_label_after_fifty_others() -> None:
    decoys = "".join(f"MSIP_Label_{i:08x}-0000-0000-0000-000000000000_Enabled=true; "
                     f"MSIP_Label_{i:08x}-0000-0000-0000-000000000000_Name=Umum {i}; "
                     for i in range(60))
    value = decoys + ("MSIP_Label_ffffffff-0000-0000-0000-000000000000_Enabled=true; "
                      "MSIP_Label_ffffffff-0000-0000-0000-000000000000_Name=SULIT;")
    assert markings.in_msip_labels(value) == ["SULIT"]


def test_markings_of_an_uninspectable_message_keep_the_highest() -> None:
    # When a document meets a limit the view keeps the subject, header and body
    # markings for the log; that list was cut at fifty and lost a RAHSIA line 51st.
    body = "TERHAD\n\n" * 60 + "RAHSIA\n"
    bomb = (CASES / "documents" / "overlap-bomb.zip").read_bytes()
    view = message(body, ("arkib.zip", bomb))
    assert view.classification == "RAHSIA"
    assert not view.complete


def test_an_office_package_with_its_content_types_after_a_thousand_entries() -> None:
    # Only the first 1000 entry names were looked at to tell a package from an archive:
    # the document was then read as loose XML files, and its marking as none.
    body = f'<w:p {make.W_NS}><w:r><w:t>RAHSIA</w:t></w:r></w:p>'
    files = {f"customXml/item{i}.xml": b"<a/>" for i in range(1001)}
    files["[Content_Types].xml"] = make._content_types("word/document.xml", {})
    files["word/document.xml"] = (f"<w:document {make.W_NS}><w:body>{body}</w:body>"
                                  "</w:document>").encode()
    docx = make.zip_of(files)
    assert [p.location for p in pieces(docx, Bounds()) if p.text == "RAHSIA"] == ["body"]
    assert message("Lampiran.", ("laporan.docx", docx)).classification == "RAHSIA"


def test_a_pdf_page_past_the_object_bound_is_unreadable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A page with no text whose objects were not all looked at for an image was called
    # a blank page: it is "cannot tell", reported unreadable.
    ops = b"BT /F1 12 Tf 72 740 Td (X) Tj ET"
    drawing = b"0 0 m 100 100 l S 5 5 m 9 9 l S"
    data = make.pdf(("X",)).replace(ops, drawing.ljust(len(ops)))
    assert [p.rule for p in pieces(data, Bounds())] == []
    monkeypatch.setattr(pdf, "MAX_PAGE_OBJECTS", 1)
    assert [(p.rule, p.location) for p in pieces(data, Bounds())] == [("unreadable", "page1")]
