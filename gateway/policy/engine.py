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

Exceptions: once a rule's `when` holds, its own `except:` and then each top-level
exception naming it that has not expired (`today`, the gateway's local date) are
evaluated, in that order; the first that holds makes the rule not apply, recorded as
an `Exemption` in the verdict. No other rule is ever skipped by them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any, Literal

from gateway.antivirus.facts import ScanFacts
from gateway.auth.facts import AuthFacts
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.policy.checks.base import Context, Evidence
from gateway.policy.rules import (
    CHANGE_ACTIONS,
    AllOf,
    AnyOf,
    Condition,
    Leaf,
    Not,
    Rule,
    RuleSet,
)
from gateway.policy.verdict import Exemption, Hit, Outcome, Verdict


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


def exemption(ruleset: RuleSet, rule: Rule, today: date,
              test: Callable[[Condition], Evidence | _Undecided | None]
              ) -> Exemption | _Undecided | None:
    """Why `rule` (whose `when` held) does not apply, or None when it does: its own
    `except:`, else the first unexpired exception naming it whose `when` holds. `test`
    is `holds` or `holds_on_header`; UNDECIDED from the latter is returned as it is,
    stopping there as the full evaluation may."""
    candidates: list[tuple[Condition, Exemption]] = []
    if rule.except_when is not None:
        candidates.append((rule.except_when, Exemption(rule.id, reference=rule.reference)))
    candidates += [(exc.when, Exemption(rule.id, exc.id, exc.reason, exc.expires.isoformat(),
                                        rule.reference))
                   for exc in ruleset.exceptions_for(rule.id) if exc.applies_on(today)]
    for cond, found in candidates:
        result = test(cond)
        if result is None:
            continue
        return UNDECIDED if result is UNDECIDED else found
    return None


def evaluate(ruleset: RuleSet, view: MessageView, envelope: Envelope,
             auth: AuthFacts | None = None, *, antivirus: ScanFacts | None = None,
             today: date | None = None) -> Verdict:
    """The verdict; `auth` supplies sender authentication to `sender_auth` conditions,
    `antivirus` the clamd scan to `virus`, `antivirus_failed`, `antivirus_skipped`;
    `today` (default: the rule set's local date) decides which exceptions expired."""
    ctx = Context(view=view, envelope=envelope, agency_domains=ruleset.agency_domains,
                  auth=auth, antivirus=antivirus)
    day = ruleset.today() if today is None else today
    exemptions: list[Exemption] = []
    hits: list[Hit] = []
    tags: list[str] = []
    defangs: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    for rule in ruleset.rules:
        if not rule.applies_to(envelope.direction):
            continue
        evidence = holds(rule.when, ctx)
        if evidence is None:
            continue
        exempt = exemption(ruleset, rule, day, lambda cond: holds(cond, ctx))
        if isinstance(exempt, Exemption):
            exemptions.append(exempt)
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
        if rule.action == "defang" and rule.defang is not None:
            if rule.defang not in defangs:
                defangs.append(rule.defang)
            continue
        if rule.action == "add_header" and rule.header is not None:
            headers.append(rule.header)
            continue
        outcome = Outcome(rule.action)
        return Verdict(outcome=outcome, reply=rule.reply, rule_id=rule.id,
                       reference=rule.reference, reason=rule.description or rule.id,
                       hits=tuple(hits), subject_tags=tuple(tags),
                       subject_defangs=tuple(defangs),
                       added_headers=tuple(headers), evidence=dict(evidence),
                       exemptions=tuple(exemptions))
    return Verdict(outcome=Outcome.ACCEPT, hits=tuple(hits), subject_tags=tuple(tags),
                   subject_defangs=tuple(defangs),
                   added_headers=tuple(headers), exemptions=tuple(exemptions))


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
    subject_defangs: tuple[tuple[str, str], ...] = ()


class PlanViolated(Exception):
    """A rule the change plan counts on needed the body after all: a bug, never a guess."""


def header_changes(ruleset: RuleSet, view: MessageView, envelope: Envelope,
                   auth: AuthFacts | None = None, *, today: date | None = None
                   ) -> HeaderChanges:
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
    day = ruleset.today() if today is None else today
    tags: list[str] = []
    defangs: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    for rule in plan.rules:
        if not rule.applies_to(envelope.direction):
            continue
        evidence = holds_on_header(rule.when, ctx)
        if evidence is not None and evidence is not UNDECIDED:
            # Evaluated for every rule of the plan, as sender_auth may be reached in it.
            exempt = exemption(ruleset, rule, day, lambda cond: holds_on_header(cond, ctx))
            if exempt is not None:
                evidence = UNDECIDED if exempt is UNDECIDED else None
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
        elif rule.action == "defang" and rule.defang is not None:
            if rule.defang not in defangs:
                defangs.append(rule.defang)
        elif rule.action == "accept":
            break
    return HeaderChanges(tuple(tags), tuple(headers), tuple(defangs))
