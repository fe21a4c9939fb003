"""`auto_forwarded: true|false`: the message carries evidence of automatic forwarding.

Which headers count is documented in gateway.message.forwarding (Auto-Submitted:
auto-forwarded, Exchange inbox-rule headers, X-Forwarded-To/For, Resent-*).
The evidence names the headers, never their values.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("auto_forwarded", Flag, needs="header")
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    found = ctx.view.auto_forwarded
    if bool(found) != want:
        return None
    return {"auto_forwarded": list(found)}
