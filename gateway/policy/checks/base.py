"""What a check is: a named, typed, pure decision over a message and its envelope.

A check never changes the message or any shared state. It returns evidence
(a small JSON-able mapping saying what it saw) when its condition holds, or
None. Its parameter type is validated when rules load, so a typo in a rule file
is an error at start-up, never at mail time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import TypeAdapter

from gateway.envelope import Envelope
from gateway.message.view import MessageView

if TYPE_CHECKING:
    from gateway.antivirus.facts import ScanFacts
    from gateway.auth.facts import AuthFacts

P = TypeVar("P")
Evidence = Mapping[str, Any]
# What a check reads, from least to most: the envelope only (it can run before DATA);
# the message's top-level header block (it can run when the header block has arrived,
# before the body: the proxy's cut-through decides its header changes with these);
# the whole message (body, attachments, size, structure).
Needs = Literal["envelope", "header", "message"]


@dataclass(frozen=True)
class Context:
    """Everything a check may read: the message, its envelope, the site's settings.

    `auth` is the message's sender authentication, evaluated lazily: only a check
    that reads `auth.results` (sender_auth) causes DNS look-ups, once per message.
    None where no resolver is at hand; sender_auth then sees temperror.

    `antivirus` is the message's clamd scan, made lazily the same way (the `virus`,
    `antivirus_failed`, `antivirus_skipped` checks). None when the config has no
    `antivirus:`: nothing is scanned and those conditions never hold.
    """

    view: MessageView
    envelope: Envelope
    agency_domains: tuple[str, ...]
    auth: AuthFacts | None = None
    antivirus: ScanFacts | None = None


@dataclass(frozen=True)
class Check(Generic[P]):
    name: str
    params: TypeAdapter[P]
    evaluate: Callable[[P, Context], Evidence | None]
    # Rule values for this check that name lists ("@x") may stand for a list of strings.
    takes_list: bool = False
    # What the check reads (`Needs`). A check declared "envelope" or "header" must read
    # nothing else: gateway.policy.rules.plan_changes relies on it to decide a message's
    # header changes before its body has arrived (cut-through), and a wrong declaration
    # would show as the end-of-data mismatch the proxy tempfails (never a relayed change).
    needs: Needs = "message"

    def validate(self, value: Any) -> P:
        return self.params.validate_python(value)


def check(name: str, params: Any, *, takes_list: bool = False, needs: Needs = "message"
          ) -> Callable[[Callable[[P, Context], Evidence | None]], Check[P]]:
    """Declare a check. Registration is explicit in `gateway.policy.checks.REGISTRY`."""

    def wrap(fn: Callable[[P, Context], Evidence | None]) -> Check[P]:
        return Check(name=name, params=TypeAdapter(params), evaluate=fn,
                     takes_list=takes_list, needs=needs)

    return wrap
