"""One attachment's documents, recursively: the text pieces a marking may stand in.

`pieces(data, bounds)` looks at the bytes, not the name or declared type:
- a ZIP that is an OOXML package: its parts (`ooxml`), then its embedded OOXML files;
- a ZIP that is an OpenDocument package: its parts (`odf`);
- any other ZIP: every entry's name (a `filename` piece), then every readable,
  unencrypted member that is itself a document, recursively;
- a tar archive, plain or compressed with gzip, bzip2, xz or lzma: every member's name
  (a `filename` piece), then every regular member that is a document, recursively; a
  single gzip, bzip2, xz or lzma file: the name gzip kept, then the file it holds
  (`compressed`, as defensively as ZIP: ratio, bytes, time, entries);
- a 7z or RAR archive that is not encrypted, or any other archive libmagic names:
  an `unreadable` piece, for its files are not read (no decoder for them is shipped;
  an encrypted 7z or RAR gives nothing, as an encrypted ZIP member does);
- a PDF: its pages (`pdf`);
- an OLE compound file: an Outlook item (`msg`) or a legacy Word, Excel or
  PowerPoint file (`ole`);
- TNEF (`winmail.dat`, `tnef`); an Outlook item or TNEF stream is read as an
  enclosed message: its subject, bodies, and every attached file recursively;
- RTF (`rtf`), flat OpenDocument XML (`odf`);
- an image: an `unreadable` piece (a picture has no text to vouch for);
- text (inside archives and enclosed messages only: the view reads top-level text
  attachments itself, with their declared charset): a `lines` piece; a message
  saved as a file (`.eml`) is read as a message: its subject, classification
  headers, bodies and attachments (names and content, recursively).
Everything else (programs, unknown binaries, encrypted members) gives nothing.

Nesting counts the containers around a document (the attachment itself is at
level 0, an OOXML file is an archive too): a container at a level beyond
`max_archive_depth` makes the walk raise `LimitExceeded`, as it does for a bomb
(`archives`) or for time and bytes (`bounds`). A member that cannot be read
(corrupt, unsupported compression) is skipped: its name was still read. An Outlook
item or TNEF stream inside an archive that cannot be read raises `LimitExceeded`
(what it holds is unknown), as the same item attached to the message makes the
message not inspectable. A damaged or truncated tar or compressed file ends quietly
with what was read, as a ZIP does (`compressed` says why). What a file is comes from
its content: a ZIP after a prefix (a self-extractor stub), after a compressed stream
or a tar archive, or appended to a 7z or RAR archive, and a flat OpenDocument after a
long prolog are found too (`kind_of`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from gateway.message import filetypes, mime
from gateway.message.documents import (
    archives,
    compressed,
    msg,
    odf,
    ole,
    ooxml,
    pdf,
    rar,
    rtf,
    sevenzip,
    tnef,
)
from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.enclosure import BadEnclosure, Enclosure
from gateway.message.documents.piece import Piece
from gateway.message.headers import decode_str
from gateway.message.text import decode_bytes, html_to_text

PEEK = 4096

Kind = Literal["zip", "tar", "compressed", "sevenzip", "rar", "archive", "pdf", "msg", "ole",
               "tnef", "rtf", "flat_odf", "image", "text", "other"]


def kind(head: bytes) -> Kind:
    """What reader a document's first bytes call for (`PEEK` bytes are enough, except
    that telling an Outlook item from other OLE files needs the whole file:
    `kind_of`)."""
    if archives.is_zip(head):
        return "zip"
    # Archives before PDF: `%PDF-` within the first KB is the first member of a tar (at
    # 512) or a 7z whose first file is stored (at 32), not the whole file.
    if compressed.compression(head) is not None:
        return "compressed"
    if compressed.is_tar(head):
        return "tar"
    if head.startswith(sevenzip.SIGNATURE):
        return "sevenzip"
    if rar.is_rar(head):
        return "rar"
    if pdf.looks_like_pdf(head):
        return "pdf"
    if ole.is_ole(head):
        return "ole"
    if tnef.looks_like_tnef(head):
        return "tnef"
    if rtf.looks_like_rtf(head):
        return "rtf"
    if odf.looks_like_flat(head):
        return "flat_odf"
    detected = filetypes.detect(head)
    category = filetypes.category(detected)
    if category == "image":
        return "image"
    if category == "text":
        return "text"
    if detected in ("application/x-tar", "application/x-gtar"):
        # `ustar\0` at 257 but a first header that fails its checksum: GNU tar skips to
        # the next good header, and so does the tar reader (`compressed`).
        return "tar"
    if category == "archive":
        return "archive"  # one no reader here opens (cab, cpio, zstd, lzip...)
    return "other"


# Kinds a document reader reads, or reports as unreadable (the rest: pictures, text,
# unknown bytes).
DOCUMENT_KINDS = frozenset({"zip", "tar", "compressed", "sevenzip", "rar", "archive", "pdf",
                            "msg", "ole", "tnef", "rtf", "flat_odf"})
# Archives whose files are not read: the name a finding gives them.
_SEALED = {"sevenzip": "7z", "rar": "RAR"}
# How far into a file a flat OpenDocument's root element may stand, after the XML
# declaration, comments and processing instructions a sender put first.
PROLOG = 1024 * 1024


def kind_of(data: bytes) -> Kind:
    """`kind` of a whole document, telling Outlook items (`msg`) from other OLE files,
    a flat OpenDocument behind a long prolog and a ZIP behind a prefix (a self-extractor
    stub, junk: ZIP readers find the archive by its directory at the end)."""
    found = kind(data[:PEEK])
    if found == "ole" and msg.looks_like_msg(data):
        return "msg"
    if found in ("text", "other", "archive"):
        if odf.looks_like_flat(data[:PROLOG]):
            return "flat_odf"
        if archives.has_directory(data):
            return "zip"
    return found


def pieces(data: bytes, bounds: Bounds, *, path: str = "", depth: int = 0,
           text: bool = False) -> Iterator[Piece]:
    """Pieces of one document (module docstring). `text`: read text content too."""
    bounds.check_time()
    found = kind_of(data)
    if found == "zip":
        yield from _zip(data, bounds, path, depth)
    elif found in ("tar", "compressed"):
        yield from _compressed(data, bounds, path, depth)
    elif found in ("sevenzip", "rar", "archive"):
        yield from _unread(data, found, bounds, path, depth)
    elif found == "pdf":
        yield from pdf.pieces(data, bounds, path)
    elif found == "ole":
        yield from ole.pieces(data, bounds, path)
    elif found in ("msg", "tnef"):
        _nest(bounds, depth)
        reader = msg.read if found == "msg" else tnef.read
        try:
            enclosed = reader(data, bounds)
        except BadEnclosure:
            if depth == 0:
                return  # the attachment itself: the message view judges it as a container
            # Inside an archive: what it holds (files, subject) is unknown, so it is not
            # inspectable, as the same item attached to the message is (fail closed).
            raise LimitExceeded(f"{path}: an enclosed message that cannot be read") from None
        yield from enclosure_pieces(enclosed, bounds, path, depth)
        if not enclosed.complete:
            # Its files are attachments for every rule: one that could not be read
            # cannot be vouched for (fail closed, as a bound met does).
            raise LimitExceeded(f"{path or 'an enclosed message'}: a part could not be read")
    elif found == "rtf":
        yield from rtf.pieces(data, bounds, path)
    elif found == "flat_odf":
        yield from odf.flat_pieces(data, bounds, path)
    elif found == "image":
        yield Piece("unreadable", "image", "a picture has no text to read", path=path)
    elif found == "text" and text and mime.looks_like_message(
            data[:_SNIFF], named=path.casefold().endswith(".eml"), truncated=len(data) > _SNIFF):
        yield from _message(data, bounds, path, depth)
    elif found == "text" and text:
        yield Piece("lines", "content", decode_bytes(data, None), path=path)


def enclosure_pieces(enclosed: Enclosure, bounds: Bounds, path: str, depth: int, *,
                     files: bool = True) -> Iterator[Piece]:
    """An enclosed message's subject, bodies, headers and files, recursively.

    `files=False`: not the files' names and content (the message view judges them as
    attachments of their own), but still the text of the messages embedded in it."""
    yield Piece("subject", "subject", enclosed.subject, path=path)
    for name, value in enclosed.headers:
        if name.lower() == "msip_labels":
            yield Piece("msip", "msip_labels", value, path=path)
    for _kind, body in enclosed.bodies:
        yield Piece("lines", "body", body, path=path)
    for index, file in enumerate(enclosed.files, start=1):
        name = file.names[0] if file.names else f"attachment{index}"
        inner = _join(path, name)
        if files:
            for variant in file.names:
                yield Piece("filename", "filename", variant, path=_join(path, variant))
        if file.message is not None:
            _nest(bounds, depth + 1)
            yield from enclosure_pieces(file.message, bounds, inner, depth + 1, files=files)
        elif file.data and files:
            yield from pieces(file.data, bounds, path=inner, depth=depth + 1, text=True)


_SNIFF = 64 * 1024


def _message(data: bytes, bounds: Bounds, path: str, depth: int) -> Iterator[Piece]:
    """A message saved as a file (`.eml`) inside an archive or an enclosed message: its
    subject and classification headers, its bodies, and its attachments (names and
    content) recursively, as the message view reads an attached message."""
    _nest(bounds, depth + 1)
    root, reason, _kind = mime.parse_bounded(data, bounds.limits.max_parts)
    found = mime.walk(root, reason, limits=bounds.limits)
    if found.incomplete is not None or root is None:
        raise LimitExceeded(f"{path}: {found.incomplete or 'a message that cannot be read'}")
    bounds.charge(found.expansion)
    for enclosed in (root, *(e.message for e in found.enclosed)):
        for value in mime.iter_header(enclosed, "Subject"):
            yield Piece("subject", "subject", decode_str(value), path=path)
            break
        for value in mime.iter_header(enclosed, "msip_labels"):
            yield Piece("msip", "msip_labels", decode_str(value), path=path)
    for leaf in found.bodies:
        bounds.check_time()
        body, _clean = mime.decoded_payload(leaf.part)
        text_ = decode_bytes(body or b"", mime.params(leaf.part).get("charset"))
        if leaf.content_type == "text/html":
            text_ = html_to_text(text_)[0]
        yield Piece("lines", "body", text_, path=path)
    for leaf in found.attachments:
        bounds.check_time()
        if leaf.message:
            continue  # its headers, bodies and files are walked above as enclosed
        names = mime.filenames(leaf.part)
        for name in names:
            yield Piece("filename", "filename", name, path=_join(path, name))
        content, _clean = mime.decoded_payload(leaf.part)
        if content:
            yield from pieces(content, bounds, path=_join(path, names[0] if names else
                                                          f"part{leaf.index + 1}"),
                              depth=depth + 1, text=True)


def _nest(bounds: Bounds, depth: int) -> None:
    if depth > bounds.limits.max_archive_depth:
        raise LimitExceeded(f"archives nested deeper than {bounds.limits.max_archive_depth}")


def _zip(data: bytes, bounds: Bounds, path: str, depth: int) -> Iterator[Piece]:
    _nest(bounds, depth)
    try:
        zf = archives.open_zip(data, bounds.limits)
    except archives.BadArchive:
        return
    with zf:
        infos = zf.infolist()
        # Every name (open_zip bounds their number): a package whose
        # [Content_Types].xml comes after a thousand other entries is still one.
        names = {i.filename for i in infos}
        if ooxml.is_ooxml(names):
            yield from ooxml.pieces(zf, bounds, path)
            members = ooxml.embedded(zf)
        elif odf.is_odf(names):
            yield from odf.pieces(zf, bounds, path)
            members = odf.embedded(zf)
        else:
            for info in infos:
                yield Piece("filename", "filename", info.filename,
                            path=_join(path, info.filename))
            members = [i for i in infos if not archives.is_dir(i) and not i.flag_bits & 0x1]
        for info in members:
            bounds.check_time()
            head = archives.peek(zf, info, PEEK)
            if not head or kind(head) == "other":
                continue
            member = archives.read_member(zf, info, bounds)
            if member is None:
                continue
            yield from pieces(member, bounds, path=_join(path, info.filename),
                              depth=depth + 1, text=True)


def _compressed(data: bytes, bounds: Bounds, path: str, depth: int) -> Iterator[Piece]:
    """A tar archive (plain or compressed) or a single compressed file (`compressed`):
    names as ZIP entry names, members that are documents recursively."""
    _nest(bounds, depth)
    reader = compressed.Reader(data, bounds, lambda head: kind(head) != "other", PEEK)
    for member in reader.members():
        inner = _join(path, member.name) if member.name else path
        if member.name:
            yield Piece("filename", "filename", member.name, path=inner)
        if member.data is not None:
            yield from pieces(member.data, bounds, path=inner, depth=depth + 1, text=True)
    if reader.trailing and archives.has_directory(reader.trailing):
        # A ZIP appended after the archive: what a recipient sees who opens it as one.
        yield from _zip(reader.trailing, bounds, path, depth)


def archive_encrypted(data: bytes, kind: str) -> bool | None:
    """Whether every file of a 7z or RAR archive (`kind` "sevenzip" or "rar") is
    encrypted, as `sevenzip.encrypted` / `rar.encrypted` tell (None: cannot tell);
    False for any other kind of archive, which no reader here opens."""
    if kind == "sevenzip":
        return sevenzip.encrypted(data)
    if kind == "rar":
        return rar.encrypted(data)
    return False


def _unread(data: bytes, found: Kind, bounds: Bounds, path: str, depth: int
            ) -> Iterator[Piece]:
    """A 7z or RAR archive, or another archive no reader here opens: its files are not
    read, so it is reported `unreadable` (`attachment_unreadable`), unless it is
    encrypted (a 7z or RAR whose every file is: unreadable by design, as TERHAD and SULIT
    require). Its names stay unread too: RAR keeps them in plain headers, 7z mostly in a
    compressed one, and neither `rar` nor `sevenzip` reads them yet."""
    if archive_encrypted(data, found) is not True:
        named = _SEALED.get(found)
        why = (f"the files in a {named} archive are not read" if named else
               f"the files in this archive ({filetypes.detect(data[:PEEK])}) are not read")
        yield Piece("unreadable", "archive", why, path=path)
    if archives.has_directory(data):
        # A ZIP behind it (7-Zip's and WinRAR's archives end where their headers say; a
        # ZIP reader finds one by the directory at the end of the file).
        yield from _zip(data, bounds, path, depth)


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name
