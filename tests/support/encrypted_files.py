"""Real encrypted attachments for the password and encryption-strength tests.

Made by real programs and libraries: 7-Zip (`7zz`: ZIP ZipCrypto, ZIP AES-128/256, 7z
with encrypted headers), pyzipper (WinZip AES), pypdf's writer (PDF RC4 and AES),
msoffcrypto-tool (OOXML agile encryption of a Word file), and the msoffcrypto-tool
test inputs Microsoft Office made (tests/corpus/fixtures/office: RC4 CryptoAPI .doc,
.xls, .ppt, Excel XOR obfuscation, OOXML standard), whose passwords are fixed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pypdf
import pyzipper  # type: ignore[import-untyped]
from msoffcrypto.format.ooxml import OOXMLFile  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
OFFICE = REPO / "tests" / "corpus" / "fixtures" / "office"
FIXTURE_PASSWORD = "Password1234_"
XOR_PASSWORD = "123456789012345"
SEVEN_ZIP = shutil.which("7zz") or shutil.which("7z")
CONTENT = b"TERHAD\nLaporan kewangan suku tahun ketiga.\n" * 40


def zip_aes(password: str, name: str = "laporan.txt") -> bytes:
    """WinZip AES-256 by pyzipper."""
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(password.encode())
        zf.writestr(name, CONTENT)
    return buf.getvalue()


def seven_zip(password: str, *, kind: str, method: str | None = None) -> bytes:
    """An archive 7-Zip makes: kind `zip` (method ZipCrypto, AES128, AES256) or `7z`
    (headers encrypted). The password goes on 7-Zip's command line: a test file only."""
    assert SEVEN_ZIP is not None, "7-Zip (apt package 7zip) is needed"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "laporan.txt"
        src.write_bytes(CONTENT)
        out = Path(tmp) / f"out.{kind}"
        args = [SEVEN_ZIP, "a", "-bd", "-y", f"-t{kind}", f"-p{password}", str(out), str(src)]
        if kind == "zip" and method:
            args.insert(-2, f"-mem={method}")
        if kind == "7z":
            args.insert(-2, "-mhe=on")
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        return out.read_bytes()


def pdf(password: str, algorithm: str = "AES-256") -> bytes:
    """A one-page PDF encrypted by pypdf's writer (`RC4-40`, `RC4-128`, `AES-128`,
    `AES-256`)."""
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(password, algorithm=algorithm)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def docx_agile(password: str) -> bytes:
    """Office's plain example.docx encrypted by msoffcrypto-tool (OOXML agile, AES-256)."""
    plain = io.BytesIO((OFFICE / "example.docx").read_bytes())
    out = io.BytesIO()
    OOXMLFile(plain).encrypt(password, out)
    return out.getvalue()


def fixture(name: str) -> bytes:
    return (OFFICE / name).read_bytes()
