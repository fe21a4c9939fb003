"""Writing corpus cases: a file and its `<file>.expect.yaml` sidecar (read by
tests/unit/test_corpus.py), the same way for every generator in this folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

Cases = Mapping[str, tuple[bytes, Mapping[str, object]]]


def write_case(folder: Path, name: str, data: bytes, expect: Mapping[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    (folder / f"{name}.expect.yaml").write_text(
        yaml.safe_dump(dict(expect), sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8")


def write_cases(folder: Path, cases: Cases) -> int:
    """Every case into `folder`, after removing the files of cases no longer made
    (only files: a sub-folder belongs to another generator). Returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if old.is_file() and old.name.removesuffix(".expect.yaml") not in cases:
            old.unlink()
    for name, (data, expect) in sorted(cases.items()):
        write_case(folder, name, data, expect)
    return len(cases)
