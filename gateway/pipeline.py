"""One message through the policy: view -> rules -> verdict -> transforms -> reply.

Shared by every front end and by `gateway check`. Synchronous and free of
network I/O so it can run in a worker thread with a deadline; the caller owns
sockets, relaying and the log.

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
from gateway.envelope import Envelope
from gateway.message.view import MessageView, NotInspectable
from gateway.policy import replies
from gateway.policy.engine import evaluate
from gateway.policy.verdict import Outcome, Reply, Verdict
from gateway.policy_state import PolicyState


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

    @property
    def relay(self) -> bool:
        return self.reply is None


def inspect(policy: PolicyState, raw: bytes, envelope: Envelope, ref: str | None = None
            ) -> Inspection:
    """Decide one message. Exceptions propagate: the caller tempfails (fail closed)."""
    ref = ref or new_ref()
    view = MessageView(raw, classification_headers=policy.config.classification_headers,
                       limits=policy.config.limits.inspection())
    try:
        verdict = evaluate(policy.rules, view, envelope)
    except NotInspectable as exc:
        verdict = Verdict(outcome=Outcome.TEMPFAIL, reply=replies.not_inspectable(ref),
                          reason=f"not inspectable: {exc.reason}",
                          evidence={"inspection_incomplete": exc.reason},
                          classification=view.classification)
        return Inspection(ref, verdict, view, verdict.reply, None)
    if verdict.event is not None and verdict.classification is None:
        # The log must know whether the message is RAHSIA before it writes a subject;
        # find out here, in the worker thread, not later on the event loop.
        verdict = replace(verdict, classification=view.classification)
    if verdict.outcome is Outcome.ACCEPT:
        return Inspection(ref, verdict, view, None, transforms.apply(raw, verdict))
    reply = replies.for_verdict(verdict, ref) or replies.internal_error(ref)
    return Inspection(ref, verdict, view, reply, None)
