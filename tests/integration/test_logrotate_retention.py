"""The shipped systemd/gateway.logrotate run by the real logrotate(8): rotated rejection
logs older than the stated retention (365 days) are deleted, younger ones kept."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAY = 86400


@pytest.mark.skipif(shutil.which("logrotate") is None,
                    reason="logrotate not installed (Makefile APT_PACKAGES has it)")
def test_rotated_logs_older_than_365_days_are_removed(tmp_path: Path) -> None:
    shipped = (REPO / "systemd" / "gateway.logrotate").read_text()
    assert re.search(r"(?m)^\s*maxage 365$", shipped)
    logs = tmp_path / "log"
    logs.mkdir(mode=0o750)
    # The test's own directory; no chown (create), and no signal to any real gateway.
    conf = shipped.replace("/var/log/gateway/*.jsonl", f"{logs}/*.jsonl")
    conf = re.sub(r"(?m)^\s*create .*\n", "", conf)
    conf = re.sub(r"(?ms)^\s*postrotate\n.*?endscript\n", "", conf)
    (tmp_path / "logrotate.conf").write_text(conf)
    (logs / "rejections.jsonl").write_text('{"ref": "now"}\n')
    old = logs / "rejections.jsonl-20250901.gz"
    young = logs / "rejections.jsonl-20260601.gz"
    for path, age in ((old, 370), (young, 182)):
        path.write_bytes(b"\x1f\x8b")
        os.utime(path, (time.time() - age * DAY, time.time() - age * DAY))
    subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"),
                    str(tmp_path / "logrotate.conf")], check=True, timeout=60,
                   capture_output=True)
    names = sorted(p.name for p in logs.iterdir())
    assert old.name not in names
    assert young.name in names
    assert any(re.fullmatch(r"rejections\.jsonl-\d{8}", n) for n in names)  # today's
