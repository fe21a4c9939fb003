"""The registry of checks, by the name rule files use under `when:`.

Registration is explicit: a check module that is not listed here cannot be
used, and a rule naming an unknown condition fails at load time.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.checks import message_size, sender_domain
from gateway.policy.checks.base import Check

REGISTRY: dict[str, Check[Any]] = {
    c.name: c for c in (
        message_size.CHECK,
        sender_domain.CHECK,
    )
}
