"""`inspection_incomplete: true|false`: the message is beyond an inspection limit.

`true` holds when the view could not be read whole (a header block over
`max_header_bytes`, more than `max_parts` parts, nesting deeper than
`max_depth`, decoded content over `max_expansion_bytes`, or a structure the
parser gives up on), or the documents inside it are (an archive over its
entry, depth, ratio or byte limits: a zip bomb). Without a rule on it such a
message is tempfailed (451 4.3.0) by the first check that needs the whole
message; a rule on it, placed before those, lets the policy reject it instead.

To know about the documents the check reads them: it computes the markings
(what `classification` rules read anyway, so the shipped policy pays nothing
extra) and each attachment's type and encryption state.
"""

from __future__ import annotations

from gateway.message.defects import LIMIT_KINDS
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("inspection_incomplete", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    view = ctx.view
    if view.complete:
        # Reading the documents is what finds a bomb; the view records it (never raises).
        _ = view.markings
        for att in view.attachments:
            _ = (att.category, att.encrypted)
    reason = view.incomplete_reason
    if want and reason is not None:
        return {"inspection_incomplete": reason,
                "limits": [k for k in view.structure_defects if k in LIMIT_KINDS]}
    if not want and reason is None:
        return {"inspection_incomplete": None}
    return None
