"""`sender_auth: {spf: [...], dkim: [...], dkim_aligned: BOOL, dmarc: [...]}`: the
sender's authentication results.

Holds when every key given matches, e.g. `{spf: [fail, softfail]}`,
`{spf: [pass], dmarc: [pass]}`, `{dkim: [pass]}`, `{dkim_aligned: true}`:

- `spf`: the SPF (RFC 7208) result for the envelope sender (the HELO name for the null
  sender) and the client IP: pass fail softfail neutral none permerror temperror;
- `dkim`: some DKIM-Signature's result (RFC 6376, words of RFC 8601) is in the list:
  pass fail neutral policy permerror temperror, or `none` for a message without any
  signature (gateway.auth.dkim says what each means; `policy` is a signature whose
  `l=` leaves part of the body unsigned). With one good and one bad signature both
  `[pass]` and `[fail]` hold;
- `dkim_aligned`: whether a DKIM signature passed whose d= is aligned with the first
  header From domain (the DMARC record's adkim, relaxed without a record);
- `dmarc`: the DMARC (RFC 7489) result for the first header From domain, passing when
  SPF or DKIM passes aligned: pass fail none permerror temperror.

DNS trouble is `temperror`, never a pass.

The check itself does no I/O: it reads `ctx.auth.results`, which the pipeline
evaluates on first use, so DNS is queried only for messages where a rule
reaches this condition. Put it after the cheaper conditions in a mapping or
`all:`; they are evaluated in the order written and stop at the first that does
not hold. Evidence: the results (`AuthResults.as_dict()`).

Declared `needs="header"`: SPF and DMARC records need only the envelope and the header
block, and so does DKIM for a message without signatures. For a DKIM- or ARC-signed
message the header-only facts raise `gateway.auth.facts.BodyNeeded`, and the proxy's
cut-through stores and forwards that message instead of guessing.
"""

from __future__ import annotations

from gateway.addresses import address_domain
from gateway.auth import AuthResults, DkimResult, DmarcResult, SpfResult
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import SenderAuth, SenderAuthSpec


def _unavailable(ctx: Context) -> AuthResults:
    # A context built without a resolver (a bare engine) must not let anything pass.
    reason = "sender authentication not available"
    from_domain = (address_domain(ctx.view.from_addresses[0])
                   if ctx.view.from_addresses else "")
    return AuthResults(SpfResult("temperror", address_domain(ctx.envelope.mail_from), reason),
                       DmarcResult("temperror", from_domain, reason=reason),
                       (DkimResult("temperror", "", "", reason=reason),))


@check("sender_auth", SenderAuth, needs="header")
def CHECK(spec: SenderAuthSpec, ctx: Context) -> Evidence | None:
    results = ctx.auth.results if ctx.auth is not None else _unavailable(ctx)
    if spec.spf is not None and results.spf.result not in spec.spf:
        return None
    if spec.dkim is not None and not spec.dkim & results.dkim_results:
        return None
    if spec.dkim_aligned is not None and results.dmarc.dkim_aligned != spec.dkim_aligned:
        return None
    if spec.dmarc is not None and results.dmarc.result not in spec.dmarc:
        return None
    return results.as_dict()
