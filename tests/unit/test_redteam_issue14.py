"""Red-team reproducers for issue 14 (password masking, quoted-tag defang).

Each test demonstrated a defect found in review (then a strict xfail); all fixed since.
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.cli import check_result
from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message.passwords import mask
from gateway.observe.rejection_log import build_record
from gateway.pipeline import inspect, summarize
from gateway.policy_state import PolicyState, load_policy_for
from tests.support import encrypted_files as ef

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Rahsia#2025"
ENV = Envelope(direction="outbound", listener="outbound", client_ip="127.0.0.1",
               helo="h", mail_from="pegawai@anm.gov.my", rcpt_to=("rakan@jpm.gov.my",))


def _with_password(subject: str, body: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "pegawai@anm.gov.my", "rakan@jpm.gov.my", subject
    m["Message-ID"] = "<laluan@anm.gov.my>"
    m.set_content(body)
    m.add_attachment(ef.zip_aes(PASSWORD), maintype="application",
                     subtype="octet-stream", filename="laporan.zip")
    return m.as_bytes().replace(b"\n", b"\r\n")


def test_evidence_quoting_value_without_full_label_is_masked(tmp_path: Path) -> None:
    # Fixed (issue 14 review): an admin's body_matches: 'laluan\W+\S+' quoted
    # "laluan: <password>" and the log kept it; values are now masked wherever they stand.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "10-pantau.yaml").write_text(
        "rules:\n  - id: pantau-laluan\n    description: x\n    reference: x\n"
        "    direction: both\n    mode: monitor\n    when: {body_matches: 'laluan\\W+\\S+'}\n"
        "    action: reject\n    reply: {code: 550, enhanced: '5.7.1', "
        "text: {ms: x, en: x}}\n")
    config = load_config(REPO / "config" / "gateway.yaml")
    policy = load_policy_for(config.model_copy(update={"rules_dir": tmp_path / "rules",
                                                       "antivirus": None}))
    raw = _with_password("Laporan", f"Kata laluan: {PASSWORD}\n")
    got = inspect(policy, raw, ENV)
    assert got.verdict.hits and PASSWORD in str(got.verdict.hits[0].evidence)  # the trap
    for view in (got.view, summarize(got).view):
        record = build_record(event="monitor", ref="r", envelope=ENV, view=view,
                              verdict=got.verdict, reply=None)
        assert PASSWORD not in json.dumps(record), record


def test_subject_repeating_password_is_masked() -> None:
    # Fixed (issue 14 review): the body gives the password, the subject repeats it.
    raw = _with_password(f"Fail laporan ({PASSWORD})", f"Kata laluan: {PASSWORD}\n")
    config = load_config(REPO / "config" / "gateway.yaml")
    policy = load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                       "antivirus": None}))
    got = inspect(policy, raw, ENV)
    for view in (got.view, summarize(got).view):
        record = build_record(event="monitor", ref="r", envelope=ENV, view=view,
                              verdict=got.verdict, reply=None)
        assert record["subject"] is not None and PASSWORD not in record["subject"], record
    assert mask(f"Fail laporan ({PASSWORD})", got.view.secret_values) == \
        "Fail laporan (********)"
    assert PASSWORD not in json.dumps(check_result(
        policy, raw, direction="outbound", mail_from="pegawai@anm.gov.my",
        rcpt=["rakan@jpm.gov.my"], client_ip="127.0.0.1"))


@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


# Fixed (issue 14 review): two Subject fields are mime_defect duplicate_subject.
def test_second_subject_field_with_bare_tag_is_not_relayed(policy: PolicyState) -> None:
    raw = (b"From: x@evil.example\r\nTo: penerima@anm.gov.my\r\n"
           b"Subject: Re: [HEBAHAN JANM] Makluman\r\n"
           b"Subject: [HEBAHAN JANM] Sila klik pautan\r\n"
           b"Message-ID: <a@evil.example>\r\nIn-Reply-To: <fake@anm.gov.my>\r\n"
           b"\r\nhai\r\n")
    env = Envelope(direction="inbound", listener="inbound", client_ip="192.0.2.20",
                   helo="evil.example", mail_from="x@evil.example",
                   rcpt_to=("penerima@anm.gov.my",))
    got = inspect(policy, raw, env)
    relayed = got.relay_bytes if got.relay_bytes is not None else raw
    # Either refused, or no bare (undefanged) tag remains in any Subject field.
    assert got.reply is not None or b"Subject: [HEBAHAN JANM]" not in relayed
