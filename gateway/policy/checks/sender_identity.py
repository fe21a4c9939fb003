"""`sender_identity: [display_name_address, multiple_from_headers]`: a listed From defect holds.

Kinds (gateway.message.identity.KINDS): from_missing, multiple_from_headers,
from_unparsable, multiple_from_addresses, display_name_address (only when the
address in the display name differs from the real one), sender_domain_differs.
Header-only: no MIME parse.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import IdentityKinds


@check("sender_identity", IdentityKinds, needs="header")
def CHECK(kinds: frozenset[str], ctx: Context) -> Evidence | None:
    facts = ctx.view.identity
    found = [k for k in facts.kinds if k in kinds]
    if not found:
        return None
    evidence: dict[str, object] = {"sender_identity": found}
    if "display_name_address" in found:
        evidence["value"] = list(facts.display_addresses[:5])  # dropped for RAHSIA mail
    return evidence
