"""Every Python package of the gateway is named in pyproject.toml.

setuptools' package list is explicit (the flat layout), so a new subpackage left out
of it is missing from `make install`'s non-editable install while every test, run
from the repository, still passes (gateway.antivirus was, on 2026-11-30).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_is_listed() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for init in (REPO / "gateway").rglob("__init__.py")}
    assert found == listed
