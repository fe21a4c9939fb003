"""The step both front ends share after the end of data: spool -> inspection, off the loop.

It returns the pipeline's Inspection, or the gateway's own refusal when the
message could not be inspected: a spool that failed or cannot be read back, or an
inspection that raised (451 4.3.0), or one that ran past
`limits.inspection_timeout` (451 4.3.0, not inspectable). Never a 5xx for our
own fault, never the exception text. What the front end then says, logs and
counts for its protocol stays in the front end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from gateway import pipeline
from gateway.envelope import Envelope
from gateway.frontends.datastream import Spool
from gateway.observe.metrics import Metrics
from gateway.pipeline import Inspection
from gateway.policy import builtin, replies
from gateway.policy.verdict import Reply
from gateway.policy_state import PolicyState


@dataclass(frozen=True)
class NotInspected:
    """The gateway's own tempfail for a message it could not inspect."""

    reply: Reply
    reason: str
    rule_id: str = builtin.INTERNAL_ERROR.id


async def inspect_spooled(policy: PolicyState, spool: Spool, envelope: Envelope, ref: str,
                          metrics: Metrics, log: logging.Logger, where: str
                          ) -> Inspection | NotInspected:
    if spool.error is not None:
        log.error("%s ref=%s cannot spool the message: %s", where, ref, spool.error)
        return NotInspected(replies.internal_error(ref), "internal error")
    try:
        raw = await asyncio.to_thread(spool.read) if spool.spooled else spool.read()
    except OSError:
        log.exception("%s ref=%s cannot read the spooled message", where, ref)
        return NotInspected(replies.internal_error(ref), "internal error")
    started = time.monotonic()
    try:
        inspection = await asyncio.wait_for(
            asyncio.to_thread(pipeline.inspect, policy, raw, envelope, ref),
            policy.config.limits.inspection_timeout)
    except TimeoutError:
        return NotInspected(replies.not_inspectable(ref), "inspection timeout",
                            builtin.NOT_INSPECTABLE.id)
    except Exception:
        log.exception("%s ref=%s inspection failed", where, ref)
        return NotInspected(replies.internal_error(ref), "internal error")
    metrics.inspection_time(time.monotonic() - started)
    metrics.inspected(envelope.direction, len(raw), inspection.verdict.hits)
    return inspection
