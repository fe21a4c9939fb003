"""SPF check_host() on records like the agencies publish, served by dnsmasq on loopback.

The RFC 7208 suite (test_spf_rfc7208.py) covers the corners; these are the common
shapes, the limits, and the macro expansion, with exact values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from gateway.auth.resolver import Resolver
from gateway.auth.spf import PermError, _State, check_host, expand, parse_record
from tests.support.dns_server import DnsServer
from tests.support.dnsmasq import Dnsmasq

LIMIT_CHAIN = {f"l{i}.gov.my": [f"v=spf1 include:l{i + 1}.gov.my -all"] for i in range(12)}


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[Dnsmasq]:
    txt: dict[str, list[str]] = {
        "anm.gov.my": ["v=spf1 mx a:relay.anm.gov.my include:_spf.provider.my ~all"],
        "_spf.provider.my": ["v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:100::/48 -all"],
        "redir.gov.my": ["v=spf1 redirect=anm.gov.my"],
        "voids.gov.my": ["v=spf1 a:n1.gov.my a:n2.gov.my a:n3.gov.my +all"],
        "twovoids.gov.my": ["v=spf1 a:n1.gov.my a:n2.gov.my +all"],
        "brokeninclude.gov.my": ["v=spf1 include:nospf.gov.my -all"],
        "two.gov.my": ["v=spf1 -all", "v=spf1 +all"],
        "cidr.gov.my": ["v=spf1 a:host.anm.gov.my/24//64 -all"],
        "exists.gov.my": ["v=spf1 exists:%{i}.allow.gov.my -all"],
        **LIMIT_CHAIN,
    }
    with Dnsmasq(txt=txt,
                 a={"mail.anm.gov.my": ["192.0.2.25"], "relay.anm.gov.my": ["192.0.2.80"],
                    "host.anm.gov.my": ["203.0.113.10"], "192.0.2.99.allow.gov.my":
                    ["127.0.0.2"]},
                 aaaa={"host.anm.gov.my": ["2001:db8:5::1"]},
                 mx={"anm.gov.my": [(10, "mail.anm.gov.my")]},
                 local=("gov.my", "provider.my")) as server:
        yield server


def spf(server: Dnsmasq, ip: str, domain: str) -> str:
    resolver = Resolver(("127.0.0.1",), server.port, timeout=1.0)
    return check_host(ip, domain, f"someone@{domain}", "mx.example", resolver).result


@pytest.mark.parametrize(("ip", "domain", "expected"), [
    ("192.0.2.25", "anm.gov.my", "pass"),  # mx
    ("192.0.2.80", "anm.gov.my", "pass"),  # a:relay
    ("198.51.100.7", "anm.gov.my", "pass"),  # include -> ip4
    ("2001:db8:100::9", "anm.gov.my", "pass"),  # include -> ip6
    ("::ffff:192.0.2.25", "anm.gov.my", "pass"),  # IPv4-mapped is IPv4
    ("203.0.113.1", "anm.gov.my", "softfail"),  # ~all
    ("203.0.113.1", "redir.gov.my", "softfail"),  # redirect keeps the target's result
    ("192.0.2.80", "redir.gov.my", "pass"),
    ("203.0.113.1", "nothing.gov.my", "none"),  # NXDOMAIN: no record
    ("203.0.113.1", "two.gov.my", "permerror"),  # two records
    ("203.0.113.1", "brokeninclude.gov.my", "permerror"),  # include of no record
    ("203.0.113.1", "twovoids.gov.my", "pass"),  # two void look-ups are allowed
    ("203.0.113.1", "voids.gov.my", "permerror"),  # a third is not
    ("203.0.113.1", "l0.gov.my", "permerror"),  # more than 10 includes
    ("203.0.113.200", "cidr.gov.my", "pass"),  # /24 around host's A
    ("2001:db8:5::ffff", "cidr.gov.my", "pass"),  # //64 around host's AAAA
    ("203.0.114.1", "cidr.gov.my", "fail"),
    ("192.0.2.99", "exists.gov.my", "pass"),  # macro %{i} in exists
    ("192.0.2.98", "exists.gov.my", "fail"),
])
def test_check_host(dnsmasq: Dnsmasq, ip: str, domain: str, expected: str) -> None:
    assert spf(dnsmasq, ip, domain) == expected


def test_dns_outage_is_temperror() -> None:
    with DnsServer({"anm.gov.my": [("TIMEOUT", "")]}) as server:
        resolver = Resolver(("127.0.0.1",), server.port, timeout=0.2)
        result = check_host("192.0.2.1", "anm.gov.my", "a@anm.gov.my", "h", resolver)
        assert result.result == "temperror"


def test_deadline_is_enforced() -> None:
    with DnsServer({"quick.example": [("TXT", "v=spf1 +all")]}) as server:
        resolver = Resolver(("127.0.0.1",), server.port, timeout=0.5)
        assert check_host("192.0.2.1", "quick.example", "a@quick.example", "h",
                          resolver).result == "pass"
        late = check_host("192.0.2.1", "quick.example", "a@quick.example", "h",
                          Resolver(("127.0.0.1",), server.port, timeout=0.5), deadline=-1.0)
        assert late.result == "temperror"


def test_macro_expansion_values() -> None:
    state = _State(resolver=Resolver(("127.0.0.1",), 9, 0.1),
                   ip=ipaddress.ip_address("192.0.2.3"),
                   sender="strong-bad@email.example.com", helo="mx.example.org",
                   deadline=float("inf"))
    domain = "email.example.com"
    # RFC 7208 7.4 examples
    assert expand("%{s}", state, domain) == "strong-bad@email.example.com"
    assert expand("%{o}", state, domain) == "email.example.com"
    assert expand("%{d4}", state, domain) == "email.example.com"
    assert expand("%{d2}", state, domain) == "example.com"
    assert expand("%{d1}", state, domain) == "com"
    assert expand("%{dr}", state, domain) == "com.example.email"
    assert expand("%{d2r}", state, domain) == "example.email"
    assert expand("%{l}", state, domain) == "strong-bad"
    assert expand("%{l-}", state, domain) == "strong.bad"
    assert expand("%{lr}", state, domain) == "strong-bad"
    assert expand("%{lr-}", state, domain) == "bad.strong"
    assert expand("%{l1r-}", state, domain) == "strong"
    assert expand("%{ir}.%{v}._spf.%{d2}", state, domain) == \
        "3.2.0.192.in-addr._spf.example.com"
    assert expand("%{h}", state, domain) == "mx.example.org"
    assert expand("%%%_%-", state, domain) == "% %20"
    assert expand("%{L}", state, "x") == "strong-bad"
    state.sender = "a b@x"
    assert expand("%{S}", state, "x") == "a%20b%40x"


@pytest.mark.parametrize("record", [
    "v=spf1 ip4:192.0.2.300", "v=spf1 ip4:192.0.2.0/33", "v=spf1 ip6:2001:db8::/129",
    "v=spf1 a:example.123", "v=spf1 include", "v=spf1 all:x", "v=spf1 foo:bar",
    "v=spf1 redirect=a.example redirect=b.example", "v=spf1 a:%{x}.example",
    "v=spf1 exists:%{c}.example", "v=spf1 a:%{d0}.example", "v=spf1 a:50%.example",
    "v=spf1 a//0129", "v=spf1 mx/024",
])
def test_syntax_errors(record: str) -> None:
    with pytest.raises(PermError):
        parse_record(record)


def test_valid_syntax() -> None:
    record = parse_record("v=spf1 a/24//64 mx:%{d}.example ptr -exists:%{ir}.x.example "
                          "?ip6:::1 exp=explain.%{d} unknown=whatever redirect=%{d2}")
    assert [m.name for m in record.mechanisms] == ["a", "mx", "ptr", "exists", "ip6"]
    assert record.redirect == "%{d2}"
