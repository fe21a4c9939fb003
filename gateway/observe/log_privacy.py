"""What the rejection log may keep of a marked message's subject and Message-ID.

Owns the log key (HMAC-SHA256, RFC 2104 with SHA-256 of FIPS 180-4), the
normalisation of the hashed values and the choice, per marking, between the text,
a keyed hash and nothing:

- RAHSIA, RAHSIA BESAR: subject null, Message-ID hashed, evidence without text,
  whatever `log_subjects` says;
- TERHAD, SULIT: with `log_subjects: hashed` (the default) subject and Message-ID
  hashed and evidence without text; with `log_subjects: clear` as unmarked mail;
- unmarked: text as received.

A hash is `hmac-sha256:` followed by 64 lower-case hex digits. Without a key (a
record built outside a running gateway) nothing that would be hashed is kept: null.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LogSubjects = Literal["hashed", "clear"]
PREFIX = "hmac-sha256:"
KEY_BYTES = 32
# Markings whose text never reaches the log, whatever log_subjects says.
SECRET = frozenset({"RAHSIA", "RAHSIA BESAR"})
# Markings whose text reaches the log only with log_subjects: clear.
RESTRICTED = frozenset({"TERHAD", "SULIT"})
_SPACE = re.compile(r"\s+")


class LogKeyError(Exception):
    """The log key file cannot be used (wrong mode, too short, unreadable, not made)."""


def normalise_subject(subject: str) -> str:
    """The subject as hashed: NFC, whitespace runs (folding too) as one space, trimmed,
    casefolded (Unicode 3.13 default case folding). `subject` is the decoded text
    (RFC 2047 encoded words already decoded)."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", subject)).strip().casefold()


def normalise_message_id(message_id: str) -> str:
    """The Message-ID as hashed: all whitespace removed, without its angle brackets
    (RFC 5322 3.6.4 msg-id); case kept (the left part is case-sensitive)."""
    return _SPACE.sub("", message_id).removeprefix("<").removesuffix(">")


def _check_mode(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise LogKeyError(f"{path}: not a regular file")
    if st.st_mode & 0o077:
        raise LogKeyError(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read "
                          "the log key; refused (chmod 0600 it, or delete it to have a new "
                          "one made: records hashed with the old key then no longer match)")


def read_key(path: Path) -> bytes:
    """The key in `path`; raises LogKeyError if it is missing, shorter than KEY_BYTES,
    or its mode gives the group or others any access."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise LogKeyError(f"{path}: {exc.strerror or exc}") from exc
    try:
        _check_mode(path, os.fstat(fd))
        key = os.read(fd, 4096)
    finally:
        os.close(fd)
    if len(key) < KEY_BYTES:
        raise LogKeyError(f"{path}: {len(key)} bytes, a log key has at least {KEY_BYTES}")
    return key


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, made first (KEY_BYTES random bytes, mode 0600) if there is none.

    Made in a temporary file (O_CREAT|O_EXCL, 0600) and linked into place, so
    worker processes starting together all end up with the same complete key.
    Raises LogKeyError as read_key, or when the file cannot be made.
    """
    if not os.path.lexists(path):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, secrets.token_bytes(KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):  # another worker was first
                os.link(tmp, path)
        except OSError as exc:
            raise LogKeyError(f"{path}: cannot make the log key: {exc.strerror or exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return read_key(path)


@dataclass(frozen=True)
class LogPrivacy:
    """The key and `log_subjects` a log applies; `key` None: hash nothing, keep null."""

    key: bytes | None = None
    subjects: LogSubjects = "hashed"

    def __repr__(self) -> str:  # the key never reaches a log line or a traceback
        return f"LogPrivacy(key={'set' if self.key else None}, subjects={self.subjects!r})"

    def digest(self, normalised: str) -> str | None:
        """`hmac-sha256:<hex>` of the UTF-8 of an already normalised value; None without a key."""
        if self.key is None:
            return None
        return PREFIX + hmac.new(self.key, normalised.encode("utf-8"), hashlib.sha256).hexdigest()

    def subject(self, subject: str | None) -> str | None:
        return None if subject is None else self.digest(normalise_subject(subject))

    def message_id(self, message_id: str | None) -> str | None:
        return None if message_id is None else self.digest(normalise_message_id(message_id))

    def treatment(self, classification: str | None) -> Literal["secret", "hashed", "clear"]:
        """How a record of a message with this marking keeps its subject and Message-ID."""
        if classification in SECRET:
            return "secret"
        if classification in RESTRICTED and self.subjects == "hashed":
            return "hashed"
        return "clear"


def default_key_file(rejection_log: Path) -> Path:
    """Where the key is when the config names none: beside the rejection log."""
    return rejection_log.with_name("rejection-log.key")
