"""The Sendmail milter protocol (version 6) as bytes in, typed values out: no sockets here.

A packet is a 4-byte big-endian length (counting the command byte), one command
byte and the payload. `Decoder` frames a byte stream into packets and parses
them; `parse_command`/`encode_command` cover what the MTA sends (the gateway
reads these; the tests' client writes them) and `parse_reply`/`encode_reply`
what the filter answers. Every malformed or oversized packet raises
`ProtocolError`: the server then drops the connection and the MTA applies its
`milter_default_action` (which the README tells admins to set to tempfail).

Limits: a packet may carry at most `MAX_PAYLOAD` bytes, checked on the length
field before anything is buffered (a length of 2**32-1 is refused at once, never
waited for). We never offer the larger body chunk sizes of SMFIP_MDS_256K/1M, so an
MTA sends body chunks of at most 65535 bytes; the rest of the room is for long
header fields. Macro packets are smaller still: at most `MAX_MACRO_PAYLOAD` bytes in
all and `MAX_MACRO_VALUE` for one value, anything larger is not an MTA's macros
but a broken or hostile peer. (The header block of a message is bounded by the
server, against `limits.max_header_bytes`, with a refusal rather than a drop.)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

VERSION = 6
MAX_PAYLOAD = 128 * 1024
# Postfix and Sendmail send a few dozen short macros per stage (names, addresses, a
# queue id, TLS and SASL details), a few KiB at most; 64 KiB leaves room for long
# certificate subjects while a peer cannot make us hold much more per connection.
MAX_MACRO_PAYLOAD = 64 * 1024
# One macro value: the longest real ones (a TLS peer's subject or issuer, a SASL
# login) are well under this.
MAX_MACRO_VALUE = 8 * 1024

# Actions the filter may take (SMFIF_*).
SMFIF_ADDHDRS = 0x01
SMFIF_CHGBODY = 0x02
SMFIF_ADDRCPT = 0x04
SMFIF_DELRCPT = 0x08
SMFIF_CHGHDRS = 0x10
SMFIF_QUARANTINE = 0x20

# Protocol steps (SMFIP_*): what the MTA may leave out or not wait for.
SMFIP_NOCONNECT = 0x01
SMFIP_NOHELO = 0x02
SMFIP_NOMAIL = 0x04
SMFIP_NORCPT = 0x08
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NOHREPL = 0x80  # no reply to each header (SMFIP_NR_HDR)
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200
SMFIP_SKIP = 0x400
SMFIP_RCPT_REJ = 0x800
SMFIP_HDR_LEADSPC = 0x100000  # header values keep their leading space

# Command codes (MTA -> filter).
SMFIC_ABORT = b"A"
SMFIC_BODY = b"B"
SMFIC_CONNECT = b"C"
SMFIC_MACRO = b"D"
SMFIC_BODYEOB = b"E"
SMFIC_HELO = b"H"
SMFIC_QUIT_NC = b"K"
SMFIC_HEADER = b"L"
SMFIC_MAIL = b"M"
SMFIC_EOH = b"N"
SMFIC_OPTNEG = b"O"
SMFIC_QUIT = b"Q"
SMFIC_RCPT = b"R"
SMFIC_DATA = b"T"
SMFIC_UNKNOWN = b"U"

# Reply codes (filter -> MTA).
SMFIR_ADDRCPT = b"+"
SMFIR_DELRCPT = b"-"
SMFIR_ACCEPT = b"a"
SMFIR_CONTINUE = b"c"
SMFIR_DISCARD = b"d"
SMFIR_ADDHEADER = b"h"
SMFIR_INSHEADER = b"i"
SMFIR_CHGHEADER = b"m"
SMFIR_PROGRESS = b"p"
SMFIR_REJECT = b"r"
SMFIR_TEMPFAIL = b"t"
SMFIR_REPLYCODE = b"y"
SMFIR_OPTNEG = b"O"


class ProtocolError(Exception):
    """The peer broke the milter protocol; the connection cannot continue."""


# -- commands ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OptNeg:
    version: int
    actions: int
    protocol: int


@dataclass(frozen=True)
class Macro:
    for_command: bytes  # the command these macros belong to, e.g. b"C"
    macros: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Connect:
    hostname: str
    family: str  # '4', '6', 'L' (unix socket) or 'U' (unknown)
    port: int
    address: str


@dataclass(frozen=True)
class Helo:
    name: str


@dataclass(frozen=True)
class Mail:
    args: tuple[str, ...]  # the path first (`<a@b>`), then ESMTP parameters


@dataclass(frozen=True)
class Rcpt:
    args: tuple[str, ...]


@dataclass(frozen=True)
class Data:
    pass


@dataclass(frozen=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True)
class EndOfHeaders:
    pass


@dataclass(frozen=True)
class Body:
    chunk: bytes


@dataclass(frozen=True)
class EndOfBody:
    chunk: bytes = b""  # a last body piece may ride on the end-of-body packet


@dataclass(frozen=True)
class Abort:
    pass


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class QuitNewConnection:
    pass


@dataclass(frozen=True)
class Unknown:
    command: str


Command = (OptNeg | Macro | Connect | Helo | Mail | Rcpt | Data | Header | EndOfHeaders
           | Body | EndOfBody | Abort | Quit | QuitNewConnection | Unknown)

# -- replies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Continue:
    pass


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class Reject:
    pass


@dataclass(frozen=True)
class Tempfail:
    pass


@dataclass(frozen=True)
class ReplyCode:
    text: str  # the whole SMTP reply, lines joined by CRLF, e.g. "550-5.7.1 a\r\n550 5.7.1 b"


@dataclass(frozen=True)
class AddHeader:
    name: str
    value: str


@dataclass(frozen=True)
class InsertHeader:
    index: int
    name: str
    value: str


@dataclass(frozen=True)
class ChangeHeader:
    index: int  # 1 = the first field of that name
    name: str
    value: str  # '' deletes the field


@dataclass(frozen=True)
class Progress:
    pass


@dataclass(frozen=True)
class OptNegReply:
    version: int
    actions: int
    protocol: int


Reply = (Continue | Accept | Reject | Tempfail | ReplyCode | AddHeader | InsertHeader
         | ChangeHeader | Progress | OptNegReply)

# -- framing ----------------------------------------------------------------------------


def packet(code: bytes, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes over {MAX_PAYLOAD}")
    return struct.pack(">I", len(payload) + 1) + code + payload


@dataclass
class Framer:
    """Cuts a byte stream into (code, payload) packets, holding at most one packet."""

    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buf += data
        out: list[tuple[bytes, bytes]] = []
        while len(self._buf) >= 4:
            (length,) = struct.unpack(">I", self._buf[:4])
            if length < 1:
                raise ProtocolError("empty packet")
            if length - 1 > MAX_PAYLOAD:
                raise ProtocolError(f"packet of {length} bytes over the limit")
            if len(self._buf) < 4 + length:
                break
            code = bytes(self._buf[4:5])
            payload = bytes(self._buf[5:4 + length])
            del self._buf[:4 + length]
            out.append((code, payload))
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def _text(data: bytes) -> str:
    # Addresses and header values may be UTF-8 (SMTPUTF8) or stray 8-bit: keep every byte.
    return data.decode("utf-8", errors="surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _cstrings(payload: bytes, what: str) -> list[str]:
    """NUL-terminated strings filling the whole payload."""
    if not payload.endswith(b"\0"):
        raise ProtocolError(f"{what}: strings not NUL-terminated")
    return [_text(p) for p in payload[:-1].split(b"\0")]


def _cstring(payload: bytes, what: str) -> str:
    parts = _cstrings(payload, what)
    if len(parts) != 1:
        raise ProtocolError(f"{what}: expected one string")
    return parts[0]


def _empty(payload: bytes, what: str) -> None:
    if payload:
        raise ProtocolError(f"{what}: unexpected payload")


def parse_command(code: bytes, payload: bytes) -> Command:
    """One MTA packet as a typed command."""
    if code == SMFIC_OPTNEG:
        if len(payload) < 12:
            raise ProtocolError("OPTNEG: short packet")
        version, actions, protocol = struct.unpack(">III", payload[:12])
        return OptNeg(version, actions, protocol)
    if code == SMFIC_MACRO:
        if not payload:
            raise ProtocolError("MACRO: no command code")
        if len(payload) > MAX_MACRO_PAYLOAD:
            raise ProtocolError(f"MACRO: {len(payload)} bytes over {MAX_MACRO_PAYLOAD}")
        pairs: list[tuple[str, str]] = []
        if len(payload) > 1:
            parts = _cstrings(payload[1:], "MACRO")
            if len(parts) % 2:
                raise ProtocolError("MACRO: a name without a value")
            longest = max(len(_bytes(v)) for v in parts[1::2])
            if longest > MAX_MACRO_VALUE:
                raise ProtocolError(f"MACRO: a value of {longest} bytes over "
                                    f"{MAX_MACRO_VALUE}")
            pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
        return Macro(payload[:1], tuple(pairs))
    if code == SMFIC_CONNECT:
        nul = payload.find(b"\0")
        if nul < 0 or nul + 1 >= len(payload):
            raise ProtocolError("CONNECT: short packet")
        hostname = _text(payload[:nul])
        family = chr(payload[nul + 1])
        rest = payload[nul + 2:]
        if family == "U":
            return Connect(hostname, family, 0, "")
        if family not in "46L" or len(rest) < 3:
            raise ProtocolError("CONNECT: bad family or address")
        (port,) = struct.unpack(">H", rest[:2])
        return Connect(hostname, family, port, _cstring(rest[2:], "CONNECT"))
    if code == SMFIC_HELO:
        return Helo(_cstring(payload, "HELO"))
    if code == SMFIC_MAIL:
        return Mail(tuple(_cstrings(payload, "MAIL")))
    if code == SMFIC_RCPT:
        return Rcpt(tuple(_cstrings(payload, "RCPT")))
    if code == SMFIC_DATA:
        _empty(payload, "DATA")
        return Data()
    if code == SMFIC_HEADER:
        parts = _cstrings(payload, "HEADER")
        if len(parts) != 2 or not parts[0]:
            raise ProtocolError("HEADER: expected a name and a value")
        return Header(parts[0], parts[1])
    if code == SMFIC_EOH:
        _empty(payload, "EOH")
        return EndOfHeaders()
    if code == SMFIC_BODY:
        return Body(payload)
    if code == SMFIC_BODYEOB:
        return EndOfBody(payload)
    if code == SMFIC_ABORT:
        _empty(payload, "ABORT")
        return Abort()
    if code == SMFIC_QUIT:
        _empty(payload, "QUIT")
        return Quit()
    if code == SMFIC_QUIT_NC:
        _empty(payload, "QUIT_NC")
        return QuitNewConnection()
    if code == SMFIC_UNKNOWN:
        return Unknown(_cstring(payload, "UNKNOWN"))
    raise ProtocolError(f"unknown command code {code!r}")


def encode_command(cmd: Command) -> bytes:
    """The packet for a command (the MTA side: used by the tests' client)."""
    if isinstance(cmd, OptNeg):
        return packet(SMFIC_OPTNEG, struct.pack(">III", cmd.version, cmd.actions, cmd.protocol))
    if isinstance(cmd, Macro):
        body = b"".join(_bytes(n) + b"\0" + _bytes(v) + b"\0" for n, v in cmd.macros)
        return packet(SMFIC_MACRO, cmd.for_command[:1] + body)
    if isinstance(cmd, Connect):
        payload = _bytes(cmd.hostname) + b"\0" + cmd.family.encode("ascii")
        if cmd.family != "U":
            payload += struct.pack(">H", cmd.port) + _bytes(cmd.address) + b"\0"
        return packet(SMFIC_CONNECT, payload)
    if isinstance(cmd, Helo):
        return packet(SMFIC_HELO, _bytes(cmd.name) + b"\0")
    if isinstance(cmd, Mail | Rcpt):
        code = SMFIC_MAIL if isinstance(cmd, Mail) else SMFIC_RCPT
        return packet(code, b"".join(_bytes(a) + b"\0" for a in cmd.args))
    if isinstance(cmd, Header):
        return packet(SMFIC_HEADER, _bytes(cmd.name) + b"\0" + _bytes(cmd.value) + b"\0")
    if isinstance(cmd, Body):
        return packet(SMFIC_BODY, cmd.chunk)
    if isinstance(cmd, EndOfBody):
        return packet(SMFIC_BODYEOB, cmd.chunk)
    if isinstance(cmd, Unknown):
        return packet(SMFIC_UNKNOWN, _bytes(cmd.command) + b"\0")
    simple = {Data: SMFIC_DATA, EndOfHeaders: SMFIC_EOH, Abort: SMFIC_ABORT, Quit: SMFIC_QUIT,
              QuitNewConnection: SMFIC_QUIT_NC}
    return packet(simple[type(cmd)])


def escape_percent(text: str) -> str:
    """libmilter's smfi_setmlreply passes the text through a printf: '%' must be doubled."""
    return text.replace("%", "%%")


def encode_reply(reply: Reply) -> bytes:
    """The packet for a filter reply."""
    if isinstance(reply, ReplyCode):
        text = reply.text
        if "\0" in text or not text[:3].isdigit() or text[0] not in "45":
            raise ValueError("REPLYCODE needs a 4xx/5xx reply without NUL")
        return packet(SMFIR_REPLYCODE, _bytes(escape_percent(text)) + b"\0")
    if isinstance(reply, AddHeader):
        return packet(SMFIR_ADDHEADER, _bytes(reply.name) + b"\0" + _bytes(reply.value) + b"\0")
    if isinstance(reply, InsertHeader | ChangeHeader):
        code = SMFIR_INSHEADER if isinstance(reply, InsertHeader) else SMFIR_CHGHEADER
        return packet(code, struct.pack(">I", reply.index) + _bytes(reply.name) + b"\0"
                      + _bytes(reply.value) + b"\0")
    if isinstance(reply, OptNegReply):
        return packet(SMFIR_OPTNEG, struct.pack(">III", reply.version, reply.actions,
                                                reply.protocol))
    simple = {Continue: SMFIR_CONTINUE, Accept: SMFIR_ACCEPT, Reject: SMFIR_REJECT,
              Tempfail: SMFIR_TEMPFAIL, Progress: SMFIR_PROGRESS}
    return packet(simple[type(reply)])


def parse_reply(code: bytes, payload: bytes) -> Reply:
    """One filter packet as a typed reply (the MTA side: used by the tests' client)."""
    simple: dict[bytes, Reply] = {SMFIR_CONTINUE: Continue(), SMFIR_ACCEPT: Accept(),
                                  SMFIR_REJECT: Reject(), SMFIR_TEMPFAIL: Tempfail(),
                                  SMFIR_PROGRESS: Progress()}
    if code in simple:
        _empty(payload, code.decode("ascii", errors="replace"))
        return simple[code]
    if code == SMFIR_REPLYCODE:
        return ReplyCode(_cstring(payload, "REPLYCODE").replace("%%", "%"))
    if code == SMFIR_ADDHEADER:
        parts = _cstrings(payload, "ADDHEADER")
        if len(parts) != 2:
            raise ProtocolError("ADDHEADER: expected a name and a value")
        return AddHeader(parts[0], parts[1])
    if code in (SMFIR_INSHEADER, SMFIR_CHGHEADER):
        if len(payload) < 4:
            raise ProtocolError("header change: short packet")
        (index,) = struct.unpack(">I", payload[:4])
        parts = _cstrings(payload[4:], "header change")
        if len(parts) != 2:
            raise ProtocolError("header change: expected a name and a value")
        if code == SMFIR_INSHEADER:
            return InsertHeader(index, parts[0], parts[1])
        return ChangeHeader(index, parts[0], parts[1])
    if code == SMFIR_OPTNEG:
        if len(payload) < 12:
            raise ProtocolError("OPTNEG reply: short packet")
        return OptNegReply(*struct.unpack(">III", payload[:12]))
    raise ProtocolError(f"unknown reply code {code!r}")


class Decoder:
    """Bytes from the MTA in, commands out; raises ProtocolError on anything malformed."""

    def __init__(self) -> None:
        self._framer = Framer()

    def feed(self, data: bytes) -> list[Command]:
        return [parse_command(code, payload) for code, payload in self._framer.feed(data)]


class ReplyDecoder:
    """Bytes from the filter in, replies out (the MTA side)."""

    def __init__(self) -> None:
        self._framer = Framer()

    def feed(self, data: bytes) -> list[Reply]:
        return [parse_reply(code, payload) for code, payload in self._framer.feed(data)]


# What the gateway asks for: it adds and inserts header fields (SMFIF_ADDHDRS: its
# Authentication-Results, the rules' fields) and changes and deletes them
# (SMFIF_CHGHDRS: the Subject tag, forged Authentication-Results), and it keeps header
# values byte-exact (leading space) and need not answer every header.
ACTIONS = SMFIF_ADDHDRS | SMFIF_CHGHDRS
WANTED_PROTOCOL = SMFIP_NOHREPL | SMFIP_HDR_LEADSPC


def negotiate(offer: OptNeg) -> OptNegReply:
    """Our OPTNEG answer to the MTA's offer: version 6, only what both sides support."""
    if offer.version < 2:
        raise ProtocolError(f"milter protocol version {offer.version} is too old")
    if offer.actions & ACTIONS != ACTIONS:
        raise ProtocolError("the MTA does not allow adding and changing header fields")
    return OptNegReply(min(offer.version, VERSION), ACTIONS, offer.protocol & WANTED_PROTOCOL)
