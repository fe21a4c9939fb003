"""Metrics and health: known traffic through a real gateway (proxy and milter front ends),
then /metrics scraped over HTTP.

Counts are compared exactly; /healthz is 200 while the upstream answers and 503 once it
is gone; a reload changes the rules_info version.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml

from gateway.frontends.milter import protocol as p
from gateway.policy.relay_control import RELAY_ACCESS, RELAY_SENDER
from gateway.policy_state import load_policy
from gateway.problems import LoadError
from gateway.service import Gateway

from .milter_client import MilterClient, Outcome
from .support import SIZE_RULE, FakeUpstream, client, in_thread, message, write_config

MONITOR_RULE = SIZE_RULE + """
  - id: pantau-subjek
    description: "Subjek dipantau"
    reference: "PPPA test 3"
    direction: both
    mode: monitor
    when: {subject_matches: "PANTAU"}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Dipantau.", en: "Monitored."}}
"""


async def http_get(addr: tuple[str, int], path: str) -> tuple[int, str]:
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(*addr)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read()
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet."""
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    return 0.0


def send(addr: tuple[str, int], sender: str, subject: str = "Ujian") -> int:
    s = client(addr)
    try:
        code = s.mail(sender)[0]
        if code != 250:
            return code
        s.rcpt("b@example.com")
        return s.data(message(subject=subject, sender=sender))[0]
    finally:
        s.close()


async def test_metrics_count_known_traffic(tmp_path: Path, upstream: FakeUpstream) -> None:
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                        rules=MONITOR_RULE)
    config = yaml.safe_load(path.read_text())
    config["metrics"] = {"listen": "127.0.0.1:0"}
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        assert gateway.metrics_server is not None and gateway.metrics_server.address
        http = gateway.metrics_server.address
        out = gateway.address("outbound")
        # Nothing has reached the upstream yet: health is decided by a probe.
        assert (await http_get(http, "/healthz")) == (200, "ready\n")

        for _ in range(3):
            assert await in_thread(lambda: send(out, "a@anm.gov.my")) == 250
        for _ in range(2):
            assert await in_thread(lambda: send(out, "x@blocked.anm.gov.my")) == 550
        assert await in_thread(lambda: send(out, "a@anm.gov.my", "PANTAU ini")) == 250

        held = await in_thread(lambda: client(out))
        try:
            status, text = await http_get(http, "/metrics")
            assert status == 200
            assert sample(text, "gateway_sessions_in_flight") == 1
        finally:
            await in_thread(held.close)
        assert sample(text, "gateway_messages_total", direction="outbound",
                      verdict="relayed") == 4
        assert sample(text, "gateway_messages_total", direction="outbound",
                      verdict="reject") == 2
        assert sample(text, "gateway_messages_total", direction="outbound",
                      verdict="tempfail") == 0
        assert sample(text, "gateway_rule_hits_total", rule_id="penghantar-dilarang",
                      mode="enforce") == 2
        assert sample(text, "gateway_rule_hits_total", rule_id="pantau-subjek",
                      mode="monitor") == 1
        assert sample(text, "gateway_inspection_seconds_count") == 6
        assert sample(text, "gateway_relay_seconds_count") == 4
        assert sample(text, "gateway_bytes_total", direction="outbound") > 0
        assert sample(text, "gateway_upstream_errors_total", kind="unreachable") == 0
        assert (await http_get(http, "/healthz")) == (200, "ready\n")
        version = gateway.policy.rules.version
        assert sample(text, "gateway_rules_info", version=version) == 1

        await upstream.stop()
        assert upstream._server is not None
        await upstream._server.wait_closed()
        with_down = await in_thread(lambda: send(out, "a@anm.gov.my"))
        assert with_down == 451
        status, text = await http_get(http, "/metrics")
        assert sample(text, "gateway_messages_total", direction="outbound",
                      verdict="tempfail") == 1
        assert sample(text, "gateway_upstream_errors_total", kind="unreachable") == 1
        status, body = await http_get(http, "/healthz")
        assert status == 503 and body.startswith("not ready: upstream unreachable")

        (tmp_path / "rules" / "10-test.yaml").write_text(SIZE_RULE)
        assert await gateway.reload(path)
        assert gateway.policy.rules.version != version
        status, text = await http_get(http, "/metrics")
        assert sample(text, "gateway_rules_info", version=gateway.policy.rules.version) == 1
        assert sample(text, "gateway_rules_info", version=version) == 0
        assert (await http_get(http, "/nothing"))[0] == 404
    finally:
        await gateway.stop(drain_timeout=1.0)


def test_metrics_refused_with_several_workers(tmp_path: Path) -> None:
    path = write_config(tmp_path, upstream="smtp://127.0.0.1:25", port=2525)
    config = yaml.safe_load(path.read_text())
    config["listeners"] = config["listeners"][:1]
    config.update(workers=2, metrics={"listen": "127.0.0.1:9125"})
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(LoadError) as caught:
        load_policy(path)
    assert any("metrics needs workers: 1" in str(p) for p in caught.value.problems)



async def test_milter_counts_known_traffic(tmp_path: Path) -> None:
    """The milter front end counts what it tells the MTA, like the proxy does."""
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules=MONITOR_RULE)
    config = yaml.safe_load(path.read_text())
    config["listeners"] = [{"name": "milter", "listen": "127.0.0.1:0",
                            "direction": "inbound", "mode": "milter"}]
    config["metrics"] = {"listen": "127.0.0.1:0"}
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        assert gateway.metrics_server is not None and gateway.metrics_server.address
        http = gateway.metrics_server.address
        where = gateway.address("milter")

        async def one(client_ip: str, sender: str, rcpt: str, subject: str = "Ujian"
                      ) -> Outcome:
            c = await MilterClient.open(where)
            try:
                await c.connect(client_ip)
                return await c.message(message(subject=subject, sender=sender), sender,
                                       [rcpt])
            finally:
                await c.close()

        # From relay_networks: outbound by the client address.
        for _ in range(3):
            outcome = await one("127.0.0.1", "a@anm.gov.my", "b@example.com")
            assert (outcome.stage, type(outcome.final)) == ("eob", p.Continue)
        for _ in range(2):
            outcome = await one("127.0.0.1", "x@blocked.anm.gov.my", "b@example.com")
            assert outcome.stage == "eob" and outcome.text.startswith("550")
        outcome = await one("127.0.0.1", "a@anm.gov.my", "b@example.com", "PANTAU ini")
        assert (outcome.stage, type(outcome.final)) == ("eob", p.Continue)
        # Envelope refusals: an outbound non-agency sender at MAIL, an inbound
        # recipient outside the agency at RCPT.
        outcome = await one("127.0.0.1", "x@example.com", "b@example.com")
        assert outcome.stage == "mail" and outcome.text.startswith("550")
        outcome = await one("192.0.2.10", "x@example.com", "x@gmail.com")
        assert outcome.stage == "rcpt" and outcome.text.startswith("554")
        # Inbound and clean.
        outcome = await one("192.0.2.10", "x@example.com", "b@anm.gov.my")
        assert (outcome.stage, type(outcome.final)) == ("eob", p.Continue)

        status, text = await http_get(http, "/metrics")
        assert status == 200
        assert sample(text, "gateway_messages_total", direction="outbound",
                      verdict="relayed") == 4
        assert sample(text, "gateway_messages_total", direction="outbound",
                      verdict="reject") == 3
        assert sample(text, "gateway_messages_total", direction="inbound",
                      verdict="reject") == 1
        assert sample(text, "gateway_messages_total", direction="inbound",
                      verdict="relayed") == 1
        for direction in ("inbound", "outbound"):
            assert sample(text, "gateway_messages_total", direction=direction,
                          verdict="tempfail") == 0
        assert sample(text, "gateway_rule_hits_total", rule_id="penghantar-dilarang",
                      mode="enforce") == 2
        assert sample(text, "gateway_rule_hits_total", rule_id="pantau-subjek",
                      mode="monitor") == 1
        assert sample(text, "gateway_rule_hits_total", rule_id=RELAY_SENDER,
                      mode="enforce") == 1
        assert sample(text, "gateway_rule_hits_total", rule_id=RELAY_ACCESS,
                      mode="enforce") == 1
        assert sample(text, "gateway_inspection_seconds_count") == 7
        assert sample(text, "gateway_relay_seconds_count") == 0
        assert sample(text, "gateway_bytes_total", direction="outbound") > 0
        assert sample(text, "gateway_bytes_total", direction="inbound") > 0
    finally:
        await gateway.stop(drain_timeout=1.0)
