"""Is an attachment (or the whole message) encrypted? True, False, or None: could not tell.

What counts (MARKINGS.md, "Encrypted"):
- ZIP: every file entry has the encryption flag (general purpose bit 0; set for
  both traditional PKWARE and WinZip AES entries). A ZIP with no file entries is
  not encrypted. A ZIP bomb (overlapping entries, ratio, declared size, entry
  count: `documents.archives`) is None: it cannot be inspected.
- PDF: a reader needs a password to open it: it has an `/Encrypt` dictionary and
  the empty user password does not open it (`documents.pdf`). A PDF with only an
  owner (permissions) password opens for anyone and is plain.
- 7z: the headers are encrypted, or every folder has the AES coder
  (`documents.sevenzip`); RAR 4 and 5: encrypted headers, or every file entry
  encrypted (`documents.rar`).
- Office: an OLE container with `EncryptionInfo` and `EncryptedPackage` streams
  (password-protected OOXML), or a legacy binary file marked encrypted inside:
  Word FIB `fEncrypted`, Excel `FILEPASS` record, PowerPoint's encrypted
  `Current User` token.
- OpenPGP armoured messages (and binary OpenPGP: libmagic's
  `application/pgp-encrypted`) and S/MIME enveloped-data.
- The whole message: S/MIME `application/pkcs7-mime; smime-type=enveloped-data`
  or PGP/MIME `multipart/encrypted; protocol="application/pgp-encrypted"`; or
  inline PGP: every text body is nothing but `-----BEGIN PGP MESSAGE-----` blocks
  (`inline_pgp`).

None means the content claimed to be one of these containers but could not be
parsed; rules treat that as "not encrypted" (fail closed).
"""

from __future__ import annotations

import re
import struct

import olefile

from gateway.message.documents import archives, pdf, rar, sevenzip
from gateway.message.documents.bounds import LimitExceeded
from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits

_PGP_ARMOUR = b"-----BEGIN PGP MESSAGE-----"
# DER of the PKCS#7 enveloped-data (1.2.840.113549.1.7.3) and authEnveloped-data
# (1.2.840.113549.1.9.16.1.23) content type OIDs.
_ENVELOPED_OIDS = (b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03",
                   b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PPT_ENCRYPTED_TOKEN = 0xF3D1C4DF
_XLS_FILEPASS = 0x002F
_XLS_EOF = 0x000A
_WORD_F_ENCRYPTED = 0x0100


def zip_encrypted(data: bytes, limits: InspectionLimits = DEFAULT_LIMITS) -> bool | None:
    try:
        with archives.open_zip(data, limits) as zf:
            files = [i for i in zf.infolist() if not i.is_dir()]
    except (archives.BadArchive, LimitExceeded):
        return None
    return bool(files) and all(i.flag_bits & 0x1 for i in files)


def pdf_encrypted(data: bytes) -> bool | None:
    if not pdf.looks_like_pdf(data):
        return None
    return pdf.encrypted(data)


def _xls_filepass(stream: bytes) -> bool:
    pos = 0
    # FILEPASS follows the globals substream's BOF; stop at its EOF.
    for _ in range(10000):
        if pos + 4 > len(stream):
            break
        rtype, length = struct.unpack_from("<HH", stream, pos)
        if rtype == _XLS_FILEPASS:
            return True
        if rtype == _XLS_EOF:
            break
        pos += 4 + length
    return False


def ole_encrypted(data: bytes) -> bool | None:
    try:
        ole = olefile.OleFileIO(data)
    except Exception:  # not an OLE file after all, or a broken one
        return None
    try:
        if ole.exists("EncryptionInfo") and ole.exists("EncryptedPackage"):
            return True
        if ole.exists("WordDocument"):
            fib = ole.openstream("WordDocument").read(12)
            return len(fib) >= 12 and bool(struct.unpack_from("<H", fib, 10)[0]
                                           & _WORD_F_ENCRYPTED)
        for name in ("Workbook", "Book"):
            if ole.exists(name):
                return _xls_filepass(ole.openstream(name).read())
        if ole.exists("Current User"):
            if ole.exists("EncryptedSummary"):
                return True
            cu = ole.openstream("Current User").read(16)
            return len(cu) >= 16 and struct.unpack_from("<I", cu, 12)[0] == \
                _PPT_ENCRYPTED_TOKEN
        return False
    except Exception:  # a stream that lies about its size
        return None
    finally:
        ole.close()


def pkcs7_enveloped(data: bytes) -> bool:
    """DER (or base64 left in place) PKCS#7 whose content type is enveloped-data."""
    head = data[:64]
    return any(oid in head for oid in _ENVELOPED_OIDS)


_ARMOUR_BLOCK = re.compile(r"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----",
                           re.DOTALL)


def inline_pgp(bodies: tuple[str, ...]) -> bool:
    """Inline PGP: there is a text body, and every one is only armoured PGP message blocks."""
    if not bodies:
        return False
    for body in bodies:
        if "-----BEGIN PGP MESSAGE-----" not in body:
            return False
        if _ARMOUR_BLOCK.sub("", body).strip():
            return False
    return True


def attachment_encrypted(data: bytes, detected_type: str,
                         limits: InspectionLimits = DEFAULT_LIMITS) -> bool | None:
    """The encryption state of one decoded attachment (see the module docstring)."""
    if archives.is_zip(data) or detected_type in (
            "application/zip", "application/x-zip-compressed"):
        return zip_encrypted(data, limits)
    if detected_type == "application/pdf" or pdf.looks_like_pdf(data):
        return pdf_encrypted(data)
    if data.startswith(_OLE_MAGIC):
        return ole_encrypted(data)
    if data.startswith(sevenzip.SIGNATURE):
        return sevenzip.encrypted(data)
    if rar.is_rar(data):
        return rar.encrypted(data)
    if _PGP_ARMOUR in data[:4096] or detected_type == "application/pgp-encrypted":
        return True
    if detected_type in ("application/pkcs7-mime", "application/x-pkcs7-mime") or \
            data[:1] == b"\x30":
        return pkcs7_enveloped(data) or False
    return False


def message_encrypted(content_type: str, params: dict[str, str], payload: bytes | None
                      ) -> bool:
    """Whether the top-level part makes the whole message S/MIME or PGP/MIME encrypted."""
    if content_type == "multipart/encrypted":
        return params.get("protocol", "").strip().lower() == "application/pgp-encrypted"
    if content_type in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        smime = params.get("smime-type", "").strip().lower()
        if smime in ("enveloped-data", "authenveloped-data"):
            return True
        if not smime and payload is not None:
            return pkcs7_enveloped(payload)
    return False
