"""`classification: [RAHSIA BESAR, RAHSIA]`: the message's HIGHEST marking is listed.

The highest, so a RAHSIA message with a TERHAD line is RAHSIA only, and a rule for
[TERHAD, SULIT] does not fire on it (the RAHSIA rule does). Markings are found by
`gateway.message.markings`; a message beyond the inspection bounds cannot be
classified and raises NotInspectable (451 4.3.0) rather than pass as unmarked.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Levels

MAX_WHERE = 10


@check("classification", Levels)
def CHECK(levels: frozenset[str], ctx: Context) -> Evidence | None:
    ctx.view.require_complete()
    highest = ctx.view.classification
    ctx.view.require_complete()  # reading the documents may meet a limit (view.markings)
    if highest is None or highest not in levels:
        return None
    return {"classification": highest,
            "where": ctx.view.markings.where(highest)[:MAX_WHERE]}
