"""`link_domain: [..] | "@list"`: a link in a text or HTML body points into a listed domain.

Links are http, https and ftp URLs (and bare `www.` names) in the text and the
HTML `href` targets; see gateway.message.links for how the host is found.
Subdomains are covered.
"""

from __future__ import annotations

from gateway.addresses import domain_in
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Domains

MAX_URL = 200


@check("link_domain", Domains, takes_list=True)
def CHECK(domains: tuple[str, ...], ctx: Context) -> Evidence | None:
    ctx.view.require_complete()
    for link in ctx.view.links:
        if domain_in(link.host, domains):
            return {"link_domain": {"match": link.host, "url": link.url[:MAX_URL]}}
    return None
