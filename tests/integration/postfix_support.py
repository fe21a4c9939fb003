"""A private Postfix instance for the tests: its own config and queue under a temp dir.

Only loopback ports the test picks; every service unchrooted; the log goes to a file
in the instance directory (shown when a test fails). Start and stop are bounded, and
`stop` ends the instance with `postfix abort` plus a kill of its master if a clean
stop does not finish in time, so a failing test never leaves a Postfix running.
Postfix needs root (its master drops privileges to `mail_owner` itself); the tests
are skipped where it is not installed or we are not root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .support import GatewayHandle, started_gateway

POSTFIX = "/usr/sbin/postfix"
START_TIMEOUT = 30.0

MASTER_CF = """\
{services}
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> str | None:
    """Why Postfix tests cannot run here, or None when they can."""
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (make test installs it)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    return None


def instance_dir() -> Path:
    """A fresh directory Postfix's unprivileged processes can reach (pytest's tmp_path
    sits under a mode-0700 directory they cannot enter); the caller removes it."""
    base = Path(tempfile.mkdtemp(prefix="gateway-postfix-"))
    os.chmod(base, 0o755)
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postfix:
    base: Path
    port: int
    relayhost: tuple[str, int]
    milter: str | None  # e.g. inet:127.0.0.1:8890
    extra: dict[str, str] | None = None
    # master.cf lines for the SMTP services; default: one plain smtpd on `port`
    services: str | None = None

    @property
    def config_dir(self) -> Path:
        return self.base / "etc"

    @property
    def log_file(self) -> Path:
        return self.base / "postfix.log"

    def _postfix(self, *args: str, timeout: float = START_TIMEOUT
                 ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([POSTFIX, "-c", str(self.config_dir), *args], text=True,
                              capture_output=True, timeout=timeout, check=False)

    def write(self) -> None:
        for sub in ("etc", "queue", "data"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        shutil.chown(self.base / "data", "postfix", "postfix")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.base / "queue"),
            "data_directory": str(self.base / "data"),
            "maillog_file": str(self.log_file),
            "maillog_file_prefixes": str(self.base),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx.postfix.test",
            "mydomain": "postfix.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relay_domains": "anm.gov.my",
            "relayhost": f"[{self.relayhost[0]}]:{self.relayhost[1]}",
            "smtp_host_lookup": "native",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            **({"smtpd_milters": self.milter, "non_smtpd_milters": self.milter,
                "milter_default_action": "tempfail", "milter_protocol": "6"}
               if self.milter else {}),
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "smtputf8_enable": "no",
            "message_size_limit": "10240000",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            **(self.extra or {}),
        }
        (self.config_dir / "main.cf").write_text(
            "".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.config_dir / "master.cf").write_text(
            MASTER_CF.format(services=self.services
                             or f"127.0.0.1:{self.port} inet n - n - - smtpd"))

    def start(self) -> None:
        self.write()
        done = self._postfix("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed: {done.stderr}{self.log()}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1.0) as s:
                s.settimeout(5.0)
                if s.recv(512).startswith(b"220"):
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"postfix did not greet on port {self.port}{self.log()}")

    def master_pid(self) -> int | None:
        pid_file = self.base / "queue" / "pid" / "master.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(pid_file.read_text().strip())
        return None

    def stop(self) -> None:
        pid = self.master_pid()
        with contextlib.suppress(subprocess.TimeoutExpired):
            if self._postfix("stop", timeout=15).returncode == 0:
                self._wait_gone(pid, 10.0)
        if pid is not None and _alive(pid):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._postfix("abort", timeout=10)
            self._wait_gone(pid, 5.0)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _wait_gone(pid: int | None, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return "\n--- postfix log ---\n" + self.log_file.read_text()[-4000:]
        except OSError:
            return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Seconds a private Postfix may take to start or stop (a loaded CI machine is slow).
LIFECYCLE_TIMEOUT = 60


@contextlib.asynccontextmanager
async def running(next_hop_port: int, milter: str | None, *, port: int | None = None,
                  **settings: Any) -> AsyncIterator[Postfix]:
    """A private Postfix on loopback (`port`, default a free one) relaying to
    127.0.0.1:`next_hop_port`, with `milter` (e.g. "inet:127.0.0.1:8890") or none;
    `settings` as Postfix's own fields (extra, services). Stopped and its directory
    removed at the end, whatever happened."""
    base = instance_dir()
    postfix = Postfix(base, free_port() if port is None else port,
                      ("127.0.0.1", next_hop_port), milter, **settings)
    try:
        await asyncio.wait_for(asyncio.to_thread(postfix.start), LIFECYCLE_TIMEOUT)
        yield postfix
    finally:
        try:
            await asyncio.wait_for(asyncio.to_thread(postfix.stop), LIFECYCLE_TIMEOUT)
        finally:
            shutil.rmtree(base, ignore_errors=True)


@contextlib.asynccontextmanager
async def milter_gateway_behind_postfix(config: Path, next_hop_port: int
                                        ) -> AsyncIterator[tuple[GatewayHandle, Postfix]]:
    """The gateway of `config` (its listener named "milter" in milter mode) as the
    milter of a private Postfix that relays to 127.0.0.1:`next_hop_port`; both stopped
    at the end. The handle's log is `rejections.jsonl` beside the config."""
    async with started_gateway(config) as gw:
        host, port = gw.gateway.address("milter")
        async with running(next_hop_port, f"inet:{host}:{port}") as postfix:
            yield gw, postfix
