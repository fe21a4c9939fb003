"""`workers: 2`: two processes share the listening port (SO_REUSEPORT).

A real `gateway serve` subprocess on a fixed free port, delivering to a Maildir.
Which worker served a message is read from the stderr log, whose lines carry the
worker's pid. Signals go to the parent only: it must pass them on to both workers.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from .support import SIZE_RULE, message, write_config

CONNECTIONS = 40
TIMEOUT = 15.0
FORBIDDEN_SUBJECT = """
  - id: subjek-dilarang
    description: "Subjek dilarang"
    reference: "PPPA test 3"
    direction: both
    when: {subject_matches: "Dilarang"}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Subjek dilarang.", en: "Forbidden."}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A `gateway serve` process with its stderr in a file."""

    def __init__(self, tmp: Path, config: Path) -> None:
        self.err = tmp / "stderr.log"
        self._file = self.err.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stderr=self._file, cwd=tmp)

    def text(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first `count` distinct-pid matches of `pattern` (bounded wait)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found: dict[str, re.Match[str]] = {}
            for m in rx.finditer(self.text()):
                found.setdefault(m.group("pid"), m)
            if len(found) >= count:
                return list(found.values())
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {count} x {pattern!r} in:\n{self.text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self._file.close()


def send(port: int, subject: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as s:
        s.ehlo("client.test")
        s.mail("a@anm.gov.my")
        s.rcpt("b@example.com")
        return s.data(message(subject=subject))[0]


def send_many(port: int, subject: str) -> list[int]:
    """One message per connection, many connections at once."""
    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(lambda _: send(port, subject), range(CONNECTIONS),
                             timeout=TIMEOUT * 2))


def config_with_workers(tmp: Path, port: int, upstream: str, workers: int | str = 2) -> Path:
    path = write_config(tmp, upstream=upstream, port=port)
    config = yaml.safe_load(path.read_text())
    config["listeners"] = [config["listeners"][0]]  # one port, shared by the workers
    config["workers"] = workers
    path.write_text(yaml.safe_dump(config))
    return path


def workers_of(served: Served) -> list[str]:
    m = served.wait_for(r"\[(?P<pid>\d+)\]: started 2 workers: (\d+) (\d+)")[0]
    return [m.group(2), m.group(3)]


def test_two_workers_share_the_port_reload_and_stop(tmp_path: Path) -> None:
    port = free_port()
    mail = tmp_path / "mail"
    served = Served(tmp_path, config_with_workers(tmp_path, port, f"maildir:{mail}"))
    try:
        pids = workers_of(served)
        served.wait_for(r"\[(?P<pid>\d+)\]: gateway started", count=2)

        assert send_many(port, "Ujian") == [250] * CONNECTIONS
        assert len(list((mail / "new").iterdir())) == CONNECTIONS
        relayed = served.wait_for(r"\[(?P<pid>\d+)\]: outbound ref=\S+ .*action=relay", 2)
        assert sorted(m.group("pid") for m in relayed) == sorted(pids)

        # A rule change, then SIGHUP to the parent only: both workers reload and refuse.
        rules = tmp_path / "rules" / "10-test.yaml"
        rules.write_text(SIZE_RULE + FORBIDDEN_SUBJECT)
        served.proc.send_signal(signal.SIGHUP)
        reloaded = served.wait_for(r"\[(?P<pid>\d+)\]: policy reloaded: rules version", 2)
        assert sorted(m.group("pid") for m in reloaded) == sorted(pids)
        assert send_many(port, "Dilarang sama sekali") == [550] * CONNECTIONS
        assert len(list((mail / "new").iterdir())) == CONNECTIONS
        refused = served.wait_for(r"\[(?P<pid>\d+)\]: outbound ref=\S+ .*rule=subjek-dilarang",
                                  2)
        assert sorted(m.group("pid") for m in refused) == sorted(pids)

        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(TIMEOUT) == 0
        stopped = served.wait_for(r"\[(?P<pid>\d+)\]: gateway stopped", 2)
        assert sorted(m.group("pid") for m in stopped) == sorted(pids)
        for pid in pids:  # no worker left behind
            assert not Path(f"/proc/{pid}").exists() or \
                "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        served.stop()


def test_a_worker_dying_stops_the_gateway(tmp_path: Path) -> None:
    port = free_port()
    served = Served(tmp_path, config_with_workers(tmp_path, port, f"maildir:{tmp_path}/m"))
    try:
        pids = workers_of(served)
        served.wait_for(r"\[(?P<pid>\d+)\]: gateway started", count=2)
        os.kill(int(pids[0]), signal.SIGKILL)
        assert served.proc.wait(TIMEOUT) != 0
        assert f"(pid {pids[0]}) exited with status 137 unexpectedly" in served.text()
        served.wait_for(rf"\[(?P<pid>{pids[1]})\]: gateway stopped")
        with socket.socket() as s:  # nobody is left on the port
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        served.stop()


def test_port_0_with_workers_is_a_config_error(tmp_path: Path) -> None:
    path = config_with_workers(tmp_path, 0, f"maildir:{tmp_path}/m", workers="auto")
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 2
    assert re.search(r"gateway\.yaml:\d+: workers: listener outbound has port 0",
                     done.stderr), done.stderr
