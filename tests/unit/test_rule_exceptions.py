"""Exceptions that stay narrow (issue 14 item 3): a rule's own `except:` and the
top-level `exceptions:` list, loaded with FILE:LINE errors, evaluated only for the rules
they name and only until they expire, recorded in the verdict and the log, read by the
cut-through change plan, and `gateway rules check`'s warnings (allowlist accepts,
expired and expiring exceptions).

The messages are real MIME built by the standard library; the executable is this
machine's own /bin/true.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml

from gateway import pipeline
from gateway.config import GatewayConfig
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.observe.rejection_log import build_record
from gateway.policy import lint
from gateway.policy.engine import evaluate, header_changes
from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.policy.verdict import Outcome
from gateway.policy_state import PolicyState
from gateway.problems import LoadError

REPO = Path(__file__).resolve().parents[2]
BUILTINS = builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ("127.0.0.0/8",))
PARTNER = "rakan@syarikat.com.my"
TODAY = date(2025, 6, 1)

REPLY = ("reply: {code: 552, enhanced: '5.3.4', text: {ms: 'Lampiran terlalu besar.', "
         "en: 'Attachment too large.'}}")
EXE_REPLY = ("reply: {code: 550, enhanced: '5.7.1', text: {ms: 'Fail boleh laku tidak "
             "dibenarkan.', en: 'Executable files are not allowed.'}}")

RULES = f"""
rules:
  - id: saiz-lampiran-1kb
    reference: "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.1.4(d)-(e)"
    when: {{attachment_size_over: 1KB}}
    action: reject
    {REPLY}
  - id: perisian-hasad-boleh-laku
    when: {{attachment_type: [executable]}}
    action: reject
    {EXE_REPLY}
exceptions:
  - id: rakan-kongsi-saiz
    rules: [saiz-lampiran-1kb]
    when: {{sender_in: [{PARTNER}]}}
    reason: "Rakan kongsi projek MyDigital menghantar pelan besar; diluluskan ICTSO 2025-05-01"
    expires: 2025-06-30
"""


def ruleset(tmp_path: Path, text: str = RULES, name: str = "10-test.yaml") -> RuleSet:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    return load_rules(d, BUILTINS)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(LoadError) as info:
        ruleset(tmp_path, text)
    return [str(p) for p in info.value.problems]


def env(mail_from: str = PARTNER, direction: str = "inbound") -> Envelope:
    return Envelope(direction=direction, listener="t", client_ip="192.0.2.7",  # type: ignore[arg-type]
                    helo="h", mail_from=mail_from, rcpt_to=("pegawai@anm.gov.my",))


def mail(sender: str, attachment: bytes, name: str = "pelan.bin") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "pegawai@anm.gov.my", "Pelan projek"
    m["Message-ID"] = "<pelan@syarikat.com.my>"
    m.set_content("Sila lihat lampiran.")
    m.add_attachment(attachment, maintype="application", subtype="octet-stream",
                     filename=name)
    return m.as_bytes().replace(b"\n", b"\r\n")


BIG = os.urandom(8 * 1024)  # over the 1KB rule, not an executable
EXE = Path("/bin/true").read_bytes()  # a real program: libmagic calls it executable


# -- loading -----------------------------------------------------------------------------
def test_unknown_rule_id_is_a_load_error_at_its_line(tmp_path: Path) -> None:
    text = RULES.replace("rules: [saiz-lampiran-1kb]",
                         "rules:\n      - saiz-lampiran-1kb\n      - saiz-lampiran-2kb")
    found = problems(tmp_path, text)
    line = text.splitlines().index("      - saiz-lampiran-2kb") + 1
    assert found == [f"{tmp_path / 'rules' / '10-test.yaml'}:{line}: unknown rule id "
                     "'saiz-lampiran-2kb' in rules: (an exception names rules defined in "
                     "the rule files)"]


def test_an_exception_may_name_a_rule_of_another_file(tmp_path: Path) -> None:
    head, tail = RULES.split("exceptions:")
    d = tmp_path / "rules"
    d.mkdir()
    (d / "10-a.yaml").write_text(head, encoding="utf-8")
    (d / "90-pengecualian.yaml").write_text("exceptions:" + tail, encoding="utf-8")
    rs = load_rules(d, BUILTINS)
    assert [e.id for e in rs.exceptions] == ["rakan-kongsi-saiz"]
    assert rs.exceptions[0].file.endswith("90-pengecualian.yaml")
    assert rs.exceptions[0].expires == date(2025, 6, 30)


@pytest.mark.parametrize(("change", "message"), [
    ("    reason: \"Rakan", "an exception needs 'reason: <text>'"),
    ("    expires: 2025-06-30", "an exception needs 'expires: YYYY-MM-DD'"),
    ("    rules: [saiz-lampiran-1kb]", "an exception needs 'rules: [RULE_ID, ...]'"),
    ("    when: {sender_in", "exception has no 'when' conditions"),
])
def test_required_exception_keys(tmp_path: Path, change: str, message: str) -> None:
    text = "\n".join(line for line in RULES.splitlines() if not line.startswith(change))
    found = problems(tmp_path, text)
    assert len(found) == 1 and message in found[0], found
    assert found[0].startswith(f"{tmp_path / 'rules' / '10-test.yaml'}:")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("expires: 2025-06-30", "expires: 2025-02-30", "'2025-02-30' is not a date"),
    ("expires: 2025-06-30", "expires: '2025-02-30'", "expires: YYYY-MM-DD"),
    ("expires: 2025-06-30", "expires: 'esok'", "got 'esok'"),
    ("rules: [saiz-lampiran-1kb]", "rules: []", "rules: [RULE_ID, ...]"),
    ("    expires: 2025-06-30", "    expires: 2025-06-30\n    skip_all: true",
     "unknown exception key 'skip_all'"),
    ("when: {sender_in: [", "when: {sender_inn: [", "unknown condition 'sender_inn'"),
    ("- id: rakan-kongsi-saiz", "- id: Rakan Kongsi", "exception id must be"),
])
def test_bad_exception_entries(tmp_path: Path, old: str, new: str, message: str) -> None:
    found = problems(tmp_path, RULES.replace(old, new))
    assert any(message in p for p in found), found
    line = RULES.replace(old, new).splitlines().index(
        next(x for x in RULES.replace(old, new).splitlines() if new.splitlines()[-1] in x)) + 1
    assert any(p.startswith(f"{tmp_path / 'rules' / '10-test.yaml'}:{line}: ")
               for p in found), (found, line)


def test_duplicate_exception_id_and_bad_except(tmp_path: Path) -> None:
    text = RULES + RULES.split("exceptions:\n")[1]
    found = problems(tmp_path, text)
    assert any("duplicate exception id 'rakan-kongsi-saiz' (first at" in p for p in found)
    bad = RULES.replace("    when: {attachment_type: [executable]}",
                        "    when: {attachment_type: [executable]}\n    except: {size: 1}")
    found = problems(tmp_path, bad)
    assert any("except" in p and "unknown condition 'size'" in p for p in found), found


def test_a_rule_that_fails_to_load_is_not_also_an_unknown_id(tmp_path: Path) -> None:
    found = problems(tmp_path, RULES.replace("when: {attachment_size_over: 1KB}",
                                             "when: {attachment_size_over: 1XB}"))
    assert len(found) == 1 and "attachment_size_over" in found[0], found


# -- evaluation --------------------------------------------------------------------------
def verdict(rs: RuleSet, raw: bytes, mail_from: str = PARTNER, today: date = TODAY
            ) -> tuple[str, str | None, list[tuple[str, str | None]]]:
    v = evaluate(rs, MessageView(raw), env(mail_from), today=today)
    return v.outcome.value, v.rule_id, [(e.rule_id, e.exception_id) for e in v.exemptions]


def test_the_exception_exempts_the_partner_from_the_size_rule_only(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    # Large: refused for anyone else, exempt for the partner (recorded).
    assert verdict(rs, mail("x@example.org", BIG), "x@example.org") == \
        ("reject", "saiz-lampiran-1kb", [])
    assert verdict(rs, mail(PARTNER, BIG)) == \
        ("accept", None, [("saiz-lampiran-1kb", "rakan-kongsi-saiz")])
    # A program: over 1KB too, so the size exception applies, but it never skips the
    # executable rule it does not name.
    assert verdict(rs, mail(PARTNER, EXE)) == \
        ("reject", "perisian-hasad-boleh-laku", [("saiz-lampiran-1kb", "rakan-kongsi-saiz")])


def test_an_expired_exception_no_longer_applies(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    raw = mail(PARTNER, BIG)
    # The expires day is the last day it applies (the gateway's local date).
    assert verdict(rs, raw, today=date(2025, 6, 30))[0] == "accept"
    assert verdict(rs, raw, today=date(2025, 7, 1)) == ("reject", "saiz-lampiran-1kb", [])


def test_the_default_date_is_the_gateway_local_date(tmp_path: Path) -> None:
    past = ruleset(tmp_path, RULES.replace("2025-06-30", "2000-01-01"))
    future = ruleset(tmp_path, RULES.replace("2025-06-30", "2999-12-31"), "10-test.yaml")
    raw = mail(PARTNER, BIG)
    assert evaluate(past, MessageView(raw), env()).outcome is Outcome.REJECT
    assert evaluate(future, MessageView(raw), env()).outcome is Outcome.ACCEPT
    assert future.timezone == "Asia/Kuala_Lumpur"


def test_a_rule_own_except(tmp_path: Path) -> None:
    text = RULES.replace(
        "    when: {attachment_type: [executable]}",
        "    when: {attachment_type: [executable]}\n"
        "    except: {any: [{client_ip: [10.1.0.0/16]}, {not: {recipient_domain: [anm.gov.my]}}]}")
    rs = ruleset(tmp_path, text)
    raw = mail("x@example.org", EXE)
    v = evaluate(rs, MessageView(raw), env("x@example.org"), today=TODAY)
    assert v.rule_id == "saiz-lampiran-1kb"  # the size rule comes first
    text = text.replace("attachment_size_over: 1KB", "attachment_size_over: 10MB")
    rs = ruleset(tmp_path, text)
    v = evaluate(rs, MessageView(raw), env("x@example.org"), today=TODAY)
    assert v.rule_id == "perisian-hasad-boleh-laku"  # the except does not hold
    inside = Envelope(direction="outbound", listener="t", client_ip="10.1.2.3", helo="h",
                      mail_from="x@anm.gov.my", rcpt_to=("pegawai@anm.gov.my",))
    v = evaluate(rs, MessageView(raw), inside, today=TODAY)
    assert v.outcome is Outcome.ACCEPT
    assert [e.as_dict() for e in v.exemptions] == [{
        "rule_id": "perisian-hasad-boleh-laku", "kind": "except", "exception_id": None,
        "reason": None, "expires": None}]


# -- the log -----------------------------------------------------------------------------
def test_the_log_records_which_exception_applied(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    for raw, event, rule_id in ((mail(PARTNER, BIG), "exempt", "saiz-lampiran-1kb"),
                                (mail(PARTNER, EXE), "reject", "perisian-hasad-boleh-laku")):
        view = MessageView(raw)
        v = evaluate(rs, view, env(), today=TODAY)
        assert v.event == event
        record = build_record(event=event, ref="R1", envelope=env(), view=view, verdict=v,
                              reply=v.reply)
        assert record["rule_id"] == rule_id
        assert record["exceptions"] == [{
            "rule_id": "saiz-lampiran-1kb", "kind": "exception",
            "exception_id": "rakan-kongsi-saiz",
            "reason": "Rakan kongsi projek MyDigital menghantar pelan besar; diluluskan "
                      "ICTSO 2025-05-01", "expires": "2025-06-30"}]
    view = MessageView(mail(PARTNER, BIG))
    v = evaluate(rs, view, env(), today=TODAY)
    exempt = build_record(event="exempt", ref="R2", envelope=env(), view=view, verdict=v,
                          reply=None)
    assert exempt["reference"] == "PPPA Bil. 3 Tahun 2025, Lampiran A, 3.1.4(d)-(e)"
    assert exempt["reason"].startswith("Rakan kongsi projek")
    assert exempt["matched"] == []


# -- the cut-through change plan ---------------------------------------------------------
TAG_RULE = "  - {id: tanda-luar, when: {recipient_outside_agency: true}, action: tag, " \
    "tag: '[LUAR]'"


@pytest.mark.parametrize(("text", "blocker"), [
    # The rule's own except reads the body: whether the tag is added depends on it.
    (TAG_RULE + ", except: {body_matches: DALAMAN}}", "depends on body_matches"),
    # An exception naming the tag rule reads the body.
    (TAG_RULE + "}\nexceptions:\n  - {id: p, rules: [tanda-luar], when: {attachment_type: "
     "[pdf]}, reason: r, expires: 2999-01-01}", "depends on attachment_type"),
    # sender_auth in a refusal's except is reached only when the body condition held.
    ("  - {id: r, when: {body_matches: x}, except: {sender_auth: {spf: [pass]}}, "
     "action: reject, reply: {code: 550, enhanced: '5.7.1', text: t}}",
     "whether its sender_auth condition is reached"),
])
def test_exception_conditions_that_read_the_body_block_cut_through(
        tmp_path: Path, text: str, blocker: str) -> None:
    plan = ruleset(tmp_path, "rules:\n" + text).change_plan
    assert not plan.header_decides
    assert any(blocker in b for b in plan.blockers), plan.blockers


def test_sender_auth_in_an_exception_is_in_the_plan(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, """
rules:
  - {id: r, direction: inbound, when: {recipient_domain: [anm.gov.my]}, action: reject,
     reply: {code: 550, enhanced: '5.7.1', text: t}}
exceptions:
  - {id: e, rules: [r], when: {sender_auth: {spf: [temperror]}}, reason: r, expires: 2999-01-01}
""")
    plan = rs.change_plan
    assert plan.header_decides and [r.id for r in plan.rules] == ["r"]
    assert plan.reads_auth("inbound")


HEADER_RULES = """
rules:
  - {id: tanda-luar, when: {recipient_outside_agency: true}, action: tag, tag: '[LUAR]',
     except: {from_domain: [anm.gov.my]}}
  - {id: tanda-rakan, when: {sender_domain: [syarikat.com.my]}, action: tag, tag: '[RAKAN]'}
  - {id: tolak, when: {subject_matches: TOLAK}, action: reject,
     reply: {code: 550, enhanced: '5.7.1', text: t}}
exceptions:
  - {id: rakan-tanpa-tanda, rules: [tanda-rakan], when: {subject_matches: Pelan},
     reason: "Pelan projek", expires: 2999-01-01}
  - {id: tamat, rules: [tanda-luar], when: {sender_domain: [example.org]}, reason: lama,
     expires: 2000-01-01}
"""


@pytest.mark.parametrize(("sender", "rcpt", "subject", "tags"), [
    (PARTNER, "b@example.com", "Pelan", ["[LUAR]"]),
    (PARTNER, "b@example.com", "Lain", ["[LUAR]", "[RAKAN]"]),
    ("a@anm.gov.my", "b@example.com", "Lain", []),
    ("x@example.org", "b@example.com", "Lain", ["[LUAR]"]),  # expired: the tag applies
    (PARTNER, "b@anm.gov.my", "TOLAK Pelan", None),
])
def test_header_phase_agrees_with_the_whole_message(tmp_path: Path, sender: str, rcpt: str,
                                                    subject: str, tags: list[str] | None
                                                    ) -> None:
    config = GatewayConfig.model_validate({
        "listeners": [{"name": "o", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": "smtp://127.0.0.1:25", "agency_domains": ["anm.gov.my"],
        "hostname": "gw.test", "cut_through": True})
    rs = ruleset(tmp_path, HEADER_RULES)
    assert rs.change_plan.header_decides, rs.change_plan.blockers
    policy = PolicyState(config, rs)
    raw = (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nIsi.\r\n").encode()
    envelope = Envelope(direction="outbound", listener="o", client_ip="127.0.0.1", helo="h",
                        mail_from=sender, rcpt_to=(rcpt,))
    end = raw.index(b"\r\n\r\n") + 4
    changes = header_changes(rs, MessageView(raw[:end]), envelope)
    decision = pipeline.decide_header(policy, raw[:end], envelope)
    whole = pipeline.inspect(policy, raw, envelope, "R", auth=decision.auth)
    assert decision.agrees(whole) == whole.relay
    if tags is None:
        assert not whole.relay
    else:
        assert list(changes.subject_tags) == tags == list(whole.verdict.subject_tags)


# -- rules check warnings ----------------------------------------------------------------
ALLOW = """
rules:
  - id: senarai-putih-rakan
    when: {any: [{sender_in: [rakan@syarikat.com.my]}, {client_ip: [192.0.2.0/24]}]}
    action: accept
  - id: perisian-hasad-boleh-laku
    when: {attachment_type: [executable]}
    action: reject
    reply: {code: 550, enhanced: '5.7.1', text: t}
  - id: saiz
    when: {attachment_size_over: 1KB}
    action: reject
    reply: {code: 552, enhanced: '5.3.4', text: t}
"""


def test_lint_allowlist_accept(tmp_path: Path) -> None:
    rs = ruleset(tmp_path, ALLOW)
    found = lint.allowlist_warnings(rs)
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'rules' / '10-test.yaml'}:3: warning: rule "
                               "senarai-putih-rakan accepts on who sends")
    assert "skips every later rule, including perisian-hasad-boleh-laku" in found[0]
    assert "write an exception naming those rules" in found[0]
    # An accept that also reads the content, or one placed last, is not warned about.
    content = ALLOW.replace("{client_ip: [192.0.2.0/24]}]}",
                            "{client_ip: [192.0.2.0/24]}], subject_matches: Pelan}")
    assert lint.allowlist_warnings(ruleset(tmp_path, content)) == []
    last = "rules:\n" + ALLOW.split("rules:\n")[1].split("  - id: perisian")[0]
    assert lint.allowlist_warnings(ruleset(tmp_path, last)) == []


def test_lint_expiry(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    assert lint.expiry_warnings(rs, date(2025, 6, 15)) == []
    soon = lint.expiry_warnings(rs, date(2025, 6, 16))
    assert len(soon) == 1 and "exception rakan-kongsi-saiz expires in 14 days" in soon[0]
    assert "expires today" in lint.expiry_warnings(rs, date(2025, 6, 30))[0]
    gone = lint.expiry_warnings(rs, date(2025, 7, 1))
    assert len(gone) == 1 and "expired on 2025-06-30" in gone[0]
    line = RULES.splitlines().index("  - id: rakan-kongsi-saiz") + 1
    assert gone[0].startswith(f"{tmp_path / 'rules' / '10-test.yaml'}:{line}: warning: ")


def test_lint_exempt_size_rule_that_sets_the_hard_limit(tmp_path: Path) -> None:
    rs = ruleset(tmp_path)
    found = lint.size_limit_warnings(rs, max_message_size_set=False)
    assert len(found) == 1 and "limits.max_message_size" in found[0]
    assert lint.size_limit_warnings(rs, max_message_size_set=True) == []


def run_rules_check(tmp_path: Path, rules: str) -> subprocess.CompletedProcess[str]:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "10-test.yaml").write_text(rules, encoding="utf-8")
    config = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text(encoding="utf-8"))
    config.pop("antivirus", None)
    config.update({"rules_dir": str(d), "rejection_log": str(tmp_path / "log.jsonl"),
                   "upstream": f"maildir:{tmp_path / 'mail'}"})
    (tmp_path / "mail").mkdir(exist_ok=True)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "gateway", "rules", "check", "--config",
                           str(path)], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)


def test_rules_check_prints_the_warnings_and_stays_valid(tmp_path: Path) -> None:
    text = ALLOW + "exceptions:\n" + RULES.split("exceptions:\n")[1] \
        .replace("saiz-lampiran-1kb", "saiz").replace("2025-06-30", "2001-01-01")
    proc = run_rules_check(tmp_path, text)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: 3 rules")
    warnings = proc.stderr.splitlines()
    assert any("warning: rule senarai-putih-rakan accepts on who sends" in w
               for w in warnings), warnings
    assert any("warning: exception rakan-kongsi-saiz expired on 2001-01-01" in w
               for w in warnings), warnings
    proc = run_rules_check(tmp_path, RULES.replace("2025-06-30", "2999-12-31"))
    assert proc.returncode == 0 and "expire" not in proc.stderr, proc.stderr
