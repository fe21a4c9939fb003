"""Legacy Office 97-2003 files in an OLE compound file ([MS-CFB]): which format, its text,
its encryption.

The format is found by the streams the file holds, never by its name:
- `WordDocument` (with `0Table`/`1Table`): Word, [MS-DOC] (`msdoc`);
- `Workbook` (BIFF8) or `Book` (BIFF5/7): Excel, [MS-XLS] (`msxls`);
- `PowerPoint Document` (with `Current User`): PowerPoint, [MS-PPT] (`msppt`);
- `EncryptionInfo` + `EncryptedPackage`: a password-protected OOXML file
  ([MS-OFFCRYPTO] 2.3.4: the package is encrypted whole; no text to read).
Any other OLE file (an Outlook item is read by `msg` before it gets here; Visio,
Publisher, MSI...) gives no pieces.

`encryption` says whether a password is needed to read the file and with which
scheme: OOXML agile or standard encryption (`aes`, or `rc4` when its EncryptionInfo
names RC4), Word `fEncrypted` (`xor` with `fObfuscated`, else `rc4`), Excel FilePass
(`xor` or `rc4`), PowerPoint's encrypted Current User token or CryptSession10Container
(`rc4`). An encrypted file yields no pieces.

The container is read with olefile, which raises many kinds of errors on damaged
files; those mean "cannot be read" here. A stream claiming more bytes than the whole
file is damaged and not read. Stream bytes read are charged to the bounds. A reader
that meets damage it did not foresee (a struct that does not fit, a bad index) ends
quietly: what it read still counts.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator

import olefile

from gateway.message.documents import msdoc, msppt, msxls
from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece

MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# What a reader's arithmetic on hostile bytes can raise; anything else is a bug and
# is left to surface.
_DAMAGE = (struct.error, IndexError, KeyError, ValueError, UnicodeError, OverflowError)
# [MS-OFFCRYPTO] 2.3.4.5 EncryptionHeader.algID values.
_ALG_RC4 = 0x6801
_ALG_AES = frozenset({0x660E, 0x660F, 0x6610})
_AGILE_CIPHER = re.compile(rb'cipherAlgorithm="([A-Za-z0-9_]+)"')


def is_ole(head: bytes) -> bool:
    return head.startswith(MAGIC)


def pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Marking-bearing text of a .doc, .xls or .ppt; nothing for other OLE files."""
    ole = _open(data)
    if ole is None:
        return
    try:
        if _has(ole, "EncryptionInfo") and _has(ole, "EncryptedPackage"):
            return
        try:
            yield from _read(ole, len(data), bounds, path)
        except _DAMAGE:
            return
    finally:
        ole.close()


def _read(ole: olefile.OleFileIO, size: int, bounds: Bounds, path: str
          ) -> Iterator[Piece]:
    if _has(ole, "WordDocument"):
        streams = {name: stream for name in ("WordDocument", "0Table", "1Table")
                   if (stream := _stream(ole, name, size, bounds)) is not None}
        yield from msdoc.pieces(streams, bounds, path)
        return
    for name in ("Workbook", "Book"):
        if _has(ole, name):
            workbook = _stream(ole, name, size, bounds)
            if workbook is not None:
                yield from msxls.pieces(workbook, bounds, path)
            return
    if _has(ole, "PowerPoint Document"):
        document = _stream(ole, "PowerPoint Document", size, bounds)
        if document is not None:
            current_user = _stream(ole, "Current User", size, bounds)
            yield from msppt.pieces(current_user, document, bounds, path)


def encryption(data: bytes) -> tuple[bool | None, str | None]:
    """(encrypted, scheme) of an OLE file (module docstring): scheme `aes`, `rc4` or
    `xor` when encrypted (None when it cannot be told); (False, None) when not
    encrypted; (None, None) when the file cannot be read."""
    ole = _open(data)
    if ole is None:
        return None, None
    try:
        if _has(ole, "EncryptionInfo") and _has(ole, "EncryptedPackage"):
            return True, _ooxml_scheme(_stream(ole, "EncryptionInfo", len(data)))
        if _has(ole, "WordDocument"):
            word = _stream(ole, "WordDocument", len(data))
            return msdoc.encryption(word) if word is not None else (None, None)
        for name in ("Workbook", "Book"):
            if _has(ole, name):
                workbook = _stream(ole, name, len(data))
                return msxls.encryption(workbook) if workbook is not None else (None, None)
        if _has(ole, "PowerPoint Document"):
            if _has(ole, "EncryptedSummary"):
                return True, "rc4"
            state = msppt.encrypted(_stream(ole, "Current User", len(data)),
                                    _stream(ole, "PowerPoint Document", len(data)))
            return state, "rc4" if state else None
        return False, None
    except _DAMAGE:
        return None, None
    finally:
        ole.close()


def _ooxml_scheme(info: bytes | None) -> str | None:
    """The cipher of an OOXML EncryptionInfo stream ([MS-OFFCRYPTO] 2.3.4.5 standard,
    2.3.4.10 agile): `aes` or `rc4`, None for anything else or unreadable."""
    if info is None or len(info) < 8:
        return None
    major, minor = struct.unpack_from("<HH", info, 0)
    if (major, minor) == (4, 4):  # agile: an XML descriptor, the key data's cipher
        m = _AGILE_CIPHER.search(info[8:8 + 65536])
        cipher = m.group(1).upper() if m else b""
        return "aes" if cipher == b"AES" else "rc4" if cipher == b"RC4" else None
    if major in (2, 3, 4) and minor == 2 and len(info) >= 12 + 32:
        # Standard: flags, header size, then an EncryptionHeader (flags, sizeExtra, algID).
        flags, = struct.unpack_from("<I", info, 12)
        alg, = struct.unpack_from("<I", info, 20)
        if alg in _ALG_AES or (alg == 0 and flags & 0x20):  # fAES
            return "aes"
        if alg == _ALG_RC4 or (alg == 0 and flags & 0x04):  # fCryptoAPI without fAES
            return "rc4"
    return None


def _open(data: bytes) -> olefile.OleFileIO | None:
    try:
        # A file object always: olefile takes short `bytes` for a file name.
        return olefile.OleFileIO(io.BytesIO(data))
    except Exception:  # olefile's errors on a damaged container are of many kinds
        return None


def _has(ole: olefile.OleFileIO, name: str) -> bool:
    try:
        return bool(ole.exists(name)) and ole.get_type(name) == olefile.STGTY_STREAM
    except Exception:  # a directory olefile cannot walk
        return False


def _stream(ole: olefile.OleFileIO, name: str, size: int, bounds: Bounds | None = None
            ) -> bytes | None:
    """A stream's bytes, or None when it is missing or damaged (longer than the file,
    a sector chain olefile refuses)."""
    if not _has(ole, name):
        return None
    try:
        declared = int(ole.get_size(name))
        if declared > size:
            return None
        if bounds is not None:
            bounds.charge(declared)
        with ole.openstream(name) as stream:
            data: bytes = stream.read(declared)
    except _DAMAGE:
        return None
    except OSError:  # olefile's own errors on a bad sector chain
        return None
    return data
