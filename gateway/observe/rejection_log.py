"""The rejection log: one JSON object per rejected, tempfailed, tagged or monitored message.

Fields are fixed by CONTRACT.md. For a message marked RAHSIA or RAHSIA BESAR no
classified text may reach the disk: the subject is null and every evidence key
that can carry message content (CONTENT_KEYS) is removed, leaving only which
marking was found and where.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.pipeline import Inspection
from gateway.policy.verdict import Reply, Verdict

# Evidence keys whose values may quote the message (matched text, file names...).
CONTENT_KEYS = frozenset({"match", "matches", "subject", "text", "line", "name", "filename", "at",
                          "member", "filenames", "url", "urls", "value"})
CLASSIFIED = frozenset({"RAHSIA", "RAHSIA BESAR"})
# Seconds between checks that the log file is still the one the handle writes to.
ROTATION_CHECK = 1.0


def redact(evidence: Any) -> Any:
    if isinstance(evidence, Mapping):
        return {k: redact(v) for k, v in evidence.items() if k not in CONTENT_KEYS}
    if isinstance(evidence, list | tuple):
        return [redact(v) for v in evidence]
    return evidence


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_record(*, event: str, ref: str, envelope: Envelope, view: MessageView | None,
                 verdict: Verdict | None, reply: Reply | None, rule_id: str | None = None,
                 reference: str | None = None, reason: str | None = None,
                 evidence: Mapping[str, Any] | None = None,
                 classification: str | None = None) -> dict[str, Any]:
    """One log object. `view` is None for refusals before DATA (relay, size)."""
    if verdict is not None:
        rule_id = rule_id or verdict.rule_id
        reference = reference or verdict.reference
        reason = reason or verdict.reason
        evidence = evidence if evidence is not None else verdict.evidence
        classification = classification or verdict.classification
    if view is not None and classification is None:
        classification = view.classification
    secret = classification in CLASSIFIED
    hits = list(verdict.hits) if verdict is not None else []
    if verdict is not None and event in ("tag", "monitor") and rule_id is None and hits:
        first = next((h for h in hits if h.mode == "monitor"), hits[0]) \
            if event == "monitor" else next((h for h in hits if h.action in
                                             ("tag", "add_header")), hits[0])
        rule_id, reference, evidence = first.rule_id, first.reference, first.evidence
        reason = reason or first.reason or None
    record: dict[str, Any] = {
        "ts": _now(),
        "ref": ref,
        "event": event,
        "listener": envelope.listener,
        "direction": envelope.direction,
        "client_ip": envelope.client_ip,
        "helo": envelope.helo,
        "mail_from": envelope.mail_from,
        "rcpt_to": list(envelope.rcpt_to),
        "from": view.from_header if view is not None else None,
        "subject": None if (secret or view is None) else view.subject,
        "message_id": view.message_id if view is not None else None,
        "size": view.size if view is not None else None,
        "rule_id": rule_id,
        "reference": reference,
        "smtp_code": reply.code if reply is not None else None,
        "enhanced_code": reply.enhanced if reply is not None else None,
        "reason": reason,
        "evidence": redact(dict(evidence or {})) if secret else dict(evidence or {}),
        "classification": classification,
        # SPF and DMARC results, when a rule evaluated them (sender_auth); else null.
        "auth": dict(verdict.auth) if verdict is not None and verdict.auth is not None
        else None,
        "matched": [{"rule_id": h.rule_id, "action": h.action, "mode": h.mode,
                     "evidence": redact(dict(h.evidence)) if secret else dict(h.evidence)}
                    for h in hits],
    }
    return record


class RejectionLog:
    """Appends records as single writes so concurrent sessions never interleave lines.

    Besides reopen() (SIGUSR1), a write notices that the file was moved away or
    deleted (logrotate without a postrotate signal) by comparing device and inode
    of the path with those of the open handle, at most once per ROTATION_CHECK.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._checked = 0.0

    def _open(self) -> int:
        if self._fd is not None:
            now = time.monotonic()
            if now - self._checked >= ROTATION_CHECK:
                self._checked = now
                if self._rotated(self._fd):
                    os.close(self._fd)
                    self._fd = None
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._checked = time.monotonic()
        return self._fd

    def _rotated(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False  # cannot tell: keep writing where we were
        held = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino)

    def write(self, record: Mapping[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._open(), line)

    async def log(self, *, event: str, ref: str, envelope: Envelope, reply: Reply | None,
                  inspection: Inspection | None = None, rule_id: str | None = None,
                  reason: str | None = None) -> None:
        """Build the record and write it off the event loop; every front end logs this way."""
        record = build_record(
            event=event, ref=ref, envelope=envelope,
            view=inspection.view if inspection is not None else None,
            verdict=inspection.verdict if inspection is not None else None,
            reply=reply, rule_id=rule_id, reason=reason)
        await asyncio.to_thread(self.write, record)

    def reopen(self) -> None:
        """Start a new file handle (after logrotate moved the old file)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def close(self) -> None:
        self.reopen()
