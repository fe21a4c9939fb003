"""Evaluates a RuleSet against one message and returns the Verdict.

Rules run in order (file-name order, then order in the file). Monitor-mode hits
are recorded and change nothing; `tag` and `add_header` accumulate; the first
enforced `reject`, `tempfail` or `accept` ends evaluation. One verdict covers
all recipients, as after DATA SMTP has one reply for the whole message.

Conditions are evaluated in the order written: the keys of one `when:` mapping
(YAML mappings keep their order) and the items of `all:` stop at the first that
does not hold, `any:` at the first that does. Rule authors rely on this to put
costly conditions (`sender_auth`, which may query DNS) after cheap ones.
"""

from __future__ import annotations

from typing import Any

from gateway.auth.facts import AuthFacts
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.policy.checks.base import Context, Evidence
from gateway.policy.rules import AllOf, AnyOf, Condition, Leaf, Not, RuleSet
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
             auth: AuthFacts | None = None) -> Verdict:
    """The verdict; `auth` supplies sender authentication to `sender_auth` conditions."""
    ctx = Context(view=view, envelope=envelope, agency_domains=ruleset.agency_domains,
                  auth=auth)
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
