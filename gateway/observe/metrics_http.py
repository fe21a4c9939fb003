"""The metrics HTTP listener: GET /metrics and GET /healthz on the event loop.

A tiny HTTP/1.0-style server on asyncio streams rather than prometheus_client's
threaded server: it stops with the gateway (no thread to join), and /healthz can
read the gateway's state without locks. GET only, the request head is bounded
(MAX_REQUEST bytes, REQUEST_TIMEOUT seconds) and every answer closes the connection.

/healthz is 200 "ready" when every listener is bound, the rejection log can be
written (nothing is waiting in memory for it) and the upstream is usable:
  - maildir: the directory is writable;
  - smtp: the upstream answered within FRESH seconds and nothing failed since, else a
    probe (connect, read the 220 greeting, QUIT; PROBE_TIMEOUT) succeeds now.
Otherwise 503 with the reason in one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable

from gateway.config import Upstream
from gateway.observe.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("gateway.metrics")

MAX_REQUEST = 8192
REQUEST_TIMEOUT = 5.0
FRESH = 60.0
PROBE_TIMEOUT = 2.0


async def probe_smtp(host: str, port: int) -> str | None:
    """None when an SMTP server greets with 220 at host:port, else why not."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                greeting = await reader.readline()
                if not greeting.startswith(b"220"):
                    return "upstream did not greet with 220"
                writer.write(b"QUIT\r\n")
                with contextlib.suppress(OSError):
                    await writer.drain()
            finally:
                writer.close()
    except TimeoutError:
        return "upstream timed out"
    except OSError as exc:
        return f"upstream unreachable ({exc.strerror or type(exc).__name__})"
    return None


class MetricsServer:
    """Serves one gateway's metrics and health until closed."""

    def __init__(self, metrics: Metrics, upstream: Callable[[], Upstream],
                 listening: Callable[[], bool],
                 log_problem: Callable[[], Awaitable[str | None]] | None = None) -> None:
        self.metrics = metrics
        self.upstream = upstream
        self.listening = listening
        # Retries the rejection log's pending records; None when it works, else why not.
        self.log_problem = log_problem
        self._server: asyncio.AbstractServer | None = None
        self.address: tuple[str, int] | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port,
                                                  reuse_address=True, limit=MAX_REQUEST)
        sock = self._server.sockets[0].getsockname()
        self.address = (str(sock[0]), int(sock[1]))
        log.info("metrics listening on %s:%d", *self.address)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def health(self) -> str | None:
        """None when ready, else the reason it is not."""
        if not self.listening():
            return "listeners not bound"
        if self.log_problem is not None:
            why = await self.log_problem()
            if why is not None:
                return f"rejection log not writable: {why}"
        target = self.upstream()
        if target.kind == "maildir":
            ok = await asyncio.to_thread(os.access, target.path, os.W_OK | os.X_OK)
            return None if ok else f"maildir {target.path} not writable"
        m = self.metrics
        answered, failed = m.upstream_answered_at, m.upstream_failed_at
        if answered is not None and time.monotonic() - answered < FRESH \
                and (failed is None or failed < answered):
            return None
        why = await probe_smtp(target.host, target.port)
        if why is None:
            m.upstream_answered_at = time.monotonic()
        return why

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
            status, ctype, body = await self._answer(head)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            status, ctype, body = "400 Bad Request", "text/plain", b"bad request\n"
        try:
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                         .encode() + body)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[str, str, bytes]:
        if len(head) > MAX_REQUEST:
            return "431 Request Header Fields Too Large", "text/plain", b"too large\n"
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3:
            return "400 Bad Request", "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method != b"GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if target == b"/metrics":
            return "200 OK", CONTENT_TYPE, self.metrics.render()
        if target == b"/healthz":
            why = await self.health()
            if why is None:
                return "200 OK", "text/plain", b"ready\n"
            return "503 Service Unavailable", "text/plain", f"not ready: {why}\n".encode()
        return "404 Not Found", "text/plain", b"not found\n"
