"""Warnings about a rule set that loads but may not do what its author meant.

`gateway rules check` prints them (`FILE:LINE: warning: ...` on stderr) and still
exits 0: the set is valid. Pure: the date and the config facts are arguments.

- An exception (`exceptions:`) that expired, or expires within EXPIRY_NOTICE_DAYS,
  on the gateway's local date.
- An enforced `accept` whose conditions only say who sends or receives (an allowlist
  written as a rule) placed before other rules: an accept ends evaluation, so every
  later rule is skipped for those senders, the malware and antivirus ones included.
  The narrow way is an exception naming the rules it exempts.
- An exception from a size rule whose limit is also the gateway's hard size limit
  (SIZE= at MAIL FROM, derived from the size rules when `limits.max_message_size` is
  not set): the exempted sender's large message is still refused before DATA.
"""

from __future__ import annotations

from datetime import date

from gateway.policy.rules import Condition, Rule, RuleSet, _leaves, rule_allowed_size

EXPIRY_NOTICE_DAYS = 14
# Conditions that say only who sends or receives the message, never what it holds.
IDENTITY_CHECKS = frozenset({"sender_in", "sender_domain", "from_in", "from_domain",
                             "client_ip", "recipient_domain", "recipient_outside_agency",
                             "null_sender", "sender_auth"})
# Conditions of the rules against malicious content: what an allowlist accept skips.
MALWARE_CHECKS = frozenset({"attachment_type", "virus", "antivirus_failed",
                            "antivirus_skipped", "office_macros", "type_mismatch"})


def _checks(cond: Condition) -> set[str]:
    return {leaf.check.name for leaf in _leaves(cond)}


def _overlap(a: Rule, b: Rule) -> bool:
    return "both" in (a.direction, b.direction) or a.direction == b.direction


def expiry_warnings(ruleset: RuleSet, today: date) -> list[str]:
    """Expired exceptions and those expiring within EXPIRY_NOTICE_DAYS of `today`."""
    out: list[str] = []
    for exc in ruleset.exceptions:
        left = (exc.expires - today).days
        names = ", ".join(exc.rules)
        if left < 0:
            out.append(f"{exc.file}:{exc.line}: warning: exception {exc.id} expired on "
                       f"{exc.expires.isoformat()} (today is {today.isoformat()}, "
                       f"{ruleset.timezone}): it no longer exempts anything from {names}; "
                       "remove it, or renew it with a new expires: if it is still approved")
        elif left <= EXPIRY_NOTICE_DAYS:
            when = "today" if left == 0 else f"in {left} day{'s' if left != 1 else ''}"
            out.append(f"{exc.file}:{exc.line}: warning: exception {exc.id} expires {when} "
                       f"({exc.expires.isoformat()}, the last day it applies): after it "
                       f"{names} apply to these messages again")
    return out


def allowlist_warnings(ruleset: RuleSet) -> list[str]:
    """Enforced accepts that read only sender/recipient identity, before other rules."""
    out: list[str] = []
    rules = ruleset.rules
    for i, rule in enumerate(rules):
        if rule.mode != "enforce" or rule.action != "accept":
            continue
        if not _checks(rule.when) <= IDENTITY_CHECKS:
            continue
        later = [r for r in rules[i + 1:] if _overlap(rule, r)]
        if not later:
            continue
        malware = [r.id for r in later if _checks(r.when) & MALWARE_CHECKS]
        named = f", including {', '.join(malware)}" if malware else \
            ", including any malware and antivirus rules"
        out.append(f"{rule.file}:{rule.line}: warning: rule {rule.id} accepts on who sends "
                   f"or receives the message alone and comes before {len(later)} other "
                   f"rule{'s' if len(later) != 1 else ''}: an accept ends evaluation, so "
                   f"for these messages it skips every later rule{named}. To exempt them "
                   "from particular rules, write an exception naming those rules "
                   "(exceptions: [{id, rules: [...], when, reason, expires}])")
    return out


def size_limit_warnings(ruleset: RuleSet, *, max_message_size_set: bool) -> list[str]:
    """Exceptions from the size rule that also sets the hard size limit."""
    if max_message_size_set:
        return []
    hard = ruleset.largest_allowed_size()
    out: list[str] = []
    by_id = {rule.id: rule for rule in ruleset.rules}
    for exc in ruleset.exceptions:
        for rule_id in exc.rules:
            allowed = rule_allowed_size(by_id[rule_id])
            if allowed is not None and allowed == hard:
                out.append(f"{exc.file}:{exc.line}: warning: exception {exc.id} exempts "
                           f"{rule_id}, whose limit is also the gateway's hard size limit "
                           f"({hard} bytes, refused at MAIL FROM SIZE= and during DATA "
                           "before any rule runs): set limits.max_message_size to the "
                           "largest message the exempted senders may send")
    return out


def warnings(ruleset: RuleSet, today: date, *, max_message_size_set: bool) -> list[str]:
    """Every warning, each one `FILE:LINE: warning: text` line."""
    return (allowlist_warnings(ruleset) + expiry_warnings(ruleset, today)
            + size_limit_warnings(ruleset, max_message_size_set=max_message_size_set))
