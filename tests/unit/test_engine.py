"""The engine's evaluation order: monitor, tag, terminal actions, direction, combinators."""

from __future__ import annotations

from pathlib import Path

from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.policy.engine import evaluate
from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.policy.verdict import Outcome

MSG = b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: hello\r\n\r\n" + b"x" * 2000 + b"\r\n"


def rules(tmp_path: Path, text: str) -> RuleSet:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "10-test.yaml").write_text(text)
    return load_rules(d, builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ()))


def env(direction: str = "outbound", mail_from: str = "a@anm.gov.my") -> Envelope:
    return Envelope(direction=direction, listener="t", client_ip="127.0.0.1",  # type: ignore[arg-type]
                    helo="h", mail_from=mail_from, rcpt_to=("b@example.com",))


REJECT = "reply: {code: 550, enhanced: '5.7.1', text: {ms: tolak, en: refused}}"


def test_first_enforced_terminal_rule_decides_and_stops(tmp_path: Path) -> None:
    rs = rules(tmp_path, f"""
rules:
  - {{id: big, when: {{message_size_over: 1KB}}, action: reject, {REJECT}}}
  - {{id: later, when: {{message_size_over: 1KB}}, action: tag, tag: "[X]"}}
""")
    v = evaluate(rs, MessageView(MSG), env())
    assert v.outcome is Outcome.REJECT
    assert v.rule_id == "big"
    assert [h.rule_id for h in v.hits] == ["big"]
    assert v.reply is not None and v.reply.code == 550
    assert v.reply.lines == ("tolak", "refused")
    assert v.evidence == {"size": len(MSG), "limit": 1024}


def test_monitor_records_without_acting(tmp_path: Path) -> None:
    rs = rules(tmp_path, f"""
rules:
  - {{id: watch, mode: monitor, when: {{message_size_over: 1KB}}, action: reject, {REJECT}}}
""")
    v = evaluate(rs, MessageView(MSG), env())
    assert v.outcome is Outcome.ACCEPT
    assert [(h.rule_id, h.mode) for h in v.hits] == [("watch", "monitor")]
    assert v.event == "monitor"


def test_tags_and_headers_accumulate_then_accept(tmp_path: Path) -> None:
    rs = rules(tmp_path, """
rules:
  - {id: t1, when: {sender_domain: "@agency_domains"}, action: tag, tag: "[A]"}
  - {id: t2, when: {sender_domain: [anm.gov.my]}, action: tag, tag: "[A]"}
  - {id: h1, when: {sender_domain: [gov.my]}, action: add_header,
     header: {name: X-Checked, value: "yes"}}
  - {id: ok, when: {sender_domain: [anm.gov.my]}, action: accept}
  - {id: never, when: {sender_domain: [anm.gov.my]}, action: tag, tag: "[B]"}
""")
    v = evaluate(rs, MessageView(MSG), env())
    assert v.outcome is Outcome.ACCEPT
    assert v.subject_tags == ("[A]",)
    assert v.added_headers == (("X-Checked", "yes"),)
    assert [h.rule_id for h in v.hits] == ["t1", "t2", "h1", "ok"]
    assert v.event == "tag"
    assert v.hits[0].reason == "t1"  # no description: the id stands in


def test_direction_filters_rules(tmp_path: Path) -> None:
    rs = rules(tmp_path, f"""
rules:
  - {{id: out-only, direction: outbound, when: {{message_size_over: 1KB}}, action: reject,
     {REJECT}}}
""")
    assert evaluate(rs, MessageView(MSG), env("inbound")).outcome is Outcome.ACCEPT
    assert evaluate(rs, MessageView(MSG), env("outbound")).outcome is Outcome.REJECT


def test_any_all_not(tmp_path: Path) -> None:
    rs = rules(tmp_path, f"""
rules:
  - id: foreign-or-big
    when:
      all:
        - any: [{{sender_domain: [gmail.com]}}, {{message_size_over: 100KB}}]
        - not: {{sender_domain: [yahoo.com]}}
    action: reject
    {REJECT}
""")
    assert evaluate(rs, MessageView(MSG), env(mail_from="x@gmail.com")).outcome is Outcome.REJECT
    assert evaluate(rs, MessageView(MSG), env(mail_from="x@anm.gov.my")).outcome is Outcome.ACCEPT
    assert evaluate(rs, MessageView(MSG), env(mail_from="x@yahoo.com")).outcome is Outcome.ACCEPT


def test_subdomain_matches_listed_domain_but_not_lookalike(tmp_path: Path) -> None:
    rs = rules(tmp_path, f"""
rules:
  - {{id: agency, when: {{sender_domain: "@agency_domains"}}, action: reject, {REJECT}}}
""")
    assert evaluate(rs, MessageView(MSG), env(mail_from="x@kl.ANM.gov.my")).rule_id == "agency"
    assert evaluate(rs, MessageView(MSG), env(mail_from="x@evilanm.gov.my")).rule_id is None
    assert evaluate(rs, MessageView(MSG), env(mail_from="")).rule_id is None


def test_largest_allowed_size_covers_base64_of_attachment_limit(tmp_path: Path) -> None:
    rs = rules(tmp_path, f"""
rules:
  - {{id: m, when: {{message_size_over: 10MB}}, action: reject, {REJECT}}}
  - {{id: mon, mode: monitor, when: {{message_size_over: 90MB}}, action: reject, {REJECT}}}
""")
    assert rs.largest_allowed_size() == 10 * 1024 * 1024
    assert rules(tmp_path, "rules: []").largest_allowed_size() is None
