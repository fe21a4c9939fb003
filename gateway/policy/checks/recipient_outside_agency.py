"""`recipient_outside_agency: true|false`: some envelope recipient is outside the agency.

The agency is the config's `agency_domains` (subdomains included). `true` holds
when at least one recipient's domain is not an agency domain; `false` when every
recipient is inside (a transaction always has at least one recipient).
"""

from __future__ import annotations

from gateway.addresses import address_domain, domain_in
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag


@check("recipient_outside_agency", Flag, needs="envelope")
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    outside = [d for d in (address_domain(r) for r in ctx.envelope.rcpt_to)
               if not domain_in(d, ctx.agency_domains)]
    if want and outside:
        return {"outside_recipients": len(outside), "recipient_domain": outside[0]}
    if not want and not outside and ctx.envelope.rcpt_to:
        return {"outside_recipients": 0}
    return None
