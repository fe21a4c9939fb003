"""Load-time problems with the file and line they come from (`FILE:LINE: message`).

Config and rule files are refused as a whole with every problem listed, so an
administrator fixes them in one pass instead of one error per restart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class LoadError(Exception):
    """A config or rule set that must not be put in force."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in problems))
