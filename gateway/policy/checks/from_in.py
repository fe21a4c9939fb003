"""`from_in: [addresses] | "@list"`: every address in the header From is one of these.

The header From is what the reader sees and what DMARC authenticates (RFC 7489 3.1);
the envelope sender (`sender_in`) is neither. A rule that trusts a sender because
DKIM passed aligned with From must therefore also know that From is that sender:
otherwise an attacker's own domain, signing its own mail, aligns with itself.
A From with no address never holds; several addresses hold only if all are listed.
Addresses are read from the raw header (gateway.message.view.from_addresses),
compared case-insensitively as `sender_in` does.
"""

from __future__ import annotations

from gateway.addresses import normalise_address
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Addresses


@check("from_in", Addresses, takes_list=True, needs="header")
def CHECK(addresses: frozenset[str], ctx: Context) -> Evidence | None:
    found = [normalise_address(a) for a in ctx.view.from_addresses]
    if found and all(a in addresses for a in found):
        return {"from": found}
    return None
