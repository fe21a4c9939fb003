"""The clamd protocol: PING and INSTREAM over a unix or TCP socket, blocking, bounded.

Source: ClamAV documentation, "Scanning" > "clamd"
(https://docs.clamav.net/manual/Usage/Scanning.html#clamd) and clamd(8), COMMANDS:

- A command prefixed with `z` is terminated by a NUL byte, and so is the reply
  (`zPING\\0` -> `PONG\\0`).
- `zINSTREAM\\0`, then the data in chunks, each `<length><data>` where the length is
  an unsigned 4-byte integer in network (big-endian) byte order; a chunk of length
  zero ends the stream. The data may not exceed clamd's `StreamMaxLength` (clamd.conf,
  default 25M): past it clamd answers `INSTREAM size limit exceeded. ERROR` and closes
  the connection. There is no command that tells a client that limit, so the gateway
  streams at most the config's `antivirus.max_size` (which the administrator keeps at
  or below StreamMaxLength).
- The reply is `stream: OK`, `stream: <signature name> FOUND`, or `<message> ERROR`.

One connection per command (no IDSESSION): simple, and a clamd restart between two
messages costs nothing. Every connect, send and receive is bounded by what is left of
the caller's deadline (`time.monotonic()` seconds), so a clamd that accepts and never
answers costs at most that. The maintained Python client (clamdpy, a fork of the
unmaintained `clamd` package) has no overall deadline and its README calls NUL-terminated
replies untested, so the gateway speaks the few documented bytes itself.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Literal

# Bytes sent per INSTREAM chunk (clamd reads chunks of any size up to StreamMaxLength).
CHUNK = 64 * 1024
# Longest reply read: a signature name is short; anything longer is not clamd.
MAX_REPLY = 4096

FailureKind = Literal["unreachable", "timeout", "error", "protocol"]


@dataclass(frozen=True)
class ClamdAddress:
    """Where clamd listens: a unix socket path, or a TCP host and port."""

    unix_path: str | None = None
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_address(value: str) -> ClamdAddress:
    """`unix:/run/clamav/clamd.ctl` or `tcp://HOST:PORT` (IPv6 in brackets).

    Raises ValueError with the accepted forms."""
    if value.startswith("unix:"):
        path = value[len("unix:"):]
        if not path.startswith("/"):
            raise ValueError(f"bad clamd address {value!r}: unix: needs an absolute socket "
                             "path, e.g. unix:/run/clamav/clamd.ctl")
        return ClamdAddress(unix_path=path)
    m = re.fullmatch(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+):(\d+)/?", value)
    if not m:
        raise ValueError(f"bad clamd address {value!r}: expected unix:/path/to/clamd.ctl "
                         "or tcp://HOST:PORT, e.g. tcp://127.0.0.1:3310")
    port = int(m.group(2))
    if not 0 < port <= 65535:
        raise ValueError(f"bad clamd port {port}")
    return ClamdAddress(host=m.group(1).strip("[]"), port=port)


class ClamdError(Exception):
    """clamd could not answer: `kind` is unreachable, timeout, error (an ERROR reply)
    or protocol (a reply clamd does not send); `detail` says what happened."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: FailureKind = kind
        self.detail = detail


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ClamdError("timeout", "no answer from clamd in time")
    return left


def _connect(address: ClamdAddress, deadline: float) -> socket.socket:
    if address.unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[str, int] = address.unix_path
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (address.host, address.port)
    try:
        sock.settimeout(_left(deadline))
        sock.connect(target)
    except TimeoutError:
        sock.close()
        raise ClamdError("timeout", f"connecting to clamd at {address}") from None
    except OSError as exc:
        sock.close()
        raise ClamdError("unreachable",
                         f"clamd at {address}: {exc.strerror or exc}") from None
    except ClamdError:
        sock.close()
        raise
    return sock


def _send(sock: socket.socket, data: bytes | memoryview, deadline: float) -> None:
    sock.settimeout(_left(deadline))
    try:
        sock.sendall(data)
    except TimeoutError:
        raise ClamdError("timeout", "clamd stopped reading") from None


def _reply(sock: socket.socket, deadline: float) -> str:
    """The NUL-terminated reply (or what came before the connection closed)."""
    got = b""
    while b"\0" not in got:
        sock.settimeout(_left(deadline))
        try:
            piece = sock.recv(MAX_REPLY)
        except TimeoutError:
            raise ClamdError("timeout", "no answer from clamd in time") from None
        except OSError as exc:
            if got:
                break
            raise ClamdError("error", f"clamd closed the connection: "
                                      f"{exc.strerror or exc}") from None
        if not piece:
            break
        got += piece
        if len(got) > MAX_REPLY:
            raise ClamdError("protocol", "reply too long")
    text = got.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    if not text:
        raise ClamdError("error", "clamd closed the connection without a reply")
    return text


def ping(address: ClamdAddress, timeout: float) -> None:
    """`zPING` -> `PONG` within `timeout` seconds; raises ClamdError otherwise."""
    deadline = time.monotonic() + timeout
    with _connect(address, deadline) as sock:
        _send(sock, b"zPING\0", deadline)
        answer = _reply(sock, deadline)
    if answer != "PONG":
        raise ClamdError("protocol", f"PING answered {answer!r}")


def instream(address: ClamdAddress, data: bytes, deadline: float) -> str | None:
    """Scan `data` with `zINSTREAM`: None when clean, else the signature name clamd found.

    `deadline`: `time.monotonic()` by which the whole exchange must be over. Raises
    ClamdError (unreachable, timeout, error for an `... ERROR` reply such as
    `INSTREAM size limit exceeded. ERROR`, protocol for anything else)."""
    with _connect(address, deadline) as sock:
        view = memoryview(data)
        try:
            _send(sock, b"zINSTREAM\0", deadline)
            for start in range(0, len(view), CHUNK):
                chunk = view[start:start + CHUNK]
                _send(sock, struct.pack(">I", len(chunk)), deadline)
                _send(sock, chunk, deadline)
            _send(sock, struct.pack(">I", 0), deadline)
        except (BrokenPipeError, ConnectionResetError):
            # clamd stops reading when it refuses the stream (StreamMaxLength): its
            # reply, if it sent one, says why.
            pass
        except OSError as exc:
            raise ClamdError("error", f"sending to clamd: {exc.strerror or exc}") from None
        answer = _reply(sock, deadline)
    return parse_reply(answer)


def parse_reply(answer: str) -> str | None:
    """An INSTREAM reply -> None (`stream: OK`) or the signature (`stream: NAME FOUND`).

    Raises ClamdError("error") for `... ERROR`, ClamdError("protocol") otherwise."""
    if answer.endswith("ERROR"):
        raise ClamdError("error", f"clamd answered {answer!r}")
    if answer == "stream: OK":
        return None
    m = re.fullmatch(r"stream: (.+) FOUND", answer)
    if m:
        return m.group(1)
    raise ClamdError("protocol", f"unexpected reply {answer!r}")
