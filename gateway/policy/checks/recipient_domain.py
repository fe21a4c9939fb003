"""`recipient_domain: [..] | "@list"`: the domain of any envelope recipient is listed."""

from __future__ import annotations

from gateway.addresses import address_domain, domain_in
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Domains


@check("recipient_domain", Domains, takes_list=True, needs="envelope")
def CHECK(domains: tuple[str, ...], ctx: Context) -> Evidence | None:
    for rcpt in ctx.envelope.rcpt_to:
        domain = address_domain(rcpt)
        if domain_in(domain, domains):
            return {"recipient_domain": domain}
    return None
