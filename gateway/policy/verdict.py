"""The one verdict model: what the engine decided about a message, and why.

Every front end, `gateway check`, the log and the replies read this type;
nothing else describes a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    TEMPFAIL = "tempfail"


@dataclass(frozen=True)
class Reply:
    """An SMTP reply before rendering: code, RFC 3463 enhanced code, text lines."""

    code: int
    enhanced: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    """One rule whose conditions held, with the evidence the checks gave."""

    rule_id: str
    action: str
    mode: str
    reference: str
    evidence: Mapping[str, Any]
    reason: str = ""  # the rule's description, for the log of tag and monitor events


@dataclass(frozen=True)
class Exemption:
    """A rule whose `when` held but that did not apply: its own `except:` held
    (`exception_id` None) or the top-level exception `exception_id` did."""

    rule_id: str
    exception_id: str | None = None
    reason: str | None = None  # the exception's `reason:`; None for a rule's own except
    expires: str | None = None  # the exception's last day, YYYY-MM-DD
    reference: str | None = None  # the exempted rule's clause

    def as_dict(self) -> dict[str, Any]:
        """The log's and `check --json`'s form."""
        return {"rule_id": self.rule_id,
                "kind": "except" if self.exception_id is None else "exception",
                "exception_id": self.exception_id, "reason": self.reason,
                "expires": self.expires}


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reply: Reply | None = None  # set for reject and tempfail
    rule_id: str | None = None  # the rule that decided, if any
    reference: str | None = None
    reason: str | None = None
    hits: tuple[Hit, ...] = ()
    subject_tags: tuple[str, ...] = ()
    # (tag, replacement) of `defang` rules: the tag quoted after a reply or forward
    # prefix is replaced in the relayed subject (gateway.transforms.subject_tag).
    subject_defangs: tuple[tuple[str, str], ...] = ()
    added_headers: tuple[tuple[str, str], ...] = ()
    classification: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    # Rules that would have applied but an exception held, in evaluation order.
    exemptions: tuple[Exemption, ...] = ()
    # Sender authentication results (AuthResults.as_dict()) when a rule evaluated them.
    auth: Mapping[str, Any] | None = None

    @property
    def monitored(self) -> tuple[Hit, ...]:
        return tuple(h for h in self.hits if h.mode == "monitor")

    @property
    def event(self) -> str | None:
        """The rejection-log event for this verdict, None when nothing is logged."""
        if self.outcome is Outcome.REJECT:
            return "reject"
        if self.outcome is Outcome.TEMPFAIL:
            return "tempfail"
        if self.subject_tags or self.subject_defangs or self.added_headers:
            return "tag"
        if self.monitored:
            return "monitor"
        if self.exemptions:
            return "exempt"
        return None
