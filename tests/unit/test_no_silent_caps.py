"""No silent caps (issue 10 item 8): every cap in the readers and the marking scan either
reads everything within the configured limits or makes the answer "cannot tell",
never a pass. One regression test per cap that used to drop content silently."""

from __future__ import annotations

import email.policy
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import links
from gateway.message.documents import Bounds, pieces, rar
from gateway.message.view import MessageView

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import make_documents as make


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
