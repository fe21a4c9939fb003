"""What the header block alone decides: the rule set's change plan, the header-phase
evaluation, and its agreement with the verdict on the whole message.

`plan_changes` reads the rules statically (each check's `needs`): which rules can
change a relayed message's header block and whether only the envelope and header
block decide those changes. `decide_header` is the header-phase decision the proxy's
cut-through streams; for every message here it must equal what `pipeline.inspect`
decides on the whole message (`HeaderDecision.agrees`), also when it does not hold
(a refusal makes no relay, so its header changes are never compared).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import pipeline
from gateway.config import GatewayConfig
from gateway.envelope import Envelope
from gateway.message.headers import header_end
from gateway.message.view import MessageView
from gateway.policy.checks import REGISTRY
from gateway.policy.engine import PlanViolated, header_changes
from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.policy_state import PolicyState

REJECT = "reply: {code: 550, enhanced: '5.7.1', text: {ms: tolak, en: refused}}"


def rules(tmp_path: Path, text: str) -> RuleSet:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "10-test.yaml").write_text(text)
    return load_rules(d, builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ()))


def env(direction: str = "outbound", mail_from: str = "hebahan@anm.gov.my") -> Envelope:
    return Envelope(direction=direction, listener="t", client_ip="127.0.0.1",  # type: ignore[arg-type]
                    helo="h", mail_from=mail_from, rcpt_to=("b@example.com",))


def test_needs_declarations() -> None:
    header = {name for name, c in REGISTRY.items() if c.needs == "header"}
    assert header == {"subject_matches", "subject_quotes_tag", "from_domain", "from_in",
                      "auto_forwarded", "sender_identity", "sender_auth"}
    envelope = {name for name, c in REGISTRY.items() if c.needs == "envelope"}
    assert envelope == {"sender_domain", "recipient_domain", "recipient_outside_agency",
                        "null_sender", "sender_in", "client_ip"}


def test_shipped_rules_decide_their_changes_on_the_header() -> None:
    repo = Path(__file__).resolve().parents[2]
    rs = load_rules(repo / "rules", builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",),
                                                  ("127.0.0.0/8",)))
    plan = rs.change_plan
    assert plan.header_decides, plan.blockers
    # The tags and defangs, and every rule that reaches sender_auth
    # (Authentication-Results).
    assert [r.id for r in plan.rules] == [
        "hebahan-petik-masuk", "hebahan-spf-sementara", "hebahan-dmarc-sementara",
        "hebahan-spf-gagal", "hebahan-dmarc-gagal", "hebahan-tag", "hebahan-tag-masuk"]
    assert plan.reads_auth("inbound") and not plan.reads_auth("outbound")


@pytest.mark.parametrize(("text", "blocker"), [
    # A tag decided by the body.
    ("- {id: t, when: {body_matches: x}, action: tag, tag: '[X]'}",
     "rule t (", ),
    # An added field decided by a classification.
    ("- {id: h, when: {classification: [SULIT]}, action: add_header, "
     "header: {name: X-A, value: b}}", "depends on classification"),
    # An accept decided by the body, before a tag: it decides whether the tag runs.
    ("- {id: ok, when: {attachment_type: [pdf]}, action: accept}\n"
     "  - {id: t, when: {sender_in: [hebahan@anm.gov.my]}, action: tag, tag: '[X]'}",
     "action accept, before a rule that changes the header"),
    # Whether sender_auth is reached (Authentication-Results) depends on the body.
    (f"- {{id: r, when: {{body_matches: x, sender_auth: {{spf: [fail]}}}}, action: reject, "
     f"{REJECT}}}", "whether its sender_auth condition is reached"),
    ("- {id: m, mode: monitor, when: {any: [{link_domain: [a.example]}, "
     "{sender_auth: {spf: [pass]}}]}, action: tag, tag: '[X]'}",
     "whether its sender_auth condition is reached"),
])
def test_changes_decided_by_the_body_block_cut_through(tmp_path: Path, text: str,
                                                       blocker: str) -> None:
    plan = rules(tmp_path, "rules:\n  " + text).change_plan
    assert not plan.header_decides
    assert any(blocker in b for b in plan.blockers), plan.blockers
    assert "10-test.yaml:" in plan.blockers[0]


@pytest.mark.parametrize("text", [
    # Refusals on the body change nothing that is relayed.
    f"- {{id: r, when: {{classification: [RAHSIA]}}, action: reject, {REJECT}}}",
    # sender_auth before a body condition: reached whatever the body says.
    f"- {{id: r, when: {{sender_auth: {{spf: [fail]}}, body_matches: x}}, action: reject, "
    f"{REJECT}}}",
    # A body accept with no change after it; a monitor tag is no change.
    "- {id: t, when: {sender_in: [hebahan@anm.gov.my]}, action: tag, tag: '[X]'}\n"
    "  - {id: ok, when: {attachment_type: [pdf]}, action: accept}\n"
    "  - {id: m, mode: monitor, when: {body_matches: x}, action: tag, tag: '[M]'}",
])
def test_body_conditions_that_change_nothing_leave_cut_through_on(tmp_path: Path,
                                                                  text: str) -> None:
    plan = rules(tmp_path, "rules:\n  " + text).change_plan
    assert plan.header_decides, plan.blockers


def test_header_changes_refuse_a_plan_that_needs_the_body(tmp_path: Path) -> None:
    rs = rules(tmp_path, "rules:\n  - {id: t, when: {body_matches: x}, action: tag, tag: '[X]'}")
    with pytest.raises(PlanViolated):
        header_changes(rs, MessageView(b"Subject: a\r\n\r\n"), env())


RULES = f"""
rules:
  - {{id: tolak-badan, when: {{body_matches: DILARANG}}, action: reject, {REJECT}}}
  - {{id: semak-spf, when: {{subject_matches: Hebahan, sender_auth: {{spf: [temperror]}},
      body_matches: TIADA}}, action: reject, {REJECT}}}
  - {{id: terima-awal, when: {{subject_matches: TERUS}}, action: accept}}
  - {{id: tanda, direction: outbound, when: {{sender_in: "@hebahan_senders"}}, action: tag,
      tag: "[HEBAHAN JANM]"}}
  - {{id: tanda-masuk, direction: inbound, when: {{sender_in: "@hebahan_senders"}},
      action: tag, tag: "[MASUK]"}}
  - {{id: pengepala, when: {{from_domain: [anm.gov.my]}}, action: add_header,
      header: {{name: X-Agensi, value: "ya"}}}}
  - {{id: pantau, mode: monitor, when: {{auto_forwarded: true}}, action: tag, tag: "[P]"}}
"""

MESSAGES = [
    b"From: hebahan@anm.gov.my\r\nSubject: Notis\r\n\r\nIsi.\r\n",
    b"From: hebahan@anm.gov.my\r\nSubject: Hebahan cuti\r\n\r\nIsi.\r\n",
    b"From: x@example.com\r\nSubject: TERUS sahaja\r\n\r\nIsi.\r\n",
    b"Authentication-Results: gw.test; spf=pass\r\nFrom: a@anm.gov.my\r\n"
    b"Subject: =?UTF-8?B?U3ViamVrIMOp?=\r\n\r\nIsi.\r\n",
    b"From: a@anm.gov.my\r\nSubject: Lipatan\r\n panjang\r\n\r\n.titik\r\n",
    b"From: a@anm.gov.my\r\n\r\n",  # no Subject: one is added by the tag
    b"\r\nNo header at all.\r\n",
    b"From: a@anm.gov.my\r\nSubject: DILARANG\r\n\r\nDILARANG\r\n",  # refused
]


@pytest.mark.parametrize("raw", MESSAGES)
@pytest.mark.parametrize("direction", ["outbound", "inbound"])
def test_decide_header_agrees_with_the_whole_message(tmp_path: Path, raw: bytes,
                                                     direction: str) -> None:
    config = GatewayConfig.model_validate({
        "listeners": [{"name": "o", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": "smtp://127.0.0.1:25", "agency_domains": ["anm.gov.my"],
        "hostname": "gw.test", "cut_through": True})
    policy = PolicyState(config, rules(tmp_path, RULES))  # no resolver: SPF temperror
    envelope = env(direction)
    end = 2 if raw.startswith(b"\r\n") else raw.index(b"\r\n\r\n") + 4
    decision = pipeline.decide_header(policy, raw[:end], envelope)
    whole = pipeline.inspect(policy, raw, envelope, "R", auth=decision.auth)
    assert decision.agrees(whole) == whole.relay
    assert decision.agrees(pipeline.summarize(whole)) == whole.relay
    if whole.relay:
        assert whole.relay_bytes == decision.block + raw[end:]
    assert header_end(raw) <= end


def test_a_decision_that_differs_does_not_agree(tmp_path: Path) -> None:
    config = GatewayConfig.model_validate({
        "listeners": [{"name": "o", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": "smtp://127.0.0.1:25", "agency_domains": ["anm.gov.my"],
        "hostname": "gw.test"})
    policy = PolicyState(config, rules(tmp_path, RULES))
    raw = MESSAGES[0]
    end = raw.index(b"\r\n\r\n") + 4
    decision = pipeline.decide_header(policy, raw[:end], env())
    whole = pipeline.summarize(pipeline.inspect(policy, raw, env(), "R"))
    assert decision.agrees(whole)
    other = pipeline.HeaderDecision(decision.received, decision.block + b"X: 1\r\n",
                                    decision.subject_tags, decision.added_headers,
                                    decision.trace_headers, decision.removed_headers, None)
    assert not other.agrees(whole)
    fewer = pipeline.HeaderDecision(decision.received, decision.block, (), (),
                                    decision.trace_headers, decision.removed_headers, None)
    assert not fewer.agrees(whole)


def test_sender_auth_found_on_the_header_is_reused_not_asked_again(tmp_path: Path) -> None:
    config = GatewayConfig.model_validate({
        "listeners": [{"name": "o", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": "smtp://127.0.0.1:25", "agency_domains": ["anm.gov.my"],
        "hostname": "gw.test"})
    policy = PolicyState(config, rules(tmp_path, RULES))
    raw = MESSAGES[1]
    end = raw.index(b"\r\n\r\n") + 4
    decision = pipeline.decide_header(policy, raw[:end], env())
    assert decision.auth is not None and decision.auth.spf.result == "temperror"
    assert [name for name, _ in decision.trace_headers] == ["Authentication-Results"]
    whole = pipeline.inspect(policy, raw, env(), "R", auth=decision.auth)
    assert whole.verdict.auth == decision.auth.as_dict()
    assert decision.agrees(whole)
