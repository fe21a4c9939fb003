"""The inspection pool's config keys: defaults for the machine, shares per worker, load errors.

`limits.inspection_processes`, `inspection_queue`, `inspection_wait` and
`inspection_memory` describe the whole gateway; each gateway worker (`workers`)
takes its share. The estimate of a message's inspection memory is 8x its size
plus 1 MB (bench/inspect.py). The pool itself runs against a real gateway in
tests/integration/test_inspection_pool.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import load_config
from gateway.frontends.pool import COST_BASE, PoolSettings, cost_of, physical_memory
from gateway.problems import LoadError

MiB = 1024 * 1024


def config_with(tmp_path: Path, limits: dict[str, Any], **top: Any) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({
        "listeners": [{"name": "o", "listen": "127.0.0.1:2525", "direction": "outbound"}],
        "upstream": "maildir:mail", "agency_domains": ["anm.gov.my"],
        "rules_dir": str(tmp_path), "limits": limits, **top}))
    return path


def test_defaults_are_sized_for_the_machine(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, {}))
    settings = PoolSettings.of(config)
    assert settings.processes == len(os.sched_getaffinity(0))
    assert settings.memory == physical_memory() // 4
    assert settings.queue == 100
    # Half of what the session timeout leaves after inspection and upstream, at most 30 s.
    assert config.limits.waiting_time == 30.0
    short = load_config(config_with(tmp_path, {"session_timeout": 10, "upstream_timeout": 4,
                                               "inspection_timeout": 5,
                                               "upstream_connect_timeout": 9}))
    assert short.limits.waiting_time == 0.5


def test_each_worker_takes_its_share(tmp_path: Path) -> None:
    config = load_config(config_with(
        tmp_path, {"inspection_processes": 5, "inspection_queue": 100,
                   "inspection_memory": "4GB"}, workers=2))
    assert PoolSettings.of(config) == PoolSettings(processes=3, queue=50, memory=2048 * MiB)


def test_cost_is_eight_times_the_size_plus_a_base() -> None:
    assert cost_of(0) == COST_BASE
    assert cost_of(25 * MiB) == 200 * MiB + COST_BASE


@pytest.mark.parametrize(("limits", "words"), [
    ({"inspection_processes": 0}, "inspection_processes"),
    ({"inspection_processes": "many"}, "inspection_processes"),
    ({"inspection_memory": "1MB"}, "at least 16MB"),
    ({"inspection_memory": "lots"}, "inspection_memory"),
    ({"inspection_queue": 0}, "inspection_queue"),
    ({"session_timeout": 60, "inspection_timeout": 20, "upstream_timeout": 20,
      "inspection_wait": 20}, "inspection_wait + inspection_timeout + upstream_timeout"),
])
def test_bad_values_are_load_errors_with_the_line(tmp_path: Path, limits: dict[str, Any],
                                                  words: str) -> None:
    with pytest.raises(LoadError) as exc:
        load_config(config_with(tmp_path, limits))
    [problem] = exc.value.problems
    assert words in str(problem)
    assert problem.line is not None and problem.line > 1
