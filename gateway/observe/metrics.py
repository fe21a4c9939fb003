"""Prometheus metrics of one Gateway, and the upstream health it has observed.

Each Gateway owns its own CollectorRegistry (never the process-global one), so
several gateways in one process (the tests) count apart. The front end calls the
small methods of `Metrics`; no prometheus type reaches it. `messages_total`
counts decisions the client was told: each refusal (at MAIL, RCPT or DATA, the
envelope refusals of relay control included) and each message relayed; the verdict
is read from the reply code the client got (2xx relayed, 4xx tempfail, 5xx reject).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.policy.verdict import Hit

UpstreamErrorKind = Literal["unreachable", "timeout", "refused_4xx", "refused_5xx", "tls"]
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def verdict_of(code: int) -> str:
    """The verdict label of a reply code the client was given."""
    if 200 <= code < 300:
        return "relayed"
    return "tempfail" if code < 500 else "reject"


class Metrics:
    """The counters of one gateway and the time the upstream last answered."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._messages = Counter("gateway_messages", "Decisions told to clients",
                                 ["direction", "verdict"], registry=r)
        self._hits = Counter("gateway_rule_hits", "Rules whose conditions held",
                             ["rule_id", "mode"], registry=r)
        self._bytes = Counter("gateway_bytes", "Message bytes received in DATA",
                              ["direction"], registry=r)
        self._prescanned = Counter(
            "gateway_parts_decoded_on_arrival", "Parts decoded while their message arrived",
            registry=self.registry)
        self._text_scanned = Counter(
            "gateway_texts_scanned_on_arrival",
            "Text bodies searched for markings and links while their message arrived",
            registry=self.registry)
        self._inspection = Histogram("gateway_inspection_seconds", "Time to inspect a message",
                                     buckets=_LATENCY_BUCKETS, registry=r)
        self._relay = Histogram("gateway_relay_seconds", "Time to relay a message upstream",
                                buckets=_LATENCY_BUCKETS, registry=r)
        self._upstream_errors = Counter("gateway_upstream_errors", "Upstream failures",
                                        ["kind"], registry=r)
        self._sessions = Gauge("gateway_sessions_in_flight", "Client sessions open",
                               registry=r)
        self._load_seconds = Gauge("gateway_rules_load_seconds",
                                   "Time the rule set in force took to load", registry=r)
        self._rules_info = Gauge("gateway_rules_info", "The rule set in force (value 1)",
                                 ["version"], registry=r)
        self._loaded_at = Gauge("gateway_rules_loaded_timestamp_seconds",
                                "Unix time the rule set in force was put in force", registry=r)
        self._log_failures = Counter(
            "gateway_rejection_log_failures",
            "Rejection-log records that could not be written when they were made", registry=r)
        self._log_dropped = Counter(
            "gateway_rejection_log_dropped",
            "Rejection-log records dropped because the in-memory buffer was full", registry=r)
        self._log_buffered = Gauge(
            "gateway_rejection_log_buffered",
            "Rejection-log records waiting in memory for the log to be writable", registry=r)
        # monotonic times of the last upstream answer and the last failure to get one
        self.upstream_answered_at: float | None = None
        self.upstream_failed_at: float | None = None

    # -- what the front end calls -----------------------------------------------------
    def message(self, direction: str, code: int) -> None:
        """One decision told to the client: the reply `code` it was given."""
        self._messages.labels(direction, verdict_of(code)).inc()

    def inspected(self, direction: str, size: int, hits: Iterable[Hit]) -> None:
        """A message received and inspected: its size and the rules that hit."""
        self._bytes.labels(direction).inc(size)
        for hit in hits:
            self._hits.labels(hit.rule_id, hit.mode).inc()

    def rule_hit(self, rule_id: str, mode: str = "enforce") -> None:
        """A refusal by a built-in rule (relay control, size) that has no Hit."""
        self._hits.labels(rule_id, mode).inc()

    def decoded_on_arrival(self, parts: int) -> None:
        """Parts of an inspected message that the inspection took already decoded
        (gateway.message.prescan)."""
        self._prescanned.inc(parts)

    def scanned_on_arrival(self, texts: int) -> None:
        """Text bodies of an inspected message whose marking lines and links the
        inspection took already found (gateway.message.textscan)."""
        self._text_scanned.inc(texts)

    def inspection_time(self, seconds: float) -> None:
        self._inspection.observe(seconds)

    def relay_time(self, seconds: float) -> None:
        self._relay.observe(seconds)

    def upstream_answered(self, code: int) -> None:
        """The upstream gave a reply; a 4xx/5xx refusal is also counted as an error kind."""
        self.upstream_answered_at = time.monotonic()
        if code >= 500:
            self._upstream_errors.labels("refused_5xx").inc()
        elif code >= 400:
            self._upstream_errors.labels("refused_4xx").inc()

    def upstream_failed(self, exc: BaseException) -> None:
        """The upstream did not answer: counted by kind (tls, timeout, unreachable)."""
        if type(exc).__name__ == "UpstreamTlsFailed":
            self.upstream_error("tls")
        elif isinstance(exc.__cause__, TimeoutError) or "timed out" in str(exc):
            self.upstream_error("timeout")
        else:
            self.upstream_error("unreachable")

    def upstream_error(self, kind: UpstreamErrorKind) -> None:
        """The upstream did not answer (unreachable, timeout, tls)."""
        self.upstream_failed_at = time.monotonic()
        self._upstream_errors.labels(kind).inc()

    # -- what the rejection log calls (from worker threads; prometheus_client locks) -----
    def rejection_log_failed(self) -> None:
        self._log_failures.inc()

    def rejection_log_dropped(self) -> None:
        self._log_dropped.inc()

    # -- what the service calls ---------------------------------------------------------
    def track_sessions(self, count: Callable[[], int]) -> None:
        # Read at scrape time: no call in the front end can be missed or doubled.
        self._sessions.set_function(count)

    def track_rejection_log(self, buffered: Callable[[], int]) -> None:
        self._log_buffered.set_function(buffered)

    def rules_loaded(self, version: str, seconds: float | None) -> None:
        self._rules_info.clear()
        self._rules_info.labels(version).set(1)
        self._loaded_at.set(time.time())
        if seconds is not None:
            self._load_seconds.set(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
