"""`message_size_over: 10MB`: the whole message as received is larger than the size."""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.sizes import ByteSize


@check("message_size_over", ByteSize)
def CHECK(limit: int, ctx: Context) -> Evidence | None:
    size = ctx.view.size
    return {"size": size, "limit": limit} if size > limit else None
