"""How strong an attachment's encryption is: the scheme's cipher and key length.

`gateway.message.encryption` names each encrypted attachment's scheme (`aes`,
`zipcrypto`, `rc4`, `xor`, `pdf-rc4`, `pdf-aes`, `blowfish`, `pgp`, `smime`).
`WEAK_SCHEMES` are the ones the condition `weak_encryption` counts as weak:

- `zipcrypto`: PKWARE traditional ZIP encryption; a known-plaintext attack recovers
  the keys in minutes (Biham and Kocher, 1994), and 12 bytes of a member suffice;
- `rc4`: Office 97-2003 RC4 and RC4 CryptoAPI, and OOXML standard encryption with
  RC4: a 40-bit key by default, RC4 itself broken (RFC 7465 forbids it in TLS);
- `xor`: Word and Excel XOR obfuscation: no cipher at all, the password is recoverable;
- `pdf-rc4`: PDF security handlers /V 1, 2 and 4 with /V2 crypt filters (RC4, 40 to
  128 bits, MD5 key derivation; deprecated by ISO 32000-2 7.6.2);
- `blowfish`: OpenOffice.org 1 and 2 documents (Blowfish CFB, 64-bit blocks, SHA-1
  key derivation): LibreOffice replaced it with AES-256 in 2011.

AES (ZIP WinZip AES, PDF AESV2/AESV3, OOXML agile and standard AES, 7z, RAR,
OpenDocument AES), OpenPGP and S/MIME are not weak. An encrypted attachment whose
scheme cannot be told is not counted as weak (it is listed as `unknown` in the
evidence): rules on it would otherwise fire on every PGP/MIME ciphertext part.

`cipher(data, scheme)` refines the scheme where the file says it cheaply: `AES-128`,
`AES-192`, `AES-256` (ZIP AE-x extra field strength, APPNOTE.TXT and WinZip's AE-x
specification; PDF /V and crypt filter /CFM, ISO 32000-2 7.6; OOXML agile keyBits and
standard AlgID, [MS-OFFCRYPTO] 2.3.4.5 and 2.3.4.10; 7z is AES-256; RAR 5 AES-256, RAR
3 and 4 AES-128) and `RC4-40`/`RC4-128` for PDF (/Length). None when it is not told.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Mapping
from typing import Any

from gateway.message.documents import archives, ole, pdf

WEAK_SCHEMES = frozenset({"zipcrypto", "rc4", "xor", "pdf-rc4", "blowfish"})

_AES_BITS = {1: 128, 2: 192, 3: 256}  # AE-x extra field strength byte
_ALG_BITS = {0x660E: 128, 0x660F: 192, 0x6610: 256}
_AGILE_KEY = re.compile(rb'<(?:\w+:)?keyData\b[^>]*?keyBits="(\d+)"')
_RAR5 = b"Rar!\x1a\x07\x01\x00"


def weak(scheme: str | None) -> bool:
    """Whether a `Protection.scheme` is one of WEAK_SCHEMES (module docstring)."""
    return scheme in WEAK_SCHEMES


def cipher(data: bytes, scheme: str | None) -> str | None:
    """`AES-256`, `RC4-40`...: the scheme with its key length where the file tells it
    cheaply (module docstring); None otherwise. Never raises."""
    try:
        if scheme == "aes":
            bits = _zip_aes_bits(data) or _ole_aes_bits(data) or _container_bits(data)
            return f"AES-{bits}" if bits else None
        if scheme in ("pdf-aes", "pdf-rc4"):
            return _pdf_cipher(data)
    except Exception:  # a damaged file: the scheme alone is the evidence
        return None
    return None


def _zip_aes_bits(data: bytes) -> int | None:
    if not archives.is_zip(data):
        return None
    import zipfile
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        strengths: list[int] = []
        for info in zf.infolist():  # every entry: the weakest one names the cipher
            extra = info.extra
            at = 0
            while at + 4 <= len(extra):
                tag, size = struct.unpack_from("<HH", extra, at)
                if tag == 0x9901 and size >= 7:
                    strengths.append(extra[at + 8])
                at += 4 + size
    bits = [_AES_BITS[s] for s in strengths if s in _AES_BITS]
    return min(bits) if bits else None


def _ole_aes_bits(data: bytes) -> int | None:
    if not ole.is_ole(data):
        return None
    import olefile
    with olefile.OleFileIO(io.BytesIO(data)) as container:
        if not container.exists("EncryptionInfo"):
            return None
        with container.openstream("EncryptionInfo") as stream:
            info: bytes = stream.read(65536)
    major, minor = struct.unpack_from("<HH", info, 0)
    if (major, minor) == (4, 4):
        m = _AGILE_KEY.search(info[8:])
        return int(m.group(1)) if m else None
    if minor == 2 and len(info) >= 12 + 32:
        alg, = struct.unpack_from("<I", info, 20)
        return _ALG_BITS.get(alg)
    return None


def _container_bits(data: bytes) -> int | None:
    if data.startswith(b"7z\xbc\xaf\x27\x1c"):
        return 256
    if data.startswith(_RAR5):
        return 256
    if data.startswith(b"Rar!\x1a\x07\x00"):
        return 128
    return None


def _resolved(value: Any) -> Any:
    get_object = getattr(value, "get_object", None)
    return get_object() if callable(get_object) else value


def _pdf_cipher(data: bytes) -> str | None:
    import pypdf
    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    encrypt = _resolved(reader.trailer.get("/Encrypt"))
    if not isinstance(encrypt, Mapping):
        return None
    version = int(_resolved(encrypt.get("/V", 0)))
    if version == 5:
        return "AES-256"
    if version in (1, 2):
        return f"RC4-{int(encrypt.get('/Length', 40))}" if version == 2 else "RC4-40"
    if version == 4:
        scheme = pdf.scheme_of(encrypt)
        filters = _resolved(encrypt.get("/CF"))
        name = str(_resolved(encrypt.get("/StmF", "/Identity")))
        crypt = _resolved(filters.get(name)) if isinstance(filters, Mapping) else None
        method = str(crypt.get("/CFM", "")) if isinstance(crypt, Mapping) else ""
        if scheme == "pdf-rc4":
            return "RC4-128"
        if method == "/AESV2":
            return "AES-128"
        if method == "/AESV3":
            return "AES-256"
    return None
