"""Outlook items (`.msg`, [MS-OXMSG]): the enclosed message a mail client shows.

STUB (issue 10): filled in by the Outlook reader.
"""

from __future__ import annotations

from gateway.message.documents.bounds import Bounds
from gateway.message.documents.enclosure import BadEnclosure, Enclosure


def looks_like_msg(data: bytes) -> bool:
    """An OLE compound file with the `__properties_version1.0` stream of an Outlook item."""
    return False


def read(data: bytes, bounds: Bounds) -> Enclosure:
    """Raises BadEnclosure when it cannot be read; LimitExceeded beyond the bounds."""
    raise BadEnclosure("not implemented")
