"""Fixtures for the whole suite: a private GnuPG home, and no gpg-agent left behind.

gpg starts a gpg-agent daemon for its home directory and leaves it running after gpg
exits. A test that runs gpg takes `gnupg_home`, a fresh directory under its tmp_path
whose agent is stopped (`gpgconf --kill gpg-agent`) when the test ends; and at the end
of the session any gpg-agent still serving a directory of this session's temporary
tree fails the run (after being stopped), so a test that forgets is found at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gnupg import agents, stop_agent, under


@pytest.fixture
def gnupg_home(tmp_path: Path) -> Iterator[Path]:
    """A private GnuPG home (mode 0700); its gpg-agent is stopped after the test."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        yield home
    finally:
        stop_agent(home)


@pytest.fixture(scope="session", autouse=True)
def no_gpg_agent_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    root = tmp_path_factory.getbasetemp().resolve()
    yield
    left = {pid: home for pid, home in agents().items() if under(home, root)}
    for home in set(left.values()):
        assert home is not None
        stop_agent(home)
    if left:
        pytest.fail("the tests left gpg-agent running (use the gnupg_home fixture): "
                    + ", ".join(f"pid {pid} for {home}" for pid, home in sorted(left.items())))
