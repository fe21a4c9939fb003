"""`subject_matches: "regex"`: re.search on the decoded (RFC 2047) subject.

When the plain subject does not match, its folded form (NFKC, zero-width
characters removed, look-alike letters mapped) is tried too, so invisible
characters cannot dodge a rule; folding can only add matches.
"""

from __future__ import annotations

import re

from gateway.message.text import fold
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Regex

MAX_MATCH = 200


@check("subject_matches", Regex, needs="header")
def CHECK(rx: re.Pattern[str], ctx: Context) -> Evidence | None:
    subject = ctx.view.subject
    m = rx.search(subject)
    if m is None:
        folded = fold(subject)
        m = rx.search(folded) if folded != subject else None
    return {"subject_matches": {"match": m.group(0)[:MAX_MATCH]}} if m else None
