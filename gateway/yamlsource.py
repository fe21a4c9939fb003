"""YAML documents that remember where each value came from.

PyYAML's `safe_load` forgets line numbers and silently keeps the last of two
duplicate keys; both matter to an administrator reading an error. This module
parses with the safe loader, refuses duplicate keys, and keeps a map from each
value's path (keys and list indexes) to its 1-based line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.problems import LoadError, Problem

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, path: PathKey) -> int:
        """Line of the deepest known value on `path` (1 when nothing is known)."""
        for n in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:n]))
            if found is not None:
                return found
        return 1

    def problem(self, path: PathKey, message: str) -> Problem:
        return Problem(self.file, self.line(path), message)


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], file: str,
          problems: list[Problem]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                problems.append(Problem(file, key_node.start_mark.line + 1,
                                        f"duplicate key {key!r} (first at line {seen[key]})"))
                continue
            seen[key] = key_node.start_mark.line + 1
            _walk(value_node, (*path, str(key)), lines, file, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, file, problems)
    elif isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:timestamp":
        # A date-looking scalar that is no date (2025-02-30) would make safe_load raise
        # a bare ValueError with no line: report it here, where the line is known.
        try:
            yaml.SafeLoader.construct_yaml_timestamp(yaml.SafeLoader(""), node)
        except ValueError as exc:
            problems.append(Problem(file, node.start_mark.line + 1,
                                    f"{node.value!r} is not a date: {exc}"))


def load_text(text: str, file: str) -> Located:
    """Parse one YAML document; raises LoadError with FILE:LINE problems."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise LoadError([Problem(file, line, f"YAML syntax: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise LoadError([Problem(file, 1, f"YAML syntax: {exc}")]) from None
    if node is None:
        return Located(file, None, {(): 1})
    lines: dict[PathKey, int] = {}
    problems: list[Problem] = []
    _walk(node, (), lines, file, problems)
    if problems:
        raise LoadError(problems)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LoadError([Problem(file, 1, f"YAML: {exc}")]) from None
    return Located(file, data, lines)


def load_file(path: Path) -> Located:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError([Problem(str(path), 1, f"cannot read: {exc}")]) from None
    return load_text(text, str(path))
