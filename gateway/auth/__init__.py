"""Sender authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489) and a
reported-only ARC chain (RFC 8617), over our own resolver.

The one entry point the policy uses is `authenticate()`; its result is plain data
(`AuthResults`) that checks read and the log and the Authentication-Results header
report. Network I/O happens here, in `resolver` and (through it) in `dkim`, never
inside a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gateway.auth.resolver import Resolver

SpfOutcome = Literal["pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"]
DmarcOutcome = Literal["pass", "fail", "none", "permerror", "temperror"]
# RFC 8601 2.7.1's DKIM result words; `policy`: a signature that verifies but that the
# gateway does not accept (its l= leaves part of the body unsigned, gateway.auth.dkim).
DkimOutcome = Literal["pass", "fail", "neutral", "policy", "none", "permerror", "temperror"]
# RFC 8617 4.4 chain validation status, plus temperror for DNS trouble on the way.
ArcOutcome = Literal["pass", "fail", "none", "temperror"]


@dataclass(frozen=True)
class SpfResult:
    result: SpfOutcome
    domain: str  # the domain whose record was evaluated (MAIL FROM, or HELO for <>)
    reason: str = ""  # our own words (mechanism matched, error), never record text verbatim


@dataclass(frozen=True)
class DkimResult:
    """One DKIM-Signature field's verification (RFC 6376 6, results named as RFC 8601)."""

    result: DkimOutcome
    domain: str  # d= (the signing domain), "" when the field could not be read that far
    selector: str  # s=
    b: str = ""  # the start of b= (RFC 6008 header.b: tells signatures of one d= apart)
    algorithm: str = ""  # a= (rsa-sha256, ed25519-sha256)
    reason: str = ""  # our own words (or dkimpy's), never message text verbatim

    def as_dict(self) -> dict[str, str]:
        return {"result": self.result, "domain": self.domain, "selector": self.selector}


@dataclass(frozen=True)
class DmarcResult:
    result: DmarcOutcome
    from_domain: str  # the RFC 5322 From domain
    # The policy that applies to this From domain (RFC 7489 6.6.3): the record's p=, or
    # its sp= when the record was found at the organizational domain of a subdomain.
    policy: str | None = None
    spf_aligned: bool = False  # SPF passed for a domain aligned with From (relaxed/strict)
    reason: str = ""
    dkim_aligned: bool = False  # a DKIM signature passed with d= aligned with From
    record_domain: str = ""  # where the record was found (From or organizational domain)
    subdomain_policy: str | None = None  # sp= as published
    pct: int | None = None  # pct= as published (reported; the rules decide, not pct)
    aspf: str = "r"  # alignment modes used (record's, relaxed without a record)
    adkim: str = "r"


@dataclass(frozen=True)
class AuthResults:
    spf: SpfResult
    dmarc: DmarcResult
    dkim: tuple[DkimResult, ...] = ()  # one per DKIM-Signature field, in header order
    arc: ArcOutcome = "none"  # reported only: never counts for DMARC (RFC 8617 is advisory)

    @property
    def dkim_results(self) -> frozenset[str]:
        """The DKIM results present: "none" alone when the message carries no signature."""
        return frozenset(d.result for d in self.dkim) if self.dkim else frozenset({"none"})

    def as_dict(self) -> dict[str, object]:
        return {"spf": self.spf.result, "spf_domain": self.spf.domain,
                "dmarc": self.dmarc.result, "from_domain": self.dmarc.from_domain,
                "dmarc_policy": self.dmarc.policy, "spf_aligned": self.dmarc.spf_aligned,
                "dkim": [d.as_dict() for d in self.dkim],
                "dkim_aligned": self.dmarc.dkim_aligned,
                "dmarc_subdomain_policy": self.dmarc.subdomain_policy,
                "dmarc_pct": self.dmarc.pct, "arc": self.arc}


def authenticate(resolver: Resolver, *, client_ip: str, helo: str, mail_from: str,
                 from_domain: str, message: bytes = b"") -> AuthResults:
    """SPF for MAIL FROM (the HELO identity for <>), DKIM for every DKIM-Signature of
    `message` (the bytes as received), the ARC chain (reported only), then DMARC for
    the From domain: pass when SPF or DKIM passes aligned (RFC 7489 3.1, 4.2).

    `message` b"" is a message without signatures (dkim none). DNS trouble never
    raises; it comes back as temperror results. Blocking: run it in a worker thread.
    """
    from gateway.auth import dkim, dmarc, spf  # here: those modules import this one

    domain, sender = spf.identity(mail_from, helo)
    spf_result = spf.check_host(client_ip, domain, sender, helo, resolver)
    dkim_results = dkim.verify(message, resolver) if message else ()
    arc = dkim.verify_arc(message, resolver) if message else "none"
    return AuthResults(spf_result,
                       dmarc.evaluate(resolver, from_domain, spf_result, dkim_results),
                       dkim_results, arc)
