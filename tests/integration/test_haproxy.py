"""Behind a load balancer: a real HAProxy in front of two `gateway serve` processes.

HAProxy (Debian package `haproxy`, its own binary started here with `-db`, never the
system service) runs config/haproxy.cfg, the file README.md shows under "Scaling
out", with its example addresses swapped for loopback ports this test picks. Each
gateway listener trusts 127.0.0.1 (HAProxy's address towards them) for the PROXY
header. Clients connect to HAProxy from 127.0.0.7 (in relay_networks) and 127.0.0.8
(not), so relay control, a `client_ip` rule and the rejection log can only get it
right if the header's source address reaches them. The file's send-proxy-v2 is the
v2 run; the v1 run is the same file with send-proxy (the README says so).

Every process is stopped by the test, also when it fails; every read is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .raw_client import RawClient
from .support import message

REPO = Path(__file__).resolve().parents[2]
HAPROXY_CFG = REPO / "config" / "haproxy.cfg"
TIMEOUT = 15.0
INSIDE = "127.0.0.7"  # the only relay_networks client
OUTSIDE = "127.0.0.8"  # refused relay; and refused inbound by the client_ip rule
STRANGER = "127.0.0.3"  # not the balancer
RULES = """
rules:
  - id: klien-disekat
    description: "Pelanggan yang disekat"
    reference: "ujian haproxy"
    direction: inbound
    when: {client_ip: ["127.0.0.8"]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Pelanggan disekat.", en: "Client blocked."}}
"""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy",) if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail("haproxy is not installed: the load-balancer tests need it. Install "
                    "the Debian package haproxy (`make deps` does, as root).", pytrace=False)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, ready: Any, log: Any = lambda: "") -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not ready in {TIMEOUT}s\n{log()}")


def accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
        return True
    return False


class Process:
    """A child process with its output in a file; `stop` always ends it."""

    def __init__(self, args: list[str], out: Path, cwd: Path) -> None:
        self.out = out
        self._file = out.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._file, stderr=subprocess.STDOUT,
                                     cwd=cwd)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
        self._file.close()


@dataclass
class Gw:
    name: str
    dir: Path
    inbound: int
    outbound: int
    process: Process | None = None

    def records(self) -> list[dict[str, Any]]:
        path = self.dir / "rejections.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def delivered(self) -> int:
        new = self.dir / "mail" / "new"
        return len(list(new.iterdir())) if new.exists() else 0


def gateway_config(gw: Gw) -> Path:
    rules = gw.dir / "rules"
    rules.mkdir(parents=True)
    (rules / "10-klien.yaml").write_text(RULES)
    balancer = {"from": ["127.0.0.1/32"]}
    config = {
        "listeners": [
            {"name": "inbound", "listen": f"127.0.0.1:{gw.inbound}", "direction": "inbound",
             "proxy_protocol": balancer},
            {"name": "outbound", "listen": f"127.0.0.1:{gw.outbound}",
             "direction": "outbound", "proxy_protocol": balancer},
        ],
        "upstream": f"maildir:{gw.dir / 'mail'}",
        "agency_domains": ["anm.gov.my"],
        "relay_networks": [f"{INSIDE}/32"],
        "rules_dir": str(rules),
        "rejection_log": str(gw.dir / "rejections.jsonl"),
        "hostname": f"{gw.name}.anm.gov.my",
    }
    path = gw.dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def haproxy_config(version: int, mx: int, relay: int, gw1: Gw, gw2: Gw) -> str:
    """config/haproxy.cfg with its example addresses swapped for this test's ports."""
    text = HAPROXY_CFG.read_text()
    swaps = {"10.0.0.5:2525": f"127.0.0.1:{relay}", "10.0.0.5:25": f"127.0.0.1:{mx}",
             "10.0.0.11:2526": f"127.0.0.1:{gw1.inbound}",
             "10.0.0.12:2526": f"127.0.0.1:{gw2.inbound}",
             "10.0.0.11:2525": f"127.0.0.1:{gw1.outbound}",
             "10.0.0.12:2525": f"127.0.0.1:{gw2.outbound}"}
    for example, here in swaps.items():  # longest first: 10.0.0.5:25 prefixes :2525
        assert example in text, example
        text = text.replace(example, here)
    settings = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("10.0.0." in line for line in settings), text
    return text if version == 2 else text.replace("send-proxy-v2", "send-proxy")


@dataclass
class Front:
    mx: int
    relay: int
    gateways: tuple[Gw, Gw]


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def front(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Front]:
    binary = haproxy_binary()
    gws = (Gw("gw1", tmp_path / "gw1", free_port(), free_port()),
           Gw("gw2", tmp_path / "gw2", free_port(), free_port()))
    mx, relay = free_port(), free_port()
    started: list[Process] = []
    try:
        for gw in gws:
            config = gateway_config(gw)
            gw.process = Process([sys.executable, "-m", "gateway", "serve", "--config",
                                  str(config)], gw.dir / "stderr.log", gw.dir)
            started.append(gw.process)
        for gw in gws:
            assert gw.process is not None
            process = gw.process
            wait_until(f"{gw.name}", lambda p=process: "gateway started" in p.text()
                       or p.proc.poll() is not None, process.text)
            assert process.proc.poll() is None, process.text()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(haproxy_config(request.param, mx, relay, *gws))
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True,
                               text=True, timeout=TIMEOUT, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        haproxy = Process([binary, "-f", str(cfg), "-db"], tmp_path / "haproxy.log", tmp_path)
        started.append(haproxy)
        wait_until("haproxy", lambda: accepts(mx) and accepts(relay), haproxy.text)
        yield Front(mx, relay, gws)
    finally:
        for process in reversed(started):
            process.stop()


def send(port: int, source: str, sender: str, rcpt: str) -> tuple[int, str]:
    """One transaction through HAProxy from `source`: the first refusal or DATA's reply."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT, source_address=(source, 0))
    try:
        s.ehlo("client.test")
        for code, text in (s.mail(sender), s.rcpt(rcpt)):
            if code not in (250, 251):
                return code, text.decode()
        code, text = s.data(message(subject="Melalui HAProxy", sender=sender))
        return code, text.decode()
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


def test_the_readme_shows_the_config_this_test_runs() -> None:
    readme = (REPO / "README.md").read_text()
    assert "\n```\n" + HAPROXY_CFG.read_text() + "```\n" in readme


def test_the_client_address_reaches_the_policy_through_haproxy(front: Front) -> None:
    outcomes = []
    for _ in range(2):  # each direction twice: leastconn takes turns between the two
        outcomes += [
            send(front.relay, INSIDE, "pegawai@anm.gov.my", "rakan@example.com"),
            send(front.relay, OUTSIDE, "pegawai@anm.gov.my", "rakan@example.com"),
            send(front.mx, INSIDE, "rakan@example.com", "pegawai@anm.gov.my"),
            send(front.mx, OUTSIDE, "rakan@example.com", "pegawai@anm.gov.my"),
        ]
    codes = [code for code, _ in outcomes]
    assert codes == [250, 554, 250, 550] * 2, outcomes
    assert "rule=relay-access" in outcomes[1][1] and "rule=klien-disekat" in outcomes[3][1]

    gw1, gw2 = front.gateways
    assert gw1.delivered() + gw2.delivered() == 4
    records = gw1.records() + gw2.records()
    assert sorted((r["direction"], r["rule_id"], r["client_ip"]) for r in records) == \
        [("inbound", "klien-disekat", OUTSIDE)] * 2 + [("outbound", "relay-access", OUTSIDE)] * 2
    # Both gateways served: shared nothing, either one gives the same answers.
    for gw in front.gateways:
        assert gw.delivered() + len(gw.records()) > 0, gw.name


def test_a_proxy_header_from_anyone_but_the_balancer_is_refused(front: Front) -> None:
    gw = front.gateways[0]
    # Straight to a gateway from another address: an ordinary client, whose PROXY
    # line is refused with the connection.
    with RawClient(("127.0.0.1", gw.outbound), source=STRANGER, timeout=TIMEOUT) as c:
        assert c.reply()[0] == 220
        code, text = c.command(f"PROXY TCP4 {INSIDE} 127.0.0.1 40000 25".encode())
        assert code == 421 and b"PROXY header not accepted" in text, text
        assert c.rest() == b""
    # The balancer's own address without a header gets no greeting at all.
    with RawClient(("127.0.0.1", gw.outbound), timeout=TIMEOUT) as c:
        c.send(b"EHLO client.test\r\n")
        assert c.rest() == b""
    assert gw.records() == [] and gw.delivered() == 0
