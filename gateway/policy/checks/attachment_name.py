"""`attachment_name_matches: "regex"`: re.search on each attachment's file name.

Every name variant a part carries is tried: `filename=`, `filename*=` (RFC 2231)
and the Content-Type `name=`, RFC 2047-decoded. The folded name is tried when
the plain one does not match, so zero-width characters, bidi controls and
full-width letters cannot dodge a rule.
"""

from __future__ import annotations

import re

from gateway.message.text import fold
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Regex


@check("attachment_name_matches", Regex)
def CHECK(rx: re.Pattern[str], ctx: Context) -> Evidence | None:
    ctx.view.require_complete()
    for att in ctx.view.attachments:
        for name in att.filenames:  # every variant: a client may show any of them
            m = rx.search(name)
            if m is None:
                folded = fold(name)
                m = rx.search(folded) if folded != name else None
            if m is not None:
                return {"attachment_name": {"index": att.index, "name": name,
                                            "match": m.group(0)}}
    return None
