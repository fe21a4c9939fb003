"""The rejection log's records in Elastic Common Schema (ECS 8.11) names, sent to syslog.

`to_ecs` maps one record (CONTRACT.md fields, already free of classified text:
gateway.observe.log_privacy) to a nested ECS document; `SyslogOutput` sends each
as one JSON message through the standard library's SysLogHandler (RFC 3164-style
`<PRI>gateway[PID]: ` framing, which journald, rsyslog and syslog-ng read) to a unix
datagram socket (/dev/log) or over UDP. The mapping table is in README
("Syslog and SIEM output").
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
from collections.abc import Mapping
from email.utils import getaddresses
from typing import Any

ECS_VERSION = "8.11.0"
# Other events (e.g. `exempt`: passed by an exception) are delivered too.
_OUTCOME = {"reject": "failure", "tempfail": "failure"}
_TYPE = {"reject": "denied", "tempfail": "denied"}


def parse_syslog_address(value: str) -> str | tuple[str, int]:
    """`/path` (a unix datagram socket) or `udp://HOST:PORT` ([v6]:PORT too) as
    SysLogHandler's address; raises ValueError otherwise."""
    if value.startswith("/"):
        return value
    if value.startswith("udp://"):
        rest = value[len("udp://"):]
        host, sep, port = rest.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if sep and host and port.isdigit() and 0 < int(port) < 65536:
            return host, int(port)
    raise ValueError(f"bad syslog address {value!r}: expected a unix socket path such as "
                     "/dev/log, or udp://HOST:PORT such as udp://10.0.0.5:514")


def _drop_empty(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            v = _drop_empty(v)
        if v is None or v == {} or v == []:
            continue
        out[k] = v
    return out


def to_ecs(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ECS document of one rejection-log record (nested objects, None fields left out).

    Fields ECS has no name for go under `gateway.*` (ECS custom fields).
    """
    event = str(record.get("event") or "")
    header_from = record.get("from")
    from_addresses = [a for _, a in getaddresses([header_from]) if a] \
        if isinstance(header_from, str) else []
    doc: dict[str, Any] = {
        "@timestamp": record.get("ts"),
        "ecs": {"version": ECS_VERSION},
        "message": f"{event} rule={record.get('rule_id') or '-'} ref={record.get('ref')}",
        "event": {"kind": "event", "category": ["email"], "type": [_TYPE.get(event, "allowed")],
                  "action": event or None, "outcome": _OUTCOME.get(event, "success"),
                  "id": record.get("ref"), "reason": record.get("reason"),
                  "dataset": "gateway.rejections"},
        "rule": {"id": record.get("rule_id"), "reference": record.get("reference")},
        "source": {"ip": record.get("client_ip")},
        "email": {"direction": record.get("direction"),
                  "local_id": record.get("ref"),
                  "from": {"address": from_addresses},
                  "sender": {"address": record.get("mail_from")},
                  "to": {"address": list(record.get("rcpt_to") or [])},
                  "subject": record.get("subject"),
                  "message_id": record.get("message_id")},
        "gateway": {"listener": record.get("listener"), "helo": record.get("helo"),
                    "size": record.get("size"), "smtp_code": record.get("smtp_code"),
                    "enhanced_code": record.get("enhanced_code"),
                    "classification": record.get("classification"),
                    "evidence": record.get("evidence"), "auth": record.get("auth"),
                    "matched": record.get("matched")},
    }
    return _drop_empty(doc)


class _Handler(logging.handlers.SysLogHandler):
    """SysLogHandler reporting failures once per episode, not once per record."""

    failing = False
    failed_now = False

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed_now = True
        if not self.failing:
            self.failing = True
            logging.getLogger("gateway.syslog").error(
                "syslog output %s: a record could not be sent; the rejection log file "
                "still has every record", self.address, exc_info=True)

    def emit(self, record: logging.LogRecord) -> None:
        self.failed_now = False
        super().emit(record)
        if self.failing and not self.failed_now:
            self.failing = False
            logging.getLogger("gateway.syslog").warning("syslog output %s works again",
                                                        self.address)


class SyslogOutput:
    """Sends ECS documents to one syslog address; a send that fails is reported by
    logging's handleError (a traceback on stderr: the journal) and never raises."""

    def __init__(self, address: str, facility: str = "mail", ident: str = "gateway") -> None:
        """Raises ValueError for a bad address or facility, OSError when a unix socket
        cannot be reached now."""
        where = parse_syslog_address(address)
        self.address = address
        self.handler = _Handler(
            address=where, facility=logging.handlers.SysLogHandler.facility_names[facility],
            socktype=socket.SOCK_DGRAM)
        self.handler.ident = f"{ident}[{os.getpid()}]: "
        self.handler.setFormatter(logging.Formatter("%(message)s"))

    def send(self, record: Mapping[str, Any]) -> None:
        """One record as one syslog message (severity: warning for refusals, else info)."""
        doc = to_ecs(record)
        level = logging.WARNING if record.get("event") in ("reject", "tempfail") else logging.INFO
        entry = logging.LogRecord("gateway.rejections", level, __file__, 0,
                                  json.dumps(doc, ensure_ascii=False, default=str), None, None)
        self.handler.handle(entry)

    def close(self) -> None:
        self.handler.close()
