"""DMARC-style evaluation against a real DNS server (tests/support/dns_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.auth import SpfResult, authenticate
from gateway.auth.dmarc import aligned, evaluate, organizational_domain, parse_record
from gateway.auth.resolver import Resolver
from tests.support.dns_server import DnsServer

ZONE = {
    "_dmarc.anm.gov.my": [("TXT", "v=DMARC1; p=reject; aspf=r; rua=mailto:d@anm.gov.my")],
    "_dmarc.strict.example": [("TXT", "v=DMARC1; p=quarantine; aspf=s")],
    "_dmarc.org.example": [("TXT", "v=DMARC1; p=none; sp=reject")],
    "_dmarc.broken.example": [("TXT", "v=DMARC1; p=bogus")],
    "_dmarc.rua.example": [("TXT", "v=DMARC1; p=bogus; rua=mailto:x@rua.example")],
    "_dmarc.two.example": [("TXT", "v=DMARC1; p=reject"), ("TXT", "v=DMARC1; p=none")],
    "_dmarc.other.example": [("TXT", "some unrelated text")],
    "_dmarc.slow.example": [("TIMEOUT", "")],
    "nodmarc.example": [("A", "192.0.2.1")],
}


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as dns_server:
        yield dns_server


@pytest.fixture
def resolver(server: DnsServer) -> Resolver:
    return Resolver(("127.0.0.1",), server.port, timeout=0.3)


def spf_pass(domain: str) -> SpfResult:
    return SpfResult("pass", domain)


def test_org_domain_of_gov_my() -> None:
    # gov.my is a public suffix: the agency is the organizational domain, not gov.my
    assert organizational_domain("hebahan.anm.gov.my") == "anm.gov.my"
    assert organizational_domain("anm.gov.my") == "anm.gov.my"
    assert organizational_domain("a.b.example.com") == "example.com"
    assert organizational_domain("gov.my") == "gov.my"
    assert not aligned("jpa.gov.my", "anm.gov.my")  # different agencies never align


def test_pass_aligned_relaxed(resolver: Resolver) -> None:
    result = evaluate(resolver, "anm.gov.my", spf_pass("hebahan.anm.gov.my"))
    assert (result.result, result.policy, result.spf_aligned) == ("pass", "reject", True)


def test_p_reject_parsed() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=none; adkim=s; aspf=s; pct=50")
    assert record is not None
    assert (record.policy, record.subdomain_policy, record.aspf, record.adkim) == \
        ("reject", "none", "s", "s")
    assert parse_record("v=DMARC2; p=reject") is None
    assert parse_record("p=reject; v=DMARC1") is None  # v= must come first


def test_fail_strict_misaligned(resolver: Resolver) -> None:
    result = evaluate(resolver, "strict.example", spf_pass("mail.strict.example"))
    assert (result.result, result.policy, result.spf_aligned) == ("fail", "quarantine", False)
    exact = evaluate(resolver, "strict.example", spf_pass("strict.example"))
    assert exact.result == "pass"


def test_fail_when_spf_did_not_pass(resolver: Resolver) -> None:
    result = evaluate(resolver, "anm.gov.my", SpfResult("softfail", "anm.gov.my"))
    assert (result.result, result.spf_aligned) == ("fail", False)


def test_fail_when_spf_domain_is_another_agency(resolver: Resolver) -> None:
    result = evaluate(resolver, "anm.gov.my", spf_pass("jpa.gov.my"))
    assert (result.result, result.spf_aligned) == ("fail", False)


def test_org_domain_fallback_uses_sp(resolver: Resolver, server: DnsServer) -> None:
    result = evaluate(resolver, "news.org.example", spf_pass("org.example"))
    assert (result.result, result.policy) == ("pass", "reject")
    assert ("_dmarc.news.org.example.", "TXT") in server.queries
    assert ("_dmarc.org.example.", "TXT") in server.queries


def test_org_domain_fallback_for_gov_my(resolver: Resolver) -> None:
    result = evaluate(resolver, "hebahan.anm.gov.my", spf_pass("anm.gov.my"))
    assert (result.result, result.policy, result.spf_aligned) == ("pass", "reject", True)


def test_no_record_is_none_and_reports_alignment(resolver: Resolver) -> None:
    result = evaluate(resolver, "nodmarc.example", spf_pass("nodmarc.example"))
    assert (result.result, result.policy, result.spf_aligned) == ("none", None, True)
    unaligned = evaluate(resolver, "nodmarc.example", spf_pass("elsewhere.example"))
    assert (unaligned.result, unaligned.spf_aligned) == ("none", False)
    assert evaluate(resolver, "other.example", spf_pass("other.example")).result == "none"
    assert evaluate(resolver, "two.example", spf_pass("two.example")).result == "none"


def test_invalid_policy(resolver: Resolver) -> None:
    assert evaluate(resolver, "broken.example", spf_pass("broken.example")).result == \
        "permerror"
    with_rua = evaluate(resolver, "rua.example", spf_pass("rua.example"))
    assert (with_rua.result, with_rua.policy) == ("pass", "none")  # RFC 7489 6.6.3


def test_temperror_on_timeout(resolver: Resolver) -> None:
    result = evaluate(resolver, "slow.example", spf_pass("slow.example"))
    assert result.result == "temperror"


def test_spf_temperror_with_a_record_is_temperror(resolver: Resolver) -> None:
    result = evaluate(resolver, "anm.gov.my", SpfResult("temperror", "anm.gov.my"))
    assert result.result == "temperror"


def test_authenticate_end_to_end() -> None:
    zone = {
        "anm.gov.my": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
        "_dmarc.anm.gov.my": [("TXT", "v=DMARC1; p=reject")],
        "mx.anm.gov.my": [("TXT", "v=spf1 a -all"), ("A", "192.0.2.7")],
        "slow.gov.my": [("TIMEOUT", "")],
        "_dmarc.slow.gov.my": [("TIMEOUT", "")],
    }
    with DnsServer(zone) as dns_server:
        resolver = Resolver(("127.0.0.1",), dns_server.port, timeout=0.3)
        ok = authenticate(resolver, client_ip="192.0.2.7", helo="mx.anm.gov.my",
                          mail_from="ketua@anm.gov.my", from_domain="anm.gov.my")
        assert (ok.spf.result, ok.spf.domain, ok.dmarc.result) == \
            ("pass", "anm.gov.my", "pass")
        forged = authenticate(resolver, client_ip="203.0.113.9", helo="evil.example",
                              mail_from="ketua@anm.gov.my", from_domain="anm.gov.my")
        assert (forged.spf.result, forged.dmarc.result) == ("fail", "fail")
        bounce = authenticate(resolver, client_ip="192.0.2.7", helo="mx.anm.gov.my",
                              mail_from="", from_domain="anm.gov.my")
        assert (bounce.spf.result, bounce.spf.domain, bounce.dmarc.result) == \
            ("pass", "mx.anm.gov.my", "pass")
        down = authenticate(resolver, client_ip="192.0.2.7", helo="mx.slow.gov.my",
                            mail_from="a@slow.gov.my", from_domain="slow.gov.my")
        assert (down.spf.result, down.dmarc.result) == ("temperror", "temperror")
