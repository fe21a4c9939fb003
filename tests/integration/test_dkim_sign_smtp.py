"""DKIM signing through the SMTP proxy: real gateway, smtplib client, FakeUpstream, dnsmasq.

The gateway signs with `dkim_sign:` (keys made here: RSA 2048 and Ed25519) after the
shipped hebahan rule tagged the subject `[HEBAHAN JANM]`; what the upstream received
is verified by dkimpy against the public key served by dnsmasq on loopback. Covered:
an RFC 2047 non-ASCII subject, a raw UTF-8 one under SMTPUTF8, a message large enough
to be spooled to disk and relayed from the spool file, inbound mail left unsigned,
and `cut_through: true`, under which outbound mail is stored and forwarded so it can
be signed (a cut-through header block would have gone out unsigned: the verdict's
DKIM-Signature would then not agree with it and the message be refused 451).
"""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.message.view import MessageView
from gateway.policy_state import load_policy
from gateway.service import Gateway
from tests.support.dkim_keys import MadeKey, make_key, signature_tags, verify
from tests.support.dnsmasq import Dnsmasq

from .support import CLIENT_TIMEOUT, FakeUpstream, GatewayHandle, in_thread

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "anm.gov.my"
TAG = "[HEBAHAN JANM]"
RCPT = "semua@example.com"
Factory = Callable[..., Awaitable[GatewayHandle]]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MadeKey]:
    base = tmp_path_factory.mktemp("keys")
    return {"rsa": make_key(base / "rsa.pem", "rsa"),
            "ed25519": make_key(base / "ed25519.pem", "ed25519")}


@pytest.fixture(scope="module")
def dns_server(keys: dict[str, MadeKey]) -> Iterator[Dnsmasq]:
    txt: dict[str, list[str | tuple[str, ...]]] = {
        f"rsa._domainkey.{DOMAIN}": [keys["rsa"].record],
        f"ed._domainkey.{DOMAIN}": [keys["ed25519"].record],
    }
    with Dnsmasq(txt=txt, local=("gov.my",)) as server:
        yield server


@pytest.fixture
async def signing_gateway(tmp_path: Path, upstream: FakeUpstream, keys: dict[str, MadeKey]
                          ) -> AsyncIterator[Factory]:
    started: list[Gateway] = []

    async def make(kind: str = "rsa", **more: Any) -> GatewayHandle:
        rules = tmp_path / "rules"
        rules.mkdir(exist_ok=True)
        # The shipped lists and hebahan rules: hebahan-tag tags outbound announcements.
        for name in ("00-senarai.yaml", "40-hebahan.yaml"):
            shutil.copy(REPO / "rules" / name, rules / name)
        config = {
            "listeners": [
                {"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"},
                {"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"},
            ],
            "upstream": f"smtp://127.0.0.1:{upstream.port}",
            # Two agency domains; only anm.gov.my is signed.
            "agency_domains": [DOMAIN, "jabatan.gov.my"],
            "relay_networks": ["127.0.0.0/8"],
            "hebahan_senders": ["hebahan@anm.gov.my"],
            "rules_dir": str(rules),
            "rejection_log": str(tmp_path / "rejections.jsonl"),
            "hostname": "gw.anm.gov.my",
            "dkim_sign": {"domain": DOMAIN, "selector": "rsa" if kind == "rsa" else "ed",
                          "key_file": str(keys[kind].path)},
            "limits": {"upstream_connect_timeout": 1.0, "upstream_timeout": 2.0,
                       "inspection_timeout": 5.0, "spool_threshold": "8KB"},
            **more,
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        gateway = Gateway(load_policy(path))
        await gateway.start()
        started.append(gateway)
        return GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")

    yield make
    for gateway in started:
        await gateway.stop(drain_timeout=1.0)


def announcement(subject: str, body: str = "Dimaklumkan mesyuarat pada 10 Mac. \u2713\r\n",
                 sender: str = "Hebahan JANM <hebahan@anm.gov.my>") -> bytes:
    return (f"From: {sender}\r\nTo: {RCPT}\r\nSubject: {subject}\r\n"
            "Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <hebahan-1@anm.gov.my>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"Tuan/Puan,\t \r\n\r\n{body}.. titik\r\n").encode()


def send(addr: tuple[str, int], msg: bytes, *, mail_from: str = "hebahan@anm.gov.my",
         smtputf8: bool = False, rcpt: str = RCPT) -> tuple[int, bytes]:
    s = smtplib.SMTP(addr[0], addr[1], timeout=CLIENT_TIMEOUT)
    try:
        s.ehlo("mx.anm.gov.my")
        code, text = s.mail(mail_from, ["SMTPUTF8"] if smtputf8 else [])
        assert code == 250, text
        code, text = s.rcpt(rcpt)
        assert code == 250, text
        return s.data(msg)
    finally:
        s.close()


def assert_signed_and_tagged(data: bytes, port: int, selector: str, algorithm: str) -> None:
    assert data.startswith(b"DKIM-Signature: "), data[:300]
    subject = MessageView(data).subject
    assert subject.startswith(TAG + " "), subject
    tags = signature_tags(data)
    assert (tags["d"], tags["s"], tags["a"], tags["c"]) == \
        (DOMAIN, selector, algorithm, "relaxed/relaxed")
    assert "subject" in tags["h"].split(":")
    assert verify(data, port), data[:600]
    # Not a signature that verifies anything: one changed byte of the body breaks it.
    assert not verify(data.replace(b"Tuan/Puan", b"Tuan/Puen"), port)


@pytest.mark.parametrize(("subject", "smtputf8"), [
    ("=?UTF-8?B?TWVzeXVhcmF0IGt1YXJ0ZXJhbiDigJMgc2VtdWEgcGVnYXdhaQ==?=", False),
    ("Mesyuarat suku tahun \u2013 semua pegawai \u2713", True),
])
async def test_tagged_non_ascii_announcement_is_signed_and_verifies(
        signing_gateway: Factory, upstream: FakeUpstream, dns_server: Dnsmasq,
        subject: str, smtputf8: bool) -> None:
    gw = await signing_gateway()
    code, text = await in_thread(partial(send, gw.outbound, announcement(subject),
                                         smtputf8=smtputf8))
    assert code == 250, text
    (received,) = upstream.messages
    assert_signed_and_tagged(received.data, dns_server.port, "rsa", "rsa-sha256")
    ending = "\u2013 semua pegawai" + (" \u2713" if smtputf8 else "")
    assert MessageView(received.data).subject.endswith(ending)


async def test_ed25519_and_a_message_relayed_from_its_spool_file(
        signing_gateway: Factory, upstream: FakeUpstream, dns_server: Dnsmasq) -> None:
    gw = await signing_gateway("ed25519")
    # Past spool_threshold (8KB): relayed from the spool file, signed as a whole (and
    # within the 64KB FakeUpstream reads as one message).
    body = "".join(f"Baris {n:06d}: mesyuarat \u2713   \r\n" for n in range(1200))
    msg = announcement("Mesyuarat besar", body=body)
    assert 32 * 1024 < len(msg) < 60 * 1024
    code, text = await in_thread(partial(send, gw.outbound, msg))
    assert code == 250, text
    (received,) = upstream.messages
    assert received.data.endswith(msg[-2000:])
    assert_signed_and_tagged(received.data, dns_server.port, "ed", "ed25519-sha256")


async def test_inbound_and_other_domains_are_not_signed(
        signing_gateway: Factory, upstream: FakeUpstream, dns_server: Dnsmasq) -> None:
    gw = await signing_gateway()
    plain = announcement("Notis", sender="Ali <ali@example.com>")
    code, text = await in_thread(partial(send, gw.inbound, plain, mail_from="ali@example.com",
                                         rcpt="b@anm.gov.my"))
    assert code == 250, text
    other = announcement("Notis", sender="Ali <ali@jabatan.gov.my>")
    code, text = await in_thread(partial(send, gw.outbound, other,
                                         mail_from="ali@jabatan.gov.my"))
    assert code == 250, text
    assert [m.data for m in upstream.messages] == [plain, other]


async def test_cut_through_stores_and_forwards_outbound_mail_to_sign_it(
        signing_gateway: Factory, upstream: FakeUpstream, dns_server: Dnsmasq,
        caplog: pytest.LogCaptureFixture) -> None:
    gw = await signing_gateway(cut_through=True)
    subject = "=?UTF-8?B?TWVzeXVhcmF0IOKckw==?="
    code, text = await in_thread(partial(send, gw.outbound, announcement(subject)))
    assert code == 250, text
    (received,) = upstream.messages
    assert_signed_and_tagged(received.data, dns_server.port, "rsa", "rsa-sha256")
    assert "BUG" not in caplog.text
    # Inbound mail is still cut through (and not signed).
    plain = announcement("Notis", sender="Ali <ali@example.com>")
    code, text = await in_thread(partial(send, gw.inbound, plain, mail_from="ali@example.com",
                                         rcpt="b@anm.gov.my"))
    assert code == 250, text
    assert upstream.messages[1].data == plain
