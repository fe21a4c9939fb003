"""Every real-world MIME fixture reaches a verdict under the shipped rules, within bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.policy.engine import evaluate
from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.policy.verdict import Outcome

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "fixtures"
FIXTURES = sorted((CORPUS / "mime").glob("*.eml"))
RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(RULES, builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",),
                                           ("127.0.0.0/8",)))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_fixture_gets_a_verdict(shipped: RuleSet, path: Path, direction: str) -> None:
    env = Envelope(direction=direction, listener="t", client_ip="127.0.0.1",  # type: ignore[arg-type]
                   helo="h", mail_from="pegawai@anm.gov.my", rcpt_to=("x@anm.gov.my",))
    view = MessageView(path.read_bytes())
    verdict = evaluate(shipped, view, env)
    assert verdict.outcome in (Outcome.ACCEPT, Outcome.REJECT, Outcome.TEMPFAIL)
    assert view.complete
    # None of the fixtures carries a marking (fixtures/README.md).
    assert view.classification is None
    assert not any(h.rule_id.startswith("klasifikasi") for h in verdict.hits)
