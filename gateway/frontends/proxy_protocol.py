"""The PROXY protocol (v1 and v2) from a trusted load balancer: who the client really is.

Follows haproxy.org's proxy-protocol.txt (https://www.haproxy.org/download/2.8/doc/
proxy-protocol.txt). The header itself is read by aiosmtpd's parser
(`aiosmtpd.proxy_protocol.get_proxy`: v1 and v2, bounded reads, malformed input turned
into an error rather than an exception). aiosmtpd's own switch for it
(`SMTP(proxy_protocol_timeout=...)`) is not used: it expects the header from every
peer of a server, while here only the listener's `proxy_protocol.from` networks may
send one. So this module owns the decisions, and `smtp_proxy` only wires them:

- `trusted(peer, settings)`: whether a connection must start with a header. A trusted
  peer that sends none, an invalid one, or a version the listener does not accept
  within `timeout` is closed without a greeting (`read_header` -> `Refused`).
- A peer that is not trusted is an ordinary SMTP client at its own address; a
  `PROXY` line from it is refused and the connection closed (`smtp_proxy.smtp_PROXY`),
  and so is a v2 signature as its first bytes (`smtp_proxy`'s `data_received`), both
  named in the journal: no header is ever believed from it.
- `decide(data, versions)`: the client address a valid header gives. v2 LOCAL (the
  balancer's own health checks), v1 UNKNOWN and v2 UNSPEC mean "use the real
  connection endpoints" (the spec's MUST): the balancer's address. A v2 AF_UNIX
  source has no IP address ("unknown"); a datagram (UDP) header is refused, SMTP is
  TCP. An IPv4-mapped IPv6 source counts as IPv4.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

from aiosmtpd.proxy_protocol import AF, PROTO, V2_CMD, ProxyData, get_proxy

from gateway.config import ProxyProtocolSettings
from gateway.policy.relay_control import client_in
from gateway.policy.verdict import Reply

# Told to a client that sends a PROXY header it may not send, before it is cut off.
UNTRUSTED = Reply(421, "4.7.0", (
    "Pengepala PROXY tidak diterima daripada alamat ini; sambungan ditutup.",
    "PROXY header not accepted from this address; closing the connection."))


@dataclass(frozen=True)
class Accepted:
    """A header to believe. `client_ip` None: the connection's own peer is the client."""

    version: int
    client_ip: str | None
    client_port: int | None = None


@dataclass(frozen=True)
class Refused:
    """No header to believe: the connection is closed; `reason` goes to the journal."""

    reason: str


def trusted(peer_ip: str, settings: ProxyProtocolSettings | None) -> bool:
    """Whether `peer_ip` is a balancer this listener takes the PROXY header from."""
    return settings is not None and client_in(peer_ip, settings.peers)


def decide(data: ProxyData, versions: Collection[int]) -> Accepted | Refused:
    """What a parsed header means for a listener accepting `versions`."""
    version = data.version
    if not data.valid or version is None:
        return Refused(data.error or "not a PROXY protocol header")
    if version not in versions:
        return Refused(f"PROXY protocol v{version} not accepted on this listener")
    if version == 2 and data.command == V2_CMD.LOCAL:
        return Accepted(version, None)
    if data.family == AF.UNSPEC:
        return Accepted(version, None)
    if data.protocol != PROTO.STREAM:
        return Refused("PROXY header for a non-TCP connection")
    if data.family == AF.UNIX:
        return Accepted(version, "unknown")
    ip = data.src_addr
    if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return Refused("PROXY header without a usable source address")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    port = data.src_port if isinstance(data.src_port, int) else None
    return Accepted(version, str(ip), port)


async def read_header(reader: asyncio.StreamReader, versions: Collection[int],
                      timeout: float) -> Accepted | Refused:
    """Read one header from a trusted peer, bounded by `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            data = await get_proxy(reader)
    except TimeoutError:
        return Refused(f"no PROXY header within {timeout:g}s")
    except (asyncio.IncompleteReadError, ConnectionError):
        return Refused("closed before sending a PROXY header")
    return decide(data, versions)
