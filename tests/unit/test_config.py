"""The shipped config, and config files refused with FILE:LINE problems."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.problems import LoadError

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
listeners:
  - {name: outbound, listen: "127.0.0.1:2525", direction: outbound}
  - {name: inbound, listen: "127.0.0.1:2526", direction: inbound}
upstream: "maildir:var/mail"
agency_domains: [anm.gov.my]
relay_networks: [127.0.0.0/8]
"""


def problems(tmp_path: Path, text: str) -> list[tuple[str, int, str]]:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_config(path)
    return [(p.file, p.line, p.message) for p in info.value.problems]


def test_shipped_config_is_the_contract_example() -> None:
    c = load_config(REPO / "config" / "gateway.yaml")
    assert [(x.name, x.listen, x.direction, x.mode) for x in c.listeners] == [
        ("outbound", "127.0.0.1:2525", "outbound", "smtp"),
        ("inbound", "127.0.0.1:2526", "inbound", "smtp")]
    assert c.upstream == "maildir:var/mail"
    assert c.upstream_target.kind == "maildir"
    assert c.agency_domains == ("anm.gov.my",)
    assert c.relay_networks == (ipaddress.ip_network("127.0.0.0/8"),
                                ipaddress.ip_network("::1/128"))
    assert c.hebahan_senders == ("hebahan@anm.gov.my",)
    assert c.rules_dir == Path("rules")
    assert c.rejection_log == Path("var/log/rejections.jsonl")
    assert c.dns.nameservers == ("127.0.0.1",) and c.dns.port == 53 and c.dns.timeout == 2


def test_good_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(GOOD)
    assert load_config(path).listeners[1].address.port == 2526


def test_unknown_key(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "rule_dir: rules\n")
    assert found == [(str(tmp_path / "gateway.yaml"), 7,
                      "rule_dir: unknown key, did you mean rules_dir?")]


def test_unknown_nested_key(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "dns:\n  nameserver: [127.0.0.1]\n")
    assert [(line, "unknown key" in msg) for _, line, msg in found] == [(8, True)]


@pytest.mark.parametrize("listen", ["127.0.0.1", "localhost:port", "127.0.0.1:99999", "[::1"])
def test_bad_listen(tmp_path: Path, listen: str) -> None:
    text = GOOD.replace('listen: "127.0.0.1:2526"', f'listen: "{listen}"')
    found = problems(tmp_path, text)
    assert len(found) == 1
    file, line, msg = found[0]
    assert (file, line) == (str(tmp_path / "gateway.yaml"), 3)
    assert msg.startswith("listeners.1.listen:")


@pytest.mark.parametrize("upstream", ["smtp:/host:25", "maildir:", "lmtp://x:24", "smtp://h:0"])
def test_bad_upstream(tmp_path: Path, upstream: str) -> None:
    found = problems(tmp_path, GOOD.replace('"maildir:var/mail"', f'"{upstream}"'))
    assert len(found) == 1
    file, line, msg = found[0]
    assert (file, line) == (str(tmp_path / "gateway.yaml"), 4)
    assert msg.startswith("upstream:")


def test_missing_required_key(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("agency_domains: [anm.gov.my]\n", ""))
    assert len(found) == 1 and "agency_domains" in found[0][2]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD + "dns: {port: 53\n")
    assert len(found) == 1
    assert found[0][1] >= 7 and "YAML" in found[0][2]


def test_several_problems_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('"maildir:var/mail"', '"ftp://x"') + "bogus: 1\n"
    lines = sorted(line for _, line, _ in problems(tmp_path, text))
    assert lines == [4, 7]
