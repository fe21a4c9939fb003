"""Evaluates a RuleSet against one message and returns the Verdict.

Rules run in order (file-name order, then order in the file). Monitor-mode hits
are recorded and change nothing; `tag` and `add_header` accumulate; the first
enforced `reject`, `tempfail` or `accept` ends evaluation. One verdict covers
all recipients, as after DATA SMTP has one reply for the whole message.

Conditions are evaluated in the order written: the keys of one `when:` mapping
(YAML mappings keep their order) and the items of `all:` stop at the first that
does not hold, `any:` at the first that does. Rule authors rely on this to put
costly conditions (`sender_auth`, which may query DNS) after cheap ones.

`header_changes` is the same evaluation run when only the header block has arrived
(the proxy's cut-through): over the rules of the set's `ChangePlan`, with every
condition that reads the body left undecided, it gives the subject tags and added
fields an accepting verdict will carry, and reaches the same `sender_auth`
conditions the full evaluation will (so the Authentication-Results field is known
too). The plan guarantees that nothing it leaves undecided can change that.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from gateway.antivirus.facts import ScanFacts
from gateway.auth.facts import AuthFacts
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.policy.checks.base import Context, Evidence
from gateway.policy.rules import CHANGE_ACTIONS, AllOf, AnyOf, Condition, Leaf, Not, RuleSet
from gateway.policy.verdict import Hit, Outcome, Verdict


def holds(cond: Condition, ctx: Context) -> Evidence | None:
    """Evidence when the condition holds, else None. Pure."""
    if isinstance(cond, Leaf):
        return cond.check.evaluate(cond.value, ctx)
    if isinstance(cond, AllOf):
        merged: dict[str, Any] = {}
        for item in cond.items:
            ev = holds(item, ctx)
            if ev is None:
                return None
            merged.update(ev)
        return merged
    if isinstance(cond, AnyOf):
        for item in cond.items:
            ev = holds(item, ctx)
            if ev is not None:
                return ev
        return None
    assert isinstance(cond, Not)
    return {} if holds(cond.item, ctx) is None else None


def evaluate(ruleset: RuleSet, view: MessageView, envelope: Envelope,
             auth: AuthFacts | None = None, *, antivirus: ScanFacts | None = None
             ) -> Verdict:
    """The verdict; `auth` supplies sender authentication to `sender_auth` conditions,
    `antivirus` the clamd scan to `virus`, `antivirus_failed`, `antivirus_skipped`."""
    ctx = Context(view=view, envelope=envelope, agency_domains=ruleset.agency_domains,
                  auth=auth, antivirus=antivirus)
    hits: list[Hit] = []
    tags: list[str] = []
    headers: list[tuple[str, str]] = []
    for rule in ruleset.rules:
        if not rule.applies_to(envelope.direction):
            continue
        evidence = holds(rule.when, ctx)
        if evidence is None:
            continue
        hit = Hit(rule_id=rule.id, action=rule.action, mode=rule.mode,
                  reference=rule.reference, evidence=dict(evidence),
                  reason=rule.description or rule.id)
        hits.append(hit)
        if rule.mode == "monitor":
            continue
        if rule.action == "tag" and rule.tag is not None:
            if rule.tag not in tags:
                tags.append(rule.tag)
            continue
        if rule.action == "add_header" and rule.header is not None:
            headers.append(rule.header)
            continue
        outcome = Outcome(rule.action)
        return Verdict(outcome=outcome, reply=rule.reply, rule_id=rule.id,
                       reference=rule.reference, reason=rule.description or rule.id,
                       hits=tuple(hits), subject_tags=tuple(tags),
                       added_headers=tuple(headers), evidence=dict(evidence))
    return Verdict(outcome=Outcome.ACCEPT, hits=tuple(hits), subject_tags=tuple(tags),
                   added_headers=tuple(headers))


class _Undecided(Enum):
    """A condition that reads the body, asked before the body has arrived."""

    UNDECIDED = "undecided"


UNDECIDED: Literal[_Undecided.UNDECIDED] = _Undecided.UNDECIDED


def holds_on_header(cond: Condition, ctx: Context) -> Evidence | _Undecided | None:
    """`holds` with only the header block: a condition that reads the body is undecided.

    Evaluation stops at the first undecided condition, as it may stop there in the full
    evaluation; `plan_changes` makes sure no `sender_auth` condition comes after one, so
    the conditions evaluated here with side effects are exactly the full evaluation's.
    """
    if isinstance(cond, Leaf):
        if cond.check.needs == "message":
            return UNDECIDED
        return cond.check.evaluate(cond.value, ctx)
    if isinstance(cond, AllOf):
        merged: dict[str, Any] = {}
        for item in cond.items:
            ev = holds_on_header(item, ctx)
            if ev is None or ev is UNDECIDED:
                return ev
            merged.update(ev)
        return merged
    if isinstance(cond, AnyOf):
        for item in cond.items:
            ev = holds_on_header(item, ctx)
            if ev is not None:
                return ev
        return None
    assert isinstance(cond, Not)
    inner = holds_on_header(cond.item, ctx)
    if inner is UNDECIDED:
        return UNDECIDED
    return {} if inner is None else None


@dataclass(frozen=True)
class HeaderChanges:
    """The header changes an accepting verdict will carry (`Verdict` fields of the same
    names), decided from the envelope and the header block."""

    subject_tags: tuple[str, ...] = ()
    added_headers: tuple[tuple[str, str], ...] = ()


class PlanViolated(Exception):
    """A rule the change plan counts on needed the body after all: a bug, never a guess."""


def header_changes(ruleset: RuleSet, view: MessageView, envelope: Envelope,
                   auth: AuthFacts | None = None) -> HeaderChanges:
    """The subject tags and added fields an accepted message gets, from its header block.

    Only for a rule set whose plan says the header decides (`ChangePlan.header_decides`).
    Refusal rules are assumed not to hold (if one does, nothing is relayed); those with
    a `sender_auth` condition are still evaluated, for the look-up `auth` records.
    """
    plan = ruleset.change_plan
    if not plan.header_decides:
        raise PlanViolated("the rule set needs the body to decide its header changes")
    ctx = Context(view=view, envelope=envelope, agency_domains=ruleset.agency_domains,
                  auth=auth)
    tags: list[str] = []
    headers: list[tuple[str, str]] = []
    for rule in plan.rules:
        if not rule.applies_to(envelope.direction):
            continue
        evidence = holds_on_header(rule.when, ctx)
        if rule.mode != "enforce" or rule.action not in (*CHANGE_ACTIONS, "accept"):
            continue
        if evidence is UNDECIDED:
            if rule.action in CHANGE_ACTIONS:
                raise PlanViolated(f"rule {rule.id} needs the body to decide")
            # An accept the plan kept only for its sender_auth: no change follows it.
            continue
        if evidence is None:
            continue
        if rule.action == "tag" and rule.tag is not None:
            if rule.tag not in tags:
                tags.append(rule.tag)
        elif rule.action == "add_header" and rule.header is not None:
            headers.append(rule.header)
        elif rule.action == "accept":
            break
    return HeaderChanges(tuple(tags), tuple(headers))
