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
(its subject and headers are read) and whose parts are walked like ours.

On the way the walk records the structure defect kinds of every part
(`gateway.message.defects`) and an upper bound of the decoded bytes the parts
can produce: each leaf's encoded size (decoding never grows base64 or
quoted-printable) once for itself and once more for every enclosing message/*
part, which is re-serialised as a file. Bounds: `InspectionLimits` (part count,
depth, header bytes of any one part, expansion bytes).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import email.policy
import email.utils
import quopri
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.message import defects as defect_kinds
from gateway.message.headers import decode_str
from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits
from gateway.message.text import decode_bytes

# The shipped bounds (gateway.message.limits); the config can change them.
MAX_PARTS = DEFAULT_LIMITS.max_parts
MAX_DEPTH = DEFAULT_LIMITS.max_depth
MAX_DEFECTS = 100

Kind = Literal["body", "attachment"]

_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature",
                              "application/pgp-signature"})
_BASE64_DEFECTS = frozenset({"InvalidBase64PaddingDefect", "InvalidBase64CharactersDefect",
                             "InvalidBase64LengthDefect"})


@dataclass(frozen=True)
class Leaf:
    """A body or attachment part, in walk order."""

    kind: Kind
    index: int  # position among parts of this kind (0-based)
    part: email.message.Message
    content_type: str
    nested: int  # 0: the message itself; n: inside n levels of message/rfc822


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


def _with_8bit_params(part: email.message.Message) -> email.message.Message:
    """A stand-in for `part` whose 8-bit parameter values are text, not U+FFFD.

    compat32 turns raw 8-bit header bytes into an `unknown-8bit` Header whose str()
    replaces every non-ASCII byte, so a raw UTF-8 (or GBK...) file name would be lost.
    """
    raw = [(k, v) for k, v in part.raw_items()
           if k.lower() in ("content-type", "content-disposition")]
    if all(v.isascii() for _k, v in raw):
        return part
    clean = email.message.Message()
    for k, v in raw:
        clean[k] = decode_bytes(v.encode("utf-8", errors="surrogateescape"), None)
    return clean


def filename(part: email.message.Message) -> str:
    """File name from filename= / filename*= (RFC 2231) / Content-Type name=; '' if none."""
    try:
        part = _with_8bit_params(part)
        name = part.get_filename()
    except Exception:  # malformed RFC 2231 parameters
        name = None
    if name is None:
        try:
            got = part.get_param("name", header="content-type")
        except Exception:
            got = None
        if isinstance(got, tuple):
            name = email.utils.collapse_rfc2231_value(got)
        elif isinstance(got, str):
            name = got
    if not isinstance(name, str):
        return ""
    return decode_str(name).strip()


_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_SECTION = re.compile(r"^\*(\d{1,3})(\*?)$")


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:].removesuffix('"'))
    return value


def _rfc2231(sections: list[tuple[bool, str]]) -> str:
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
    return decode_bytes(bytes(data), charset or None)


def _param_variants(value: str, base: str) -> list[str]:
    """Every value parameter `base` has in one header: plain, `base*`, `base*0*`..."""
    out: list[str] = []
    sections: dict[int, tuple[bool, str]] = {}
    for m in _PARAM.finditer(value):
        key, raw = m.group(1).lower(), _unquote(m.group(2))
        if key == base:
            out.append(decode_str(raw))
        elif key == base + "*":
            out.append(_rfc2231([(True, raw)]))
        elif key.startswith(base + "*"):
            sec = _SECTION.match(key[len(base):])
            if sec and int(sec.group(1)) not in sections:
                sections[int(sec.group(1))] = (bool(sec.group(2)), raw)
    if sections:
        out.append(_rfc2231([sections[i] for i in sorted(sections)]))
    return out


def filenames(part: email.message.Message) -> tuple[str, ...]:
    """Every file name a part carries, `filename()` first, then each other variant:
    `filename=`, `filename*=` and `name=` of every Content-Disposition / Content-Type
    header (a part may repeat them). Distinct values, in order; () if none."""
    found = [filename(part)]
    for key, value in part.raw_items():
        header = key.lower()
        if header == "content-disposition":
            found += _param_variants(value, "filename")
        elif header == "content-type":
            found += _param_variants(value, "name")
    names = (n.strip() for n in found)
    return tuple(dict.fromkeys(n for n in names if n))


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


def decoded_payload(part: email.message.Message) -> tuple[bytes | None, bool]:
    """(decoded bytes, clean): None when the part cannot be decoded at all;
    clean is False when the transfer encoding was damaged (bytes may be wrong)."""
    if part.is_multipart():
        if content_type(part).startswith("message/"):
            # The enclosed message as a file: re-serialised, as a mail client saves it.
            try:
                return b"".join(m.as_bytes() for m in part.get_payload()
                                if isinstance(m, email.message.Message)), True
            except Exception:  # the generator chokes on some hostile trees
                return None, False
        return None, False
    before = len(part.defects)
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return None, False
    if not isinstance(data, bytes):
        return None, False
    damaged = any(type(d).__name__ in _BASE64_DEFECTS for d in part.defects[before:])
    return data, not damaged


def _decode_enclosed(part: email.message.Message) -> email.message.Message | None:
    """A message/rfc822 part sent (against RFC 2046) in base64 or quoted-printable."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte not in ("base64", "quoted-printable"):
        return None
    inner = part.get_payload()
    if not isinstance(inner, list) or len(inner) != 1:
        return None
    body = inner[0]
    text = body.as_string() if isinstance(body, email.message.Message) else str(body)
    raw = text.encode("ascii", errors="ignore")
    try:
        data = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/=]", b"", raw) + b"==") \
            if cte == "base64" else quopri.decodestring(raw)
    except (binascii.Error, ValueError):
        return None
    return email.message_from_bytes(data, policy=email.policy.compat32)


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
    while stack:
        part, depth, nested, in_encrypted = stack.pop()
        count += 1
        if count > max_parts:
            incomplete = f"more than {max_parts} MIME parts"
            kinds.add("too_many_parts")
            break
        if depth > max_depth:
            incomplete = f"MIME nesting deeper than {max_depth}"
            kinds.add("too_deep")
            break
        if defect_kinds.header_bytes(part) > limits.max_header_bytes:
            incomplete = f"a header block over {limits.max_header_bytes} bytes"
            kinds.add("header_too_large")
            break
        for d in part.defects:
            if len(defects) < MAX_DEFECTS:
                defects.append(type(d).__name__)
        kinds |= defect_kinds.part_kinds(part)
        ctype = content_type(part)
        maintype = ctype.split("/", 1)[0]
        if part.is_multipart():
            children = [c for c in part.get_payload() if isinstance(c, email.message.Message)]
            if maintype == "message":
                # An attached message is an attachment too (a SULIT mail forwarded as
                # .eml is unencrypted content), and its parts are walked as well.
                if in_encrypted:
                    encrypted.add(len(attachments))
                attachments.append(Leaf("attachment", len(attachments), part, ctype, nested))
                kinds |= defect_kinds.name_kinds(filenames(part))
                decoded = _decode_enclosed(part)
                if decoded is not None:
                    children = [decoded]
                for child in children:
                    enclosed.append(Enclosed(len(enclosed), child, nested + 1, filename(part)))
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
        names = filenames(part)
        kinds |= defect_kinds.name_kinds(names)
        is_text = ctype in ("text/plain", "text/html") or maintype == "multipart"
        if is_text and not names and disposition(part) != "attachment":
            bodies.append(Leaf("body", len(bodies), part, ctype, nested))
        else:
            if in_encrypted:
                encrypted.add(len(attachments))
            attachments.append(Leaf("attachment", len(attachments), part, ctype, nested))
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
