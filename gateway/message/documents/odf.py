"""OpenDocument text, spreadsheets and presentations (ODF 1.2/1.3), packaged or flat XML.

STUB (issue 10): filled in by the OpenDocument reader.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece


def is_odf(names: set[str]) -> bool:
    """A ZIP that is an ODF package (a `mimetype` entry, or `content.xml` with a
    `META-INF/manifest.xml`)."""
    return "mimetype" in names and "content.xml" in names


def looks_like_flat(head: bytes) -> bool:
    """A flat ODF XML document (.fodt/.fods/.fodp): `<office:document` in the head."""
    return b"<office:document" in head


def pieces(zf: zipfile.ZipFile, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    return iter(())


def flat_pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    return iter(())


def encryption(zf: zipfile.ZipFile) -> tuple[bool, str | None]:
    """(encrypted, scheme): encrypted when the manifest declares
    `manifest:encryption-data` for the content; scheme `aes` or `blowfish`."""
    return False, None
