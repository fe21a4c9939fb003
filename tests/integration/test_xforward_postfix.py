"""The real client behind Postfix's smtpd_proxy_filter: XFORWARD, a real Postfix, real DNS.

One private Postfix instance (tests/integration/postfix_support.py) runs the README's
before-queue set-up several times over: smtpd services whose `smtpd_proxy_filter` is
a gateway's inbound or outbound listener, one smtpd whose `smtpd_milters` is the
gateway's milter listener, and the re-injection smtpd the gateway relays to (it
authorises XFORWARD, so it learns the client from the gateway in turn). dnsmasq
serves SPF for anm.gov.my that allows only 127.0.0.9, the address the test's client
connects from, so SPF passes only when the gateway sees the ORIGINAL client.

Two gateways: one trusts Postfix (`xforward_peers: [127.0.0.1/32]`), one does not (the
default), to show that without XFORWARD the same announcement fails SPF.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway
from tests.support.dnsmasq import Dnsmasq

from .postfix_support import Postfix, available, free_port, instance_dir
from .support import CLIENT_TIMEOUT, FakeUpstream, GatewayHandle, message

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

REPO = Path(__file__).resolve().parents[2]
CLIENT = "127.0.0.9"  # the original client: the only address anm.gov.my's SPF allows
CLIENT_HELO = "mx.pengirim.test"
POSTFIX_HELO = "mx.postfix.test"  # Postfix's myhostname, its EHLO to the proxy filter
RELAY_CLIENT = "127.0.0.5"  # the gateway's relay_networks
OUTSIDER = "127.0.0.7"  # an internal address outside relay_networks
FORGER = "127.0.0.2"  # not allowed by anm.gov.my's SPF
BLOCKED = "127.0.0.11"  # refused by a `client_ip` rule
BLOCKED_RULE = f"""
rules:
  - id: klien-disekat
    description: "Pelanggan yang disekat"
    reference: "ujian xforward"
    direction: inbound
    when: {{client_ip: ["{BLOCKED}/32"]}}
    action: reject
    reply:
      code: 550
      enhanced: "5.7.1"
      text: {{ms: "Pelanggan disekat.", en: "Client blocked."}}
"""
ZONE: dict[str, list[str]] = {
    "anm.gov.my": [f"v=spf1 ip4:{CLIENT} -all"],
    "_dmarc.anm.gov.my": ["v=DMARC1; p=reject"],
}
DELIVERY_WAIT = 30.0


@dataclass
class Setup:
    trusting: GatewayHandle  # xforward_peers: [127.0.0.1/32]
    plain: GatewayHandle  # no xforward_peers
    postfix: Postfix
    ports: dict[str, int]  # Postfix smtpd services by name


async def start_gateway(tmp: Path, reinject: int, dns_port: int, *, xforward: bool
                        ) -> GatewayHandle:
    rules = tmp / "rules"
    shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))
    (rules / "00-klien-disekat.yaml").write_text(BLOCKED_RULE)
    config: dict[str, Any] = {
        "listeners": [
            {"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"},
            {"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"},
            {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound",
             "mode": "milter"},
        ],
        "upstream": f"smtp://127.0.0.1:{reinject}",
        "agency_domains": ["anm.gov.my"],
        "relay_networks": [f"{RELAY_CLIENT}/32"],
        "hebahan_senders": ["hebahan@anm.gov.my"],
        "rules_dir": str(rules),
        "rejection_log": str(tmp / "rejections.jsonl"),
        "hostname": "gw.anm.gov.my",
        "dns": {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": 1.0},
        "limits": {"upstream_connect_timeout": 5.0, "upstream_timeout": 20.0,
                   "inspection_timeout": 10.0},
    }
    if xforward:
        config["xforward_peers"] = ["127.0.0.1/32"]
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    return GatewayHandle(gateway, tmp, tmp / "rejections.jsonl")


def services(ports: dict[str, int], trusting: GatewayHandle, plain: GatewayHandle) -> str:
    def proxied(name: str, target: tuple[str, int]) -> list[str]:
        return [f"127.0.0.1:{ports[name]} inet n - n - - smtpd",
                f"  -o smtpd_proxy_filter=127.0.0.1:{target[1]}",
                "  -o smtpd_proxy_timeout=30s"]
    milter = trusting.gateway.address("milter")
    return "\n".join([
        *proxied("inbound", trusting.inbound),
        *proxied("outbound", trusting.outbound),
        *proxied("inbound_plain", plain.inbound),
        f"127.0.0.1:{ports['milter']} inet n - n - - smtpd",
        f"  -o smtpd_milters=inet:127.0.0.1:{milter[1]}",
        "  -o milter_default_action=tempfail",
        "  -o milter_protocol=6",
        # The README's re-injection listener.
        f"127.0.0.1:{ports['reinject']} inet n - n - - smtpd",
        "  -o smtpd_authorized_xforward_hosts=127.0.0.0/8",
        "  -o smtpd_client_restrictions=",
        "  -o smtpd_recipient_restrictions=permit_mynetworks,reject",
        "  -o mynetworks=127.0.0.0/8",
        "  -o receive_override_options=no_unknown_recipient_checks",
    ])


@pytest.fixture
async def setup(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Setup]:
    ports = {name: free_port()
             for name in ("inbound", "outbound", "inbound_plain", "milter", "reinject")}
    started: list[GatewayHandle] = []
    base = instance_dir()
    postfix: Postfix | None = None
    with Dnsmasq(txt=ZONE, local=("gov.my", "test")) as dns:
        try:
            for name, xforward in (("trusting", True), ("plain", False)):
                (tmp_path / name).mkdir()
                started.append(await start_gateway(tmp_path / name, ports["reinject"],
                                                   dns.port, xforward=xforward))
            trusting, plain = started
            postfix = Postfix(base, ports["inbound"], ("127.0.0.1", upstream.port), None,
                              services=services(ports, trusting, plain))
            await asyncio.wait_for(asyncio.to_thread(postfix.start), 60)
            yield Setup(trusting, plain, postfix, ports)
        finally:
            try:
                if postfix is not None:
                    await asyncio.wait_for(asyncio.to_thread(postfix.stop), 60)
            finally:
                shutil.rmtree(base, ignore_errors=True)
                for handle in started:
                    await handle.gateway.stop(drain_timeout=1.0)


def submit(port: int, msg: bytes, sender: str, rcpt: str, source: str) -> tuple[int, str]:
    """One transaction to 127.0.0.1:`port` from `source`: the first refusal or DATA's reply."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=CLIENT_TIMEOUT * 4,
                     source_address=(source, 0))
    try:
        s.ehlo(CLIENT_HELO)
        for code, text in (s.mail(sender), s.rcpt(rcpt)):
            if code not in (250, 251):
                return code, text.decode()
        code, text = s.data(msg)
        return code, text.decode()
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


async def through(port: int, msg: bytes, sender: str, rcpt: str, source: str
                  ) -> tuple[int, str]:
    return await asyncio.wait_for(
        asyncio.to_thread(submit, port, msg, sender, rcpt, source), 90)


async def delivered(upstream: FakeUpstream, count: int, postfix: Postfix) -> None:
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while len(upstream.messages) < count:
        assert asyncio.get_running_loop().time() < deadline, \
            f"{len(upstream.messages)} of {count} delivered{postfix.log()}"
        await asyncio.sleep(0.1)


def announcement(message_id: str) -> bytes:
    return ("From: Hebahan JANM <hebahan@anm.gov.my>\r\nTo: semua@anm.gov.my\r\n"
            "Subject: Mesyuarat Agung\r\nDate: Mon, 03 Mar 2025 09:00:00 +0800\r\n"
            f"Message-ID: <{message_id}@anm.gov.my>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Tuan/Puan,\r\n\r\nDimaklumkan mesyuarat pada 10 Mac.\r\n").encode()


async def postfix_saw_client(postfix: Postfix, client: str, count: int) -> None:
    """Wait (bounded) until the re-injection smtpd has logged `count` transactions whose
    XFORWARD named `client`: Postfix logs forwarded attributes as `orig_client=` (its
    Received field always names the connection, i.e. the gateway)."""
    pattern = re.compile(r"client=\S+\[127\.0\.0\.1\], "
                         rf"orig_client=\S*\[{re.escape(client)}\]")
    deadline = asyncio.get_running_loop().time() + DELIVERY_WAIT
    while len(pattern.findall(postfix.log_file.read_text(errors="replace"))) < count:
        assert asyncio.get_running_loop().time() < deadline, \
            f"no {count} x orig_client={client} in{postfix.log()}"
        await asyncio.sleep(0.1)


async def test_an_announcement_gets_the_same_verdict_behind_postfix_as_directly(
        setup: Setup, upstream: FakeUpstream) -> None:
    paths = [("proxy filter", setup.ports["inbound"]), ("milter", setup.ports["milter"]),
             ("direct", setup.trusting.inbound[1])]
    for n, (path, port) in enumerate(paths, start=1):
        code, text = await through(port, announcement(f"hebahan-{n}"), "hebahan@anm.gov.my",
                                   "semua@anm.gov.my", CLIENT)
        assert code == 250, (path, code, text, setup.postfix.log())
        await delivered(upstream, n, setup.postfix)
        got = upstream.messages[-1].data
        assert b"Subject: [HEBAHAN JANM] Mesyuarat Agung\r\n" in got, (path, got[:600])
        assert b"spf=pass" in got and b"dmarc=pass" in got, (path, got[:600])
        if path == "direct":
            # The gateway passed the client on to the re-injection smtpd by XFORWARD
            # both times it relayed (the proxy filter path and this one).
            await postfix_saw_client(setup.postfix, CLIENT, 2)
    records = setup.trusting.records()
    assert [(r["event"], r["rule_id"], r["client_ip"], r["helo"], r["auth"]["spf"])
            for r in records] == \
        [("tag", "hebahan-tag-masuk", CLIENT, CLIENT_HELO, "pass")] * 3
    assert setup.plain.records() == []


async def test_refusals_are_the_same_behind_postfix_as_directly(
        setup: Setup, upstream: FakeUpstream) -> None:
    # The forged announcement (SPF fails for 127.0.0.2) and a client a `client_ip` rule
    # blocks get the same refusal through the proxy filter, the milter and directly:
    # only the original client's address, carried by XFORWARD, can decide either.
    paths = [("proxy filter", setup.ports["inbound"]), ("milter", setup.ports["milter"]),
             ("direct", setup.trusting.inbound[1])]
    seen: list[tuple[str, str, int, str]] = []
    for n, (path, port) in enumerate(paths):
        for source, rule in ((FORGER, "hebahan-spf-gagal"), (BLOCKED, "klien-disekat")):
            code, text = await through(port, announcement(f"r-{n}-{rule}"),
                                       "hebahan@anm.gov.my", "semua@anm.gov.my", source)
            seen.append((path, source, code, "rule=" + rule if f"rule={rule} " in text
                         else text))
    assert seen == [(path, source, 550, "rule=" + rule) for path, _ in paths
                    for source, rule in ((FORGER, "hebahan-spf-gagal"),
                                         (BLOCKED, "klien-disekat"))], \
        (seen, setup.postfix.log())
    assert [(r["rule_id"], r["client_ip"], r["helo"]) for r in setup.trusting.records()] == \
        [("hebahan-spf-gagal", FORGER, CLIENT_HELO), ("klien-disekat", BLOCKED, CLIENT_HELO)] * 3
    await asyncio.sleep(0.5)
    assert upstream.messages == []


async def test_without_xforward_peers_the_proxy_filter_hides_the_client(
        setup: Setup, upstream: FakeUpstream) -> None:
    # The same message through the same kind of Postfix service, to a gateway that does
    # not trust Postfix: it sees Postfix's address and EHLO name, and SPF fails.
    code, text = await through(setup.ports["inbound_plain"], announcement("hebahan-x"),
                               "hebahan@anm.gov.my", "semua@anm.gov.my", CLIENT)
    assert code == 550, (code, text, setup.postfix.log())
    assert "rule=hebahan-spf-gagal" in text, text
    record = setup.plain.records()[-1]
    assert (record["rule_id"], record["client_ip"], record["helo"]) == \
        ("hebahan-spf-gagal", "127.0.0.1", POSTFIX_HELO)
    assert record["evidence"]["spf"] == "fail"
    await asyncio.sleep(0.5)
    assert upstream.messages == []


async def test_relay_control_behind_postfix_uses_the_forwarded_address(
        setup: Setup, upstream: FakeUpstream) -> None:
    port = setup.ports["outbound"]
    msg = message(subject="Laporan bulanan", sender="pegawai@anm.gov.my")
    # Postfix lets every loopback client through (mynetworks); the gateway decides on
    # the client Postfix forwards: outside relay_networks is refused...
    code, text = await through(port, msg, "pegawai@anm.gov.my", "rakan@example.com", OUTSIDER)
    assert code == 554 and "rule=relay-access" in text, (code, text, setup.postfix.log())
    record = setup.trusting.records()[-1]
    assert (record["rule_id"], record["client_ip"], record["helo"]) == \
        ("relay-access", OUTSIDER, CLIENT_HELO)
    # ...inside it relays.
    code, text = await through(port, msg, "pegawai@anm.gov.my", "rakan@example.com",
                               RELAY_CLIENT)
    assert code == 250, (code, text, setup.postfix.log())
    await delivered(upstream, 1, setup.postfix)
    assert upstream.messages[0].rcpt_to == ["rakan@example.com"]
    await postfix_saw_client(setup.postfix, RELAY_CLIENT, 1)
