"""The rejection log: one JSON object per rejected, tempfailed, tagged or monitored message.

Fields are fixed by CONTRACT.md. For a message marked RAHSIA or RAHSIA BESAR no
classified text may reach the disk: the subject is null and every evidence key
that can carry message content (CONTENT_KEYS) is removed, leaving only which
marking was found and where. TERHAD and SULIT mail is logged the same way except
that subject and Message-ID are kept as keyed hashes, unless `log_subjects: clear`
(gateway.observe.log_privacy). Each record may also go to syslog as ECS JSON
(gateway.observe.ecs).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gateway.envelope import Envelope
from gateway.message.passwords import mask as mask_passwords
from gateway.message.passwords import mask_evidence
from gateway.message.view import MessageView
from gateway.observe.ecs import SyslogOutput
from gateway.observe.log_privacy import LogPrivacy
from gateway.pipeline import Inspected, Inspection, Summary
from gateway.policy.builtin import reference_of
from gateway.policy.verdict import Reply, Verdict

log = logging.getLogger("gateway.rejection_log")

# Evidence keys whose values may quote the message (matched text, file names...).
CONTENT_KEYS = frozenset({"match", "matches", "subject", "text", "line", "name", "filename", "at",
                          "member", "filenames", "url", "urls", "value", "label"})
CLASSIFIED = frozenset({"RAHSIA", "RAHSIA BESAR"})
# Seconds between checks that the log file is still the one the handle writes to.
ROTATION_CHECK = 1.0
# Records kept in memory while the log cannot be written; beyond, the oldest are dropped.
MAX_PENDING = 10_000


def redact(evidence: Any) -> Any:
    if isinstance(evidence, Mapping):
        return {k: redact(v) for k, v in evidence.items() if k not in CONTENT_KEYS}
    if isinstance(evidence, list | tuple):
        return [redact(v) for v in evidence]
    return evidence


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_record(*, event: str, ref: str, envelope: Envelope,
                 view: MessageView | Summary | None,
                 verdict: Verdict | None, reply: Reply | None, rule_id: str | None = None,
                 reference: str | None = None, reason: str | None = None,
                 evidence: Mapping[str, Any] | None = None,
                 classification: str | None = None,
                 privacy: LogPrivacy | None = None) -> dict[str, Any]:
    """One log object. `view` is None for refusals before DATA (relay, size).

    `privacy` (default: no key, `hashed`) decides what of a marked message's subject,
    Message-ID and evidence text is kept (gateway.observe.log_privacy).
    """
    if verdict is not None:
        rule_id = rule_id or verdict.rule_id
        reference = reference or verdict.reference
        reason = reason or verdict.reason
        evidence = evidence if evidence is not None else verdict.evidence
        classification = classification or verdict.classification
    if view is not None and classification is None:
        classification = view.classification
    if reference is None:
        # The gateway's own refusals (relay control, size, limits) cite their clause too.
        reference = reference_of(rule_id)
    privacy = privacy or LogPrivacy()
    # The message's password candidates, masked wherever the text repeats them.
    secrets: tuple[str, ...] = getattr(view, "secret_values", ()) if view is not None else ()
    treatment = privacy.treatment(classification)
    secret = treatment != "clear"  # no evidence text
    if view is None:
        subject: str | None = None
        message_id: str | None = None
    elif treatment == "clear":
        # A password written in the subject never reaches the log (passwords.mask).
        subject = None if view.subject is None else mask_passwords(view.subject, secrets)
        message_id = view.message_id
    else:
        subject = privacy.subject(view.subject) if treatment == "hashed" else None
        message_id = privacy.message_id(view.message_id)
    hits = list(verdict.hits) if verdict is not None else []
    if verdict is not None and event in ("tag", "monitor") and rule_id is None and hits:
        first = next((h for h in hits if h.mode == "monitor"), hits[0]) \
            if event == "monitor" else next(
                (h for h in hits if h.action in ("tag", "add_header", "defang")), hits[0])
        rule_id, reference, evidence = first.rule_id, first.reference, first.evidence
        reason = reason or first.reason or None
    exemptions = list(verdict.exemptions) if verdict is not None else []
    if event == "exempt" and rule_id is None and exemptions:
        # Nothing applied but an exception: the record names the rule it exempted from.
        rule_id, reference = exemptions[0].rule_id, exemptions[0].reference
        reason = reason or exemptions[0].reason or "except"
        evidence = {}
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
        "subject": subject,
        "message_id": message_id,
        "size": view.size if view is not None else None,
        "rule_id": rule_id,
        "reference": reference,
        "smtp_code": reply.code if reply is not None else None,
        "enhanced_code": reply.enhanced if reply is not None else None,
        "reason": reason,
        # Evidence text kept in clear has any password written in it masked.
        "evidence": redact(dict(evidence or {})) if secret
        else mask_evidence(dict(evidence or {}), secrets),
        "classification": classification,
        # SPF and DMARC results, when a rule evaluated them (sender_auth); else null.
        "auth": dict(verdict.auth) if verdict is not None and verdict.auth is not None
        else None,
        "matched": [{"rule_id": h.rule_id, "action": h.action, "mode": h.mode,
                     "evidence": redact(dict(h.evidence)) if secret
                     else mask_evidence(dict(h.evidence), secrets)}
                    for h in hits],
        # Rules that would have applied but for an exception: which, and why (the
        # exception's id and reason, or the rule's own except:).
        "exceptions": [e.as_dict() for e in exemptions],
    }
    return record


class LogMetrics(Protocol):
    """What the log reports to the metrics (gateway.observe.metrics.Metrics)."""

    def rejection_log_failed(self) -> None: ...

    def rejection_log_dropped(self) -> None: ...


class RejectionLog:
    """Appends records as single writes so concurrent sessions never interleave lines.

    Besides reopen() (SIGUSR1), a write notices that the file was moved away or
    deleted (logrotate without a postrotate signal) by comparing device and inode
    of the path with those of the open handle, at most once per ROTATION_CHECK.

    A record that cannot be written (disk full, permission lost, directory gone)
    never fails the SMTP transaction: the client has been told the policy's answer
    and must keep hearing it. The record waits in a bounded buffer (MAX_PENDING,
    oldest dropped and counted when full) and is written, in order, by the next
    write or retry() that finds the file writable again. The failure is loud: one
    ERROR in the journal per failure episode (not per message), the metrics
    (`rejection_log_failed`, `rejection_log_dropped`, `pending`), and `problem`,
    which /healthz reports as unhealthy until the buffer is written.
    """

    def __init__(self, path: Path, *, metrics: LogMetrics | None = None,
                 max_pending: int = MAX_PENDING, privacy: LogPrivacy | None = None,
                 syslog: SyslogOutput | None = None) -> None:
        self.path = path
        # What marked mail keeps (the key is loaded by the service at start and reload).
        self.privacy = privacy or LogPrivacy()
        # Each record also sent there as ECS JSON, when the config has `syslog:`.
        self.syslog = syslog
        self.metrics = metrics
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._checked = 0.0
        # (ref, line) not yet on disk, oldest first.
        self._pending: collections.deque[tuple[str, bytes]] = collections.deque()
        self._problem: str | None = None
        self._torn = False  # a partial line is on disk: the next write starts a new line
        self.failed_records = 0
        self.dropped = 0
        self._dropped_in_episode = 0

    @property
    def problem(self) -> str | None:
        """Why the log cannot be written now (None while it works)."""
        return self._problem

    @property
    def pending(self) -> int:
        """Records waiting in memory for the log to work again."""
        return len(self._pending)

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
        except (FileNotFoundError, NotADirectoryError):
            return True  # gone, or its directory replaced by a file
        except OSError:
            return False  # cannot tell: keep writing where we were
        held = os.fstat(fd)
        # A handle on a file no name leads to any more writes records nobody will read.
        return held.st_nlink == 0 or \
            (on_disk.st_dev, on_disk.st_ino) != (held.st_dev, held.st_ino)

    def _append(self, fd: int, line: bytes) -> None:
        data = (b"\n" if self._torn else b"") + line
        done = 0
        try:
            while done < len(data):
                written = os.write(fd, data[done:])
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done += written
        except OSError:
            if done:
                self._torn = True
            raise
        self._torn = False

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _flush(self) -> bool:
        """Write what is pending, oldest first (lock held); False while the log fails."""
        try:
            fd = self._open()
            while self._pending:
                self._append(fd, self._pending[0][1])
                self._pending.popleft()
        except OSError as exc:
            self._close_fd()  # the next attempt opens the path afresh
            self._failing(exc)
            return False
        if self._problem is not None:
            log.warning("rejection log %s writable again: buffered records written%s",
                        self.path, f"; {self._dropped_in_episode} record(s) were dropped "
                        "while it failed" if self._dropped_in_episode else "")
            self._problem = None
            self._dropped_in_episode = 0
        return True

    def _failing(self, exc: OSError) -> None:
        why = f"{self.path}: {exc.strerror or exc}"
        if self._problem is None:
            log.error("rejection log %s cannot be written (%s): records are kept in memory "
                      "(up to %d) and written when it works again; replies to clients are "
                      "unchanged", self.path, exc.strerror or exc, self.max_pending)
        self._problem = why

    def write(self, record: Mapping[str, Any]) -> None:
        """Write one record, or keep it for later; never raises for the log's own faults."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            if len(self._pending) >= self.max_pending:
                ref, _ = self._pending.popleft()
                self.dropped += 1
                self._dropped_in_episode += 1
                if self.metrics is not None:
                    self.metrics.rejection_log_dropped()
                if self._dropped_in_episode == 1:
                    log.error("rejection log %s: buffer full (%d records): dropping the "
                              "oldest (ref=%s first)", self.path, self.max_pending, ref)
            self._pending.append((str(record.get("ref", "")), line))
            if not self._flush():
                self.failed_records += 1
                if self.metrics is not None:
                    self.metrics.rejection_log_failed()
        syslog = self.syslog
        if syslog is not None:
            syslog.send(record)  # never raises: failures are reported by the output

    def open_now(self) -> None:
        """Open (create) the log file now; raises OSError when that is not possible."""
        with self._lock:
            self._open()

    def retry(self) -> str | None:
        """Try the pending records again; None when the log works, else why not."""
        with self._lock:
            if self._pending or self._problem is not None:
                self._flush()
            return self._problem

    async def log(self, *, event: str, ref: str, envelope: Envelope, reply: Reply | None,
                  inspection: Inspection | Inspected | None = None,
                  rule_id: str | None = None, reason: str | None = None) -> None:
        """Build the record and write it off the event loop; every front end logs this way.

        Never raises: a log that cannot be written must not change what the client hears.
        """
        try:
            record = build_record(
                event=event, ref=ref, envelope=envelope,
                view=inspection.view if inspection is not None else None,
                verdict=inspection.verdict if inspection is not None else None,
                reply=reply, rule_id=rule_id, reason=reason, privacy=self.privacy)
            await asyncio.to_thread(self.write, record)
        except Exception:
            log.exception("rejection log record ref=%s could not be built or written", ref)
            if self.metrics is not None:
                self.metrics.rejection_log_failed()

    def adopt(self, previous: RejectionLog) -> None:
        """Take over the records another log could not write (a reload moved the log)."""
        with previous._lock:
            moved = list(previous._pending)
            previous._pending.clear()
        with self._lock:
            self._pending.extendleft(reversed(moved))
            while len(self._pending) > self.max_pending:
                self._pending.popleft()
                self.dropped += 1
                if self.metrics is not None:
                    self.metrics.rejection_log_dropped()

    def reopen(self) -> None:
        """Start a new file handle (after logrotate moved the old file)."""
        with self._lock:
            self._close_fd()

    def close(self) -> None:
        """Write what is pending if possible; what cannot be written is named in the journal."""
        with self._lock:
            if self._pending:
                self._flush()
            if self._pending:
                refs = [ref for ref, _ in self._pending]
                log.error("rejection log %s: %d record(s) could not be written and are lost "
                          "(refs %s%s)", self.path, len(refs), " ".join(refs[:20]),
                          " ..." if len(refs) > 20 else "")
                self._pending.clear()
            self._close_fd()
