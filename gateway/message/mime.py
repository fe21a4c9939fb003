"""Walking a message's MIME tree within limits: which parts are bodies, attachments, messages.

The tree comes from the stdlib's lenient compat32 parser; the walk is our own
(iterative, so hostile nesting cannot exhaust the stack) and bounded by a part
count and a nesting depth. Beyond a bound the walk stops and says so; the view
then reports itself incomplete and checks that need the whole structure refuse
to answer (fail closed). Parser defects are recorded, never raised.

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
lenient decoder mail clients use; file-name variants by one decoder too
(`name_variants`: RFC 2047, RFC 2231 and raw 8-bit alike, gateway.message.headers
and text).

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
import email.message
import email.policy
import email.utils
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

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


def transfer_encoding(part: email.message.Message) -> str:
    """The part's Content-Transfer-Encoding as a token (`transfer.encoding_name`)."""
    try:
        return transfer.encoding_name(part.get("Content-Transfer-Encoding", ""))
    except Exception:  # a Header compat32 cannot turn into text
        return "x-unreadable"


def _payload_bytes(part: email.message.Message, limit: int | None = None) -> bytes | None:
    """A leaf's content as it was on the wire (before transfer decoding), or its first
    `limit` characters."""
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


def _enclosed_text(part: email.message.Message) -> bytes | None:
    """The body of a message/* part as text, re-serialised from the parse tree: for a
    part in base64 or quoted-printable (against RFC 2046) that text is the encoding."""
    inner = part.get_payload()
    if not isinstance(inner, list) or len(inner) != 1:
        return None
    body = inner[0]
    try:
        text = body.as_string() if isinstance(body, email.message.Message) else str(body)
    except Exception:  # the generator chokes on some hostile trees
        return None
    try:
        return text.encode("ascii", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")


def _enclosed_bytes(part: email.message.Message) -> tuple[bytes | None, bool]:
    """The enclosed message of a message/* part as a file, as a mail client saves it."""
    encoding = transfer_encoding(part)
    if encoding not in transfer.IDENTITY:
        raw = _enclosed_text(part)
        return (None, False) if raw is None else transfer.decode(raw, encoding)
    try:
        return b"".join(m.as_bytes() for m in part.get_payload()
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
    raw = _payload_bytes(part)
    if raw is None:
        return None, False
    data, clean = transfer.decode(raw, transfer_encoding(part))
    if isinstance(part, Extracted):
        clean = clean and part.clean
    return data, clean


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


def _attached_message(part: email.message.Message, names: tuple[str, ...]) -> bytes | None:
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
    data, _clean = decoded_payload(part)
    return data


def _uu_files(part: email.message.Message, limit: int) -> list[transfer.UUBlock]:
    """The uuencoded files in a text/plain body, at most `limit`."""
    data, _clean = decoded_payload(part)
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


def parse(raw: bytes, max_parts: int = MAX_PARTS
          ) -> tuple[email.message.Message | None, str | None]:
    """compat32 parse, after a byte-level count refuses structures over `max_parts`.

    Nesting is bounded by the parser's own recursion, which gives out first on
    absurd depths (caught: the message is not inspectable)."""
    root, reason, _kind = parse_bounded(raw, max_parts)
    return root, reason


def parse_bounded(raw: bytes, max_parts: int = MAX_PARTS
                  ) -> tuple[email.message.Message | None, str | None, str | None]:
    """`parse`, also naming the defect kind of a refusal (too_many_parts...)."""
    if count_delimiters(raw, max_parts) > max_parts:
        return None, f"more than {max_parts} MIME parts", "too_many_parts"
    try:
        single = _single_part(raw)
        if single is not None:
            return single, None, None
        return email.message_from_bytes(raw, policy=email.policy.compat32), None, None
    except RecursionError:
        return None, "MIME nesting too deep to parse", "too_deep"
    except Exception:  # the parser is lenient; anything else is a bug we fail closed on
        return None, "MIME structure could not be parsed", "unparsable"


def _single_part(raw: bytes) -> email.message.Message | None:
    """The compat32 parse of a message that is not multipart nor message/*, made
    from its header block alone; None for any other message (or any doubt).

    The stdlib parser splits the whole body into lines only to join them again
    for a single part; for a large text body that is most of the parse time. The
    result is the same object: the header block parsed by the same parser, the
    body the rest of the message as is (ASCII with surrogateescape, as the bytes
    parser decodes it).
    """
    ends = [i + n for i, n in ((raw.find(b"\r\n\r\n"), 4), (raw.find(b"\n\n"), 2)) if i >= 0]
    if not ends:
        return None
    end = min(ends)
    msg = email.message_from_bytes(raw[:end], policy=email.policy.compat32)
    # A payload here means the headers ended earlier than the blank line we found
    # (a line that is not a header): let the parser decide everything.
    if msg.get_payload() or msg.is_multipart() or msg.get_content_maintype() in (
            "multipart", "message"):
        return None
    msg.set_payload(raw[end:].decode("ascii", "surrogateescape"))
    return msg


def _encoded_size(part: email.message.Message) -> int:
    payload = part.get_payload()
    return len(payload) if isinstance(payload, str | bytes) else 0


def walk(root: email.message.Message | None, incomplete: str | None = None, *,
         max_parts: int = MAX_PARTS, max_depth: int = MAX_DEPTH,
         limits: InspectionLimits | None = None, kind: str | None = None) -> Structure:
    """The bounded walk (module docstring). `incomplete`/`kind`: why parsing failed."""
    limits = limits or InspectionLimits(max_parts=max_parts, max_depth=max_depth)
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
        expansion += _encoded_size(part) * (nested + 1)
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
            for block in _uu_files(part, max_parts - count + 1):
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
        data = None if maintype == "message" else _attached_message(part, names)
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
