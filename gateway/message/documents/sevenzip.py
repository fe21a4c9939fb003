"""7z archives: are all their files encrypted? Read from the archive headers only.

A 7z archive ends in a header (possibly itself compressed: an "encoded header")
that lists folders, each a chain of coders. A folder whose chain holds the AES
coder (method 06 F1 07 01) is encrypted. Encrypted:
- the header itself is encrypted (`7z -mhe=on`): nothing at all can be read;
- every folder has the AES coder (files without data, such as empty files and
  directories, have no folder and do not count).
An encoded header compressed with LZMA or LZMA2 (what 7-Zip writes by default)
is decompressed with the standard library, at most `MAX_HEADER` bytes. Any other
header coder, or a header that does not parse: None (could not inspect).

Format: 7-Zip's `DOC/7zFormat.txt` (public domain documentation of the format).
"""

from __future__ import annotations

import lzma
import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"7z\xbc\xaf\x27\x1c"
MAX_HEADER = 16 * 1024 * 1024
_AES = b"\x06\xf1\x07\x01"
_LZMA = b"\x03\x01\x01"
_LZMA2 = b"\x21"
_COPY = b"\x00"

(_END, _HEADER, _ARCHIVE_PROPERTIES, _ADDITIONAL_STREAMS, _MAIN_STREAMS, _FILES_INFO,
 _PACK_INFO, _UNPACK_INFO, _SUBSTREAMS_INFO, _SIZE, _CRC, _FOLDER, _UNPACK_SIZE) = range(13)
_ENCODED_HEADER = 0x17


class _Bad(Exception):
    pass


@dataclass
class _Coder:
    method: bytes
    props: bytes


@dataclass
class _Folder:
    coders: list[_Coder]
    unpack_sizes: list[int]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _Bad("truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Bad("truncated")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def number(self) -> int:
        """7z's variable-length UINT64: leading 1 bits of the first byte say how many follow."""
        first = self.byte()
        mask = 0x80
        value = 0
        for i in range(8):
            if not first & mask:
                return value | ((first & (mask - 1)) << (8 * i))
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def small(self, limit: int = 1 << 20) -> int:
        n = self.number()
        if n > limit:
            raise _Bad("count out of range")
        return n

    def skip_digests(self, count: int) -> None:
        if self.byte():
            defined = count
        else:
            bits = self.take((count + 7) // 8)
            defined = sum(bin(b).count("1") for b in bits)
        self.take(4 * defined)


def _folder(r: _Reader) -> _Folder:
    coders: list[_Coder] = []
    total_in = total_out = 0
    for _ in range(r.small(64)):
        flags = r.byte()
        method = r.take(flags & 0x0F)
        n_in = n_out = 1
        if flags & 0x10:
            n_in, n_out = r.small(64), r.small(64)
        props = r.take(r.small()) if flags & 0x20 else b""
        if flags & 0x80:
            raise _Bad("alternative methods are not supported")
        coders.append(_Coder(method, props))
        total_in += n_in
        total_out += n_out
    for _ in range(total_out - 1):  # bind pairs
        r.number()
        r.number()
    packed = total_in - (total_out - 1)
    if packed > 1:
        for _ in range(packed):
            r.number()
    return _Folder(coders, [0] * total_out)


def _streams_info(r: _Reader) -> tuple[int, list[int], list[_Folder]]:
    """(pack position, pack sizes, folders) of a StreamsInfo block."""
    pack_pos = 0
    pack_sizes: list[int] = []
    folders: list[_Folder] = []
    prop = r.byte()
    if prop == _PACK_INFO:
        pack_pos = r.number()
        count = r.small()
        prop = r.byte()
        while prop != _END:
            if prop == _SIZE:
                pack_sizes = [r.number() for _ in range(count)]
            elif prop == _CRC:
                r.skip_digests(count)
            else:
                raise _Bad("unexpected property in PackInfo")
            prop = r.byte()
        prop = r.byte()
    if prop == _UNPACK_INFO:
        if r.byte() != _FOLDER:
            raise _Bad("no folders")
        count = r.small()
        if r.byte() != 0:
            raise _Bad("external folders are not supported")
        folders = [_folder(r) for _ in range(count)]
        if r.byte() != _UNPACK_SIZE:
            raise _Bad("no unpack sizes")
        for f in folders:
            f.unpack_sizes = [r.number() for _ in f.unpack_sizes]
        prop = r.byte()
        while prop != _END:
            if prop == _CRC:
                r.skip_digests(len(folders))
            else:
                raise _Bad("unexpected property in UnpackInfo")
            prop = r.byte()
        prop = r.byte()
    # SubStreamsInfo (per-file sizes) is not needed: encryption is per folder.
    return pack_pos, pack_sizes, folders


def _is_encrypted(folder: _Folder) -> bool:
    return any(c.method == _AES for c in folder.coders)


def _decode_header(data: bytes, pack_pos: int, pack_sizes: list[int], folder: _Folder
                   ) -> bytes:
    if len(folder.coders) != 1 or not pack_sizes:
        raise _Bad("header coder chain not supported")
    coder = folder.coders[0]
    size = folder.unpack_sizes[-1] if folder.unpack_sizes else 0
    if size > MAX_HEADER:
        raise _Bad("header too large")
    start = 32 + pack_pos
    packed = data[start:start + pack_sizes[0]]
    if coder.method == _COPY:
        return packed[:size]
    if coder.method == _LZMA and len(coder.props) == 5:
        d = coder.props[0]
        lc, lp, pb = d % 9, (d // 9) % 5, d // 45
        dict_size = struct.unpack_from("<I", coder.props, 1)[0]
        filt: dict[str, int] = {"id": lzma.FILTER_LZMA1, "dict_size": max(dict_size, 4096),
                                "lc": lc, "lp": lp, "pb": pb}
    elif coder.method == _LZMA2 and len(coder.props) == 1:
        bits = coder.props[0]
        dict_size = (2 | (bits & 1)) << (bits // 2 + 11) if bits < 40 else 0xFFFFFFFF
        filt = {"id": lzma.FILTER_LZMA2, "dict_size": dict_size}
    else:
        raise _Bad("header coder not supported")
    try:
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[filt])
        return dec.decompress(packed, max_length=size)
    except (lzma.LZMAError, ValueError) as e:
        raise _Bad(str(e)) from None


def _header_state(header: bytes) -> bool | None:
    r = _Reader(header)
    if r.byte() != _HEADER:
        raise _Bad("not a header")
    prop = r.byte()
    if prop in (_ARCHIVE_PROPERTIES, _ADDITIONAL_STREAMS):
        raise _Bad("archive properties are not supported")
    if prop != _MAIN_STREAMS:
        return False  # no streams at all: only empty files or directories
    _pos, _sizes, folders = _streams_info(r)
    return bool(folders) and all(_is_encrypted(f) for f in folders)


def encrypted(data: bytes) -> bool | None:
    """The archive's encryption state (module docstring)."""
    if not data.startswith(SIGNATURE) or len(data) < 32:
        return None
    try:
        next_offset, next_size, next_crc = struct.unpack_from("<QQI", data, 12)
        start = 32 + next_offset
        if next_size > MAX_HEADER or start + next_size > len(data):
            return None
        header = data[start:start + next_size]
        if zlib.crc32(header) != next_crc:
            return None
        if not header:
            return False  # an empty archive
        if header[0] == _ENCODED_HEADER:
            r = _Reader(header)
            r.byte()
            pack_pos, pack_sizes, folders = _streams_info(r)
            if not folders:
                return None
            if _is_encrypted(folders[0]):
                return True
            header = _decode_header(data, pack_pos, pack_sizes, folders[0])
        return _header_state(header)
    except (_Bad, struct.error):
        return None
