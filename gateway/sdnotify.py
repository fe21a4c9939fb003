"""The systemd notification protocol (sd_notify), spoken without a dependency.

systemd passes a datagram socket in $NOTIFY_SOCKET (a file path, or an abstract
socket written with a leading '@') to a Type=notify service; the service sends
newline-separated KEY=VALUE states to it (READY=1, RELOADING=1, STOPPING=1,
WATCHDOG=1, STATUS=...). Outside systemd the variable is unset and every call
is a no-op, so the gateway runs the same from a terminal.
"""

from __future__ import annotations

import os
import socket
import time


def notify(state: str) -> bool:
    """Send one state datagram; False when there is no socket or it cannot be reached."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    # An abstract socket: '@' stands for the leading NUL byte of its name.
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), target)
    except OSError:
        # A notification that cannot be delivered must never take the gateway down;
        # systemd itself reports a service that never became ready.
        return False
    return True


def reloading_state() -> str:
    """RELOADING=1 with the CLOCK_MONOTONIC stamp systemd 253+ requires to accept it."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval() -> float | None:
    """Seconds of the watchdog timeout systemd set for this process, or None.

    WATCHDOG_PID, when present, names the process the watchdog is meant for: a
    child that inherited the environment must not think it is being watched.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None
