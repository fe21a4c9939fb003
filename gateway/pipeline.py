"""One message through the policy: view -> rules -> verdict -> transforms -> reply.

Shared by every front end and by `gateway check`. Synchronous, run in a worker
thread with a deadline; the caller owns sockets, relaying and the log. Its only
network I/O is DNS for sender authentication (`gateway.auth.facts.AuthFacts`),
made only when a rule reaches a `sender_auth` condition, bounded by the
resolver's timeout. When that happened the results go on the verdict (for the
log) and, if the message is relayed and `authentication_results` is on, into an
RFC 8601 Authentication-Results field at the top of the relayed message. Every
relayed message, in both directions and whether or not a rule looked at sender
authentication, loses the Authentication-Results fields that claim the gateway's
own authserv-id (`hostname`): they are forgeries (RFC 8601 5).

The view is bounded by the config's inspection limits. A message beyond them
that no rule decided on (`inspection_incomplete`) raises NotInspectable in the
first check that needs the whole message; that is answered here, as a tempfail
verdict (451 4.3.0) with the reason for the log, not as an internal error.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace

from gateway import transforms
from gateway.auth import AuthResults, authres
from gateway.auth.facts import AuthFacts
from gateway.envelope import Envelope
from gateway.message.view import MessageView, NotInspectable
from gateway.policy import builtin, replies
from gateway.policy.engine import evaluate
from gateway.policy.verdict import Outcome, Reply, Verdict
from gateway.policy_state import PolicyState
from gateway.transforms import authres_strip


def new_ref() -> str:
    """A short reference shared by the reply the client sees and the log line."""
    return time.strftime("%Y%m%d", time.gmtime()) + "-" + secrets.token_hex(5)


@dataclass(frozen=True)
class Inspection:
    ref: str
    verdict: Verdict
    view: MessageView
    reply: Reply | None  # what to tell the client instead of relaying; None = relay
    relay_bytes: bytes | None  # the message to relay (transformed), when reply is None
    # The gateway's own fields (Authentication-Results) at the top of relay_bytes, for a
    # front end that adds fields instead of relaying bytes (the milter).
    trace_headers: tuple[tuple[str, str], ...] = ()
    # The received fields relay_bytes lacks (forged Authentication-Results, RFC 8601 5),
    # as (name, n): the n-th field of that name (any case, 1-based), in header order.
    removed_headers: tuple[tuple[str, int], ...] = ()

    @property
    def relay(self) -> bool:
        return self.reply is None


def inspect(policy: PolicyState, raw: bytes, envelope: Envelope, ref: str | None = None
            ) -> Inspection:
    """Decide one message. Exceptions propagate: the caller tempfails (fail closed)."""
    ref = ref or new_ref()
    view = MessageView(raw, classification_headers=policy.config.classification_headers,
                       limits=policy.config.limits.inspection())
    facts = AuthFacts(policy.resolver, envelope, view)
    try:
        verdict = evaluate(policy.rules, view, envelope, facts)
    except NotInspectable as exc:
        verdict = Verdict(outcome=Outcome.TEMPFAIL, reply=replies.not_inspectable(ref),
                          rule_id=builtin.NOT_INSPECTABLE.id,
                          reference=builtin.NOT_INSPECTABLE.reference,
                          reason=f"not inspectable: {exc.reason}",
                          evidence={"inspection_incomplete": exc.reason},
                          classification=view.classification, auth=_auth_dict(facts))
        return Inspection(ref, verdict, view, verdict.reply, None)
    auth = facts.evaluated_results
    if auth is not None:
        verdict = replace(verdict, auth=auth.as_dict())
    if verdict.event is not None and verdict.classification is None:
        # The log must know whether the message is RAHSIA before it writes a subject;
        # find out here, in the worker thread, not later on the event loop.
        verdict = replace(verdict, classification=view.classification)
    if verdict.outcome is Outcome.ACCEPT:
        trace = _trace_headers(policy, envelope, auth)
        own = policy.config.hostname
        relay = transforms.apply(raw, verdict, trace, authserv_id=own)
        removed = tuple((authres_strip.FIELD, n) for n in authres_strip.forged(raw, own))
        return Inspection(ref, verdict, view, None, relay, trace, removed)
    reply = replies.for_verdict(verdict, ref) or replies.internal_error(ref)
    return Inspection(ref, verdict, view, reply, None)


def _auth_dict(facts: AuthFacts) -> dict[str, object] | None:
    results = facts.evaluated_results
    return None if results is None else results.as_dict()


def _trace_headers(policy: PolicyState, envelope: Envelope, auth: AuthResults | None
                   ) -> tuple[tuple[str, str], ...]:
    """The Authentication-Results field for a relayed message, when there is one to add."""
    if auth is None or not policy.config.authentication_results:
        return ()
    value = authres.header_value(policy.config.hostname, auth,
                                 mail_from=envelope.mail_from, helo=envelope.helo)
    return (("Authentication-Results", value),)
