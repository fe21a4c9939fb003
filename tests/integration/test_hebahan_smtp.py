"""[HEBAHAN JANM] over SMTP: shipped rules, real gateway, real upstream, dnsmasq as DNS.

The gateway resolves through Debian's dnsmasq on loopback (tests/support/dnsmasq.py)
with the zone written here. Clients connect from chosen 127.0.0.0/8 addresses
(127.0.0.1 is in the SPF records, 127.0.0.2 is not; 127.0.0.5 is a registered
relay application), so SPF decides on the real peer address the gateway sees.
Every refusal is checked on the wire (code, enhanced code, rule id) and in the
rejection log (rule_id, the SPF/DMARC evidence).
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway
from tests.support.dnsmasq import Dnsmasq, free_port

from .support import FakeUpstream, GatewayHandle, in_thread, transaction

REPO = Path(__file__).resolve().parents[2]
TAG = b"[HEBAHAN JANM]"
RCPT = "semua@anm.gov.my"
DNS_TIMEOUT = 0.5

ZONE_TXT: dict[str, list[str]] = {
    "anm.gov.my": ["v=spf1 ip4:127.0.0.1 -all"],
    "_dmarc.anm.gov.my": ["v=DMARC1; p=reject"],
    # A second registered sender whose servers are elsewhere: SPF fails from loopback.
    "jabatan.gov.my": ["v=spf1 ip4:192.0.2.10 -all"],
    "_dmarc.jabatan.gov.my": ["v=DMARC1; p=reject"],
    # A look-alike domain with its own DMARC record: From this domain is not aligned.
    "anm-gov.example": ["v=spf1 ip4:127.0.0.1 -all"],
    "_dmarc.anm-gov.example": ["v=DMARC1; p=reject"],
}
LOCAL = ("gov.my", "example")
Factory = Callable[..., Awaitable[GatewayHandle]]


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with Dnsmasq(txt=ZONE_TXT, local=LOCAL) as server:
        yield server


@pytest.fixture
async def hebahan_gateway(tmp_path: Path, upstream: FakeUpstream
                          ) -> AsyncIterator[Factory]:
    started: list[Gateway] = []

    async def make(dns_port: int) -> GatewayHandle:
        rules = tmp_path / "rules"
        if not rules.exists():
            shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))
        config = {
            "listeners": [
                {"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"},
                {"name": "inbound", "listen": "127.0.0.1:0", "direction": "inbound"},
            ],
            "upstream": f"smtp://127.0.0.1:{upstream.port}",
            "agency_domains": ["anm.gov.my"],
            "relay_networks": ["127.0.0.0/8"],
            "hebahan_senders": ["hebahan@anm.gov.my", "hebahan@jabatan.gov.my"],
            "hebahan_relays": ["127.0.0.5"],
            "rules_dir": str(rules),
            "rejection_log": str(tmp_path / "rejections.jsonl"),
            "hostname": "gw.anm.gov.my",
            "dns": {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": DNS_TIMEOUT},
            "limits": {"upstream_connect_timeout": 1.0, "upstream_timeout": 2.0,
                       "inspection_timeout": 5.0},
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


def message(subject: str, *, sender: str = "Hebahan JANM <hebahan@anm.gov.my>") -> bytes:
    return (f"From: {sender}\r\nTo: {RCPT}\r\nSubject: {subject}\r\n"
            "Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <hebahan-1@anm.gov.my>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Tuan/Puan,\r\n\r\nDimaklumkan mesyuarat pada 10 Mac. \xe2\x9c\x93\r\n.. titik\r\n"
            ).encode("latin-1")


def send(addr: tuple[str, int], msg: bytes, *, mail_from: str, source: str = "127.0.0.1"
         ) -> tuple[int, bytes]:
    """One transaction from the client address `source`; the reply to DATA (or refusal)."""
    return transaction(addr, msg, mail_from=mail_from, rcpts=[RCPT],
                       helo="mx.pengirim.test", source=source)


def split_authentication_results(data: bytes) -> tuple[str, bytes]:
    """The top Authentication-Results field (unfolded) and the rest of the message."""
    assert data.startswith(b"Authentication-Results:"), data[:200]
    lines = data.split(b"\r\n")
    n = 1
    while lines[n][:1] in (b" ", b"\t"):
        n += 1
    for line in lines[:n]:
        assert len(line) <= 78, line
    field = b" ".join(x.strip() for x in lines[:n]).decode("ascii")
    return field, b"\r\n".join(lines[n:])


def last_record(gw: GatewayHandle) -> dict[str, Any]:
    records = gw.records()
    assert records, "nothing was logged"
    return records[-1]


def assert_refused(reply: tuple[int, bytes], code: int, enhanced: bytes, rule: str) -> None:
    got_code, text = reply
    assert got_code == code, (got_code, text)
    assert text.startswith(enhanced), text
    assert f"rule={rule}".encode() in text, text


# -- inbound ------------------------------------------------------------------------------
async def test_legitimate_inbound_announcement_is_tagged_once_with_authentication_results(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(dnsmasq.port)
    fresh = message("Mesyuarat Agung Tahunan 2025")
    already = message("Re: FW: [Hebahan JANM] Mesyuarat Agung Tahunan 2025")
    for msg in (fresh, already):
        code, text = await in_thread(
            partial(send, gw.inbound, msg, mail_from="hebahan@anm.gov.my"))
        assert code == 250, text
    assert len(upstream.messages) == 2
    first, second = (m.data for m in upstream.messages)

    field, rest = split_authentication_results(first)
    assert rest == fresh.replace(b"Subject: Mesyuarat", b"Subject: " + TAG + b" Mesyuarat")
    assert field.startswith("Authentication-Results: gw.anm.gov.my;")
    assert re.search(r"; spf=pass (\([^)]*\) )?smtp\.mailfrom=hebahan@anm\.gov\.my;", field)
    assert re.search(r"; dmarc=pass (\([^)]*\) )?header\.from=anm\.gov\.my$", field)

    field2, rest2 = split_authentication_results(second)
    assert rest2 == already  # the tag is there already: not doubled, nothing else changes
    assert "spf=pass" in field2

    records = gw.records()
    assert [r["event"] for r in records] == ["tag", "tag"]
    assert {r["rule_id"] for r in records} == {"hebahan-tag-masuk"}
    assert records[0]["auth"]["spf"] == "pass" and records[0]["auth"]["dmarc"] == "pass"
    assert records[0]["evidence"]["spf_domain"] == "anm.gov.my"


async def test_forged_tag_from_an_unregistered_sender_is_refused_without_dns(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(dnsmasq.port)
    reply = await in_thread(lambda: send(
        gw.inbound, message("[HEBAHAN JANM] Kemas kini kata laluan anda",
                            sender="JANM <admin@anm-gov.example>"),
        mail_from="admin@anm-gov.example"))
    assert_refused(reply, 550, b"5.7.1", "hebahan-tag-palsu")
    assert upstream.messages == []
    record = last_record(gw)
    assert (record["event"], record["rule_id"], record["smtp_code"]) == \
        ("reject", "hebahan-tag-palsu", 550)
    assert record["evidence"]["subject_matches"]["match"] == "[HEBAHAN JANM]"
    assert record["auth"] is None  # decided before any look-up was needed


async def test_registered_sender_from_a_server_outside_spf_is_refused_naming_spf(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(dnsmasq.port)
    # The right sender from the wrong server (127.0.0.2 is not in anm.gov.my's SPF),
    # with and without claiming the tag; and a registered sender whose SPF lists
    # only 192.0.2.10.
    cases = [
        ("127.0.0.2", "hebahan@anm.gov.my", "[HEBAHAN JANM] Notis", "anm.gov.my"),
        ("127.0.0.2", "hebahan@anm.gov.my", "Notis tanpa tag", "anm.gov.my"),
        ("127.0.0.1", "hebahan@jabatan.gov.my", "[HEBAHAN JANM] Notis", "jabatan.gov.my"),
    ]
    for source, sender, subject, domain in cases:
        reply = await in_thread(partial(
            send, gw.inbound, message(subject, sender=sender), mail_from=sender, source=source))
        assert_refused(reply, 550, b"5.7.1", "hebahan-spf-gagal")
        assert b"SPF" in reply[1]
        record = last_record(gw)
        assert (record["rule_id"], record["client_ip"], record["smtp_code"]) == \
            ("hebahan-spf-gagal", source, 550)
        assert record["evidence"]["spf"] == "fail"
        assert record["evidence"]["spf_domain"] == domain
        assert record["auth"]["spf"] == "fail"
    assert upstream.messages == []


async def test_spf_pass_with_an_unaligned_from_is_refused_naming_dmarc(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(dnsmasq.port)
    # No tag claimed: the registered envelope sender alone makes it an announcement.
    reply = await in_thread(lambda: send(
        gw.inbound, message("Notis", sender="JANM <hebahan@anm-gov.example>"),
        mail_from="hebahan@anm.gov.my"))
    assert_refused(reply, 550, b"5.7.1", "hebahan-dmarc-gagal")
    assert b"DMARC" in reply[1]
    assert upstream.messages == []
    record = last_record(gw)
    assert record["rule_id"] == "hebahan-dmarc-gagal"
    assert record["evidence"]["spf"] == "pass" and record["evidence"]["dmarc"] == "fail"
    assert record["evidence"]["from_domain"] == "anm-gov.example"
    assert record["evidence"]["spf_aligned"] is False
    assert record["auth"]["dmarc"] == "fail"


async def test_the_tag_claimed_under_an_unregistered_from_is_refused(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    # The envelope sender is registered and its SPF passes, but the From the reader
    # sees is not a registered sender: the tag is not theirs to claim (issue 13 review).
    gw = await hebahan_gateway(dnsmasq.port)
    reply = await in_thread(lambda: send(
        gw.inbound, message("[HEBAHAN JANM] Notis", sender="JANM <hebahan@anm-gov.example>"),
        mail_from="hebahan@anm.gov.my"))
    assert_refused(reply, 550, b"5.7.1", "hebahan-tag-palsu-masuk")
    assert upstream.messages == []


async def test_dns_outage_tempfails_never_rejects_nor_passes(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    # dnsmasq stopped after the gateway started: nothing answers on its port.
    gw = await hebahan_gateway(dnsmasq.port)
    dnsmasq.stop()
    started = time.monotonic()
    reply = await in_thread(lambda: send(
        gw.inbound, message("[HEBAHAN JANM] Notis"), mail_from="hebahan@anm.gov.my"))
    assert time.monotonic() - started < 5
    assert_refused(reply, 451, b"4.7.24", "hebahan-spf-sementara")
    record = last_record(gw)
    assert (record["event"], record["rule_id"], record["smtp_code"], record["enhanced_code"]) \
        == ("tempfail", "hebahan-spf-sementara", 451, "4.7.24")
    assert record["evidence"]["spf"] == "temperror"
    assert record["auth"]["spf"] == "temperror"
    assert upstream.messages == []


async def test_a_silent_dns_server_times_out_into_a_tempfail(
        hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    # A socket that receives queries and never answers: the resolver's timeout decides.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        gw = await hebahan_gateway(silent.getsockname()[1])
        started = time.monotonic()
        reply = await in_thread(lambda: send(
            gw.inbound, message("Notis tanpa tag"), mail_from="hebahan@anm.gov.my"))
        assert time.monotonic() - started < DNS_TIMEOUT * 6
    finally:
        silent.close()
    assert_refused(reply, 451, b"4.7.24", "hebahan-spf-sementara")
    assert last_record(gw)["auth"]["spf"] == "temperror"
    assert upstream.messages == []


async def test_dead_dns_port_tempfails(hebahan_gateway: Factory,
                                       upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(free_port())
    reply = await in_thread(lambda: send(
        gw.inbound, message("[HEBAHAN JANM] Notis"), mail_from="hebahan@anm.gov.my"))
    assert_refused(reply, 451, b"4.7.24", "hebahan-spf-sementara")
    record = last_record(gw)
    assert (record["event"], record["rule_id"]) == ("tempfail", "hebahan-spf-sementara")
    assert record["evidence"]["spf"] == "temperror" and record["auth"]["spf"] == "temperror"
    assert upstream.messages == []


async def test_ordinary_inbound_mail_needs_no_dns_and_is_untouched(
        hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    # No DNS server at all: mail that neither claims the tag nor comes from a
    # registered sender must not depend on DNS, and gets no Authentication-Results.
    gw = await hebahan_gateway(free_port())
    msg = message("Jemputan mesyuarat", sender="pegawai@jpn.gov.my")
    code, text = await in_thread(lambda: send(gw.inbound, msg, mail_from="pegawai@jpn.gov.my"))
    assert code == 250, text
    assert upstream.messages[0].data == msg
    assert gw.records() == []


# -- outbound -----------------------------------------------------------------------------
async def test_outbound_forged_tag_is_refused(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(dnsmasq.port)
    reply = await in_thread(lambda: send(
        gw.outbound, message("Balas: [HEBAHAN JANM] Makluman", sender="ali@anm.gov.my"),
        mail_from="ali@anm.gov.my"))
    assert_refused(reply, 550, b"5.7.1", "hebahan-tag-palsu")
    assert upstream.messages == []
    record = last_record(gw)
    assert (record["direction"], record["rule_id"]) == ("outbound", "hebahan-tag-palsu")
    assert record["auth"] is None


async def test_outbound_from_a_registered_relay_application_is_tagged(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(dnsmasq.port)
    plain = message("Gaji bulan Mac telah dikreditkan", sender="sistem.gaji@anm.gov.my")
    claimed = message("[HEBAHAN JANM] Penyelenggaraan iGFMAS", sender="igfmas@anm.gov.my")
    for msg, sender in ((plain, "sistem.gaji@anm.gov.my"), (claimed, "igfmas@anm.gov.my")):
        code, text = await in_thread(partial(
            send, gw.outbound, msg, mail_from=sender, source="127.0.0.5"))
        assert code == 250, text
    assert upstream.messages[0].data == plain.replace(b"Subject: Gaji",
                                                      b"Subject: " + TAG + b" Gaji")
    assert upstream.messages[1].data == claimed  # already tagged: unchanged
    records = gw.records()
    assert [(r["event"], r["rule_id"], r["client_ip"]) for r in records] == \
        [("tag", "hebahan-tag", "127.0.0.5")] * 2
    # The same claimed tag from an ordinary client of the same network is refused.
    reply = await in_thread(lambda: send(gw.outbound, claimed, mail_from="igfmas@anm.gov.my",
                                         source="127.0.0.6"))
    assert_refused(reply, 550, b"5.7.1", "hebahan-tag-palsu")
    assert len(upstream.messages) == 2


async def test_inbound_tag_from_a_relay_address_still_needs_a_registered_sender(
        dnsmasq: Dnsmasq, hebahan_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await hebahan_gateway(dnsmasq.port)
    reply = await in_thread(lambda: send(
        gw.inbound, message("[HEBAHAN JANM] Notis", sender="igfmas@anm.gov.my"),
        mail_from="igfmas@anm.gov.my", source="127.0.0.5"))
    assert_refused(reply, 550, b"5.7.1", "hebahan-tag-palsu-masuk")
    assert last_record(gw)["rule_id"] == "hebahan-tag-palsu-masuk"
    assert upstream.messages == []
