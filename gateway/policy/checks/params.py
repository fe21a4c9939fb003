"""Parameter types the checks declare: validated and normalised once, when rules load.

Each type turns the YAML value into what the check uses at mail time (a
compiled regex, a frozenset of levels, parsed networks), so a bad value is a
load error with a clear message and the mail path never re-parses anything.
Where a list is expected a single string is accepted as a one-item list.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainValidator, StrictBool

from gateway.addresses import normalise_address, normalise_domain
from gateway.message.defects import KINDS as DEFECT_KINDS
from gateway.message.documents.macros import LEVELS as MACRO_LEVELS
from gateway.message.filetypes import CATEGORIES
from gateway.message.identity import KINDS as IDENTITY_KINDS
from gateway.message.markings import LEVELS

Flag = StrictBool
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*"
                     r"[a-z0-9_](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/(?:[a-z0-9][a-z0-9!#$&^_.+-]*|\*)$")


def _items(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"expected a non-empty list of {what}")
    out: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ValueError(f"expected {what}, got {item!r}")
        out.append(str(item).strip())
    return out


def compile_regex(value: Any) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a regular expression (a non-empty string), got {value!r}")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression {value!r}: {exc}") from None


def levels(value: Any) -> frozenset[str]:
    out: set[str] = set()
    for item in _items(value, "classification markings"):
        level = " ".join(item.upper().split())
        if level not in LEVELS:
            raise ValueError(f"unknown classification {item!r} "
                             f"(known: {', '.join(reversed(LEVELS))})")
        out.add(level)
    return frozenset(out)


def domains(value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for item in _items(value, "domains"):
        # `*.example.com` and `.example.com` mean what `example.com` already does.
        domain = normalise_domain(item.removeprefix("*.").lstrip("."))
        if "@" in domain or not _DOMAIN.match(domain):
            raise ValueError(f"bad domain {item!r}: expected e.g. gmail.com")
        out.append(domain)
    return tuple(dict.fromkeys(out))


def addresses(value: Any) -> frozenset[str]:
    out: set[str] = set()
    for item in _items(value, "mail addresses"):
        if item in ("<>", ""):
            out.add("")  # the null sender
            continue
        address = normalise_address(item)
        local, at, domain = address.rpartition("@")
        if not at or not local or not _DOMAIN.match(domain):
            raise ValueError(f"bad mail address {item!r}: expected e.g. "
                             "hebahan@anm.gov.my (or <> for the null sender)")
        out.add(address)
    return frozenset(out)


def networks(value: Any) -> tuple[IPNetwork, ...]:
    out: list[IPNetwork] = []
    for item in _items(value, "IP addresses or networks"):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"bad IP address or network {item!r}: expected e.g. "
                             "10.1.2.3, 10.0.0.0/8 or 2001:db8::/32") from None
    return tuple(out)


def type_names(value: Any) -> frozenset[str]:
    out: set[str] = set()
    for item in _items(value, "file categories or MIME types"):
        name = item.lower()
        if name not in CATEGORIES and not _MIME_TYPE.match(name):
            raise ValueError(f"unknown file type {item!r}: expected a category "
                             f"({', '.join(CATEGORIES)}) or a MIME type such as "
                             "application/x-dosexec or image/*")
        out.add(name)
    return frozenset(out)


Regex = Annotated[re.Pattern[str], PlainValidator(compile_regex)]
Levels = Annotated[frozenset[str], PlainValidator(levels)]
Domains = Annotated[tuple[str, ...], PlainValidator(domains)]
Addresses = Annotated[frozenset[str], PlainValidator(addresses)]
Networks = Annotated[tuple[IPNetwork, ...], PlainValidator(networks)]
TypeNames = Annotated[frozenset[str], PlainValidator(type_names)]


def _kinds(value: Any, known: tuple[str, ...], what: str) -> frozenset[str]:
    out: set[str] = set()
    for item in _items(value, what):
        kind = item.lower()
        if kind not in known:
            raise ValueError(f"unknown {what[:-1]} {item!r} (known: {', '.join(known)})")
        out.add(kind)
    return frozenset(out)


def defect_kinds(value: Any) -> frozenset[str]:
    return _kinds(value, DEFECT_KINDS, "MIME defect kinds")


def identity_kinds(value: Any) -> frozenset[str]:
    return _kinds(value, IDENTITY_KINDS, "sender identity kinds")


def macro_levels(value: Any) -> frozenset[str]:
    """`office_macros` levels (gateway.message.documents.macros.LEVELS): one or a list,
    all of which one file must hold at once."""
    return _kinds(value, MACRO_LEVELS, "macro levels")


MacroLevels = Annotated[frozenset[str], PlainValidator(macro_levels)]
DefectKinds = Annotated[frozenset[str], PlainValidator(defect_kinds)]
IdentityKinds = Annotated[frozenset[str], PlainValidator(identity_kinds)]


SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "permerror", "temperror")
DMARC_RESULTS = ("pass", "fail", "none", "permerror", "temperror")
DKIM_RESULTS = ("pass", "fail", "neutral", "policy", "none", "permerror", "temperror")
SENDER_AUTH_KEYS = ("spf", "dkim", "dkim_aligned", "dmarc")


@dataclass(frozen=True)
class SenderAuthSpec:
    """Which SPF, DKIM and DMARC results a `sender_auth` condition accepts (None: any).

    `dkim` holds when some signature's result is in the set (`none`: no signature);
    `dkim_aligned` when whether a signature passed aligned with From is that value."""

    spf: frozenset[str] | None = None
    dmarc: frozenset[str] | None = None
    dkim: frozenset[str] | None = None
    dkim_aligned: bool | None = None


def sender_auth(value: Any) -> SenderAuthSpec:
    if isinstance(value, SenderAuthSpec):
        return value
    shape = ("expected {spf: [results], dkim: [results], dkim_aligned: true|false, "
             "dmarc: [results]} (one key or more)")
    if not isinstance(value, dict) or not value:
        raise ValueError(shape)
    unknown = sorted(str(k) for k in value if k not in SENDER_AUTH_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(SENDER_AUTH_KEYS)})")
    chosen: dict[str, Any] = {}
    for key, known in (("spf", SPF_RESULTS), ("dmarc", DMARC_RESULTS), ("dkim", DKIM_RESULTS)):
        if key in value:
            chosen[key] = _kinds(value[key], known, f"{key} results")
    if "dkim_aligned" in value:
        if not isinstance(value["dkim_aligned"], bool):
            raise ValueError("dkim_aligned: expected true or false")
        chosen["dkim_aligned"] = value["dkim_aligned"]
    return SenderAuthSpec(**chosen)


SenderAuth = Annotated[SenderAuthSpec, PlainValidator(sender_auth)]
