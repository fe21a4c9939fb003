"""The milter front end over real sockets: the gateway's milter listeners with the SHIPPED
rules, and a milter client (tests/integration/milter_client.py) that speaks like Postfix.

Client addresses are the ones the client announces in CONNECT: 192.0.2.10 is outside
`relay_networks` (inbound unless the macros say otherwise), 127.0.0.1 inside it.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import pipeline
from gateway.frontends.milter import protocol as p
from gateway.policy_state import load_policy
from gateway.service import Gateway

from .milter_client import MilterClient
from .support import GatewayHandle, in_thread, message, write_config
from .test_smtp_proxy import send

REPO = Path(__file__).resolve().parents[2]
OUTSIDE = "192.0.2.10"
INSIDE = "127.0.0.1"

# Beside the shipped rules: one that proves the whole rebuilt body was inspected.
END_MARKER_RULE = """
rules:
  - id: penanda-akhir
    description: "Ujian: penanda di hujung badan mesej"
    reference: "ujian"
    direction: both
    when: {body_matches: "PENANDA-AKHIR-9931"}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Penanda ditemui.", en: "Marker found."}}
"""


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[GatewayHandle]:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}",
                        rules=END_MARKER_RULE,
                        limits={"max_message_size": "300KB", "spool_threshold": "16KB",
                                "spool_dir": str(tmp_path)})
    for rule_file in (REPO / "rules").glob("*.yaml"):
        shutil.copy(rule_file, tmp_path / "rules" / rule_file.name)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"] += [
        {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"},
        {"name": "submission", "listen": "127.0.0.1:0", "direction": "outbound",
         "mode": "milter"},
        {"name": "milter-unix", "listen": f"unix:{tmp_path / 'milter.sock'}",
         "direction": "inbound", "mode": "milter"},
    ]
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        yield GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")
    finally:
        await gateway.stop(drain_timeout=1.0)


@pytest.fixture
async def client(gw: GatewayHandle) -> AsyncIterator[MilterClient]:
    c = await MilterClient.open(gw.gateway.address("milter"))
    try:
        yield c
    finally:
        await c.close()


def reply_lines(text: str) -> list[str]:
    return text.split("\r\n")


async def test_negotiation_and_clean_message(client: MilterClient) -> None:
    assert client.protocol == p.SMFIP_NOHREPL | p.SMFIP_HDR_LEADSPC
    assert await client.connect(OUTSIDE) == [p.Continue()]
    out = await client.message(message(subject="Mesyuarat biasa"), "a@example.com",
                               ["b@anm.gov.my"])
    # No header changes, no refusal: only "continue" at the end of the body.
    assert out.stage == "eob"
    assert out.replies == [p.Continue()]
    assert out.rcpt_replies == [p.Continue()]


async def test_rahsia_subject_is_refused_with_the_bilingual_text(
        gw: GatewayHandle, client: MilterClient) -> None:
    await client.connect(OUTSIDE)
    out = await client.message(message(subject="RAHSIA: Pelan"), "a@example.com",
                               ["b@anm.gov.my"])
    assert out.stage == "eob"
    lines = reply_lines(out.text)
    assert [line[:10] for line in lines] == ["550-5.7.1 ", "550-5.7.1 ", "550 5.7.1 "]
    assert "RAHSIA atau RAHSIA BESAR tidak dibenarkan" in lines[0]
    assert "may not be sent or received by e-mail" in lines[1]
    assert "rule=klasifikasi-rahsia ref=" in lines[2]
    [record] = gw.records()
    assert record["rule_id"] == "klasifikasi-rahsia"
    assert record["event"] == "reject"
    assert record["direction"] == "inbound"
    assert record["ref"] in lines[2]
    # The same session takes the next message.
    out = await client.message(message(subject="Biasa"), "a@example.com", ["b@anm.gov.my"])
    assert out.replies == [p.Continue()]


async def test_log_record_has_the_proxys_fields(gw: GatewayHandle, client: MilterClient
                                                ) -> None:
    raw = message(subject="RAHSIA: Pelan", sender="x@example.com")
    await client.connect(OUTSIDE)
    out = await client.message(raw, "x@example.com", ["b@anm.gov.my"])
    assert out.text.startswith("550-5.7.1")
    code, _ = await in_thread(lambda: send(gw.inbound, raw, sender="x@example.com",
                                           rcpts=("b@anm.gov.my",)))
    assert code == 550
    milter, proxy = gw.records()
    assert milter.keys() == proxy.keys()
    differ = {k for k in milter if milter[k] != proxy[k]}
    # Only what names the session differs: listener, client, reference, time.
    assert differ <= {"ref", "time", "ts", "listener", "client_ip", "helo", "reply"}, differ
    assert milter["listener"] == "milter"
    assert milter["client_ip"] == OUTSIDE


async def test_hebahan_sender_outbound_gets_the_subject_tag(client: MilterClient) -> None:
    # 127.0.0.1 is in relay_networks: outbound, whatever the listener says.
    await client.connect(INSIDE)
    out = await client.message(message(subject="Notis cuti", sender="hebahan@anm.gov.my"),
                               "hebahan@anm.gov.my", ["semua@example.com"])
    assert out.stage == "eob"
    assert out.replies == [p.ChangeHeader(1, "Subject", " [HEBAHAN JANM] Notis cuti"),
                           p.Continue()]


async def test_mta_without_leading_space_or_header_replies(gw: GatewayHandle) -> None:
    # An MTA that offers neither SMFIP_HDR_LEADSPC nor SMFIP_NOHREPL: header values come
    # without their leading space, each header is answered, and so are our changes.
    c = await MilterClient.open(gw.gateway.address("milter"), protocol=0)
    try:
        assert c.protocol == 0
        await c.connect(INSIDE)
        out = await c.message(message(subject="Notis cuti", sender="hebahan@anm.gov.my"),
                              "hebahan@anm.gov.my", ["semua@example.com"])
        assert out.replies == [p.ChangeHeader(1, "Subject", "[HEBAHAN JANM] Notis cuti"),
                               p.Continue()]
        # The rebuilt header still parses: the RAHSIA subject is found.
        out = await c.message(message(subject="RAHSIA: Pelan"), "a@anm.gov.my",
                              ["b@example.com"])
        assert "rule=klasifikasi-rahsia" in out.text
    finally:
        await c.close()


async def test_direction_from_daemon_name_and_auth(gw: GatewayHandle) -> None:
    where = gw.gateway.address("milter")
    # {daemon_name} naming the outbound listener: outbound, so relay control applies to
    # a client outside relay_networks that did not log in.
    c = await MilterClient.open(where)
    try:
        await c.connect(OUTSIDE, macros={"{daemon_name}": "submission"})
        out = await c.message(message(sender="hebahan@anm.gov.my"), "hebahan@anm.gov.my",
                              ["semua@example.com"])
        assert out.stage == "mail"
        assert reply_lines(out.text)[-1].startswith("554 5.7.1 rule=relay-access ref=")
        # The same client after SMTP AUTH: outbound and allowed; tagged.
        out = await c.message(message(subject="Notis", sender="hebahan@anm.gov.my"),
                              "hebahan@anm.gov.my", ["semua@example.com"],
                              mail_macros={"{auth_authen}": "hebahan"})
        assert out.replies == [p.ChangeHeader(1, "Subject", " [HEBAHAN JANM] Notis"),
                               p.Continue()]
    finally:
        await c.close()
    # The outbound milter listener itself, without any macro.
    c = await MilterClient.open(gw.gateway.address("submission"))
    try:
        await c.connect(OUTSIDE, macros={"{daemon_name}": "smtpd"})
        out = await c.message(message(), "a@anm.gov.my", ["b@example.com"])
        assert out.stage == "mail"
        assert "rule=relay-access" in out.text
    finally:
        await c.close()
    # The tag is noted in the log as the proxy notes it.
    assert [r["rule_id"] for r in gw.records()] == ["relay-access", "hebahan-tag", "relay-access"]


async def test_relay_refusal_at_rcpt(gw: GatewayHandle, client: MilterClient) -> None:
    await client.connect(OUTSIDE)
    out = await client.message(message(subject="Biasa"), "a@example.com",
                               ["b@gmail.com", "b%c@anm.gov.my", '"v@evil.example"@anm.gov.my',
                                '"v\\@evil.example"@anm.gov.my', "evil.example!v@anm.gov.my",
                                "b@anm.gov.my"])
    refused_domain, refused_route, *refused_routing, ok = out.rcpt_replies
    assert isinstance(refused_domain, p.ReplyCode)
    lines = reply_lines(refused_domain.text)
    assert lines[0] == "554-5.7.1 Akses geganti ditolak."
    assert lines[1] == "554-5.7.1 Relay access denied."
    assert lines[2].startswith("554 5.7.1 rule=relay-access ref=")
    assert isinstance(refused_route, p.ReplyCode)
    assert "rule=relay-address" in refused_route.text
    for refused in refused_routing:
        assert isinstance(refused, p.ReplyCode)
        assert "rule=relay-address" in refused.text
    assert ok == p.Continue()
    # The accepted recipient's message goes on and is accepted.
    assert out.replies == [p.Continue()]
    assert [r["rule_id"] for r in gw.records()] == ["relay-access"] + ["relay-address"] * 4


async def test_oversize_body_refused_with_552(gw: GatewayHandle, client: MilterClient) -> None:
    await client.connect(OUTSIDE)
    body = (b"x" * 998 + b"\r\n") * 400  # 400 KB over the 300 KB limit
    out = await client.message(message(body=body), "a@example.com", ["b@anm.gov.my"])
    assert out.stage == "body"
    lines = reply_lines(out.text)
    assert lines[0].startswith("552-5.3.4 ")
    assert lines[-1].startswith("552 5.3.4 rule=saiz-maksimum ref=")
    assert [r["rule_id"] for r in gw.records()] == ["saiz-maksimum"]
    # Declared too big in MAIL: refused before any content.
    out = await client.message(message(), "a@example.com", ["b@anm.gov.my"],
                               mail_args=("SIZE=999999999",))
    assert out.stage == "mail"
    assert out.text.startswith("552-5.3.4")


async def test_spooled_body_is_inspected_whole(gw: GatewayHandle, client: MilterClient
                                               ) -> None:
    await client.connect(OUTSIDE)
    # Over the 16 KB spool threshold and several body chunks; the marker is at the end.
    body = (b"y" * 998 + b"\r\n") * 200 + b"PENANDA-AKHIR-9931\r\n"
    out = await client.message(message(body=body), "a@example.com", ["b@anm.gov.my"])
    assert out.stage == "eob"
    assert "rule=penanda-akhir" in out.text
    assert list(gw.tmp.glob("gateway-*.msg")) == []  # the spool file is gone
    out = await client.message(message(body=(b"y" * 998 + b"\r\n") * 200), "a@example.com",
                               ["b@anm.gov.my"])
    assert out.replies == [p.Continue()]


async def test_inspection_failure_tempfails(gw: GatewayHandle, client: MilterClient,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> pipeline.Inspection:
        raise RuntimeError("secret internal detail /etc/gateway")

    monkeypatch.setattr(pipeline, "inspect", broken)
    await client.connect(OUTSIDE)
    out = await client.message(message(), "a@example.com", ["b@anm.gov.my"])
    assert out.stage == "eob"
    lines = reply_lines(out.text)
    assert all(line.startswith(("451-4.3.0 ", "451 4.3.0 ")) for line in lines), lines
    assert "secret" not in out.text
    [record] = gw.records()
    assert record["event"] == "tempfail"
    assert record["reason"] == "internal error"


async def test_unix_socket_listener(gw: GatewayHandle) -> None:
    path = gw.gateway.bound["milter-unix"][0]
    assert isinstance(path, str)
    c = await MilterClient.open(path)
    try:
        await c.connect(OUTSIDE)
        out = await c.message(message(subject="RAHSIA: Pelan"), "a@example.com",
                              ["b@anm.gov.my"])
        assert "rule=klasifikasi-rahsia" in out.text
        out = await c.message(message(), "a@example.com", ["b@anm.gov.my"])
        assert out.replies == [p.Continue()]
    finally:
        await c.close()


async def test_protocol_error_closes_only_that_connection(gw: GatewayHandle) -> None:
    where = gw.gateway.address("milter")
    bad = await MilterClient.open(where)
    try:
        bad.writer.write(b"\x00\x00\x00\x02Z\x00")  # unknown command
        await bad.writer.drain()
        with pytest.raises(ConnectionError):
            await bad.read_reply()
    finally:
        await bad.close()
    good = await MilterClient.open(where)
    try:
        await good.connect(OUTSIDE)
        out = await good.message(message(), "a@example.com", ["b@anm.gov.my"])
        assert out.replies == [p.Continue()]
    finally:
        await good.close()
