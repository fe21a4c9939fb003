"""DMARC (RFC 7489) for the RFC 5322 From domain: SPF and DKIM identifier alignment.

DMARC passes when SPF passed for a domain aligned with the From domain, OR a DKIM
signature passed whose d= is aligned with it (RFC 7489 3.1, 4.2): so an announcement
that a forwarder relayed (SPF fails at our hop) still passes on its author's DKIM
signature. Alignment (3.1.1, 3.1.2): relaxed (the default, `aspf=r`/`adkim=r`) is the
same organizational domain, strict (`s`) the same name. A DKIM result other than
`pass` (fail, policy for a partial `l=`, permerror, temperror) never aligns. ARC is
not consulted (gateway.auth.dkim.verify_arc reports it only).

Policy discovery (RFC 7489 6.6.3): TXT at `_dmarc.<From domain>`; when there is no record
there, at `_dmarc.<organizational domain>` (the public-suffix list + one label, from the
`publicsuffixlist` package, which bundles the list: nothing is downloaded at run time).
Only records starting "v=DMARC1" count; several of them count as none. The policy
reported (`DmarcResult.policy`) is `p=`, or `sp=` when the record came from the
organizational domain of a subdomain From (6.3, 6.6.3 step 5); `sp=` and `pct=` are
reported as published. The gateway reports the policy; the rules decide what to do.

Results:
- pass: a record exists and SPF or DKIM passed aligned (per the record's aspf/adkim);
- fail: a record exists and neither passed aligned;
- none: no record. `spf_aligned` and `dkim_aligned` are still reported truthfully
  (relaxed), so a policy can require alignment of domains that publish no record;
- permerror: a record exists but its p= (or sp=) is missing or invalid and it has no rua=
  (RFC 7489 6.6.3 says: apply no DMARC processing; we report that, not silence). With a
  rua= such a record is treated as p=none, as the RFC asks;
- temperror: the DMARC look-up failed; or, with a record and no aligned pass, SPF was
  temperror or a DKIM signature of an aligned domain was temperror (its key could not
  be fetched): the answer is unknown, never a fail nor a pass.
Unknown tags are ignored; invalid adkim/aspf fall back to the default "r" (RFC 7489 6.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from gateway.auth import DkimResult, DmarcOutcome, DmarcResult, SpfResult
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
    pct: int | None = None

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
    pct_text = tags.get("pct", "").strip()
    pct = int(pct_text) if pct_text.isdigit() and int(pct_text) <= 100 else None
    return DmarcRecord(
        policy=policy if policy in _POLICIES and not sub_invalid else None,
        subdomain_policy=sub if sub in _POLICIES else None,
        aspf=aspf if aspf in ("r", "s") else "r",
        adkim=adkim if adkim in ("r", "s") else "r",
        has_rua=bool(tags.get("rua", "").strip()),
        pct=pct,
    )


def _lookup(resolver: Resolver, domain: str) -> DmarcRecord | None:
    """The one DMARC record at _dmarc.`domain`; None for none or several. Raises DnsTempError."""
    try:
        texts = resolver.txt(f"_dmarc.{domain}")
    except DnsNameError:
        return None
    records = [r for r in (parse_record(t) for t in texts) if r is not None]
    return records[0] if len(records) == 1 else None


def _dkim_aligned(dkim: tuple[DkimResult, ...], domain: str, mode: str,
                  result: str = "pass") -> bool:
    return any(d.result == result and aligned(d.domain, domain, mode) for d in dkim)


def evaluate(resolver: Resolver, from_domain: str, spf: SpfResult,
             dkim: tuple[DkimResult, ...] = ()) -> DmarcResult:
    """DMARC result for `from_domain` given the SPF result of the envelope identity and
    the DKIM results of the message's signatures (RFC 7489 4.2, 6.6.2). Never raises:
    DNS trouble is temperror."""
    domain = from_domain.rstrip(".").lower()
    if not domain:
        return DmarcResult("none", from_domain, reason="no From domain")
    spf_ok = spf.result == "pass"
    relaxed_spf = spf_ok and aligned(spf.domain, domain)
    relaxed_dkim = _dkim_aligned(dkim, domain, "r")
    try:
        record = _lookup(resolver, domain)
        record_domain = domain
        org = organizational_domain(domain)
        for_subdomain = False
        if record is None and org != domain:
            record = _lookup(resolver, org)
            record_domain = org
            for_subdomain = True
    except DnsTempError:
        return DmarcResult("temperror", domain, reason="DMARC record look-up failed",
                           spf_aligned=relaxed_spf, dkim_aligned=relaxed_dkim)
    if record is None:
        return DmarcResult("none", domain, reason="no DMARC record",
                           spf_aligned=relaxed_spf, dkim_aligned=relaxed_dkim)
    spf_aligned = spf_ok and aligned(spf.domain, domain, record.aspf)
    dkim_aligned = _dkim_aligned(dkim, domain, record.adkim)
    policy = record.effective_policy(for_subdomain=for_subdomain)

    def made(result: DmarcOutcome, reason: str, *, spf_aligned: bool = False,
             dkim_aligned: bool = False) -> DmarcResult:
        return DmarcResult(result, domain, policy, spf_aligned, reason, dkim_aligned,
                           record_domain, record.subdomain_policy, record.pct, record.aspf,
                           record.adkim)

    if policy is None:
        return made("permerror", "DMARC record without a valid policy",
                    spf_aligned=spf_aligned, dkim_aligned=dkim_aligned)
    if spf_aligned or dkim_aligned:
        how = " and ".join(name for name, ok in (("SPF", spf_aligned), ("DKIM", dkim_aligned))
                           if ok)
        return made("pass", f"{how} passed aligned", spf_aligned=spf_aligned,
                    dkim_aligned=dkim_aligned)
    if spf.result == "temperror":
        return made("temperror", "SPF look-up failed")
    if _dkim_aligned(dkim, domain, record.adkim, "temperror"):
        return made("temperror", "DKIM key look-up failed")
    reason = ("SPF passed for a domain not aligned with From" if spf_ok
              else f"SPF did not pass ({spf.result})")
    if any(d.result == "pass" for d in dkim):
        reason += "; DKIM passed only for domains not aligned with From"
    elif dkim:
        reason += "; no DKIM signature passed"
    else:
        reason += "; no DKIM signature"
    return made("fail", reason)
