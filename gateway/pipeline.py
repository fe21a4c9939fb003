"""One message through the policy: view -> rules -> verdict -> transforms -> reply.

Shared by every front end and by `gateway check`. Synchronous; the front ends run
it in an inspection process (gateway.frontends.pool) with a deadline, and get back
`summarize`'s `Inspected`: the verdict, the reply, the facts the log needs, and the
message to relay as a new header block over the received body, which stays in the
spool. The caller owns sockets, relaying and the log. Its only
network I/O is DNS for sender authentication (`gateway.auth.facts.AuthFacts`),
made only when a rule reaches a `sender_auth` condition, bounded by the
resolver's timeout. When that happened the results go on the verdict (for the
log) and, if the message is relayed and `authentication_results` is on, into an
RFC 8601 Authentication-Results field at the top of the relayed message. Every
relayed message, in both directions and whether or not a rule looked at sender
authentication, loses the Authentication-Results fields that claim the gateway's
own authserv-id (`hostname`): they are forgeries (RFC 8601 5).
With `dkim_sign:` an accepted outbound message of the signing domain is then
DKIM-signed as relayed (`gateway.transforms.dkim_sign`): the DKIM-Signature goes on
top and first among the trace fields; a message dkimpy cannot parse raises (451).

The other I/O is the antivirus scan (`gateway.antivirus.facts.ScanFacts`, config
`antivirus:`): clamd is asked only when a rule reaches `virus`, `antivirus_failed`
or `antivirus_skipped`, once, bounded by `antivirus.timeout`; the scan result is
the evidence of the rule that used it.

The view is bounded by the config's inspection limits. A message beyond them
that no rule decided on (`inspection_incomplete`) raises NotInspectable in the
first check that needs the whole message; that is answered here, as a tempfail
verdict (451 4.3.0) with the reason for the log, not as an internal error.

`decide_header` is the same decision made early, for the proxy's cut-through: from
the header block alone (when the rule set's `change_plan` allows it), the header
block an accepting verdict will relay (`HeaderDecision`), and the sender
authentication looked up on the way, which `inspect(auth=...)` then reuses.
`HeaderDecision.agrees` checks the verdict on the whole message against it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace

from gateway import transforms
from gateway.antivirus.facts import ScanFacts
from gateway.auth import AuthResults, authres
from gateway.auth.facts import AuthFacts
from gateway.envelope import Envelope
from gateway.message import prescan
from gateway.message.headers import header_end
from gateway.message.view import MessageView, NotInspectable
from gateway.policy import builtin, replies
from gateway.policy.engine import evaluate, header_changes
from gateway.policy.verdict import Outcome, Reply, Verdict
from gateway.policy_state import PolicyState
from gateway.transforms import authres_strip
from gateway.transforms.headers import add_headers

_COMPARE_SLICE = 1024 * 1024


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


@dataclass(frozen=True)
class Summary:
    """What the rejection log reads of a message, without its view (which stays in the
    inspection process). `subject` is None when it must not be logged: the message's
    classification could not be established, so it may be RAHSIA."""

    from_header: str
    subject: str | None
    message_id: str
    size: int
    classification: str | None
    # The view's password candidates (MessageView.secret_values), for masking only:
    # passed in memory between processes, never written.
    secret_values: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Inspected:
    """An Inspection as it comes back from an inspection process: picklable and small.

    The message to relay is `relay_head` followed by the received message from
    `body_offset` on (the transforms change only the header block), so a large
    message is never copied back: the front end relays the rest from its spool.
    `relay_head` is None when the verdict is not to relay; b"" with offset 0 means the
    received bytes unchanged.
    """

    ref: str
    verdict: Verdict
    view: Summary
    reply: Reply | None
    relay_head: bytes | None
    body_offset: int = 0
    trace_headers: tuple[tuple[str, str], ...] = ()
    removed_headers: tuple[tuple[str, int], ...] = ()
    # The received header block when the verdict tags or defangs the subject (the milter
    # changes the Subject field from it); else b"".
    received_head: bytes = b""
    # Parts the inspection took already decoded (gateway.message.prescan), and text
    # bodies already scanned (gateway.message.textscan).
    decoded_on_arrival: int = 0
    scanned_on_arrival: int = 0

    @property
    def relay(self) -> bool:
        return self.reply is None


def summarize(inspection: Inspection) -> Inspected:
    """The Inspected of an Inspection, made where its view is (the inspection process).

    The classification is established here, off the front end's event loop, whether or
    not a rule needed it: any record the front end writes later (an upstream refusal
    of a relayed message too) must know whether to withhold the subject.
    """
    view, verdict = inspection.view, inspection.verdict
    raw = view.raw
    classification = verdict.classification
    subject: str | None = view.subject
    if classification is None:
        try:
            classification = view.classification
        except Exception:
            # Unknown: it may be RAHSIA, so its subject is not logged.
            subject = None
    head: bytes | None = None
    offset = 0
    if inspection.relay_bytes is not None:
        head, offset = _relay_split(raw, inspection.relay_bytes)
    received = raw[:header_end(raw)] if verdict.subject_tags or verdict.subject_defangs \
        else b""
    return Inspected(inspection.ref, verdict,
                     Summary(view.from_header, subject, view.message_id, view.size,
                             classification, view.secret_values),
                     inspection.reply, head, offset, inspection.trace_headers,
                     inspection.removed_headers, received, view.decoded_on_arrival,
                     view.scanned_on_arrival)


def _relay_split(raw: bytes, relay: bytes) -> tuple[bytes, int]:
    """(head, offset) with relay == head + raw[offset:], the body shared whenever it is."""
    if relay is raw:
        return b"", 0
    offset = header_end(raw)
    tail = len(raw) - offset
    start = len(relay) - tail
    if start >= 0 and _same(relay, start, raw, offset, tail):
        return relay[:start], offset
    return relay, len(raw)


def _same(a: bytes, a_at: int, b: bytes, b_at: int, length: int) -> bool:
    # In slices: bytes comparison is a memcmp (memoryview's compares item by item,
    # about three times slower), and a slice at a time bounds the copies made.
    for done in range(0, length, _COMPARE_SLICE):
        n = min(_COMPARE_SLICE, length - done)
        if a[a_at + done:a_at + done + n] != b[b_at + done:b_at + done + n]:
            return False
    return True


def inspect(policy: PolicyState, raw: bytes, envelope: Envelope, ref: str | None = None,
            *, auth: AuthResults | None = None,
            prescanned: prescan.Known | None = None) -> Inspection:
    """Decide one message. Exceptions propagate: the caller tempfails (fail closed).

    `auth`: the sender authentication already looked up for this message when its
    header block arrived (`decide_header`); rules that reach `sender_auth` read it
    instead of asking DNS again, so both decisions see the same answer.
    `prescanned`: what was read of `raw` while it arrived (gateway.message.prescan):
    work spared, the verdict unchanged."""
    ref = ref or new_ref()
    view = MessageView(raw, classification_headers=policy.config.classification_headers,
                       limits=policy.config.limits.inspection(),
                       label_map=policy.config.label_map, prescanned=prescanned)
    facts = AuthFacts(policy.resolver, envelope, view, looked_up=auth)
    antivirus = policy.config.antivirus
    scan = ScanFacts(antivirus, view) if antivirus is not None else None
    try:
        verdict = evaluate(policy.rules, view, envelope, facts, antivirus=scan)
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
        signer = policy.signer
        if signer is not None and signer.applies(envelope.direction, view.from_addresses):
            # Last, over the bytes as relayed; at the very top, and a trace field for
            # the milter (gateway.transforms.dkim_sign).
            signature = signer.sign(relay, unsigned=[n for n, _ in verdict.added_headers])
            relay = add_headers(relay, (signature,))
            trace = (signature, *trace)
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


@dataclass(frozen=True)
class HeaderDecision:
    """The header block of a message as the proxy relays it while the body still
    arrives (cut-through), decided when the header block ends.

    `received` is the header block as received, through the empty line that ends it;
    `block` the same with the changes an accepting verdict makes (forged
    Authentication-Results removed, subject tags, added fields, the gateway's own
    Authentication-Results); `auth` the sender authentication looked up on the way,
    for the full inspection at the end of data to reuse (`inspect(auth=...)`).
    """

    received: bytes
    block: bytes
    subject_tags: tuple[str, ...]
    added_headers: tuple[tuple[str, str], ...]
    trace_headers: tuple[tuple[str, str], ...]
    removed_headers: tuple[tuple[str, int], ...]
    auth: AuthResults | None
    subject_defangs: tuple[tuple[str, str], ...] = ()

    def agrees(self, inspection: Inspection | Inspected) -> bool:
        """Whether the accepting `inspection` of the whole message relays exactly this
        header block over the received body: the same changes, the same bytes."""
        verdict = inspection.verdict
        if (verdict.subject_tags, verdict.added_headers, inspection.trace_headers,
                inspection.removed_headers, verdict.subject_defangs) != (
                self.subject_tags, self.added_headers, self.trace_headers,
                self.removed_headers, self.subject_defangs):
            return False
        received = len(self.received)
        if isinstance(inspection, Inspected):
            head, offset = inspection.relay_head, inspection.body_offset
            # relay = head + raw[offset:], and raw begins with `received`.
            return head is not None and offset <= received and \
                head + self.received[offset:] == self.block
        relay = inspection.relay_bytes
        return relay is not None and relay[:len(self.block)] == self.block and \
            len(relay) - len(self.block) == inspection.view.size - received


def decide_header(policy: PolicyState, received: bytes, envelope: Envelope) -> HeaderDecision:
    """The header changes of an accepting verdict, from the header block alone.

    Only for a rule set whose `change_plan` says the header block decides; raises
    `PlanViolated` otherwise, and `gateway.auth.facts.BodyNeeded` when a rule reaches
    `sender_auth` for a DKIM- or ARC-signed message. Blocking (a `sender_auth`
    condition may query DNS): run it in a worker thread with a deadline. `received`
    must end with the empty line.
    """
    view = MessageView(received, classification_headers=policy.config.classification_headers,
                       limits=policy.config.limits.inspection(),
                       label_map=policy.config.label_map)
    # A DKIM- or ARC-signed message whose rules reach sender_auth raises BodyNeeded:
    # its authentication needs the body, so the proxy stores and forwards it.
    facts = AuthFacts(policy.resolver, envelope, view, header_only=True)
    changes = header_changes(policy.rules, view, envelope, facts)
    auth = facts.evaluated_results
    trace = _trace_headers(policy, envelope, auth)
    own = policy.config.hostname
    verdict = Verdict(outcome=Outcome.ACCEPT, subject_tags=changes.subject_tags,
                      subject_defangs=changes.subject_defangs,
                      added_headers=changes.added_headers)
    block = transforms.apply(received, verdict, trace, authserv_id=own)
    removed = tuple((authres_strip.FIELD, n) for n in authres_strip.forged(received, own))
    return HeaderDecision(received, block, changes.subject_tags, changes.added_headers,
                          trace, removed, auth, changes.subject_defangs)
