"""Every case of the RFC 7208 test suite against gateway.auth.spf.check_host().

The suite's zone data is served by a real DNS server on loopback (one per scenario);
TIMEOUT entries are queries the server leaves unanswered, so the resolver here has a
short timeout. A case passes when our result is any of the results the suite accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.auth.resolver import Resolver
from gateway.auth.spf import check_host, identity
from tests.support.dns_server import DnsServer, zone_from_rfc7208

SUITE = Path(__file__).resolve().parents[1] / "corpus" / "spf" / "rfc7208-tests.yml"
SCENARIOS: list[dict[str, Any]] = list(yaml.safe_load_all(SUITE.read_text(encoding="utf-8")))

# Cases that cannot pass, each with the reason (exact case ids).
XFAIL: dict[str, str] = {}

CASES = [
    pytest.param(index, name, id=name,
                 marks=[pytest.mark.xfail(reason=XFAIL[name], strict=True)]
                 if name in XFAIL else [])
    for index, scenario in enumerate(SCENARIOS)
    for name in scenario["tests"]
]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[int, DnsServer]]:
    started: dict[int, DnsServer] = {}
    yield started
    for server in started.values():
        server.stop()


def test_suite_is_whole() -> None:
    assert len(CASES) == 203  # the 2014.04 release; a truncated copy must not pass


@pytest.mark.parametrize(("index", "name"), CASES)
def test_rfc7208_case(servers: dict[int, DnsServer], index: int, name: str) -> None:
    scenario = SCENARIOS[index]
    if index not in servers:
        servers[index] = DnsServer(zone_from_rfc7208(scenario["zonedata"])).start()
    case = scenario["tests"][name]
    resolver = Resolver(("127.0.0.1",), servers[index].port, timeout=0.3)
    domain, sender = identity(case["mailfrom"], case["helo"])
    result = check_host(case["host"], domain, sender, case["helo"], resolver)
    expected = case["result"] if isinstance(case["result"], list) else [case["result"]]
    assert result.result in expected, f"{case.get('description', '')} ({result.reason})"
