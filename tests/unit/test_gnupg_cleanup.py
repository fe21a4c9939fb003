"""The suite's GnuPG hygiene: gpg starts an agent that outlives it, and the suite stops it.

Runs real gpg in a `gnupg_home`, sees its gpg-agent running, stops it the way the
fixture does, and sees it gone; the session check in tests/conftest.py finds agents
by the same process scan."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.gnupg import agents, stop_agent


def agents_for(home: Path) -> list[int]:
    return [pid for pid, h in agents().items() if h is not None and h.resolve() == home.resolve()]


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_agent_started_by_gpg_is_stopped(gnupg_home: Path) -> None:
    subprocess.run(["gpg", "--homedir", str(gnupg_home), "--batch", "--pinentry-mode",
                    "loopback", "--passphrase", "x", "--symmetric", "--armor"],
                   input=b"isi\n", capture_output=True, check=True, timeout=60)
    assert agents_for(gnupg_home), "gpg left no agent: nothing for the suite to stop"
    stop_agent(gnupg_home)
    deadline = time.monotonic() + 10
    while agents_for(gnupg_home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agents_for(gnupg_home) == []
