"""XFORWARD: the real client's attributes from a trusted MTA in front (Postfix's proxy filter).

Follows Postfix's XFORWARD_README (http://www.postfix.org/XFORWARD_README.html) and
what Postfix's own smtpd does with the command (src/smtpd/smtpd.c, xforward_cmd),
so that an MTA talking to the gateway meets the behaviour it knows:

- the EHLO keyword lists the attributes understood (`EHLO_KEYWORD`), and only peers in
  `xforward_peers` see it; anyone else is refused `550 5.7.0 Error: insufficient
  authorization`, Postfix's own reply to a client not in
  smtpd_authorized_xforward_hosts;
- `XFORWARD attr=value ...` only outside a mail transaction (503 5.5.1 otherwise),
  values xtext-decoded (RFC 3461 section 4; an undecodable value is taken as sent, as
  Postfix does for senders before 2.3), at most 255 characters each;
- `[UNAVAILABLE]` (any case; also `[TEMPUNAVAIL]`, XCLIENT's spelling) means unknown;
- the first XFORWARD of a transaction sets every attribute to unknown before applying
  its own, so nothing of the proxy's own session mixes with the forwarded client's
  (README note 4); attributes live until the transaction ends (RSET, end of DATA,
  HELO/EHLO);
- ADDR may carry an `IPv6:` prefix; an IPv4-mapped IPv6 address counts as IPv4. An
  ADDR of [UNAVAILABLE] announces a local submission: the client then has no address.

This module is pure (no sockets): `parse` and `apply` for the server side,
`upstream_commands` for passing the attributes on to a next hop that offers XFORWARD.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

# The attributes we take, in the order Postfix's smtpd advertises them.
ATTRIBUTES = ("NAME", "ADDR", "PROTO", "HELO", "SOURCE", "PORT", "IDENT")
EHLO_KEYWORD = "XFORWARD " + " ".join(ATTRIBUTES)
UNAVAILABLE = "[UNAVAILABLE]"
_UNKNOWN_VALUES = frozenset({"[UNAVAILABLE]", "[TEMPUNAVAIL]"})
MAX_VALUE = 255
MAX_PROTO = 64
# Postfix's smtpd.c NEUTER_CHARACTERS: special in headers and logs, replaced by '?'.
_NEUTER = str.maketrans({c: "?" for c in " <>()\\\";@"})
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,253}[A-Za-z0-9_.])?\Z")
# One XFORWARD line must fit in 512 octets with its reply's room (Postfix's smtpd_proxy.c).
_PAYLOAD_LIMIT = 512 - len("250 XFORWARD\r\n")

NOT_AUTHORIZED = "550 5.7.0 Error: insufficient authorization"
IN_TRANSACTION = "503 5.5.1 Error: MAIL transaction in progress"
SYNTAX = "501 5.5.4 Syntax: XFORWARD attribute=value..."


class XforwardError(ValueError):
    """A bad XFORWARD command; `reply` is what the client is told (501 5.5.4 ...)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Forwarded:
    """The forwarded client; None is an attribute that is unknown ([UNAVAILABLE])."""

    name: str | None = None
    addr: str | None = None
    port: str | None = None
    proto: str | None = None
    helo: str | None = None
    ident: str | None = None
    source: str | None = None  # LOCAL or REMOTE


def xtext_decode(text: str) -> str | None:
    """RFC 3461 xtext decoded, or None when it is not valid xtext."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "+":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not all(h in "0123456789ABCDEFabcdef" for h in pair):
                return None
            out.append(int(pair, 16))
            i += 3
            continue
        if not 33 <= ord(c) <= 126 or c == "=":
            return None
        out.append(ord(c))
        i += 1
    return out.decode("utf-8", "replace")


def xtext_encode(text: str) -> str:
    """`text` as RFC 3461 xtext: '+', '=' and anything outside '!'..'~' as +XX."""
    return "".join(chr(b) if 33 <= b <= 126 and b not in (0x2B, 0x3D) else f"+{b:02X}"
                   for b in text.encode("utf-8"))


def _printable(text: str) -> str:
    # As Postfix's printable(): no control or non-ASCII character reaches logs or headers.
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text)


def normalise_addr(value: str) -> str:
    """ADDR as the policy compares it: bare IP text, IPv6: prefix gone, mapped IPv4 as
    IPv4. ValueError when it is not an IP address."""
    text = value[5:] if value[:5].lower() == "ipv6:" else value
    ip = ipaddress.ip_address(text.strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _attribute(name: str, value: str) -> str:
    """One attribute's value, checked as Postfix's smtpd checks it."""
    if name == "ADDR":
        try:
            return normalise_addr(value)
        except ValueError:
            raise XforwardError(f"501 5.5.4 Bad ADDR syntax: {value.translate(_NEUTER)}"
                                ) from None
    if name == "NAME":
        name_value = value.translate(_NEUTER)
        if not _HOSTNAME.match(name_value) or ".." in name_value:
            raise XforwardError(f"501 5.5.4 Bad NAME syntax: {name_value}")
        return name_value
    if name == "PORT":
        if not value.isdigit() or len(value) > 5 or int(value) > 65535:
            raise XforwardError(f"501 5.5.4 Bad PORT syntax: {value.translate(_NEUTER)}")
        return value
    if name == "PROTO" and len(value) > MAX_PROTO:
        raise XforwardError(f"501 5.5.4 Bad PROTO syntax: {value.translate(_NEUTER)}")
    if name == "SOURCE":
        if value.upper() not in ("LOCAL", "REMOTE"):
            raise XforwardError(f"501 5.5.4 Bad SOURCE syntax: {value.translate(_NEUTER)}")
        return value.upper()
    return value.translate(_NEUTER)  # PROTO, HELO, IDENT


def parse(arg: str | None) -> dict[str, str | None]:
    """The attributes of one `XFORWARD` argument; None for an [UNAVAILABLE] one.

    Raises XforwardError with Postfix's 501 reply for a missing argument, an element
    without `=value`, a value over 255 characters, an unknown attribute name or a
    value that attribute cannot take.
    """
    words = (arg or "").split()
    if not words:
        raise XforwardError(SYNTAX)
    out: dict[str, str | None] = {}
    for word in words:
        name, eq, raw = word.partition("=")
        if not eq or not raw:
            raise XforwardError("501 5.5.4 Error: attribute=value expected")
        if len(raw) > MAX_VALUE:
            raise XforwardError("501 5.5.4 Error: attribute value too long")
        key = name.upper()
        if key not in ATTRIBUTES:
            raise XforwardError(f"501 5.5.4 Bad XFORWARD attribute name: "
                                f"{_printable(name).translate(_NEUTER)}")
        decoded = xtext_decode(raw)
        value = _printable(raw if decoded is None else decoded)
        out[key] = None if value.upper() in _UNKNOWN_VALUES else _attribute(key, value)
    return out


def apply(current: Forwarded | None, updates: Mapping[str, str | None]) -> Forwarded:
    """The forwarded client after one XFORWARD: the first of a transaction starts from
    all-unknown, later ones overwrite only the attributes they name."""
    base = current if current is not None else Forwarded()
    return replace(base, **{key.lower(): value for key, value in updates.items()})


def upstream_commands(attributes: Mapping[str, str | None], offered: Iterable[str]
                      ) -> list[str]:
    """XFORWARD lines for a next hop whose EHLO listed `offered`: only those attributes,
    unknown ones as [UNAVAILABLE], values xtext-encoded, each line within 512 octets."""
    wanted = {name.upper() for name in offered}
    lines: list[str] = []
    current = ""
    for name in ATTRIBUTES:
        if name not in wanted or name not in attributes:
            continue
        value = attributes[name]
        piece = f" {name}={UNAVAILABLE if value is None else xtext_encode(value[:MAX_VALUE])}"
        if current and len("XFORWARD" + current + piece) > _PAYLOAD_LIMIT:
            lines.append("XFORWARD" + current)
            current = ""
        current += piece
    if current:
        lines.append("XFORWARD" + current)
    return lines
