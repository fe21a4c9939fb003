"""`virus: true|false`: clamd found a virus in the message (gateway.antivirus).

`true` holds when clamd named a signature for an attachment (decoded) or for the
whole message; the evidence is the scan (`ScanResult.as_dict()`): `virus` lists each
signature with the part it was found in (`{"signature": "Win.Test.EICAR_HDB-1",
"part": "attachment", "index": 2, "filename": "laporan.zip"}` or `"part":
"message"`), besides `clamd` and `scanned`. `false` holds when the scan finished and
found nothing (no failure; a part skipped as oversize does not stop it).

Reading it scans the message (once per message, `Context.antivirus`). When the config
has no `antivirus:` nothing is scanned and neither `true` nor `false` holds: the
gateway says so at start-up and in `gateway rules check`. A scan that failed makes
`virus` not hold either way: rules on `antivirus_failed` decide (the shipped one
tempfails), so put that rule right after the virus rule.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("virus", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    if ctx.antivirus is None:
        return None
    result = ctx.antivirus.result
    if want and result.found:
        return result.as_dict()
    if not want and not result.found and result.failure is None:
        return result.as_dict()
    return None
