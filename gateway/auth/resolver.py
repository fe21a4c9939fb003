"""The gateway's DNS resolver: dnspython against the configured servers, with a TTL cache.

It answers only what SPF and DMARC ask (TXT, A, AAAA, MX, PTR) and sorts every outcome
into one of three, because SPF treats them differently:

- an answer: a non-empty list;
- no such data (NXDOMAIN or NODATA): an empty list - a "void" look-up for RFC 7208 4.6.4;
- trouble (timeout, SERVFAIL, REFUSED, network error, a malformed reply):
  `DnsTempError`, which becomes a temperror and so a 4xx, never a pass.

Answers are cached for their TTL (capped), no-data results for a short negative TTL;
trouble is never cached, so a recovered server is used at once. The cache is bounded
(least recently used goes first) and guarded by a lock: one Resolver is shared by the
worker threads that inspect messages. dnspython's own Resolver is only read after
construction, so sharing it across threads is safe.

Truncated UDP replies are retried over TCP by dnspython itself (TC bit).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

if TYPE_CHECKING:
    from gateway.config import DnsSettings

T = TypeVar("T")

_NEGATIVE_TTL = 30.0  # seconds a "no such data" answer is kept
_MAX_TTL = 3600.0  # a long published TTL is not kept longer than this
_EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size; bigger answers come over TCP


class DnsTempError(Exception):
    """A look-up that could not be completed: the answer is unknown, not empty."""


class DnsNameError(ValueError):
    """A name that cannot be asked at all (empty label, label over 63, over 255 octets)."""


def to_name(name: str) -> dns.name.Name:
    """`name` as an absolute DNS name; `DnsNameError` when it cannot be one."""
    try:
        text = name if name.endswith(".") else name + "."
        return dns.name.from_text(text)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise DnsNameError(f"not a DNS name: {name!r}") from exc


class Resolver:
    """Synchronous, thread-safe, caching look-ups for sender authentication.

    `timeout` is the seconds one server gets for one query; one look-up gives up
    (DnsTempError) once every server had its turn.
    """

    def __init__(self, nameservers: tuple[str, ...], port: int, timeout: float,
                 cache_size: int = 10000, *, negative_ttl: float = _NEGATIVE_TTL,
                 max_ttl: float = _MAX_TTL) -> None:
        if not nameservers:
            raise ValueError("at least one nameserver is needed")
        self._dns = dns.resolver.Resolver(configure=False)
        self._dns.nameservers = list(nameservers)
        self._dns.port = port
        self._dns.timeout = timeout
        self._dns.lifetime = timeout * len(nameservers)
        self._dns.cache = None  # ours, with negative entries and a bound
        self._dns.use_edns(0, 0, _EDNS_PAYLOAD)
        self._cache_size = max(0, cache_size)
        self._negative_ttl = negative_ttl
        self._max_ttl = max_ttl
        self._cache: OrderedDict[tuple[str, str], tuple[float, tuple[Any, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, dns_settings: DnsSettings) -> Resolver:
        return cls(tuple(dns_settings.nameservers), dns_settings.port, dns_settings.timeout)

    # -- the look-ups SPF and DMARC need ---------------------------------------------

    def txt(self, name: str) -> list[str]:
        """TXT records of `name`, each record's strings joined (RFC 7208 3.3).

        Bytes that are not UTF-8 become U+FFFD, which SPF then refuses as non-ASCII.
        """
        def convert(answer: dns.resolver.Answer) -> tuple[str, ...]:
            return tuple(b"".join(rdata.strings).decode("utf-8", "replace")
                         for rdata in answer)
        return list(self._cached(name, "TXT", convert))

    def a(self, name: str) -> list[str]:
        return list(self._cached(name, "A", _addresses))

    def aaaa(self, name: str) -> list[str]:
        return list(self._cached(name, "AAAA", _addresses))

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs, exchange without the trailing dot, lower case."""
        def convert(answer: dns.resolver.Answer) -> tuple[tuple[int, str], ...]:
            return tuple(sorted((int(rdata.preference), _host(rdata.exchange))
                                for rdata in answer))
        return list(self._cached(name, "MX", convert))

    def ptr(self, ip: str) -> list[str]:
        """Names of the reverse (in-addr.arpa / ip6.arpa) records of `ip`."""
        reverse = dns.reversename.from_address(str(ipaddress.ip_address(ip)))
        def convert(answer: dns.resolver.Answer) -> tuple[str, ...]:
            return tuple(_host(rdata.target) for rdata in answer)
        return list(self._cached(reverse.to_text(), "PTR", convert))

    # -- cache and error sorting -----------------------------------------------------

    def _cached(self, name: str, rdtype: str,
                convert: Callable[[dns.resolver.Answer], tuple[T, ...]]) -> tuple[T, ...]:
        qname = to_name(name)
        key = (qname.to_text().lower(), rdtype)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                if hit[0] > now:
                    self._cache.move_to_end(key)
                    return hit[1]
                del self._cache[key]
        values, ttl = self._query(qname, rdtype, convert)
        self._store(key, values, ttl)
        return values

    def _query(self, qname: dns.name.Name, rdtype: str,
               convert: Callable[[dns.resolver.Answer], tuple[T, ...]]
               ) -> tuple[tuple[T, ...], float]:
        try:
            answer = self._dns.resolve(qname, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return (), self._negative_ttl
        except dns.resolver.YXDOMAIN as exc:
            raise DnsTempError(f"{rdtype} {qname}: YXDOMAIN") from exc
        except dns.resolver.LifetimeTimeout as exc:
            raise DnsTempError(f"{rdtype} {qname}: timeout") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsTempError(f"{rdtype} {qname}: no server answered") from exc
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            raise DnsTempError(f"{rdtype} {qname}: {type(exc).__name__}") from exc
        ttl = min(self._max_ttl, max(0.0, answer.expiration - time.time()))
        return convert(answer), ttl

    def _store(self, key: tuple[str, str], values: tuple[Any, ...], ttl: float) -> None:
        if self._cache_size == 0 or ttl <= 0:
            return
        with self._lock:
            self._cache[key] = (time.monotonic() + ttl, values)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def cache_len(self) -> int:
        with self._lock:
            return len(self._cache)


def _addresses(answer: dns.resolver.Answer) -> tuple[str, ...]:
    return tuple(rdata.address for rdata in answer)


def _host(name: dns.name.Name) -> str:
    """Host name without the final dot; "" for the root (a null MX, RFC 7505)."""
    if name == dns.name.root:
        return ""
    return name.to_text(omit_final_dot=True).lower()
