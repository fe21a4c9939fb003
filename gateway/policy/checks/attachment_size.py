"""`attachment_size_over: 25MB`: some attachment's DECODED size is larger than the limit.

Decoded bytes, not the base64 on the wire: a 25 MB file is refused by a 25MB
limit whatever its encoding adds. Attachments inside forwarded messages count.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.sizes import ByteSize


@check("attachment_size_over", ByteSize)
def CHECK(limit: int, ctx: Context) -> Evidence | None:
    ctx.view.require_complete()
    for att in ctx.view.attachments:
        if att.size > limit:
            return {"attachment": {"index": att.index, "name": att.filename,
                                   "size": att.size, "limit": limit}}
    return None
