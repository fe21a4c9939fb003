"""The step both front ends share after the end of data: spool -> inspection process.

`inspect_spooled` hands the message to the gateway's inspection pool
(gateway.frontends.pool): a spooled message as its file, which the inspection
process reads itself, a message in memory as bytes. It returns an `Inspection`,
or the gateway's own refusal when the message could not be inspected: a spool
that failed or cannot be read back, an inspection that raised or whose process
ended (451 4.3.0), one that ran past `limits.inspection_timeout` (451 4.3.0, not
inspectable; its process killed), or no process or memory for it in time, or a
full queue (451 4.3.2, busy). Never a 5xx for our own fault, never the exception
text. What the front end then says, logs and counts for its protocol stays in
the front end.

Without a pool (a caller that has none) the inspection runs in a thread, as it
did before the pool: same answers, but a thread past its deadline cannot be
stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields

from gateway import pipeline
from gateway.auth import AuthResults
from gateway.envelope import Envelope
from gateway.frontends.datastream import READ_SIZE, Spool
from gateway.frontends.pool import (
    Busy,
    Failed,
    InspectionPool,
    Outcome,
    Source,
    SpoolFile,
    TimedOut,
    known_parts,
)
from gateway.observe.metrics import Metrics
from gateway.pipeline import Inspected
from gateway.policy import builtin, replies
from gateway.policy.verdict import Reply
from gateway.policy_state import PolicyState

# Pieces of a message in memory handed to the relay: a copy of at most this each.
RELAY_PIECE = 1024 * 1024


@dataclass(frozen=True)
class NotInspected:
    """The gateway's own tempfail for a message it could not inspect."""

    reply: Reply
    reason: str
    rule_id: str = builtin.INTERNAL_ERROR.id


class Relay:
    """The message to relay: the header block the verdict made (the received one when
    nothing changed), then the received message from `offset` on, from memory or read
    from the spool file in pieces."""

    def __init__(self, head: bytes, offset: int, received: bytes | None, spool: Spool | None,
                 size: int) -> None:
        self.head = head
        self.offset = offset
        self.received = received
        self.spool = spool
        self.size = len(head) + size - offset

    async def chunks(self) -> AsyncIterator[bytes]:
        """The message in pieces of at most about a megabyte, read off the event loop."""
        if self.head:
            yield self.head
        if self.received is not None:
            for start in range(self.offset, len(self.received), RELAY_PIECE):
                yield self.received[start:start + RELAY_PIECE]
            return
        assert self.spool is not None and self.spool.path is not None
        path, end = self.spool.path, self.spool.size
        offset = self.offset
        while offset < end:  # bounded: each pass reads at least a byte or raises
            piece = await asyncio.to_thread(_pread, path, min(READ_SIZE, end - offset), offset)
            if not piece:
                raise OSError("spool file shorter than the message")
            offset += len(piece)
            yield piece

    async def read(self) -> bytes:
        """The whole message as one bytes object (for a Maildir delivery)."""
        if self.received is not None:
            body = self.received if self.offset == 0 else self.received[self.offset:]
            return self.head + body if self.head else body
        return b"".join([piece async for piece in self.chunks()])


@dataclass(frozen=True)
class Inspection(Inspected):
    """What the front end gets: the inspection's outcome (`pipeline.Inspected`: verdict,
    reply, log facts in `view`, trace and removed headers) and, when the verdict is to
    relay, the message to relay."""

    relay_message: Relay | None = None


async def inspect_spooled(policy: PolicyState, spool: Spool, envelope: Envelope, ref: str,
                          metrics: Metrics, log: logging.Logger, where: str, *,
                          pool: InspectionPool | None = None,
                          auth: AuthResults | None = None) -> Inspection | NotInspected:
    """Inspect the spooled message in the pool (`auth`: sender authentication already
    looked up for it, see `pipeline.inspect`)."""
    if spool.error is not None:
        log.error("%s ref=%s cannot spool the message: %s", where, ref, spool.error)
        return NotInspected(replies.internal_error(ref), "internal error")
    received: bytes | None = None
    source: Source
    try:
        if spool.spooled:
            # The tail still in memory is under a megabyte: written here like the rest.
            spool.sync()
            assert spool.path is not None
            arrived = await spool.arrived(policy.config.limits.inspection_timeout)
            source = SpoolFile(spool.path, spool.size,
                               *(arrived if arrived is not None else (None, None)))
        else:
            received = source = spool.read()
    except OSError:
        log.exception("%s ref=%s cannot read the spooled message", where, ref)
        return NotInspected(replies.internal_error(ref), "internal error")
    started = time.monotonic()
    if pool is not None:
        outcome = await pool.inspect(policy, source, envelope, ref, auth)
    else:
        outcome = await _in_thread(policy, source, envelope, ref, auth)
    if isinstance(outcome, Busy):
        log.warning("%s ref=%s client=%s not inspected: %s", where, ref, envelope.client_ip,
                    outcome.reason)
        return NotInspected(replies.busy(ref), f"gateway busy: {outcome.reason}",
                            builtin.BUSY.id)
    if isinstance(outcome, TimedOut):
        return NotInspected(replies.not_inspectable(ref), "inspection timeout",
                            builtin.NOT_INSPECTABLE.id)
    if isinstance(outcome, Failed):
        log.error("%s ref=%s inspection failed: %s", where, ref, outcome.detail)
        return NotInspected(replies.internal_error(ref), "internal error")
    metrics.inspection_time(time.monotonic() - started)
    metrics.inspected(envelope.direction, spool.size, outcome.verdict.hits)
    metrics.decoded_on_arrival(outcome.decoded_on_arrival)
    metrics.scanned_on_arrival(outcome.scanned_on_arrival)
    relay = None
    if outcome.relay_head is not None:
        relay = Relay(outcome.relay_head, outcome.body_offset, received,
                      spool if received is None else None, spool.size)
    return Inspection(**{f.name: getattr(outcome, f.name) for f in fields(Inspected)},
                      relay_message=relay)


async def _in_thread(policy: PolicyState, source: Source, envelope: Envelope, ref: str,
                     auth: AuthResults | None) -> Outcome:
    timeout = policy.config.limits.inspection_timeout
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(_inspect_here, policy, source, envelope, ref, auth), timeout)
    except TimeoutError:
        return TimedOut(timeout)
    except Exception:
        return Failed(traceback.format_exc())


def _inspect_here(policy: PolicyState, source: Source, envelope: Envelope, ref: str,
                  auth: AuthResults | None) -> Inspected:
    raw = source if isinstance(source, bytes) else _pread(source.path, source.size, 0)
    with known_parts(raw, source) as known:
        return pipeline.summarize(pipeline.inspect(policy, raw, envelope, ref, auth=auth,
                                                   prescanned=known))


def _pread(path: str, size: int, offset: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)
