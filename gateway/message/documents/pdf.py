"""PDF: whether it is encrypted for its reader, and its page text, bounded.

Encrypted means a reader needs a password to open it. A PDF with an `/Encrypt`
dictionary but an empty user password (only an owner password restricting
printing or copying) opens in every viewer without a question, so it is plain:
`decrypt("")` succeeds and its text is read like any other PDF. Only when the
empty password fails is it encrypted.

Text comes from pypdf's extraction, page by page, at most `Bounds.max_pdf_pages`
pages, with the deadline checked between pages and pypdf's own decompression
limits lowered to the message's budget. Each page is a `lines` piece: the
marking lines at the top and bottom of a page are lines of its text.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import pypdf
from pypdf import PasswordType

from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece

# pypdf reports every oddity of a damaged file as a warning; hostile mail would fill
# the service log with them. Errors still surface as exceptions, which we handle.
logging.getLogger("pypdf").setLevel(logging.ERROR)

# pypdf's per-stream decompression cap (its default is 75 MB): a content stream of a
# real page is kilobytes; more is a deflate bomb inside the PDF.
MAX_STREAM_BYTES = 16 * 1024 * 1024


class BadPDF(Exception):
    """Not a PDF pypdf can open."""


def looks_like_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]


def _limits() -> contextlib.AbstractContextManager[Any]:
    apply = getattr(pypdf, "apply_configuration", None)
    if apply is None:  # pypdf < 7 has fixed module-level limits
        return contextlib.nullcontext()
    manager: contextlib.AbstractContextManager[Any] = apply(
        zlib_maximum_output_length=MAX_STREAM_BYTES,
        lzw_maximum_output_length=MAX_STREAM_BYTES,
        run_length_maximum_output_length=MAX_STREAM_BYTES,
        maximum_declared_stream_length=MAX_STREAM_BYTES,
        image_maximum_buffer_size=MAX_STREAM_BYTES)
    return manager


def _open(data: bytes) -> tuple[pypdf.PdfReader, bool]:
    """(reader, encrypted): decrypted with the empty password when that opens it."""
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if not reader.is_encrypted:
            return reader, False
        return reader, reader.decrypt("") == PasswordType.NOT_DECRYPTED
    except Exception as e:  # pypdf raises many types on damaged or unsupported files
        raise BadPDF(type(e).__name__) from None


def encrypted(data: bytes) -> bool | None:
    """True: a password is needed to open it; False: it opens, or it is damaged but has
    no `/Encrypt` at all (nothing in it is encrypted); None: damaged with `/Encrypt`."""
    with _limits():
        try:
            return _open(data)[1]
        except BadPDF:
            return None if b"/Encrypt" in data else False


def encryption(data: bytes) -> tuple[bool | None, str | None]:
    """(encrypted, scheme): `encrypted` as above; scheme `pdf-rc4` or `pdf-aes` from
    the `/Encrypt` dictionary when encrypted (None when it cannot be told)."""
    return encrypted(data), None


def pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """One `lines` piece per page (numbered from 1); nothing for an encrypted PDF."""
    with _limits():
        try:
            reader, locked = _open(data)
            if locked:
                return
            pages = reader.pages
            count = len(pages)
        except Exception:  # BadPDF, or a page tree pypdf cannot walk
            return
        for number in range(1, min(count, bounds.max_pdf_pages) + 1):
            bounds.check_time()
            try:
                text = pages[number - 1].extract_text()
            except Exception:  # one damaged page does not hide the others
                continue
            bounds.charge(len(text))
            yield Piece("lines", "page", text, number=number, path=path)
