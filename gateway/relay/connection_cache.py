"""Idle upstream connections kept between client sessions, as Postfix's connection cache.

A client that sends one message per connection (as `smtp-source`, and many MTAs with
little queued, do) would otherwise cost the gateway a new upstream connection, its
220, EHLO and any STARTTLS for every message. Postfix's smtp client keeps a delivered
connection open for `smtp_connection_cache_time_limit` (2 s by default) and reuses it
for the next delivery to the same next hop, but not past
`smtp_connection_reuse_time_limit` (300 s) since it was opened (postconf(5),
CONNECTION_CACHE_README). This module does the same for the proxy's lockstep
sessions (gateway.relay.smtp.UpstreamSession).

A connection is kept only when it is between transactions and healthy: no open
transaction, not closed or discarded, no 421 heard, nothing unread. Each transaction
on it begins with XFORWARD (when offered) and MAIL of its own, so nothing of one
client's transaction carries over to the next. If the upstream closes a kept
connection meanwhile, the MAIL on it fails and the proxy dials a fresh one before
the client hears anything (gateway.frontends.smtp_proxy.ProxySMTP.upstream_mail):
no message is sent twice or lost, since nothing was sent yet.

Connections are kept per key (host, port, EHLO name, upstream TLS settings), so a
reload that changes any of them never reuses an old connection; at most
`max_idle` are kept per process, and an expired one is closed with QUIT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from gateway.relay.smtp import UpstreamSession

log = logging.getLogger(__name__)

# Postfix's defaults (postconf(5)): smtp_connection_cache_time_limit,
# smtp_connection_reuse_time_limit.
DEFAULT_IDLE_TIME = 2.0
DEFAULT_REUSE_TIME = 300.0
DEFAULT_MAX_IDLE = 100


@dataclass
class _Idle:
    key: Hashable
    session: UpstreamSession
    since: float  # monotonic seconds when it was given back


@dataclass
class ConnectionCache:
    """Idle upstream sessions by key. `idle_time` (seconds) 0 keeps none."""

    idle_time: float = DEFAULT_IDLE_TIME
    reuse_time: float = DEFAULT_REUSE_TIME
    max_idle: int = DEFAULT_MAX_IDLE
    _idle: list[_Idle] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None
    _closing: set[asyncio.Task[None]] = field(default_factory=set)
    reused: int = 0  # sessions handed out again (metrics, tests)

    def __len__(self) -> int:
        return len(self._idle)

    def take(self, key: Hashable) -> UpstreamSession | None:
        """The most recently kept usable session for `key`, removed from the cache; None
        when there is none. Expired or unusable sessions met on the way are closed."""
        now = time.monotonic()
        for entry in reversed(self._idle):
            if entry.key != key:
                continue
            self._idle.remove(entry)
            if self._fresh(entry, now) and entry.session.reusable:
                self.reused += 1
                return entry.session
            self._close(entry.session)
        return None

    def give_back(self, key: Hashable, session: UpstreamSession) -> None:
        """Keep `session` for the next transaction to `key`, or close it (QUIT) when it
        cannot be reused: unusable, too old, caching off, or the cache full."""
        now = time.monotonic()
        if (self.idle_time <= 0 or not session.reusable
                or now - session.opened_at >= self.reuse_time):
            self._close(session)
            return
        if len(self._idle) >= self.max_idle:
            # The oldest makes room: the newest is the likeliest to be taken next.
            self._close(self._idle.pop(0).session)
        self._idle.append(_Idle(key, session, now))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.idle_time, self._expire)

    async def close(self) -> None:
        """Close every kept session with QUIT (gateway stop); waits for the QUITs."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._idle:
            self._close(self._idle.pop().session)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _fresh(self, entry: _Idle, now: float) -> bool:
        return (now - entry.since < self.idle_time
                and now - entry.session.opened_at < self.reuse_time)

    def _expire(self) -> None:
        self._timer = None
        now = time.monotonic()
        keep = []
        for entry in self._idle:
            if self._fresh(entry, now) and entry.session.reusable:
                keep.append(entry)
            else:
                self._close(entry.session)
        self._idle = keep
        if keep:
            oldest = min(entry.since for entry in keep)
            delay = max(oldest + self.idle_time - now, 0.01)
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _close(self, session: UpstreamSession) -> None:
        if session.closed:
            return
        task = asyncio.get_running_loop().create_task(session.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
