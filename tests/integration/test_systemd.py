"""Running under systemd: the unit, `make install`, sd_notify and log rotation.

`systemd-analyze verify` and `security --offline` judge the shipped unit inside a
`make install DESTDIR=...` tree (`--root`), so nothing on this machine is touched.
The sd_notify tests run `python -m gateway serve` as systemd would, with
NOTIFY_SOCKET pointing at a datagram socket the test binds; SO_PASSCRED tells
which process sent each state (NotifyAccess=main accepts only the main one).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gateway.observe import rejection_log
from gateway.observe.rejection_log import RejectionLog

from .faultkit import Served
from .support import in_thread, message, write_config

REPO = Path(__file__).resolve().parents[2]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed "
                                   "(package systemd, installed by `make deps`)")


# --- make install ---------------------------------------------------------------------

def make_install(destdir: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["make", "--no-print-directory", "install", f"DESTDIR={destdir}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    make_install(root)
    return root


def test_make_install_lays_out_the_service(staged: Path) -> None:
    unit = staged / "etc/systemd/system/gateway.service"
    assert unit.read_bytes() == (REPO / "systemd/gateway.service").read_bytes()
    assert (staged / "etc/tmpfiles.d/gateway.conf").read_bytes() == \
        (REPO / "systemd/gateway.tmpfiles").read_bytes()
    assert (staged / "etc/logrotate.d/gateway").read_bytes() == \
        (REPO / "systemd/gateway.logrotate").read_bytes()
    assert (staged / "etc/gateway/gateway.yaml").read_bytes() == \
        (REPO / "config/gateway.production.yaml").read_bytes()
    assert (staged / "etc/gateway/gateway.yaml").stat().st_mode & 0o007 == 0
    assert sorted(p.name for p in (staged / "etc/gateway/rules").glob("*.yaml")) == \
        sorted(p.name for p in (REPO / "rules").glob("*.yaml"))
    assert (staged / "opt/gateway/gateway/service.py").is_file()
    assert (staged / "opt/gateway/pyproject.toml").is_file()
    assert not list((staged / "opt/gateway").rglob("__pycache__"))


def test_make_install_twice_keeps_the_administrators_config(tmp_path: Path) -> None:
    make_install(tmp_path)
    first = tree(tmp_path)
    config = tmp_path / "etc/gateway/gateway.yaml"
    config.write_text(config.read_text() + "# edited by the administrator\n")
    (tmp_path / "etc/gateway/rules/99-local.yaml").write_text("rules: []\n")
    again = make_install(tmp_path)
    assert "kept" in again.stdout
    second = tree(tmp_path)
    assert config.read_text().endswith("# edited by the administrator\n")
    assert (tmp_path / "etc/gateway/rules/99-local.yaml").exists()
    changed = {k for k in first if first[k] != second.get(k)}
    assert changed == {"etc/gateway/gateway.yaml"}
    assert set(second) - set(first) == {"etc/gateway/rules/99-local.yaml"}


# --- man pages --------------------------------------------------------------------------
MAN_PAGES = {"usr/share/man/man8/gateway.8": "man/gateway.8",
             "usr/share/man/man5/gateway.yaml.5": "man/gateway.yaml.5"}
MANDOC = shutil.which("mandoc")
GROFF = shutil.which("groff")


def test_make_install_installs_the_man_pages(staged: Path) -> None:
    for installed, source in MAN_PAGES.items():
        assert (staged / installed).read_bytes() == (REPO / source).read_bytes()
        assert (staged / installed).stat().st_mode & 0o777 == 0o644
    assert (staged / "opt/gateway/README.ms.md").read_bytes() == \
        (REPO / "README.ms.md").read_bytes()


def lint_man_page(page: Path) -> list[str]:
    """What mandoc -Tlint (preferred) or groff -ww finds wrong in a man page; [] if
    nothing. Every message counts, down to mandoc's STYLE level."""
    if MANDOC is not None:
        done = subprocess.run([MANDOC, "-Tlint", str(page)], capture_output=True, text=True,
                              timeout=30, check=False)
        return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert GROFF is not None
    done = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-z", str(page)],
                          capture_output=True, text=True, timeout=30, check=False)
    return [line for line in done.stderr.splitlines() if line.strip()] + (
        [f"groff exited {done.returncode}"] if done.returncode else [])


needs_man_tools = pytest.mark.skipif(
    MANDOC is None and GROFF is None,
    reason="neither mandoc nor groff installed (mandoc is in the Makefile's APT_PACKAGES)")


@needs_man_tools
@pytest.mark.parametrize("page", sorted(MAN_PAGES))
def test_installed_man_pages_lint_clean(staged: Path, page: str) -> None:
    assert lint_man_page(staged / page) == []


@needs_man_tools
def test_the_man_page_lint_would_catch_a_broken_page(staged: Path, tmp_path: Path) -> None:
    broken = tmp_path / "gateway.8"
    text = (staged / "usr/share/man/man8/gateway.8").read_text(encoding="utf-8")
    broken.write_text(text.replace(".SH SIGNALS\n", ".SH SIGNALS\n.XX unknown\n.TP\n.SH X\n"),
                      encoding="utf-8")
    assert lint_man_page(broken) != []


@pytest.mark.skipif(GROFF is None, reason="groff not installed (package groff-base)")
@pytest.mark.parametrize(("page", "expected"), [
    ("usr/share/man/man8/gateway.8", ["gateway rules diff", "SIGUSR1", "EXIT STATUS"]),
    ("usr/share/man/man5/gateway.yaml.5", ["agency_domains", "max_parts", "SEE ALSO"])])
def test_installed_man_pages_render(staged: Path, page: str, expected: list[str]) -> None:
    assert GROFF is not None
    done = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-P-c", "-P-b", "-P-u",
                           str(staged / page)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    for text in expected:
        assert text in done.stdout


def test_production_config_loads_with_the_shipped_rules(staged: Path, tmp_path: Path) -> None:
    from gateway.policy_state import load_policy

    data = yaml.safe_load((staged / "etc/gateway/gateway.yaml").read_text())
    assert data["rejection_log"].startswith("/var/log/gateway/")
    assert data["limits"]["spool_dir"] == "/var/spool/gateway"
    assert data["antivirus"]["clamd"] == "unix:/run/clamav/clamd.ctl"  # Debian's clamd
    data["rules_dir"] = str(staged / "etc/gateway/rules")
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    policy = load_policy(path)
    assert len(policy.rules.rules) > 0


# --- systemd-analyze ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sdroot(staged: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed tree plus what verify resolves in it: systemd's own units, the
    ExecReload binary, and a stand-in for the virtualenv (INSTALL_VENV=no here)."""
    root = tmp_path_factory.mktemp("sdroot")
    shutil.copytree(staged, root, dirs_exist_ok=True, symlinks=True)
    units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                 if p.is_dir())
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy2("/bin/kill", root / "bin/kill")
    exe = root / "opt/gateway/.venv/bin/gateway"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    return root


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60,
                          check=False)


@needs_analyze
def test_systemd_analyze_verify_passes(sdroot: Path) -> None:
    done = analyze("verify", "--man=no", f"--root={sdroot}", "gateway.service")
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


@needs_analyze
def test_systemd_analyze_verify_would_catch_a_bad_unit(sdroot: Path, tmp_path: Path) -> None:
    # The check above can fail: verify reports an unknown key or a missing binary.
    root = tmp_path / "root"
    shutil.copytree(sdroot, root, symlinks=True)
    unit = root / "etc/systemd/system/gateway.service"
    unit.write_text(unit.read_text().replace("Type=notify\n", "Type=notify\nFrobnicate=1\n"))
    done = analyze("verify", "--man=no", f"--root={root}", "gateway.service")
    assert "Frobnicate" in done.stderr
    (root / "opt/gateway/.venv/bin/gateway").unlink()
    assert analyze("verify", "--man=no", f"--root={root}", "gateway.service").returncode != 0


@needs_analyze
def test_systemd_analyze_security_scores_ok_or_better(sdroot: Path) -> None:
    done = analyze("security", "--offline=yes", f"--root={sdroot}", "--no-pager",
                   "gateway.service")
    found = re.search(r"Overall exposure level for gateway\.service: (\d+\.\d+) (\w+)",
                      done.stdout)
    assert found is not None, done.stdout + done.stderr
    # systemd's scale: 0 PERFECT, below 1 SAFE, below 5 OK, then MEDIUM, EXPOSED, UNSAFE.
    assert float(found.group(1)) < 5.0 and found.group(2) in ("PERFECT", "SAFE", "OK"), \
        found.group(0)
    unit = (sdroot / "etc/systemd/system/gateway.service").read_text()
    for setting in ("User=gateway", "NoNewPrivileges=yes", "ProtectSystem=strict",
                    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
                    "AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
                    "SystemCallFilter=@system-service", "Type=notify", "WatchdogSec=",
                    "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure"):
        assert setting in unit, setting


@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None or os.geteuid() != 0,
                    reason="needs systemd-tmpfiles and root (it sets owners)")
def test_tmpfiles_entry_creates_the_service_directories(staged: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(staged / "etc", root / "etc")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                     "gateway:x:999:998::/var/lib/gateway:/usr/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\ngateway:x:998:\n")
    done = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", "gateway.conf"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    for where in ("run/gateway", "var/log/gateway", "var/lib/gateway", "var/spool/gateway"):
        st = (root / where).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (999, 998, 0o750), where


# --- sd_notify from a real gateway process --------------------------------------------

@dataclass
class Notice:
    pid: int
    fields: dict[str, str]


class NotifySocket:
    """The test's stand-in for systemd's notification socket."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="sdn")
        self.path = str(Path(self.dir.name) / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setblocking(False)
        self.seen: list[Notice] = []

    def close(self) -> None:
        self.sock.close()
        self.dir.cleanup()

    def _drain(self) -> None:
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except BlockingIOError:
                return
            pid = -1
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            fields = dict(line.partition("=")[::2] for line in data.decode().split("\n") if line)
            self.seen.append(Notice(pid, fields))

    async def expect(self, key: str, after: int = 0, timeout: float = 15.0) -> int:
        """Index in `seen` of the first notice at or after `after` that sets `key`."""
        async with asyncio.timeout(timeout):
            while True:
                self._drain()
                for i in range(after, len(self.seen)):
                    if key in self.seen[i].fields:
                        return i
                await asyncio.sleep(0.01)

    def states(self, start: int, end: int) -> list[str]:
        return [k for n in self.seen[start:end] for k in n.fields if k != "WATCHDOG"]


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    ns = NotifySocket()
    try:
        yield ns
    finally:
        ns.close()


async def start_gateway(config: Path, cwd: Path, ns: NotifySocket, watchdog_usec: int
                        ) -> Served:
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_PID", "LISTEN_FDS")}
    env.update(NOTIFY_SOCKET=ns.path, WATCHDOG_USEC=str(watchdog_usec))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(config),
        stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env)
    return Served(proc)


async def stop_gateway(served: Served) -> None:
    if served.proc.returncode is None:
        served.proc.kill()
        await served.proc.wait()
    await asyncio.wait_for(served.reader, 5)


def greets(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.settimeout(5)
        return conn.recv(512).startswith(b"220")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def gateway_config(tmp_path: Path) -> AsyncIterator[Path]:
    # Fixed free ports: with `workers` each process binds them itself (SO_REUSEPORT).
    config = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}")
    data = yaml.safe_load(config.read_text())
    for listener in data["listeners"]:
        listener["listen"] = f"127.0.0.1:{free_port()}"
    config.write_text(yaml.safe_dump(data))
    yield config


def port_of(config: Path) -> int:
    listen = yaml.safe_load(config.read_text())["listeners"][0]["listen"]
    return int(listen.rsplit(":", 1)[1])


async def lifecycle(served: Served, ns: NotifySocket, config: Path) -> None:
    """READY after the listeners, pings, RELOADING/READY on SIGHUP, STOPPING on SIGTERM;
    every state from the main process."""
    pid = served.proc.pid
    ready = await ns.expect("READY")
    assert ns.seen[ready].pid == pid
    assert ns.seen[ready].fields["STATUS"].startswith("serving")
    assert await in_thread(lambda: greets(port_of(config)))
    assert "READY" not in {k for n in ns.seen[:ready] for k in n.fields}

    first = await ns.expect("WATCHDOG", ready + 1)
    ns._drain()
    assert ["READY" in n.fields for n in ns.seen].count(True) == 1
    second = await ns.expect("WATCHDOG", first + 1)
    assert ns.seen[first].pid == ns.seen[second].pid == pid

    for broken in (False, True):
        if broken:  # a refused reload still ends in READY=1: the old rules serve on
            (config.parent / "rules" / "10-test.yaml").write_text("rules: [oops\n")
        mark = len(ns.seen)
        served.proc.send_signal(signal.SIGHUP)
        reloading = await ns.expect("RELOADING", mark)
        again = await ns.expect("READY", reloading + 1)
        assert ns.states(mark, again + 1) == ["RELOADING", "MONOTONIC_USEC", "READY", "STATUS"]
        stamp = int(ns.seen[reloading].fields["MONOTONIC_USEC"])
        assert 0 < stamp <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert {ns.seen[reloading].pid, ns.seen[again].pid} == {pid}
    assert await in_thread(lambda: greets(port_of(config)))

    mark = len(ns.seen)
    served.proc.send_signal(signal.SIGTERM)
    stopping = await ns.expect("STOPPING", mark)
    assert ns.seen[stopping].pid == pid
    assert await asyncio.wait_for(served.proc.wait(), 20) == 0
    ns._drain()
    assert "READY" not in {k for n in ns.seen[stopping:] for k in n.fields}
    assert {n.pid for n in ns.seen} == {pid}


async def test_sd_notify_lifecycle_single_process(
        tmp_path: Path, gateway_config: Path, notify_socket: NotifySocket) -> None:
    served = await start_gateway(gateway_config, tmp_path, notify_socket, 400_000)
    try:
        await lifecycle(served, notify_socket, gateway_config)
    finally:
        await stop_gateway(served)


async def test_sd_notify_with_workers_comes_from_the_parent(
        tmp_path: Path, gateway_config: Path, notify_socket: NotifySocket) -> None:
    data = yaml.safe_load(gateway_config.read_text())
    data["workers"] = 2
    gateway_config.write_text(yaml.safe_dump(data))
    served = await start_gateway(gateway_config, tmp_path, notify_socket, 400_000)
    try:
        await lifecycle(served, notify_socket, gateway_config)
        # Two workers served, yet systemd heard one READY=1 per event, from the parent.
        await served.wait_for_line(r"started 2 workers")
        assert len([line for line in served.lines if "gateway started" in line]) == 2
    finally:
        await stop_gateway(served)


async def test_without_notify_socket_the_gateway_serves_as_before(
        tmp_path: Path, gateway_config: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(gateway_config),
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path, env=env)
    served = Served(proc)
    try:
        await served.wait_for_line(r"gateway started")
        assert await in_thread(lambda: greets(port_of(gateway_config)))
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await stop_gateway(served)


# --- rejection log rotation -----------------------------------------------------------

def test_rejection_log_follows_a_moved_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rejection_log, "ROTATION_CHECK", 0.0)
    path = tmp_path / "rejections.jsonl"
    log = RejectionLog(path)
    log.write({"n": 1})
    path.rename(tmp_path / "rejections.jsonl.1")
    log.write({"n": 2})
    path.unlink()
    log.write({"n": 3})
    log.close()
    assert (tmp_path / "rejections.jsonl.1").read_text() == '{"n": 1}\n'
    assert path.read_text() == '{"n": 3}\n'


def reject_one(port: int) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
        s.ehlo("client.test")
        try:
            s.sendmail("x@blocked.anm.gov.my", ["b@example.com"],
                       message(sender="x@blocked.anm.gov.my"))
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
        except smtplib.SMTPRecipientsRefused as exc:
            return next(iter(exc.recipients.values()))[0]
        except smtplib.SMTPSenderRefused as exc:
            return exc.smtp_code
    return 250


async def test_rejection_log_reopens_after_logrotate(tmp_path: Path,
                                                     gateway_config: Path) -> None:
    log_path = tmp_path / "rejections.jsonl"
    port = port_of(gateway_config)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(gateway_config),
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path)
    served = Served(proc)
    try:
        await served.wait_for_line(r"gateway started")
        assert await in_thread(lambda: reject_one(port)) == 550
        assert len(log_path.read_text().splitlines()) == 1

        # logrotate without a postrotate signal: the gateway notices the move on a
        # write more than ROTATION_CHECK after its last check.
        log_path.rename(tmp_path / "rejections.jsonl.1")
        await asyncio.sleep(rejection_log.ROTATION_CHECK + 0.2)
        assert await in_thread(lambda: reject_one(port)) == 550
        assert len((tmp_path / "rejections.jsonl.1").read_text().splitlines()) == 1
        assert len(log_path.read_text().splitlines()) == 1

        # With the postrotate signal.
        log_path.rename(tmp_path / "rejections.jsonl.2")
        mark = len(served.lines)
        proc.send_signal(signal.SIGUSR1)
        await served.wait_for_line(r"rejection log reopened", mark)
        assert await in_thread(lambda: reject_one(port)) == 550
        assert len((tmp_path / "rejections.jsonl.2").read_text().splitlines()) == 1
        assert len(log_path.read_text().splitlines()) == 1
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await stop_gateway(served)
