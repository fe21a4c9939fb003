"""Check parameters are validated when rules load: clear FILE:LINE errors, never at mail time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.policy.checks import REGISTRY
from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.problems import LoadError

# The conditions every helper agreed on (common briefing); rule files use these names.
AGREED = {
    "message_size_over", "attachment_size_over", "classification", "unencrypted_attachments",
    "sender_domain", "from_domain", "recipient_domain", "recipient_outside_agency",
    "null_sender", "subject_matches", "body_matches", "attachment_type",
    "attachment_name_matches", "link_domain", "auto_forwarded", "sender_in", "client_ip",
    # issue 3 (deep inspection): structure, limits, sender identity, real types
    "mime_defect", "inspection_incomplete", "sender_identity", "type_mismatch",
    # issue 4 (authenticated hebahan): SPF and DMARC results
    "sender_auth",
    # issue 10 (every document): documents with no text to read
    "attachment_unreadable",
    # issue 13 item 1 (ClamAV through clamd)
    "virus", "antivirus_failed", "antivirus_skipped",
    # issue 13 item 2 (Office macros with oletools)
    "office_macros",
    # issue 13 review: DKIM forgives SPF only for a registered header From
    "from_in",
    # issue 14 items 1 and 2: the password in the same message, weak encryption
    "password_in_message", "weak_encryption",
    # issue 14 item 7: a marking written lower than another the message carries
    "marking_mismatch",
    # issue 14 item 9: [HEBAHAN JANM] quoted in a reply or forward
    "subject_quotes_tag",
}


def load(tmp_path: Path, when: str) -> RuleSet:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "10-t.yaml").write_text(
        "lists:\n  storage: [dropbox.com]\nrules:\n"
        f"  - id: t\n    when: {when}\n    action: tag\n    tag: '[T]'\n")
    return load_rules(d, builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",),
                                       ("127.0.0.0/8", "::1/128")))


def test_registry_has_every_agreed_check() -> None:
    assert set(REGISTRY) == AGREED


@pytest.mark.parametrize("when", [
    "{message_size_over: 10MB}", "{attachment_size_over: '25 MiB'}",
    "{classification: [RAHSIA BESAR, RAHSIA]}", "{unencrypted_attachments: true}",
    "{sender_domain: '@agency_domains'}", "{from_domain: [gmail.com, '@storage']}",
    "{recipient_domain: '@agency_domains'}", "{recipient_outside_agency: false}",
    "{null_sender: true}", "{subject_matches: '(?i)^\\[HEBAHAN'}",
    "{body_matches: 'kata\\s+laluan'}", "{attachment_type: [executable, 'image/*']}",
    "{attachment_name_matches: '\\.exe$'}", "{link_domain: '@storage'}",
    "{auto_forwarded: true}", "{sender_in: '@hebahan_senders'}",
    "{client_ip: '@relay_networks'}", "{client_ip: [10.0.0.0/8, 192.0.2.1]}",
    "{attachment_unreadable: true}",
])
def test_good_parameters_load(tmp_path: Path, when: str) -> None:
    assert len(load(tmp_path, when).rules) == 1


def test_regex_is_compiled_at_load(tmp_path: Path) -> None:
    rs = load(tmp_path, "{subject_matches: 'ab+c'}")
    leaf = rs.rules[0].when
    assert isinstance(leaf.value, re.Pattern)  # type: ignore[union-attr]


@pytest.mark.parametrize(("when", "message"), [
    ("{subject_matches: '(unclosed'}", "subject_matches: bad regular expression '(unclosed'"),
    ("{body_matches: '[a-'}", "body_matches: bad regular expression"),
    ("{attachment_name_matches: ''}", "attachment_name_matches: expected a regular expression"),
    ("{classification: [SECRET]}", "unknown classification 'SECRET'"),
    ("{classification: []}", "expected a non-empty list"),
    ("{attachment_size_over: 25XB}", "bad size '25XB'"),
    ("{message_size_over: -1}", "must not be negative"),
    ("{client_ip: [10.0.0.300/8]}", "bad IP address or network '10.0.0.300/8'"),
    ("{sender_domain: ['gmail com']}", "bad domain 'gmail com'"),
    ("{sender_in: [hebahan]}", "bad mail address 'hebahan'"),
    ("{attachment_type: [exe]}", "unknown file type 'exe'"),
    ("{null_sender: 'yes'}", "null_sender"),
    ("{unencrypted_attachments: 1}", "unencrypted_attachments"),
    ("{link_domain: '@nosuchlist'}", "unknown list '@nosuchlist'"),
])
def test_bad_parameters_are_load_errors_with_file_and_line(
        tmp_path: Path, when: str, message: str) -> None:
    with pytest.raises(LoadError) as err:
        load(tmp_path, when)
    text = str(err.value)
    assert message in text
    assert re.search(r"10-t\.yaml:5: ", text), text


def test_shipped_rules_load() -> None:
    rules_dir = Path(__file__).resolve().parents[2] / "rules"
    rs = load_rules(rules_dir, builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",),
                                             ("127.0.0.0/8",)))
    assert rs.rules
