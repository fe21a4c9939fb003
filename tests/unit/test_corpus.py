"""The corpus: every file under tests/corpus/cases/**/ with a `<file>.expect.yaml` sidecar.

An .eml is inspected as it is; any other file (a document) is first wrapped as
the one attachment of a plain message from pegawai@anm.gov.my. The sidecar says
what must be found; every key is optional and only the keys present are checked:

  classification: SULIT | null         the highest marking
  where: ["attachment:Minit.docx:footer", "subject"]   `at` of markings found (each listed
                                       one must be among those of any marking)
  encrypted: [true, false, null]       per attachment, in order (null: could not inspect)
  types: [application/pdf]             libmagic type per attachment, in order
  categories: [pdf]                    category per attachment, in order
  inspectable: true                    the view is complete (within every limit), once
                                       every fact (markings, attachments) was read
  defects: [duplicate_boundary]        exactly these structure defect kinds
  identity: [display_name_address]     exactly these sender identity kinds
  filenames: [["a.pdf", "a.exe"]]      name variants per attachment (as sets)
  type_mismatch: [true]                per attachment
  schemes: [aes, null]                 encryption scheme per attachment (null: none/unknown)
  unreadable: [true, false]            per attachment: has a part with no text to read
  macros: [[present, autoexec], []]    per attachment: its Office macro levels
  not_where: ["attachment:a.doc:body"] `at`s that must NOT be among the markings found
  outcome_inbound / outcome_outbound: accept | reject | tempfail   under the SHIPPED
                                       rules and config, through gateway.pipeline.inspect
  rule_inbound / rule_outbound: rule id that decided (null: none)
  note / source / licence: free text

Envelopes: inbound luar@example.org -> pegawai@anm.gov.my; outbound
pegawai@anm.gov.my -> penerima@example.org. Cases are made by committed scripts
(tests/corpus/make_*.py) or are real files with their licence note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.pipeline import inspect
from gateway.policy_state import PolicyState, load_policy_for
from tests.support.corpus import message_of

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "tests" / "corpus" / "cases"
SUFFIX = ".expect.yaml"
CASES = sorted(p for p in CASES_DIR.rglob(f"*{SUFFIX}"))
KEYS = frozenset({
    "classification", "where", "encrypted", "types", "categories", "inspectable",
    "defects", "identity", "filenames", "type_mismatch", "outcome_inbound",
    "outcome_outbound", "rule_inbound", "rule_outbound", "note", "source", "licence",
    "schemes", "unreadable", "not_where", "macros"})
ENVELOPES = {
    "inbound": ("luar@example.org", ("pegawai@anm.gov.my",)),
    "outbound": ("pegawai@anm.gov.my", ("penerima@example.org",)),
}


@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd: the antivirus rules are tests/unit/test_antivirus.py's.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


def test_the_corpus_is_there() -> None:
    # A glob that finds nothing would make every check below vacuous.
    assert len([c for c in CASES if c.parent.name == "mime"]) >= 20


def _derived_at(where: dict[str, Any]) -> str:
    """The `at` string of a marking's where, for detectors that do not write one."""
    place = where.get("in")
    if place == "header":
        return f"header:{where.get('header')}"
    if place == "attachment":
        return f"attachment:{where.get('name')}:{where.get('field')}"
    if place == "forwarded":
        return f"forwarded:{where.get('index')}:{where.get('field') or 'header'}"
    return str(place)


def _ats(view: MessageView) -> set[str]:
    return {str(f.where.get("at") or _derived_at(f.where)) for f in view.markings.found}


@pytest.mark.parametrize("sidecar", CASES, ids=[str(c.relative_to(CASES_DIR)) for c in CASES])
def test_case(policy: PolicyState, sidecar: Path) -> None:
    expect: dict[str, Any] = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    assert isinstance(expect, dict), "the sidecar must be a mapping"
    unknown = set(expect) - KEYS
    assert not unknown, f"unknown sidecar keys {sorted(unknown)} (known: {sorted(KEYS)})"
    path = sidecar.with_name(sidecar.name.removesuffix(SUFFIX))
    assert path.is_file(), f"no case file for {sidecar.name}"
    raw = message_of(path)
    view = MessageView(raw, limits=policy.config.limits.inspection())

    if "defects" in expect:
        assert list(view.structure_defects) == expect["defects"]
    if "identity" in expect:
        assert list(view.identity.kinds) == expect["identity"]
    if "classification" in expect:
        assert view.classification == expect["classification"], view.markings.found
    if "where" in expect:
        ats = _ats(view)
        missing = [w for w in expect["where"] if w not in ats]
        assert not missing, f"{missing} not among {sorted(ats)}"
    if "not_where" in expect:
        ats = _ats(view)
        wrong = [w for w in expect["not_where"] if w in ats]
        assert not wrong, f"{wrong} found among {sorted(ats)}"
    attachments = view.attachments if any(
        k in expect for k in ("encrypted", "types", "categories", "filenames",
                              "type_mismatch", "schemes", "unreadable", "macros")) else ()
    if "encrypted" in expect:
        assert [a.encrypted for a in attachments] == expect["encrypted"]
    if "types" in expect:
        assert [a.detected_type for a in attachments] == expect["types"]
    if "categories" in expect:
        assert [a.category for a in attachments] == expect["categories"]
    if "filenames" in expect:
        assert [set(a.filenames) for a in attachments] == [set(n) for n in expect["filenames"]]
    if "type_mismatch" in expect:
        assert [a.type_mismatch for a in attachments] == expect["type_mismatch"]
    if "schemes" in expect:
        assert [a.encryption_scheme for a in attachments] == expect["schemes"]
    if "unreadable" in expect:
        assert [bool(a.unreadable) for a in attachments] == expect["unreadable"]
    if "macros" in expect:
        assert [list(a.macros.levels) for a in attachments] == expect["macros"]

    if "inspectable" in expect:
        # After everything was read: a limit met inside a document counts too.
        _ = (view.markings, [(a.encrypted, a.category) for a in view.attachments])
        assert view.complete is expect["inspectable"], view.incomplete_reason

    for direction, (mail_from, rcpt) in ENVELOPES.items():
        if f"outcome_{direction}" not in expect and f"rule_{direction}" not in expect:
            continue
        env = Envelope(direction=direction, listener=direction,  # type: ignore[arg-type]
                       client_ip="127.0.0.1", helo="client.example", mail_from=mail_from,
                       rcpt_to=rcpt)
        got = inspect(policy, raw, env)
        hits = [(h.rule_id, h.mode) for h in got.verdict.hits]
        if f"outcome_{direction}" in expect:
            assert got.verdict.outcome.value == expect[f"outcome_{direction}"], hits
            # Never relayed unseen, never a 5xx that is not a rule's.
            assert (got.reply is None) == (got.verdict.outcome.value == "accept")
        if f"rule_{direction}" in expect:
            assert got.verdict.rule_id == expect[f"rule_{direction}"], hits
