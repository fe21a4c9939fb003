"""Outlook items (`.msg`, [MS-OXMSG] over [MS-CFB]): the enclosed message a mail client shows.

An Outlook item is an OLE compound file: the message's properties are streams
`__substg1.0_IIIITTTT` (property id, property type) and the fixed-size ones sit in
`__properties_version1.0`; each attachment is a storage `__attach_version1.0_#N`,
and an attached Outlook item is a storage `__substg1.0_3701000D` laid out like the
message itself. `read` gives the subject (PR_SUBJECT), the bodies (PR_BODY,
PR_HTML rendered to text, PR_RTF_COMPRESSED reduced to text by `rtf.plain_text`),
the transport headers (PR_TRANSPORT_MESSAGE_HEADERS, plus the internet headers
Outlook keeps as named properties, such as `msip_labels` in a saved draft), and
every attachment: by-value files, attached messages recursively, OLE objects
(a packaged file is unpacked to its name and bytes), and by-reference ones by
name. The message-level part (`message_parts`, compressed RTF, code pages,
headers) is shared with `tnef`, which carries the same MAPI properties.

Why olefile and not extract-msg: extract-msg reads every attachment's bytes and
opens every attached message while it builds its attachment list, with no place
to charge `Bounds` or check the deadline between them, and it renders bodies
through RTFDE and BeautifulSoup on property access. Reading the few properties a
mail client shows straight from the compound file keeps every read bounded: no
stream is read before its declared size has been checked against the file and
charged. Compressed RTF ([MS-OXRTFCP]) is decoded here for the same reason: the
`compressed_rtf` library's decoder has no output bound and no deadline check.

Errors: a file that is not a readable compound file, or whose structure is
damaged, raises `BadEnclosure`; a damaged part (an RTF body that does not
decompress, an OLE object that cannot be unpacked) is skipped and makes the
enclosure `complete=False`, as does an attached message that is itself not
complete (a caller looking only at the outer enclosure still fails closed);
anything beyond the bounds raises `LimitExceeded`.
"""

from __future__ import annotations

import io
import re
import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import Protocol

import olefile

from gateway.message.documents import rtf
from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.enclosure import (
    BadEnclosure,
    BodyKind,
    EnclosedFile,
    Enclosure,
)
from gateway.message.headers import decode_str
from gateway.message.text import decode_bytes, html_to_text

MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Property ids ([MS-OXPROPS]).
PR_SUBJECT = 0x0037
PR_SUBJECT_PREFIX = 0x003D
PR_TRANSPORT_MESSAGE_HEADERS = 0x007D
PR_NORMALIZED_SUBJECT = 0x0E1D
PR_BODY = 0x1000
PR_RTF_COMPRESSED = 0x1009
PR_HTML = 0x1013
PR_DISPLAY_NAME = 0x3001
PR_ATTACH_DATA = 0x3701  # PR_ATTACH_DATA_BIN (binary) or PR_ATTACH_DATA_OBJ (object)
PR_ATTACH_FILENAME = 0x3704
PR_ATTACH_METHOD = 0x3705
PR_ATTACH_LONG_FILENAME = 0x3707
PR_ATTACH_PATHNAME = 0x3708
PR_ATTACH_LONG_PATHNAME = 0x370D
PR_ATTACH_MIME_TAG = 0x370E
PR_INTERNET_CPID = 0x3FDE
PR_MESSAGE_CODEPAGE = 0x3FFD

# Property types.
PT_LONG = 0x0003
PT_OBJECT = 0x000D
PT_STRING8 = 0x001E
PT_UNICODE = 0x001F
PT_BINARY = 0x0102

# PidTagAttachMethod values ([MS-OXCMSG] 2.2.2.9).
ATTACH_BY_VALUE = 1
ATTACH_EMBEDDED_MSG = 5
ATTACH_OLE = 6

# Named properties Outlook keeps internet headers in ([MS-OXPROPS] 1.3.2).
PS_INTERNET_HEADERS = uuid.UUID("00020386-0000-0000-c000-000000000046").bytes_le

_PROPERTIES = "__properties_version1.0"
_ATTACH_PREFIX = "__attach_version1.0_#"
_NAMEID = "__nameid_version1.0"
_EMBEDDED = "__substg1.0_3701000D"
_OLE_NATIVE = "\x01Ole10Native"
# Streams of an OLE object storage that hold a whole file: an OOXML package, and the
# native data of many servers (Acrobat's PDF objects).
_OBJECT_FILE_STREAMS = ("Package", "CONTENTS")

# [MS-OXMSG] 2.4.1: the property stream header of the top-level message, of an
# attached message, and of an attachment or recipient storage.
HEADER_TOP = 32
HEADER_EMBEDDED = 24
HEADER_ATTACHMENT = 8

# Code pages whose Python codec is not called "cp<number>".
_CODEPAGES = {
    65001: "utf-8", 65000: "utf-7", 1200: "utf-16-le", 1201: "utf-16-be",
    20127: "us-ascii", 20866: "koi8-r", 21866: "koi8-u", 50220: "iso2022_jp",
    50221: "iso2022_jp", 50222: "iso2022_jp", 51932: "euc_jp", 51949: "euc_kr",
    52936: "hz", 54936: "gb18030", 936: "gbk", 10000: "mac-roman",
    **{28590 + n: f"iso-8859-{n}" for n in range(1, 16)},
}


class DamagedPart(Exception):
    """One part of an enclosed message cannot be read; the rest can."""


# -- shared with tnef: MAPI property values ---------------------------------------------

def charset_of(codepage: int | None) -> str | None:
    """The Python codec name of a Windows code page (None when there is none)."""
    if not codepage or codepage < 0:
        return None
    return _CODEPAGES.get(codepage, f"cp{codepage}")


def text_of(raw: bytes, ptype: int, charset: str | None) -> str:
    """A PT_UNICODE (UTF-16LE) or PT_STRING8 (code page) value, its terminator dropped."""
    if ptype == PT_UNICODE:
        return raw.decode("utf-16-le", errors="replace").rstrip("\x00")
    return decode_bytes(raw.rstrip(b"\x00"), charset)


def distinct(*names: str | None) -> tuple[str, ...]:
    """Names in order, stripped, without empty ones or repeats."""
    out: list[str] = []
    for name in names:
        clean = (name or "").strip().rstrip("\x00").strip()
        if clean and clean not in out:
            out.append(clean)
    return tuple(out)


_HEADER_FIELD = re.compile(r"^([!-9;-~]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)
_BLANK_LINE = re.compile(r"\r?\n\r?\n")


def header_pairs(text: str, bounds: Bounds) -> tuple[tuple[str, str], ...]:
    """(name, value) of a header block (PR_TRANSPORT_MESSAGE_HEADERS), unfolded and
    RFC 2047-decoded. Exchange may put a line that is not a field first
    (`Microsoft Mail Internet Headers Version 2.0`): lines that are not fields are
    passed over rather than ending the block."""
    if len(text) > bounds.limits.max_header_bytes:
        raise LimitExceeded(
            f"enclosed message headers over {bounds.limits.max_header_bytes} bytes")
    end = _BLANK_LINE.search(text)
    block = text[:end.start()] if end else text
    return tuple((m.group(1), decode_str(m.group(2))) for m in _HEADER_FIELD.finditer(block))


_RTF_DICT = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss "
    b"\\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier"
    b"{\\colortbl\\red0\\green0\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx")
_RTF_LZFU = b"LZFu"
_RTF_MELA = b"MELA"
# LZFu's densest input: a control byte and eight 2-byte references of 17 bytes each
# (136 bytes out of 17). A RawSize beyond that cannot come from the data.
_RTF_MAX_RATIO = 8
_RTF_TIME_EVERY = 4096  # control bytes between deadline checks


def rtf_crc(data: bytes) -> int:
    """[MS-OXRTFCP] 2.1.3.2: CRC-32 with initial value 0 and no final inversion, which is
    zlib's CRC-32 with both inversions undone."""
    return zlib.crc32(data, 0xFFFFFFFF) ^ 0xFFFFFFFF


def decompress_rtf(data: bytes, bounds: Bounds) -> bytes:
    """PR_RTF_COMPRESSED ([MS-OXRTFCP]) to RTF; DamagedPart when it is not valid."""
    if len(data) < 16:
        raise DamagedPart("compressed RTF shorter than its header")
    comp_size, raw_size, magic, crc = struct.unpack_from("<II4sI", data)
    # CompSize counts from the RawSize field on: the whole stream less 4 bytes.
    if comp_size < 12 or comp_size + 4 > len(data):
        raise DamagedPart("compressed RTF size runs past the stream")
    body = data[16:comp_size + 4]
    if magic == _RTF_MELA:
        if raw_size > len(body):
            raise DamagedPart("uncompressed RTF shorter than its RawSize")
        bounds.charge(raw_size)
        return body[:raw_size]
    if magic != _RTF_LZFU:
        raise DamagedPart("unknown RTF compression")
    if rtf_crc(body) != crc:
        raise DamagedPart("compressed RTF CRC mismatch")
    if raw_size > _RTF_MAX_RATIO * len(body) + 16:
        raise DamagedPart("compressed RTF RawSize beyond what its data can give")
    bounds.charge(raw_size)
    return _lzfu(body, raw_size, bounds)


def _lzfu(body: bytes, raw_size: int, bounds: Bounds) -> bytes:
    window = bytearray(_RTF_DICT + b" " * (4096 - len(_RTF_DICT)))
    write = len(_RTF_DICT)
    out = bytearray()
    pos, end = 0, len(body)
    controls = 0
    while pos < end:
        control = body[pos]
        pos += 1
        controls += 1
        if controls % _RTF_TIME_EVERY == 0:
            bounds.check_time()
        for bit in range(8):
            if pos >= end:
                break
            if control & (1 << bit):
                if pos + 2 > end:
                    pos = end
                    break
                token = (body[pos] << 8) | body[pos + 1]
                pos += 2
                offset = token >> 4
                if offset == write:  # the end marker
                    return bytes(out)
                for step in range(offset, offset + (token & 0xF) + 2):
                    byte = window[step & 0xFFF]
                    out.append(byte)
                    window[write] = byte
                    write = (write + 1) & 0xFFF
            else:
                byte = body[pos]
                pos += 1
                out.append(byte)
                window[write] = byte
                write = (write + 1) & 0xFFF
        if len(out) > raw_size:
            raise DamagedPart("compressed RTF longer than its RawSize")
    return bytes(out)


class Properties(Protocol):
    """The MAPI properties of one message, as a container (.msg, TNEF) stores them."""

    def string(self, pid: int) -> str | None: ...

    def binary(self, pid: int) -> bytes | None: ...

    def integer(self, pid: int) -> int | None: ...

    def charset(self) -> str | None: ...

    def named_headers(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True)
class MessageParts:
    subject: str
    bodies: tuple[tuple[BodyKind, str], ...]
    headers: tuple[tuple[str, str], ...]
    complete: bool


def message_parts(props: Properties, bounds: Bounds, *, subject: str = "",
                  plain: tuple[str, ...] = ()) -> MessageParts:
    """Subject, bodies and headers of a message's properties. `subject` and `plain`:
    what the container says besides (TNEF's attSubject and attBody)."""
    complete = True
    found = props.string(PR_SUBJECT)
    if found is None:
        normalized = props.string(PR_NORMALIZED_SUBJECT)
        if normalized is not None:
            found = (props.string(PR_SUBJECT_PREFIX) or "") + normalized
    bodies: list[tuple[BodyKind, str]] = [("plain", text) for text in plain]
    body = props.string(PR_BODY)
    if body is not None:
        bodies.append(("plain", body))
    html = props.binary(PR_HTML)
    if html is not None:
        cpid = props.integer(PR_INTERNET_CPID)
        bodies.append(("html", html_to_text(decode_bytes(
            html, charset_of(cpid) if cpid else props.charset()))[0]))
    else:
        html_text = props.string(PR_HTML)
        if html_text is not None:
            bodies.append(("html", html_to_text(html_text)[0]))
    compressed = props.binary(PR_RTF_COMPRESSED)
    if compressed is not None:
        try:
            bodies.append(("rtf", rtf.plain_text(decompress_rtf(compressed, bounds), bounds)))
        except LimitExceeded:
            raise
        except Exception:  # a damaged RTF body, or a reader fault: not vouched for
            complete = False
    headers: list[tuple[str, str]] = []
    transport = props.string(PR_TRANSPORT_MESSAGE_HEADERS)
    if transport:
        headers.extend(header_pairs(transport, bounds))
    for pair in props.named_headers():
        if pair not in headers:
            headers.append(pair)
    unique: list[tuple[BodyKind, str]] = []
    for item in bodies:
        if item not in unique:
            unique.append(item)
    return MessageParts(found if found is not None else subject, tuple(unique),
                        tuple(headers), complete)


def package_file(native: bytes, charset: str | None = None) -> tuple[tuple[str, ...], bytes]:
    """The name(s) and bytes of a file packaged in an OLE object (the `\\x01Ole10Native`
    stream of Windows Packager, [MS-OLEDS] 2.3.6 with the Packager's own payload)."""
    pos = 6  # NativeDataSize (4) and a 16-bit type

    def cstring() -> str:
        nonlocal pos
        end = native.find(b"\x00", pos)
        if end < 0:
            raise DamagedPart("packaged file name without its terminator")
        text = decode_bytes(native[pos:end], charset)
        pos = end + 1
        return text

    if len(native) < pos:
        raise DamagedPart("packaged file shorter than its header")
    label = cstring()
    source = cstring()
    pos += 8
    temp = cstring()
    if pos + 4 > len(native):
        raise DamagedPart("packaged file without its size")
    (size,) = struct.unpack_from("<I", native, pos)
    pos += 4
    if pos + size > len(native):
        raise DamagedPart("packaged file size runs past the stream")

    def base(path: str) -> str:
        return re.split(r"[\\/]", path)[-1]

    return distinct(label, base(source), base(temp)), native[pos:pos + size]


def _names_from_path(*paths: str | None) -> tuple[str, ...]:
    return distinct(*(re.split(r"[\\/]", p)[-1] for p in paths if p))


# -- the compound file ---------------------------------------------------------------------

class _Reader:
    """One compound file, read under one `Bounds`."""

    def __init__(self, ole: olefile.OleFileIO, size: int, bounds: Bounds) -> None:
        self.ole = ole
        self.size = size
        self.bounds = bounds
        self.named: tuple[tuple[int, str], ...] = ()

    def read_stream(self, path: list[str], entry: olefile.olefile.OleDirectoryEntry) -> bytes:
        # A stream's declared size is checked against the file before anything is read:
        # olefile follows a FAT chain for as many sectors as the size claims.
        if entry.size > self.size:
            raise BadEnclosure("a stream is larger than the file")
        self.bounds.charge(entry.size)
        data: bytes = self.ole.openstream(path).read()
        if len(data) != entry.size:
            raise BadEnclosure("a stream is shorter than its declared size")
        self._check_chain(entry)
        return data

    def _check_chain(self, entry: olefile.olefile.OleDirectoryEntry) -> None:
        # olefile follows a chain for as many sectors as the size claims, even round a
        # loop: a looping chain reads the same sectors again as if they were the stream.
        if entry.size == 0:
            return
        mini = entry.size < self.ole.minisectorcutoff
        table = self.ole.minifat if mini else self.ole.fat
        unit = self.ole.minisectorsize if mini else self.ole.sectorsize
        sector = entry.isectStart
        seen: set[int] = set()
        for _ in range(-(-entry.size // unit)):
            if sector in seen or not 0 <= sector < len(table):
                raise BadEnclosure("a stream's sector chain loops or leaves the file")
            seen.add(sector)
            sector = table[sector]

    def load_named(self, root: _Storage) -> None:
        """The internet headers Outlook stored as named properties ([MS-OXMSG] 2.2.3):
        (property id, header name) of every PS_INTERNET_HEADERS string name."""
        nameid = root.storage(_NAMEID)
        if nameid is None:
            return
        guids = nameid.stream("__substg1.0_00020102") or b""
        entries = nameid.stream("__substg1.0_00030102") or b""
        names = nameid.stream("__substg1.0_00040102") or b""
        found: list[tuple[int, str]] = []
        for index in range(len(entries) // 8):
            if index % 1024 == 0:
                self.bounds.check_time()
            ident, info = struct.unpack_from("<II", entries, 8 * index)
            guid_index = (info >> 1) & 0x7FFF
            if not info & 1 or guid_index < 3:  # numeric name, or PS_MAPI/PS_PUBLIC_STRINGS
                continue
            guid = guids[16 * (guid_index - 3):16 * (guid_index - 2)]
            if guid != PS_INTERNET_HEADERS or ident + 4 > len(names):
                continue
            (length,) = struct.unpack_from("<I", names, ident)
            name = names[ident + 4:ident + 4 + length].decode("utf-16-le", errors="replace")
            if name:
                found.append((0x8000 + (info >> 16), name))
        self.named = tuple(found)


class _Storage:
    """A storage holding a property set: the message, an attachment, an attached message."""

    def __init__(self, reader: _Reader, path: list[str],
                 entry: olefile.olefile.OleDirectoryEntry, header: int,
                 charset: str | None = None) -> None:
        self.reader = reader
        self.path = path
        self.entry = entry
        self.fixed: dict[int, tuple[int, bytes]] = {}
        raw = self.stream(_PROPERTIES)
        if raw is not None:
            for offset in range(header, len(raw) - 15, 16):
                if offset % 65536 == header:
                    reader.bounds.check_time()
                tag = struct.unpack_from("<I", raw, offset)[0]
                self.fixed.setdefault(tag >> 16, (tag & 0xFFFF, raw[offset + 8:offset + 16]))
        codepage = self.integer(PR_MESSAGE_CODEPAGE) or self.integer(PR_INTERNET_CPID)
        self._charset = charset_of(codepage) if codepage else charset

    def child(self, name: str) -> olefile.olefile.OleDirectoryEntry | None:
        kid: olefile.olefile.OleDirectoryEntry | None = self.entry.kids_dict.get(name.lower())
        return kid

    def stream(self, name: str) -> bytes | None:
        kid = self.child(name)
        if kid is None or kid.entry_type != olefile.STGTY_STREAM:
            return None
        return self.reader.read_stream([*self.path, kid.name], kid)

    def storage(self, name: str, header: int = 0) -> _Storage | None:
        kid = self.child(name)
        if kid is None or kid.entry_type != olefile.STGTY_STORAGE:
            return None
        return _Storage(self.reader, [*self.path, kid.name], kid, header, self._charset)

    def has_stream(self, name: str) -> bool:
        kid = self.child(name)
        return kid is not None and kid.entry_type == olefile.STGTY_STREAM

    # Properties

    def string(self, pid: int) -> str | None:
        for ptype in (PT_UNICODE, PT_STRING8):
            raw = self.stream(f"__substg1.0_{pid:04X}{ptype:04X}")
            if raw is not None:
                return text_of(raw, ptype, self._charset)
        return None

    def binary(self, pid: int) -> bytes | None:
        return self.stream(f"__substg1.0_{pid:04X}{PT_BINARY:04X}")

    def integer(self, pid: int) -> int | None:
        found = self.fixed.get(pid)
        if found is None or found[0] != PT_LONG:
            return None
        value: int = struct.unpack_from("<I", found[1])[0]
        return value

    def charset(self) -> str | None:
        return self._charset

    def named_headers(self) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for pid, name in self.reader.named:
            value = self.string(pid)
            if value is not None:
                out.append((name, decode_str(value)))
        return tuple(out)


def _message(storage: _Storage, depth: int) -> Enclosure:
    bounds = storage.reader.bounds
    bounds.check_time()
    parts = message_parts(storage, bounds)
    complete = parts.complete
    files: list[EnclosedFile] = []
    kids = sorted((k for k in storage.entry.kids
                   if k.entry_type == olefile.STGTY_STORAGE
                   and k.name.lower().startswith(_ATTACH_PREFIX)), key=lambda k: k.name)
    if len(kids) > bounds.limits.max_archive_entries:
        raise LimitExceeded(f"more than {bounds.limits.max_archive_entries} attachments")
    for kid in kids:
        bounds.check_time()
        attachment = storage.storage(kid.name, HEADER_ATTACHMENT)
        if attachment is None:
            continue
        file, ok = _attachment(attachment, depth)
        files.append(file)
        complete = complete and ok
    return Enclosure("msg", parts.subject, parts.bodies, parts.headers, tuple(files), complete)


def _attachment(att: _Storage, depth: int) -> tuple[EnclosedFile, bool]:
    """The file, and whether all of it could be read."""
    bounds = att.reader.bounds
    method = att.integer(PR_ATTACH_METHOD)
    names = distinct(att.string(PR_ATTACH_LONG_FILENAME), att.string(PR_ATTACH_FILENAME),
                     att.string(PR_DISPLAY_NAME))
    declared = (att.string(PR_ATTACH_MIME_TAG) or "").strip().lower() or \
        "application/octet-stream"
    entry = att.child(_EMBEDDED)
    if entry is not None and entry.entry_type == olefile.STGTY_STORAGE:
        # An attached Outlook item has a property stream; an OLE object's storage has
        # its server's streams instead.
        if method != ATTACH_OLE and _PROPERTIES.lower() in entry.kids_dict:
            if depth + 1 > bounds.limits.max_archive_depth:
                raise LimitExceeded(
                    f"Outlook items nested deeper than {bounds.limits.max_archive_depth}")
            inner = att.storage(_EMBEDDED, HEADER_EMBEDDED)
            assert inner is not None
            message = _message(inner, depth + 1)
            return EnclosedFile(names, b"", declared, message), message.complete
        obj = att.storage(_EMBEDDED)
        assert obj is not None
        return _ole_object(obj, names, declared)
    data = att.binary(PR_ATTACH_DATA)
    if data is None:
        if not names:
            names = _names_from_path(att.string(PR_ATTACH_LONG_PATHNAME),
                                     att.string(PR_ATTACH_PATHNAME))
        # By reference (2, 3, 4) or on the web (7): the bytes are not in the message,
        # so nothing was skipped. By value or embedded without its data: damaged.
        missing = method in (ATTACH_BY_VALUE, ATTACH_EMBEDDED_MSG, ATTACH_OLE)
        return EnclosedFile(names, b"", declared), not missing
    return EnclosedFile(names, data, declared), True


def _ole_object(obj: _Storage, names: tuple[str, ...], declared: str
                ) -> tuple[EnclosedFile, bool]:
    """An OLE object attachment (afStorage): the file it carries, where there is one."""
    native = obj.stream(_OLE_NATIVE)
    if native is not None:
        try:
            inner_names, data = package_file(native, obj.charset())
        except DamagedPart:
            return EnclosedFile(names, b"", declared), False
        return EnclosedFile(distinct(*names, *inner_names), data, declared), True
    for name in _OBJECT_FILE_STREAMS:
        content = obj.stream(name)
        if content is not None:
            return EnclosedFile(names, content, declared), True
    # A server's own storage (a Word 97 document object...) is no file on its own;
    # turning it back into one would need a compound file writer.
    return EnclosedFile(names, b"", declared), False


def _open(data: bytes) -> olefile.OleFileIO:
    try:
        # DEFECT_INCORRECT: a structure that breaks [MS-CFB] (a stream longer than its
        # FAT chain, an entry referenced twice) is damage, not something to read around.
        return olefile.OleFileIO(io.BytesIO(data), raise_defects=olefile.DEFECT_INCORRECT)
    except Exception as e:  # olefile raises OSError, OleFileError, struct.error...
        raise BadEnclosure(f"not a readable compound file ({type(e).__name__})") from e


def looks_like_msg(data: bytes) -> bool:
    """An OLE compound file with the `__properties_version1.0` stream of an Outlook item."""
    if not data.startswith(MAGIC):
        return False
    try:
        # Lenient here: a damaged Outlook item is still one, and `read` says it is damaged.
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception:  # not a compound file olefile can open at all
        return False
    try:
        entry = ole.root.kids_dict.get(_PROPERTIES.lower())
        return entry is not None and entry.entry_type == olefile.STGTY_STREAM
    except Exception:
        return False
    finally:
        ole.close()


def read(data: bytes, bounds: Bounds) -> Enclosure:
    """Raises BadEnclosure when it cannot be read; LimitExceeded beyond the bounds."""
    bounds.check_time()
    ole = _open(data)
    try:
        reader = _Reader(ole, len(data), bounds)
        root = _Storage(reader, [], ole.root, HEADER_TOP)
        if not root.has_stream(_PROPERTIES):
            raise BadEnclosure("no __properties_version1.0: not an Outlook item")
        reader.load_named(root)
        return _message(root, 0)
    except (BadEnclosure, LimitExceeded):
        raise
    except Exception as e:  # olefile and struct errors on a damaged file
        raise BadEnclosure(f"damaged Outlook item ({type(e).__name__})") from e
    finally:
        ole.close()


def read_object(data: bytes, bounds: Bounds) -> tuple[tuple[str, ...], bytes] | None:
    """The packaged file inside an OLE object serialised as a compound file (TNEF's
    PR_ATTACH_DATA_OBJ of an afStorage attachment); None when it holds no package."""
    if not data.startswith(MAGIC):
        return None
    ole = _open(data)
    try:
        reader = _Reader(ole, len(data), bounds)
        root = _Storage(reader, [], ole.root, 0)
        native = root.stream(_OLE_NATIVE)
        return None if native is None else package_file(native)
    except (BadEnclosure, LimitExceeded, DamagedPart):
        raise
    except Exception as e:
        raise BadEnclosure(f"damaged OLE object ({type(e).__name__})") from e
    finally:
        ole.close()
