"""TNEF (`winmail.dat`, `application/ms-tnef`, [MS-OXTNEF]): the enclosed message.

A TNEF stream is a signature, a legacy key and a run of attributes, each with its
level (message or attachment), id, length, data and checksum. The message's
subject is attSubject or PR_SUBJECT inside attMsgProps (the MAPI properties,
[MS-OXTNEF] 2.1.3.4); its bodies attBody, PR_BODY, PR_HTML and PR_RTF_COMPRESSED.
Each attachment starts with attAttachRendData; its names are attAttachTitle and
the PR_ATTACH_*FILENAME properties of attAttachment, its bytes attAttachData or
PR_ATTACH_DATA_BIN/OBJ. An attached message (PR_ATTACH_DATA_OBJ with the
IMessage interface id) is itself a TNEF stream, read recursively. The MAPI
property meanings (subject, bodies, headers) are shared with `msg`.

Why a reader of our own and not tnefparse: tnefparse loops over counts taken
straight from the data (a property count or a multi-value count of 2^32 keeps it
busy for hours), copies the rest of the stream for every attribute (quadratic on
a stream of many small attributes), swallows damaged property lists with a log
line, opens attached messages without a depth bound, and raises a dozen kinds of
exception. The format is small; here every count is checked against the bytes
that remain before it is used, and time and bytes are charged to `Bounds`.

Errors: no signature, or an attribute that runs past the end of the stream,
raises `BadEnclosure`. An attribute whose checksum is wrong is still read (a
client reading it would show it) but makes the enclosure `complete=False`, as
does a damaged property list, body or attached message (an incomplete attached
message makes its parent incomplete too); LimitExceeded beyond the bounds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from gateway.message.documents import msg
from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.enclosure import BadEnclosure, EnclosedFile, Enclosure
from gateway.message.headers import decode_str

SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian

LVL_MESSAGE = 1
LVL_ATTACHMENT = 2

# Attribute ids, low 16 bits of the AttributeID ([MS-OXTNEF] 2.1.3.3); the high
# 16 bits are the attribute's type, which the id already implies.
ATT_SUBJECT = 0x8004
ATT_BODY = 0x800C
ATT_ATTACH_DATA = 0x800F
ATT_ATTACH_TITLE = 0x8010
ATT_ATTACH_TRANSPORT_FILENAME = 0x9001
ATT_ATTACH_REND_DATA = 0x9002
ATT_MSG_PROPS = 0x9003
ATT_ATTACHMENT = 0x9005
ATT_OEM_CODEPAGE = 0x9007

# The interface of an attached message in PR_ATTACH_DATA_OBJ ([MS-OXTNEF] 2.1.3.4.1).
IID_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")
# attAttachRendData AttachType of an OLE object ([MS-OXTNEF] 2.1.3.3.16).
_REND_OLE = 2

# Fixed-size MAPI property types and their value sizes in TNEF ([MS-OXTNEF] 2.1.3.4).
_FIXED = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8,
          0x0007: 8, 0x0014: 8, 0x0040: 8, 0x0048: 16}
_VARIABLE = frozenset({msg.PT_STRING8, msg.PT_UNICODE, msg.PT_BINARY, msg.PT_OBJECT})
_MULTI = 0x1000
_NAMED = 0x8000
_TIME_EVERY = 256  # attributes or properties between deadline checks


def looks_like_tnef(head: bytes) -> bool:
    return head.startswith(SIGNATURE)


class _Damaged(Exception):
    pass


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass
class _Props:
    """attMsgProps or attAttachment: single values by id, and named string properties."""

    values: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    named: list[tuple[bytes, str, int, bytes]] = field(default_factory=list)
    fallback_charset: str | None = None
    bounds: Bounds | None = None

    def _value(self, pid: int, *ptypes: int) -> tuple[int, bytes] | None:
        found = self.values.get(pid)
        if found is None or found[0] not in ptypes:
            return None
        if self.bounds is not None:
            self.bounds.charge(len(found[1]))
        return found

    def string(self, pid: int) -> str | None:
        found = self._value(pid, msg.PT_UNICODE, msg.PT_STRING8)
        return None if found is None else msg.text_of(found[1], found[0], self.charset())

    def binary(self, pid: int) -> bytes | None:
        found = self._value(pid, msg.PT_BINARY)
        return None if found is None else found[1]

    def obj(self, pid: int) -> bytes | None:
        found = self._value(pid, msg.PT_OBJECT)
        return None if found is None else found[1]

    def integer(self, pid: int) -> int | None:
        found = self.values.get(pid)
        if found is None or found[0] != msg.PT_LONG:
            return None
        value: int = struct.unpack_from("<I", found[1])[0]
        return value

    def charset(self) -> str | None:
        codepage = self.integer(msg.PR_MESSAGE_CODEPAGE) or self.integer(msg.PR_INTERNET_CPID)
        return msg.charset_of(codepage) if codepage else self.fallback_charset

    def named_headers(self) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        for guid, name, ptype, value in self.named:
            if guid == msg.PS_INTERNET_HEADERS and ptype in (msg.PT_UNICODE, msg.PT_STRING8):
                if self.bounds is not None:
                    self.bounds.charge(len(value))
                out.append((name, decode_str(msg.text_of(value, ptype, self.charset()))))
        return tuple(out)

    def update(self, other: _Props) -> None:
        # A later property list sets the property again, as it would in a client.
        self.values.update(other.values)
        self.named.extend(other.named)


def _props(data: memoryview, bounds: Bounds) -> tuple[_Props, bool]:
    """A MAPI property list; False when it is damaged (the properties before the damage
    are kept)."""
    props = _Props(bounds=bounds)
    end = len(data)
    pos = 0

    def u32() -> int:
        nonlocal pos
        if pos + 4 > end:
            raise _Damaged("property list truncated")
        (value,) = struct.unpack_from("<I", data, pos)
        pos += 4
        return int(value)

    def take(n: int) -> bytes:
        nonlocal pos
        if n > end - pos:
            raise _Damaged("property value runs past its attribute")
        value = bytes(data[pos:pos + n])
        pos += _pad4(n) if pos + _pad4(n) <= end else n
        return value

    try:
        count = u32()
        # Every property takes at least its 4-byte tag.
        if count > (end - pos) // 4:
            raise _Damaged("more properties than bytes")
        for index in range(count):
            if index % _TIME_EVERY == 0:
                bounds.check_time()
            tag = u32()
            ptype, pid = tag & 0xFFFF, tag >> 16
            guid, name = b"", ""
            if pid >= _NAMED:
                guid = take(16)
                kind = u32()
                if kind == 0:
                    u32()  # a numeric name: not an internet header
                elif kind == 1:
                    length = u32()
                    name = take(length).decode("utf-16-le", errors="replace").rstrip("\x00")
                else:
                    raise _Damaged("unknown property name kind")
            base = ptype & ~_MULTI
            values: list[bytes] = []
            if base in _FIXED:
                n = u32() if ptype & _MULTI else 1
                if n > (end - pos) // _FIXED[base]:
                    raise _Damaged("more values than bytes")
                raw = take(n * _FIXED[base])
                values = [raw[:_FIXED[base]]] if n else []
            elif base in _VARIABLE:
                # Single-valued variable-size properties carry a value count too (1).
                n = u32()
                if n > (end - pos) // 4:
                    raise _Damaged("more values than bytes")
                for _ in range(n):
                    values.append(take(u32()))
            else:
                raise _Damaged(f"unknown property type {ptype:#06x}")
            if ptype & _MULTI or not values:
                continue
            if pid >= _NAMED:
                if name:
                    props.named.append((guid, name, base, values[0]))
            else:
                props.values.setdefault(pid, (base, values[0]))
    except _Damaged:
        return props, False
    return props, True


@dataclass
class _Attachment:
    title: bytes = b""
    transport: bytes = b""
    data: memoryview | None = None
    ole: bool = False
    props: _Props = field(default_factory=_Props)


class _Reader:
    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds

    def read(self, data: memoryview, depth: int) -> Enclosure:
        bounds = self.bounds
        bounds.check_time()
        if len(data) < 6 or bytes(data[:4]) != SIGNATURE:
            raise BadEnclosure("no TNEF signature")
        complete = True
        subject = b""
        # Both attSubject and PR_SUBJECT set the one subject; a client decoding the
        # stream in order shows the one that came last.
        legacy_subject_last = False
        plain: list[bytes] = []
        props = _Props(bounds=bounds)
        oem: str | None = None
        attachments: list[_Attachment] = []
        pos, end, count = 6, len(data), 0
        while pos < end:
            count += 1
            if count % _TIME_EVERY == 0:
                bounds.check_time()
            if end - pos < 11:
                if any(data[pos:]):
                    raise BadEnclosure("TNEF stream ends inside an attribute header")
                break  # zero padding after the last attribute
            level = data[pos]
            attr, length = struct.unpack_from("<II", data, pos + 1)
            start = pos + 9
            if length > end - start - 2:
                raise BadEnclosure("a TNEF attribute runs past the end of the stream")
            value = data[start:start + length]
            (checksum,) = struct.unpack_from("<H", data, start + length)
            pos = start + length + 2
            if sum(value) & 0xFFFF != checksum:
                complete = False
            ident = attr & 0xFFFF
            if level == LVL_MESSAGE:
                if ident == ATT_OEM_CODEPAGE and length >= 4:
                    oem = msg.charset_of(struct.unpack_from("<I", value)[0])
                elif ident == ATT_SUBJECT:
                    subject = bytes(value)
                    legacy_subject_last = True
                elif ident == ATT_BODY:
                    bounds.charge(length)
                    plain.append(bytes(value))
                elif ident == ATT_MSG_PROPS:
                    found, ok = _props(value, bounds)
                    if msg.PR_SUBJECT in found.values:
                        legacy_subject_last = False
                    props.update(found)
                    complete = complete and ok
            elif level == LVL_ATTACHMENT:
                if ident == ATT_ATTACH_REND_DATA or not attachments:
                    if len(attachments) >= bounds.limits.max_archive_entries:
                        raise LimitExceeded(
                            f"more than {bounds.limits.max_archive_entries} attachments")
                    attachments.append(_Attachment(props=_Props(bounds=bounds)))
                current = attachments[-1]
                if ident == ATT_ATTACH_REND_DATA and length >= 2:
                    current.ole = struct.unpack_from("<H", value)[0] == _REND_OLE
                elif ident == ATT_ATTACH_TITLE:
                    current.title = bytes(value)
                elif ident == ATT_ATTACH_TRANSPORT_FILENAME:
                    current.transport = bytes(value)
                elif ident == ATT_ATTACH_DATA:
                    current.data = value
                elif ident == ATT_ATTACHMENT:
                    found, ok = _props(value, bounds)
                    current.props.update(found)
                    complete = complete and ok
            else:
                raise BadEnclosure(f"TNEF attribute of unknown level {level}")
        props.fallback_charset = oem
        parts = msg.message_parts(
            props, bounds, subject=msg.text_of(subject, msg.PT_STRING8, oem),
            plain=tuple(msg.text_of(text, msg.PT_STRING8, oem) for text in plain))
        complete = complete and parts.complete
        if legacy_subject_last:
            parts = replace(parts, subject=msg.text_of(subject, msg.PT_STRING8, oem))
        files: list[EnclosedFile] = []
        for attachment in attachments:
            bounds.check_time()
            attachment.props.fallback_charset = props.charset()
            file, ok = self.attachment(attachment, oem, depth)
            files.append(file)
            complete = complete and ok
        return Enclosure("tnef", parts.subject, parts.bodies, parts.headers, tuple(files),
                         complete)

    def attachment(self, att: _Attachment, oem: str | None, depth: int
                   ) -> tuple[EnclosedFile, bool]:
        props = att.props
        names = msg.distinct(
            props.string(msg.PR_ATTACH_LONG_FILENAME),
            msg.text_of(att.title, msg.PT_STRING8, oem),
            props.string(msg.PR_ATTACH_FILENAME), props.string(msg.PR_DISPLAY_NAME),
            msg.text_of(att.transport, msg.PT_STRING8, oem))
        declared = (props.string(msg.PR_ATTACH_MIME_TAG) or "").strip().lower() or \
            "application/octet-stream"
        method = props.integer(msg.PR_ATTACH_METHOD)
        obj = props.obj(msg.PR_ATTACH_DATA)
        data: bytes | None = None
        if obj is not None:
            iid, payload = obj[:16], obj[16:]
            if iid == IID_IMESSAGE or (method == msg.ATTACH_EMBEDDED_MSG
                                       and payload.startswith(SIGNATURE)):
                return self.embedded(payload, names, declared, depth)
            data = payload
        elif att.data is not None:
            self.bounds.charge(len(att.data))
            data = bytes(att.data)
        else:
            data = props.binary(msg.PR_ATTACH_DATA)
        if data is None:
            missing = method in (msg.ATTACH_BY_VALUE, msg.ATTACH_EMBEDDED_MSG, msg.ATTACH_OLE)
            return EnclosedFile(names, b"", declared), not missing
        if method == msg.ATTACH_EMBEDDED_MSG and data.startswith(SIGNATURE):
            return self.embedded(data, names, declared, depth)
        if method == msg.ATTACH_OLE or (method is None and att.ole):
            return self.ole_object(data, names, declared)
        return EnclosedFile(names, data, declared), True

    def embedded(self, payload: bytes, names: tuple[str, ...], declared: str, depth: int
                 ) -> tuple[EnclosedFile, bool]:
        if depth + 1 > self.bounds.limits.max_archive_depth:
            raise LimitExceeded(
                f"TNEF messages nested deeper than {self.bounds.limits.max_archive_depth}")
        try:
            message = self.read(memoryview(payload), depth + 1)
        except BadEnclosure:  # the attached message is damaged, the rest is not
            return EnclosedFile(names, payload, declared), False
        return EnclosedFile(names, b"", declared, message), message.complete

    def ole_object(self, data: bytes, names: tuple[str, ...], declared: str
                   ) -> tuple[EnclosedFile, bool]:
        """An OLE object (afOle): a compound file; a packaged file inside is unpacked."""
        try:
            package = msg.read_object(data, self.bounds)
        except (BadEnclosure, msg.DamagedPart):
            return EnclosedFile(names, data, declared), False
        if package is None:
            return EnclosedFile(names, data, declared), True
        inner_names, inner = package
        return EnclosedFile(msg.distinct(*names, *inner_names), inner, declared), True


def read(data: bytes, bounds: Bounds) -> Enclosure:
    """Raises BadEnclosure when it cannot be read; LimitExceeded beyond the bounds."""
    try:
        return _Reader(bounds).read(memoryview(data), 0)
    except (BadEnclosure, LimitExceeded):
        raise
    except Exception as e:  # struct and decoding errors on damaged data
        raise BadEnclosure(f"damaged TNEF stream ({type(e).__name__})") from e
