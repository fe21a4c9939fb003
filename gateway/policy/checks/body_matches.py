"""`body_matches: "regex"`: re.search on each decoded text body part (HTML rendered to text).

Text bodies of forwarded messages count; attachments do not. Any charset and
transfer encoding is decoded first; as for subjects, the folded text is tried
when the plain text does not match.
"""

from __future__ import annotations

import re

from gateway.message.text import fold
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Regex

MAX_MATCH = 200


@check("body_matches", Regex)
def CHECK(rx: re.Pattern[str], ctx: Context) -> Evidence | None:
    ctx.view.require_complete()
    for part in ctx.view.text_parts:
        m = rx.search(part.text)
        if m is None:
            folded = fold(part.text)
            m = rx.search(folded) if folded != part.text else None
        if m is not None:
            return {"body_matches": {"part": part.index, "match": m.group(0)[:MAX_MATCH]}}
    return None
