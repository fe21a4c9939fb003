"""Refuse to start broken: unusable paths and an empty rules directory stop `gateway serve`
(exit 2) and fail `gateway rules check` (exit 1), one `FILE:LINE: key: message` per
problem naming the absolute path. Run as the administrator would, in real processes,
on real files; the failures are ones root cannot bypass (a path through a file, a
missing directory under a file, a directory with no rule file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway

REPO = Path(__file__).resolve().parents[2]


def gateway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          cwd=cwd, env=env, timeout=60, text=True, check=False)


def write(tmp_path: Path, **overrides: object) -> Path:
    """A config that starts (rules copied from the repository), with keys replaced."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    for name in ("00-senarai.yaml", "10-saiz.yaml"):
        (rules / name).write_text((REPO / "rules" / name).read_text())
    config: dict[str, object] = {
        "listeners": [{"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": f"maildir:{tmp_path / 'mail'}",
        "agency_domains": ["anm.gov.my"],
        "rules_dir": str(rules),
        "rejection_log": str(tmp_path / "log" / "rejections.jsonl"),
    }
    config.update(overrides)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def line_of(path: Path, key: str) -> int:
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        if text.startswith(f"{key}:") or text.strip().startswith(f"{key}:"):
            return n
    raise AssertionError(key)


def both_refuse(tmp_path: Path, config: Path) -> str:
    """`rules check` says 1 and `serve` says 2 with the same lines; those lines."""
    checked = gateway("rules", "check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 1, checked
    assert checked.stdout == ""
    served = gateway("serve", "--config", str(config), cwd=tmp_path)
    assert served.returncode == 2, served
    assert served.stderr == checked.stderr
    return checked.stderr


def test_a_good_config_passes(tmp_path: Path) -> None:
    checked = gateway("rules", "check", "--config", str(write(tmp_path)), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert not (tmp_path / "log").exists()  # a check creates nothing


def test_rejection_log_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    log = tmp_path / "blocker" / "logs" / "rejections.jsonl"
    config = write(tmp_path, rejection_log=str(log))
    err = both_refuse(tmp_path, config)
    assert err == (f"{config}:{line_of(config, 'rejection_log')}: rejection_log: the rejection "
                   f"log cannot be written: cannot create {log}: {log.parent} cannot be "
                   f"created: {tmp_path / 'blocker'} is not a directory\n")


def test_rejection_log_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "logdir").mkdir()
    config = write(tmp_path, rejection_log=str(tmp_path / "logdir"))
    err = both_refuse(tmp_path, config)
    assert err.endswith(f"rejection_log: the rejection log cannot be written: "
                        f"{tmp_path / 'logdir'} is a directory\n")


def test_relative_paths_are_named_absolute(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("not a directory")
    config = write(tmp_path, rejection_log="var/log/rejections.jsonl")
    err = both_refuse(tmp_path, config)
    assert f"cannot create {tmp_path}/var/log/rejections.jsonl: " in err


def test_spool_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("x")
    config = write(tmp_path, limits={"spool_dir": str(tmp_path / "spool" / "gateway")})
    err = both_refuse(tmp_path, config)
    assert err == (f"{config}:{line_of(config, 'spool_dir')}: limits.spool_dir: large messages "
                   f"cannot be spooled: {tmp_path / 'spool' / 'gateway'} cannot be created: "
                   f"{tmp_path / 'spool'} is not a directory\n")


async def test_missing_directories_that_can_be_made_pass_and_are_made_at_start(
        tmp_path: Path) -> None:
    spool = tmp_path / "spool" / "gateway"
    config = write(tmp_path, limits={"spool_dir": str(spool)})
    assert gateway("rules", "check", "--config", str(config), cwd=tmp_path).returncode == 0
    assert not spool.exists()
    started = Gateway(load_policy(config))
    await started.start()
    try:
        assert spool.is_dir() and spool.stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "log" / "rejections.jsonl").is_file()
        assert (tmp_path / "mail" / "new").is_dir()
    finally:
        await started.stop(drain_timeout=0.5)


def test_maildir_that_cannot_take_a_file(tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "new").write_text("a file where Maildir's new/ should be")
    config = write(tmp_path)
    err = both_refuse(tmp_path, config)
    assert err == (f"{config}:{line_of(config, 'upstream')}: upstream: cannot deliver into the "
                   f"Maildir: {mail / 'new'} is not a directory\n")


def test_empty_rules_dir(tmp_path: Path) -> None:
    config = write(tmp_path)
    for rule_file in (tmp_path / "rules").iterdir():
        rule_file.rename(rule_file.with_suffix(".yaml.off"))
    err = both_refuse(tmp_path, config)
    assert err == (f"{config}:{line_of(config, 'rules_dir')}: rules_dir: no rule file (*.yaml) "
                   f"in {tmp_path / 'rules'}: the gateway would enforce nothing; copy the "
                   "shipped rules/ there\n")


def test_missing_rules_dir(tmp_path: Path) -> None:
    config = write(tmp_path, rules_dir=str(tmp_path / "no-such-rules"))
    err = both_refuse(tmp_path, config)
    assert err.endswith(f"rules_dir: {tmp_path / 'no-such-rules'} does not exist\n")


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    config = write(tmp_path, rejection_log=str(tmp_path / "blocker" / "r.jsonl"),
                   rules_dir=str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    err = both_refuse(tmp_path, config)
    lines = err.splitlines()
    assert len(lines) == 2
    assert "rejection_log:" in lines[0] and "rules_dir:" in lines[1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directory_for_other_users(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    config = write(tmp_path, rejection_log=str(locked / "r.jsonl"))
    err = both_refuse(tmp_path, config)
    assert f"{locked} is not writable" in err
