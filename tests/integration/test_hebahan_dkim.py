"""[HEBAHAN JANM] announcements relayed by a forwarder: DKIM decides where SPF cannot.

The SHIPPED rules (rules/40-hebahan.yaml), a real gateway, a real upstream, dnsmasq
serving SPF, DMARC and the DKIM public keys the test makes. A forwarder's hop is the
client 127.0.0.2 (not in anm.gov.my's SPF: SPF fails there); the announcement itself
was signed by anm.gov.my's key before it left JANM. Through the SMTP proxy (store and
forward, and cut-through, which stores and forwards a signed message whose rules reach
sender_auth) and through the milter front end (the message rebuilt from the milter's
header and body events, as Postfix sends them).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.frontends.milter import protocol as p
from gateway.policy_state import load_policy
from gateway.service import Gateway
from tests.support.dkim_signer import SigningKey
from tests.support.dnsmasq import Dnsmasq

from .milter_client import MilterClient
from .support import FakeUpstream, GatewayHandle, in_thread, transaction

REPO = Path(__file__).resolve().parents[2]
RCPT = "semua@anm.gov.my"
FORWARDER = "127.0.0.2"
JANM = SigningKey.rsa("hebahan2025", "anm.gov.my")
JANM_ED = SigningKey.ed25519("ed2025", "anm.gov.my")
LOOKALIKE = SigningKey.rsa("sel", "anm-gov.example")
ZONE_TXT: dict[str, list[str] | list[list[str]]] = {
    "anm.gov.my": ["v=spf1 ip4:127.0.0.1 -all"],
    "_dmarc.anm.gov.my": ["v=DMARC1; p=reject"],
    "anm-gov.example": ["v=spf1 ip4:127.0.0.1 -all"],
    "_dmarc.anm-gov.example": ["v=DMARC1; p=reject"],
    JANM.record_name: [JANM.record],
    JANM_ED.record_name: [JANM_ED.record],
    LOOKALIKE.record_name: [LOOKALIKE.record],
}
Factory = Callable[..., Awaitable[GatewayHandle]]


def announcement(subject: str = "[HEBAHAN JANM] Mesyuarat Agung Tahunan 2025") -> bytes:
    return (f"From: Hebahan JANM <hebahan@anm.gov.my>\r\nTo: {RCPT}\r\nSubject: {subject}\r\n"
            "Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <hebahan-dkim@anm.gov.my>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Tuan/Puan,\r\n\r\nDimaklumkan mesyuarat pada 10 Mac. \u2713\r\n").encode()


def forwarded() -> bytes:
    """Signed at JANM, then a forwarder's Received field on top (unsigned, as it is)."""
    return (b"Received: from mx.anm.gov.my by forwarder.example; Mon, 3 Mar 2025\r\n"
            + JANM.sign(announcement(), canonicalize=(b"relaxed", b"simple")))


FORGED = {
    "no signature": announcement(),
    "body changed after signing": JANM.sign(announcement()).replace(
        b"10 Mac", b"11 Mac, sila klik http://phish.example/"),
    "signed by another domain": LOOKALIKE.sign(announcement()),
}


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with Dnsmasq(txt=ZONE_TXT, local=("gov.my", "example")) as server:
        yield server


@pytest.fixture
async def gateway(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Factory]:
    started: list[Gateway] = []

    async def make(dns_port: int, *, cut_through: bool = False) -> GatewayHandle:
        rules = tmp_path / "rules"
        if not rules.exists():
            shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))
        config: dict[str, Any] = {
            "listeners": [
                {"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"},
                {"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"},
                {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound",
                 "mode": "milter"},
            ],
            "upstream": f"smtp://127.0.0.1:{upstream.port}",
            "cut_through": cut_through,
            "agency_domains": ["anm.gov.my"],
            "relay_networks": ["127.0.0.1/32"],
            "hebahan_senders": ["hebahan@anm.gov.my"],
            "rules_dir": str(rules),
            "rejection_log": str(tmp_path / "rejections.jsonl"),
            "hostname": "gw.anm.gov.my",
            "dns": {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": 0.5},
            "limits": {"upstream_connect_timeout": 1.0, "upstream_timeout": 2.0,
                       "inspection_timeout": 5.0},
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        gw = Gateway(load_policy(path))
        await gw.start()
        started.append(gw)
        return GatewayHandle(gw, tmp_path, tmp_path / "rejections.jsonl")

    yield make
    for gw in started:
        await gw.stop(drain_timeout=1.0)


def send(addr: tuple[str, int], msg: bytes, *, source: str = FORWARDER,
         mail_from: str = "hebahan@anm.gov.my") -> tuple[int, bytes]:
    return transaction(addr, msg, mail_from=mail_from, rcpts=[RCPT],
                       helo="mx.forwarder.example", source=source)


def authentication_results(data: bytes) -> str:
    assert data.startswith(b"Authentication-Results:"), data[:200]
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    field = re.match(r"Authentication-Results:(.*?)\r\n(?![ \t])", head + "\r\n", re.S)
    assert field is not None
    return " ".join(field.group(1).split())


@pytest.mark.parametrize("cut_through", [False, True])
async def test_forwarded_announcement_passes_on_dkim_and_forged_ones_are_refused(
        dnsmasq: Dnsmasq, gateway: Factory, upstream: FakeUpstream,
        cut_through: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    gw = await gateway(dnsmasq.port, cut_through=cut_through)
    msg = forwarded()
    code, text = await in_thread(partial(send, gw.inbound, msg))
    assert code == 250, text
    [relayed] = upstream.messages
    field = authentication_results(relayed.data)
    assert relayed.data.endswith(msg)  # byte for byte under our own field
    assert re.search(r"spf=fail .*smtp\.mailfrom=hebahan@anm\.gov\.my;", field), field
    assert re.search(r"; dkim=pass header\.d=anm\.gov\.my header\.s=hebahan2025 header\.b=",
                     field), field
    assert field.endswith("dmarc=pass (p=reject) header.from=anm.gov.my"), field
    [record] = gw.records()
    assert (record["event"], record["rule_id"]) == ("tag", "hebahan-tag-masuk")
    assert record["auth"]["spf"] == "fail" and record["auth"]["dmarc"] == "pass"
    assert record["auth"]["dkim_aligned"] is True
    assert record["auth"]["dkim"] == [{"result": "pass", "domain": "anm.gov.my",
                                       "selector": "hebahan2025"}]

    for why, forged in FORGED.items():
        code, text = await in_thread(partial(send, gw.inbound, forged))
        assert (code, text[:5]) == (550, b"5.7.1"), (why, code, text)
        assert b"rule=hebahan-spf-gagal" in text, (why, text)
        assert b"DKIM" in text
        record = gw.records()[-1]
        assert record["rule_id"] == "hebahan-spf-gagal", why
        assert record["evidence"]["dkim_aligned"] is False, why
    assert len(upstream.messages) == 1
    # Cut-through: a signed message's authentication needs its body, so each one was
    # stored and forwarded (never relayed with a guessed Authentication-Results): the
    # forwarded one and the two signed forgeries; the unsigned one is decided on its header.
    fallbacks = [r for r in caplog.records if "needs its body" in r.getMessage()]
    assert len(fallbacks) == (3 if cut_through else 0), fallbacks


async def test_ed25519_signed_announcement_passes(dnsmasq: Dnsmasq, gateway: Factory,
                                                  upstream: FakeUpstream) -> None:
    gw = await gateway(dnsmasq.port)
    code, text = await in_thread(partial(send, gw.inbound, JANM_ED.sign(announcement())))
    assert code == 250, text
    assert "dkim=pass header.d=anm.gov.my header.s=ed2025" in \
        authentication_results(upstream.messages[0].data)


async def test_a_key_server_outage_tempfails_the_forwarded_announcement(
        dnsmasq: Dnsmasq, gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await gateway(dnsmasq.port)
    dnsmasq.stop()
    code, text = await in_thread(partial(send, gw.inbound, forwarded()))
    assert code == 451, text
    assert upstream.messages == []
    record = gw.records()[-1]
    assert record["event"] == "tempfail"
    assert record["auth"]["dkim"][0]["result"] == "temperror"


async def test_milter_forwarded_announcement_passes_and_forged_is_refused(
        dnsmasq: Dnsmasq, gateway: Factory) -> None:
    gw = await gateway(dnsmasq.port)
    client = await MilterClient.open(gw.gateway.address("milter"))
    try:
        await client.connect("192.0.2.10", "mx.forwarder.example")
        out = await client.message(forwarded(), "hebahan@anm.gov.my", [RCPT])
        assert out.stage == "eob"
        inserted = [r for r in out.replies if isinstance(r, p.InsertHeader)]
        assert len(inserted) == 1 and inserted[0].name == "Authentication-Results"
        value = " ".join(inserted[0].value.split())
        assert "dkim=pass header.d=anm.gov.my" in value and "dmarc=pass" in value, value
        assert isinstance(out.replies[-1], p.Continue), out.replies
        for why, forged in FORGED.items():
            out = await client.message(forged, "hebahan@anm.gov.my", [RCPT])
            assert out.text.startswith("550-5.7.1"), (why, out.replies)
            assert "rule=hebahan-spf-gagal" in out.text, (why, out.text)
    finally:
        await client.close()
    records = gw.records()
    assert [r["rule_id"] for r in records] == ["hebahan-tag-masuk"] + \
        ["hebahan-spf-gagal"] * len(FORGED)
    assert records[0]["listener"] == "milter" and records[0]["auth"]["dkim_aligned"] is True
