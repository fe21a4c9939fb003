"""`attachment_type: [executable, image/*]`: some attachment's REAL type is listed.

The type is libmagic's reading of the content, never the declared Content-Type
or the extension (see gateway.message.filetypes for the categories). An entry is
a category, an exact MIME type, or `type/*`.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import TypeNames


def matches(names: frozenset[str], detected_type: str, category: str) -> bool:
    return (category in names or detected_type in names
            or detected_type.split("/", 1)[0] + "/*" in names)


@check("attachment_type", TypeNames)
def CHECK(names: frozenset[str], ctx: Context) -> Evidence | None:
    ctx.view.require_complete()
    for att in ctx.view.attachments:
        if matches(names, att.detected_type, att.category):
            return {"attachment_type": {"index": att.index, "name": att.filename,
                                        "detected_type": att.detected_type,
                                        "category": att.category}}
    return None
