"""Golden tests: a small rule set and a message in, the expected verdict out.

Each directory under `cases/` holds `rules/*.yaml`, `message.eml`,
`envelope.json` (direction, mail_from, rcpt_to, client_ip; helo and listener
optional), optionally `label_map.json` (the config's `label_map`) and `expected.json`:

    {"outcome": "reject", "rule_id": "...", "hits": ["rule ids in order"],
     "classification": "SULIT" | null,
     "subject_tags": [...],          (optional)
     "subject_defangs": [[tag, replacement], ...],   (optional)
     "error": "NotInspectable"}      (optional: inspection refused, the pipeline's 451)

The built-in lists are fixed for every case: @agency_domains = anm.gov.my,
@hebahan_senders = hebahan@anm.gov.my, @relay_networks = 127.0.0.0/8 and ::1/128.
Rules load through gateway.policy.rules.load_rules and run through
gateway.policy.engine.evaluate, exactly as the gateway runs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.envelope import Envelope
from gateway.message.view import MessageView, NotInspectable
from gateway.policy.engine import evaluate
from gateway.policy.rules import builtin_lists, load_rules

CASES = sorted(p for p in (Path(__file__).parent / "cases").iterdir() if p.is_dir())
BUILTINS = builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ("127.0.0.0/8", "::1/128"))


def run_case(case: Path) -> dict[str, Any]:
    rules = load_rules(case / "rules", BUILTINS)
    env_data = json.loads((case / "envelope.json").read_text())
    envelope = Envelope(direction=env_data.get("direction", "outbound"),
                        listener=env_data.get("listener", "golden"),
                        client_ip=env_data.get("client_ip", "127.0.0.1"),
                        helo=env_data.get("helo", "golden.test"),
                        mail_from=env_data.get("mail_from", ""),
                        rcpt_to=tuple(env_data.get("rcpt_to", ())))
    # Optional `label_map.json`: the config's `label_map` (Purview labels -> markings).
    label_map = (json.loads((case / "label_map.json").read_text())
                 if (case / "label_map.json").exists() else None)
    view = MessageView((case / "message.eml").read_bytes(), label_map=label_map)
    try:
        verdict = evaluate(rules, view, envelope)
    except NotInspectable:
        return {"outcome": "tempfail", "rule_id": None, "hits": [], "classification": None,
                "error": "NotInspectable"}
    got: dict[str, Any] = {
        "outcome": verdict.outcome.value,
        "rule_id": verdict.rule_id,
        "hits": [h.rule_id for h in verdict.hits],
        "classification": verdict.classification or view.classification,
    }
    if verdict.subject_tags:
        got["subject_tags"] = list(verdict.subject_tags)
    if verdict.subject_defangs:
        got["subject_defangs"] = [list(d) for d in verdict.subject_defangs]
    return got


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    assert run_case(case) == expected
