"""Walking a message's MIME tree within limits: which parts are bodies, attachments, messages.

The tree is the stdlib's lenient compat32 tree; the walk is our own
(iterative, so hostile nesting cannot exhaust the stack) and bounded by a part
count and a nesting depth. Beyond a bound the walk stops and says so; the view
then reports itself incomplete and checks that need the whole structure refuse
to answer (fail closed). Parser defects are recorded, never raised.

The parse (`parse_bounded`) builds that tree at the byte level: boundary lines
are found with a compiled pattern over the raw bytes, each part's header block
is parsed by the stdlib's own parser, and a leaf's payload is a `RawPart`: the
slice of the raw message it spans, made a string only if something asks for
one. The stdlib's feedparser does the same work a line at a time (splitting a
25 MB attachment into 340,000 strings to join them again), which was most of
the inspection time of a large message. The result is the tree the feedparser
builds, field for field (headers, defects, payloads, preamble, epilogue, the
newline before a boundary that belongs to it, digest defaults, and the broken
shapes: a header block cut short by a line that is not a header, no opening
or no closing delimiter, no boundary parameter). Where the byte-level parse
meets something it does not model exactly as the feedparser reads it (a CR
alone in a header block or next to a delimiter, two delimiter lines in a row,
a delimiter with no line end, a From_ line last in a header block,
message/delivery-status, nesting past 60 levels, a boundary with a line break
or a character the bytes cannot hold), the whole message is parsed by the
feedparser instead. `parse_reference` is that feedparser parse alone;
tests/fuzz/test_fuzz_fast_paths.py holds the two to the same answers. The
count that refuses a message of too many parts before any parse is the same
count, made in one pass without a lowered copy (`too_many_delimiters`).

Classification of a leaf part:
- body: text/plain or text/html without a file name and not `attachment`
  disposition; also a `multipart/*` part whose boundary is missing (the parser
  leaves it as text, and a reader sees text);
- skipped: the signature of `multipart/signed` and the `application/pgp-encrypted`
  control part of PGP/MIME: protocol furniture, not content;
- attachment: everything else (images, files, calendar invitations, reports).
`message/*` parts are both: an attachment (the enclosed message as a file, as a
mail client saves it) and a container whose header block is a forwarded message
(its subject and headers are read) and whose parts are walked like ours. So is an
attachment of any other declared type that is a message all the same: named
`*.eml`, or whose content starts with a message header block (`looks_like_message`:
From and another message field, or what libmagic calls message/rfc822); it is
parsed (compat32, within the bounds) and walked as an enclosed message.

A uuencoded file inside a text/plain body (`begin 644 name` ... `end`; the body
stays a body) is an attachment of its own: an `Extracted` part named like the
block, its content the decoded bytes. It counts against the part bound.

Content is decoded by `gateway.message.transfer` alone (`decoded_payload`), the
lenient decoder mail clients use, and once per inspection (`Decoded`: the walk,
the view and every attachment fact share one buffer); file-name variants by one
decoder too (`name_variants`: RFC 2047, RFC 2231 and raw 8-bit alike,
gateway.message.headers and text).

On the way the walk records the structure defect kinds of every part
(`gateway.message.defects`; `message_partial` for a message/partial part, top
level or nested, whose fragments are never inspected whole) and an upper bound
of the decoded bytes the parts can produce: each leaf's encoded size (decoding
never grows base64, quoted-printable or uuencode) once for itself and once more
for every enclosing message/* part, which is re-serialised as a file. Bounds:
`InspectionLimits` (part count, depth, header bytes of any one part, expansion
bytes).
"""

from __future__ import annotations

import email
import email.errors
import email.generator
import email.message
import email.parser
import email.policy
import email.utils
import hashlib
import io
import re
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.message import defects as defect_kinds
from gateway.message import filetypes, transfer
from gateway.message.headers import decode_str_checked
from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits
from gateway.message.text import decode_bytes, decode_checked

# The shipped bounds (gateway.message.limits); the config can change them.
MAX_PARTS = DEFAULT_LIMITS.max_parts
MAX_DEPTH = DEFAULT_LIMITS.max_depth
MAX_DEFECTS = 100

Kind = Literal["body", "attachment"]

_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature",
                              "application/pgp-signature"})


@dataclass(frozen=True)
class Leaf:
    """A body or attachment part, in walk order."""

    kind: Kind
    index: int  # position among parts of this kind (0-based)
    part: email.message.Message
    content_type: str
    nested: int  # 0: the message itself; n: inside n levels of message/rfc822
    # An attachment that is a message (message/*, or one sniffed as such): its header
    # block and parts are walked as an `Enclosed` message too.
    message: bool = False


@dataclass(frozen=True)
class Enclosed:
    """The header block of a message/* part (a forwarded or attached message)."""

    index: int
    message: email.message.Message
    nested: int
    filename: str


@dataclass(frozen=True)
class Structure:
    root: email.message.Message | None
    bodies: tuple[Leaf, ...] = ()
    attachments: tuple[Leaf, ...] = ()
    enclosed: tuple[Enclosed, ...] = ()
    defects: tuple[str, ...] = ()
    parts: int = 0
    incomplete: str | None = None  # why the walk stopped early, None when complete
    encrypted_parts: frozenset[int] = field(default_factory=frozenset)
    kinds: tuple[str, ...] = ()  # structure defect kinds (gateway.message.defects)
    expansion: int = 0  # upper bound of the decoded bytes of every part (module docstring)


_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_SECTION = re.compile(r"^\*(\d{1,3})(\*?)$")

Variant = tuple[str, bool]  # (name, decoded without a guess)


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:].removesuffix('"'))
    return value


def _rfc2231(sections: list[tuple[bool, str]]) -> Variant:
    """Join RFC 2231 sections (encoded?, text); the first encoded one names the charset."""
    charset = ""
    data = bytearray()
    first = True
    for encoded, text in sections:
        if encoded:
            if first and text.count("'") >= 2:
                charset, _lang, text = text.split("'", 2)
            data += urllib.parse.unquote_to_bytes(text)
        else:
            data += text.encode("utf-8", errors="surrogateescape")
        first = False
    return decode_checked(bytes(data), charset or None)


def _param_variants(value: str, base: str) -> list[Variant]:
    """Every value parameter `base` has in one header, decoded: the plain `base=` ones
    first (as the stdlib's get_param reads them), then `base*=`, then `base*0*`...
    joined. Plain values may hold RFC 2047 words or raw 8-bit bytes (Outlook, Gmail)."""
    plain: list[Variant] = []
    extended: list[Variant] = []
    sections: dict[int, tuple[bool, str]] = {}
    for m in _PARAM.finditer(value):
        key, raw = m.group(1).lower(), _unquote(m.group(2))
        if key == base:
            plain.append(decode_str_checked(raw))
        elif key == base + "*":
            extended.append(_rfc2231([(True, raw)]))
        elif key.startswith(base + "*"):
            sec = _SECTION.match(key[len(base):])
            if sec and int(sec.group(1)) not in sections:
                sections[int(sec.group(1))] = (bool(sec.group(2)), raw)
    if sections:
        extended.append(_rfc2231([sections[i] for i in sorted(sections)]))
    return [(n.strip(), ok) for n, ok in plain + extended]


def _header_variants(part: email.message.Message) -> tuple[list[list[Variant]],
                                                             list[list[Variant]]]:
    """The `filename` variants of each Content-Disposition header and the `name`
    variants of each Content-Type header, in header order."""
    disposition_names: list[list[Variant]] = []
    type_names: list[list[Variant]] = []
    try:
        items = part.raw_items()
        for key, value in items:
            header = key.lower()
            if not isinstance(value, str):
                value = str(value)
            if header == "content-disposition":
                disposition_names.append(_param_variants(value, "filename"))
            elif header == "content-type":
                type_names.append(_param_variants(value, "name"))
    except Exception:  # a header compat32 cannot even turn into text
        pass
    return disposition_names, type_names


def name_variants(part: email.message.Message) -> tuple[Variant, ...]:
    """Every file name a part carries, each with whether it decoded without a guess:
    the `filename()` first, then `filename=`, `filename*=` (RFC 2231, sections
    joined) and `name=` of every Content-Disposition / Content-Type header (a part
    may repeat them). One decoder for them all (module docstring). Distinct names,
    in order; a name met both cleanly and not counts as clean."""
    disposition_names, type_names = _header_variants(part)
    ordered = [v for vs in (*disposition_names, *type_names) for v in vs if v[0]]
    primary = _primary(disposition_names, type_names)
    found: dict[str, bool] = {}
    for name, ok in ([primary] if primary is not None else []) + ordered:
        found[name] = found.get(name, False) or ok
    return tuple(found.items())


def _primary(disposition_names: list[list[Variant]],
             type_names: list[list[Variant]]) -> Variant | None:
    # What the stdlib's get_filename() answers: the first Content-Disposition's
    # filename (plain before RFC 2231), else the first Content-Type's name.
    for headers in (disposition_names, type_names):
        if headers:
            named = [v for v in headers[0] if v[0]]
            if named:
                return named[0]
    return None


def filename(part: email.message.Message) -> str:
    """File name from filename= / filename*= (RFC 2231) / Content-Type name=; '' if none."""
    found = _primary(*_header_variants(part))
    return found[0] if found is not None else ""


def filenames(part: email.message.Message) -> tuple[str, ...]:
    """Every file name a part carries, `filename()` first (see `name_variants`); () if none."""
    return tuple(name for name, _ok in name_variants(part))


def _name_kinds(variants: tuple[Variant, ...]) -> set[str]:
    names = [name for name, _ok in variants]
    return defect_kinds.name_kinds(names, undecodable=[n for n, ok in variants if not ok])


def content_type(part: email.message.Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def disposition(part: email.message.Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def params(part: email.message.Message) -> dict[str, str]:
    try:
        got = part.get_params() or []
    except Exception:
        return {}
    out: dict[str, str] = {}
    for key, value in got[1:]:
        if isinstance(value, tuple):
            value = email.utils.collapse_rfc2231_value(value)
        out[str(key).lower()] = str(value)
    return out


class Extracted(email.message.Message):
    """A file cut out of a text part (a uuencoded block) as a part of its own: made-up
    headers (application/octet-stream, the block's name as `name` and `filename`),
    the decoded bytes as payload, so `decoded_payload` returns them."""

    def __init__(self, name: str, data: bytes, clean: bool) -> None:
        super().__init__()
        self["Content-Type"] = "application/octet-stream"
        self["Content-Disposition"] = "attachment"
        if name:
            self.set_param("name", name)
            self.set_param("filename", name, header="Content-Disposition")
        self.set_payload(data)
        self.clean = clean


class RawPart(email.message.Message):
    """A compat32 part whose leaf payload is a span of the raw bytes it was parsed from.

    `_payload` (what `get_payload`, `is_multipart` and the generator read) is the
    span as the feedparser would have stored it (ASCII, 8-bit bytes
    surrogate-escaped), made when asked for and not kept: the tree holds no second
    copy of the message. Readers here take the bytes from the span itself
    (`payload_buffer`). Anything else the parser or a caller stores (a list of
    parts, a string) is kept as in any Message."""

    _span: tuple[bytes, int, int] | None = None
    _stored: Any = None

    @property
    def _payload(self) -> Any:
        span = self._span
        if span is None:
            return self._stored
        data, start, end = span
        return str(memoryview(data)[start:end], "ascii", "surrogateescape")

    @_payload.setter
    def _payload(self, value: Any) -> None:
        self._span = None
        self._stored = value

    def is_multipart(self) -> bool:
        # The base class tests the payload's type: that would copy a span to say no.
        return self._span is None and isinstance(self._stored, list)

    def set_span(self, data: bytes, start: int, end: int) -> None:
        self._stored = None
        self._span = (data, start, end)


def transfer_encoding(part: email.message.Message) -> str:
    """The part's Content-Transfer-Encoding as a token (`transfer.encoding_name`)."""
    try:
        return transfer.encoding_name(part.get("Content-Transfer-Encoding", ""))
    except Exception:  # a Header compat32 cannot turn into text
        return "x-unreadable"


def _payload_bytes(part: email.message.Message, limit: int | None = None) -> bytes | None:
    """A leaf's content as it was on the wire (before transfer decoding), or its first
    `limit` characters."""
    if isinstance(part, RawPart) and part._span is not None:
        data, start, end = part._span
        return data[start:end if limit is None else min(end, start + limit)]
    # get_payload() would decode 8-bit bytes in the part's charset, replacing what does
    # not fit: the raw payload (8-bit bytes surrogate-escaped by the parser) is the wire.
    payload = getattr(part, "_payload", None)
    if isinstance(payload, bytes):
        return payload[:limit]
    if not isinstance(payload, str):
        return None
    payload = payload[:limit]
    try:
        return payload.encode("ascii", errors="surrogateescape")
    except UnicodeEncodeError:  # text put in by a program, not parsed from bytes
        return payload.encode("utf-8", errors="replace")


def wire_span(part: email.message.Message) -> tuple[object, int, int] | None:
    """Where a leaf's content stands in the buffer it was parsed from: (that buffer,
    start, end) in bytes, or None for a part not parsed in place."""
    if isinstance(part, RawPart) and part._span is not None:
        return part._span
    return None


def payload_buffer(part: email.message.Message) -> bytes | memoryview | None:
    """A leaf's content as it was on the wire, without copying a raw span."""
    if isinstance(part, RawPart) and part._span is not None:
        data, start, end = part._span
        return memoryview(data)[start:end]
    return _payload_bytes(part)


def payload_is_text(part: email.message.Message) -> bool:
    """The leaf's payload is parsed text (a str, or a raw span), not bytes put in by a
    program (`Extracted`)."""
    if isinstance(part, RawPart) and part._span is not None:
        return True
    return isinstance(getattr(part, "_payload", None), str)


def payload_size(part: email.message.Message) -> int:
    """Bytes of a leaf's encoded payload as on the wire (0 for a container)."""
    if isinstance(part, RawPart) and part._span is not None:
        _data, start, end = part._span
        return end - start
    # Not get_payload(): it decodes 8-bit bytes in the part's charset parameter, and
    # raised TypeError on an RFC 2231 one (a tuple). The parser keeps each byte as a
    # character (surrogate-escaped): the length is the wire's, as for a raw span.
    payload = getattr(part, "_payload", None)
    return len(payload) if isinstance(payload, str | bytes) else 0


def _contains(part: email.message.Message, needle: bytes) -> bool:
    """`needle` occurs in the leaf's encoded payload (a raw span is searched in place)."""
    if isinstance(part, RawPart) and part._span is not None:
        data, start, end = part._span
        return data.find(needle, start, end) >= 0
    raw = _payload_bytes(part)
    return raw is not None and needle in raw


class _Flattener(email.generator.BytesGenerator):
    """The stdlib's BytesGenerator, but a multipart with no boundary gets one derived
    from its content instead of a random one: the same message flattens to the same
    bytes in every inspection (a random boundary made an enclosed message's bytes,
    and what is read from them, differ from run to run), and no sender can predict it
    to plant the lines that make the generator look for another one."""

    @classmethod
    def _make_boundary(cls, text: Any = None) -> str:
        # BytesGenerator passes the flattened parts, bytes.
        data = bytes(text or b"")
        boundary = "=" * 15 + hashlib.sha256(data).hexdigest()[:19] + "=="
        found, counter = boundary, 0
        while True:  # bounded: each turn needs one more line of `text` to go on
            line = b"^--" + re.escape(found.encode("ascii")) + b"(--)?$"
            if not re.search(line, data, re.MULTILINE):
                return found
            found = f"{boundary}.{counter}"
            counter += 1


def _flatten(message: email.message.Message, maxheaderlen: int | None) -> bytes:
    """`message` as bytes (BytesGenerator: 8-bit header and body bytes written back as
    they came, never re-encoded; `maxheaderlen` 0: header lines not refolded)."""
    out = io.BytesIO()
    _Flattener(out, mangle_from_=False, maxheaderlen=maxheaderlen).flatten(message)
    return out.getvalue()


def _enclosed_text(part: email.message.Message) -> bytes | None:
    """The body of a message/* part as text, re-serialised from the parse tree: for a
    part in base64 or quoted-printable (against RFC 2046) that text is the encoding.
    Bytes as they came: the string generator turned a header holding an 8-bit byte
    into encoded words (quadratic in the header's length, and letters base64 then
    decoded), so a 16 KB header line cost 7 s."""
    inner = part.get_payload()
    if not isinstance(inner, list) or len(inner) != 1:
        return None
    body = inner[0]
    if not isinstance(body, email.message.Message):
        text = str(body)
        try:
            return text.encode("ascii", errors="surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", errors="replace")
    try:
        return _flatten(body, 0)
    except Exception:  # the generator chokes on some hostile trees
        return None


def _enclosed_bytes(part: email.message.Message) -> tuple[bytes | None, bool]:
    """The enclosed message of a message/* part as a file, as a mail client saves it."""
    encoding = transfer_encoding(part)
    if encoding not in transfer.IDENTITY:
        raw = _enclosed_text(part)
        return (None, False) if raw is None else transfer.decode(raw, encoding)
    try:
        return b"".join(_flatten(m, None) for m in part.get_payload()
                        if isinstance(m, email.message.Message)), True
    except Exception:  # the generator chokes on some hostile trees
        return None, False


def decoded_payload(part: email.message.Message) -> tuple[bytes | None, bool]:
    """(decoded bytes, clean): None when the part cannot be decoded at all;
    clean is False when the transfer encoding was damaged (bytes may be wrong).
    Every reader of a part's content comes here (gateway.message.transfer)."""
    if part.is_multipart():
        if content_type(part).startswith("message/"):
            return _enclosed_bytes(part)
        return None, False
    raw = payload_buffer(part)
    if raw is None:
        return None, False
    data, clean = transfer.decode(raw, transfer_encoding(part))
    if isinstance(part, Extracted):
        clean = clean and part.clean
    return data, clean


class Decoded:
    """Each part's content decoded once for one inspection.

    The walk (uuencoded files, attached messages), the view (bodies, bad_base64)
    and every fact of an attachment (size, type, encryption, documents, text,
    Outlook and TNEF files) read the same decoded buffer. With payloads held as
    raw spans (`RawPart`) the tree no longer carries the encoded text as strings,
    so keeping an attachment's decoded bytes does not double what a message costs:
    the message and its decoded attachments, once each. A body's bytes are handed
    to the one reader that turns them into text (`take`) and forgotten; `release`
    forgets every buffer when the inspection is over. Whether a part decoded
    cleanly is kept either way. Entries hold their part, so no id is reused.

    `known`: decoded content found before the inspection (the parts decoded while
    the message arrived, gateway.message.prescan.Known): (bytes, clean) for a part,
    or None to decode it here."""

    def __init__(self, known: Callable[[email.message.Message],
                                       tuple[bytes, bool] | None] | None = None) -> None:
        self._data: dict[int, tuple[email.message.Message, bytes | None, bool]] = {}
        self._clean: dict[int, tuple[email.message.Message, bool]] = {}
        self._known = known

    def _decode(self, part: email.message.Message) -> tuple[bytes | None, bool]:
        if self._known is not None:
            found = self._known(part)
            if found is not None:
                return found
        return decoded_payload(part)

    def get(self, part: email.message.Message) -> tuple[bytes | None, bool]:
        """`decoded_payload(part)`, decoded on first use and kept."""
        got = self._data.get(id(part))
        if got is not None:
            return got[1], got[2]
        data, clean = self._decode(part)
        self._data[id(part)] = (part, data, clean)
        self._clean[id(part)] = (part, clean)
        return data, clean

    def take(self, part: email.message.Message) -> tuple[bytes | None, bool]:
        """`get`, and forget the bytes (not whether they were clean)."""
        got = self._data.pop(id(part), None)
        if got is not None:
            return got[1], got[2]
        data, clean = self._decode(part)
        self._clean[id(part)] = (part, clean)
        return data, clean

    def clean(self, part: email.message.Message) -> bool:
        """Whether the part's transfer encoding decoded cleanly (decoding it if need be)."""
        known = self._clean.get(id(part))
        return known[1] if known is not None else self.get(part)[1]

    def release(self) -> None:
        self._data.clear()


def _decode_enclosed(part: email.message.Message, max_parts: int
                     ) -> tuple[email.message.Message | None, str | None, str | None]:
    """A message/* part sent (against RFC 2046) in base64, quoted-printable or another
    transfer encoding: (the enclosed message, why it could not be read, defect kind).
    (None, None, None) for a part in an identity encoding: the parse tree has it."""
    if transfer_encoding(part) in transfer.IDENTITY:
        return None, None, None
    data, _clean = _enclosed_bytes(part)
    if data is None:
        return None, None, None
    return parse_bounded(data, max_parts)


# -- messages in attachments of other types ------------------------------------------

_SNIFF_CHARS = 64 * 1024  # encoded characters decoded to look for a header block
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_MESSAGE_FIELDS = frozenset({
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"received", b"return-path",
    b"mime-version", b"sender", b"reply-to", b"in-reply-to", b"references", b"delivered-to",
    b"content-type", b"thread-topic", b"thread-index", b"x-mailer", b"user-agent"})


def looks_like_message(head: bytes, *, named: bool = False, truncated: bool = False) -> bool:
    """Whether content starting with `head` is an RFC 5322 message.

    Conservative, so that no text file is read as a message: every line up to the
    first blank one (or the end) must be a header field, and there must be two
    distinct message fields among them, one of them From (or libmagic must call it
    message/rfc822). A file named `.eml` needs only a well-formed header block.
    `truncated`: `head` is a prefix, its last line may be cut."""
    lines = head.split(b"\n")
    if truncated:
        lines = lines[:-1]
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]  # an mbox separator line, as some clients save a message
    fields: list[bytes] = []
    for line in lines:
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if not fields:
                return False
            continue
        m = _FIELD_NAME.match(line)
        if m is None:
            return False
        fields.append(m.group(1).lower())
    if not fields:
        return False
    if named:
        return True
    known = set(fields) & _MESSAGE_FIELDS
    return len(known) >= 2 and (b"from" in known or
                                filetypes.detect(head) == "message/rfc822")


def _attached_message(part: email.message.Message, names: tuple[str, ...],
                      decoded: Decoded) -> bytes | None:
    """The decoded content of an attachment that is a message whatever its declared
    type (module docstring), or None."""
    raw = _payload_bytes(part, _SNIFF_CHARS + 1)
    if not raw:
        return None
    encoding = transfer_encoding(part)
    head, _clean = transfer.decode(raw[:_SNIFF_CHARS], encoding)
    named = any(n.casefold().endswith(".eml") for n in names)
    if not looks_like_message(head[:_SNIFF_CHARS], named=named,
                              truncated=len(raw) > _SNIFF_CHARS):
        return None
    data, _clean = decoded.get(part)
    return data


def _uu_files(part: email.message.Message, limit: int,
              decoded: Decoded) -> list[transfer.UUBlock]:
    """The uuencoded files in a text/plain body, at most `limit`."""
    if transfer_encoding(part) in transfer.IDENTITY and not _contains(part, b"begin"):
        return []  # the bytes are the content: no copy just to look
    data, _clean = decoded.get(part)
    if not data or b"begin" not in data:
        return []
    return transfer.uu_blocks(data, limit)


_BOUNDARY_PARAM = re.compile(rb'boundary\s*=\s*"?([^"\s;]{1,200})')


def count_delimiters(raw: bytes, limit: int) -> int:
    """An upper bound on the number of multipart body parts, from the raw bytes.

    Every body part starts with a `--boundary` line, so counting those lines for
    each declared boundary bounds the part count without building the tree: the
    stdlib parser spends about 10 microseconds per part, and a 25 MB message of
    empty parts would otherwise cost it half a minute before any bound applied.
    """
    low = raw.lower()  # boundary= may be written in any case; counting stays an upper bound
    total = 0
    for boundary in set(_BOUNDARY_PARAM.findall(low)):
        total += low.count(b"\n--" + boundary)
        if total > limit:
            break
    return total


_BOUNDARY_PARAM_ANY_CASE = re.compile(rb'(?i)boundary\s*=\s*"?([^"\s;]{1,200})')
_SLICE = 1 << 20


def _boundaries_and_lines(raw: bytes) -> tuple[set[bytes], int]:
    """`set(_BOUNDARY_PARAM.findall(raw.lower()))` and the number of `\n--` in `raw`,
    in one pass and without a lowered copy of the whole message: a slice at a time,
    each place `boundary` occurs tried in place from where the previous match
    ended, as findall goes."""
    found: set[bytes] = set()
    lines = 0
    resume = 0
    word = b"boundary"
    for base in range(0, len(raw), _SLICE):
        # The slice runs on a word's length less one, for a word across its end; a
        # place is counted in the slice it starts in.
        low = raw[base:base + _SLICE + len(word) - 1].lower()
        lines += low.count(b"\n--", 0, _SLICE + 2)
        at = low.find(word)
        while 0 <= at < _SLICE:
            if base + at >= resume:
                m = _BOUNDARY_PARAM_ANY_CASE.match(raw, base + at)
                if m is not None:
                    found.add(m.group(1).lower())
                    resume = m.end()
            at = low.find(word, at + 1)
    return found, lines


BOUNDARY_PARAM_ANY_CASE = _BOUNDARY_PARAM_ANY_CASE


def too_many_delimiters(raw: bytes, limit: int,
                        counted: tuple[int, frozenset[bytes]] | None = None) -> bool:
    """`count_delimiters(raw, limit) > limit`, at a fraction of its cost for most mail.

    Every `\n--boundary` counted starts at a `\n--`, so each declared boundary counts
    at most the `\n--` in the message: the total is at most their product, and only a
    message where that product passes the limit is counted the exact way.
    `counted`: (the `\n--` in raw, a superset of its boundary values) found while the
    message arrived (gateway.message.prescan): the product stays an upper bound."""
    boundaries: set[bytes] | frozenset[bytes]
    if counted is not None:
        lines, boundaries = counted
    elif b"\n--" not in raw:
        # No delimiter line can start anywhere (a text body): one search, not the
        # lowered slices `boundary` is looked for in (10 MB: about 20 ms less).
        return False
    else:
        boundaries, lines = _boundaries_and_lines(raw)
    if lines * len(boundaries) <= limit:
        return False
    return count_delimiters(raw, limit) > limit


def parse(raw: bytes, max_parts: int = MAX_PARTS
          ) -> tuple[email.message.Message | None, str | None]:
    """compat32 parse, after a byte-level count refuses structures over `max_parts`.

    Nesting is bounded by the parser's own recursion, which gives out first on
    absurd depths (caught: the message is not inspectable)."""
    root, reason, _kind = parse_bounded(raw, max_parts)
    return root, reason


def parse_bounded(raw: bytes, max_parts: int = MAX_PARTS, *,
                  counted: tuple[int, frozenset[bytes]] | None = None
                  ) -> tuple[email.message.Message | None, str | None, str | None]:
    """`parse`, also naming the defect kind of a refusal (too_many_parts...).

    The byte-level parse (module docstring), or the feedparser's where that one
    declines: the same tree either way. `counted`: see `too_many_delimiters`."""
    return _bounded(raw, max_parts, fast=True, counted=counted)


def parse_reference(raw: bytes, max_parts: int = MAX_PARTS
                    ) -> tuple[email.message.Message | None, str | None, str | None]:
    """`parse_bounded` by the stdlib's feedparser alone: what the byte-level parse
    must equal (tests/fuzz/test_fuzz_fast_paths.py)."""
    return _bounded(raw, max_parts, fast=False)


def _bounded(raw: bytes, max_parts: int, *, fast: bool,
             counted: tuple[int, frozenset[bytes]] | None = None
             ) -> tuple[email.message.Message | None, str | None, str | None]:
    over = too_many_delimiters(raw, max_parts, counted) if fast else \
        count_delimiters(raw, max_parts) > max_parts
    if over:
        return None, f"more than {max_parts} MIME parts", "too_many_parts"
    if fast:
        built = _fast_parse(raw)
        if built is not None:
            return built, None, None
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32), None, None
    except RecursionError:
        return None, "MIME nesting too deep to parse", "too_deep"
    except Exception:  # the parser is lenient; anything else is a bug we fail closed on
        return None, "MIME structure could not be parsed", "unparsable"


# -- the byte-level parse ---------------------------------------------------------------

class _Unmodelled(Exception):
    """The message holds something the byte-level parse does not read exactly as the
    feedparser does: the feedparser parses it."""


# Deeper than this the feedparser's own recursion decides (RecursionError: too_deep).
_MAX_FAST_DEPTH = 60
# What follows `--b` on a delimiter line (RFC 2046 5.1.1): `--` if it is the closing one,
# transport padding, the line end (or the end of the message, as the feedparser reads it).
_DELIMITER_END = rb"(--)?[ \t]*(?:\r\n|\n|\Z)"
_BLANK_LINE = re.compile(rb"^\r?\n", re.MULTILINE)
# Header blocks only (headersonly): what follows the block is the caller's business.
_HEADER_PARSER = email.parser.BytesParser(RawPart, policy=email.policy.compat32)


Unmodelled = _Unmodelled
BLANK_LINE = _BLANK_LINE


def header_block(raw: bytes, start: int, end: int) -> tuple[email.message.Message, int]:
    """The header block of the part spanning raw[start:end] as the byte-level parse
    reads it, and the offset its body starts at. Raises `Unmodelled` where the parse
    leaves the message to the feedparser."""
    return _headers(raw, start, end)


def delimiter(part: email.message.Message) -> bytes | None:
    """A multipart's delimiter `--b` (RFC 2046 5.1.1) as the byte-level parse reads
    its boundary; None without a boundary. Raises `Unmodelled` for a part the parse
    leaves to the feedparser, or a boundary no line can hold."""
    if not isinstance(part, RawPart):
        raise _Unmodelled
    found = _boundary_line(part)
    return None if found is None else found[1]


def delimiter_lines(delimiters: Sequence[bytes]) -> re.Pattern[bytes]:
    """The delimiter lines of nested multiparts, outermost first, as the byte-level
    parse finds each (`--b`, `--b--`, blanks, a line end), searched from the line end
    before one: group k+1 holds delimiters[k] where that one matched (the outermost
    where a line is the delimiter of several: the parse splits the outer body first),
    group len(delimiters)+1 the closing `--`."""
    alternatives = b"|".join(b"(" + re.escape(d[2:]) + b")" for d in delimiters)
    return re.compile(b"\n--(?:" + alternatives + b")" + _DELIMITER_END)


def _fast_parse(raw: bytes) -> email.message.Message | None:
    """The compat32 tree of `raw` built at the byte level, or None: let the feedparser."""
    try:
        root = _build(raw, 0, len(raw), 0, digest=False)
    except _Unmodelled:
        return None
    except Exception:  # RecursionError included: the feedparser's answer is the reference
        return None
    if root.get_content_maintype() == "multipart" and not root.is_multipart():
        root.defects.append(email.errors.MultipartInvariantViolationDefect())
    return root


def _headers(raw: bytes, start: int, end: int) -> tuple[RawPart, int]:
    """A part's header block, parsed by the stdlib's parser; and where its body starts."""
    blank = _BLANK_LINE.search(raw, start, end)
    body = blank.end() if blank else end
    block = raw[start:body]
    if block.count(b"\r") != block.count(b"\r\n"):
        raise _Unmodelled  # a CR alone ends a line for the feedparser (universal newlines)
    part = _HEADER_PARSER.parsebytes(block, headersonly=True)
    if not isinstance(part, RawPart):
        raise _Unmodelled
    rest = part._stored
    if rest:
        # The header parser stopped before the blank line, at a line that is not a
        # header (MissingHeaderBodySeparatorDefect): the body starts at that line. A
        # From_ line last in the block is put back before the body instead: not a span.
        if not isinstance(rest, str) or _text(raw, body - len(rest), body) != rest:
            raise _Unmodelled
        body -= len(rest)
    return part, body


def _build(raw: bytes, start: int, end: int, depth: int, *, digest: bool) -> RawPart:
    """The part spanning raw[start:end] (its boundary lines excluded), as the
    feedparser builds it (`FeedParser._parsegen`)."""
    if depth > _MAX_FAST_DEPTH:
        raise _Unmodelled
    part, body = _headers(raw, start, end)
    if digest:
        part.set_default_type("message/rfc822")  # RFC 2046 5.1.5, as the feedparser does
    ctype = part.get_content_type()
    maintype = part.get_content_maintype()
    if ctype == "message/delivery-status":
        raise _Unmodelled
    if maintype == "message":
        part._payload = [_build(raw, body, end, depth + 1, digest=False)]
    elif maintype == "multipart":
        _multipart(part, raw, body, end, depth, ctype == "multipart/digest")
    else:
        part.set_span(raw, body, end)
    return part


def _boundary_line(part: RawPart) -> tuple[re.Pattern[bytes], bytes] | None:
    """The feedparser's boundary line (`--b`, `--b--`, blanks, a line end) as a pattern
    over the bytes from the line end before it, and `--b`; None for a multipart with
    no boundary."""
    boundary = part.get_boundary()
    if boundary is None:
        return None
    try:
        sep = b"--" + boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # an RFC 2231 value no line can hold
        raise _Unmodelled from None
    if b"\r" in sep or b"\n" in sep:
        raise _Unmodelled  # a line break inside the parameter: never matched by a line
    # From the line end before it: a literal prefix, searched at memchr speed.
    return re.compile(b"\n" + re.escape(sep) + _DELIMITER_END), sep


def _bare_cr_delimiter(raw: bytes, sep: bytes, start: int, end: int) -> bool:
    """A CR alone just before a delimiter, or after one and its blanks, in raw[start:end].

    A CR alone ends a line for the feedparser (universal newlines) and for no
    pattern here. Next to a delimiter it makes a boundary line of what is none
    here; anywhere else it changes nothing the tree holds, since the feedparser
    joins a part's lines again as they were. (After a `--b` anywhere, not only at a
    line start: a few more messages go to the feedparser, none is misread.)"""
    esc = re.escape(sep)
    # The literal first, the CR looked for around it: one scan at literal speed.
    near = re.compile(esc + rb"(?:(?<=\r" + esc + rb")|(?:--)?[ \t]*\r(?!\n))")
    return near.search(raw, start, end) is not None


def _multipart(part: RawPart, raw: bytes, start: int, end: int, depth: int,
               digest: bool) -> None:
    """The body raw[start:end] of a multipart: preamble, parts, epilogue and defects."""
    found_line = _boundary_line(part)
    if found_line is None:
        part.defects.append(email.errors.NoBoundaryInMultipartDefect())
        part.set_span(raw, start, end)
        return
    line, sep = found_line
    if _bare_cr_delimiter(raw, sep, start, end):
        raise _Unmodelled
    if str(part.get("content-transfer-encoding", "8bit")).lower() not in (
            "7bit", "8bit", "binary"):
        part.defects.append(email.errors.InvalidMultipartContentTransferEncodingDefect())
    # Every line here starts after a \n: the body follows the blank line or the last
    # header line, a part the delimiter line. Searching from that \n finds a boundary
    # on the first line too.
    if start < end and raw[start - 1:start] != b"\n":
        raise _Unmodelled
    found = line.search(raw, start - 1, end) if start < end else None
    if found is None or found.group(1):
        # No opening delimiter: the feedparser keeps the text up to the closing one (or
        # the end) as the payload, drops what follows, and leaves an empty epilogue.
        part.defects.append(email.errors.StartBoundaryNotFoundDefect())
        part.set_span(raw, start, found.start() + 1 if found else end)
        part.epilogue = ""
        return
    if found.start() + 1 > start:
        part.preamble = _text(raw, start, _strip_eol(raw, start, found.start() + 1))
    children: list[email.message.Message] = []
    while True:
        if raw[found.end() - 1:found.end()] != b"\n":
            raise _Unmodelled  # a delimiter at the very end, with no line end
        begin = found.end()
        if line.match(raw, begin - 1, end):
            raise _Unmodelled  # delimiter lines in a row: the feedparser skips them
        following = line.search(raw, begin - 1, end)
        child = _build(raw, begin, following.start() + 1 if following else end, depth + 1,
                       digest=digest)
        _strip_last(child)
        children.append(child)
        if following is None:
            part.defects.append(email.errors.CloseBoundaryNotFoundDefect())
            break
        if following.group(1):
            part.epilogue = _text(raw, following.end(), end)
            break
        found = following
    part._payload = children


def _strip_eol(raw: bytes, start: int, end: int) -> int:
    """`end` less one line end (the feedparser's NLCRE_eol)."""
    if end - start >= 2 and raw[end - 2:end] == b"\r\n":
        return end - 2
    if end > start and raw[end - 1] in b"\r\n":
        return end - 1
    return end


def _text(raw: bytes, start: int, end: int) -> str:
    return str(memoryview(raw)[start:end], "ascii", "surrogateescape")


def _strip_last(child: email.message.Message) -> None:
    """RFC 2046: the line end before a delimiter belongs to the delimiter. The
    feedparser takes it off the last part it made (`_last`): for an enclosed
    message, its innermost last part; for a multipart, its epilogue."""
    node = child
    while node.get_content_maintype() == "message":
        inner = node.get_payload()
        if not isinstance(inner, list) or not inner or not isinstance(
                inner[0], email.message.Message):
            raise _Unmodelled
        node = inner[0]
    if node.get_content_maintype() == "multipart":
        if node.epilogue == "":
            node.epilogue = None
        elif node.epilogue is not None:
            node.epilogue = re.sub(r"(?:\r\n|\r|\n)\Z", "", node.epilogue, count=1)
        return
    if not isinstance(node, RawPart) or node._span is None:
        raise _Unmodelled
    data, start, end = node._span
    node._span = (data, start, _strip_eol(data, start, end))


def walk(root: email.message.Message | None, incomplete: str | None = None, *,
         max_parts: int = MAX_PARTS, max_depth: int = MAX_DEPTH,
         limits: InspectionLimits | None = None, kind: str | None = None,
         payloads: Decoded | None = None) -> Structure:
    """The bounded walk (module docstring). `incomplete`/`kind`: why parsing failed;
    `payloads`: the inspection's decoded payloads (what the walk decodes is kept there)."""
    limits = limits or InspectionLimits(max_parts=max_parts, max_depth=max_depth)
    payloads = payloads if payloads is not None else Decoded()
    max_parts, max_depth = limits.max_parts, limits.max_depth
    if root is None:
        return Structure(root=None, incomplete=incomplete or "no message",
                         kinds=(kind or "unparsable",))
    bodies: list[Leaf] = []
    attachments: list[Leaf] = []
    enclosed: list[Enclosed] = []
    defects: list[str] = []
    kinds: set[str] = set()
    encrypted: set[int] = set()
    count = 0
    expansion = 0
    # (part, depth, nested, inside multipart/encrypted)
    stack: list[tuple[email.message.Message, int, int, bool]] = [(root, 0, 0, False)]

    def attach(part: email.message.Message, ctype: str, nested: int,
               in_encrypted: bool, message: bool = False) -> None:
        if in_encrypted:
            encrypted.add(len(attachments))
        attachments.append(Leaf("attachment", len(attachments), part, ctype, nested, message))

    def stop(reason: str, limit_kind: str) -> None:
        nonlocal incomplete
        incomplete = reason
        kinds.add(limit_kind)

    while stack:
        part, depth, nested, in_encrypted = stack.pop()
        count += 1
        if count > max_parts:
            stop(f"more than {max_parts} MIME parts", "too_many_parts")
            break
        if depth > max_depth:
            stop(f"MIME nesting deeper than {max_depth}", "too_deep")
            break
        if defect_kinds.header_bytes(part) > limits.max_header_bytes:
            stop(f"a header block over {limits.max_header_bytes} bytes", "header_too_large")
            break
        for d in part.defects:
            if len(defects) < MAX_DEFECTS:
                defects.append(type(d).__name__)
        kinds |= defect_kinds.part_kinds(part)
        ctype = content_type(part)
        maintype = ctype.split("/", 1)[0]
        if ctype == "message/partial":
            # RFC 2046 5.2.2: one fragment of a message reassembled only by the reader.
            kinds.add("message_partial")
        if part.is_multipart():
            children = [c for c in part.get_payload() if isinstance(c, email.message.Message)]
            if maintype == "message":
                # An attached message is an attachment too (a SULIT mail forwarded as
                # .eml is unencrypted content), and its parts are walked as well.
                attach(part, ctype, nested, in_encrypted, message=True)
                variants = name_variants(part)
                kinds |= _name_kinds(variants)
                decoded, reason, refused = _decode_enclosed(part, max_parts - count)
                if reason is not None:
                    stop(reason, refused or "unparsable")
                    break
                if decoded is not None:
                    children = [decoded]
                name = variants[0][0] if variants else ""
                for child in children:
                    enclosed.append(Enclosed(len(enclosed), child, nested + 1, name))
                stack.extend((c, depth + 1, nested + 1, in_encrypted) for c in reversed(children))
                continue
            inner_encrypted = in_encrypted or ctype == "multipart/encrypted"
            pushed: list[tuple[email.message.Message, int, int, bool]] = []
            for i, child in enumerate(children):
                ctype_child = content_type(child)
                if ctype == "multipart/signed" and i > 0 and ctype_child in _SIGNATURE_TYPES:
                    continue
                if ctype == "multipart/encrypted" and ctype_child == "application/pgp-encrypted":
                    continue
                pushed.append((child, depth + 1, nested, inner_encrypted))
            stack.extend(reversed(pushed))
            continue
        # Each enclosing message/* attachment is re-serialised as a file: count it again.
        expansion += payload_size(part) * (nested + 1)
        variants = name_variants(part)
        names = tuple(n for n, _ok in variants)
        kinds |= _name_kinds(variants)
        is_text = ctype in ("text/plain", "text/html") or maintype == "multipart"
        if is_text and not names and disposition(part) != "attachment":
            bodies.append(Leaf("body", len(bodies), part, ctype, nested))
            if ctype != "text/plain":
                continue
            # The body stays a body; each uuencoded file in it is an attachment too.
            charset = params(part).get("charset")
            for block in _uu_files(part, max_parts - count + 1, payloads):
                count += 1
                if count > max_parts:
                    break
                name = decode_bytes(block.name, charset).strip()
                kinds |= defect_kinds.name_kinds([name])
                expansion += len(block.data) * (nested + 1)
                attach(Extracted(name, block.data, block.clean), "application/octet-stream",
                       nested, in_encrypted)
            if count > max_parts:
                stop(f"more than {max_parts} MIME parts", "too_many_parts")
                break
            continue
        data = None if maintype == "message" else _attached_message(part, names, payloads)
        attach(part, ctype, nested, in_encrypted, message=data is not None)
        if data is None:
            continue
        if expansion + len(data) > limits.max_expansion_bytes:
            # Parsing costs time in proportion: messages attached in messages must not
            # be parsed past the budget before the check after the walk says so.
            stop(f"decoded content over {limits.max_expansion_bytes} bytes",
                 "expansion_too_large")
            break
        inner, reason, refused = parse_bounded(data, max(0, max_parts - count))
        if inner is None:
            stop(reason or "an attached message could not be parsed", refused or "unparsable")
            break
        enclosed.append(Enclosed(len(enclosed), inner, nested + 1, names[0] if names else ""))
        stack.append((inner, depth + 1, nested + 1, in_encrypted))
    if incomplete is None and expansion > limits.max_expansion_bytes:
        incomplete = f"decoded content over {limits.max_expansion_bytes} bytes"
        kinds.add("expansion_too_large")
    return Structure(root=root, bodies=tuple(bodies), attachments=tuple(attachments),
                     enclosed=tuple(enclosed), defects=tuple(defects), parts=count,
                     incomplete=incomplete, encrypted_parts=frozenset(encrypted),
                     kinds=defect_kinds.ordered(kinds), expansion=expansion)


def iter_header(message: email.message.Message, name: str) -> Iterator[str]:
    """Raw (undecoded) values of a header of a parsed part."""
    try:
        values = message.get_all(name) or []
    except Exception:
        return
    for v in values:
        yield str(v)
