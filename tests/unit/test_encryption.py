"""Encryption state per attachment (True / False / None) and for the whole message."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.message import encryption, filetypes
from gateway.message.documents import rar, sevenzip

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_documents as make

FIXTURES = Path(__file__).parents[1] / "corpus" / "fixtures"


def state(data: bytes) -> bool | None:
    return encryption.attachment_encrypted(data, filetypes.detect(data))


# Every file of fixtures/office and fixtures/pdf, with the truth from their README.
@pytest.mark.parametrize(("name", "want"), [
    ("office/example_password.docx", True), ("office/example_password.xlsx", True),
    ("office/ecma376standard_password.docx", True),
    ("office/rc4cryptoapi_password.doc", True), ("office/rc4cryptoapi_password.xls", True),
    ("office/rc4cryptoapi_password.ppt", True),
    ("office/xor_password_123456789012345.xls", True),
    ("office/example.docx", False), ("office/example.xlsx", False),
    ("office/plain.doc", False), ("office/plain.xls", False), ("office/plain.ppt", False),
    ("pdf/libreoffice-writer-password.pdf", True),
    ("pdf/002-trivial-libre-office-writer.pdf", False),
    ("pdf/google-doc-document.pdf", False), ("pdf/with-attachment.pdf", False),
])
def test_real_fixtures(name: str, want: bool) -> None:
    assert state((FIXTURES / name).read_bytes()) is want


def test_every_office_and_pdf_fixture_is_in_the_table() -> None:
    listed = {p.relative_to(FIXTURES).as_posix() for d in ("office", "pdf")
              for p in (FIXTURES / d).iterdir() if p.suffix != ".md"}
    tested = {n for n, _ in test_real_fixtures.pytestmark[0].args[1]}  # type: ignore[attr-defined]
    assert listed == tested


def test_ole_that_is_not_office_and_broken_ole() -> None:
    ole = (FIXTURES / "office" / "plain.doc").read_bytes()
    assert state(ole[:512]) is None  # the header of an OLE file, nothing after it


# -- 7z --------------------------------------------------------------------------------

SEVEN = shutil.which("7zz") or shutil.which("7z")


def _7z(tmp: Path, name: str, *args: str, files: tuple[str, ...] = ("a.txt", "b.txt")) -> bytes:
    assert SEVEN is not None
    subprocess.run([SEVEN, "a", "-bd", "-bso0", "-bsp0", *args, name, *files], cwd=tmp,
                   check=True, timeout=60)
    return (tmp / name).read_bytes()


@pytest.mark.skipif(SEVEN is None, reason="needs 7-Zip (Debian package 7zip)")
def test_7z_states(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("SULIT\n")
    (tmp_path / "b.txt").write_text("isi\n" * 100)
    (tmp_path / "kosong.txt").write_text("")
    assert sevenzip.encrypted(_7z(tmp_path, "plain.7z")) is False
    assert sevenzip.encrypted(_7z(tmp_path, "aes.7z", "-prahsia")) is True  # LZMA header
    assert sevenzip.encrypted(_7z(tmp_path, "hdr.7z", "-prahsia", "-mhe=on")) is True
    assert sevenzip.encrypted(_7z(tmp_path, "raw.7z", "-prahsia", "-mhc=off")) is True
    assert sevenzip.encrypted(_7z(tmp_path, "empty.7z", files=("kosong.txt",))) is False
    # One folder encrypted, one not: not every file is encrypted.
    _7z(tmp_path, "mixed.7z", "-ms=off", "-prahsia", files=("a.txt",))
    mixed = _7z(tmp_path, "mixed.7z", "-ms=off", files=("b.txt",))
    assert sevenzip.encrypted(mixed) is False
    aes = (tmp_path / "aes.7z").read_bytes()
    assert state(aes) is True
    assert filetypes.category(filetypes.detect(aes)) == "archive"


def test_7z_damaged() -> None:
    assert sevenzip.encrypted(sevenzip.SIGNATURE + b"\x00\x04" + b"\x00" * 10) is None
    assert sevenzip.encrypted(sevenzip.SIGNATURE + b"\x00\x04" + b"\xff" * 40) is None


# -- RAR (headers written by the corpus generator from the format documents) -----------

@pytest.mark.parametrize(("data", "want"), [
    (make.rar5((("a.txt", True), ("b.txt", True))), True),
    (make.rar5((), encrypted_headers=True), True),
    (make.rar5((("a.txt", True), ("b.txt", False))), False),
    (make.rar5((("a.txt", False),)), False),
    (make.rar5(()), False),
    (make.rar4((("a.txt", True), ("b.txt", True))), True),
    (make.rar4((), encrypted_headers=True), True),
    (make.rar4((("a.txt", True), ("b.txt", False))), False),
    (make.rar4((("a.txt", False),)), False),
])
def test_rar_states(data: bytes, want: bool) -> None:
    assert rar.encrypted(data) is want
    assert state(data) is want


def test_rar_bad_crc_is_could_not_inspect() -> None:
    good = make.rar5((("a.txt", True),))
    bad = bytearray(good)
    bad[len(rar.RAR5) + 6] ^= 0xFF  # inside the main header, after its CRC
    assert rar.encrypted(bytes(bad)) is None
    bad4 = bytearray(make.rar4((("a.txt", True),)))
    bad4[len(rar.RAR4) + 3] ^= 0x01
    assert rar.encrypted(bytes(bad4)) is None
    assert rar.encrypted(rar.RAR5 + b"\x00") is None


# -- the whole message -----------------------------------------------------------------

ARMOUR = ("-----BEGIN PGP MESSAGE-----\n\nhQEMA1234567890ABCDEF\n=abcd\n"
          "-----END PGP MESSAGE-----\n")


def test_inline_pgp() -> None:
    assert encryption.inline_pgp((ARMOUR,)) is True
    assert encryption.inline_pgp(("\n" + ARMOUR + "\n\n" + ARMOUR,)) is True
    assert encryption.inline_pgp(("Salam tuan,\n\n" + ARMOUR,)) is False  # plain text too
    assert encryption.inline_pgp((ARMOUR, "Bahagian kedua biasa.")) is False
    assert encryption.inline_pgp(()) is False
    assert encryption.inline_pgp(("-----BEGIN PGP MESSAGE-----\ntruncated",)) is False


def test_pgp_and_pkcs7_attachments() -> None:
    assert state(ARMOUR.encode()) is True
    oid = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03"
    assert encryption.attachment_encrypted(b"\x30\x80" + oid + b"\x00" * 20,
                                           "application/pkcs7-mime") is True
    signed = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"
    assert encryption.attachment_encrypted(b"\x30\x80" + signed, "application/pkcs7-mime") \
        is False


@pytest.mark.parametrize(("ctype", "params", "want"), [
    ("multipart/encrypted", {"protocol": "application/pgp-encrypted"}, True),
    ("multipart/encrypted", {"protocol": "application/x-other"}, False),
    ("application/pkcs7-mime", {"smime-type": "enveloped-data"}, True),
    ("application/pkcs7-mime", {"smime-type": "authEnveloped-data"}, True),
    ("application/x-pkcs7-mime", {"smime-type": "signed-data"}, False),
    ("multipart/signed", {"protocol": "application/pkcs7-signature"}, False),
    ("text/plain", {}, False),
])
def test_message_encrypted(ctype: str, params: dict[str, str], want: bool) -> None:
    assert encryption.message_encrypted(ctype, params, None) is want


def test_inline_pgp_message_is_encrypted_only_when_its_attachments_are() -> None:
    from email.message import EmailMessage

    from gateway.message.view import MessageView

    def build(attachment: bytes | None) -> MessageView:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "a@anm.gov.my", "b@jpn.gov.my", "Laporan"
        m.set_content(ARMOUR)
        if attachment is not None:
            m.add_attachment(attachment, maintype="application", subtype="octet-stream",
                             filename="lampiran.bin")
        return MessageView(m.as_bytes())

    assert build(None).encrypted_message is True
    assert build(ARMOUR.encode()).encrypted_message is True  # an armoured .asc beside it
    assert build(b"plain bytes in the clear").encrypted_message is False
