"""`null_sender: true|false`: the envelope sender is the null sender `<>` (bounces, DSNs)."""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("null_sender", Flag, needs="envelope")
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    is_null = ctx.envelope.mail_from.strip() in ("", "<>")
    return {"null_sender": is_null} if is_null == want else None
