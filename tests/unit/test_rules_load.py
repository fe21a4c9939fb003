"""Rule files that must not load, each refused with the exact FILE:LINE of the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.policy.rules import RuleSet, builtin_lists, load_rules
from gateway.problems import LoadError

REPO = Path(__file__).resolve().parents[2]
BUILTINS = builtin_lists(("anm.gov.my",), ("hebahan@anm.gov.my",), ("127.0.0.0/8",))
REPLY = "reply: {code: 550, enhanced: '5.7.1', text: {ms: Ditolak, en: Refused}}"


def load(tmp_path: Path, files: dict[str, str]) -> RuleSet:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text.lstrip("\n"), encoding="utf-8")
    return load_rules(d, BUILTINS)


def problems(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, int, str]]:
    with pytest.raises(LoadError) as info:
        load(tmp_path, files)
    return [(Path(p.file).name, p.line, p.message) for p in info.value.problems]


def one(tmp_path: Path, text: str, name: str = "10-a.yaml") -> tuple[str, int, str]:
    found = problems(tmp_path, {name: text})
    assert len(found) == 1, found
    return found[0]


def test_a_good_file_loads(tmp_path: Path) -> None:
    rs = load(tmp_path, {"10-a.yaml": f"""
lists:
  mine: [example.com]
rules:
  - id: a
    when: {{sender_domain: ["@mine", example.org]}}
    action: reject
    {REPLY}
"""})
    assert [r.id for r in rs.rules] == ["a"]
    assert rs.rules[0].line == 4


def test_unknown_rule_key(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, f"""
rules:
  - id: a
    when: {{message_size_over: 1MB}}
    action: reject
    {REPLY}
    severity: high
""")
    assert (file, line) == ("10-a.yaml", 6)
    assert "severity" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, "lists: {}\nrule: []\n")
    assert (file, line) == ("10-a.yaml", 2)
    assert "rule" in msg


def test_unknown_condition(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, f"""
rules:
  - id: a
    action: reject
    {REPLY}
    when:
      any:
        - {{message_size_over: 1MB}}
        - {{subject_contains: x}}
""")
    assert (file, line) == ("10-a.yaml", 8)
    assert "subject_contains" in msg


def test_bad_size(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, f"""
rules:
  - id: a
    when:
      message_size_over: 25 megabytes
    action: reject
    {REPLY}
""")
    assert (file, line) == ("10-a.yaml", 4)
    assert "bad size" in msg


def test_bad_regex(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, f"""
rules:
  - id: a
    action: reject
    {REPLY}
    when:
      subject_matches: '[HEBAHAN JANM'
""")
    assert (file, line) == ("10-a.yaml", 6)
    assert "subject_matches" in msg and "unknown condition" not in msg


def test_dangling_list(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, f"""
lists:
  personal: [gmail.com]
rules:
  - id: a
    action: reject
    {REPLY}
    when:
      sender_domain: [example.com, "@personal_domains"]
""")
    assert (file, line) == ("10-a.yaml", 8)
    assert "@personal_domains" in msg


def test_duplicate_rule_id_across_files(tmp_path: Path) -> None:
    rule = f"""
rules:
  - id: same
    when: {{message_size_over: 1MB}}
    action: reject
    {REPLY}
"""
    found = problems(tmp_path, {"10-a.yaml": rule, "20-b.yaml": "# second file\n" + rule.lstrip()})
    assert len(found) == 1
    file, line, msg = found[0]
    assert (file, line) == ("20-b.yaml", 3)
    assert "duplicate rule id 'same'" in msg and "10-a.yaml:2" in msg


def test_reject_without_reply(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, """
rules:
  - id: ok
    when: {message_size_over: 1MB}
    action: tag
    tag: "[X]"
  - id: a
    when: {message_size_over: 1MB}
    action: reject
""")
    assert (file, line) == ("10-a.yaml", 6)
    assert "reply" in msg


def test_reject_with_a_4xx_reply(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, """
rules:
  - id: a
    when: {message_size_over: 1MB}
    action: reject
    reply:
      code: 451
      enhanced: "5.7.1"
      text: {ms: Ditolak, en: Refused}
""")
    assert (file, line) == ("10-a.yaml", 6)
    assert "5xx" in msg


def test_tempfail_with_a_5xx_reply(tmp_path: Path) -> None:
    found = problems(tmp_path, {"10-a.yaml": """
rules:
  - id: a
    when: {message_size_over: 1MB}
    action: tempfail
    reply:
      code: 550
      enhanced: "5.7.1"
      text: {ms: Cuba lagi, en: Try later}
"""})
    assert [(f, n) for f, n, _ in found] == [("10-a.yaml", 6), ("10-a.yaml", 7)]
    assert "4xx" in found[0][2]


@pytest.mark.parametrize(("key", "value"), [("direction", "incoming"), ("mode", "audit")])
def test_bad_direction_or_mode(tmp_path: Path, key: str, value: str) -> None:
    file, line, msg = one(tmp_path, f"""
rules:
  - id: a
    when: {{message_size_over: 1MB}}
    action: reject
    {REPLY}
    {key}: {value}
""")
    assert (file, line) == ("10-a.yaml", 6)
    assert key in msg and value in msg


def test_yaml_syntax_error(tmp_path: Path) -> None:
    found = problems(tmp_path, {"10-good.yaml": "rules: []\n", "20-bad.yaml": """
rules:
  - id: a
    when: {message_size_over: 1MB
    action: reject
"""})
    assert len(found) == 1
    file, line, msg = found[0]
    assert file == "20-bad.yaml"
    assert line in (4, 5)  # PyYAML marks the token after the unclosed flow mapping
    assert "YAML" in msg


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, f"""
rules:
  - id: a
    when: {{message_size_over: 1MB}}
    action: reject
    action: accept
    {REPLY}
""")
    assert (file, line) == ("10-a.yaml", 5)
    assert "duplicate key 'action'" in msg


def test_list_redefinition_in_another_file(tmp_path: Path) -> None:
    found = problems(tmp_path, {
        "10-a.yaml": "lists:\n  personal: [gmail.com]\n",
        "20-b.yaml": "# comment\nlists:\n  other: [x.com]\n  personal: [yahoo.com]\n",
    })
    assert [(f, n) for f, n, _ in found] == [("20-b.yaml", 4)]
    assert "personal" in found[0][2] and "10-a.yaml" in found[0][2]


def test_redefining_a_config_list(tmp_path: Path) -> None:
    file, line, msg = one(tmp_path, "lists:\n  agency_domains: [evil.example]\n")
    assert (file, line) == ("10-a.yaml", 2)
    assert "config" in msg


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, {"10-a.yaml": f"""
rules:
  - id: a
    when: {{nope: 1}}
    action: reject
    {REPLY}
  - id: b
    when: {{message_size_over: lots}}
    action: reject
    {REPLY}
"""})
    assert [(f, n) for f, n, _ in found] == [("10-a.yaml", 3), ("10-a.yaml", 7)]


def test_shipped_rules_and_examples_load_together(tmp_path: Path) -> None:
    """The example profiles are valid and do not clash with the shipped rules."""
    d = tmp_path / "rules"
    shutil.copytree(REPO / "rules", d, ignore=shutil.ignore_patterns("examples"))
    for example in sorted((REPO / "rules" / "examples").glob("*.yaml")):
        shutil.copy(example, d / f"95-{example.name}")
    rs = load_rules(d, BUILTINS)
    ids = [r.id for r in rs.rules]
    assert "kelantan-saiz-emel-10mb" in ids
    assert len(ids) == len(set(ids))


def test_shipped_rules_dir_ignores_examples() -> None:
    rs = load_rules(REPO / "rules", BUILTINS)
    ids = {r.id for r in rs.rules}
    assert "kelantan-saiz-emel-10mb" not in ids
    assert all(Path(f).parent == REPO / "rules" for f in rs.files)
    for rule in rs.rules:
        assert rule.id == rule.id.lower()
        assert rule.reference, rule.id
        if rule.reply is not None:
            assert len(rule.reply.lines) == 2, rule.id  # Malay, then English
