"""Issue 14 through the milter front end, with the shipped rules.

The proxy tests of each item (test_password_in_message_smtp.py, test_labels_smtp.py,
test_rule_exceptions_smtp.py) run the same pipeline behind aiosmtpd; these run it
behind the milter protocol (tests/integration/milter_client.py speaks it as Postfix
does), where the message arrives as header and body events and the verdict goes back
as milter replies: a password sent with its file, a weak cipher, a Purview label and
an exception are decided the same way.
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
from tests.corpus.make_labels import CASES, GUID_RAHSIA, LABEL_MAP
from tests.support import encrypted_files as ef

from .milter_client import MilterClient
from .support import GatewayHandle, started_gateway, write_config

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Kunci#Rahsia9"
OUTSIDE = "192.0.2.10"
GUID_LABEL = GUID_RAHSIA  # LABEL_MAP names it in capitals: GUIDs match in any case
EXCEPTION = """
exceptions:
  - id: rakan-kongsi-pautan
    rules: [pautan-storan-luar]
    when: {sender_in: [rakan@syarikat.com.my]}
    reason: "Perkongsian fail projek; diluluskan ICTSO"
    expires: 2999-12-31
"""


@pytest.fixture
async def milter_gw(tmp_path: Path) -> AsyncIterator[GatewayHandle]:
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules="rules: []")
    shutil.copytree(REPO / "rules", tmp_path / "rules", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("examples"))
    (tmp_path / "rules" / "10-test.yaml").unlink()
    (tmp_path / "rules" / "99-pengecualian.yaml").write_text(EXCEPTION)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"] += [
        {"name": "milter", "listen": "127.0.0.1:0", "direction": "inbound", "mode": "milter"}]
    config["label_map"] = LABEL_MAP
    path.write_text(yaml.safe_dump(config))
    async with started_gateway(path) as gw:
        yield gw


def mail(subject: str, body: str, *, sender: str = "rakan@syarikat.com.my",
         attachment: tuple[str, bytes] | None = None, extra: bytes = b"") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "pegawai@anm.gov.my", subject
    m["Message-ID"] = "<isu14@syarikat.com.my>"
    m.set_content(body)
    if attachment is not None:
        m.add_attachment(attachment[1], maintype="application", subtype="octet-stream",
                         filename=attachment[0])
    return extra + m.as_bytes().replace(b"\n", b"\r\n")


async def test_issue14_conditions_decide_through_the_milter(
        milter_gw: GatewayHandle, tmp_path: Path) -> None:
    client = await MilterClient.open(milter_gw.gateway.address("milter"))
    sender, rcpts = "rakan@syarikat.com.my", ["pegawai@anm.gov.my"]
    try:
        await client.connect(OUTSIDE)
        # Item 1: the password travels with its file.
        out = await client.message(mail("SULIT: Laporan", f"Kata laluan: {PASSWORD}\n",
                                        attachment=("laporan.zip", ef.zip_aes(PASSWORD))),
                                   sender, rcpts)
        assert out.stage == "eob" and "rule=klasifikasi-kata-laluan-bersama" in out.text
        assert PASSWORD not in out.text
        # Item 2: a weak cipher, the password sent elsewhere: relayed, logged.
        out = await client.message(
            mail("SULIT: Minit", "Kata laluan dihantar melalui SMS.\n",
                 attachment=("minit.doc", ef.fixture("rc4cryptoapi_password.doc"))),
            sender, rcpts)
        assert out.replies[-1] == p.Continue(), out
        # Item 6: a Purview label by GUID is a RAHSIA marking.
        header = (f"msip_labels: MSIP_Label_{GUID_LABEL}_Enabled=true; "
                  f"MSIP_Label_{GUID_LABEL}_SiteId=00000000-0000-0000-0000-000000000001;"
                  "\r\n").encode()
        out = await client.message(mail("Minit mesyuarat", "Sila baca.\n", extra=header),
                                   sender, rcpts)
        assert out.stage == "eob" and "rule=klasifikasi-rahsia" in out.text
        # Item 7: a TERHAD subject on a document labelled RAHSIA: the highest decides,
        # the downgrade is logged with it.
        out = await client.message(
            mail("TERHAD: Dokumen", "Sila baca.\n",
                 attachment=("dokumen.docx", (CASES / "LabelInfo.docx").read_bytes())),
            sender, rcpts)
        assert out.stage == "eob" and "rule=klasifikasi-rahsia" in out.text
        # Item 3: the exception exempts this partner from the link rule only.
        out = await client.message(
            mail("Fail projek", "https://www.dropbox.com/s/abc/pelan.pdf\n"), sender, rcpts)
        assert out.replies[-1] == p.Continue(), out
    finally:
        await client.close()
    records = milter_gw.records()
    assert [r["rule_id"] for r in records] == [
        "klasifikasi-kata-laluan-bersama", "klasifikasi-penyulitan-lemah",
        "klasifikasi-rahsia", "klasifikasi-rahsia", "pautan-storan-luar"]
    assert records[1]["event"] == "monitor"
    assert "klasifikasi-penandaan-tidak-sepadan" in {m["rule_id"] for m in records[3]["matched"]}
    assert records[4]["event"] == "exempt"
    assert records[4]["exceptions"][0]["exception_id"] == "rakan-kongsi-pautan"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
