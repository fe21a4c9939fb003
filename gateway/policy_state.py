"""The policy in force: config plus rule set, loaded together and swapped as one.

Reload builds a complete new PolicyState first; only when it loads cleanly does
the caller swap its single reference, so a broken rule file never leaves a
half-loaded policy in force.

The DNS resolver (and with it its cache) belongs to the state too: built from
the config's `dns:` at load, shared by every message, replaced on reload so a
changed nameserver takes effect and no stale answer outlives the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gateway import preflight
from gateway.auth.resolver import Resolver
from gateway.config import GatewayConfig, load_config_located
from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.problems import LoadError, Problem
from gateway.transforms import dkim_sign

# Used when neither the config nor any size rule bounds the message.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class PolicyState:
    config: GatewayConfig
    rules: RuleSet
    # None only for a state built by hand without DNS: sender_auth then sees temperror.
    resolver: Resolver | None = None

    # The DKIM signer of `dkim_sign:` (None without): its key read on first use, which
    # load_policy makes at load, after preflight checked the key, so the inspection
    # processes forked later inherit it. Raises dkim_sign.KeyProblem.
    @cached_property
    def signer(self) -> dkim_sign.Signer | None:
        settings = self.config.dkim_sign
        return None if settings is None else dkim_sign.Signer.load(settings)

    # Cached: read at every EHLO and MAIL, and the rules never change within a state.
    @cached_property
    def max_message_size(self) -> int:
        """Hard limit for SIZE= and DATA: the config's, else the largest the rules allow."""
        if self.config.limits.max_message_size is not None:
            return self.config.limits.max_message_size
        return self.rules.largest_allowed_size() or DEFAULT_MAX_MESSAGE_SIZE


def load_policy(config_path: Path) -> PolicyState:
    """Load config and rules; raises gateway.problems.LoadError on any problem.

    Besides the config and every rule file, the paths the config names are checked
    (gateway.preflight): a gateway that could not log, spool or deliver, or that has
    no rule file to enforce, is refused here, before anything binds or is swapped in.
    """
    config, doc = load_config_located(config_path)
    problems = preflight.problems(config, doc)
    if preflight.rules_dir_problem(config.rules_dir) is None:
        try:
            policy = load_policy_for(config)
        except LoadError as exc:
            problems.extend(exc.problems)
        else:
            if not problems:
                try:
                    _ = policy.signer  # the key in memory now, checked by preflight
                except dkim_sign.KeyProblem as exc:
                    problems.append(Problem(str(config_path), 1, f"dkim_sign.key_file: {exc}"))
                else:
                    return policy
    raise LoadError(problems)


def load_policy_for(config: GatewayConfig) -> PolicyState:
    rules = load_rules(config.rules_dir, builtin_lists(
        config.agency_domains, config.hebahan_senders,
        tuple(str(n) for n in config.relay_networks),
        tuple(str(n) for n in config.hebahan_relays), config.hebahan_defang),
        timezone=config.timezone)
    return PolicyState(config=config, rules=rules, resolver=Resolver.from_settings(config.dns))
