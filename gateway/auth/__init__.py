"""Sender authentication: SPF (RFC 7208) and DMARC-style alignment over our own resolver.

The one entry point the policy uses is `authenticate()`; its result is plain data
(`AuthResults`) that checks read and the log and the Authentication-Results header
report. Network I/O happens here and in `resolver`, never inside a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gateway.auth.resolver import Resolver

SpfOutcome = Literal["pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"]
DmarcOutcome = Literal["pass", "fail", "none", "permerror", "temperror"]


@dataclass(frozen=True)
class SpfResult:
    result: SpfOutcome
    domain: str  # the domain whose record was evaluated (MAIL FROM, or HELO for <>)
    reason: str = ""  # our own words (mechanism matched, error), never record text verbatim


@dataclass(frozen=True)
class DmarcResult:
    result: DmarcOutcome
    from_domain: str  # the RFC 5322 From domain
    policy: str | None = None  # p= of the published record (none/quarantine/reject)
    spf_aligned: bool = False  # SPF passed for a domain aligned with From (relaxed/strict)
    reason: str = ""


@dataclass(frozen=True)
class AuthResults:
    spf: SpfResult
    dmarc: DmarcResult

    def as_dict(self) -> dict[str, object]:
        return {"spf": self.spf.result, "spf_domain": self.spf.domain,
                "dmarc": self.dmarc.result, "from_domain": self.dmarc.from_domain,
                "dmarc_policy": self.dmarc.policy, "spf_aligned": self.dmarc.spf_aligned}


def authenticate(resolver: Resolver, *, client_ip: str, helo: str, mail_from: str,
                 from_domain: str) -> AuthResults:
    """SPF for MAIL FROM (the HELO identity for <>), then DMARC for the From domain.

    DMARC passes only through aligned SPF: there is no DKIM here. DNS trouble never
    raises; it comes back as temperror results. Blocking: run it in a worker thread.
    """
    from gateway.auth import dmarc, spf  # here: those modules import this one

    domain, sender = spf.identity(mail_from, helo)
    spf_result = spf.check_host(client_ip, domain, sender, helo, resolver)
    return AuthResults(spf_result, dmarc.evaluate(resolver, from_domain, spf_result))
