"""Replies to announcements through the real gateway: the SHIPPED rules, a real upstream
(FakeUpstream) receiving the relayed bytes, dnsmasq as DNS, and the milter listener.

- outbound, an officer's `Re:`/`Balas:`/`FW:` of an announcement is relayed byte for byte;
- a bare tag, or a reply prefix without In-Reply-To/References, is still refused;
- inbound from a sender who is not registered, the quoted tag reaches the officer
  defanged (`[HEBAHAN JANM - TIDAK DISAHKAN]`, or the config's `hebahan_defang`),
  RFC 2047-encoded and look-alike subjects too, stored and forwarded or cut through,
  and the milter changes the Subject field to the same value;
- a registered, DMARC-passing announcement and its registered sender's reply keep
  their tag (added once).
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.frontends.milter import protocol as p
from gateway.message import headers as hdr
from gateway.message.view import MessageView
from gateway.policy_state import load_policy
from gateway.service import Gateway
from tests.support.dnsmasq import Dnsmasq

from .milter_client import MilterClient
from .support import FakeUpstream, GatewayHandle, in_thread, transaction

REPO = Path(__file__).resolve().parents[2]
RCPT = "semua@anm.gov.my"
DEFANG = b"[HEBAHAN JANM - TIDAK DISAHKAN]"
ZONE_TXT: dict[str, list[str]] = {
    "anm.gov.my": ["v=spf1 ip4:127.0.0.1 -all"],
    "_dmarc.anm.gov.my": ["v=DMARC1; p=reject"],
}
Factory = Callable[..., Awaitable[GatewayHandle]]


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with Dnsmasq(txt=ZONE_TXT, local=("gov.my", "example")) as server:
        yield server


@pytest.fixture
async def make(tmp_path: Path, upstream: FakeUpstream, dnsmasq: Dnsmasq
               ) -> AsyncIterator[Factory]:
    started: list[Gateway] = []

    async def start(**extra: Any) -> GatewayHandle:
        rules = tmp_path / "rules"
        if not rules.exists():
            shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))
        config = {
            "listeners": [
                {"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"},
                {"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"},
                {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound",
                 "mode": "milter"},
            ],
            "upstream": f"smtp://127.0.0.1:{upstream.port}",
            "agency_domains": ["anm.gov.my"],
            "relay_networks": ["127.0.0.0/8"],
            "hebahan_senders": ["hebahan@anm.gov.my"],
            "rules_dir": str(rules),
            "rejection_log": str(tmp_path / "rejections.jsonl"),
            "hostname": "gw.anm.gov.my",
            "dns": {"nameservers": ["127.0.0.1"], "port": dnsmasq.port, "timeout": 0.5},
            "limits": {"upstream_connect_timeout": 1.0, "upstream_timeout": 2.0,
                       "inspection_timeout": 5.0},
            **extra,
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        gateway = Gateway(load_policy(path))
        await gateway.start()
        started.append(gateway)
        return GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")

    yield start
    for gateway in started:
        await gateway.stop(drain_timeout=1.0)


def message(subject: str, *, sender: str, thread: bool = True) -> bytes:
    head = [f"From: {sender}", f"To: {RCPT}", f"Subject: {subject}",
            "Date: Mon, 03 Mar 2025 09:00:00 +0800", "Message-ID: <balas-1@agensi.example>"]
    if thread:
        head.append("In-Reply-To: <hebahan-1@anm.gov.my>")
    head += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
             "Content-Transfer-Encoding: 8bit"]
    return ("\r\n".join(head) + "\r\n\r\nTerima kasih atas makluman. \u2713\r\n").encode()


def send(addr: tuple[str, int], msg: bytes, *, mail_from: str) -> tuple[int, bytes]:
    return transaction(addr, msg, mail_from=mail_from, rcpts=[RCPT], helo="mx.pengirim.test")


def b64(text: str) -> str:
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def body_of(data: bytes) -> bytes:
    return data[data.index(b"\r\n\r\n"):]


# -- outbound -------------------------------------------------------------------------------
async def test_outbound_replies_and_forwards_pass_unchanged(
        make: Factory, upstream: FakeUpstream) -> None:
    gw = await make()
    subjects = ["Re: [HEBAHAN JANM] Makluman Cuti Umum", "RE: RE:[HEBAHAN JANM] Makluman",
                "Balas: [hebahan janm] Makluman", "FW: [HEBAHAN JANM] Makluman",
                "Majukan : Fwd: [HEBAHAN JANM] Makluman"]
    sent = []
    for subject in subjects:
        msg = message(subject, sender="Ali <ali@anm.gov.my>",
                      thread=not subject.startswith(("FW", "Majukan")))
        code, text = await in_thread(partial(send, gw.outbound, msg, mail_from="ali@anm.gov.my"))
        assert code == 250, (subject, text)
        sent.append(msg)
    assert [m.data for m in upstream.messages] == sent
    assert gw.records() == []


async def test_outbound_bare_or_threadless_tag_is_still_refused(
        make: Factory, upstream: FakeUpstream) -> None:
    gw = await make()
    for subject, thread in (("[HEBAHAN JANM] Makluman", True),
                            ("Re: [HEBAHAN JANM] Makluman", False),
                            ("Re: Makluman [HEBAHAN JANM]", True)):
        code, text = await in_thread(partial(
            send, gw.outbound, message(subject, sender="ali@anm.gov.my", thread=thread),
            mail_from="ali@anm.gov.my"))
        assert (code, text[:5]) == (550, b"5.7.1"), subject
        assert b"rule=hebahan-tag-palsu" in text
    assert upstream.messages == []


# -- inbound --------------------------------------------------------------------------------
@pytest.mark.parametrize("cut_through", [False, True])
async def test_inbound_reply_from_unregistered_sender_is_defanged(
        make: Factory, upstream: FakeUpstream, cut_through: bool) -> None:
    gw = await make(cut_through=cut_through)
    plain = message("Re: [HEBAHAN JANM] Makluman Cuti Umum", sender="pegawai@agensi.example")
    encoded = message(b64("RE: RE: [HEB\u0391HAN\u200b JANM] Cuti Umum \u2713"),
                      sender="pegawai@agensi.example")
    forward = message("Fwd: =?utf-8?q?=5BHEBAHAN_JANM=5D?= Cuti", sender="x@agensi.example",
                      thread=False)
    for msg in (plain, encoded, forward):
        code, text = await in_thread(partial(send, gw.inbound, msg,
                                             mail_from="pegawai@agensi.example"))
        assert code == 250, text
    first, second, third = (m.data for m in upstream.messages)
    # Plain: only the tag's bytes change; no DNS was asked, so no Authentication-Results.
    assert first == plain.replace(b"[HEBAHAN JANM]", DEFANG)
    # Encoded: written again as encoded words, the rest byte for byte.
    assert MessageView(second).subject == "RE: RE: [HEBAHAN JANM - TIDAK DISAHKAN] Cuti Umum \u2713"
    assert body_of(second) == body_of(encoded)
    assert MessageView(third).subject == "Fwd: [HEBAHAN JANM - TIDAK DISAHKAN] Cuti"
    records = gw.records()
    assert [(r["event"], r["rule_id"]) for r in records] == [
        ("tag", "hebahan-petik-masuk")] * 3
    assert records[0]["evidence"]["subject_quotes_tag"]["kind"] == "reply"
    assert records[2]["evidence"]["subject_quotes_tag"]["kind"] == "forward"


async def test_defang_wording_is_configurable(make: Factory, upstream: FakeUpstream) -> None:
    gw = await make(hebahan_defang="[HEBAHAN? BELUM DISAHKAN]")
    msg = message("Balas: [HEBAHAN JANM] Cuti", sender="pegawai@agensi.example")
    code, text = await in_thread(partial(send, gw.inbound, msg,
                                         mail_from="pegawai@agensi.example"))
    assert code == 250, text
    assert upstream.messages[0].data == msg.replace(b"[HEBAHAN JANM]",
                                                    b"[HEBAHAN? BELUM DISAHKAN]")


async def test_inbound_bare_or_threadless_tag_is_still_refused(
        make: Factory, upstream: FakeUpstream) -> None:
    gw = await make()
    for subject, thread in (("[HEBAHAN JANM] Kemas kini kata laluan", True),
                            ("Re: [HEBAHAN JANM] Kemas kini kata laluan", False),
                            ("Re: [HEBAHAN JANM] x [HEBAHAN JANM]", True)):
        code, text = await in_thread(partial(
            send, gw.inbound, message(subject, sender="it@agensi.example", thread=thread),
            mail_from="it@agensi.example"))
        assert (code, text[:5]) == (550, b"5.7.1"), subject
        assert b"rule=hebahan-tag-palsu" in text
    assert upstream.messages == []


async def test_registered_announcement_and_its_reply_keep_the_tag(
        make: Factory, upstream: FakeUpstream) -> None:
    gw = await make()
    fresh = message("Makluman Cuti Umum", sender="Hebahan JANM <hebahan@anm.gov.my>",
                    thread=False)
    reply = message("Re: [HEBAHAN JANM] Makluman Cuti Umum", sender="hebahan@anm.gov.my")
    for msg in (fresh, reply):
        code, text = await in_thread(partial(send, gw.inbound, msg,
                                             mail_from="hebahan@anm.gov.my"))
        assert code == 250, text
    first, second = (m.data for m in upstream.messages)
    assert first.startswith(b"Authentication-Results: gw.anm.gov.my;")
    assert MessageView(first).subject == "[HEBAHAN JANM] Makluman Cuti Umum"
    assert second.endswith(reply)  # Authentication-Results on top, the rest unchanged
    assert DEFANG not in second
    assert [r["rule_id"] for r in gw.records()] == ["hebahan-tag-masuk"] * 2


# -- milter ---------------------------------------------------------------------------------
async def test_milter_changes_the_subject_to_the_defanged_one(make: Factory) -> None:
    gw = await make()
    c = await MilterClient.open(gw.gateway.address("milter"))
    try:
        await c.connect("192.0.2.10")
        out = await c.message(message("Re: [HEBAHAN JANM] Cuti", sender="a@agensi.example"),
                              "a@agensi.example", [RCPT])
        assert out.stage == "eob"
        assert out.replies == [p.ChangeHeader(1, "Subject",
                                              " Re: [HEBAHAN JANM - TIDAK DISAHKAN] Cuti"),
                               p.Continue()]
        out = await c.message(message(b64("Majukan: [HEB\u0391HAN JANM] Cuti \u2713"),
                                      sender="a@agensi.example", thread=False),
                              "a@agensi.example", [RCPT])
        change, done = out.replies
        assert done == p.Continue()
        assert isinstance(change, p.ChangeHeader)
        assert (change.index, change.name) == (1, "Subject")
        assert hdr.decode(change.value.replace("\n", "\r\n").encode()).strip() == \
            "Majukan: [HEBAHAN JANM - TIDAK DISAHKAN] Cuti \u2713"
        out = await c.message(message("[HEBAHAN JANM] Cuti", sender="a@agensi.example"),
                              "a@agensi.example", [RCPT])
        assert "rule=hebahan-tag-palsu" in out.text
    finally:
        await c.close()
