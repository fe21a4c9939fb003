"""Issue 14 items 1 and 2 end to end: the shipped rules (rules/20-klasifikasi.yaml) in a
real gateway, a real SMTP client and a real upstream. A TERHAD message whose encrypted
attachment's password is in the same message is refused 550 5.7.1; the reply and the
log (also with `log_subjects: clear`, which keeps the subject's text) never hold the
password; weak encryption is logged in monitor mode while the message is relayed."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support import encrypted_files as ef

from .support import FakeUpstream, GatewayFactory, GatewayHandle, in_thread
from .test_smtp_proxy import send

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Kunci#Rahsia9"
Factory = Callable[..., Awaitable[GatewayHandle]]


@pytest.fixture
def shipped_gateway(make_gateway: GatewayFactory, tmp_path: Path) -> Factory:
    async def make(upstream: FakeUpstream, **extra: Any) -> GatewayHandle:
        # The shipped rules, beside the empty test rule file write_config adds.
        shutil.copytree(REPO / "rules", tmp_path / "rules", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("examples"))
        return await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                                  rules="rules: []", relay_networks=["127.0.0.0/8"],
                                  extra=extra)

    return make


def message(subject: str, body: str, name: str, data: bytes) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "pegawai@anm.gov.my", "rakan@jpm.gov.my", subject
    m["Message-ID"] = "<laluan-1@anm.gov.my>"
    m.set_content(body)
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m.as_bytes().replace(b"\n", b"\r\n")


@pytest.mark.parametrize("log_subjects", ["hashed", "clear"])
async def test_password_in_the_same_message_is_refused_and_never_logged(
        shipped_gateway: Factory, upstream: FakeUpstream, tmp_path: Path,
        log_subjects: str) -> None:
    gw = await shipped_gateway(upstream, log_subjects=log_subjects)
    raw = message(f"TERHAD: Laporan (kata laluan: {PASSWORD})",
                  f"Tuan,\n\nKatalaluan = {PASSWORD}\n", "laporan.zip", ef.zip_aes(PASSWORD))
    code, text = await in_thread(lambda: send(gw.outbound, raw, sender="pegawai@anm.gov.my",
                                              rcpts=("rakan@jpm.gov.my",)))
    assert code == 550, text
    assert text.startswith(b"5.7.1") and b"rule=klasifikasi-kata-laluan-bersama" in text
    assert b"saluran berasingan" in text and b"separate channel" in text
    assert PASSWORD.encode() not in text
    assert upstream.messages == []
    [record] = gw.records()
    assert record["rule_id"] == "klasifikasi-kata-laluan-bersama"
    assert "3.2.2(a)(ii)(d)" in record["reference"]
    [opened] = record["evidence"]["opened"]
    assert opened["found"] == {"in": "subject"} and opened["scheme"] == "aes"
    if log_subjects == "clear":
        # The whole run is masked: the ")" may be the password's last character.
        assert record["subject"] == "TERHAD: Laporan (kata laluan: ********"
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".eml":
            assert PASSWORD.encode() not in path.read_bytes(), path


async def test_weak_encryption_is_monitored_and_relayed(
        shipped_gateway: Factory, upstream: FakeUpstream) -> None:
    gw = await shipped_gateway(upstream)
    raw = message("SULIT: Minit", "Tuan,\n\nKata laluan dihantar melalui SMS.\n",
                  "minit.doc", ef.fixture("rc4cryptoapi_password.doc"))
    code, text = await in_thread(lambda: send(gw.outbound, raw, sender="pegawai@anm.gov.my",
                                              rcpts=("rakan@jpm.gov.my",)))
    assert code == 250, text
    assert len(upstream.messages) == 1
    [record] = gw.records()
    assert record["event"] == "monitor"
    assert record["rule_id"] == "klasifikasi-penyulitan-lemah"
    [found] = record["evidence"]["encrypted"]
    assert (found["scheme"], found["weak"]) == ("rc4", True)
