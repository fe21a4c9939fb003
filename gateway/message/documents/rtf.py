"""RTF documents: body, header and footer groups, table cells.

STUB (issue 10): filled in by the RTF reader.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece


def looks_like_rtf(head: bytes) -> bool:
    return head.lstrip()[:5] == b"{\\rtf"


def pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    return iter(())


def plain_text(data: bytes, bounds: Bounds) -> str:
    """The text a reader sees (body, then headers and footers), one paragraph a line:
    for RTF message bodies (Outlook)."""
    return ""
