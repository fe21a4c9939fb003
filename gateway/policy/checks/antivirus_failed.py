"""`antivirus_failed: true|false`: the message could not be scanned for viruses.

`true` holds when clamd could not give an answer for every part: unreachable (not
running, wrong socket), timeout (no answer within `antivirus.timeout` seconds for the
whole message), error (an `... ERROR` reply, e.g. StreamMaxLength exceeded), protocol
(a reply clamd never sends), or oversize (a part over `antivirus.max_size` under
`oversize: tempfail`). Evidence: the scan (`ScanResult.as_dict()`), whose `failure`
says why and `failed_part` where. `false` holds when the scan finished.

A failed scan is never a pass: the shipped rule tempfails it (451 4.7.0). When the
config has no `antivirus:` nothing is scanned and neither value holds.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("antivirus_failed", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    if ctx.antivirus is None:
        return None
    result = ctx.antivirus.result
    return result.as_dict() if (result.failure is not None) == want else None
