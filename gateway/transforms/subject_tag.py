"""Prefixing a tag such as `[HEBAHAN JANM]` to the Subject, on the raw bytes.

Only the first Subject field changes; every other byte of the message stays as
received. A subject that already carries the tag (compared on the decoded text,
ignoring case and spaces, so `Re: [hebahan janm] ...` counts) is left alone, so a
tag is never doubled along a reply chain.

How the field is rewritten:
- a plain ASCII subject (no encoded words), or an 8-bit one that is not UTF-8 and
  so cannot be decoded faithfully: the tag is inserted before the value and the
  rest of the field, folding included, is kept byte for byte;
- anything else (RFC 2047 encoded words, raw UTF-8): the tagged subject is decoded
  and written again as UTF-8 encoded words, folded under 78 characters;
- no Subject field: one is added at the end of the header block.
The tag is cleaned of CR, LF and other control characters first, so it can never
start a new header line.

`defang_subject` replaces a tag quoted after reply or forward prefixes
(`gateway.message.subject_prefix`: `Re: [HEBAHAN JANM] ...`, look-alikes too) by a
text that does not read as it (`Re: [HEBAHAN JANM - TIDAK DISAHKAN] ...`); a bare tag
is left alone (the rules refuse it). When the tag as written is ASCII and occurs once
in a field without encoded words, those bytes alone are replaced; otherwise the field
is written again as UTF-8 encoded words, as above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.message import headers as hdr
from gateway.message.subject_prefix import find_quoted, tag_pattern
from gateway.message.text import fold as fold_text
from gateway.transforms.headers import encoded_words, fold, line_ending, one_line

# RFC 5322 2.1.1: a line MUST NOT be longer than 998 characters.
_HARD_LIMIT = 998
_SPACES = re.compile(r"\s+")
_LEADING_WSP = re.compile(rb"[ \t]*")


@dataclass(frozen=True)
class _Field:
    start: int  # offset of the field name
    colon: int  # offset of the ':' after the name
    end: int  # offset just past the field's last line ending


@dataclass(frozen=True)
class _Header:
    subject: _Field | None
    insert_at: int  # where a new field goes: before the blank line (or at the end)
    terminated: bool  # the header block's last line ends with a line break


def _scan(raw: bytes) -> _Header:
    pos = 0
    current: _Field | None = None
    subject: _Field | None = None
    terminated = True
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        stop = len(raw) if nl == -1 else nl + 1
        line = raw[pos:stop]
        if line.rstrip(b"\r\n") == b"":
            break  # the blank line that ends the header block
        terminated = line.endswith(b"\n")
        if line[:1] in (b" ", b"\t") and current is not None:
            current = _Field(current.start, current.colon, stop)
        else:
            colon = line.find(b":")
            current = _Field(pos, pos + colon, stop) if colon > 0 else None
            if current is not None and subject is None:
                name = raw[current.start:current.colon].strip().lower()
                if name == b"subject":
                    subject = current
        if subject is not None and current is not None and current.start == subject.start:
            subject = current
        pos = stop
    return _Header(subject=subject, insert_at=pos, terminated=terminated)


def _compact(text: str) -> str:
    return _SPACES.sub("", text).casefold()


def has_tag(subject: str, tag: str) -> bool:
    """Whether the decoded subject already carries the tag (case and spaces ignored).

    Anywhere in the subject, so after any run of reply and forward prefixes (Re:,
    RE:, Fwd:, FW:, Balas:, Majukan: ...). The folded subject (NFKC, zero-width
    characters dropped, look-alike letters mapped) counts too, as it does for the
    `subject_matches` rule that refuses a forged tag: what that rule reads as the
    tag is never tagged a second time.
    """
    want = _compact(tag)
    if not want:
        return False
    return want in _compact(subject) or want in _compact(fold_text(subject))


def _ending(data: bytes) -> bytes:
    if data.endswith(b"\r\n"):
        return b"\r\n"
    return b"\n" if data.endswith(b"\n") else b""


def _encoded_field(name: str, text: str, eol: bytes, ending: bytes) -> bytes:
    words = encoded_words(text, hdr_room(name))
    out = fold(name, words, eol)
    return out if ending else out[: -len(eol)]


def hdr_room(name: str) -> int:
    """Room for the first encoded word on the `Name: ` line."""
    return 78 - len(name) - 2


def _insert_plain(value: bytes, tag: bytes) -> bytes | None:
    """`value` with the tag put in front, the rest byte-identical; None if too long."""
    lead = _LEADING_WSP.match(value)
    assert lead is not None
    rest = value[lead.end():]
    prefix = value[:lead.end()] or b" "
    body = rest.rstrip(b"\r\n")
    # An empty first line (the value starts on a continuation line) or no value at
    # all needs no separating space: the fold or the end of the field separates.
    first_line_empty = body == b"" or rest.startswith((b"\r\n", b"\n"))
    new = prefix + tag + (b"" if first_line_empty else b" ") + rest
    first = new.split(b"\n", 1)[0].rstrip(b"\r")
    return None if len(first) + len(b"Subject:") > _HARD_LIMIT else new


def tag_subject(raw: bytes, tag: str) -> bytes:
    """`raw` with `tag` prefixed to its Subject (added if missing), at most once."""
    tag = one_line(tag)
    if not tag:
        return raw
    eol = line_ending(raw)
    head = _scan(raw)
    field = head.subject
    if field is None:
        if tag.isascii() and "=?" not in tag:
            new = b"Subject: " + tag.encode("ascii") + eol
        else:
            new = _encoded_field("Subject", tag, eol, eol)
        lead = b"" if head.terminated else eol
        return raw[:head.insert_at] + lead + new + raw[head.insert_at:]
    value = raw[field.colon + 1:field.end]
    subject = hdr.decode(value)
    if has_tag(subject, tag):
        return raw
    tag_plain = tag.isascii() and "=?" not in tag
    try:
        value.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    if tag_plain and b"=?" not in value and (value.isascii() or not utf8):
        inserted = _insert_plain(value, tag.encode("ascii"))
        if inserted is not None:
            return raw[:field.colon + 1] + inserted + raw[field.end:]
    name = raw[field.start:field.colon].decode("ascii", errors="replace")
    text = f"{tag} {one_line(subject)}".strip()
    new_field = _encoded_field(name, text, eol, _ending(value))
    return raw[:field.start] + new_field + raw[field.end:]


def defang_subject(raw: bytes, tag: str, replacement: str) -> bytes:
    """`raw` with the tag quoted in its first Subject field replaced by `replacement`;
    `raw` itself when the subject quotes no tag (or has no Subject field)."""
    replacement = one_line(replacement)
    field = _scan(raw).subject
    if field is None or not replacement:
        return raw
    value = raw[field.colon + 1:field.end]
    subject = hdr.decode(value)
    quote = find_quoted(subject, tag_pattern(tag))
    if quote is None:
        return raw
    start, end = quote.span
    written = subject[start:end]
    if (written.isascii() and replacement.isascii() and "=?" not in replacement
            and b"=?" not in value and value.count(written.encode("ascii")) == 1):
        inner = value.replace(written.encode("ascii"), replacement.encode("ascii"))
        first = inner.split(b"\n", 1)[0].rstrip(b"\r")
        if len(first) + len(b"Subject:") <= _HARD_LIMIT:
            return raw[:field.colon + 1] + inner + raw[field.end:]
    new = subject[:start] + replacement + subject[end:]
    eol = line_ending(raw)
    name = raw[field.start:field.colon].decode("ascii", errors="replace")
    new_field = _encoded_field(name, one_line(new).strip(), eol, _ending(value))
    return raw[:field.start] + new_field + raw[field.end:]


def tagged_subject(raw: bytes, tags: tuple[str, ...],
                   defangs: tuple[tuple[str, str], ...] = ()) -> str | None:
    """The first Subject field's new value after `defangs` ((tag, replacement), see
    `defang_subject`) and `tags` (as `transforms.apply` makes them), for front ends that
    change the field rather than the bytes (the milter).

    None when they change nothing. The value is what follows the colon, leading
    white space dropped, folded lines joined by LF plus white space as milter header
    changes expect; '' when the message has no Subject field at all.
    """
    out = raw
    for quoted, replacement in defangs:
        out = defang_subject(out, quoted, replacement)
    for tag in reversed(tags):
        out = tag_subject(out, tag)
    if out == raw:
        return None
    field = _scan(out).subject
    if field is None:
        return ""
    value = out[field.colon + 1:field.end].decode("utf-8", errors="surrogateescape")
    return value.replace("\r\n", "\n").rstrip("\r\n").lstrip(" \t")
