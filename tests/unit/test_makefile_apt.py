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


def run_macro(tmp_path: Path, apt_get: str, *make_vars: str
              ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
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
    proc = subprocess.run(["make", "-s", "-f", str(probe), "probe", "APT_LOCK_PAUSE=0",
                           *make_vars],
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


# apt-get install records what invoke-rc.d would be told: the policy script's output and
# exit status (101: "action forbidden", so no service starts), or that there is none.
POLICY_APT = """#!/bin/sh
echo "$*" >> "{calls}"
case " $* " in
  *" install "*)
    if [ -x "$POLICY" ]; then "$POLICY" clamav-daemon start; echo "policy $?" >> "{calls}";
    else echo "no policy" >> "{calls}"; fi;;
esac
exit 0
"""


@pytest.mark.skipif(shutil.which("make") is None or os.geteuid() != 0,
                    reason="needs make, and root (apt_install refuses to run apt otherwise)")
@pytest.mark.parametrize("no_start", [True, False])
def test_make_test_installs_without_starting_services(tmp_path: Path, no_start: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "policy-rc.d"
    monkeypatch.setenv("POLICY", str(policy))
    extra = [f"POLICY_RC_D={policy}"] + (["APT_NO_START=1"] if no_start else [])
    proc, calls = run_macro(tmp_path, POLICY_APT, *extra)
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == ("policy 101" if no_start else "no policy"), calls
    assert not policy.exists()  # removed again: `make run` later starts services as usual


@pytest.mark.skipif(shutil.which("make") is None or os.geteuid() != 0,
                    reason="needs make, and root (apt_install refuses to run apt otherwise)")
def test_an_existing_policy_script_is_left_alone(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    policy.chmod(0o755)
    monkeypatch.setenv("POLICY", str(policy))
    proc, calls = run_macro(tmp_path, POLICY_APT, f"POLICY_RC_D={policy}", "APT_NO_START=1")
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == "policy 0"
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_the_test_target_sets_no_start() -> None:
    out = subprocess.run(["make", "-n", "-p", "test"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False).stdout
    assert "APT_NO_START := 1" in out
