"""Who may relay through the gateway: envelope-level refusals before any content is read.

Pure functions over the envelope and the config's lists, shared by every front end
(the SMTP proxy now, the milter later). Outbound listeners relay only for clients in
`relay_networks` and only for the agency's own senders; inbound listeners deliver
only to the agency's own domains, so the gateway is never an open relay. On both,
address forms that MTAs interpret as sender-specified routing (`"user@host"@`,
`user%host@`, `host!user@`, `@a,@b:user@c`, `user@[1.2.3.4]`) are refused from every
client, because a downstream MTA that trusts the gateway would route them elsewhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.addresses import address_domain, domain_in
from gateway.config import IPNetwork
from gateway.policy import replies
from gateway.policy.verdict import Reply


@dataclass(frozen=True)
class Refusal:
    """An envelope refusal: the rule id and reason for the log, the reply for the client."""

    rule_id: str
    reason: str
    make_reply: Callable[[str], Reply]

    def reply(self, ref: str) -> Reply:
        return self.make_reply(ref)


RELAY_ACCESS = "relay-access"
RELAY_SENDER = "relay-sender"
RELAY_ADDRESS = "relay-address"


def client_in(client_ip: str, networks: Iterable[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def split_path(path: str) -> tuple[str, str, str]:
    """(local part as the receiving MTA reads it, '@' or '', domain) of an SMTP path.

    `path` is the argument as the client wrote it (`<"a@b"@c>`). The local part is
    unquoted and its backslash escapes undone (RFC 5321 4.1.2 Quoted-string,
    quoted-pairSMTP), because that is the text a next hop routes on: `"a@b"@c` and
    `"a\\@b"@c` both reach it as the local part `a@b`. The domain starts after the
    last `@` outside a quoted string.
    """
    inner = path.strip()
    bracketed = inner.startswith("<")
    if bracketed:
        inner = inner[1:].lstrip()
    local: list[str] = []
    quoted = False
    last_at = -1
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner):
            local.append(inner[i + 1])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and bracketed and not quoted:
            break  # the end of the path; ESMTP parameters may follow
        elif c == "@" and not quoted:
            last_at = len(local)
            local.append(c)
        else:
            local.append(c)
        i += 1
    text = "".join(local)
    if last_at < 0:
        return text, "", ""
    return text[:last_at], "@", text[last_at + 1:]


def routing_form(path: str) -> str | None:
    """Why an SMTP path is refused as sender-specified routing, or None when it is a
    plain address.

    Refused as Postfix's `allow_untrusted_routing = no` refuses them (postconf(5)),
    because a next hop that trusts the gateway would route them onwards: a source
    route (`<@a,@b:u@c>`, RFC 5321 4.1.2 and appendix C), `@` (`"u@evil"@agency`),
    `%` (`u%evil@agency`) or `!` (`evil!u@agency`, UUCP bang path) in the local part,
    quoted or escaped or not, and an address literal (`u@[192.0.2.1]`). `path` is the
    argument as the client wrote it, because parsers drop the source route and the
    quoting before anyone can look at it.
    """
    inner = path.strip().lstrip("<").lstrip()
    if inner.startswith("@"):
        return "source route"
    local, _, domain = split_path(path)
    if "@" in local:
        return "@ in the local part"
    if "%" in local:
        return "percent hack"
    if "!" in local:
        return "bang path"
    if domain.startswith("["):
        return "address literal"
    return None


def check_mail(*, direction: str, client_ip: str, sender: str,
               relay_networks: Iterable[IPNetwork], agency_domains: Iterable[str],
               authenticated: bool = False) -> Refusal | None:
    """MAIL FROM: outbound only from relay_networks (or an SMTP-authenticated client,
    which only the milter learns of, from the MTA) and only for agency senders.

    `sender` is '' for the null sender, which outbound clients may use so that
    bounces generated inside the agency can leave.
    """
    if direction != "outbound":
        return None
    if not authenticated and not client_in(client_ip, relay_networks):
        return Refusal(RELAY_ACCESS, f"client {client_ip} not in relay_networks",
                       replies.relay_denied)
    if sender and not domain_in(address_domain(sender), agency_domains):
        return Refusal(RELAY_SENDER, "sender domain is not an agency domain",
                       replies.sender_not_agency)
    return None


def check_rcpt(*, direction: str, recipient: str, path: str,
               agency_domains: Iterable[str]) -> Refusal | None:
    """RCPT TO: no routing forms anywhere; inbound only to agency domains (and the
    domainless `<Postmaster>`).

    Both the path as written and `recipient`, the address a front end parsed from it
    and would pass on, are checked: a parser that decodes RFC 2047 encoded words or
    drops comments (aiosmtpd's) can turn `=?utf-8?q?u=40evil?=@agency` into
    `"u@evil"@agency`, and the next hop routes on what it is sent.
    """
    form = routing_form(path) or routing_form(recipient)
    if form is not None:
        return Refusal(RELAY_ADDRESS, f"recipient uses sender-specified routing ({form})",
                       replies.bad_address)
    if direction == "inbound" and not domain_in(address_domain(recipient), agency_domains) \
            and recipient.strip().lower() != "postmaster":
        # `<Postmaster>` without a domain MUST be accepted (RFC 5321 4.5.1); the next
        # hop, the agency's own server, delivers it to its own postmaster.
        return Refusal(RELAY_ACCESS, "recipient domain is not an agency domain",
                       replies.relay_denied)
    return None
