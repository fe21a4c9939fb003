"""The bounds on one message's inspection, and the budget of decoded bytes it may spend.

`InspectionLimits` is what the message view (and everything it calls: the MIME
walk, the document and archive readers) is bounded by. It is built from the
config's `limits:` section (`gateway.config.Limits.inspection()`); the defaults
here are the shipped ones, so code and tests that build a view without a config
get the same bounds as the gateway.

`ExpansionBudget` counts the decoded bytes an inspection produces (MIME
transfer decoding, re-serialised enclosed messages, archive members) against
`max_expansion_bytes`: a message can be small on the wire and still unpack into
gigabytes. Once the budget is spent the view is incomplete and the checks that
need the whole message refuse to answer (fail closed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class InspectionLimits:
    # Header block of the message or of any one part. Exchange Online refuses more than
    # 256 KB of headers; no real mail client comes near it.
    max_header_bytes: int = 256 * KiB
    # MIME parts in the whole tree, enclosed messages included. The worst real mail seen
    # had 3043 (a long reply chain of HTML alternatives).
    max_parts: int = 5000
    # Nesting of multipart and message/rfc822 containers. Mail clients nest a handful of
    # levels; forward-as-attachment chains rarely pass ten.
    max_depth: int = 30
    # Decoded bytes the inspection may produce in all, archives included: a 25 MB
    # attachment nested in a few forwarded messages, plus its unpacked archive members.
    max_expansion_bytes: int = 256 * MiB
    # Members read from one archive, and archives inside archives.
    max_archive_entries: int = 10000
    max_archive_depth: int = 3
    # Uncompressed to compressed size of one archive member; beyond it the member is a
    # bomb, not a document (office XML compresses about 10:1, a zip bomb 1000:1 and more).
    max_archive_ratio: int = 200
    # Pages of one PDF. Every page is read (the last may carry the marking); a PDF with
    # more is not inspectable. Annual reports run to a few hundred pages; the wall time
    # below bounds the cost whatever this says.
    max_pdf_pages: int = 2000
    # Wall time the document readers may spend on one message. The front end stops
    # waiting after `limits.inspection_timeout`, but a worker thread cannot be killed:
    # the readers must give up by themselves at the same deadline.
    max_seconds: float = 60.0


DEFAULT_LIMITS = InspectionLimits()


class ExpansionBudget:
    """Decoded bytes still allowed for one message. Thread-safe; never goes back up."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._spent = 0
        self._lock = threading.Lock()

    @property
    def spent(self) -> int:
        return self._spent

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self._spent)

    @property
    def exhausted(self) -> bool:
        return self._spent > self.limit

    def charge(self, n: int) -> bool:
        """Count `n` more decoded bytes; False once the total is over the limit."""
        with self._lock:
            self._spent += max(0, n)
            return self._spent <= self.limit
