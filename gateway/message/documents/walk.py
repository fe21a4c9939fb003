"""One attachment's documents, recursively: the text pieces a marking may stand in.

`pieces(data, bounds)` looks at the bytes, not the name or declared type:
- a ZIP that is an OOXML package: its parts (`ooxml`), then its embedded OOXML files;
- any other ZIP: every entry's name (a `filename` piece), then every readable,
  unencrypted member that is itself a document (ZIP, PDF or text), recursively;
- a PDF: its pages (`pdf`);
- text (inside archives only: the view reads top-level text attachments itself,
  with their declared charset): a `lines` piece.
Everything else (images, legacy binary Office, encrypted members) gives nothing.

Nesting counts the archives around a document (the attachment itself is at
level 0, an OOXML file is an archive too): an archive at a level beyond
`max_archive_depth` makes the walk raise `LimitExceeded`, as it does for a bomb
(`archives`) or for time and bytes (`bounds`). A member that cannot be read
(corrupt, unsupported compression) is skipped: its name was still read.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.message import filetypes
from gateway.message.documents import archives, ooxml, pdf
from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.piece import Piece
from gateway.message.text import decode_bytes

PEEK = 4096


def _kind(head: bytes) -> str:
    if archives.is_zip(head):
        return "zip"
    if pdf.looks_like_pdf(head):
        return "pdf"
    if filetypes.category(filetypes.detect(head)) == "text":
        return "text"
    return "other"


def pieces(data: bytes, bounds: Bounds, *, path: str = "", depth: int = 0,
           text: bool = False) -> Iterator[Piece]:
    """Pieces of one document (module docstring). `text`: read text content too."""
    bounds.check_time()
    kind = _kind(data[:PEEK])
    if kind == "zip":
        yield from _zip(data, bounds, path, depth)
    elif kind == "pdf":
        yield from pdf.pieces(data, bounds, path)
    elif kind == "text" and text:
        yield Piece("lines", "content", decode_bytes(data, None), path=path)


def _zip(data: bytes, bounds: Bounds, path: str, depth: int) -> Iterator[Piece]:
    if depth > bounds.limits.max_archive_depth:
        raise LimitExceeded(f"archives nested deeper than {bounds.limits.max_archive_depth}")
    try:
        zf = archives.open_zip(data, bounds.limits)
    except archives.BadArchive:
        return
    with zf:
        infos = zf.infolist()
        if ooxml.is_ooxml({i.filename for i in infos[:1000]}):
            yield from ooxml.pieces(zf, bounds, path)
            members = ooxml.embedded(zf)
        else:
            for info in infos:
                yield Piece("filename", "filename", info.filename,
                            path=_join(path, info.filename))
            members = [i for i in infos if not i.is_dir() and not i.flag_bits & 0x1]
        for info in members:
            bounds.check_time()
            head = archives.peek(zf, info, PEEK)
            if not head or _kind(head) == "other":
                continue
            member = archives.read_member(zf, info, bounds)
            if member is None:
                continue
            yield from pieces(member, bounds, path=_join(path, info.filename),
                              depth=depth + 1, text=True)


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name

