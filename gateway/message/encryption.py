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
  `Current User` token (`documents.ole`). OpenDocument: the manifest declares
  `manifest:encryption-data` (`documents.odf`).

With the state goes the scheme (`Protection.scheme`), for rules on weak encryption:
AES is strong; ZipCrypto (PKWARE traditional), RC4 and XOR obfuscation are weak.
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
from typing import NamedTuple

from gateway.message.documents import archives, odf, ole, pdf, rar, sevenzip
from gateway.message.documents.bounds import LimitExceeded
from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits

_PGP_ARMOUR = b"-----BEGIN PGP MESSAGE-----"
# DER of the PKCS#7 enveloped-data (1.2.840.113549.1.7.3) and authEnveloped-data
# (1.2.840.113549.1.9.16.1.23) content type OIDs.
_ENVELOPED_OIDS = (b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03",
                   b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x09\x10\x01\x17")
# ZIP compression method 99: WinZip AES (APPNOTE.TXT 4.4.5; AE-x specification).
_ZIP_AES = 99


class Protection(NamedTuple):
    """An attachment's encryption: `encrypted` True/False/None (could not tell) and,
    when encrypted, the scheme: `aes`, `zipcrypto`, `rc4`, `xor`, `pdf-rc4`,
    `pdf-aes`, `blowfish`, `pgp`, `smime`, or None when it cannot be told."""

    encrypted: bool | None
    scheme: str | None = None


PLAIN = Protection(False)
UNKNOWN = Protection(None)


def zip_protection(data: bytes, limits: InspectionLimits = DEFAULT_LIMITS) -> Protection:
    """A ZIP (OpenDocument packages by their manifest, `documents.odf`): encrypted when
    every file entry is; the scheme is `aes` when every entry uses WinZip AES, else
    `zipcrypto` (the weakest entry names it)."""
    try:
        with archives.open_zip(data, limits) as zf:
            infos = zf.infolist()
            if odf.is_odf({i.filename for i in infos}):
                encrypted, scheme = odf.encryption(zf)
                return Protection(encrypted, scheme)
            files = [i for i in infos if not archives.is_dir(i)]
    except (archives.BadArchive, LimitExceeded):
        return UNKNOWN
    if not files or not all(i.flag_bits & 0x1 for i in files):
        return PLAIN
    aes = all(i.compress_type == _ZIP_AES for i in files)
    return Protection(True, "aes" if aes else "zipcrypto")


def zip_encrypted(data: bytes, limits: InspectionLimits = DEFAULT_LIMITS) -> bool | None:
    return zip_protection(data, limits).encrypted


def pdf_encrypted(data: bytes) -> bool | None:
    if not pdf.looks_like_pdf(data):
        return None
    return pdf.encrypted(data)


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


def _state(encrypted: bool | None, scheme: str) -> Protection:
    return Protection(encrypted, scheme if encrypted else None)


def attachment_protection(data: bytes, detected_type: str,
                          limits: InspectionLimits = DEFAULT_LIMITS) -> Protection:
    """The encryption state and scheme of one decoded attachment (module docstring)."""
    if archives.is_zip(data) or detected_type in (
            "application/zip", "application/x-zip-compressed"):
        return zip_protection(data, limits)
    if detected_type == "application/pdf" or pdf.looks_like_pdf(data):
        if not pdf.looks_like_pdf(data):
            return UNKNOWN
        encrypted, scheme = pdf.encryption(data)
        return Protection(encrypted, scheme)
    if ole.is_ole(data):
        encrypted, scheme = ole.encryption(data)
        return Protection(encrypted, scheme)
    if data.startswith(sevenzip.SIGNATURE):
        return _state(sevenzip.encrypted(data), "aes")  # 7z encrypts only with AES-256
    if rar.is_rar(data):
        return _state(rar.encrypted(data), "aes")  # RAR 3 and later: AES only
    if _PGP_ARMOUR in data[:4096]:
        # Armoured OpenPGP is text: encrypted only when it is nothing but armour
        # blocks. An armour line in a text, RTF or HTML file that goes on in the clear
        # (hidden text, a block pasted at the top) protects nothing.
        text = data.decode("latin-1")
        return Protection(True, "pgp") if inline_pgp((text,)) else PLAIN
    if detected_type == "application/pgp-encrypted":
        return Protection(True, "pgp")
    if detected_type in ("application/pkcs7-mime", "application/x-pkcs7-mime") or \
            data[:1] == b"\x30":
        return _state(pkcs7_enveloped(data), "smime")
    return PLAIN


def attachment_encrypted(data: bytes, detected_type: str,
                         limits: InspectionLimits = DEFAULT_LIMITS) -> bool | None:
    """The encryption state of one decoded attachment (see the module docstring)."""
    return attachment_protection(data, detected_type, limits).encrypted


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
