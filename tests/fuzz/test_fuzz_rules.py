"""Fuzz the rule loader and the engine with random rule files built from the registry.

Loading either succeeds or raises LoadError whose every problem names the rule file
and a line in it (FILE:LINE: message), never another exception. A rule set that
loads is evaluated on real messages from the corpus, inbound and outbound: the
engine returns a verdict or raises NotInspectable, nothing else.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from gateway.envelope import Envelope
from gateway.message.defects import KINDS as DEFECT_KINDS
from gateway.message.identity import KINDS as IDENTITY_KINDS
from gateway.message.view import MessageView, NotInspectable
from gateway.policy.checks import REGISTRY
from gateway.policy.engine import evaluate
from gateway.policy.rules import builtin_lists, load_rules
from gateway.problems import LoadError

from .settings import FUZZ

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "fixtures" / "mime"
MESSAGES = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))[:8]]
LISTS = ["@agency_domains", "@hebahan_senders", "@relay_networks", "@personal", "@missing"]
BUILTINS = builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ("127.0.0.0/8",), ())

garbage = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.text(max_size=12),
                    st.lists(st.integers(), max_size=2), st.dictionaries(
                        st.text(max_size=5), st.integers(), max_size=2))
sizes = st.one_of(st.sampled_from(["20KB", "1MB", "25MB", "0", "10 KB", "-1MB", "1.5MB",
                                   "KB", "9" * 30]), st.integers(-1, 10**9))
regexes = st.one_of(st.sampled_from(["RAHSIA", "(?i)sulit", "[", "a{99999}", "(", r"\b\w+$",
                                     "(?P<x>a)(?P=x)", "", "x" * 300]), st.text(max_size=10))
domains = st.one_of(st.sampled_from(LISTS), st.lists(st.sampled_from(
    ["anm.gov.my", "gmail.com", "bad domain", "", ".", "xn--p1ai", "例え.jp"]), max_size=3))
addresses = st.one_of(st.sampled_from(LISTS), st.lists(st.sampled_from(
    ["a@anm.gov.my", "HEBAHAN@anm.gov.my", "nobody", "@x", ""]), max_size=3))
networks = st.one_of(st.sampled_from(LISTS), st.lists(st.sampled_from(
    ["10.0.0.0/8", "127.0.0.1", "::1/128", "300.1.1.1", "10.0.0.0/33", "x"]), max_size=3))
levels = st.lists(st.sampled_from(["TERHAD", "SULIT", "RAHSIA", "RAHSIA BESAR", "rahsia",
                                   "TOP SECRET", ""]), max_size=4)
types = st.lists(st.sampled_from(["executable", "archive", "office", "pdf", "image", "text",
                                  "other", "application/pdf", "nonsense", "x/"]), max_size=3)
auth = st.one_of(st.fixed_dictionaries({}, optional={
    "spf": st.lists(st.sampled_from(["pass", "fail", "softfail", "bogus"]), max_size=2),
    "dmarc": st.lists(st.sampled_from(["pass", "fail", "none", "bogus"]), max_size=2),
    "dkim": st.just(["pass"])}), garbage)

PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "message_size_over": sizes, "attachment_size_over": sizes, "classification": levels,
    "subject_matches": regexes, "body_matches": regexes, "attachment_name_matches": regexes,
    "sender_domain": domains, "from_domain": domains, "recipient_domain": domains,
    "link_domain": domains, "sender_in": addresses, "client_ip": networks,
    "attachment_type": types,
    "mime_defect": st.lists(st.sampled_from([*DEFECT_KINDS, "bogus"]), max_size=3),
    "sender_identity": st.lists(st.sampled_from([*IDENTITY_KINDS, "bogus"]), max_size=3),
    "sender_auth": auth,
}


VALID: dict[str, st.SearchStrategy[Any]] = {
    "message_size_over": st.one_of(st.sampled_from(["1KB", "20KB", "25MB"]),
                                   st.integers(1, 10**8)),
    "classification": st.lists(st.sampled_from(["TERHAD", "SULIT", "RAHSIA", "RAHSIA BESAR"]),
                               min_size=1, max_size=3, unique=True),
    "subject_matches": st.sampled_from(["RAHSIA", "(?i)sulit", r"\b\w+$", "e", "^$"]),
    "sender_domain": st.sampled_from(["@agency_domains", ["anm.gov.my", "gmail.com"]]),
    "sender_in": st.sampled_from(["@hebahan_senders", ["a@anm.gov.my"]]),
    "client_ip": st.sampled_from(["@relay_networks", ["10.0.0.0/8", "::1/128"]]),
    "attachment_type": st.lists(st.sampled_from(["executable", "archive", "office", "pdf",
                                                 "image", "text", "other", "application/pdf"]),
                                min_size=1, max_size=3, unique=True),
    "mime_defect": st.lists(st.sampled_from(DEFECT_KINDS), min_size=1, max_size=3, unique=True),
    "sender_identity": st.lists(st.sampled_from(IDENTITY_KINDS), min_size=1, max_size=2,
                                unique=True),
    "sender_auth": st.sampled_from([{"spf": ["pass"]}, {"dmarc": ["fail", "none"]},
                                    {"spf": ["temperror"], "dmarc": ["temperror"]}]),
}
for _same, _as in (("attachment_size_over", "message_size_over"),
                   ("body_matches", "subject_matches"),
                   ("attachment_name_matches", "subject_matches"),
                   ("from_domain", "sender_domain"), ("recipient_domain", "sender_domain"),
                   ("link_domain", "sender_domain")):
    VALID[_same] = VALID[_as]


def value_for(name: str, valid: bool) -> st.SearchStrategy[Any]:
    if valid:
        return VALID.get(name, st.booleans())  # the rest take true/false
    plausible = PLAUSIBLE.get(name, st.booleans())
    return st.one_of(plausible, plausible, plausible, garbage)


def conditions(valid: bool) -> st.SearchStrategy[dict[str, Any]]:
    names = sorted(REGISTRY) if valid else [*sorted(REGISTRY), "no_such_condition"]
    leaf = st.sampled_from(names).flatmap(lambda n: value_for(n, valid).map(lambda v: {n: v}))
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(
                lambda xs: {k: v for x in xs for k, v in x.items()}),
            st.lists(inner, min_size=int(valid), max_size=3).map(lambda xs: {"any": xs}),
            st.lists(inner, min_size=int(valid), max_size=3).map(lambda xs: {"all": xs}),
            inner.map(lambda x: {"not": x})),
        max_leaves=6)


hostile_replies = st.one_of(st.none(), st.fixed_dictionaries(
    {"code": st.sampled_from([550, 554, 451, 250, 999]),
     "enhanced": st.sampled_from(["5.7.1", "4.3.0", "2.0.0", "9.9.9", "x"]),
     "text": st.one_of(st.fixed_dictionaries({"ms": st.text(max_size=10),
                                              "en": st.text(max_size=10)}),
                       st.text(max_size=10))}))
VALID_REPLY = {"reject": {"code": 550, "enhanced": "5.7.1",
                          "text": {"ms": "Ditolak.", "en": "Refused."}},
               "tempfail": {"code": 451, "enhanced": "4.3.0",
                            "text": {"ms": "Cuba lagi.", "en": "Try later."}}}


@st.composite
def rule(draw: st.DrawFn, n: int, valid: bool) -> dict[str, Any]:
    actions = ["reject", "tempfail", "accept", "tag", "add_header"]
    action = draw(st.sampled_from(actions if valid else [*actions, "explode"]))
    out: dict[str, Any] = {
        "id": f"rule-{n}" if valid else draw(st.sampled_from([f"rule-{n}", "rule-0",
                                                              "Bad Id", ""])),
        "description": draw(st.text(max_size=10)),
        "direction": draw(st.sampled_from(["inbound", "outbound", "both"]
                                          + ([] if valid else ["sideways"]))),
        "mode": draw(st.sampled_from(["enforce", "enforce", "monitor"]
                                     + ([] if valid else ["maybe"]))),
        "when": draw(conditions(valid)),
        "action": action,
    }
    if valid:
        if action in VALID_REPLY:
            out["reply"] = VALID_REPLY[action]
        if action == "tag":
            out["tag"] = draw(st.sampled_from(["[SULIT]", "[HEBAHAN JANM]"]))
        if action == "add_header":
            out["header"] = {"name": "X-Gateway-Fuzz", "value": "1"}
        return out
    reply = draw(hostile_replies)
    if reply is not None:
        out["reply"] = reply
    if action == "tag" or draw(st.booleans()):
        out["tag"] = draw(st.sampled_from(["[SULIT]", "", "[HEBAHAN JANM]"]))
    if action == "add_header" or draw(st.booleans()):
        out["header"] = draw(st.sampled_from([{"name": "X-Gw", "value": "1"},
                                              {"name": "Bad Name:", "value": "x"}, "x"]))
    if draw(st.integers(0, 9)) == 0:
        out["unknown_key"] = 1
    return out


@st.composite
def rule_file(draw: st.DrawFn) -> str:
    # Half the files are valid by construction, so the engine gets rule sets to run;
    # the other half mix in wrong values, keys and YAML to exercise every load error.
    valid = draw(st.booleans())
    doc: dict[str, Any] = {"rules": [draw(rule(n, valid))
                                     for n in range(draw(st.integers(1, 4)))]}
    if not valid and draw(st.booleans()):
        doc["lists"] = {"personal": draw(st.lists(st.sampled_from(
            ["gmail.com", "yahoo.com", "", "bad domain"]), max_size=3))}
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if not valid and draw(st.integers(0, 4)) == 0:  # now and then not even YAML
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\t", ": :", "[", "\x00", "&a *b", "\n  -"]))\
            + text[at:]
    return text


def envelopes() -> list[Envelope]:
    return [Envelope("outbound", "outbound", "127.0.0.1", "client.test", "a@anm.gov.my",
                     ("b@example.com",)),
            Envelope("inbound", "inbound", "192.0.2.7", "mx.example.com", "",
                     ("c@anm.gov.my", "d@example.com"))]


@FUZZ
@given(rule_file())
def test_random_rule_files_load_or_fail_with_file_and_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = Path(tmp)
        path = rules_dir / "10-fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            ruleset = load_rules(rules_dir, BUILTINS)
        except LoadError as exc:
            event("refused at load")
            assert exc.problems
            lines = text.count("\n") + 1
            for problem in exc.problems:
                assert problem.file == str(path), problem
                assert 1 <= problem.line <= lines, problem
                assert str(problem).startswith(f"{path}:{problem.line}: ")
            return
    event("loaded and evaluated")
    for raw in MESSAGES:
        view = MessageView(raw)
        for env in envelopes():
            with contextlib.suppress(NotInspectable):
                evaluate(ruleset, view, env)
