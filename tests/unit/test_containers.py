"""Files inside Outlook items and TNEF attachments are attachments for every rule
(gateway.message.containers wired into the message view): names, types, encryption,
evidence paths, and failing closed when a container cannot be read whole."""

from __future__ import annotations

import email.policy
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import containers
from gateway.message.documents.enclosure import EnclosedFile
from gateway.message.view import MessageView

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "corpus"))
import make_outlook as make


def view_of(name: str, data: bytes, ctype: tuple[str, str] = ("application", "ms-tnef")
            ) -> MessageView:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["Subject"] = "Dokumen"
    msg.set_content("Salam.")
    msg.add_attachment(data, maintype=ctype[0], subtype=ctype[1], filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP))


def skrip(**kwargs: object) -> make.Message:
    return make.Message(subject="Skrip", body="Dilampirkan.\n", attachments=[
        make.Attachment(long_name="Arahan pemasangan.bat", short_name="ARAHAN~1.BAT",
                        data=b"@echo off\r\n", **kwargs)])  # type: ignore[arg-type]


def test_the_files_of_a_tnef_attachment_are_attachments() -> None:
    view = view_of("winmail.dat", make.tnef(skrip()))
    outer, inner = view.attachments
    assert outer.container_kind == "tnef" and outer.container is None
    assert inner.container == outer.index and inner.path == "winmail.dat/Arahan pemasangan.bat"
    # Both names the container gives are judged: the long one and the 8.3 one.
    assert set(inner.filenames) == {"Arahan pemasangan.bat", "ARAHAN~1.BAT"}
    assert inner.category == "executable" and inner.size == len(b"@echo off\r\n")
    assert inner.as_dict()["container"] == 0
    assert view.complete


def test_the_files_of_an_outlook_item_declared_as_octet_stream() -> None:
    data = make.outlook_msg(skrip())
    view = view_of("Skrip.msg", data, ("application", "octet-stream"))
    assert [a.path for a in view.attachments] == ["Skrip.msg", "Skrip.msg/Arahan pemasangan.bat"]


def test_every_name_variant_becomes_a_name_of_the_part() -> None:
    part = containers.mime_part(EnclosedFile(
        names=("Laporan penuh.pdf", "Tajuk", "LAPORA~1.PDF"), data=b"%PDF-1.4\n"))
    from gateway.message import mime

    assert set(mime.filenames(part)) == {"Laporan penuh.pdf", "Tajuk", "LAPORA~1.PDF"}
    unicode = containers.mime_part(EnclosedFile(names=("Minit – SULIT.docx",), data=b"x"))
    assert mime.filenames(unicode) == ("Minit – SULIT.docx",)


def test_a_container_with_a_part_it_could_not_read_is_not_inspectable() -> None:
    good = make.tnef(skrip())
    # The attachment's data attribute with a wrong checksum: the reader keeps what it
    # read but cannot vouch for the rest.
    data = good.replace(make.tnef_attribute(make.LVL_ATTACHMENT, make.ATT_ATTACH_DATA,
                                            b"@echo off\r\n"),
                        make.tnef_attribute(make.LVL_ATTACHMENT, make.ATT_ATTACH_DATA,
                                            b"@echo off\r\n", checksum=1))
    assert data != good
    view = view_of("winmail.dat", data)
    assert not view.complete
    assert "enclosed message" in (view.incomplete_reason or "")
    # The files that were read are still judged.
    assert [a.category for a in view.attachments][1:] == ["executable"]


def test_a_damaged_container_is_not_inspectable() -> None:
    data = make.tnef(skrip())[:45]  # inside the message class attribute
    view = view_of("winmail.dat", data)
    assert not view.complete


@pytest.mark.parametrize("depth", [1, 2])
def test_embedded_messages_bring_their_files(depth: int) -> None:
    message = skrip()
    for level in range(depth):
        message = make.Message(subject=f"FW {level}", body="Diteruskan.\n", attachments=[
            make.Attachment(display=f"Mesej {level}", method=5, message=message)])
    view = view_of("Diteruskan.msg", make.outlook_msg(message),
                   ("application", "vnd.ms-outlook"))
    assert view.attachments[-1].category == "executable"
    assert view.attachments[-1].path.count("/") == depth + 1
