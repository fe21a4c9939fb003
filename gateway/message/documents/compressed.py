"""tar archives and gzip, bzip2, xz and lzma files, read as defensively as `archives` reads ZIP.

What this module owns: telling these formats by their first bytes (`compression`,
`is_tar`) and reading them (`Reader`): every member name of a tar archive (plain or
compressed), the content of its regular files that are documents, the one file a
gzip, bzip2, xz or lzma stream holds, and the original name a gzip member keeps.
What a member is and how it is read for markings stays with `walk`, which reads every
member it is given recursively (`walk.pieces(..., text=True)`), as it does ZIP members.

Formats (standard library only: `zlib`, `bz2`, `lzma`, `tarfile`):
- gzip: RFC 1952 (members one after another; FNAME, the original file name);
- bzip2: Julian Seward's bzip2 1.0 format (no formal specification; streams one after
  another, as `pbzip2` writes them);
- xz: "The .xz File Format" 1.2.1 (Tukaani; streams and stream padding); lzma: the
  legacy `.lzma` header of the LZMA SDK ("LZMA_Alone");
- tar: POSIX.1-2017 `pax` (ustar headers, pax extended headers), and the GNU and v7
  variants Python's `tarfile` reads.

Defences (`InspectionLimits`; going over one raises `LimitExceeded`: the attachment is
not inspectable, never clean):
- Decompression is never unbounded: this module decompresses (never `tarfile`, never
  `read()` whole), feeding `_IN` compressed bytes at a time and taking at most `CHUNK`
  decompressed bytes per step. Every decompressed byte is charged (`Bounds.charge`) and
  the time checked. A stream that expands more than `max_archive_ratio` times the
  compressed bytes consumed, above `archives.RATIO_FLOOR`, is a bomb. There is no size
  to check first: gzip's ISIZE is modulo 4 GiB and, like an xz index, the sender's claim.
  The xz and lzma decoders may use at most `MEMLIMIT` bytes (their header asks for a
  dictionary of any size).
- A compressed stream is read to its end whatever its first bytes say, so a bomb is
  found even when its content is nothing a reader would read.
- A tar archive has no directory: it is read through once, forward (`tarfile`'s stream
  mode `r|` over the stream decompressed here, which also keeps `tarfile` from seeking
  backwards on a negative size). Every byte it reads is charged, a plain tar's too (as a
  stored ZIP member read is).
- More than `max_archive_entries` members: a bomb.
- A pax or GNU long-name header larger than `MAX_META_BYTES`: not inspectable. Python's
  `tarfile` parses pax records with regular expressions whose cost grows with the square
  of their size before 3.11.10 and 3.12.6 (CVE-2024-6232); real ones hold a path and a
  few times. A chain of headers too long for `tarfile`'s recursion, likewise.
- Sparse files (GNU `tar -S`): not inspectable. Their holes expand with no bytes to
  charge, and `tarfile` reads a sparse map of any length into memory; mail never
  carries them.
- Only regular files are read (and types `tarfile` does not know, which GNU tar extracts
  as regular files); links are never followed, devices and FIFOs never opened: of
  those, only the name is read.
- Nesting: a tar archive, compressed or not, is one container; the one file of a
  gzip, bzip2, xz or lzma stream is a level deeper than the stream (`walk`'s depth).

Damage: a damaged or truncated file ends quietly with what was read, as a damaged ZIP
does (`walk`: a ZIP that cannot be opened gives nothing, a member that cannot be read is
skipped). For a truncated `.tar.gz` that means: the members before the cut are read
(names and content), the one cut in half as far as it goes (to its last whole 8 KiB),
and whatever followed is unknown. Quiet is right for a cut: the
missing bytes are not in the message, so no recipient's tool can extract them either
(GNU tar and 7-Zip stop at the same place, with an error); the gateway vouches for what
the attachment holds, and it holds nothing more. Damage in the middle is not a cut, and
is read past where tools read past it: a tar header that fails its checksum, and zero
blocks, are skipped to the next good header (`ignore_zeros`, as GNU tar skips to the
next header), so the members after it are read as a recipient's tar extracts them. A
compressed stream is not read past damage in it: deflate and LZMA cannot be resumed
(only `bzip2recover` can find bzip2 blocks after a damaged one: those are not read).

Bytes after the last compressed stream (or after a plain tar's last member) that are
not zero padding are `Reader.trailing`: `walk` reads a ZIP found there, as a ZIP
behind any other prefix (Windows opens a file named `.zip` by the directory at its end).
"""

from __future__ import annotations

import bz2
import io
import lzma
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, Self

from gateway.message.documents.archives import CHUNK, RATIO_FLOOR
from gateway.message.documents.bounds import Bounds, LimitExceeded

Compression = Literal["gzip", "bzip2", "xz", "lzma"]

GZIP = b"\x1f\x8b\x08"  # ID1 ID2 and CM 8 (deflate, the only method RFC 1952 defines)
XZ = b"\xfd7zXZ\x00"
BZIP2 = b"BZh"
_BZIP2_BLOCK = b"\x31\x41\x59\x26\x53\x59"  # pi: a compressed block follows
_BZIP2_END = b"\x17\x72\x45\x38\x50\x90"  # sqrt(pi): the end of an (empty) stream
# The decoders' memory: above what `xz -9e` needs to decompress (65 MiB), far below the
# 1.5 GiB dictionary an xz or lzma header may ask for.
MEMLIMIT = 128 * 1024 * 1024
# A pax header or GNU long name: a path of PATH_MAX (4096) and the other records fit.
MAX_META_BYTES = 8 * 1024
# Compressed bytes handed to a decoder at a time: the ratio is measured against what
# was handed over, so this is how far a bomb can run ahead of the check.
_IN = 16 * 1024
# How many decompressed bytes tell a tar from a single file (one header block).
_HEAD = 512
_NOT_ZERO = re.compile(rb"[^\x00]")
_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
               tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
# `tarfile` skips a block whose header is invalid (with `ignore_zeros`) only for this
# error; the typeshed stubs do not declare it.
_INVALID_HEADER: type[Exception] = getattr(tarfile, "InvalidHeaderError", tarfile.HeaderError)


def compression(head: bytes) -> Compression | None:
    """The compression of a file that starts with these bytes, or None."""
    if head.startswith(GZIP):
        return "gzip"
    if head.startswith(XZ):
        return "xz"
    # "BZh" alone starts English text: the block size digit and a block or end magic too.
    if head.startswith(BZIP2) and len(head) >= 10 and head[3] in b"123456789" and \
            head[4:10] in (_BZIP2_BLOCK, _BZIP2_END):
        return "bzip2"
    if _is_lzma_alone(head):
        return "lzma"
    return None


def _is_lzma_alone(head: bytes) -> bool:
    """A legacy `.lzma` header as `xz --format=lzma` and the LZMA SDK write it: the
    default properties (lc=3, lp=0, pb=2), a dictionary of 2^n or 2^n + 2^(n-1) bytes,
    and an unknown (all ones) or plausible uncompressed size. It has no magic: this is
    what xz itself checks before it calls a file `.lzma`."""
    if len(head) < 13 or head[0] != 0x5D:
        return False
    dict_size = int.from_bytes(head[1:5], "little")
    size = int.from_bytes(head[5:13], "little")
    if dict_size < 4096 or dict_size > 3 << 29:
        return False
    top = 1 << (dict_size.bit_length() - 1)
    return dict_size in (top, top | top >> 1) and (size == (1 << 64) - 1 or size < 1 << 38)


def is_tar(head: bytes) -> bool:
    """A tar header block: its checksum holds. POSIX ustar, pax and GNU archives also say
    `ustar` at offset 257, v7 archives have only the checksum; a text that happens to hold
    `ustar` there is not taken for an archive (its lines would go unread)."""
    if len(head) < 512 or head[0] == 0:
        return False
    block = head[:512]
    field = block[148:156].split(b"\0", 1)[0].strip(b" ")
    if not field or field.strip(b"01234567"):
        return False
    stored = int(field, 8)
    # The checksum counts its own field as eight spaces; old tars summed signed bytes.
    rest = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(rest)
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)
    return stored in (unsigned, signed)


def gzip_name(data: bytes) -> str:
    """The original file name the first gzip member keeps (RFC 1952 2.3.1, FNAME), ''
    when it has none. ISO 8859-1 by the RFC; gzip stores the bytes of the name as the
    file system had them, so UTF-8 is tried first."""
    if len(data) < 10 or not data.startswith(GZIP):
        return ""
    flags = data[3]
    pos = 10
    if flags & 0x04:  # FEXTRA: XLEN, then that many bytes
        pos += 2 + int.from_bytes(data[pos:pos + 2], "little")
    if not flags & 0x08:  # FNAME
        return ""
    # No length bound (RFC 1952 sets none, and a long name is still a name): the
    # attachment's own size bounds it.
    end = data.find(b"\0", pos)
    if end < 0:
        return ""
    raw = data[pos:end]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass(frozen=True)
class Member:
    """A name found in the archive, and the content when it was read: a regular file
    whose first bytes `Reader`'s `wanted` accepted, or the one file of a compressed
    stream (always: `walk` tells what it is from the whole of it)."""

    name: str
    data: bytes | None = None


class Reader:
    """One tar archive or compressed file (module docstring). `members()` once, then
    `trailing`. `wanted(head)`: is a tar member whose first `peek` bytes are these read?"""

    def __init__(self, data: bytes, bounds: Bounds, wanted: Callable[[bytes], bool],
                 peek: int) -> None:
        self.data = data
        self.bounds = bounds
        self.wanted = wanted
        self.peek = peek
        self.trailing = b""

    def members(self) -> Iterator[Member]:
        fmt = compression(self.data[:_HEAD])
        if fmt is None:
            tar = _Tar(self.bounds, self.wanted, self.peek)
            yield from tar.members(_Source(_plain(self.data, self.bounds)))
            self.trailing = _trailing(self.data, tar.end)
            return
        stream = _Inflater(self.data, fmt, self.bounds)
        source = _Source(stream.chunks())
        name = gzip_name(self.data)
        if is_tar(source.peek(_HEAD)):
            if name:
                yield Member(name)  # `pelan.tar` inside `pelan.tar.gz`: a name like any
            yield from _Tar(self.bounds, self.wanted, self.peek).members(source)
            source.drain()  # to the end: a bomb after a damaged header is still found
        else:
            yield Member(name, source.read(-1))
        self.trailing = _trailing(self.data, stream.end)


def _trailing(data: bytes, end: int) -> bytes:
    rest = data[end:]
    return rest if _NOT_ZERO.search(rest) else b""


def _plain(data: bytes, bounds: Bounds) -> Iterator[bytes]:
    """A plain tar's bytes, charged as `tarfile` reads them."""
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        bounds.check_time()
        chunk = bytes(view[start:start + CHUNK])
        bounds.charge(len(chunk))
        yield chunk


class _Source:
    """Chunks as the file object `tarfile`'s stream mode reads: `read` only, forward."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False
        self._position = 0

    def _fill(self, n: int) -> None:
        while (n < 0 or len(self._buffer) < n) and not self._done:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self._buffer[:n])

    def read(self, size: int = -1, /) -> bytes:
        self._fill(size)
        n = len(self._buffer) if size < 0 else size
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._position += len(out)
        return out

    def drain(self) -> None:
        while not self._done:
            self._buffer.clear()
            self._fill(CHUNK)
        self._buffer.clear()

    # The rest of the file interface `tarfile.open` is typed with; stream mode reading
    # never calls them.
    def tell(self) -> int:
        return self._position

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("a stream is read forward only")

    def write(self, b: bytes, /) -> int:
        raise io.UnsupportedOperation("read only")

    def close(self) -> None:
        pass


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def needs_input(self) -> bool: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Gzip:
    """One gzip member through zlib (`wbits` 31: RFC 1952 header, CRC-32 and ISIZE
    checked), with the `needs_input` of bz2's and lzma's decompressors: zlib returns
    the input it did not use instead of keeping it."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(wbits=31)
        self._needs_input = True

    @property
    def eof(self) -> bool:
        return self._z.eof

    @property
    def unused_data(self) -> bytes:
        return self._z.unused_data

    @property
    def needs_input(self) -> bool:
        return self._needs_input

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._z.decompress(self._z.unconsumed_tail + data, max_length)
        # Output short of the cap means zlib used all it was given; at the cap, it may
        # have more from what it holds already.
        self._needs_input = not self._z.unconsumed_tail and len(out) < max_length
        return out


def _decoder(fmt: Compression) -> _Decoder:
    if fmt == "gzip":
        return _Gzip()
    if fmt == "bzip2":
        return bz2.BZ2Decompressor()
    kind = lzma.FORMAT_XZ if fmt == "xz" else lzma.FORMAT_ALONE
    return lzma.LZMADecompressor(format=kind, memlimit=MEMLIMIT)


_MAGIC: dict[Compression, bytes] = {"gzip": GZIP, "bzip2": BZIP2, "xz": XZ}


class _Inflater:
    """A compressed file decompressed step by step (module docstring); `end`: where the
    last stream ended in the compressed bytes, once `chunks()` is spent."""

    def __init__(self, data: bytes, fmt: Compression, bounds: Bounds) -> None:
        self.data = data
        self.fmt = fmt
        self.bounds = bounds
        self.end = len(data)

    def chunks(self) -> Iterator[bytes]:
        data, bounds = self.data, self.bounds
        ratio = bounds.limits.max_archive_ratio
        view = memoryview(data)
        decoder = _decoder(self.fmt)
        fed = 0  # compressed bytes handed to the decoders
        total = 0  # decompressed bytes
        try:
            while True:
                bounds.check_time()
                if decoder.eof:
                    fed -= len(decoder.unused_data)
                    # Zero bytes between and after streams: gzip skips them, xz calls
                    # them stream padding.
                    found = _NOT_ZERO.search(data, fed)
                    fed = found.start() if found else len(data)
                    magic = _MAGIC.get(self.fmt)
                    if magic is None or not data.startswith(magic, fed):
                        break  # the end, or bytes that are not another stream
                    decoder = _decoder(self.fmt)
                    continue
                step = b""
                if decoder.needs_input:
                    if fed >= len(data):
                        break  # cut short: what was decompressed is all there is
                    step = bytes(view[fed:fed + _IN])
                    fed += len(step)
                out = decoder.decompress(step, CHUNK)
                if not out:
                    if not step and not decoder.needs_input and not decoder.eof:
                        return  # a decoder that neither gives nor takes: damaged
                    continue
                total += len(out)
                if total > RATIO_FLOOR and total > ratio * max(fed, 1):
                    raise LimitExceeded(f"compressed file expands more than {ratio} times")
                bounds.charge(len(out))
                yield out
        except lzma.LZMAError as e:
            if "memory" in str(e).lower():  # "Memory usage limit was exceeded"
                raise LimitExceeded(
                    f"compressed file needs more than {MEMLIMIT} bytes to decode") from None
            return  # damaged: quietly, with what was read (module docstring)
        except (zlib.error, OSError, EOFError, ValueError):
            return  # damaged (bz2 says OSError "Invalid data stream")
        self.end = fed


class _Header(tarfile.TarInfo):
    """A tar header, refused before `tarfile` processes it when that would cost too much
    (module docstring)."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        info = super().frombuf(buf, encoding, errors)
        if info.type in _META_TYPES and info.size > MAX_META_BYTES:
            raise LimitExceeded(f"tar header larger than {MAX_META_BYTES} bytes")
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise LimitExceeded("a sparse file in a tar archive")
        if info.size < 0:
            # Base-256 allows it; skipped like any invalid header (GNU tar skips it too).
            raise _INVALID_HEADER("negative size")
        return info

    # `tarfile` calls this on the pax header for a GNU 1.0 sparse file, and reads the
    # map (of any length) into a list; a sparse member is refused anyway (`_Tar`), so
    # before that. tests/unit/test_documents_compressed.py checks it is still called.
    def _proc_gnusparse_10(self, member: tarfile.TarInfo, pax_headers: dict[str, str],
                           archive: tarfile.TarFile) -> None:
        raise LimitExceeded("a sparse file in a tar archive")


class _Tar:
    """The members of one tar archive read forward from a `_Source`; `end`: where the last
    member's data ends in it."""

    def __init__(self, bounds: Bounds, wanted: Callable[[bytes], bool], peek: int) -> None:
        self.bounds = bounds
        self.wanted = wanted
        self.peek = peek
        self.end = 0

    def members(self, source: _Source) -> Iterator[Member]:
        try:
            with tarfile.open(fileobj=source, mode="r|", tarinfo=_Header, ignore_zeros=True,
                              encoding="utf-8", errors="replace") as tf:
                yield from self._members(tf)
        except (tarfile.TarError, EOFError, ValueError):
            return  # damaged or cut: quietly, with what was read (module docstring)
        except RecursionError:
            # `tarfile` recurses once per pax or long-name header before a member.
            raise LimitExceeded("tar headers chained too deep") from None

    def _members(self, tf: tarfile.TarFile) -> Iterator[Member]:
        limits = self.bounds.limits
        count = 0
        while True:
            self.bounds.check_time()
            info = tf.next()
            if info is None:
                return
            count += 1
            if count > limits.max_archive_entries:
                raise LimitExceeded(f"archive has more than {limits.max_archive_entries} entries")
            if info.issparse():
                raise LimitExceeded("a sparse file in a tar archive")
            self.end = tf.offset
            regular = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
            yield Member(info.name, self._read(tf, info) if regular else None)

    def _read(self, tf: tarfile.TarFile, info: tarfile.TarInfo) -> bytes | None:
        """A regular member's bytes when its first bytes are wanted; a member cut short:
        what was read of it. The bytes were charged as the stream was read."""
        out = io.BytesIO()
        try:
            f = tf.extractfile(info)
            if f is None:
                return None
            with f:
                head = f.read(self.peek)
                if not head or not self.wanted(head):
                    return None
                if info.size > self.bounds.limits.max_expansion_bytes:
                    raise LimitExceeded("archive member larger than the expansion limit")
                out.write(head)
                while True:
                    self.bounds.check_time()
                    # `tarfile`'s own buffer size: a cut loses at most one step.
                    chunk = f.read(io.DEFAULT_BUFFER_SIZE)
                    if not chunk:
                        break
                    out.write(chunk)
        except (tarfile.TarError, EOFError, ValueError):
            pass  # cut short or damaged: what was read of it
        data = out.getvalue()
        return data or None

