"""`gateway log find`: the rejection-log records of one message, by subject or Message-ID.

The help desk has the subject (or Message-ID) of a complaint; records of TERHAD and
SULIT mail hold only keyed hashes of them (gateway.observe.log_privacy). The text
given is normalised and hashed with the same key, and compared with each record's
`subject` / `message_id`: a hash matches its hash, clear text matches after the
same normalisation. Logs are read as `gateway report` reads them (plain or gzip).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from gateway.observe.log_privacy import (
    PREFIX,
    LogPrivacy,
    normalise_message_id,
    normalise_subject,
)
from gateway.observe.report import _lines


def default_logs(rejection_log: Path) -> list[Path]:
    """The rejection log and its rotated copies (logrotate's NAME-DATE[.gz], NAME.N[.gz])
    in its directory, oldest name first; the current file last."""
    rotated = sorted(p for p in rejection_log.parent.glob(rejection_log.name + "[.-]*")
                     if p.is_file())
    return [*rotated, rejection_log]


def _matches(value: object, wanted: str | None, hashed: str | None,
             normalise: Callable[[str], str]) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith(PREFIX):
        return hashed is not None and value == hashed
    return wanted is not None and normalise(value) == wanted


def find(paths: Iterable[Path], privacy: LogPrivacy, *, subject: str | None = None,
         message_id: str | None = None,
         warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """Records whose subject matches `subject` and whose Message-ID matches `message_id`
    (each when given; at least one must be). Unreadable files and lines that are not
    JSON objects are reported through `warn` and skipped."""
    if subject is None and message_id is None:
        raise ValueError("give a subject or a Message-ID")
    want_subject = normalise_subject(subject) if subject is not None else None
    want_id = normalise_message_id(message_id) if message_id is not None else None
    hash_subject = privacy.subject(subject)
    hash_id = privacy.message_id(message_id)
    for path in paths:
        for number, line in _lines(path, warn):
            if line is None:
                warn(f"{path}:{number}: line too long, skipped")
                continue
            try:
                record = json.loads(line)
            except ValueError:
                warn(f"{path}:{number}: not JSON, skipped")
                continue
            if not isinstance(record, dict):
                continue
            if subject is not None and not _matches(record.get("subject"), want_subject,
                                                    hash_subject, normalise_subject):
                continue
            if message_id is not None and not _matches(record.get("message_id"), want_id,
                                                       hash_id, normalise_message_id):
                continue
            yield record
