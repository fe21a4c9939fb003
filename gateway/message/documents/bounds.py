"""What one message's document inspection may spend: bytes, archive shape, time.

`Bounds` carries the message's `InspectionLimits`, its shared `ExpansionBudget`
and a deadline. Every reader in this package asks it before it unpacks more:
`charge(n)` for decoded bytes, `check_time()` between pages and members. Going
over any bound raises `LimitExceeded`; the caller then treats the attachment as
not inspectable and the message as incomplete (fail closed), never as clean.
"""

from __future__ import annotations

import time

from gateway.message.limits import DEFAULT_LIMITS, ExpansionBudget, InspectionLimits

# Wall time for all documents of one message. Text extraction of a normal PDF page
# takes milliseconds; a document that needs more than this is hostile or absurd.
DEFAULT_SECONDS = 20.0
# PDF pages per document (`InspectionLimits.max_pdf_pages`, config `limits.max_pdf_pages`).
# A hard bound, never a silent cut: a PDF with more pages is not inspectable
# (`LimitExceeded`), because its last page may carry the marking.
MAX_PDF_PAGES = DEFAULT_LIMITS.max_pdf_pages
# One XML part of an OOXML file, uncompressed: the largest real document.xml seen in
# government mail is a few MB; the reader streams, so this bounds time, not memory.
MAX_XML_PART_BYTES = 64 * 1024 * 1024


class LimitExceeded(Exception):
    """A document is beyond the inspection bounds (a bomb, or simply too much)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Bounds:
    def __init__(self, limits: InspectionLimits = DEFAULT_LIMITS,
                 budget: ExpansionBudget | None = None, seconds: float = DEFAULT_SECONDS,
                 max_pdf_pages: int | None = None) -> None:
        self.limits = limits
        self.budget = budget if budget is not None else ExpansionBudget(
            limits.max_expansion_bytes)
        self.deadline = time.monotonic() + seconds
        self.max_pdf_pages = limits.max_pdf_pages if max_pdf_pages is None else max_pdf_pages

    def charge(self, n: int) -> None:
        if not self.budget.charge(n):
            raise LimitExceeded(
                f"documents expand beyond {self.budget.limit} bytes")

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded("document inspection took too long")
