"""The corpus as messages: a document of tests/corpus/cases/ as the one attachment of a
plain message, the way the corpus test, the fast-path property test and
bench/inspect.py all inspect it (the same bytes everywhere)."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from pathlib import Path


def wrap(name: str, data: bytes) -> bytes:
    """A plain message from pegawai@anm.gov.my carrying `data` as attachment `name`."""
    msg = EmailMessage()
    msg["From"] = "Pegawai <pegawai@anm.gov.my>"
    msg["To"] = "penerima@example.org"
    msg["Subject"] = "Dokumen"
    msg["Message-ID"] = "<korpus@anm.gov.my>"
    msg.set_content("Salam, dokumen dilampirkan.\n")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


def message_of(path: Path) -> bytes:
    """An .eml as it is; any other file wrapped by `wrap`."""
    data = path.read_bytes()
    return data if path.suffix.lower() == ".eml" else wrap(path.name, data)
