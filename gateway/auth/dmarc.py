"""DMARC-style evaluation (RFC 7489) of the From domain with SPF as the only identifier.

The gateway does not verify DKIM, so DMARC can pass here only through an SPF pass for a
domain aligned with the RFC 5322 From domain; a message that a full DMARC verifier would
pass on DKIM alone gets "fail" from us. That is deliberate: the result feeds the
[HEBAHAN JANM] decision, where SPF alignment is what the policy requires.

Policy discovery (RFC 7489 6.6.3): TXT at `_dmarc.<From domain>`; when there is no record
there, at `_dmarc.<organizational domain>` (the public-suffix list + one label, from the
`publicsuffixlist` package, which bundles the list: nothing is downloaded at run time).
Only records starting "v=DMARC1" count; several of them count as none.

Results:
- pass: a record exists, SPF passed and its domain is aligned (aspf relaxed: same
  organizational domain; strict: the same name);
- fail: a record exists and SPF did not pass or is not aligned;
- none: no record. `spf_aligned` is still reported truthfully, so a policy (the hebahan
  rule) can require alignment of domains that publish no DMARC record;
- permerror: a record exists but its p= (or sp=) is missing or invalid and it has no rua=
  (RFC 7489 6.6.3 says: apply no DMARC processing; we report that, not silence). With a
  rua= such a record is treated as p=none, as the RFC asks;
- temperror: the DMARC look-up failed, or SPF was temperror where a record exists.
Unknown tags are ignored; invalid adkim/aspf fall back to the default "r" (RFC 7489 6.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from gateway.auth import DmarcResult, SpfResult
from gateway.auth.resolver import DnsNameError, DnsTempError, Resolver

_POLICIES = ("none", "quarantine", "reject")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """Public suffix plus one label (RFC 7489 3.2); a bare public suffix is its own."""
    name = domain.rstrip(".").lower()
    private: str | None = _psl().privatesuffix(name)
    return private if private is not None else name


def aligned(auth_domain: str, from_domain: str, mode: str = "r") -> bool:
    """Identifier alignment (RFC 7489 3.1): strict "s" exact, relaxed "r" same org domain."""
    left, right = auth_domain.rstrip(".").lower(), from_domain.rstrip(".").lower()
    if not left or not right:
        return False
    if mode == "s":
        return left == right
    return organizational_domain(left) == organizational_domain(right)


@dataclass(frozen=True)
class DmarcRecord:
    policy: str | None  # None: p= missing or invalid
    subdomain_policy: str | None
    aspf: str = "r"
    adkim: str = "r"
    has_rua: bool = False

    def effective_policy(self, *, for_subdomain: bool) -> str | None:
        wanted = self.subdomain_policy if for_subdomain and self.subdomain_policy else None
        policy = wanted or self.policy
        if policy is None and self.has_rua:
            return "none"  # RFC 7489 6.6.3: act as if p=none was published
        return policy


def parse_record(text: str) -> DmarcRecord | None:
    """A DMARC record, or None when `text` is not one (does not start "v=DMARC1")."""
    tags: dict[str, str] = {}
    for index, part in enumerate(text.split(";")):
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if index == 0:
            if name != "v" or not eq or value != "DMARC1":
                return None
            continue
        if name and eq and name not in tags:
            tags[name] = value
    policy = tags.get("p", "").lower()
    sub = tags.get("sp", "").lower()
    aspf = tags.get("aspf", "r").lower()
    adkim = tags.get("adkim", "r").lower()
    sub_invalid = "sp" in tags and sub not in _POLICIES
    return DmarcRecord(
        policy=policy if policy in _POLICIES and not sub_invalid else None,
        subdomain_policy=sub if sub in _POLICIES else None,
        aspf=aspf if aspf in ("r", "s") else "r",
        adkim=adkim if adkim in ("r", "s") else "r",
        has_rua=bool(tags.get("rua", "").strip()),
    )


def _lookup(resolver: Resolver, domain: str) -> DmarcRecord | None:
    """The one DMARC record at _dmarc.`domain`; None for none or several. Raises DnsTempError."""
    try:
        texts = resolver.txt(f"_dmarc.{domain}")
    except DnsNameError:
        return None
    records = [r for r in (parse_record(t) for t in texts) if r is not None]
    return records[0] if len(records) == 1 else None


def evaluate(resolver: Resolver, from_domain: str, spf: SpfResult) -> DmarcResult:
    """DMARC result for `from_domain` given the SPF result of the envelope identity."""
    domain = from_domain.rstrip(".").lower()
    if not domain:
        return DmarcResult("none", from_domain, reason="no From domain")
    spf_ok = spf.result == "pass"
    try:
        record = _lookup(resolver, domain)
        org = organizational_domain(domain)
        for_subdomain = False
        if record is None and org != domain:
            record = _lookup(resolver, org)
            for_subdomain = True
    except DnsTempError:
        return DmarcResult("temperror", domain, reason="DMARC record look-up failed",
                           spf_aligned=spf_ok and aligned(spf.domain, domain))
    if record is None:
        return DmarcResult("none", domain, reason="no DMARC record",
                           spf_aligned=spf_ok and aligned(spf.domain, domain))
    is_aligned = spf_ok and aligned(spf.domain, domain, record.aspf)
    policy = record.effective_policy(for_subdomain=for_subdomain)
    if policy is None:
        return DmarcResult("permerror", domain, reason="DMARC record without a valid policy",
                           spf_aligned=is_aligned)
    if spf.result == "temperror":
        return DmarcResult("temperror", domain, policy, reason="SPF look-up failed")
    if is_aligned:
        return DmarcResult("pass", domain, policy, True, reason="SPF passed and is aligned")
    reason = ("SPF passed for a domain not aligned with From" if spf_ok
              else f"SPF did not pass ({spf.result})")
    return DmarcResult("fail", domain, policy, False, reason=reason)
