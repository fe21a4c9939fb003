"""Antivirus through the running gateway: smtplib against the proxy, the milter client,
and one virus through a real Postfix with the gateway as its milter. A real clamd
(tests/support/clamd.py) with the tests' own signatures; the shipped antivirus rules
(rules/50-perisian-hasad.yaml). The rejection log shows the signature (evidence); a
clamd stopped mid-test makes the next message a 451 4.7.0, logged, never relayed.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import smtplib
import zipfile
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway
from tests.support.clamd import EICAR, EICAR_SIGNATURE, Clamd

from .milter_client import MilterClient
from .postfix_support import available, milter_gateway_behind_postfix
from .support import FakeUpstream, GatewayHandle, client, in_thread, write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def av() -> Iterator[Clamd]:
    with Clamd() as daemon:
        yield daemon


def infected() -> bytes:
    return mail(("laporan.zip", "application/zip", zipped("dalam/nota.txt", EICAR)))


def mail(*attachments: tuple[str, str, bytes], sender: str = "a@example.com",
         to: str = "b@anm.gov.my") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, "Laporan suku tahun"
    m["Message-ID"] = "<av-smtp@example.com>"
    m.set_content("Salam sejahtera, laporan dilampirkan.\n")
    for name, ctype, data in attachments:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m.as_bytes(policy=SMTP)


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return out.getvalue()


def config_with_antivirus(tmp: Path, address: str, upstream: str,
                          listeners: list[dict[str, Any]] | None = None,
                          relay_networks: list[str] | None = None) -> Path:
    path = write_config(tmp, upstream=upstream, rules="rules: []",
                        relay_networks=relay_networks)
    shutil.copy(REPO / "rules" / "50-perisian-hasad.yaml", tmp / "rules")
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["antivirus"] = {"clamd": address, "timeout": 2}
    if listeners is not None:
        config["listeners"] = listeners
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def gw(tmp_path: Path, av: Clamd, upstream: FakeUpstream
             ) -> AsyncIterator[GatewayHandle]:
    path = config_with_antivirus(tmp_path, av.address, f"smtp://127.0.0.1:{upstream.port}")
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        yield GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl")
    finally:
        await gateway.stop(drain_timeout=1.0)


def text_of(exc: smtplib.SMTPResponseException) -> str:
    error: bytes | str = exc.smtp_error
    return error.decode() if isinstance(error, bytes) else error


def send(addr: tuple[str, int], raw: bytes, sender: str = "a@example.com",
         rcpt: str = "b@anm.gov.my") -> tuple[int, str]:
    s = client(addr)
    try:
        s.sendmail(sender, [rcpt], raw)
        return 250, ""
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code, text_of(exc)
    finally:
        s.quit()


async def test_proxy_refuses_a_virus_and_logs_the_signature(
        gw: GatewayHandle, upstream: FakeUpstream, av: Clamd) -> None:
    code, text = await in_thread(lambda: send(gw.inbound, infected()))
    assert code == 554, text
    assert "5.7.1 Mesej ini mengandungi virus atau kod hasad" in text
    assert "rule=perisian-hasad-virus ref=" in text
    assert upstream.messages == []
    record = gw.records()[-1]
    assert (record["event"], record["rule_id"], record["smtp_code"]) == \
        ("reject", "perisian-hasad-virus", 554)
    found = record["evidence"]["virus"]
    assert found[0] == {"signature": EICAR_SIGNATURE, "part": "attachment", "index": 0,
                        "filename": "laporan.zip"}
    assert record["evidence"]["clamd"] == av.address

    # Clean mail passes, byte for byte.
    clean = mail(("laporan.txt", "text/plain", b"Laporan bersih.\n"))
    code, text = await in_thread(lambda: send(gw.inbound, clean))
    assert code == 250, text
    assert len(upstream.messages) == 1 and upstream.messages[0].data.rstrip(b"\r\n") == \
        clean.rstrip(b"\r\n")

    # clamd stopped mid-test: the next message is tempfailed and logged, not relayed.
    av.stop()
    code, text = await in_thread(lambda: send(
        gw.outbound, mail(sender="a@anm.gov.my", to="b@example.com"), "a@anm.gov.my",
        "b@example.com"))
    assert code == 451, text
    assert "4.7.0 Mesej ini tidak dapat diimbas untuk virus buat sementara" in text
    assert len(upstream.messages) == 1
    record = gw.records()[-1]
    assert (record["event"], record["rule_id"], record["smtp_code"], record["enhanced_code"]) \
        == ("tempfail", "perisian-hasad-imbasan-gagal", 451, "4.7.0")
    assert record["evidence"]["failure"].startswith("unreachable: clamd at unix:")


async def test_milter_refuses_a_virus(tmp_path: Path, av: Clamd) -> None:
    path = config_with_antivirus(
        tmp_path, av.address, f"maildir:{tmp_path / 'mail'}",
        [{"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"}])
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        c = await MilterClient.open(gateway.address("milter"))
        try:
            await c.connect("192.0.2.7")
            out = await c.message(infected(), "a@example.com", ["b@anm.gov.my"])
            assert out.stage == "eob"
            assert "554 5.7.1 " in out.text and "rule=perisian-hasad-virus" in out.text
            out = await c.message(mail(("a.txt", "text/plain", b"ok\n")), "a@example.com",
                                  ["b@anm.gov.my"])
            assert "554" not in repr(out.replies)
        finally:
            await c.close()
    finally:
        await gateway.stop(drain_timeout=1.0)
    records = GatewayHandle(gateway, tmp_path, tmp_path / "rejections.jsonl").records()
    assert [r["rule_id"] for r in records] == ["perisian-hasad-virus"]
    assert records[0]["evidence"]["virus"][0]["signature"] == EICAR_SIGNATURE


@pytest.mark.skipif(available() is not None, reason=str(available()))
async def test_virus_through_real_postfix_and_the_milter(
        tmp_path: Path, av: Clamd, upstream: FakeUpstream) -> None:
    path = config_with_antivirus(
        tmp_path, av.address, f"maildir:{tmp_path / 'mail'}",
        [{"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"}],
        relay_networks=["127.0.0.5/32"])  # Postfix's client 127.0.0.1 is inbound
    async with milter_gateway_behind_postfix(path, upstream.port) as (gw, postfix):

        def submit(raw: bytes) -> tuple[int, str]:
            s = smtplib.SMTP("127.0.0.1", postfix.port, timeout=30)
            try:
                s.ehlo("client.test")
                s.sendmail("a@example.com", ["b@anm.gov.my"], raw)
                return 250, ""
            except smtplib.SMTPDataError as exc:
                return exc.smtp_code, text_of(exc)
            finally:
                s.quit()

        code, text = await asyncio.wait_for(asyncio.to_thread(submit, infected()), 60)
        assert code == 554, postfix.log()
        assert "5.7.1 Mesej ini mengandungi virus atau kod hasad" in text
        assert "rule=perisian-hasad-virus ref=" in text
        await asyncio.sleep(0.5)
        assert upstream.messages == []
    records = gw.records()
    assert records[-1]["evidence"]["virus"][0]["signature"] == EICAR_SIGNATURE
