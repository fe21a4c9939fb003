"""Config errors in the administrator's words: a table of bad configs and the exact line
each gives (`FILE:LINE: key: message`), one line per problem, never pydantic's words.

Each case replaces (or adds) one top-level key of a small good config; its text goes
last in the file, so its line is known. Every top-level key is covered, and the common
nested ones (listeners, limits, tls, dns, metrics).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.problems import LoadError

BASE = {
    "listeners": 'listeners:\n  - {name: outbound, listen: "127.0.0.1:2525", direction: outbound}',
    "upstream": 'upstream: "maildir:var/mail"',
    "agency_domains": "agency_domains: [anm.gov.my]",
}
NETWORKS = "expected e.g. 10.1.2.3, 10.0.0.0/8 or 2001:db8::/32"
LISTENER = '{name: outbound, listen: "127.0.0.1:2525", direction: outbound}'

# (text of the key, 0-based line within that text of the problem, the message)
CASES: list[tuple[str, int, str]] = [
    # listeners
    ("listeners: outbound", 0, f"listeners: must be a list of listeners, e.g. [{LISTENER}]"),
    ("listeners: []", 0, f"listeners: must not be empty (must be a list of listeners, "
                         f"e.g. [{LISTENER}])"),
    ("listeners:\n  - outbound", 1, f"listeners.0: must be a listener, e.g. {LISTENER}"),
    ('listeners:\n  - {name: o, listen: "127.0.0.1:1", direction: out}', 1,
     "listeners.0.direction: must be inbound or outbound (got 'out')"),
    ('listeners:\n  - {name: o, listen: "127.0.0.1:1", direction: outbound, mod: milter}', 1,
     "listeners.0.mod: unknown key, did you mean listeners.0.mode?"),
    ('listeners:\n  - {name: o, listen: "127.0.0.1:1", direction: outbound, mode: lmtp}', 1,
     "listeners.0.mode: must be smtp or milter (got 'lmtp')"),
    ('listeners:\n  - {name: o, listen: "127.0.0.1", direction: outbound}', 1,
     "listeners.0.listen: bad listen address '127.0.0.1': expected HOST:PORT, [IPv6]:PORT "
     "or unix:/path"),
    ("listeners:\n  - {name: o, direction: outbound}", 1,
     'listeners.0.listen: missing (required): must be HOST:PORT, [IPv6]:PORT or unix:/path, '
     'e.g. "127.0.0.1:2525"'),
    # upstream, agency_domains
    ("upstream: 25", 0, "upstream: must be maildir:DIR or smtp://HOST:PORT, e.g. "
                        "maildir:var/mail (got 25)"),
    ("upstream: smtp:relay", 0,
     "upstream: bad upstream 'smtp:relay': expected smtp://HOST:PORT or maildir:DIR"),
    ("agency_domains: anm.gov.my", 0, "agency_domains: must be a list of domains, "
                                      "e.g. [anm.gov.my]"),
    ("agency_domains: []", 0, "agency_domains: must not be empty (must be a list of domains, "
                              "e.g. [anm.gov.my])"),
    ("agency_domains: [anm]", 0,
     "agency_domains: bad domain 'anm': expected a domain such as anm.gov.my"),
    # the lists
    ("relay_network: [127.0.0.0/8]", 0,
     "relay_network: unknown key, did you mean relay_networks?"),
    ("relay_networks: 127.0.0.0/8", 0, 'relay_networks: must be a list of IP addresses or '
                                       'networks, e.g. [127.0.0.0/8, "::1/128"]'),
    ("relay_networks: [127.0.0.300]", 0,
     f"relay_networks: bad IP address or network '127.0.0.300': {NETWORKS}"),
    ("hebahan_senders: hebahan@anm.gov.my", 0,
     "hebahan_senders: must be a list of addresses, e.g. [hebahan@anm.gov.my]"),
    ("hebahan_senders: [hebahan]", 0, "hebahan_senders: bad address 'hebahan': "
                                      "expected local@domain"),
    ("hebahan_relays: 10.1.2.3", 0,
     "hebahan_relays: must be a list of IP addresses or networks, e.g. [10.1.2.3]"),
    ("hebahan_relays: [x]", 0, f"hebahan_relays: bad IP address or network 'x': {NETWORKS}"),
    ("classification_headers: X-Classification", 0, "classification_headers: must be a list "
     "of header names, e.g. [X-Classification, X-Pengelasan]"),
    # scalars
    ("authentication_results: maybe", 0,
     "authentication_results: must be true or false (got 'maybe')"),
    ("rules_dir: [rules]", 0, "rules_dir: must be a directory, e.g. rules"),
    ("rejection_log: {path: x}", 0,
     "rejection_log: must be a file name, e.g. var/log/rejections.jsonl"),
    ("hostname: [a]", 0, "hostname: must be a host name, e.g. gw.anm.gov.my"),
    ("workers: many", 0, "workers: bad value 'many': expected a number of processes from 1 "
                         "to 256, or auto (one per CPU)"),
    # dns
    ("dns: 127.0.0.1", 0,
     "dns: must be a mapping, e.g. {nameservers: [127.0.0.1], port: 53, timeout: 2}"),
    ("dns: {nameservers: 127.0.0.1}", 0,
     "dns.nameservers: must be a list of IP addresses, e.g. [127.0.0.1]"),
    ("dns: {port: 99999}", 0, "dns.port: must be a port number from 1 to 65535, e.g. 53 "
                              "(got 99999)"),
    ("dns: {timeout: 0}", 0, "dns.timeout: must be a number of seconds above 0, e.g. 2 (got 0)"),
    ("dns: {nameserver: [127.0.0.1]}", 0,
     "dns.nameserver: unknown key, did you mean dns.nameservers?"),
    # limits
    ("limits: 10", 0, "limits: must be a mapping of limits, e.g. {max_recipients: 1000}"),
    ("limits: {max_recipients: lots}", 0, "limits.max_recipients: must be a whole number of "
                                          "at least 1, e.g. 1000 (got 'lots')"),
    ("limits: {max_bad_commands: 0}", 0, "limits.max_bad_commands: must be a whole number of "
                                         "at least 1, e.g. 10 (got 0)"),
    ("limits: {session_timout: 60}", 0,
     "limits.session_timout: unknown key, did you mean limits.session_timeout?"),
    ("limits: {session_timeout: 0}", 0, "limits.session_timeout: must be a number of seconds "
                                        "above 0, e.g. 300 (got 0)"),
    ("limits: {bare_newlines: drop}", 0,
     "limits.bare_newlines: must be reject or normalize (got 'drop')"),
    ("limits: {max_message_size: big}", 0, "limits.max_message_size: bad size 'big': expected "
     "a number with an optional unit (B, KB, MB, GB), e.g. 25MB"),
    ("limits: {spool_dir: [a]}", 0, "limits.spool_dir: must be a directory, "
                                    "e.g. /var/spool/gateway"),
    ("limits: {upstream_timeout: 400}", 0,
     "limits: upstream_timeout (400s) must be shorter than session_timeout (300s)"),
    # tls
    ("tls: yes", 0, "tls: must be a mapping, e.g. {cert: config/tls/gateway.crt, "
                    "key: config/tls/gateway.key}"),
    ("tls: {require_starttls: maybe}", 0,
     "tls.require_starttls: must be true or false (got 'maybe')"),
    ("tls: {upstream: {mode: always}}", 0,
     "tls.upstream.mode: must be none, opportunistic or required (got 'always')"),
    ("tls: {upstream: {verfy: false}}", 0,
     "tls.upstream.verfy: unknown key, did you mean tls.upstream.verify?"),
    # metrics
    ("metrics: 9125", 0, 'metrics: must be a mapping, e.g. {listen: "127.0.0.1:9125"}'),
    ("metrics: {listen: 9125}", 0,
     'metrics.listen: must be HOST:PORT, e.g. "127.0.0.1:9125" (got 9125)'),
    ("metrics: {port: 9125}", 0, "metrics.port: unknown key (known keys here: listen)"),
]


def key_of(text: str) -> str:
    return text.split(":", 1)[0]


@pytest.mark.parametrize(("text", "offset", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_gives_one_plain_line(tmp_path: Path, text: str, offset: int,
                                         message: str) -> None:
    lines = "\n".join(v for k, v in BASE.items() if k != key_of(text)).splitlines()
    path = tmp_path / "gateway.yaml"
    path.write_text("\n".join([*lines, text]) + "\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == \
        [f"{path}:{len(lines) + 1 + offset}: {message}"]


def test_missing_required_key_says_what_it_must_be(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(BASE["listeners"] + "\n" + BASE["agency_domains"] + "\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:1: upstream: missing (required): must be maildir:DIR or smtp://HOST:PORT, "
        "e.g. maildir:var/mail"]


def test_unknown_top_level_key_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("\n".join(BASE.values()) + "\nfrobnicate: 1\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.line == 5
    assert problem.message.startswith("frobnicate: unknown key (known keys here: "
                                      "agency_domains, antivirus, authentication_results, ")


def test_several_problems_one_line_each_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("\n".join(BASE.values()) + "\nrelay_network: []\ndns: {port: 0}\n"
                    "limits: {max_recipients: x}\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_config(path)
    assert [(p.line, p.message.split(":")[0]) for p in info.value.problems] == \
        [(5, "relay_network"), (6, "dns.port"), (7, "limits.max_recipients")]


def test_no_pydantic_words_for_any_case(tmp_path: Path) -> None:
    for text, _, _ in CASES:
        lines = "\n".join(v for k, v in BASE.items() if k != key_of(text)).splitlines()
        path = tmp_path / "gateway.yaml"
        path.write_text("\n".join([*lines, text]) + "\n", encoding="utf-8")
        with pytest.raises(LoadError) as info:
            load_config(path)
        for p in info.value.problems:
            for word in ("Input should", "Extra inputs", "Field required", "valid tuple",
                         "Value error", "after validation"):
                assert word not in p.message, (text, p.message)
