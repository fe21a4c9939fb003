"""`sender_in: [addresses] | "@list"`: the envelope sender is one of these addresses.

Compared case-insensitively (local part included: mail systems treat them so in
practice). `<>` in the list stands for the null sender.
"""

from __future__ import annotations

from gateway.addresses import normalise_address
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Addresses


@check("sender_in", Addresses, takes_list=True, needs="envelope")
def CHECK(addresses: frozenset[str], ctx: Context) -> Evidence | None:
    sender = normalise_address(ctx.envelope.mail_from)
    return {"sender": sender or "<>"} if sender in addresses else None
