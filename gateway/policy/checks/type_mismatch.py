"""`type_mismatch: true|false`: an attachment's declared type or extension lies about it.

`true` holds when some attachment's declared Content-Type or a file-name
extension claims another category than libmagic finds in the content (a PE
named laporan.pdf); an OOXML file declared as a ZIP is not a mismatch, empty
content claims nothing. `false`: no attachment has a mismatch.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("type_mismatch", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    ctx.view.require_complete()
    for att in ctx.view.attachments:
        if att.type_mismatch:
            if not want:
                return None
            return {"type_mismatch": {
                "index": att.index, "name": att.filename,
                "declared_type": att.declared_type, "claimed": list(att.claimed_categories),
                "detected_type": att.detected_type, "category": att.category}}
    return {"type_mismatch": False} if not want else None
