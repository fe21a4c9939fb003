"""Mail addresses and domain lists: how an address's domain is found and matched.

A listed domain matches itself and its subdomains (`anm.gov.my` covers
`kl.anm.gov.my`), compared case-insensitively and without a trailing dot, as
Postfix's `parent_domain_matches_subdomains` does.
"""

from __future__ import annotations

from collections.abc import Iterable


def normalise_domain(domain: str) -> str:
    domain = domain.strip().rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return domain


def address_domain(address: str) -> str:
    """Domain part of `local@domain` ('' for the null sender or a bare local part)."""
    address = address.strip().strip("<>")
    if "@" not in address:
        return ""
    return normalise_domain(address.rpartition("@")[2])


def normalise_address(address: str) -> str:
    address = address.strip().strip("<>")
    local, at, domain = address.rpartition("@")
    if not at:
        return address.lower()
    return f"{local.lower()}@{normalise_domain(domain)}"


def domain_in(domain: str, domains: Iterable[str]) -> bool:
    domain = normalise_domain(domain)
    if not domain:
        return False
    for listed in domains:
        listed = normalise_domain(listed)
        if domain == listed or domain.endswith("." + listed):
            return True
    return False
