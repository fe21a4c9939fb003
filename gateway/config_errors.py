"""Config validation errors in the administrator's words, one line per problem.

pydantic says "Input should be a valid tuple" or "Extra inputs are not permitted";
an administrator editing `gateway.yaml` needs "agency_domains: must be a list of
domains, e.g. [anm.gov.my]" and "relay_network: unknown key, did you mean
relay_networks?". This module turns each pydantic error into such a line, with
the FILE:LINE the YAML loader knows for the key and the key's path first, as the
other load-time messages have it (`tls.key: ...`):

- a value of the wrong type or out of range: what the key must be, with an example
  (HINTS, by key path; a generic phrase from the error type for keys not listed),
  and the value given when it is a single value;
- an unknown key: the closest known key at that level (difflib), else the known keys;
- a missing key: that it is required, and what it must be;
- a value our own validators refused: their message, which already says what is
  expected.

Errors that only follow from another (an empty `listeners` after its one item was
refused) are left out, so every line is a problem to fix.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.problems import Problem
from gateway.yamlsource import Located

_TIMEOUT = "must be a number of seconds above 0, e.g. {}"
_COUNT = "must be a whole number of at least {}, e.g. {}"
_NETWORKS = "must be a list of IP addresses or networks, e.g. {}"

# What each key must be, by its path ("*" for a list index): said after `key: `.
HINTS: dict[str, str] = {
    "listeners": 'must be a list of listeners, e.g. [{name: outbound, listen: '
                 '"127.0.0.1:2525", direction: outbound}]',
    "listeners.*": 'must be a listener, e.g. {name: outbound, listen: "127.0.0.1:2525", '
                   'direction: outbound}',
    "listeners.*.name": "must be a name, e.g. outbound",
    "listeners.*.listen": 'must be HOST:PORT, [IPv6]:PORT or unix:/path, e.g. "127.0.0.1:2525"',
    "listeners.*.direction": "must be inbound or outbound",
    "listeners.*.mode": "must be smtp or milter",
    "listeners.*.proxy_protocol": "must be a mapping, e.g. {from: [10.0.0.5]}",
    "listeners.*.proxy_protocol.from": _NETWORKS.format("[10.0.0.5]"),
    "listeners.*.proxy_protocol.versions": "must be a list of PROXY versions, e.g. [1, 2]",
    "listeners.*.proxy_protocol.timeout": "must be a number of seconds above 0 and at "
                                          "most 300, e.g. 5",
    "upstream": "must be maildir:DIR or smtp://HOST:PORT, e.g. maildir:var/mail",
    "agency_domains": "must be a list of domains, e.g. [anm.gov.my]",
    "agency_domains.*": "must be a domain, e.g. anm.gov.my",
    "relay_networks": _NETWORKS.format('[127.0.0.0/8, "::1/128"]'),
    "hebahan_senders": "must be a list of addresses, e.g. [hebahan@anm.gov.my]",
    "hebahan_senders.*": "must be an address, e.g. hebahan@anm.gov.my",
    "incidents": "must be a mapping, e.g. {to: [ictso@anm.gov.my], from: gateway@anm.gov.my}",
    "incidents.to": "must be a list of addresses, e.g. [ictso@anm.gov.my, helpdesk@anm.gov.my]",
    "incidents.from": "must be an address, e.g. gateway@anm.gov.my",
    "incidents.max_per_hour": "must be a whole number from 1 to 100000, e.g. 60",
    "incidents.batch_seconds": "must be a number of seconds from 0 to 3600, e.g. 60",
    "incidents.retry_seconds": "must be a number of seconds above 0, at most 86400, e.g. 3600",
    "dkim_sign": "must be a mapping, e.g. {domain: anm.gov.my, selector: gw2025, "
                 "key_file: /etc/gateway/dkim/gw2025.key}",
    "dkim_sign.domain": "must be the signing domain (d=), e.g. anm.gov.my",
    "dkim_sign.selector": "must be the DKIM selector (s=), e.g. gw2025",
    "dkim_sign.key_file": "must be the path of the private key, e.g. "
                          "/etc/gateway/dkim/gw2025.key",
    "dkim_sign.headers": "must be a list of header field names, e.g. [From, To, Subject, Date]",
    "hebahan_relays": _NETWORKS.format("[10.1.2.3]"),
    "xforward_peers": _NETWORKS.format("[127.0.0.1]"),
    "authentication_results": "must be true or false",
    "cut_through": "must be true or false",
    "rules_dir": "must be a directory, e.g. rules",
    "rejection_log": "must be a file name, e.g. var/log/rejections.jsonl",
    "log_subjects": "must be hashed or clear",
    "log_key_file": "must be a file name, e.g. /var/lib/gateway/rejection-log.key",
    "syslog": "must be a mapping, e.g. {address: /dev/log, facility: mail}",
    "syslog.address": "must be a unix socket path or udp://HOST:PORT, e.g. /dev/log",
    "syslog.facility": "must be a syslog facility name, e.g. mail",
    "dns": "must be a mapping, e.g. {nameservers: [127.0.0.1], port: 53, timeout: 2}",
    "dns.nameservers": "must be a list of IP addresses, e.g. [127.0.0.1]",
    "dns.nameservers.*": "must be an IP address, e.g. 127.0.0.1",
    "dns.port": "must be a port number from 1 to 65535, e.g. 53",
    "dns.timeout": _TIMEOUT.format(2),
    "limits": "must be a mapping of limits, e.g. {max_recipients: 1000}",
    "limits.max_message_size": "must be a size, e.g. 25MB",
    "limits.session_timeout": _TIMEOUT.format(300),
    "limits.upstream_connect_timeout": _TIMEOUT.format(30),
    "limits.upstream_timeout": _TIMEOUT.format(120),
    "limits.inspection_timeout": _TIMEOUT.format(60),
    "limits.max_recipients": _COUNT.format(1, 1000),
    "limits.max_connections": _COUNT.format(1, 1000),
    "limits.max_connections_per_ip": _COUNT.format(1, 50),
    "limits.max_commands": _COUNT.format(1, 10000),
    "limits.max_bad_commands": _COUNT.format(1, 10),
    "limits.data_timeout": _TIMEOUT.format(900),
    "limits.data_min_rate": "must be a size per second, e.g. 500 or 1KB (0: no floor)",
    "limits.data_rate_window": _TIMEOUT.format(30),
    "limits.data_rate_grace": "must be a number of seconds, 0 or more, e.g. 30",
    "limits.bare_newlines": "must be reject or normalize",
    "limits.spool_threshold": "must be a size, e.g. 1MB",
    "limits.spool_dir": "must be a directory, e.g. /var/spool/gateway",
    "limits.max_header_bytes": "must be a size of at least 1KB, e.g. 256KB",
    "limits.max_parts": _COUNT.format(1, 5000),
    "limits.max_depth": _COUNT.format(1, 30),
    "limits.max_expansion_bytes": "must be a size of at least 1MB, e.g. 256MB",
    "limits.max_archive_entries": _COUNT.format(1, 10000),
    "limits.max_archive_depth": _COUNT.format(0, 3),
    "limits.max_archive_ratio": _COUNT.format(1, 200),
    "limits.max_pdf_pages": _COUNT.format(1, 2000),
    "limits.inspection_processes": "must be a number of processes from 1 to 1024, or auto",
    "limits.inspection_queue": _COUNT.format(1, 100),
    "limits.inspection_wait": "must be a number of seconds above 0, e.g. 30, or null",
    "limits.inspection_memory": "must be a size of at least 16MB, e.g. 4GB, or auto",
    "tls": "must be a mapping, e.g. {cert: config/tls/gateway.crt, key: config/tls/gateway.key}",
    "tls.cert": "must be a file name (PEM certificate), e.g. config/tls/gateway.crt",
    "tls.key": "must be a file name (PEM key), e.g. config/tls/gateway.key",
    "tls.require_starttls": "must be true or false",
    "tls.upstream": "must be a mapping, e.g. {mode: opportunistic, verify: true}",
    "tls.upstream.mode": "must be none, opportunistic or required",
    "tls.upstream.verify": "must be true or false",
    "tls.upstream.ca_file": "must be a file name (PEM bundle), or null for the system's",
    "tls.upstream.server_name": "must be a host name, e.g. mail.anm.gov.my, or null",
    "hostname": "must be a host name, e.g. gw.anm.gov.my",
    "classification_headers": "must be a list of header names, e.g. [X-Classification, "
                              "X-Pengelasan]",
    "classification_headers.*": "must be a header name, e.g. X-Classification",
    "label_map": 'must be a mapping of Purview label GUIDs or names to markings, e.g. '
                 '{"Sulit - Dalaman": SULIT}',
    "label_map.*.[key]": "must be a label GUID or name (text)",
    "workers": "must be a number of processes from 1 to 256, or auto",
    "metrics": 'must be a mapping, e.g. {listen: "127.0.0.1:9125"}',
    "metrics.listen": 'must be HOST:PORT, e.g. "127.0.0.1:9125"',
}

# Error types that say the value is not a container of the right kind: no "(got ...)".
_CONTAINER_TYPES = frozenset({"tuple_type", "list_type", "set_type", "frozen_set_type",
                              "model_type", "dict_type", "model_attributes_type"})


def _generic(err: ErrorDetails) -> str:
    """What pydantic's error type says the value must be, for keys without a hint."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind.startswith("string_"):
        return "must be text"
    if kind.startswith("int_"):
        return "must be a whole number"
    if kind.startswith("float_"):
        return "must be a number"
    if kind.startswith("bool_"):
        return "must be true or false"
    if kind in ("tuple_type", "list_type", "set_type", "frozen_set_type"):
        return "must be a list, e.g. [a, b]"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a mapping of keys"
    if kind == "literal_error":
        return "must be " + str(ctx.get("expected", "one of the listed values")).replace("'", "")
    if kind == "greater_than":
        return f"must be more than {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than":
        return f"must be less than {ctx.get('lt')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must have at least {n} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "path_type":
        return "must be a file or directory name"
    if kind.startswith("ip_"):
        return "must be an IP address or network, e.g. 10.0.0.0/8"
    return "has a value that is not allowed"


def _pattern(loc: tuple[str | int, ...]) -> str:
    return ".".join("*" if isinstance(p, int) else p for p in loc)


def _name(loc: tuple[str | int, ...]) -> str:
    # As the loader's other messages (and the README) name keys: tls.upstream.mode,
    # listeners.1.listen (list items by index from 0).
    return ".".join(str(p) for p in loc) or "config"


def _shown(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (X, X | None, tuple[X, ...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """The keys a model accepts as written in YAML (aliases included) -> annotation."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        out[info.alias or name] = info.annotation
    return out


def _model_at(root: type[BaseModel], loc: Iterable[str | int]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        model = _model_of(_keys(model).get(part))
    return model


def _unknown(root: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    parent, key = loc[:-1], str(loc[-1])
    where = _name(loc)
    model = _model_at(root, parent)
    known = sorted(_keys(model)) if model is not None else []
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"{where}: unknown key, did you mean {_name((*parent, close[0]))}?"
    if known:
        return f"{where}: unknown key (known keys here: {', '.join(known)})"
    return f"{where}: unknown key"


def describe(err: ErrorDetails, root: type[BaseModel]) -> str:
    """One line for one pydantic error, naming the key as the administrator wrote it."""
    loc = tuple(err["loc"])
    where = _name(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        return _unknown(root, loc)
    hint = HINTS.get(_pattern(loc))
    if kind == "missing":
        return f"{where}: missing (required)" + (f": {hint}" if hint else "")
    if kind in ("value_error", "assertion_error"):
        return f"{where}: {err['msg'].removeprefix('Value error, ')}"
    if kind == "too_short" and hint:
        return f"{where}: {_generic(err)} ({hint})"
    message = f"{where}: {hint or _generic(err)}"
    shown = None if kind in _CONTAINER_TYPES else _shown(err.get("input"))
    return f"{message} (got {shown})" if shown is not None else message


def _follows_from_another(err: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    # pydantic reports a list as too short after refusing its items: one problem, not two.
    if err["type"] != "too_short" or not err.get("input"):
        return False
    loc = tuple(err["loc"])
    return any(tuple(other["loc"])[:len(loc)] == loc and len(other["loc"]) > len(loc)
               for other in errors)


def problems(exc: ValidationError, doc: Located, root: type[BaseModel]) -> list[Problem]:
    """FILE:LINE problems for every error of `exc`, in the order of the file."""
    errors = exc.errors()
    seen: set[tuple[int, str]] = set()
    out: list[Problem] = []
    for err in errors:
        if _follows_from_another(err, errors):
            continue
        problem = doc.problem(tuple(err["loc"]), describe(err, root))
        if (problem.line, problem.message) not in seen:
            seen.add((problem.line, problem.message))
            out.append(problem)
    out.sort(key=lambda p: p.line)
    return out
