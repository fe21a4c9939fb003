"""Debian's clamd as a real antivirus daemon for tests, with a signature database of our own.

    with Clamd() as av:                     # unix socket in a private temporary directory
        av.address                          # "unix:/tmp/gw-clamd-.../clamd.sock"
    with Clamd(tcp=True, stream_max="1M"):  # TCPSocket on 127.0.0.1, a port picked here

The database is made here, by ClamAV's own `sigtool`, nothing downloaded (no freshclam):
- `gateway-test.hdb`: the MD5 hash signature of TEST_FILE (`sigtool --md5`), name
  `gateway-test-file`;
- `gateway-test.ndb`: body signatures (hex from `sigtool --hex-dump`) for the EICAR
  test string (`Gateway.Test.EICAR`) and for a marker inside TEST_FILE-like data
  (`Gateway.Test.Marker`, matched anywhere in any file).
clamd reports custom signatures with `.UNOFFICIAL` appended. With this database clamd
is ready in well under a second; `start()` waits (bounded) for PING -> PONG, `stop()`
terminates it and removes its directory. The system's own clamd
(/run/clamav/clamd.ctl) is never used.

clamd comes from the `clamav-daemon` package and sigtool from `clamav` (the Makefile
installs both). Missing, `Clamd()` fails the test saying so: never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import pytest

from gateway.antivirus import clamd

STARTUP_TIMEOUT = 30.0
# Built at run time so that no file of the repository is itself the EICAR test string.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
EICAR_SIGNATURE = "Gateway.Test.EICAR.UNOFFICIAL"
# A file of our own with a hash signature (exact bytes) ...
TEST_FILE = b"Laporan ujian gerbang e-mel: fail ini ditandatangani sebagai perisian hasad.\n"
TEST_FILE_SIGNATURE = "gateway-test-file.UNOFFICIAL"
# ... and a marker string with a body signature (found inside any file, any offset).
MARKER = b"GATEWAY-TEST-MALWARE-MARKER-7f3a9c"
MARKER_SIGNATURE = "Gateway.Test.Marker.UNOFFICIAL"


def binary(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(f"{name} is not installed: the antivirus tests need it. Install the Debian "
                    f"package {package} (`make deps` does, as root).", pytrace=False)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_database(directory: Path) -> None:
    """The test signatures, written by sigtool (hash) and from its hex dump (body)."""
    sigtool = binary("sigtool", "clamav")
    sample = directory / "gateway-test-file"
    sample.write_bytes(TEST_FILE)
    md5 = subprocess.run([sigtool, "--md5", str(sample)], capture_output=True, check=True,
                         timeout=30, cwd=directory).stdout.decode().strip()
    sample.unlink()
    assert md5.count(":") == 2 and md5.endswith(":gateway-test-file"), md5
    (directory / "gateway-test.hdb").write_text(md5 + "\n")

    def hexdump(data: bytes) -> str:
        out = subprocess.run([sigtool, "--hex-dump"], input=data, capture_output=True,
                             check=True, timeout=30).stdout.decode()
        return "".join(out.split())

    (directory / "gateway-test.ndb").write_text(
        f"Gateway.Test.EICAR:0:*:{hexdump(EICAR)}\n"
        f"Gateway.Test.Marker:0:*:{hexdump(MARKER)}\n")


class Clamd:
    def __init__(self, *, tcp: bool = False, stream_max: str = "10M") -> None:
        self.tcp = tcp
        self.stream_max = stream_max
        self.dir = Path(tempfile.mkdtemp(prefix="gw-clamd-"))  # short: unix socket path
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        if self.tcp:
            return f"tcp://127.0.0.1:{self.port}"
        return f"unix:{self.dir / 'clamd.sock'}"

    def _config(self) -> Path:
        db = self.dir / "db"
        db.mkdir(exist_ok=True)
        if not any(db.iterdir()):
            make_database(db)
        lines = [f"DatabaseDirectory {db}", "Foreground yes",
                 f"LogFile {self.dir / 'clamd.log'}", f"TemporaryDirectory {self.dir}",
                 f"PidFile {self.dir / 'clamd.pid'}", f"StreamMaxLength {self.stream_max}",
                 "SelfCheck 3600"]
        if self.tcp:
            lines += [f"TCPSocket {self.port}", "TCPAddr 127.0.0.1"]
        else:
            lines.append(f"LocalSocket {self.dir / 'clamd.sock'}")
        path = self.dir / "clamd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Clamd:
        command = binary("clamd", "clamav-daemon")
        for _ in range(3):  # a picked TCP port can be taken before clamd binds it
            if self.tcp:
                self.port = free_port()
            config = self._config()
            self._proc = subprocess.Popen([command, f"--config-file={config}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready():
                return self
            self._halt()
        log = (self.dir / "clamd.log").read_text(errors="replace")[-2000:] \
            if (self.dir / "clamd.log").exists() else ""
        self.close()
        raise RuntimeError(f"clamd did not start:\n{log}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        address = clamd.parse_address(self.address)
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                clamd.ping(address, 1.0)
                return True
            except clamd.ClamdError:
                time.sleep(0.05)
        return False

    def _halt(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        """Stop clamd (its directory stays: `start()` runs it again on the same address)."""
        self._halt()

    def close(self) -> None:
        self._halt()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Clamd:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SilentClamd:
    """A unix socket that accepts connections and reads what is sent, never answering:
    a clamd that hangs (real clamd cannot be made slow on demand). Counts connections."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gw-silent-"))
        self.path = self.dir / "clamd.sock"
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._held: list[socket.socket] = []

    @property
    def address(self) -> str:
        return f"unix:{self.path}"

    def _run(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)  # read by nobody, closed at stop

    def __enter__(self) -> SilentClamd:
        self._server.bind(str(self.path))
        self._server.listen(16)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._server.close()
        shutil.rmtree(self.dir, ignore_errors=True)
