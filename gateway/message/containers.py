"""Attachments that are messages: Outlook items (`.msg`) and TNEF (`winmail.dat`).

A mail client shows the files inside such an attachment as attachments of their
own, so the policy must judge them as attachments too: type, executables, name,
size, encryption and markings (MARKINGS.md 4; PPPA 3/2025 Lampiran A
3.2.2(a)(ii)(g): attachments free of malicious code). This module says whether an
attachment's bytes are such a container (by content, never by name), reads it
(`documents.msg`, `documents.tnef`), and turns every file in it, including the
files of messages embedded in it, into a MIME part the message view walks like
any other attachment.

Bounds: reading is charged to the message's document `Bounds` (bytes, time);
embedding deeper than `max_archive_depth` raises `LimitExceeded`. A container
that cannot be read raises `BadEnclosure`: its files are unknown, so the view is
then not inspectable (fail closed), never an attachment with no files.
"""

from __future__ import annotations

import base64
import email.message
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from gateway.message.documents import LimitExceeded, msg, ole, tnef
from gateway.message.documents.bounds import Bounds
from gateway.message.documents.enclosure import BadEnclosure, EnclosedFile, Enclosure

Kind = Literal["msg", "tnef"]

# libmagic types an Outlook item or a TNEF stream may be given; anything else is not
# looked at (a container is recognised by its content, these only spare decoding).
CANDIDATE_TYPES = frozenset({
    "application/vnd.ms-tnef", "application/ms-tnef", "application/vnd.ms-outlook",
    "application/x-ole-storage", "application/cdfv2", "application/cdfv2-unknown",
    "application/vnd.ms-office", "application/octet-stream"})


@dataclass(frozen=True)
class File:
    """One file of a container: where it stood (`winmail.dat/AUTOEXEC.BAT`, names of
    embedded messages in between) and what the container says of it."""

    path: str
    file: EnclosedFile
    depth: int  # 1: in the container itself; 2: in a message embedded in it...


def kind(data: bytes) -> Kind | None:
    """`msg` or `tnef` when the bytes are such a container, else None."""
    if tnef.looks_like_tnef(data[:16]):
        return "tnef"
    if ole.is_ole(data[:16]) and msg.looks_like_msg(data):
        return "msg"
    return None


def read(data: bytes, found: Kind, bounds: Bounds) -> Enclosure:
    """The enclosed message. Raises BadEnclosure or LimitExceeded."""
    return msg.read(data, bounds) if found == "msg" else tnef.read(data, bounds)


def files(enclosure: Enclosure, path: str, bounds: Bounds, depth: int = 1) -> Iterator[File]:
    """Every file of the enclosure and of the messages embedded in it, depth first.

    An embedded message is not a file here (its subject and bodies are read with
    its container's, `documents.walk.enclosure_pieces`); its files are. Raises
    BadEnclosure, after the files that could be read, when the reader skipped
    something (`Enclosure.complete` False): what is missing cannot be vouched for."""
    if depth > bounds.limits.max_archive_depth:
        raise LimitExceeded(
            f"messages embedded deeper than {bounds.limits.max_archive_depth}")
    for index, file in enumerate(enclosure.files, start=1):
        bounds.check_time()
        name = file.names[0] if file.names else f"attachment{index}"
        inner = f"{path}/{name}"
        if file.message is not None:
            yield from files(file.message, inner, bounds, depth + 1)
        else:
            yield File(inner, file, depth)
    if not enclosure.complete:
        raise BadEnclosure(f"{path}: a part of the enclosed message could not be read")


def set_name(part: email.message.Message, param: str, header: str, value: str) -> None:
    """`param=value` on the part's `header`, RFC 2231-encoded when not ASCII."""
    part.set_param(param, value, header=header, charset=None if value.isascii() else "utf-8")


def mime_part(file: EnclosedFile) -> email.message.Message:
    """A MIME part carrying the file as a mail client would attach it: every name the
    container gives as a `filename` or `name` parameter (RFC 2231 for non-ASCII),
    the declared type, the bytes in base64."""
    part = email.message.Message()
    declared = file.declared_type if "/" in file.declared_type else "application/octet-stream"
    names = file.names or ("",)
    part["Content-Type"] = declared
    part["Content-Disposition"] = "attachment"
    if names[0]:
        # The long name as filename=, the short (8.3) one as name=, and every other name
        # the container gives as a further Content-Disposition: each variant is judged
        # (mime.filenames reads every header), as a client may show any of them.
        set_name(part, "filename", "Content-Disposition", names[0])
        set_name(part, "name", "Content-Type", names[-1])
        for other in names[1:-1]:
            extra = email.message.Message()
            extra["Content-Disposition"] = "attachment"
            set_name(extra, "filename", "Content-Disposition", other)
            part["Content-Disposition"] = extra["Content-Disposition"]
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(base64.encodebytes(file.data).decode("ascii"))
    return part


__all__ = ["CANDIDATE_TYPES", "BadEnclosure", "File", "files", "kind", "mime_part", "read"]
