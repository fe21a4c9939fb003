"""Debian's dnsmasq as a real DNS server for tests: 127.0.0.1, a free port, given records.

    with Dnsmasq(txt={"anm.gov.my": ["v=spf1 ip4:192.0.2.0/24 -all"]},
                 a={"mail.anm.gov.my": ["192.0.2.1"]},
                 mx={"anm.gov.my": [(10, "mail.anm.gov.my")]},
                 local=("gov.my",)) as dns_server:
        Resolver(("127.0.0.1",), dns_server.port, timeout=1.0)

Names under a `local` domain that have no record get NXDOMAIN (dnsmasq never forwards:
no upstream is configured at all). Records are served with a TTL of 300 s. TXT strings
cannot contain a comma (dnsmasq splits its option there; quotes do not protect it).

dnsmasq comes from the `dnsmasq-base` package, which the Makefile installs. If it is
missing, `Dnsmasq()` fails the test with a message saying so - it never skips, so a
machine without it cannot look green.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

STARTUP_TIMEOUT = 5.0
TTL = 300


def dnsmasq_binary() -> str:
    """Path of dnsmasq; fails the calling test (not a skip) when it is not installed."""
    found = shutil.which("dnsmasq") or next(
        (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail("dnsmasq is not installed: the DNS tests need it. Install the Debian "
                    "package dnsmasq-base (`make deps` does, as root).", pytrace=False)
    return found


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


class Dnsmasq:
    def __init__(self, *, txt: Mapping[str, Sequence[str | Sequence[str]]] | None = None,
                 a: Mapping[str, Sequence[str]] | None = None,
                 aaaa: Mapping[str, Sequence[str]] | None = None,
                 mx: Mapping[str, Sequence[tuple[int, str]]] | None = None,
                 local: Sequence[str] = ()) -> None:
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._args = self._record_args(txt or {}, a or {}, aaaa or {}, mx or {}, local)

    @staticmethod
    def _record_args(txt: Mapping[str, Sequence[str | Sequence[str]]],
                     a: Mapping[str, Sequence[str]], aaaa: Mapping[str, Sequence[str]],
                     mx: Mapping[str, Sequence[tuple[int, str]]],
                     local: Sequence[str]) -> list[str]:
        args: list[str] = []
        for name, records in txt.items():
            for record in records:
                strings = [record] if isinstance(record, str) else list(record)
                if any("," in s for s in strings):
                    raise ValueError("dnsmasq TXT strings cannot contain a comma")
                args.append(f"--txt-record={name},{','.join(strings)}")
        for table in (a, aaaa):
            for name, addresses in table.items():
                args.extend(f"--host-record={name},{address}" for address in addresses)
        for name, exchanges in mx.items():
            args.extend(f"--mx-host={name},{host},{pref}" for pref, host in exchanges)
        args.extend(f"--local=/{domain}/" for domain in local)
        return args

    def start(self) -> Dnsmasq:
        binary = dnsmasq_binary()
        last_error = ""
        for _ in range(3):  # the free port can be taken between choosing and binding
            self.port = free_port()
            command = [
                binary, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1",
                f"--port={self.port}", "--log-facility=-", "--pid-file=",
                f"--local-ttl={TTL}", f"--user={pwd.getpwuid(os.getuid()).pw_name}",
                *self._args,
            ]
            self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE)
            if self._wait_ready():
                return self
            last_error = self._stop_and_read()
        raise RuntimeError(f"dnsmasq did not start: {last_error}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        probe = dns.message.make_query("ready.probe.invalid.", "A")
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            # BadResponse too (seen in CI-like runs): an answer to another question on
            # this port is not our dnsmasq being ready; ask again, or take another port.
            with contextlib.suppress(dns.exception.DNSException, OSError):
                reply = dns.query.udp(probe, "127.0.0.1", port=self.port, timeout=0.2)
                return reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN,
                                         dns.rcode.REFUSED, dns.rcode.SERVFAIL)
            time.sleep(0.05)
        return False

    def _stop_and_read(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
        return err.decode("utf-8", "replace")[-500:]

    def stop(self) -> None:
        self._stop_and_read()

    def __enter__(self) -> Dnsmasq:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
