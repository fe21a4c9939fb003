"""The rejection log: contract fields, one line per write, nothing classified on disk."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.observe.rejection_log import RejectionLog, build_record
from gateway.policy.verdict import Hit, Outcome, Reply, Verdict

CONTRACT_FIELDS = {"ts", "ref", "event", "listener", "direction", "client_ip", "helo",
                   "mail_from", "rcpt_to", "from", "subject", "message_id", "size", "rule_id",
                   "reference", "smtp_code", "enhanced_code", "reason", "evidence"}
ENV = Envelope("outbound", "out", "127.0.0.1", "client.example", "a@anm.gov.my",
               ("b@example.com",))


def verdict(evidence: dict[str, object]) -> Verdict:
    return Verdict(outcome=Outcome.REJECT, reply=Reply(550, "5.7.1", ("x",)), rule_id="r1",
                   reference="PPPA 3/2025", reason="because",
                   hits=(Hit("r1", "reject", "enforce", "PPPA 3/2025", evidence),),
                   evidence=evidence)


def test_record_has_every_contract_field(tmp_path: Path) -> None:
    raw = (b"From: Ali <a@anm.gov.my>\r\nSubject: Minit mesyuarat\r\nMessage-ID: <1@x>\r\n"
           b"\r\nbody\r\n")
    rec = build_record(event="reject", ref="R1", envelope=ENV, view=MessageView(raw),
                       verdict=verdict({"match": "Minit"}), reply=Reply(550, "5.7.1", ("x",)))
    assert set(rec) >= CONTRACT_FIELDS
    assert rec["subject"] == "Minit mesyuarat"
    assert rec["message_id"] == "<1@x>"
    assert rec["rcpt_to"] == ["b@example.com"]
    assert (rec["smtp_code"], rec["enhanced_code"]) == (550, "5.7.1")
    assert rec["evidence"] == {"match": "Minit"}
    assert rec["ts"].endswith("Z")


def test_rahsia_message_leaves_no_content_on_disk(tmp_path: Path) -> None:
    secret = "Pelan Operasi Khas Zulu"
    raw = f"From: a@anm.gov.my\r\nSubject: [RAHSIA] {secret}\r\n\r\nbody\r\n".encode()
    ev = {"classification": "RAHSIA", "where": [{"in": "subject", "text": secret}],
          "match": secret}
    log = RejectionLog(tmp_path / "log" / "r.jsonl")
    log.write(build_record(event="reject", ref="R2", envelope=ENV, view=MessageView(raw),
                           verdict=verdict(ev), reply=Reply(550, "5.7.1", ("x",))))
    log.close()
    text = (tmp_path / "log" / "r.jsonl").read_text()
    assert secret not in text
    rec = json.loads(text)
    assert rec["subject"] is None
    assert rec["classification"] == "RAHSIA"
    assert rec["evidence"] == {"classification": "RAHSIA", "where": [{"in": "subject"}]}


def test_each_write_is_one_line(tmp_path: Path) -> None:
    log = RejectionLog(tmp_path / "r.jsonl")
    raw = b"Subject: line\r\n one\r\n\r\n"
    for i in range(3):
        log.write(build_record(event="tempfail", ref=f"R{i}", envelope=ENV,
                               view=MessageView(raw), verdict=None, reply=None))
    log.reopen()
    log.write(build_record(event="reject", ref="R3", envelope=ENV, view=None, verdict=None,
                           reply=Reply(554, "5.7.1", ("x",)), rule_id="relay-access"))
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(line)["ref"] for line in lines] == ["R0", "R1", "R2", "R3"]
    assert json.loads(lines[0])["subject"] == "line one"
    assert json.loads(lines[3])["rule_id"] == "relay-access"


def test_tag_event_names_rule_and_reason() -> None:
    v = Verdict(outcome=Outcome.ACCEPT, subject_tags=("[HEBAHAN JANM]",),
                hits=(Hit("hebahan-tag", "tag", "enforce", "JANM 4.5", {"sender": "h@anm.gov.my"},
                          "Tandakan subjek hebahan"),))
    rec = build_record(event="tag", ref="R4", envelope=ENV, view=MessageView(b"Subject: x\r\n\r\n"),
                       verdict=v, reply=Reply(250, "2.0.0", ("OK",)))
    assert (rec["rule_id"], rec["reference"]) == ("hebahan-tag", "JANM 4.5")
    assert rec["reason"] == "Tandakan subjek hebahan"
