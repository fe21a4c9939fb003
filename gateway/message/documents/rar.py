"""RAR archives: are all their files encrypted? Read from the block headers only.

RAR 5.x (signature `Rar!\\x1a\\x07\\x01\\x00`): an archive encryption header
(type 4) means the headers themselves are encrypted, so everything is; otherwise
each file header (type 2) that is not a directory must carry a file encryption
extra record (type 0x01). RAR 1.5-4.x (signature `Rar!\\x1a\\x07\\x00`): the
main header's MHD_PASSWORD flag (0x0080) encrypts the headers; otherwise each
file header that is not a directory must have LHD_PASSWORD (0x0004).

Every header's CRC is checked; a header that fails it, or a walk that runs off
the data, gives None (could not inspect). An archive without file entries is
not encrypted. Format: RARLAB's "RAR 5.0 archive format" and the RAR 4.x
technical note (TECHNOTE.TXT).
"""

from __future__ import annotations

import struct
import zlib

RAR5 = b"Rar!\x1a\x07\x01\x00"
RAR4 = b"Rar!\x1a\x07\x00"
MAX_BLOCKS = 100000


class _Bad(Exception):
    pass


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if pos >= len(data):
            raise _Bad("truncated")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise _Bad("vint too long")


def _rar5(data: bytes) -> bool:
    pos = len(RAR5)
    files = encrypted_files = 0
    for _ in range(MAX_BLOCKS):
        if pos + 4 > len(data):
            raise _Bad("truncated")
        crc = struct.unpack_from("<I", data, pos)[0]
        size, body = _vint(data, pos + 4)
        end = body + size
        if size == 0 or end > len(data) or zlib.crc32(data[pos + 4:end]) != crc:
            raise _Bad("bad header")
        htype, p = _vint(data, body)
        flags, p = _vint(data, p)
        extra_size = data_size = 0
        if flags & 0x0001:
            extra_size, p = _vint(data, p)
        if flags & 0x0002:
            data_size, p = _vint(data, p)
        if htype == 4:
            return True  # archive encryption header: all headers are encrypted
        if htype == 5:
            break
        if htype == 2:
            file_flags, _ = _vint(data, p)
            if not file_flags & 0x0001:  # not a directory
                files += 1
                if _has_encryption_record(data, end - extra_size, end):
                    encrypted_files += 1
        pos = end + data_size
        if pos >= len(data):
            break
    else:  # not read to its end: its state cannot be told (never "all encrypted")
        raise _Bad(f"more than {MAX_BLOCKS} blocks")
    return files > 0 and files == encrypted_files


def _has_encryption_record(data: bytes, pos: int, end: int) -> bool:
    while pos < end:
        size, p = _vint(data, pos)
        rtype, _ = _vint(data, p)
        if rtype == 0x01:
            return True
        if size == 0:
            raise _Bad("empty extra record")
        pos = p + size
    return False


def _rar4(data: bytes) -> bool:
    pos = len(RAR4)
    files = encrypted_files = 0
    for _ in range(MAX_BLOCKS):
        if pos + 7 > len(data):
            break
        crc, htype, flags, size = struct.unpack_from("<HBHH", data, pos)
        if size < 7 or pos + size > len(data):
            raise _Bad("bad header")
        if zlib.crc32(data[pos + 2:pos + size]) & 0xFFFF != crc:
            raise _Bad("bad header CRC")
        add = 0
        if flags & 0x8000 or htype == 0x74:
            if size < 11:
                raise _Bad("bad header")
            add = struct.unpack_from("<I", data, pos + 7)[0]
            if htype == 0x74 and flags & 0x0100 and size >= 36:
                add |= struct.unpack_from("<I", data, pos + 32)[0] << 32
        if htype == 0x73 and flags & 0x0080:
            return True  # MHD_PASSWORD: the block headers are encrypted
        if htype == 0x7B:
            break
        if htype == 0x74 and flags & 0x00E0 != 0x00E0:  # a file, not a directory
            files += 1
            if flags & 0x0004:
                encrypted_files += 1
        pos += size + add
    else:  # not read to its end: its state cannot be told (never "all encrypted")
        raise _Bad(f"more than {MAX_BLOCKS} blocks")
    return files > 0 and files == encrypted_files


def encrypted(data: bytes) -> bool | None:
    """The archive's encryption state (module docstring)."""
    try:
        if data.startswith(RAR5):
            return _rar5(data)
        if data.startswith(RAR4):
            return _rar4(data)
    except (_Bad, struct.error):
        return None
    return None


def is_rar(data: bytes) -> bool:
    return data.startswith((RAR5, RAR4))
