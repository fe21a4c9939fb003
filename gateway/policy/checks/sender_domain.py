"""`sender_domain: [..] | "@list"`: the envelope sender's domain is in the list.

A listed domain covers its subdomains. The null sender has no domain and never
matches.
"""

from __future__ import annotations

from gateway.addresses import address_domain, domain_in
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Domains


@check("sender_domain", Domains, takes_list=True, needs="envelope")
def CHECK(domains: tuple[str, ...], ctx: Context) -> Evidence | None:
    domain = address_domain(ctx.envelope.mail_from)
    return {"sender_domain": domain} if domain_in(domain, domains) else None
