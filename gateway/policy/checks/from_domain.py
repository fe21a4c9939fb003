"""`from_domain: [..] | "@list"`: the domain of any address in the header From is listed.

Addresses are parsed from the raw header, never from RFC 2047-decoded text, so
an encoded display name cannot pose as an address. Subdomains are covered.
"""

from __future__ import annotations

from gateway.addresses import address_domain, domain_in
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Domains


@check("from_domain", Domains, takes_list=True, needs="header")
def CHECK(domains: tuple[str, ...], ctx: Context) -> Evidence | None:
    for address in ctx.view.from_addresses:
        domain = address_domain(address)
        if domain_in(domain, domains):
            return {"from_domain": domain}
    return None
