"""ZIP archives read defensively: bomb checks on the directory, members streamed under a cap.

Before any member is read, the central directory is checked against the limits
(`InspectionLimits`); any of these makes the archive a bomb (`LimitExceeded`):
- more entries than `max_archive_entries`;
- two entries whose data overlap (the "overlapping files" bomb points many
  central-directory entries at one compressed stream; a real archive never
  shares bytes between entries);
- an entry that declares more than `max_archive_ratio` times its compressed
  size (above a small floor, where ratios mean nothing);
- declared uncompressed sizes that add up to more than `max_expansion_bytes`.

Members are then read one at a time with `ZipFile.open` and a byte cap, every
chunk charged to the message's expansion budget: never `extractall`, never a
member whole into memory before its size is known to be allowed. `zipfile`
itself stops a member at its declared size, so a lying header cannot push more.
"""

from __future__ import annotations

import io
import itertools
import struct
import zipfile

from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.limits import InspectionLimits

# Ratios of small members mean nothing (a 1000-byte file of spaces compresses 100:1).
RATIO_FLOOR = 1024 * 1024
CHUNK = 64 * 1024
_LOCAL = b"PK\x03\x04"


class BadArchive(Exception):
    """Not a ZIP that can be read (truncated, corrupt)."""


def open_zip(data: bytes, limits: InspectionLimits) -> zipfile.ZipFile:
    """The archive, after the directory checks (module docstring)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            struct.error, NotImplementedError, RuntimeError, UnicodeDecodeError) as e:
        raise BadArchive(type(e).__name__) from None
    try:
        check_directory(data, infos, limits)
    except LimitExceeded:
        zf.close()
        raise
    return zf


def check_directory(data: bytes, infos: list[zipfile.ZipInfo], limits: InspectionLimits
                    ) -> None:
    if len(infos) > limits.max_archive_entries:
        raise LimitExceeded(f"archive has more than {limits.max_archive_entries} entries")
    declared = 0
    spans: list[tuple[int, int]] = []
    for info in infos:
        declared += info.file_size
        if info.file_size > RATIO_FLOOR and \
                info.file_size > limits.max_archive_ratio * max(info.compress_size, 1):
            raise LimitExceeded(
                f"archive entry expands more than {limits.max_archive_ratio} times")
        spans.append(_data_span(data, info))
    if declared > limits.max_expansion_bytes:
        raise LimitExceeded(f"archive declares more than {limits.max_expansion_bytes} bytes")
    spans.sort()
    for (_start_a, end_a), (start_b, _end_b) in itertools.pairwise(spans):
        if start_b < end_a:
            raise LimitExceeded("archive entries overlap")


def _data_span(data: bytes, info: zipfile.ZipInfo) -> tuple[int, int]:
    """Where this entry's local header starts and its compressed data ends."""
    start = info.header_offset
    head = data[start:start + 30]
    if len(head) < 30 or not head.startswith(_LOCAL):
        # zipfile would refuse to read it; as a span, the header alone
        return start, start + 30
    name_len, extra_len = struct.unpack_from("<HH", head, 26)
    return start, start + 30 + name_len + extra_len + info.compress_size


def is_dir(info: zipfile.ZipInfo) -> bool:
    """A directory entry. `ZipInfo.is_dir()` raises IndexError on an empty name (a
    hostile archive's name of NUL bytes): a name ending in `/` is a directory."""
    return info.filename.endswith("/")


def is_zip(data: bytes) -> bool:
    return data.startswith((_LOCAL, b"PK\x05\x06", b"PK\x07\x08"))


_END = b"PK\x05\x06"
_END_SEARCH = 22 + 65535  # the end record and the longest archive comment


def has_directory(data: bytes) -> bool:
    """A ZIP that does not start at the first byte (a self-extractor stub or junk in
    front): an end-of-central-directory record near the end whose directory zipfile
    reads."""
    if _END not in data[-_END_SEARCH:]:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return bool(zf.infolist())
    except Exception:  # not a readable archive after all
        return False


def peek(zf: zipfile.ZipFile, info: zipfile.ZipInfo, n: int) -> bytes:
    """The first `n` bytes of a member (b'' if it cannot be read)."""
    try:
        with zf.open(info) as f:
            return f.read(n)
    except Exception:  # corrupt, unsupported method, encrypted: the member is unreadable
        return b""


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, bounds: Bounds) -> bytes | None:
    """The member's bytes, read in chunks under the budget; None if it cannot be read."""
    if info.file_size > bounds.limits.max_expansion_bytes:
        raise LimitExceeded("archive member larger than the expansion limit")
    out = io.BytesIO()
    try:
        with zf.open(info) as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                bounds.charge(len(chunk))
                bounds.check_time()
                out.write(chunk)
    except LimitExceeded:
        raise
    except Exception:  # corrupt data, bad CRC, unsupported method: not readable
        return None
    return out.getvalue()
