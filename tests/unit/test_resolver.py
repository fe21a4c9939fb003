"""gateway.auth.resolver against real DNS servers on loopback (dnsmasq and our own)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from gateway.auth.resolver import DnsTempError, Resolver
from gateway.config import DnsSettings
from tests.support.dns_server import DnsServer
from tests.support.dnsmasq import Dnsmasq, free_port

SPF = "v=spf1 ip4:192.0.2.0/24 mx -all"


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[Dnsmasq]:
    with Dnsmasq(txt={"anm.gov.my": [SPF, "google-site-verification=abc"],
                      "split.anm.gov.my": [["v=spf1 ip4:192.0.2.1", " -all"]]},
                 a={"mail.anm.gov.my": ["192.0.2.25", "192.0.2.26"]},
                 aaaa={"mail.anm.gov.my": ["2001:db8::25"]},
                 mx={"anm.gov.my": [(10, "mail.anm.gov.my"), (20, "mx2.anm.gov.my")]},
                 local=("gov.my",)) as server:
        yield server


def resolver_for(port: int, timeout: float = 1.0) -> Resolver:
    return Resolver(("127.0.0.1",), port, timeout)


def test_txt_a_aaaa_mx_answers(dnsmasq: Dnsmasq) -> None:
    resolver = resolver_for(dnsmasq.port)
    assert sorted(resolver.txt("anm.gov.my")) == sorted([SPF, "google-site-verification=abc"])
    assert sorted(resolver.a("mail.anm.gov.my")) == ["192.0.2.25", "192.0.2.26"]
    assert resolver.aaaa("mail.anm.gov.my") == ["2001:db8::25"]
    assert resolver.mx("anm.gov.my") == [(10, "mail.anm.gov.my"), (20, "mx2.anm.gov.my")]
    assert resolver.a("MAIL.ANM.GOV.MY.") == resolver.a("mail.anm.gov.my")


def test_multi_string_txt_is_joined(dnsmasq: Dnsmasq) -> None:
    # RFC 7208 3.3: the strings of one record are concatenated without spaces
    assert resolver_for(dnsmasq.port).txt("split.anm.gov.my") == ["v=spf1 ip4:192.0.2.1 -all"]


def test_nxdomain_and_nodata_are_empty(dnsmasq: Dnsmasq) -> None:
    resolver = resolver_for(dnsmasq.port)
    assert resolver.txt("nosuch.gov.my") == []  # NXDOMAIN
    assert resolver.a("nosuch.gov.my") == []
    assert resolver.mx("mail.anm.gov.my") == []  # the name exists, no MX: NODATA


def test_cached_answer_survives_the_server() -> None:
    with Dnsmasq(txt={"cache.gov.my": [SPF]}, local=("gov.my",)) as server:
        resolver = resolver_for(server.port, timeout=0.5)
        assert resolver.txt("cache.gov.my") == [SPF]
        assert resolver.txt("gone.gov.my") == []  # a negative answer is cached too
    with pytest.raises(DnsTempError):  # the server is really gone...
        resolver_for(server.port, timeout=0.5).txt("cache.gov.my")
    assert resolver.txt("cache.gov.my") == [SPF]  # ...and the cache still answers
    assert resolver.txt("gone.gov.my") == []


def test_timeout_when_nothing_listens() -> None:
    resolver = resolver_for(free_port(), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(DnsTempError):
        resolver.txt("anm.gov.my")
    assert time.monotonic() - started < 3.0


def test_unanswered_query_times_out_and_is_not_cached() -> None:
    zone = {"slow.example": [("TIMEOUT", "")], "ok.example": [("A", "192.0.2.1")]}
    with DnsServer(zone) as server:
        resolver = resolver_for(server.port, timeout=0.3)
        for _ in range(2):
            with pytest.raises(DnsTempError):
                resolver.txt("slow.example")
        assert server.queries.count(("slow.example.", "TXT")) >= 2
        assert resolver.a("ok.example") == ["192.0.2.1"]


def test_servfail_is_temporary() -> None:
    with DnsServer({"broken.example": [("SERVFAIL", "")]}) as server, \
            pytest.raises(DnsTempError):
        resolver_for(server.port).a("broken.example")


def test_truncated_udp_answer_is_retried_over_tcp() -> None:
    big = ["v=spf1 " + " ".join(f"ip4:198.51.100.{i}" for i in range(1, 200)) + " -all"]
    with DnsServer({"big.example": [("TXT", big)]}) as server:
        assert resolver_for(server.port).txt("big.example") == ["".join(big)]
        assert server.queries.count(("big.example.", "TXT")) == 2  # UDP (TC), then TCP


def test_cache_is_bounded_and_counts_queries() -> None:
    zone = {f"h{i}.example": [("A", f"192.0.2.{i}")] for i in range(1, 6)}
    with DnsServer(zone) as server:
        resolver = Resolver(("127.0.0.1",), server.port, 1.0, cache_size=2)
        for i in range(1, 6):
            resolver.a(f"h{i}.example")
        assert resolver.cache_len() == 2
        resolver.a("h5.example")  # kept: no new query
        assert server.queries.count(("h5.example.", "A")) == 1
        resolver.a("h1.example")  # evicted: asked again
        assert server.queries.count(("h1.example.", "A")) == 2


def test_ptr_and_concurrent_use() -> None:
    zone = {"1.2.0.192.in-addr.arpa": [("PTR", "mail.example")],
            "mail.example": [("A", "192.0.2.1")]}
    with DnsServer(zone) as server:
        resolver = resolver_for(server.port)
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda: results.append(resolver.ptr("192.0.2.1")))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        assert results == [["mail.example"]] * 8


def test_from_settings() -> None:
    with DnsServer({"x.example": [("A", "192.0.2.9")]}) as server:
        settings = DnsSettings(nameservers=("127.0.0.1",), port=server.port, timeout=0.5)
        assert Resolver.from_settings(settings).a("x.example") == ["192.0.2.9"]

