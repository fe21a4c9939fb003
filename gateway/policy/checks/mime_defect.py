"""`mime_defect: [duplicate_content_type, bidi_in_filename]`: a listed structure defect is present.

The kinds are gateway.message.defects.KINDS (validated when rules load). The
walk records them on its way, so the condition answers even for a message
beyond the inspection limits (on what was seen up to the limit, and the limit
kinds themselves: header_too_large, too_many_parts, too_deep...).
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import DefectKinds


@check("mime_defect", DefectKinds)
def CHECK(kinds: frozenset[str], ctx: Context) -> Evidence | None:
    found = [k for k in ctx.view.structure_defects if k in kinds]
    if not found:
        return None
    return {"mime_defect": found}
