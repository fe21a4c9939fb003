"""`make` waits for apt's locks instead of failing when unattended-upgrades holds them.

The Makefile's own apt_install macro runs against stand-ins for dpkg-query (every
package missing) and apt-get (the first `update` finds the package-list lock held, as
while unattended-upgrades runs); it must pass `-o DPkg::Lock::Timeout=600` to both
apt-get calls, retry the update, and install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE_APT = """#!/bin/sh
echo "$*" >> "{calls}"
case " $* " in
  *" update "*)
    if [ ! -e "{state}" ]; then
      touch "{state}"
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)" >&2
      exit 100
    fi;;
esac
exit 0
"""


def run_macro(tmp_path: Path, apt_get: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "apt-get").write_text(apt_get.format(calls=calls, state=tmp_path / "held-once"))
    (bin_dir / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    probe = tmp_path / "probe.mk"
    probe.write_text(f"include {REPO / 'Makefile'}\n\nprobe:\n\t$(call apt_install,fakepkg)\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["make", "-s", "-f", str(probe), "probe", "APT_LOCK_PAUSE=0"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    return proc, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.skipif(shutil.which("make") is None or os.geteuid() != 0,
                    reason="needs make, and root (apt_install refuses to run apt otherwise)")
def test_apt_waits_for_the_locks_and_retries_a_held_package_list_lock(tmp_path: Path) -> None:
    proc, calls = run_macro(tmp_path, FAKE_APT)
    assert proc.returncode == 0, proc.stderr
    assert calls == ["-o DPkg::Lock::Timeout=600 update -q",
                     "-o DPkg::Lock::Timeout=600 update -q",
                     "-o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends fakepkg"]
    assert "waiting for the apt package-list lock" in proc.stderr


@pytest.mark.skipif(shutil.which("make") is None or os.geteuid() != 0,
                    reason="needs make, and root (apt_install refuses to run apt otherwise)")
def test_other_update_failures_are_not_retried(tmp_path: Path) -> None:
    failing = "#!/bin/sh\necho \"$*\" >> \"{calls}\"\necho 'E: network down' >&2\nexit 100\n"
    proc, calls = run_macro(tmp_path, failing)
    assert proc.returncode != 0
    assert calls == ["-o DPkg::Lock::Timeout=600 update -q"]
