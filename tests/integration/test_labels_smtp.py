"""Purview labels (`label_map:`) and `marking_mismatch` through the running gateway: a real
SMTP client, the proxy with the SHIPPED rules, a real upstream, and the rejection log.

The messages carry the corpus' labels (tests/corpus/make_labels.py): the msip_labels
header Outlook writes, and a Word file with `docMetadata/LabelInfo.xml`.
"""

from __future__ import annotations

import re
import shutil
from email.message import EmailMessage
from pathlib import Path

import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway
from tests.corpus.make_labels import CASES, LABEL_MAP

from .support import FakeUpstream, in_thread, write_config
from .test_smtp_proxy import send

REPO = Path(__file__).resolve().parents[2]
PLAIN_DOCX = REPO / "tests" / "corpus" / "cases" / "office" / "ooxml" / "Footnote-prose.docx"


def labelled(subject: str, header_from: str | None, attachment: Path) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "pegawai@anm.gov.my", "penerima@jpn.gov.my", subject
    m["Message-ID"] = "<label-smtp@anm.gov.my>"
    m.set_content("Sila lihat lampiran.")
    m.add_attachment(attachment.read_bytes(), maintype="application",
                     subtype="octet-stream", filename=attachment.name)
    raw = m.as_bytes().replace(b"\n", b"\r\n")
    if header_from is not None:
        found = re.search(rb"(?m)^msip_labels: .*?\r\n", (CASES / header_from).read_bytes())
        assert found is not None
        raw = found.group(0) + raw
    return raw


async def test_mapped_labels_decide_as_written_markings_and_mismatch_is_monitored(
        tmp_path: Path, upstream: FakeUpstream) -> None:
    shutil.copytree(REPO / "rules", tmp_path / "rules",
                    ignore=shutil.ignore_patterns("examples"), dirs_exist_ok=True)
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}",
                        rules="rules: []")
    config = yaml.safe_load(path.read_text())
    config["label_map"] = LABEL_MAP
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        out = gateway.address("outbound")
        rcpts = ("penerima@jpn.gov.my",)
        # A label named "Dalaman" (TERHAD only by its GUID-free name in label_map) on
        # mail with a plain attachment: refused as a written TERHAD is.
        guid_label = labelled("Minit mesyuarat", "Header-guid.eml", PLAIN_DOCX)
        code, text = await in_thread(lambda: send(out, guid_label, "pegawai@anm.gov.my", rcpts))
        assert code == 550, text
        assert b"rule=klasifikasi-lampiran-tidak-disulitkan" in text
        # A TERHAD subject on a document whose LabelInfo.xml label id maps to RAHSIA:
        # refused as RAHSIA (the highest decides), the downgrade logged in monitor mode.
        downgrade = labelled("TERHAD: Dokumen", None, CASES / "LabelInfo.docx")
        code, text = await in_thread(lambda: send(out, downgrade, "pegawai@anm.gov.my", rcpts))
        assert code == 550, text
        assert b"rule=klasifikasi-rahsia" in text
        # An unknown label ("Awam") changes nothing: relayed.
        unknown = labelled("Makluman", "Header-awam.eml", PLAIN_DOCX)
        code, text = await in_thread(lambda: send(out, unknown, "pegawai@anm.gov.my", rcpts))
        assert code == 250, text
        assert len(upstream.messages) == 1
    finally:
        await gateway.stop(drain_timeout=1.0)

    records = [yaml.safe_load(line) for line in
               (tmp_path / "rejections.jsonl").read_text().splitlines()]
    refused_terhad = [r for r in records
                      if r.get("rule_id") == "klasifikasi-lampiran-tidak-disulitkan"]
    assert refused_terhad and refused_terhad[0]["classification"] == "TERHAD"
    # The refusal's record lists the monitor hit before the deciding rule's.
    (rahsia,) = [r for r in records if r.get("rule_id") == "klasifikasi-rahsia"]
    assert rahsia["classification"] == "RAHSIA"
    assert [(m["rule_id"], m["mode"]) for m in rahsia["matched"]] == [
        ("klasifikasi-penandaan-tidak-sepadan", "monitor"), ("klasifikasi-rahsia", "enforce")]
    (found,) = rahsia["matched"][0]["evidence"]["marking_mismatch"]
    assert found["kind"] == "text_below_attachment"
    assert (found["lower"]["marking"], found["higher"]["marking"]) == ("TERHAD", "RAHSIA")
    # RAHSIA mail: the log keeps the levels, never the file name or the label's place.
    assert "at" not in found["lower"] and "at" not in found["higher"]
    assert "LabelInfo.docx" not in (tmp_path / "rejections.jsonl").read_text()
