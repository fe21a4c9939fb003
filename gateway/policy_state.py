"""The policy in force: config plus rule set, loaded together and swapped as one.

Reload builds a complete new PolicyState first; only when it loads cleanly does
the caller swap its single reference, so a broken rule file never leaves a
half-loaded policy in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config import GatewayConfig, load_config
from gateway.policy.rules import RuleSet, builtin_lists, load_rules

# Used when neither the config nor any size rule bounds the message.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class PolicyState:
    config: GatewayConfig
    rules: RuleSet

    @property
    def max_message_size(self) -> int:
        """Hard limit for SIZE= and DATA: the config's, else the largest the rules allow."""
        if self.config.limits.max_message_size is not None:
            return self.config.limits.max_message_size
        return self.rules.largest_allowed_size() or DEFAULT_MAX_MESSAGE_SIZE


def load_policy(config_path: Path) -> PolicyState:
    """Load config and rules; raises gateway.problems.LoadError on any problem."""
    config = load_config(config_path)
    return load_policy_for(config)


def load_policy_for(config: GatewayConfig) -> PolicyState:
    rules = load_rules(config.rules_dir, builtin_lists(
        config.agency_domains, config.hebahan_senders,
        tuple(str(n) for n in config.relay_networks)))
    return PolicyState(config=config, rules=rules)
