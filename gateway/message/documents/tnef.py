"""TNEF (`winmail.dat`, `application/ms-tnef`, [MS-OXTNEF]): the enclosed message.

STUB (issue 10): filled in by the TNEF reader.
"""

from __future__ import annotations

from gateway.message.documents.bounds import Bounds
from gateway.message.documents.enclosure import BadEnclosure, Enclosure

SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian


def looks_like_tnef(head: bytes) -> bool:
    return head.startswith(SIGNATURE)


def read(data: bytes, bounds: Bounds) -> Enclosure:
    """Raises BadEnclosure when it cannot be read; LimitExceeded beyond the bounds."""
    raise BadEnclosure("not implemented")
