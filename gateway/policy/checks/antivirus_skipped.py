"""`antivirus_skipped: true|false`: a part was not scanned because it is too large.

Under the config's `antivirus: {oversize: skip}`, a part (an attachment, or the whole
message) larger than `antivirus.max_size` is not sent to clamd and the rest is
scanned; `true` holds then, with the scan as evidence (`skipped` lists each part and
its size). The shipped rule logs it in monitor mode (the "skip with log" policy).
`false` holds when the scan finished with nothing skipped. Under `oversize: tempfail`
an oversize part is a failure (`antivirus_failed`) instead. Without `antivirus:`
in the config nothing is scanned and neither value holds.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("antivirus_skipped", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    if ctx.antivirus is None:
        return None
    result = ctx.antivirus.result
    if want and result.skipped:
        return result.as_dict()
    if not want and not result.skipped and result.failure is None:
        return result.as_dict()
    return None
