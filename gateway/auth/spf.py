"""SPF: RFC 7208 check_host() over the gateway's own Resolver.

Why not pyspf: its DNS look-up is a module-global function (`spf.DNSLookup`), so using
the gateway's configured servers, timeouts and cache would mean patching global state
shared by every thread; and its last release is from 2020. This module implements the
RFC instead and is held to the RFC 7208 test suite (tests/corpus/spf/, run by
tests/unit/test_spf_rfc7208.py against a real DNS server on loopback).

What is implemented: record selection ("v=spf1" exactly, several -> permerror, none ->
none), every mechanism (all, include, a, mx, ptr, ip4, ip6, exists) with qualifiers and
dual CIDR lengths, the redirect and exp modifiers (exp is parsed and its syntax checked,
the explanation text is not fetched: the gateway's replies are its own words), macros
with transformers and URL escaping, the limit of 10 DNS-querying terms, of 2 void
look-ups, of 10 MX names and 10 PTR names, and an overall deadline. A whole record is
parsed before it is evaluated, so a syntax error anywhere is a permerror.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass, field

from gateway.auth import SpfOutcome, SpfResult
from gateway.auth.resolver import DnsNameError, DnsTempError, Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_DNS_MECHANISMS = 10  # RFC 7208 4.6.4
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_PTR_NAMES = 10
DEFAULT_DEADLINE = 20.0  # seconds for one check_host(), RFC 7208 4.6.4 suggests >= 20

_QUALIFIERS: dict[str, SpfOutcome] = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.\-]*)=(.*)\Z", re.DOTALL)
_DIRECTIVE = re.compile(r"^([+\-~?]?)([A-Za-z][A-Za-z0-9_.\-]*)(.*)\Z", re.DOTALL)
_MACRO_LETTERS = "slodiphcrtv"
_EXP_ONLY_LETTERS = "crt"
_DELIMITERS = ".-+,/_="
_TOPLABEL = re.compile(
    r"^(?:[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9\-]*[A-Za-z0-9])\Z")
_IP4_CIDR = re.compile(r"^(?:0|[1-9][0-9]?)\Z")
_IP6_CIDR = re.compile(r"^(?:0|[1-9][0-9]{0,2})\Z")
_DOTTED_QUAD = re.compile(
    r"^(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}\Z")


class PermError(Exception):
    """The record is broken or a limit was exceeded."""


class TempError(Exception):
    """DNS trouble or the deadline: the answer is not known now."""


class _None(Exception):
    """An include/redirect target has no SPF record (RFC 7208 5.2, 6.1)."""


# -- parsed record ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Mechanism:
    qualifier: str
    name: str
    domain_spec: str | None = None  # a macro-string, unexpanded
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(frozen=True)
class _Record:
    mechanisms: tuple[_Mechanism, ...]
    redirect: str | None = None


def _check_macro_string(text: str, *, exp: bool = False) -> None:
    """Raise PermError unless `text` is a valid macro-string (RFC 7208 7.1)."""
    i = 0
    while i < len(text):
        char = text[i]
        if char != "%":
            if not (0x21 <= ord(char) <= 0x7E) and not (exp and char == " "):
                raise PermError("invalid character in a macro string")
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt in ("%", "_", "-"):
            i += 2
            continue
        if nxt != "{":
            raise PermError("a lone '%' in a macro string")
        end = text.find("}", i)
        if end < 0:
            raise PermError("an unclosed macro")
        _parse_macro(text[i + 2:end], exp=exp)
        i = end + 1


def _parse_macro(body: str, *, exp: bool) -> tuple[str, int | None, bool, str]:
    match = re.fullmatch(r"([A-Za-z])([0-9]*)([rR]?)([.\-+,/_=]*)", body)
    if match is None or match.group(1).lower() not in _MACRO_LETTERS:
        raise PermError("an unknown macro")
    letter, digits, reverse, delimiters = match.groups()
    if letter.lower() in _EXP_ONLY_LETTERS and not exp:
        raise PermError("a macro allowed only in explanations")
    keep: int | None = None
    if digits:
        keep = int(digits)
        if keep == 0:
            raise PermError("a macro keeping zero parts")
    return letter, keep, bool(reverse), delimiters


def _check_domain_spec(spec: str) -> None:
    """A domain-spec must end in a macro or in "." and a valid top label (RFC 7208 7.1)."""
    if not spec:
        raise PermError("an empty domain-spec")
    _check_macro_string(spec)
    if spec.endswith("}"):
        return
    body = spec[:-1] if spec.endswith(".") else spec
    _head, dot, top = body.rpartition(".")
    if not dot or not _TOPLABEL.match(top):
        raise PermError("a domain-spec without a valid top label")


def _parse_cidr(text: str, *, ip6_only: bool = False) -> tuple[int, int]:
    """Dual CIDR "/n", "//m" or "/n//m" -> (ip4 length, ip6 length)."""
    cidr4, cidr6 = 32, 128
    if not text:
        return cidr4, cidr6
    if ip6_only:
        if not text.startswith("/") or not _IP6_CIDR.match(text[1:]) or int(text[1:]) > 128:
            raise PermError("an invalid ip6 CIDR length")
        return cidr4, int(text[1:])
    match = re.fullmatch(r"(?:/([0-9]+))?(?://([0-9]+))?", text)
    if match is None:
        raise PermError("an invalid CIDR length")
    four, six = match.groups()
    if four is not None:
        if not _IP4_CIDR.match(four) or int(four) > 32:
            raise PermError("an invalid ip4 CIDR length")
        cidr4 = int(four)
    if six is not None:
        if not _IP6_CIDR.match(six) or int(six) > 128:
            raise PermError("an invalid ip6 CIDR length")
        cidr6 = int(six)
    return cidr4, cidr6


def _split_domain_cidr(arg: str) -> tuple[str | None, str]:
    """':domain-spec/24//64' -> ('domain-spec', '/24//64'); '/24' -> (None, '/24')."""
    if arg.startswith(":"):
        rest = arg[1:]
        match = re.search(r"(/[0-9]*)?(//[0-9]*)?\Z", rest)
        cut = match.start() if match and match.group(0) else len(rest)
        return rest[:cut], rest[cut:]
    if arg == "" or arg.startswith("/"):
        return None, arg
    raise PermError("an invalid mechanism argument")


def _parse_mechanism(qualifier: str, name: str, arg: str) -> _Mechanism:
    qual = qualifier or "+"
    if name == "all":
        if arg:
            raise PermError("'all' takes no argument")
        return _Mechanism(qual, name)
    if name in ("include", "exists"):
        if not arg.startswith(":"):
            raise PermError(f"'{name}' needs a domain")
        _check_domain_spec(arg[1:])
        return _Mechanism(qual, name, arg[1:])
    if name == "ptr":
        if arg and not arg.startswith(":"):
            raise PermError("an invalid 'ptr' argument")
        spec = arg[1:] if arg else None
        if spec is not None:
            _check_domain_spec(spec)
        return _Mechanism(qual, name, spec)
    if name in ("a", "mx"):
        spec, cidr = _split_domain_cidr(arg)
        if spec is not None:
            _check_domain_spec(spec)
        cidr4, cidr6 = _parse_cidr(cidr)
        return _Mechanism(qual, name, spec, cidr4=cidr4, cidr6=cidr6)
    if name == "ip4":
        if not arg.startswith(":"):
            raise PermError("'ip4' needs a network")
        address, _, length = arg[1:].partition("/")
        if not _DOTTED_QUAD.match(address):
            raise PermError("an invalid ip4 address")
        cidr4 = 32
        if length or "/" in arg[1:]:
            if not _IP4_CIDR.match(length) or int(length) > 32:
                raise PermError("an invalid ip4 CIDR length")
            cidr4 = int(length)
        net4 = ipaddress.IPv4Network(f"{address}/{cidr4}", strict=False)
        return _Mechanism(qual, name, network=net4, cidr4=cidr4)
    if name == "ip6":
        if not arg.startswith(":"):
            raise PermError("'ip6' needs a network")
        address, slash, length = arg[1:].partition("/")
        try:
            ip6 = ipaddress.IPv6Address(address)
        except ValueError as exc:
            raise PermError("an invalid ip6 address") from exc
        _, cidr6 = _parse_cidr(slash + length, ip6_only=True) if slash else (32, 128)
        net6 = ipaddress.IPv6Network(f"{ip6}/{cidr6}", strict=False)
        return _Mechanism(qual, name, network=net6, cidr6=cidr6)
    raise PermError("an unknown mechanism")


def parse_record(text: str) -> _Record:
    """Parse a whole "v=spf1 ..." record; PermError on any syntax error (RFC 7208 4.6)."""
    if not text.isascii():
        raise PermError("a record with non-ASCII characters")
    terms = text.split(" ")[1:]
    mechanisms: list[_Mechanism] = []
    redirect: str | None = None
    exp_seen = False
    for term in terms:
        if not term:
            continue
        modifier = _MODIFIER.match(term)
        if modifier is not None:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name == "redirect":
                if redirect is not None:
                    raise PermError("'redirect' more than once")
                _check_domain_spec(value)
                redirect = value
            elif name == "exp":
                if exp_seen:
                    raise PermError("'exp' more than once")
                _check_domain_spec(value)
                exp_seen = True
            else:
                _check_macro_string(value)  # unknown modifiers are ignored, if well-formed
            continue
        directive = _DIRECTIVE.match(term)
        if directive is None:
            raise PermError("an invalid term")
        qualifier, raw_name, arg = directive.groups()
        name = raw_name.lower()
        if name not in _MECHANISMS:
            raise PermError("an unknown mechanism")
        mechanisms.append(_parse_mechanism(qualifier, name, arg))
    return _Record(tuple(mechanisms), redirect)


def select_record(texts: list[str]) -> str | None:
    """The one SPF record among TXT strings; None if none; PermError if several."""
    records = [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    if len(records) > 1:
        raise PermError("more than one SPF record")
    return records[0] if records else None


# -- evaluation ------------------------------------------------------------------------


@dataclass
class _State:
    resolver: Resolver
    ip: IPAddress
    sender: str  # local@domain, local part "postmaster" if there was none
    helo: str
    deadline: float
    lookups: int = 0
    voids: int = 0
    validated: dict[str, str] = field(default_factory=dict)

    @property
    def local_part(self) -> str:
        return self.sender.rpartition("@")[0]

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]


def _dns(state: _State, call: str, name: str) -> list[str]:
    """One look-up; an unaskable name is simply empty (a void, like NXDOMAIN)."""
    if time.monotonic() > state.deadline:
        raise TempError("SPF evaluation took too long")
    try:
        if call == "txt":
            return state.resolver.txt(name)
        if call == "a":
            return state.resolver.a(name)
        if call == "aaaa":
            return state.resolver.aaaa(name)
        if call == "ptr":
            return state.resolver.ptr(name)
        return [host for _pref, host in state.resolver.mx(name)]
    except DnsNameError:
        return []
    except DnsTempError as exc:
        raise TempError(str(exc)) from exc


def _count_lookup(state: _State) -> None:
    state.lookups += 1
    if state.lookups > MAX_DNS_MECHANISMS:
        raise PermError("more than 10 DNS-querying terms")


def _count_void(state: _State, answer: list[str]) -> None:
    if not answer:
        state.voids += 1
        if state.voids > MAX_VOID_LOOKUPS:
            raise PermError("more than 2 void look-ups")


def _addresses(state: _State, name: str) -> list[str]:
    return _dns(state, "a" if state.ip.version == 4 else "aaaa", name)


def _in_network(state: _State, address: str, mech: _Mechanism) -> bool:
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return False
    if found.version != state.ip.version:
        return False
    length = mech.cidr4 if state.ip.version == 4 else mech.cidr6
    return state.ip in ipaddress.ip_network(f"{found}/{length}", strict=False)


def _validated_names(state: _State) -> list[str]:
    """PTR names of the client whose own addresses include it (RFC 7208 5.5)."""
    try:
        names = _dns(state, "ptr", str(state.ip))
    except TempError:
        return []
    valid: list[str] = []
    for name in names[:MAX_PTR_NAMES]:
        try:
            if any(_same_ip(state.ip, a) for a in _addresses(state, name)):
                valid.append(name)
        except TempError:
            continue  # RFC 7208 5.5: a failing A look-up skips that name
    return valid


def _same_ip(ip: IPAddress, text: str) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


def _in_domain(name: str, domain: str) -> bool:
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    return name == domain or name.endswith("." + domain)


def expand(spec: str, state: _State, domain: str, *, exp: bool = False) -> str:
    """Expand a macro-string (RFC 7208 7); a domain-spec is cut to 253 octets."""
    out: list[str] = []
    i = 0
    while i < len(spec):
        char = spec[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        nxt = spec[i + 1:i + 2]
        if nxt in ("%", "_", "-"):
            out.append({"%": "%", "_": " ", "-": "%20"}[nxt])
            i += 2
            continue
        end = spec.find("}", i)
        letter, keep, reverse, delimiters = _parse_macro(spec[i + 2:end], exp=exp)
        value = _macro_value(letter.lower(), state, domain)
        parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
        if reverse:
            parts.reverse()
        if keep is not None:
            parts = parts[-keep:]
        value = ".".join(parts)
        if letter.isupper():
            value = urllib.parse.quote(value, safe="-._~")
        out.append(value)
        i = end + 1
    result = "".join(out)
    if not exp:
        while len(result) > 253 and "." in result:
            result = result.split(".", 1)[1]
    return result


def _macro_value(letter: str, state: _State, domain: str) -> str:
    if letter == "s":
        return state.sender
    if letter == "l":
        return state.local_part
    if letter == "o":
        return state.sender_domain
    if letter == "d":
        return domain
    if letter in ("i", "c"):
        if state.ip.version == 4 or letter == "c":
            return str(state.ip)
        return ".".join(state.ip.exploded.replace(":", ""))
    if letter == "p":
        names = _validated_names(state)
        exact = [n for n in names if _in_domain(n, domain)]
        return (exact or names or ["unknown"])[0]
    if letter == "v":
        return "in-addr" if state.ip.version == 4 else "ip6"
    if letter == "h":
        return state.helo
    if letter == "r":
        return "unknown"
    return str(int(time.time()))  # "t"


def _target(mech_spec: str | None, state: _State, domain: str) -> str:
    return domain if mech_spec is None else expand(mech_spec, state, domain)


def _matches(mech: _Mechanism, state: _State, domain: str, depth: int) -> bool:
    if mech.name == "all":
        return True
    if mech.name in ("ip4", "ip6"):
        assert mech.network is not None
        return state.ip.version == mech.network.version and state.ip in mech.network
    _count_lookup(state)
    target = _target(mech.domain_spec, state, domain)
    if mech.name == "include":
        try:
            result = _check(state, target, depth + 1)
        except _None as exc:
            raise PermError("an include without an SPF record") from exc
        return result == "pass"
    if mech.name == "a":
        answer = _addresses(state, target)
        _count_void(state, answer)
        return any(_in_network(state, a, mech) for a in answer)
    if mech.name == "mx":
        hosts = _dns(state, "mx", target)
        _count_void(state, hosts)
        if len(hosts) > MAX_MX_NAMES:
            raise PermError("more than 10 MX names")
        for host in hosts:
            if host and any(_in_network(state, a, mech) for a in _addresses(state, host)):
                return True
        return False
    if mech.name == "ptr":
        names = _validated_names(state)
        if not names:
            _count_void(state, names)
        return any(_in_domain(n, target) for n in names)
    # exists: always an A query, whatever the client's address family (RFC 7208 5.7)
    answer = _dns(state, "a", target)
    _count_void(state, answer)
    return bool(answer)


def _check(state: _State, domain: str, depth: int) -> SpfOutcome:
    if depth > MAX_DNS_MECHANISMS + 1:
        raise PermError("include/redirect nested too deeply")
    if not valid_domain(domain):
        raise _None("not a valid domain")
    text = select_record(_dns(state, "txt", domain))
    if text is None:
        raise _None("no SPF record")
    record = parse_record(text)
    for mech in record.mechanisms:
        if _matches(mech, state, domain, depth):
            return _QUALIFIERS[mech.qualifier]
    if record.redirect is not None:
        _count_lookup(state)
        target = expand(record.redirect, state, domain)
        try:
            return _check(state, target, depth + 1)
        except _None as exc:
            raise PermError("a redirect without an SPF record") from exc
    return "neutral"


def valid_domain(domain: str) -> bool:
    """A name check_host() can evaluate (RFC 7208 4.3): a multi-label FQDN, labels 1-63."""
    name = domain[:-1] if domain.endswith(".") else domain
    if not name or len(name) > 253 or name.startswith("["):
        return False
    labels = name.split(".")
    return len(labels) > 1 and all(0 < len(label) <= 63 for label in labels)


def identity(mail_from: str, helo: str) -> tuple[str, str]:
    """(domain, sender) that SPF checks: MAIL FROM, or postmaster@HELO for <> (RFC 7208 2.4)."""
    if not mail_from:
        return helo, f"postmaster@{helo}"
    return mail_from.rpartition("@")[2], mail_from


def check_host(ip: str, domain: str, sender: str, helo: str, resolver: Resolver, *,
               deadline: float = DEFAULT_DEADLINE) -> SpfResult:
    """RFC 7208 check_host(): `sender` is the MAIL FROM (or postmaster@HELO for <>)."""
    domain = domain[:-1] if domain.endswith(".") else domain
    try:
        client = ipaddress.ip_address(ip)
    except ValueError:
        return SpfResult("permerror", domain, "the client address is not an IP address")
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    local, at, _ = sender.rpartition("@")
    if not at:
        sender = f"postmaster@{domain}"
    elif not local:
        sender = f"postmaster{sender}"
    state = _State(resolver, client, sender, helo, time.monotonic() + deadline)
    try:
        result = _check(state, domain, 0)
    except _None as why:
        return SpfResult("none", domain, str(why))
    except PermError as why:
        return SpfResult("permerror", domain, str(why))
    except TempError:
        return SpfResult("temperror", domain, "DNS look-up failed")
    return SpfResult(result, domain, f"SPF record evaluated to {result}")
