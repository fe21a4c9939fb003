"""The SMTP transaction as the policy sees it, independent of any front end.

The proxy and the milter both fill one of these; checks read it and never
learn which front end produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True)
class Envelope:
    direction: Direction
    listener: str
    client_ip: str
    helo: str
    mail_from: str  # '' for the null sender <>
    rcpt_to: tuple[str, ...]
