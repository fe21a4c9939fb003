"""`client_ip: [IPs or CIDRs] | "@relay_networks"`: the SMTP client's address is listed.

An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as dual-stack sockets report
IPv4 clients) is compared as the IPv4 address. A client without an IP (a Unix
socket) never matches.
"""

from __future__ import annotations

import ipaddress

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import IPNetwork, Networks


@check("client_ip", Networks, takes_list=True, needs="envelope")
def CHECK(networks: tuple[IPNetwork, ...], ctx: Context) -> Evidence | None:
    try:
        ip = ipaddress.ip_address(ctx.envelope.client_ip.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net in networks:
        if ip.version == net.version and ip in net:
            return {"client_ip": str(ip), "network": str(net)}
    return None
