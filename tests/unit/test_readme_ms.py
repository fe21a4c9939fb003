"""README.ms.md (the Malay README for agency mail administrators) stays in step with
README.md.

The mapping lives in README.ms.md itself: every `## ` heading there is followed by a
comment `<!-- en: ENGLISH HEADING -->` naming the README.md section it mirrors, and
the comment block at its top lists the README.md sections it deliberately leaves
out, one `not-mirrored: ENGLISH HEADING` line each. Every `## ` section of README.md
must be one or the other: when README.md gains a section someone must decide whether
the administrators need it in Malay, and when it loses or renames a mirrored one the
Malay README must follow.

The commands both quote must be the same: the Quick start block word for word, and
every `make`, `gateway` and `systemctl` command line, every Postfix directive and
every inline `gateway ...`/`make ...` span of README.ms.md must occur in README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EN = REPO / "README.md"
MS = REPO / "README.ms.md"
_FENCE = re.compile(r"^\s*```")


def _outside_fences(text: str) -> list[tuple[int, str]]:
    """(index, line) of the lines outside fenced code blocks."""
    out, inside = [], False
    for i, line in enumerate(text.splitlines()):
        if _FENCE.match(line):
            inside = not inside
        elif not inside:
            out.append((i, line))
    return out


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """Fenced code blocks as (info string, lines)."""
    out: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if _FENCE.match(line):
            if current is None:
                current = []
                out.append((line.strip().removeprefix("```"), current))
            else:
                current = None
        elif current is not None:
            current.append(line)
    return out


def english_sections(text: str) -> list[str]:
    return [line[3:].strip() for _, line in _outside_fences(text) if line.startswith("## ")]


def malay_sections(text: str) -> list[tuple[str, str | None]]:
    """(Malay heading, the English heading its `<!-- en: ... -->` names, or None)."""
    lines = text.splitlines()
    out: list[tuple[str, str | None]] = []
    for i, line in _outside_fences(text):
        if line.startswith("## "):
            following = next((x.strip() for x in lines[i + 1:] if x.strip()), "")
            m = re.fullmatch(r"<!--\s*en:\s*(.+?)\s*-->", following)
            out.append((line[3:].strip(), m.group(1) if m else None))
    return out


def not_mirrored(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^not-mirrored:\s*(.+)$", text, re.M)]


def section_problems(en_text: str, ms_text: str) -> list[str]:
    """Why the section lists are out of step ([] when they are in step)."""
    english = english_sections(en_text)
    problems = [f"README.ms.md: '## {ms}' names no English section (<!-- en: ... -->)"
                for ms, en in malay_sections(ms_text) if en is None]
    mirrored = [en for _, en in malay_sections(ms_text) if en is not None]
    left_out = not_mirrored(ms_text)
    for en in mirrored + left_out:
        if en not in english:
            problems.append(f"README.md has no section '## {en}' (named in README.ms.md)")
    for en in english:
        if en not in mirrored and en not in left_out:
            problems.append(f"README.md section '## {en}' is neither mirrored in "
                            "README.ms.md nor listed there as not-mirrored")
    for en in set(mirrored):
        if mirrored.count(en) > 1 or en in left_out:
            problems.append(f"'{en}' is mirrored twice or also listed as not-mirrored")
    in_english_order = [en for en in english if en in mirrored]
    if not problems and in_english_order != mirrored:
        problems.append(f"README.ms.md mirrors the sections in another order: {mirrored} "
                        f"vs README.md's {in_english_order}")
    return problems


def _normalise(line: str) -> str:
    line = re.sub(r"\s+#.*$", "", line)  # a trailing comment may be translated
    return " ".join(line.split())


def _code_lines(text: str) -> list[str]:
    """Every line of every fenced block, comments dropped, `\\` continuations joined."""
    out: list[str] = []
    for _, lines in _blocks(text):
        pending = ""
        for raw in lines:
            line = _normalise(raw)
            if line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            out.append((pending + line).strip())
            pending = ""
    return out


_COMMAND = re.compile(r"^(make|gateway|systemctl|\S*/bin/gateway)\s")
_DIRECTIVE = re.compile(r"^(-o \S+|[a-z_]+ = .+)$")


def quoted_commands(text: str) -> list[str]:
    return [line for line in _code_lines(text) if _COMMAND.match(line + " ")]


def quick_start_block(text: str) -> list[str]:
    """The first sh block of the Quick start section (the two set-up commands)."""
    body = re.split(r"^## ", text, flags=re.M)[1]
    return next(lines for info, lines in _blocks(body) if info == "sh")


def command_problems(en_text: str, ms_text: str) -> list[str]:
    problems = []
    if quick_start_block(en_text) != quick_start_block(ms_text):
        problems.append(f"Quick start commands differ: {quick_start_block(ms_text)} vs "
                        f"README.md {quick_start_block(en_text)}")
    english_lines = set(_code_lines(en_text))
    for line in _code_lines(ms_text):
        if (_COMMAND.match(line + " ") or _DIRECTIVE.match(line)) and line not in english_lines:
            problems.append(f"README.ms.md quotes '{line}', which README.md does not")
    flat = " ".join(en_text.split())
    for span in re.findall(r"`([^`\n]+)`", ms_text):
        if _COMMAND.match(span + " ") and " ".join(span.split()) not in flat:
            problems.append(f"README.ms.md quotes `{span}`, which README.md does not")
    return problems


# -- the real READMEs -----------------------------------------------------------------------
def test_malay_readme_mirrors_the_english_sections() -> None:
    assert section_problems(EN.read_text(encoding="utf-8"),
                            MS.read_text(encoding="utf-8")) == []


def test_malay_readme_quotes_the_same_commands() -> None:
    en, ms = EN.read_text(encoding="utf-8"), MS.read_text(encoding="utf-8")
    assert quick_start_block(ms) == ["make run", "make test"]
    assert {"gateway rules check", "gateway check", "gateway rules diff",
            "gateway report"} <= {" ".join(c.split()[:3]) if c.startswith("gateway rules")
                                  else " ".join(c.split()[:2])
                                  for c in re.findall(r"`([^`\n]+)`", ms)
                                  if c.startswith("gateway ")}
    assert len(quoted_commands(ms)) >= 8
    assert command_problems(en, ms) == []


def test_malay_readme_covers_what_the_administrators_need() -> None:
    ms = MS.read_text(encoding="utf-8")
    headings = [line for _, line in _outside_fences(ms) if line.startswith("#")]
    for needed in ("Postfix, e-mel keluar", "Postfix, e-mel masuk", "Postfix, sebagai milter",
                   "Exchange", "Zimbra", "Log penolakan", "Laporan"):
        assert any(needed in h for h in headings), needed
    for term in ("pentadbir e-mel", "peraturan", "lampiran", "disulitkan", "hebahan",
                 "milter_default_action = tempfail"):
        assert term in ms, term


# -- the comparison itself fails when it should -------------------------------------------------
def test_a_new_english_section_must_be_classified() -> None:
    en, ms = EN.read_text(encoding="utf-8"), MS.read_text(encoding="utf-8")
    grown = en + "\n## Example section added by a test\n\nText.\n"
    assert section_problems(grown, ms) == [
        "README.md section '## Example section added by a test' is neither mirrored in "
        "README.ms.md nor listed there as not-mirrored"]
    classified = ms.replace(
        "not-mirrored: Layout\n",
        "not-mirrored: Layout\nnot-mirrored: Example section added by a test\n", 1)
    assert classified != ms
    assert section_problems(grown, classified) == []


def test_a_removed_or_renamed_mirrored_section_is_seen() -> None:
    en, ms = EN.read_text(encoding="utf-8"), MS.read_text(encoding="utf-8")
    renamed = en.replace("\n## Rejection log\n", "\n## The rejection log\n")
    problems = section_problems(renamed, ms)
    assert "README.md has no section '## Rejection log' (named in README.ms.md)" in problems


def test_a_malay_section_without_its_english_name_is_seen() -> None:
    en, ms = EN.read_text(encoding="utf-8"), MS.read_text(encoding="utf-8")
    broken = ms.replace("<!-- en: Commands -->\n", "")
    problems = section_problems(en, broken)
    assert "README.ms.md: '## Arahan' names no English section (<!-- en: ... -->)" in problems


@pytest.mark.parametrize(("old", "new"), [
    ("make run\nmake test\n```", "make run\nmake check\n```"),
    ("--against rules.new corpus/", "--against rules.baru corpus/"),
    ("milter_default_action = tempfail  ", "milter_default_action = accept  "),
    ("`gateway rules diff` menilai", "`gateway rules compare` menilai"),
])
def test_a_changed_command_is_seen(old: str, new: str) -> None:
    en, ms = EN.read_text(encoding="utf-8"), MS.read_text(encoding="utf-8")
    assert old in ms
    assert command_problems(en, ms.replace(old, new, 1)) != []


# -- the rule examples load -------------------------------------------------------------------
def _policy_with(rules_dir: Path, tmp_path: Path) -> int:
    """Rules loaded from `rules_dir` under the shipped config; the number of rules."""
    import yaml

    from gateway.policy_state import load_policy

    config = yaml.safe_load((REPO / "config/gateway.yaml").read_text(encoding="utf-8"))
    config.update(rules_dir=str(rules_dir), rejection_log=str(tmp_path / "rejections.jsonl"),
                  upstream=f"maildir:{tmp_path / 'mail'}")
    config.pop("antivirus", None)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return len(load_policy(path).rules.rules)


@pytest.mark.parametrize("top_key", ["rules:", "exceptions:"])
def test_the_malay_rule_examples_load(top_key: str, tmp_path: Path) -> None:
    import shutil

    ms = MS.read_text(encoding="utf-8")
    [example] = ["\n".join(lines) + "\n" for info, lines in _blocks(ms)
                 if info == "yaml" and any(line == top_key for line in lines)]
    rules_dir = tmp_path / "rules"
    if top_key == "exceptions:":  # it names shipped rules: loaded beside them
        shutil.copytree(REPO / "rules", rules_dir)
    else:
        rules_dir.mkdir()
    (rules_dir / "99-contoh.yaml").write_text(example, encoding="utf-8")
    assert _policy_with(rules_dir, tmp_path) >= 1
