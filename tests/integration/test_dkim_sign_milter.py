"""DKIM signing through the milter behind a real Postfix, verified on what Postfix delivers.

A private Postfix instance (tests/integration/postfix_support.py) hands each message to
the gateway's milter listener and relays what it queued to a FakeUpstream; the gateway
has `dkim_sign:` (an RSA 2048 key made here) and the shipped hebahan rules. An
announcement sent outbound (the client bound to 127.0.0.5, the gateway's
relay_networks) is tagged `[HEBAHAN JANM]` by the milter's SMFIR_CHGHEADER, gets the
gateway's DKIM-Signature by SMFIR_INSHEADER at index 0 (above Postfix's own Received
field), and is relayed by Postfix to the upstream. The signature there must verify with
dkimpy against the key served by dnsmasq: it was made over the message as the MTA
holds it after the milter's changes. Inbound mail is not signed.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.message.view import MessageView
from tests.support.dkim_keys import MadeKey, make_key, signature_tags, verify
from tests.support.dnsmasq import Dnsmasq

from .postfix_support import Postfix, available, milter_gateway_behind_postfix
from .support import FakeUpstream, GatewayHandle, write_config
from .test_milter_postfix import delivered, through

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "anm.gov.my"
TAG = "[HEBAHAN JANM]"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> MadeKey:
    return make_key(tmp_path_factory.mktemp("keys") / "rsa.pem", "rsa")


@pytest.fixture(scope="module")
def dns_server(key: MadeKey) -> Iterator[Dnsmasq]:
    with Dnsmasq(txt={f"gw._domainkey.{DOMAIN}": [key.record]}, local=("gov.my",)) as server:
        yield server


@pytest.fixture
async def setup(tmp_path: Path, upstream: FakeUpstream, key: MadeKey
                ) -> AsyncIterator[tuple[GatewayHandle, Postfix]]:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules="rules: []",
                        relay_networks=["127.0.0.5/32"])
    for name in ("00-senarai.yaml", "40-hebahan.yaml"):
        shutil.copy(REPO / "rules" / name, tmp_path / "rules" / name)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"] = [{"name": "milter", "listen": "127.0.0.1:0",
                            "direction": "inbound", "mode": "milter"}]
    config["dkim_sign"] = {"domain": DOMAIN, "selector": "gw", "key_file": str(key.path)}
    path.write_text(yaml.safe_dump(config))
    async with milter_gateway_behind_postfix(path, upstream.port) as (gw, postfix):
        yield gw, postfix


def announcement(subject: str, sender: str = "Hebahan JANM <hebahan@anm.gov.my>") -> bytes:
    return (f"From: {sender}\r\nTo: semua@example.com\r\nSubject: {subject}\r\n"
            "Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <hebahan-2@anm.gov.my>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Tuan/Puan,  \r\n\r\nDimaklumkan mesyuarat pada 10 Mac. \u2713\r\n.. titik\r\n"
            ).encode()


async def test_milter_signs_after_tagging_and_postfix_delivers_a_valid_signature(
        setup: tuple[GatewayHandle, Postfix], upstream: FakeUpstream,
        dns_server: Dnsmasq) -> None:
    _, postfix = setup
    subjects = ["=?UTF-8?B?TWVzeXVhcmF0IGt1YXJ0ZXJhbiDigJMgc2VtdWEgcGVnYXdhaQ==?=",
                # A long one: the tagged subject is folded by the milter's change.
                "=?UTF-8?B?" + "TWVzeXVhcmF0IOKckyA=" * 6 + "?="]
    for n, subject in enumerate(subjects, start=1):
        code, _ = await through(postfix, announcement(subject), "hebahan@anm.gov.my",
                                ["semua@example.com"], source="127.0.0.5")
        assert code == 250, postfix.log()
        await delivered(upstream, n, postfix)
        data = upstream.messages[n - 1].data
        # At index 0: above Postfix's own Received, as the proxy puts it at the top.
        assert data.startswith(b"DKIM-Signature: "), data[:300]
        assert b"\r\nReceived: from " in data
        assert MessageView(data).subject.startswith(TAG + " Mesyuarat"), data[:800]
        tags = signature_tags(data)
        assert (tags["d"], tags["s"], tags["c"]) == (DOMAIN, "gw", "relaxed/relaxed")
        assert "subject" in tags["h"].split(":")
        assert verify(data, dns_server.port), data[:1200]
        assert not verify(data.replace(b"10 Mac", b"11 Mac"), dns_server.port)

    # Inbound (the listener's direction): not signed.
    code, _ = await through(postfix, announcement("Notis", sender="Ali <ali@example.com>"),
                            "ali@example.com", ["b@anm.gov.my"])
    assert code == 250, postfix.log()
    await delivered(upstream, 3, postfix)
    assert b"DKIM-Signature" not in upstream.messages[2].data
