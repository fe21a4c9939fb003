"""Office macros end to end: the shipped rules (rules/55-makro.yaml), a real SMTP client
against the running gateway and a real upstream, and the milter.

The documents are the corpus' (tests/corpus/make_macros.py): real Word and Excel 97
files with a VBA project made by Excel, read by olevba in the inspection process.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.frontends.milter import protocol as p

from .milter_client import MilterClient
from .support import (
    FakeUpstream,
    GatewayFactory,
    GatewayHandle,
    in_thread,
    started_gateway,
    write_config,
)
from .test_smtp_proxy import send

REPO = Path(__file__).resolve().parents[2]
MACROS = REPO / "tests" / "corpus" / "cases" / "macros"
OUTSIDE = "192.0.2.10"


def shipped_rules(tmp_path: Path) -> None:
    shutil.copytree(REPO / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("examples"),
                    dirs_exist_ok=True)
    (tmp_path / "rules" / "10-test.yaml").unlink(missing_ok=True)


def with_attachment(name: str, sender: str = "luar@example.org",
                    to: str = "pegawai@anm.gov.my") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, "Dokumen"
    m["Message-ID"] = "<makro@example.org>"
    m.set_content("Sila lihat lampiran.")
    m.add_attachment((MACROS / name).read_bytes(), maintype="application",
                     subtype="octet-stream", filename=name)
    return m.as_bytes().replace(b"\n", b"\r\n")


async def test_autoexec_suspicious_doc_is_refused_and_a_benign_macro_is_monitored(
        tmp_path: Path, make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    shipped_rules(tmp_path)
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            relay_networks=["10.99.0.0/16"])
    bad = with_attachment("Makro-AutoOpen.doc")
    code, text = await in_thread(lambda: send(gw.inbound, bad, sender="luar@example.org",
                                              rcpts=("pegawai@anm.gov.my",)))
    assert code == 554, text
    assert text.startswith(b"5.7.1"), text
    assert b"rule=makro-autoexec-mencurigakan" in text
    assert b"makro yang berjalan sendiri" in text and b"runs by itself" in text
    assert upstream.messages == []

    good = with_attachment("Makro-biasa.doc")
    code, text = await in_thread(lambda: send(gw.inbound, good, sender="luar@example.org",
                                              rcpts=("pegawai@anm.gov.my",)))
    assert code == 250, text
    [relayed] = upstream.messages
    assert b"Makro-biasa.doc" in relayed.data

    refused, monitored = gw.records()
    assert refused["rule_id"] == "makro-autoexec-mencurigakan"
    assert refused["event"] == "reject" and refused["smtp_code"] == 554
    [hit] = refused["evidence"]["office_macros"]
    assert hit["name"] == "Makro-AutoOpen.doc"
    assert hit["levels"] == ["present", "autoexec", "suspicious"]
    assert hit["autoexec"] == ["AutoOpen"]
    assert "Shell" in hit["suspicious"] and "CreateObject" in hit["suspicious"]
    assert monitored["rule_id"] == "makro-pantau" and monitored["event"] == "monitor"
    assert monitored["evidence"]["office_macros"][0]["levels"] == ["present"]


async def test_macro_document_in_a_zip_and_renamed_docx_are_refused(
        tmp_path: Path, make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    shipped_rules(tmp_path)
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            relay_networks=["10.99.0.0/16"])
    for name, at in (("Arkib-makro.zip", "bajet/Bajet-AutoOpen.xls"),
                     ("Laporan.docx", "word/vbaProject.bin")):
        msg = with_attachment(name)

        def deliver(msg: bytes = msg) -> tuple[int, bytes]:
            return send(gw.inbound, msg, sender="luar@example.org",
                        rcpts=("pegawai@anm.gov.my",))

        code, text = await in_thread(deliver)
        assert code == 554 and b"rule=makro-autoexec-mencurigakan" in text, (name, text)
        assert gw.records()[-1]["evidence"]["office_macros"][0]["at"] == at
    assert upstream.messages == []


@pytest.fixture
async def milter_gw(tmp_path: Path) -> AsyncIterator[GatewayHandle]:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules="rules: []")
    shipped_rules(tmp_path)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"] += [
        {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"}]
    path.write_text(yaml.safe_dump(config))
    async with started_gateway(path) as gw:
        yield gw


async def test_milter_refuses_an_autoexec_suspicious_spreadsheet(
        milter_gw: GatewayHandle) -> None:
    client = await MilterClient.open(milter_gw.gateway.address("milter"))
    try:
        await client.connect(OUTSIDE)
        out = await client.message(with_attachment("Bajet-AutoOpen.xls"),
                                   "luar@example.org", ["pegawai@anm.gov.my"])
        assert out.stage == "eob"
        lines = out.text.split("\r\n")
        assert [line[:10] for line in lines] == ["554-5.7.1 ", "554-5.7.1 ", "554 5.7.1 "]
        assert "rule=makro-autoexec-mencurigakan" in lines[-1]
        out = await client.message(with_attachment("Laporan-makro.docm"),
                                   "luar@example.org", ["pegawai@anm.gov.my"])
        assert out.replies == [p.Continue()]
    finally:
        await client.close()
    refused, monitored = milter_gw.records()
    assert refused["rule_id"] == "makro-autoexec-mencurigakan"
    assert refused["evidence"]["office_macros"][0]["name"] == "Bajet-AutoOpen.xls"
    assert monitored["rule_id"] == "makro-pantau"
