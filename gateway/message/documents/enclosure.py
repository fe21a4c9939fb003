"""`Enclosure`: a message carried inside a file (Outlook `.msg`, TNEF `winmail.dat`).

The readers (`msg`, `tnef`) turn such a file into what a mail client would show of
it: the subject, the body texts, the transport headers it kept, and every attached
file (itself possibly another enclosed message). The message view makes the files
attachments for every rule (type, name, size, encryption, markings), exactly as if
they had been attached to the mail itself; the document walk reads the same
structure for markings when such a file sits inside an archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BodyKind = Literal["plain", "html", "rtf"]


@dataclass(frozen=True)
class EnclosedFile:
    """One file attached to an enclosed message.

    `names`: every name the container gives it (long name first, then the short
    8.3 one, distinct, none empty; () when it has none). `data`: the file's bytes
    (b"" for an embedded message). `message`: an attached message (an Outlook item
    attached to an item), read the same way, or None.
    """

    names: tuple[str, ...]
    data: bytes
    declared_type: str = "application/octet-stream"
    message: Enclosure | None = None


@dataclass(frozen=True)
class Enclosure:
    """What a mail client shows of an enclosed message.

    `bodies`: (kind, text) with the text already as a reader sees it: plain text
    as is, HTML rendered to text, RTF reduced to its text. `headers`: (name,
    value) of the transport headers the container kept (PR_TRANSPORT_MESSAGE_HEADERS),
    decoded. `complete` is False when the reader skipped something it could not
    read (a damaged stream): the caller then cannot vouch for the message.
    """

    kind: Literal["msg", "tnef"]
    subject: str = ""
    bodies: tuple[tuple[BodyKind, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    files: tuple[EnclosedFile, ...] = field(default=())
    complete: bool = True


class BadEnclosure(Exception):
    """The file claims to be an Outlook item or TNEF stream but cannot be read."""
