"""The antivirus scan of one message, made lazily, at most once.

Checks are pure and never do I/O themselves; the `virus`, `antivirus_failed` and
`antivirus_skipped` conditions read `Context.antivirus.result`, and only that first
read streams the message to clamd (gateway.antivirus.clamd). So clamd is asked only
about a message on which some rule reaches one of those conditions, once however
many rules ask, as gateway.auth.facts.AuthFacts does for DNS. It runs in the
inspection process (gateway.frontends.pool), with blocking sockets.

What is scanned, each with its own INSTREAM:
1. every attachment the view lists, decoded (attachments of forwarded messages and
   the files of Outlook items and TNEF attachments included; clamd itself opens
   archives, documents and mail inside what it is given);
2. then the whole message as received, once (clamd parses MIME itself: bodies, parts
   the view does not list), unless an attachment already carried a virus. A message
   larger than `antivirus.max_size` whose attachments were each scanned goes without
   their encoded bodies (cut out where they stand in the raw message; what is left
   is every header, body and part the view does not list): its size is mostly those
   bodies in base64, and a message the size rules admit must not wait forever for a
   scan clamd cannot take. Only when even that is too large does `oversize` apply.

All of it within the config's `antivirus.timeout` seconds in total. The first failure
(clamd unreachable, no answer in time, an ERROR reply) ends the scan: the result is
`failed`, never clean. A part larger than `antivirus.max_size` is not sent (clamd
would refuse it past StreamMaxLength): under `oversize: tempfail` that is a failure,
under `oversize: skip` the part is listed in `skipped` and the rest is scanned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.antivirus import clamd

if TYPE_CHECKING:
    from gateway.config import AntivirusSettings
    from gateway.message.view import MessageView

# Parts listed in evidence at most (the count is always given).
MAX_LISTED = 10


@dataclass(frozen=True)
class Part:
    """What was scanned: an attachment (`index`, `filename`, `at` inside an Outlook
    item or TNEF file) or the whole message (`index` None)."""

    index: int | None
    filename: str = ""
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.index is None:
            return {"part": "message"}
        out: dict[str, Any] = {"part": "attachment", "index": self.index,
                               "filename": self.filename}
        if self.at:
            out["at"] = self.at
        return out


@dataclass(frozen=True)
class Found:
    signature: str
    part: Part


@dataclass(frozen=True)
class Skipped:
    part: Part
    size: int


@dataclass(frozen=True)
class ScanResult:
    """The scan of one message. `failure` (None when every stream was answered) is
    `kind: detail`, kind one of unreachable, timeout, error, protocol, oversize."""

    clamd: str
    scanned: int
    found: tuple[Found, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    failure: str | None = None
    failed_part: Part | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"clamd": self.clamd, "scanned": self.scanned}
        if self.found:
            out["virus"] = [{"signature": f.signature, **f.part.as_dict()}
                            for f in self.found[:MAX_LISTED]]
        if self.skipped:
            out["skipped"] = [{**s.part.as_dict(), "size": s.size}
                              for s in self.skipped[:MAX_LISTED]]
        if self.failure is not None:
            out["failure"] = self.failure
            if self.failed_part is not None:
                out["failed_part"] = self.failed_part.as_dict()
        return out


class ScanFacts:
    """The antivirus result for one message; `result` scans on first use."""

    def __init__(self, settings: AntivirusSettings, view: MessageView) -> None:
        self._settings = settings
        self._view = view
        self._result: ScanResult | None = None

    @property
    def evaluated(self) -> bool:
        """Whether some rule asked, i.e. the message was sent to clamd."""
        return self._result is not None

    @property
    def evaluated_result(self) -> ScanResult | None:
        """The result if some rule asked for it, else None (never triggers a scan)."""
        return self._result

    @property
    def result(self) -> ScanResult:
        """Raises NotInspectable (the view's) when the message is beyond the inspection
        limits: its attachment list would be partial."""
        if self._result is None:
            self._result = self._scan()
        return self._result

    def _parts(self) -> list[tuple[Part, bytes]]:
        view = self._view
        view.require_complete()
        parts = [(Part(a.index, a.filename, a.container_path), a.data())
                 for a in view.attachments]
        view.require_complete()  # listing them may have met a bound (Outlook, TNEF)
        return parts

    def _scan(self) -> ScanResult:
        settings = self._settings
        address = clamd.parse_address(settings.clamd)
        deadline = time.monotonic() + settings.timeout
        found: list[Found] = []
        skipped: list[Skipped] = []
        scanned = 0
        work = self._parts()
        whole: tuple[Part, bytes] = (Part(None), self._view.raw)
        for part, data in [*work, whole]:
            if part.index is None and found:
                break  # the whole message adds nothing to a verdict already decided
            size = len(data)  # as reported: the message's own size, not what is left
            if part.index is None and size > settings.max_size:
                data = self._without_bodies({s.part for s in skipped})
            if len(data) > settings.max_size:
                if settings.oversize == "skip":
                    skipped.append(Skipped(part, size))
                    continue
                return ScanResult(str(address), scanned, tuple(found), tuple(skipped),
                                  f"oversize: {size} bytes, more than antivirus.max_size "
                                  f"({settings.max_size} bytes)", part)
            try:
                signature = clamd.instream(address, data, deadline)
            except clamd.ClamdError as exc:
                return ScanResult(str(address), scanned, tuple(found), tuple(skipped),
                                  f"{exc.kind}: {exc.detail}", part)
            scanned += 1
            if signature is not None:
                found.append(Found(signature, part))
        return ScanResult(str(address), scanned, tuple(found), tuple(skipped))

    def _without_bodies(self, unscanned: set[Part]) -> bytes:
        """The raw message with the encoded content of every attachment scanned on
        its own cut out (those not scanned, skipped as oversize, are kept)."""
        raw = self._view.raw
        cuts: list[tuple[int, int]] = []
        for a in self._view.attachments:
            span = a.wire_span
            if span is None or span[0] is not raw:
                continue  # inside a decoded part: its enclosing attachment covers it
            if Part(a.index, a.filename, a.container_path) in unscanned:
                continue
            cuts.append((span[1], span[2]))
        pieces: list[bytes] = []
        pos = 0
        for start, end in sorted(cuts):
            if start > pos:
                pieces.append(raw[pos:start])
            pos = max(pos, end)
        pieces.append(raw[pos:])
        return b"".join(pieces)
