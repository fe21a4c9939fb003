"""Evidence that a message was forwarded automatically (by a rule, not a person).

Top-level headers only (a forwarded message/rfc822 inside says nothing about
how this message travels). What counts, and who writes it:

- `Auto-Submitted: auto-forwarded` (RFC 5436 registry; Sieve, many servers);
  `auto-replied` / `auto-generated` do not count: they are not forwarding.
- `X-MS-Exchange-Inbox-Rules-Loop` (Exchange / Microsoft 365: an inbox rule
  forwarded or redirected the message).
- `X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent` (Exchange).
- `X-MS-Exchange-Organization-AutoForwarded: true` (Exchange transport).
- `X-Forwarded-To`, `X-Forwarded-For` (Gmail and Postfix-based forwarders).
- `Resent-From`, `Resent-Sender`, `Resent-To` (a redirect rule or a MUA's
  "redirect/bounce": the message goes on unchanged to a new recipient).
"""

from __future__ import annotations

from collections.abc import Callable

# Each entry: header name, and a test on its decoded value (None: presence suffices).
_SIGNS: tuple[tuple[str, Callable[[str], bool] | None], ...] = (
    ("Auto-Submitted", lambda v: v.split(";", 1)[0].strip().lower() == "auto-forwarded"),
    ("X-MS-Exchange-Inbox-Rules-Loop", None),
    ("X-MS-Exchange-Generated-Message-Source",
     lambda v: "mailbox rules agent" in v.lower()),
    ("X-MS-Exchange-Organization-AutoForwarded", lambda v: v.strip().lower() == "true"),
    ("X-Forwarded-To", None),
    ("X-Forwarded-For", None),
    ("Resent-From", None),
    ("Resent-Sender", None),
    ("Resent-To", None),
)

HEADER_NAMES = tuple(name for name, _ in _SIGNS)


def evidence(header_values: Callable[[str], tuple[str, ...]]) -> tuple[str, ...]:
    """Names of the headers that show automatic forwarding, in the order above."""
    found: list[str] = []
    for name, test in _SIGNS:
        values = header_values(name)
        if values and (test is None or any(test(v) for v in values)):
            found.append(name)
    return tuple(found)
