"""The milter front end behind a real Postfix: a private instance (tests/integration/
postfix_support.py) with `smtpd_milters` pointing at the gateway's milter listener and
`relayhost` at a FakeUpstream, the SHIPPED rules, and smtplib as the client.

The gateway's `relay_networks` is only 127.0.0.5: a client connecting from 127.0.0.1
is inbound (the milter listener's direction), one bound to 127.0.0.5 is outbound.
Each case checks what the client was told and what reached the upstream.
"""

from __future__ import annotations

import asyncio
import shutil
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

from .postfix_support import Postfix, available, free_port, instance_dir
from .support import CLIENT_TIMEOUT, FakeUpstream, GatewayHandle, message, write_config

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

REPO = Path(__file__).resolve().parents[2]
DELIVERY_WAIT = 30.0


@pytest.fixture
async def setup(tmp_path: Path, upstream: FakeUpstream
                ) -> AsyncIterator[tuple[GatewayHandle, Postfix]]:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules="rules: []",
                        relay_networks=["127.0.0.5/32"],
                        limits={"max_message_size": "300KB"})
    for rule_file in (REPO / "rules").glob("*.yaml"):
        shutil.copy(rule_file, tmp_path / "rules" / rule_file.name)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"] = [{"name": "milter", "listen": "127.0.0.1:0",
                            "direction": "inbound", "mode": "milter"}]
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    host, port = gateway.address("milter")
    base = instance_dir()
    postfix = Postfix(base, free_port(), ("127.0.0.1", upstream.port), f"inet:{host}:{port}")
    try:
        await asyncio.wait_for(asyncio.to_thread(postfix.start), 60)
        yield GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl"), postfix
    finally:
        try:
            await asyncio.wait_for(asyncio.to_thread(postfix.stop), 60)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            await gateway.stop(drain_timeout=1.0)


def submit(port: int, msg: bytes, sender: str, rcpts: list[str],
           source: str = "127.0.0.1") -> tuple[int, str]:
    """One transaction through Postfix: (code, reply text) of the first refusal or of DATA."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=CLIENT_TIMEOUT * 3,
                     source_address=(source, 0))
    try:
        s.ehlo("client.test")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode()
        for rcpt in rcpts:
            code, text = s.rcpt(rcpt)
            if code not in (250, 251):
                return code, text.decode()
        code, text = s.data(msg)
        return code, text.decode()
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


async def through(postfix: Postfix, msg: bytes, sender: str, rcpts: list[str],
                  source: str = "127.0.0.1", port: int | None = None) -> tuple[int, str]:
    """`submit` off the event loop, bounded; to `port` or the instance's first smtpd."""
    return await asyncio.wait_for(
        asyncio.to_thread(submit, port or postfix.port, msg, sender, rcpts, source), 60)


async def delivered(upstream: FakeUpstream, count: int, postfix: Postfix) -> None:
    """Wait (bounded) until the upstream holds `count` messages."""
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while len(upstream.messages) < count:
        assert asyncio.get_running_loop().time() < deadline, \
            f"{len(upstream.messages)} of {count} delivered{postfix.log()}"
        await asyncio.sleep(0.1)


async def test_shipped_rules_through_postfix(
        setup: tuple[GatewayHandle, Postfix], upstream: FakeUpstream) -> None:
    gw, postfix = setup
    # Clean inbound mail passes unchanged (apart from Postfix's own Received).
    code, _ = await through(postfix, message(subject="Mesyuarat biasa", sender="a@example.com"),
                            "a@example.com", ["b@anm.gov.my"])
    assert code == 250, postfix.log()
    await delivered(upstream, 1, postfix)
    assert b"Subject: Mesyuarat biasa\r\n" in upstream.messages[0].data

    # RAHSIA: the client hears the gateway's bilingual reply through Postfix.
    code, text = await through(postfix, message(subject="RAHSIA: Pelan", sender="a@example.com"),
                               "a@example.com", ["b@anm.gov.my"])
    assert code == 550, postfix.log()
    assert "5.7.1 Maklumat bertaraf RAHSIA atau RAHSIA BESAR tidak dibenarkan" in text
    assert "may not be sent or received by e-mail" in text
    assert "rule=klasifikasi-rahsia ref=" in text

    # An announcement from a registered sender, outbound (from relay_networks): tagged.
    code, _ = await through(postfix, message(subject="Notis cuti", sender="hebahan@anm.gov.my"),
                            "hebahan@anm.gov.my", ["semua@example.com"], source="127.0.0.5")
    assert code == 250, postfix.log()
    await delivered(upstream, 2, postfix)
    tagged = upstream.messages[1]
    assert tagged.rcpt_to == ["semua@example.com"]
    assert b"Subject: [HEBAHAN JANM] Notis cuti\r\n" in tagged.data

    # A folded Subject: the header events carry the fold, and the change keeps it.
    code, _ = await through(postfix, message(subject="Notis\r\n cuti panjang",
                                             sender="hebahan@anm.gov.my"),
                            "hebahan@anm.gov.my", ["semua@example.com"], source="127.0.0.5")
    assert code == 250, postfix.log()
    await delivered(upstream, 3, postfix)
    assert b"Subject: [HEBAHAN JANM] Notis\r\n cuti panjang\r\n" in upstream.messages[2].data

    # Claiming the tag without being a registered sender: refused.
    code, text = await through(
        postfix, message(subject="[HEBAHAN JANM] Palsu", sender="a@anm.gov.my"),
        "a@anm.gov.my", ["semua@example.com"], source="127.0.0.5")
    assert code == 550, postfix.log()
    assert "rule=hebahan-tag-palsu" in text

    # Relay control at RCPT: inbound mail for a domain that is not the agency's.
    code, text = await through(postfix, message(sender="a@example.com"), "a@example.com",
                               ["x@gmail.com"])
    assert code == 554, postfix.log()
    assert "Relay access denied." in text and "rule=relay-access" in text

    # Over the maximum size: 552 5.3.4 while the body streams.
    body = (b"x" * 998 + b"\r\n") * 400
    code, text = await through(postfix, message(body=body, sender="a@example.com"),
                               "a@example.com", ["b@anm.gov.my"])
    assert code == 552, postfix.log()
    assert "rule=saiz-maksimum" in text

    # Nothing refused reached the upstream; the log names every refusal.
    await asyncio.sleep(0.5)
    assert len(upstream.messages) == 3
    rules = [r["rule_id"] for r in gw.records() if r["event"] == "reject"]
    assert rules == ["klasifikasi-rahsia", "hebahan-tag-palsu", "relay-access",
                     "saiz-maksimum"]


async def test_gateway_down_means_tempfail(
        setup: tuple[GatewayHandle, Postfix], upstream: FakeUpstream) -> None:
    gw, postfix = setup
    await gw.gateway.stop(drain_timeout=1.0)
    code, text = await through(postfix, message(sender="a@example.com"), "a@example.com",
                               ["b@anm.gov.my"])
    # milter_default_action = tempfail: nothing passes uninspected.
    assert 400 <= code < 500, (code, text)
    await asyncio.sleep(0.5)
    assert upstream.messages == []


# -- the same shipped rules as a before-queue proxy: Postfix smtpd_proxy_filter ----------


@pytest.fixture
async def proxy_setup(tmp_path: Path, upstream: FakeUpstream
                      ) -> AsyncIterator[tuple[GatewayHandle, Postfix, int]]:
    """Postfix's smtpd on two ports hands every transaction to the gateway's inbound or
    outbound listener (smtpd_proxy_filter, as the README shows); the gateway relays what
    it accepts to Postfix's re-injection smtpd, which queues it for the upstream."""
    reinject = free_port()
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{reinject}", rules="rules: []",
                        limits={"max_message_size": "300KB", "upstream_timeout": 20.0,
                                "upstream_connect_timeout": 5.0})
    for rule_file in (REPO / "rules").glob("*.yaml"):
        shutil.copy(rule_file, tmp_path / "rules" / rule_file.name)
    gateway = Gateway(load_policy(path))
    await gateway.start()
    handle = GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")
    inbound, outbound = free_port(), free_port()
    services = "\n".join([
        f"127.0.0.1:{inbound} inet n - n - - smtpd",
        f"  -o smtpd_proxy_filter=127.0.0.1:{handle.inbound[1]}",
        "  -o smtpd_proxy_timeout=30s",
        f"127.0.0.1:{outbound} inet n - n - - smtpd",
        f"  -o smtpd_proxy_filter=127.0.0.1:{handle.outbound[1]}",
        "  -o smtpd_proxy_timeout=30s",
        f"127.0.0.1:{reinject} inet n - n - - smtpd",
        "  -o smtpd_authorized_xforward_hosts=127.0.0.0/8",
        "  -o smtpd_client_restrictions=",
        "  -o smtpd_recipient_restrictions=permit_mynetworks,reject",
        "  -o mynetworks=127.0.0.0/8",
        "  -o receive_override_options=no_unknown_recipient_checks",
    ])
    base = instance_dir()
    postfix = Postfix(base, inbound, ("127.0.0.1", upstream.port), None, services=services)
    try:
        await asyncio.wait_for(asyncio.to_thread(postfix.start), 60)
        yield handle, postfix, outbound
    finally:
        try:
            await asyncio.wait_for(asyncio.to_thread(postfix.stop), 60)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            await gateway.stop(drain_timeout=1.0)


async def test_shipped_rules_as_smtpd_proxy_filter(
        proxy_setup: tuple[GatewayHandle, Postfix, int], upstream: FakeUpstream) -> None:
    gw, postfix, outbound = proxy_setup
    code, _ = await through(postfix, message(subject="Mesyuarat biasa", sender="a@example.com"),
                            "a@example.com", ["b@anm.gov.my"])
    assert code == 250, postfix.log()
    await delivered(upstream, 1, postfix)
    assert b"Subject: Mesyuarat biasa\r\n" in upstream.messages[0].data

    code, text = await through(postfix, message(subject="RAHSIA: Pelan", sender="a@example.com"),
                               "a@example.com", ["b@anm.gov.my"])
    assert code == 550, postfix.log()
    assert "Maklumat bertaraf RAHSIA atau RAHSIA BESAR tidak dibenarkan" in text
    assert "rule=klasifikasi-rahsia ref=" in text

    # The outbound service: an announcement is tagged by the gateway before Postfix queues it.
    code, _ = await through(postfix, message(subject="Notis cuti", sender="hebahan@anm.gov.my"),
                            "hebahan@anm.gov.my", ["semua@example.com"], port=outbound)
    assert code == 250, postfix.log()
    await delivered(upstream, 2, postfix)
    assert b"Subject: [HEBAHAN JANM] Notis cuti\r\n" in upstream.messages[1].data

    body = (b"x" * 998 + b"\r\n") * 400
    code, text = await through(postfix, message(body=body, sender="a@example.com"),
                               "a@example.com", ["b@anm.gov.my"])
    assert code == 552, postfix.log()
    assert "rule=saiz-maksimum" in text
    await asyncio.sleep(0.5)
    assert len(upstream.messages) == 2
    rules = [r["rule_id"] for r in gw.records() if r["event"] == "reject"]
    assert rules == ["klasifikasi-rahsia", "saiz-maksimum"]
