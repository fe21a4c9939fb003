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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.message.headers import decode_str
from gateway.message.text import decode_bytes

# Bounds on one message (config keys come later). 5000 parts covers the worst real
# mail seen (3043 parts, a reply chain of HTML alternatives); 30 levels of nesting is
# far beyond any mail client's forward-as-attachment chain.
MAX_PARTS = 5000
MAX_DEPTH = 30
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
    if count_delimiters(raw, max_parts) > max_parts:
        return None, f"more than {max_parts} MIME parts"
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32), None
    except RecursionError:
        return None, "MIME nesting too deep to parse"
    except Exception:  # the parser is lenient; anything else is a bug we fail closed on
        return None, "MIME structure could not be parsed"


def walk(root: email.message.Message | None, incomplete: str | None = None, *,
         max_parts: int = MAX_PARTS, max_depth: int = MAX_DEPTH) -> Structure:
    if root is None:
        return Structure(root=None, incomplete=incomplete or "no message")
    bodies: list[Leaf] = []
    attachments: list[Leaf] = []
    enclosed: list[Enclosed] = []
    defects: list[str] = []
    encrypted: set[int] = set()
    count = 0
    # (part, depth, nested, inside multipart/encrypted)
    stack: list[tuple[email.message.Message, int, int, bool]] = [(root, 0, 0, False)]
    while stack:
        part, depth, nested, in_encrypted = stack.pop()
        count += 1
        if count > max_parts:
            incomplete = f"more than {max_parts} MIME parts"
            break
        if depth > max_depth:
            incomplete = f"MIME nesting deeper than {max_depth}"
            break
        for d in part.defects:
            if len(defects) < MAX_DEFECTS:
                defects.append(type(d).__name__)
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
        name = filename(part)
        is_text = ctype in ("text/plain", "text/html") or maintype == "multipart"
        if is_text and not name and disposition(part) != "attachment":
            bodies.append(Leaf("body", len(bodies), part, ctype, nested))
        else:
            if in_encrypted:
                encrypted.add(len(attachments))
            attachments.append(Leaf("attachment", len(attachments), part, ctype, nested))
    return Structure(root=root, bodies=tuple(bodies), attachments=tuple(attachments),
                     enclosed=tuple(enclosed), defects=tuple(defects), parts=count,
                     incomplete=incomplete, encrypted_parts=frozenset(encrypted))


def iter_header(message: email.message.Message, name: str) -> Iterator[str]:
    """Raw (undecoded) values of a header of a parsed part."""
    try:
        values = message.get_all(name) or []
    except Exception:
        return
    for v in values:
        yield str(v)
