"""Antivirus scanning through ClamAV's daemon, clamd.

`clamd.py` speaks the clamd protocol (PING, INSTREAM) over a unix or TCP socket;
`facts.py` (`ScanFacts`) scans one message lazily, at most once, for the `virus`,
`antivirus_failed` and `antivirus_skipped` conditions (gateway/policy/checks/virus.py,
antivirus_failed.py, antivirus_skipped.py). Configured by the config's `antivirus:`
(gateway.config.AntivirusSettings); without it nothing is scanned, said at start-up
and by `gateway rules check` (`status`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.policy.rules import Condition, RuleSet

# The conditions that read the scan (gateway/policy/checks/virus.py and siblings).
CONDITIONS = frozenset({"virus", "antivirus_failed", "antivirus_skipped"})


def _uses_scan(cond: Condition) -> bool:
    from gateway.policy.rules import AllOf, AnyOf, Leaf, Not

    if isinstance(cond, Leaf):
        return cond.check.name in CONDITIONS
    if isinstance(cond, AllOf | AnyOf):
        return any(_uses_scan(item) for item in cond.items)
    assert isinstance(cond, Not)
    return _uses_scan(cond.item)


def scanning_rules(rules: RuleSet) -> tuple[str, ...]:
    """Ids of the rules with a `virus`, `antivirus_failed` or `antivirus_skipped` condition."""
    return tuple(r.id for r in rules.rules if _uses_scan(r.when))


def status(config: GatewayConfig, rules: RuleSet) -> tuple[bool, str]:
    """(configured, one line) for the journal at start-up and reload and for `gateway
    rules check`: where clamd is, or that nothing is scanned and which rules therefore
    never hold."""
    using = scanning_rules(rules)
    settings = config.antivirus
    if settings is None:
        which = f" (rules {', '.join(using)} never hold)" if using else ""
        return False, ("antivirus: NOT CONFIGURED (no antivirus: in the config): no message "
                       f"is scanned for viruses{which}")
    which = ", ".join(using) if using else "none: nothing asks for a scan"
    return True, (f"antivirus: clamd at {settings.clamd} (timeout {settings.timeout:g}s, "
                  f"max_size {settings.max_size} bytes, oversize {settings.oversize}); "
                  f"rules: {which}")
