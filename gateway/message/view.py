"""The parsed, read-only view of one message that every check reads.

Built from the raw bytes alone; every part is computed lazily on first use and
cached, so a rule set that never asks for attachments never decodes one. The
view never changes the message: transforms work on the raw bytes.
"""

from __future__ import annotations

import email
import email.message
import email.policy
from dataclasses import dataclass
from functools import cached_property

from gateway.message import headers as hdr
from gateway.message import markings as markings_mod


@dataclass(frozen=True)
class Attachment:
    """One attachment as the policy sees it (decoded size, real type, encryption)."""

    filename: str
    declared_type: str
    size: int  # decoded bytes
    detected_type: str  # libmagic MIME type of the content
    category: str  # executable | archive | office | pdf | image | text | other
    encrypted: bool | None  # None: could not inspect


@dataclass(frozen=True)
class TextPart:
    where: str  # e.g. "body", "body:html", "attachment:a.txt"
    text: str


class MessageView:
    def __init__(self, raw: bytes, *, classification_headers: tuple[str, ...] = (
            "X-Classification", "X-Pengelasan")) -> None:
        self.raw = raw
        self.classification_headers = classification_headers

    @property
    def size(self) -> int:
        return len(self.raw)

    @cached_property
    def message(self) -> email.message.Message:
        # compat32 is lenient with broken input and much cheaper than policy.default;
        # header decoding is done explicitly in `headers`.
        return email.message_from_bytes(self.raw, policy=email.policy.compat32)

    @cached_property
    def header_block(self) -> bytes:
        end = hdr.header_end(self.raw)
        return self.raw[:end]

    def header_values(self, name: str) -> tuple[str, ...]:
        """Decoded (RFC 2047) values of every header with this name, in order."""
        return tuple(hdr.decode(v) for v in hdr.raw_values(self.header_block, name))

    @cached_property
    def subject(self) -> str:
        values = self.header_values("Subject")
        return values[0] if values else ""

    @cached_property
    def message_id(self) -> str:
        values = self.header_values("Message-ID")
        return values[0].strip() if values else ""

    @cached_property
    def from_addresses(self) -> tuple[str, ...]:
        return hdr.addresses(self.header_values("From"))

    @cached_property
    def from_header(self) -> str:
        values = self.header_values("From")
        return values[0] if values else ""

    @cached_property
    def markings(self) -> markings_mod.Markings:
        """Every classification marking found, with where (see MARKINGS.md)."""
        return markings_mod.detect(self)

    @property
    def classification(self) -> str | None:
        """The highest marking found (RAHSIA BESAR > RAHSIA > SULIT > TERHAD), or None."""
        return self.markings.highest
