"""`sender_auth: {spf: [results], dmarc: [results]}`: the sender's authentication results.

Holds when every key given has its result in the list, e.g.
`{spf: [fail, softfail]}` or `{spf: [pass], dmarc: [pass]}`. SPF (RFC 7208) is
evaluated for the envelope sender (the HELO name for the null sender) and the
client IP; DMARC (RFC 7489) for the first header From domain, passing only via
SPF aligned with it (no DKIM yet). Results: spf pass fail softfail neutral none
permerror temperror; dmarc pass fail none permerror temperror. DNS trouble is
`temperror`, never a pass.

The check itself does no I/O: it reads `ctx.auth.results`, which the pipeline
evaluates on first use, so DNS is queried only for messages where a rule
reaches this condition. Put it after the cheaper conditions in a mapping or
`all:`; they are evaluated in the order written and stop at the first that does
not hold. Evidence: the results (`AuthResults.as_dict()`).
"""

from __future__ import annotations

from gateway.addresses import address_domain
from gateway.auth import AuthResults, DmarcResult, SpfResult
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import SenderAuth, SenderAuthSpec


def _unavailable(ctx: Context) -> AuthResults:
    # A context built without a resolver (a bare engine) must not let anything pass.
    reason = "sender authentication not available"
    from_domain = (address_domain(ctx.view.from_addresses[0])
                   if ctx.view.from_addresses else "")
    return AuthResults(SpfResult("temperror", address_domain(ctx.envelope.mail_from), reason),
                       DmarcResult("temperror", from_domain, reason=reason))


@check("sender_auth", SenderAuth, needs="header")
def CHECK(spec: SenderAuthSpec, ctx: Context) -> Evidence | None:
    results = ctx.auth.results if ctx.auth is not None else _unavailable(ctx)
    if spec.spf is not None and results.spf.result not in spec.spf:
        return None
    if spec.dmarc is not None and results.dmarc.result not in spec.dmarc:
        return None
    return results.as_dict()
