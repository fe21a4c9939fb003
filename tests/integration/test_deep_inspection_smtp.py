"""Deep inspection end to end: shipped rules, real SMTP client, real gateway, real upstream.

The corpus tests prove what the view finds; these prove the verdict reaches the
client, that nothing refused reaches the upstream, and that the log keeps no
classified text, over the wire.
"""

from __future__ import annotations

import shutil
from email.message import EmailMessage
from pathlib import Path

from .support import FakeUpstream, GatewayFactory, in_thread
from .test_smtp_proxy import send

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "corpus" / "cases"


def shipped_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))


def with_attachment(path: Path, subject: str = "Dokumen mesyuarat") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "pegawai@anm.gov.my", "rakan@jpn.gov.my", subject
    m["Message-ID"] = "<deep@anm.gov.my>"
    m.set_content("Sila lihat lampiran.")
    m.add_attachment(path.read_bytes(), maintype="application", subtype="octet-stream",
                     filename=path.name)
    return m.as_bytes().replace(b"\n", b"\r\n")


async def test_deep_findings_decide_over_smtp(
        tmp_path: Path, make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    shipped_rules(tmp_path)
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []")
    cases = [
        # (message, expected code, enhanced, rule id)
        (with_attachment(CASES / "documents" / "Minit-footer.docx"), 550, b"5.7.1",
         "klasifikasi-lampiran-tidak-disulitkan"),
        (with_attachment(CASES / "documents" / "Laporan-page.pdf"), 550, b"5.7.1",
         "klasifikasi-lampiran-tidak-disulitkan"),
        ((CASES / "mime" / "duplicate-content-type.eml").read_bytes(), 550, b"5.6.0",
         "struktur-mime-samar"),
        (with_attachment(CASES / "documents" / "overlap-bomb.zip"), 554, b"5.6.0",
         "struktur-melebihi-had"),
        ((CASES / "mime" / "bad-base64-pe.eml").read_bytes(), 550, None,
         "perisian-hasad-boleh-laku"),
        (with_attachment(CASES / "documents" / "Prose.pdf"), 250, b"2.0.0", None),
    ]
    for msg, code, enhanced, rule in cases:
        got_code, text = await in_thread(
            lambda msg=msg: send(gw.outbound, msg, sender="pegawai@anm.gov.my",
                                 rcpts=("rakan@jpn.gov.my",)))
        assert got_code == code, (rule, got_code, text)
        if enhanced is not None:
            assert text.startswith(enhanced), text
        if rule is not None:
            assert f"rule={rule}".encode() in text, text
    assert len(upstream.messages) == 1
    assert b"Prose.pdf" in upstream.messages[0].data
    rules = [r["rule_id"] for r in gw.records()]
    assert rules.count("klasifikasi-lampiran-tidak-disulitkan") == 2


async def test_rahsia_in_a_document_leaves_no_subject_or_name_in_the_log(
        tmp_path: Path, make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    shipped_rules(tmp_path)
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []")
    secret_subject = "Operasi Kilat Timur"
    msg = with_attachment(CASES / "documents" / "Pelan-body.docx", subject=secret_subject)
    code, text = await in_thread(
        lambda: send(gw.outbound, msg, sender="pegawai@anm.gov.my", rcpts=("rakan@jpn.gov.my",)))
    assert code == 550 and b"rule=klasifikasi-rahsia" in text
    assert upstream.messages == []
    log_text = gw.log_path.read_text()
    assert secret_subject not in log_text
    assert "Pelan-body" not in log_text
    (record,) = gw.records()
    assert record["subject"] is None
    assert record["classification"] in ("RAHSIA", "RAHSIA BESAR")
