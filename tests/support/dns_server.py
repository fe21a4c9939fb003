"""A small authoritative DNS server on 127.0.0.1 (UDP and TCP, one ephemeral port).

It serves zone data a test gives it, so resolver, SPF and DMARC tests talk real DNS
over real sockets. dnsmasq (tests/support/dnsmasq.py) cannot do what some tests need:
answer nothing for chosen names (a timeout), SERVFAIL, CNAME loops, truncation with
TCP fallback, and records in an order the RFC 7208 test suite depends on.

Zone data: ``{name: [(rtype, value), ...]}``. Values: A/AAAA an address, MX
``(pref, host)``, PTR/CNAME a host name, TXT/SPF a string or a list of strings
(the character-strings of ONE record; longer than 255 bytes is split). Two
pseudo-types shape failures, following the RFC 7208 suite's convention:
``("TIMEOUT", "")`` - a query for a type with no record listed before it gets no
reply at all; ``("SERVFAIL", "")`` - the same but answered SERVFAIL.
A name present with no records of the asked type is NODATA; an absent name NXDOMAIN.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

Record = tuple[str, object]
Zone = Mapping[str, Sequence[Record]]

_MAX_CNAME_CHAIN = 8


class _NoReply(Exception):
    """The query is to go unanswered (the test wants the client to time out)."""


def _norm(name: str) -> str:
    """One spelling per name: dnspython's escaped text form, lower case."""
    return dns.name.from_text(name.rstrip(".") + ".").to_text().lower()


def _txt_strings(value: object) -> list[bytes]:
    parts = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    out: list[bytes] = []
    for part in parts:
        raw = str(part).encode("utf-8")
        if not raw:
            out.append(b"")
        while raw:
            out.append(raw[:255])
            raw = raw[255:]
    return out or [b""]


def _rdata(rtype: str, value: object) -> dns.rdata.Rdata:
    rdtype = dns.rdatatype.from_text(rtype)
    if rtype in ("TXT", "SPF"):
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, _txt_strings(value))
    if rtype == "MX":
        assert isinstance(value, (tuple, list)) and len(value) == 2
        text = f"{int(value[0])} {str(value[1]).rstrip('.')}."
    elif rtype in ("PTR", "CNAME"):
        text = str(value).rstrip(".") + "."
    else:
        text = str(value)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)


class DnsServer:
    """Context manager: ``with DnsServer(zone) as srv: srv.port``.

    ``queries`` records every (name, type) asked, so tests can prove a cache hit.
    """

    def __init__(self, zone: Zone, *, ttl: int = 300) -> None:
        self.zone = {_norm(k): list(v) for k, v in zone.items()}
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._udp, self._tcp = self._bind()
        self.port: int = self._udp.getsockname()[1]

    @staticmethod
    def _bind() -> tuple[socket.socket, socket.socket]:
        # The same port number for UDP and TCP: take a free UDP port, then try TCP on
        # it; a clash with another process is rare, so a few tries are enough.
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind(("127.0.0.1", 0))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            return udp, tcp
        raise RuntimeError("no free port for the test DNS server")

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> DnsServer:
        for target in (self._serve_udp, self._serve_tcp):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._udp.close()
        self._tcp.close()

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- answering -------------------------------------------------------------------

    def _lookup(self, name: str, rtype: str) -> list[Record] | None:
        """Records of `rtype` at `name`; None for NXDOMAIN; raises for TIMEOUT/SERVFAIL."""
        entries = self.zone.get(_norm(name))
        if entries is None:
            return None
        found: list[Record] = []
        for entry_type, value in entries:
            if entry_type in ("TIMEOUT", "SERVFAIL"):
                if not found:
                    raise _NoReply(entry_type)
                break
            if entry_type == rtype:
                found.append((entry_type, value))
        return found

    def answer(self, wire: bytes) -> dns.message.Message:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        qname = question.name
        rtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((_norm(qname.to_text()), rtype))
        name = qname
        seen: set[str] = set()
        for _ in range(_MAX_CNAME_CHAIN):
            key = _norm(name.to_text())
            try:
                records = self._lookup(key, rtype)
                cnames = [] if records or rtype == "CNAME" else self._lookup(key, "CNAME")
            except _NoReply as why:
                if str(why) == "SERVFAIL":
                    response.set_rcode(dns.rcode.SERVFAIL)
                    return response
                raise
            if records is None:
                if name == qname:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            if cnames and not records:
                if key in seen:  # a loop: what a recursive server reports
                    response.answer.clear()
                    response.set_rcode(dns.rcode.SERVFAIL)
                    return response
                seen.add(key)
                target = dns.name.from_text(str(cnames[0][1]).rstrip(".") + ".")
                rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.CNAME)
                rrset.add(_rdata("CNAME", target.to_text()), self.ttl)
                response.answer.append(rrset)
                name = target
                continue
            if records:
                rrset = dns.rrset.RRset(name, dns.rdataclass.IN, question.rdtype)
                for entry_type, value in records:
                    rrset.add(_rdata(entry_type, value), self.ttl)
                response.answer.append(rrset)
            return response
        response.set_rcode(dns.rcode.SERVFAIL)
        return response

    def _reply_bytes(self, wire: bytes, limit: int | None) -> bytes | None:
        try:
            response = self.answer(wire)
        except _NoReply:
            return None
        except dns.exception.DNSException:
            return None
        if limit is None:  # TCP: the reply may be as large as DNS allows
            return response.to_wire(max_size=65535)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            # Too big for UDP: an empty answer with TC set sends the client to TCP.
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._udp], [], [], 0.05)
            if not ready:
                continue
            try:
                wire, peer = self._udp.recvfrom(65535)
            except OSError:
                continue
            try:
                query = dns.message.from_wire(wire)
                limit = max(512, query.payload) if query.edns >= 0 else 512
            except dns.exception.DNSException:
                continue
            reply = self._reply_bytes(wire, limit)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._tcp], [], [], 0.05)
            if not ready:
                continue
            try:
                conn, _peer = self._tcp.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._serve_conn, args=(conn,), daemon=True)
            thread.start()

    def _serve_conn(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        with conn:
            try:
                while not self._stop.is_set():
                    header = _recv_exact(conn, 2)
                    if header is None:
                        return
                    wire = _recv_exact(conn, struct.unpack("!H", header)[0])
                    if wire is None:
                        return
                    reply = self._reply_bytes(wire, None)
                    if reply is None:
                        return  # close unanswered: the client sees a failure
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def zone_from_rfc7208(zonedata: Mapping[str, Iterable[object]]) -> dict[str, list[Record]]:
    """The RFC 7208 suite's zonedata as our zone, with the suite drivers' convention:
    SPF-type records are also served as TXT unless the name lists TXT itself, and
    ``TXT: NONE`` means "no TXT record" (it only suppresses that copying)."""
    zone: dict[str, list[Record]] = {}
    for name, entries in zonedata.items():
        records: list[Record] = []
        copies: list[Record] = []
        has_txt = False
        for entry in entries:
            if entry == "TIMEOUT":
                records.append(("TIMEOUT", ""))
                continue
            assert isinstance(entry, dict)
            for rtype, value in entry.items():
                if rtype == "TXT":
                    has_txt = True
                if value == "NONE":
                    continue
                records.append((rtype, value))
                if rtype == "SPF":
                    copies.append(("TXT", value))
        if not has_txt:
            records.extend(copies)
        zone[name] = records
    return zone
