"""GnuPG processes the tests start: stop a home's gpg-agent, find the agents running.

gpg starts a gpg-agent daemon for its home directory and leaves it running after gpg
exits; tests/conftest.py uses these to stop it after each test and to fail a session
that leaves one behind.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

GPGCONF_TIMEOUT = 30


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent serving `home`, if any (gpgconf does nothing when none runs)."""
    if shutil.which("gpgconf") is None:
        return
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                   capture_output=True, timeout=GPGCONF_TIMEOUT, check=False)


def agents() -> dict[int, Path | None]:
    """Running gpg-agent processes -> the home directory each serves (None: unknown)."""
    found: dict[int, Path | None] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "gpg-agent":
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # exited, waiting to be reaped: not running
            args = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        home: Path | None = None
        for i, arg in enumerate(args):
            if arg == b"--homedir" and i + 1 < len(args):
                home = Path(args[i + 1].decode(errors="replace"))
        if home is None:
            for var in environ:
                if var.startswith(b"GNUPGHOME="):
                    home = Path(var.split(b"=", 1)[1].decode(errors="replace"))
        found[int(entry.name)] = home
    return found


def under(path: Path | None, root: Path) -> bool:
    if path is None:
        return False
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True
