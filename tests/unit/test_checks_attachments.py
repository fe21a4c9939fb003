"""Attachment checks: attachment_size_over, attachment_type, attachment_name_matches,
unencrypted_attachments; real fixture files where they exist."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gateway.envelope import Envelope
from gateway.message.view import MessageView, NotInspectable
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence

FIXTURES = Path(__file__).resolve().parents[1] / "corpus" / "fixtures"
ENV = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="h",
               mail_from="a@anm.gov.my", rcpt_to=("b@example.com",))


def view(*attachments: tuple[str, bytes], subject: str = "Laporan") -> MessageView:
    msg = EmailMessage()
    msg["From"] = "a@anm.gov.my"
    msg["Subject"] = subject
    msg.set_content("Sila lihat lampiran.")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP))


def run(name: str, value: Any, v: MessageView) -> Evidence | None:
    check = REGISTRY[name]
    return check.evaluate(check.validate(value), Context(v, ENV, ("anm.gov.my",)))


def fixture(name: str) -> tuple[str, bytes]:
    return Path(name).name, (FIXTURES / name).read_bytes()


def test_attachment_size_is_decoded_size() -> None:
    data = b"\x00" * 3000  # base64 on the wire is about 4100 bytes
    v = view(("a.bin", data))
    assert run("attachment_size_over", 2999, v) == \
        {"attachment": {"index": 0, "name": "a.bin", "size": 3000, "limit": 2999}}
    assert run("attachment_size_over", 3000, v) is None
    assert run("attachment_size_over", "1KB", view()) is None


@pytest.mark.parametrize(("types", "hit"), [
    (["executable"], True), (["application/x-sharedlib"], True),
    (["application/*"], True), (["pdf"], False), (["image/*"], False),
])
def test_attachment_type_real_type_of_elf_named_pdf(types: list[str], hit: bool) -> None:
    v = view(("laporan.pdf", Path("/bin/true").read_bytes()))
    got = run("attachment_type", types, v)
    assert (got is not None) is hit
    if got:
        assert got["attachment_type"]["category"] == "executable"


def test_attachment_type_office_pdf_image() -> None:
    v = view(fixture("office/example.docx"), fixture("pdf/google-doc-document.pdf"))
    assert run("attachment_type", ["office"], v) is not None
    assert run("attachment_type", ["pdf"], v) == {"attachment_type": {
        "index": 1, "name": "google-doc-document.pdf", "detected_type": "application/pdf",
        "category": "pdf"}}
    assert run("attachment_type", ["executable", "archive", "image"], v) is None


def test_attachment_name_matches() -> None:
    v = view(("Invois\u200b.exe", b"MZ"), ("nota.txt", b"x"))
    assert run("attachment_name_matches", r"(?i)\.exe$", v) == {"attachment_name": {
        "index": 0, "name": "Invois\u200b.exe", "match": ".exe"}}
    # The folded name (zero-width removed) is tried too.
    assert run("attachment_name_matches", r"^Invois\.exe$", v) is not None
    assert run("attachment_name_matches", r"(?i)\.(scr|bat)$", v) is None


@pytest.mark.parametrize(("files", "want", "hit"), [
    (("office/example_password.docx",), True, False),
    (("office/example_password.docx",), False, True),
    (("office/example.docx",), True, True),
    (("office/example.docx",), False, False),
    (("pdf/libreoffice-writer-password.pdf", "office/rc4cryptoapi_password.xls"), True, False),
    (("pdf/libreoffice-writer-password.pdf", "pdf/google-doc-document.pdf"), True, True),
    ((), True, False),
    ((), False, True),
])
def test_unencrypted_attachments(files: tuple[str, ...], want: bool, hit: bool) -> None:
    v = view(*(fixture(f) for f in files))
    assert (run("unencrypted_attachments", want, v) is not None) is hit


def test_unencrypted_evidence_lists_the_plain_ones() -> None:
    v = view(fixture("office/example_password.xlsx"), fixture("office/plain.doc"))
    assert run("unencrypted_attachments", True, v) == {"unencrypted": [
        {"index": 1, "name": "plain.doc", "detected_type": "application/msword",
         "encrypted": False}]}


def test_could_not_inspect_counts_as_unencrypted() -> None:
    v = view(("rosak.zip", b"PK\x03\x04" + b"\x00" * 26))
    assert v.attachments[0].encrypted is None
    assert run("unencrypted_attachments", True, v) is not None


def test_attachment_checks_fail_closed_when_incomplete() -> None:
    v = MessageView(view(("a.bin", b"x")).raw, max_parts=1)
    for name, value in (("attachment_size_over", 1), ("attachment_type", ["executable"]),
                        ("attachment_name_matches", "x"), ("unencrypted_attachments", True),
                        ("unencrypted_attachments", False)):
        with pytest.raises(NotInspectable):
            run(name, value, v)


def test_dos_com_guess_on_random_bytes_is_not_an_executable() -> None:
    # libmagic calls data starting with a jump opcode a DOS .COM program.
    blob = b"\xb8\x7d\xf8\x26" + bytes(range(256)) * 16
    minimal_pe = bytearray(512)
    minimal_pe[0:2] = b"MZ"
    minimal_pe[0x3C] = 0x80
    minimal_pe[0x80:0x84] = b"PE\x00\x00"
    v = view(("data.bin", blob), ("setup.dat", bytes(minimal_pe)))
    com, pe = v.attachments
    assert com.detected_type == "application/x-dosexec"
    assert com.category == "other"
    assert pe.category == "executable"
    assert run("attachment_type", ["executable"], v) == {"attachment_type": {
        "index": 1, "name": "setup.dat", "detected_type": pe.detected_type,
        "category": "executable"}}


# -- attachment_unreadable -------------------------------------------------------------

def png(width: int = 4, height: int = 4) -> bytes:
    """A real grey PNG (RFC 2083): signature, IHDR, one IDAT, IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8,
                                                                0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_attachment_unreadable_picture_and_picture_in_archive() -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("imbasan.png", png())
        zf.writestr("nota.txt", "Nota biasa.")
    v = view(("gambar.png", png()), fixture("office/example.docx"), ("fail.zip", buf.getvalue()))
    ev = run("attachment_unreadable", True, v)
    assert ev == {"unreadable": [
        {"index": 0, "name": "gambar.png", "at": ["image"]},
        {"index": 2, "name": "fail.zip", "at": ["imbasan.png:image"]}]}
    assert run("attachment_unreadable", False, v) is None


def test_attachment_unreadable_false_for_readable_documents() -> None:
    v = view(fixture("office/example.docx"), ("nota.txt", b"Nota biasa.\n"))
    assert run("attachment_unreadable", True, v) is None
    assert run("attachment_unreadable", False, v) == {"attachments": 2}
