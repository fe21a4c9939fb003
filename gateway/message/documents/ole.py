"""Legacy Office 97-2003 files in an OLE compound file: which format, its text, its encryption.

STUB (issue 10): filled in by the legacy Office reader. The format is found by the
streams the file holds, never by its name: `WordDocument` ([MS-DOC], `msdoc`),
`Workbook`/`Book` ([MS-XLS], `msxls`), `PowerPoint Document` ([MS-PPT], `msppt`);
`EncryptionInfo` + `EncryptedPackage` is a password-protected OOXML file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import olefile

from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece

MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PPT_ENCRYPTED_TOKEN = 0xF3D1C4DF
_XLS_FILEPASS = 0x002F
_XLS_EOF = 0x000A
_WORD_F_ENCRYPTED = 0x0100


def is_ole(head: bytes) -> bool:
    return head.startswith(MAGIC)


def pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Marking-bearing text of a .doc, .xls or .ppt; nothing for other OLE files."""
    return iter(())


def encryption(data: bytes) -> tuple[bool | None, str | None]:
    """(encrypted, scheme) of an OLE file: scheme `aes` (OOXML agile/standard),
    `rc4` (Word/Excel/PowerPoint RC4 and RC4 CryptoAPI), `xor` (Word/Excel XOR
    obfuscation), None when not encrypted; (None, None) when it cannot be read."""
    state = _encrypted(data)
    if state and b"E\x00n\x00c\x00r\x00y\x00p\x00t\x00i\x00o\x00n\x00I\x00n\x00f\x00o" in data:
        return True, "aes"  # ECMA-376 agile and standard encryption are AES
    return state, None


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


def _encrypted(data: bytes) -> bool | None:
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
