"""The gateway's configuration: typed, frozen, validated at load with FILE:LINE errors.

Everything operators set lives in `config/gateway.yaml` (see docs and CONTRACT.md).
Unknown keys are errors so that a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway import config_errors
from gateway.addresses import normalise_address, normalise_domain
from gateway.antivirus.clamd import parse_address as parse_clamd_address
from gateway.eventloop import EventLoopChoice
from gateway.message.labels import conflicts as label_conflicts
from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits
from gateway.message.markings import LEVELS as MARKING_LEVELS
from gateway.message.subject_prefix import HEBAHAN_DEFANG, tag_pattern
from gateway.message.text import fold
from gateway.problems import LoadError
from gateway.sizes import ByteSize, parse_size
from gateway.tls import check_ca_file, check_certificate, check_key
from gateway.yamlsource import Located, load_file

Direction = Literal["inbound", "outbound"]
# The agency's time zone when the config names none (config `timezone`).
DEFAULT_TIMEZONE = "Asia/Kuala_Lumpur"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# The smallest inspection memory budget accepted; a budget below the cost of one
# message still lets that message run, alone (gateway.frontends.pool).
MIN_INSPECTION_MEMORY = 16 * 1024 * 1024
# Default longest wait for an inspection process, in seconds (Limits.waiting_time).
MAX_DEFAULT_WAIT = 30.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _networks(v: object, expected: str) -> object:
    """A list of IP networks from config text, host bits allowed (10.1.2.3/8 means
    10.0.0.0/8, as in rule files), with an administrator's message for a bad entry:
    parsed here because pydantic's own message names its internal validators."""
    if not isinstance(v, list | tuple):
        return v
    out: list[IPNetwork] = []
    for item in v:
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"bad IP address or network {item!r}: expected {expected}"
                             ) from None
    return tuple(out)

def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. Asia/Kuala_Lumpur, UTC) from the system's time
    zone database or the `tzdata` package; raises ValueError for an unknown name."""
    try:
        if name and name == name.strip():
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as "
                     f"{DEFAULT_TIMEZONE} or UTC")


@dataclass(frozen=True)
class ListenAddress:
    host: str | None
    port: int | None
    unix_path: str | None = None

    def __str__(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen(value: str) -> ListenAddress:
    if value.startswith("unix:"):
        path = value[5:]
        if not path:
            raise ValueError("unix: needs a socket path")
        return ListenAddress(None, None, path)
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
    if not m:
        raise ValueError(f"bad listen address {value!r}: expected HOST:PORT, [IPv6]:PORT "
                         "or unix:/path")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"bad port {port}")
    return ListenAddress(host, port)


class ProxyProtocolSettings(_Frozen):
    """`proxy_protocol:` on a listener: a load balancer in front sends the PROXY header
    (haproxy.org proxy-protocol.txt), and only the peers in `from` may (and must)."""

    peers: tuple[IPNetwork, ...] = Field(alias="from", min_length=1)
    versions: tuple[Literal[1, 2], ...] = Field(default=(1, 2), min_length=1)
    # Seconds a trusted peer has to send its header before the connection is closed.
    timeout: float = Field(default=5.0, gt=0, le=300)

    @field_validator("peers", mode="before")
    @classmethod
    def _peers(cls, v: object) -> object:
        return _networks(v, "the load balancer's address, e.g. 10.0.0.5 or 10.0.0.0/29")


class Listener(_Frozen):
    name: str = Field(min_length=1)
    listen: str
    direction: Direction
    mode: Literal["smtp", "milter"] = "smtp"
    proxy_protocol: ProxyProtocolSettings | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @model_validator(mode="after")
    def _proxy_protocol_on_tcp_smtp(self) -> Listener:
        # Postfix talks to a milter directly, and a unix socket has no balancer in front.
        if self.proxy_protocol is not None and (
                self.mode != "smtp" or self.address.unix_path is not None):
            raise ValueError("proxy_protocol needs a TCP listener in smtp mode")
        return self

    @property
    def address(self) -> ListenAddress:
        return parse_listen(self.listen)


@dataclass(frozen=True)
class Upstream:
    kind: Literal["smtp", "maildir"]
    host: str = ""
    port: int = 25
    path: Path = Path()

    def __str__(self) -> str:
        return f"maildir:{self.path}" if self.kind == "maildir" else f"smtp://{self.host}:{self.port}"


def parse_upstream(value: str) -> Upstream:
    if value.startswith("maildir:"):
        path = value[len("maildir:"):]
        if not path:
            raise ValueError("maildir: needs a directory")
        return Upstream("maildir", path=Path(path))
    m = re.fullmatch(r"smtp://(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+)(?::(\d+))?/?", value)
    if not m:
        raise ValueError(f"bad upstream {value!r}: expected smtp://HOST:PORT or maildir:DIR")
    host = m.group(1).strip("[]")
    port = int(m.group(2) or 25)
    if not 0 < port <= 65535:
        raise ValueError(f"bad port {port}")
    return Upstream("smtp", host=host, port=port)


class DnsSettings(_Frozen):
    nameservers: tuple[str, ...] = ("127.0.0.1",)
    port: int = Field(default=53, ge=1, le=65535)
    timeout: float = Field(default=2.0, gt=0)


class AntivirusSettings(_Frozen):
    """`antivirus:` ClamAV's daemon, clamd (gateway.antivirus). Absent: nothing is
    scanned (said at start-up and by `gateway rules check`)."""

    # unix:/run/clamav/clamd.ctl (Debian's clamav-daemon) or tcp://HOST:PORT.
    clamd: str
    # Seconds for the whole scan of one message (every part, connect, send and reply);
    # past it the scan failed (`antivirus_failed`, the shipped rule tempfails).
    timeout: float = Field(default=30.0, gt=0)
    # Largest part (an attachment, or the whole message) sent to clamd; keep it at or
    # below clamd.conf's StreamMaxLength (Debian's default 25M), else clamd refuses the
    # stream with an ERROR reply (a failed scan).
    max_size: ByteSize = Field(default=25 * 1024 * 1024, ge=1)
    # A part larger than max_size: tempfail (a failed scan: 451 by the shipped rule) or
    # skip (not scanned, the rest is; `antivirus_skipped` holds, the shipped rule logs
    # it in monitor mode). Never a 5xx: what clamd cannot take is our limit, not the
    # sender's fault.
    oversize: Literal["tempfail", "skip"] = "tempfail"

    @field_validator("clamd")
    @classmethod
    def _clamd(cls, v: str) -> str:
        parse_clamd_address(v)
        return v


class Limits(_Frozen):
    """Bounds that keep one message or one client from taking the gateway down."""

    # Largest message accepted at all (SIZE and DATA). None: derived from the rules'
    # size limits (see policy.rules.RuleSet.hard_size_limit).
    max_message_size: ByteSize | None = None
    session_timeout: float = Field(default=300.0, gt=0)
    upstream_connect_timeout: float = Field(default=30.0, gt=0)
    upstream_timeout: float = Field(default=120.0, gt=0)
    # Upstream connections kept between client sessions (gateway.relay.connection_cache),
    # as Postfix's smtp_connection_cache_time_limit and smtp_connection_reuse_time_limit:
    # an idle connection is kept this many seconds for the next message (0: never), and
    # none is used for a new message after this many seconds since it was opened.
    upstream_connection_cache_time: float = Field(default=2.0, ge=0)
    upstream_connection_reuse_time: float = Field(default=300.0, gt=0)
    inspection_timeout: float = Field(default=60.0, gt=0)
    max_recipients: int = Field(default=1000, ge=1)
    # Hostile clients (gateway.frontends.smtp_proxy): beyond a connection limit the
    # client hears 421 4.7.0 and is closed; so is a session past its command budgets.
    max_connections: int = Field(default=1000, ge=1)
    max_connections_per_ip: int = Field(default=50, ge=1)
    max_commands: int = Field(default=10000, ge=1)
    max_bad_commands: int = Field(default=10, ge=1)
    # A client inside DATA (gateway.frontends.smtp_session.DataClock): the DATA phase may
    # take data_timeout seconds of the client's own time (the gateway's waits for the
    # upstream and inspection are not counted), and from data_rate_grace seconds on it
    # must send data_min_rate bytes a second, measured over the last data_rate_window
    # seconds (0: no floor). Else 421 4.4.2 and the connection is closed: a client
    # dripping bytes cannot hold a session, nor with cut-through an upstream
    # transaction, open by keeping the idle timer (session_timeout) from running out.
    data_timeout: float = Field(default=900.0, gt=0)
    data_min_rate: ByteSize = Field(default=500, ge=0)
    data_rate_window: float = Field(default=30.0, gt=0)
    data_rate_grace: float = Field(default=30.0, ge=0)
    # A bare CR, bare LF or NUL in DATA (SMTP smuggling): refuse the message (550
    # 5.6.11) or turn each into CRLF / drop it before inspection and relay.
    bare_newlines: Literal["reject", "normalize"] = "reject"
    # A message larger than this is spooled to a mode-0600 file in spool_dir (null:
    # the system temporary directory), removed when its transaction ends.
    spool_threshold: ByteSize = Field(default=1024 * 1024, ge=0)
    spool_dir: Path | None = None
    # true: a spooled message's top-level base64 attachments are decoded as they arrive,
    # by an inspection process to spare (gateway.frontends.pool read_on_arrival), into a
    # second mode-0600 file in spool_dir, and its plain-text bodies searched for marking
    # lines and links, so the inspection after the final dot does not do that again
    # (gateway.message.prescan, textscan): a shorter wait after the dot, no less
    # throughput (README, Performance). false: all of it after the dot.
    decode_on_arrival: bool = True
    # Inspection bounds (gateway.message.limits): beyond any of them the message is not
    # inspectable; rules decide what then (`inspection_incomplete`), else 451 4.3.0.
    max_header_bytes: ByteSize = Field(default=DEFAULT_LIMITS.max_header_bytes, ge=1024)
    max_parts: int = Field(default=DEFAULT_LIMITS.max_parts, ge=1)
    max_depth: int = Field(default=DEFAULT_LIMITS.max_depth, ge=1)
    max_expansion_bytes: ByteSize = Field(default=DEFAULT_LIMITS.max_expansion_bytes,
                                          ge=1024 * 1024)
    max_archive_entries: int = Field(default=DEFAULT_LIMITS.max_archive_entries, ge=1)
    max_archive_depth: int = Field(default=DEFAULT_LIMITS.max_archive_depth, ge=0)
    max_archive_ratio: int = Field(default=DEFAULT_LIMITS.max_archive_ratio, ge=1)
    max_pdf_pages: int = Field(default=DEFAULT_LIMITS.max_pdf_pages, ge=1)
    # Inspection runs in worker processes (gateway.frontends.pool). "auto": one per CPU,
    # and a quarter of the machine's memory (or of the cgroup's limit) for the
    # inspections in flight, each estimated from its message's size. With `workers`
    # above 1 each gateway worker takes its share of processes, memory and queue.
    # A message that cannot get a process and memory within inspection_wait seconds
    # (null: half of what session_timeout leaves after inspection and upstream, at
    # most 30), or finds the queue full, is answered 451 4.3.2.
    inspection_processes: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = "auto"
    inspection_queue: int = Field(default=100, ge=1)
    inspection_wait: float | None = Field(default=None, gt=0)
    inspection_memory: int | Literal["auto"] = "auto"

    @field_validator("inspection_processes", mode="before")
    @classmethod
    def _processes_value(cls, v: object) -> object:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1024):
            return v
        raise ValueError(f"bad value {v!r}: expected a number of processes from 1 to 1024, "
                         "or auto (one per CPU)")

    @field_validator("inspection_memory", mode="before")
    @classmethod
    def _memory_value(cls, v: object) -> object:
        if v == "auto":
            return v
        size = parse_size(v)
        if size < MIN_INSPECTION_MEMORY:
            raise ValueError(f"bad size {v!r}: at least 16MB, or auto (a quarter of the "
                             "machine's memory)")
        return size

    @property
    def waiting_time(self) -> float:
        """Seconds a message may wait for an inspection process and memory."""
        if self.inspection_wait is not None:
            return self.inspection_wait
        left = self.session_timeout - self.inspection_timeout - self.upstream_timeout
        return min(MAX_DEFAULT_WAIT, left / 2)

    @model_validator(mode="after")
    def _stages_within_session(self) -> Limits:
        # A client waits for our answer about as long as we wait for it. Each stage we wait
        # on (and, after the final dot, inspection plus the upstream's answer) must end
        # first, so the client hears 451 from us instead of timing out and retrying a
        # message the upstream may be about to accept: that retry would be a second copy.
        session = self.session_timeout
        for name in ("upstream_connect_timeout", "upstream_timeout", "inspection_timeout"):
            value = getattr(self, name)
            if value >= session:
                raise ValueError(f"{name} ({value:g}s) must be shorter than session_timeout "
                                 f"({session:g}s)")
        if self.inspection_timeout + self.upstream_timeout >= session:
            raise ValueError(
                f"inspection_timeout + upstream_timeout ({self.inspection_timeout:g}s + "
                f"{self.upstream_timeout:g}s) must be shorter than session_timeout "
                f"({session:g}s): a client waits for both after its final dot")
        wait = self.inspection_wait
        if wait is not None and wait + self.inspection_timeout + self.upstream_timeout >= session:
            raise ValueError(
                f"inspection_wait + inspection_timeout + upstream_timeout ({wait:g}s + "
                f"{self.inspection_timeout:g}s + {self.upstream_timeout:g}s) must be shorter "
                f"than session_timeout ({session:g}s): a client may wait for all three "
                "after its final dot")
        return self

    def inspection(self) -> InspectionLimits:
        """The bounds the message view is built with."""
        return InspectionLimits(
            max_header_bytes=self.max_header_bytes, max_parts=self.max_parts,
            max_depth=self.max_depth, max_expansion_bytes=self.max_expansion_bytes,
            max_archive_entries=self.max_archive_entries,
            max_archive_depth=self.max_archive_depth,
            max_archive_ratio=self.max_archive_ratio, max_pdf_pages=self.max_pdf_pages,
            max_seconds=self.inspection_timeout)


class UpstreamTlsSettings(_Frozen):
    """STARTTLS towards the next hop (gateway.relay.smtp)."""

    # none: never; opportunistic: when the upstream offers STARTTLS; required: always,
    # and a missing offer or a failed handshake tempfails the message (451 4.7.5).
    mode: Literal["none", "opportunistic", "required"] = "none"
    verify: bool = True
    # CA bundle (PEM) the upstream's certificate must chain to; null: the system store.
    ca_file: Path | None = None
    # Name checked against the upstream's certificate (and sent as SNI); null: its host.
    server_name: str | None = None

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: Path | None) -> Path | None:
        if v is not None:
            check_ca_file(v)
        return v


class TlsSettings(_Frozen):
    """STARTTLS offered to clients (certificate and key, PEM) and used towards the upstream."""

    cert: Path | None = None
    key: Path | None = None
    # Refuse MAIL (530 5.7.0) until the client has done STARTTLS.
    require_starttls: bool = False
    upstream: UpstreamTlsSettings = UpstreamTlsSettings()

    @field_validator("cert")
    @classmethod
    def _cert(cls, v: Path | None) -> Path | None:
        if v is not None:
            check_certificate(v)
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        cert = info.data.get("cert")
        if v is not None and cert is not None:
            check_key(cert, v)
        return v

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: set both or neither")
        if self.require_starttls and self.cert is None:
            raise ValueError("require_starttls needs a cert and key")
        return self


class MetricsSettings(_Frozen):
    """`metrics:` the HTTP listener for /metrics and /healthz (gateway.observe.metrics_http)."""

    listen: str = "127.0.0.1:9125"

    @field_validator("listen")
    @classmethod
    def _tcp_only(cls, v: str) -> str:
        if parse_listen(v).unix_path is not None:
            raise ValueError("metrics listen must be HOST:PORT (Prometheus scrapes TCP)")
        return v

    @property
    def address(self) -> ListenAddress:
        return parse_listen(self.listen)


class SyslogSettings(_Frozen):
    """`syslog:` each rejection-log record also sent to syslog/journald as ECS JSON
    (gateway.observe.ecs)."""

    # A unix datagram socket path (/dev/log: journald or rsyslog) or udp://HOST:PORT.
    address: str = "/dev/log"
    # RFC 5424 6.2.1 facility name (logging.handlers.SysLogHandler.facility_names).
    facility: str = "mail"

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        from gateway.observe.ecs import parse_syslog_address

        parse_syslog_address(v)
        return v

    @field_validator("facility")
    @classmethod
    def _facility(cls, v: str) -> str:
        from logging.handlers import SysLogHandler

        if v not in SysLogHandler.facility_names:
            raise ValueError(f"bad facility {v!r}: expected one of "
                             + ", ".join(sorted(SysLogHandler.facility_names)))
        return v


# dkim_sign.headers by default: RFC 6376 5.4.1's list, as dkimpy signs it (DKIM.SHOULD).
DKIM_DEFAULT_HEADERS: tuple[str, ...] = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "resent-date", "resent-from", "resent-sender", "resent-to",
    "resent-cc", "resent-message-id", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive")
# RFC 6376 5.4 (and dkimpy, which refuses them): fields a signer SHOULD NOT sign, as
# they change in transit or would sign the signature.
DKIM_NEVER_SIGNED = frozenset({"return-path", "received", "comments", "keywords", "bcc",
                               "resent-bcc", "dkim-signature"})
# RFC 6376 3.1: a selector is one or more dot-separated labels.
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")


class DkimSignSettings(_Frozen):
    """`dkim_sign:` DKIM-sign relayed outbound mail of `domain` after the gateway's own
    changes (gateway.transforms.dkim_sign). The key is read and checked when the
    policy loads (gateway.preflight), not here."""

    domain: str
    selector: str
    key_file: Path
    # Header field names to sign (those present in a message are signed; From always).
    headers: tuple[str, ...] = DKIM_DEFAULT_HEADERS
    # null: from the key (RSA: rsa-sha256, Ed25519: ed25519-sha256); else it must fit.
    algorithm: Literal["rsa-sha256", "ed25519-sha256"] | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        d = normalise_domain(v)
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", d):
            raise ValueError(f"bad domain {v!r}: expected the signing domain (d=), e.g. "
                             "anm.gov.my")
        return d

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str) -> str:
        if not _SELECTOR.fullmatch(v):
            raise ValueError(f"bad selector {v!r}: expected DNS labels, e.g. gateway2025 "
                             "(the key is published at SELECTOR._domainkey.DOMAIN)")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for name in v:
            low = name.strip().lower()
            if not re.fullmatch(r"[!-9;-~]+", low):
                raise ValueError(f"bad header field name {name!r}")
            if low in DKIM_NEVER_SIGNED:
                raise ValueError(f"{name} must not be signed (RFC 6376 5.4: it changes in "
                                 "transit or is a signature)")
            if low not in out:
                out.append(low)
        if "from" not in out:
            raise ValueError("headers must include From (RFC 6376 5.4)")
        return tuple(out)


class IncidentSettings(_Frozen):
    """`incidents:` who hears of a refusal by a rule marked `incident: true` (JANM
    5.2.2(d)), by mail through the upstream, with no content of the message
    (gateway.observe.incidents). Each worker process (`workers:` above 1) sends its
    own alerts, so the rate bound is per worker."""

    to: tuple[str, ...] = Field(min_length=1)
    sender: str = Field(alias="from")
    # Alerts beyond this many in the last hour are dropped; their count is logged and
    # told in the next alert mail sent.
    max_per_hour: Annotated[int, Field(ge=1, le=100_000)] = 60
    # Alerts within this many seconds of the first one go in one mail.
    batch_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # An alert the upstream does not take is tried again with the next mail for this
    # long, then logged as lost.
    retry_seconds: Annotated[float, Field(gt=0, le=86_400)] = 3600.0

    @field_validator("to")
    @classmethod
    def _contacts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for a in v:
            if "@" not in a or not a.isprintable() or " " in a or "<" in a or ">" in a:
                raise ValueError(f"bad address {a!r}: expected local@domain, e.g. "
                                 "ictso@anm.gov.my")
        return tuple(normalise_address(a) for a in v)

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if "@" not in v or not v.isprintable() or " " in v or "<" in v or ">" in v:
            raise ValueError(f"bad address {v!r}: expected local@domain, e.g. "
                             "gateway@anm.gov.my")
        return normalise_address(v)


def _label_level(v: object) -> str:
    """A `label_map` value: one of the four marking levels, in any case and spacing."""
    level = " ".join(v.upper().split()) if isinstance(v, str) else None
    if level not in MARKING_LEVELS:
        raise ValueError(f"unknown classification {v!r}: expected one of "
                         f"{', '.join(reversed(MARKING_LEVELS))}")
    return level


LabelLevel = Annotated[str, PlainValidator(_label_level)]


class GatewayConfig(_Frozen):
    listeners: tuple[Listener, ...] = Field(min_length=1)
    upstream: str
    agency_domains: tuple[str, ...] = Field(min_length=1)
    relay_networks: tuple[IPNetwork, ...] = ()
    hebahan_senders: tuple[str, ...] = ()
    # Registered relay applications (client IPs or networks) that may send tagged
    # [HEBAHAN JANM] announcements outbound on behalf of the agency: rule list
    # @hebahan_relays.
    hebahan_relays: tuple[IPNetwork, ...] = ()
    # What [HEBAHAN JANM] quoted after Re:/Fwd: becomes in inbound mail from a sender
    # who is not registered (rule hebahan-petik-masuk, list @hebahan_defang).
    hebahan_defang: str = HEBAHAN_DEFANG
    # MTAs in front (Postfix's smtpd_proxy_filter) whose XFORWARD attributes name the
    # real client: only they see XFORWARD in EHLO and may send it (empty: nobody).
    xforward_peers: tuple[IPNetwork, ...] = ()
    # Add an RFC 8601 Authentication-Results field (authserv-id = `hostname`) to relayed
    # mail whose sender authentication (SPF, DMARC) a rule evaluated.
    authentication_results: bool = True
    # Relay while receiving (smtp:// upstream only): DATA goes to the upstream as it
    # arrives and the final dot only after the verdict; a refusal drops the upstream
    # connection before the final dot. Off by default: the next hop then holds the
    # bytes of a message that may be refused (classified mail too) until the abort.
    cut_through: bool = False
    rules_dir: Path = Path("rules")
    rejection_log: Path = Path("var/log/rejections.jsonl")
    # TERHAD/SULIT subjects and Message-IDs in the log: hashed (HMAC-SHA256 with the
    # log key) or clear (gateway.observe.log_privacy; RAHSIA is never kept).
    log_subjects: Literal["hashed", "clear"] = "hashed"
    # The log key; None: rejection-log.key beside the rejection log. Made at first start.
    log_key_file: Path | None = None
    # Optional copy of each record to syslog/journald with ECS field names.
    syslog: SyslogSettings | None = None
    dns: DnsSettings = DnsSettings()
    limits: Limits = Limits()
    tls: TlsSettings = TlsSettings()
    hostname: str = "gateway.localdomain"
    # Extra headers whose value is read as a classification marking (MARKINGS.md 3).
    classification_headers: tuple[str, ...] = ("X-Classification", "X-Pengelasan")
    # Microsoft Purview sensitivity labels -> markings (MARKINGS.md 3,
    # gateway.message.labels): a label GUID, or a label name in any case, to a level,
    # e.g. {"Sulit - Dalaman": SULIT, "3de9faa6-9fe1-49b3-9a08-227a296b54a6": TERHAD}.
    label_map: dict[str, LabelLevel] = {}
    # Worker processes sharing each listening port (SO_REUSEPORT, gateway.workers);
    # "auto": one per CPU. Above 1, every listener needs a fixed TCP port.
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    # The event loop (gateway.eventloop): auto = uvloop when installed, else asyncio's.
    event_loop: EventLoopChoice = "auto"
    # Optional /metrics and /healthz listener; one process only (see _metrics_one_worker).
    metrics: MetricsSettings | None = None
    # Optional DKIM signing of relayed outbound mail after the gateway's own changes.
    dkim_sign: DkimSignSettings | None = None
    # Optional virus scanning through clamd; None: no message is scanned.
    antivirus: AntivirusSettings | None = None
    # The agency's time zone (IANA name): `gateway report` shows times in it and splits
    # days at its midnight (log records carry UTC times).
    timezone: str = DEFAULT_TIMEZONE
    # Optional mail to the security contacts on a refusal by an `incident: true` rule.
    incidents: IncidentSettings | None = None

    @property
    def log_key_path(self) -> Path:
        """The log key file: `log_key_file`, or rejection-log.key beside the rejection log."""
        return self.log_key_file or self.rejection_log.with_name("rejection-log.key")

    @field_validator("label_map")
    @classmethod
    def _label_map(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not key.strip():
                raise ValueError("a label must be named by its GUID or its name, not ''")
        problems = label_conflicts(v)
        if problems:
            raise ValueError(problems[0])
        return v

    @property
    def worker_count(self) -> int:
        """`workers` as a number ("auto" = the CPUs this process may run on)."""
        if self.workers == "auto":
            return max(1, len(os.sched_getaffinity(0)))
        return self.workers

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_value(cls, v: object) -> object:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 256):
            return v
        raise ValueError(f"bad value {v!r}: expected a number of processes from 1 to 256, "
                         "or auto (one per CPU)")

    @field_validator("workers")
    @classmethod
    def _workers_need_fixed_ports(cls, v: int | str, info: ValidationInfo) -> int | str:
        if v == 1:
            return v
        for ln in info.data.get("listeners", ()):
            addr = ln.address
            if addr.unix_path is not None:
                raise ValueError(f"listener {ln.name} is a unix socket; several workers "
                                 "can share only TCP ports (use workers: 1)")
            if addr.port == 0:
                raise ValueError(f"listener {ln.name} has port 0; every worker would get "
                                 "another port (give it a fixed port or use workers: 1)")
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics_one_worker(cls, v: MetricsSettings | None, info: ValidationInfo
                            ) -> MetricsSettings | None:
        # With several workers each would count only its own sessions and a scrape
        # would see one of them at random: refused rather than silently partial.
        workers = info.data.get("workers", 1)
        if v is not None and workers != 1:
            raise ValueError("metrics needs workers: 1 (each worker process would count "
                             "only its own traffic)")
        return v

    @field_validator("antivirus")
    @classmethod
    def _scan_within_inspection(cls, v: AntivirusSettings | None, info: ValidationInfo
                                ) -> AntivirusSettings | None:
        # The scan runs inside the inspection, which is killed at inspection_timeout
        # (451 4.3.0): a scan that may take as long would never be reported as one.
        limits = info.data.get("limits")
        if v is not None and limits is not None and v.timeout >= limits.inspection_timeout:
            raise ValueError(f"antivirus.timeout ({v.timeout:g}s) must be shorter than "
                             f"limits.inspection_timeout ({limits.inspection_timeout:g}s)")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        time_zone(v)
        return v

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, v: str) -> str:
        parse_upstream(v)
        return v

    @field_validator("agency_domains")
    @classmethod
    def _domains(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(normalise_domain(d) for d in v)
        for d in out:
            if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", d):
                raise ValueError(f"bad domain {d!r}: expected a domain such as anm.gov.my")
        return out

    @field_validator("relay_networks", "hebahan_relays", "xforward_peers", mode="before")
    @classmethod
    def _networks(cls, v: object) -> object:
        # Parsed here for a readable message (pydantic's names its internal validators);
        # host bits are allowed (10.1.2.3/8 means 10.0.0.0/8), as in rule files.
        return _networks(v, "e.g. 10.1.2.3, 10.0.0.0/8 or 2001:db8::/32")

    @field_validator("hebahan_defang")
    @classmethod
    def _defang(cls, v: str) -> str:
        v = v.strip()
        if not v or not v.isprintable():
            raise ValueError(f"expected one printable line such as {HEBAHAN_DEFANG!r}, "
                             f"got {v!r}")
        if tag_pattern("[HEBAHAN JANM]").search(fold(v)) is not None:
            raise ValueError(f"{v!r} still reads as [HEBAHAN JANM]: officers would take it "
                             f"as verified; e.g. {HEBAHAN_DEFANG!r}")
        return v

    @field_validator("hebahan_senders")
    @classmethod
    def _senders(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for a in v:
            if "@" not in a:
                raise ValueError(f"bad address {a!r}: expected local@domain")
        return tuple(normalise_address(a) for a in v)

    @field_validator("listeners")
    @classmethod
    def _unique_names(cls, v: tuple[Listener, ...]) -> tuple[Listener, ...]:
        names = [x.name for x in v]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"duplicate listener name(s): {', '.join(sorted(dupes))}")
        return v

    @property
    def upstream_target(self) -> Upstream:
        return parse_upstream(self.upstream)


def load_config(path: Path) -> GatewayConfig:
    """Read and validate the config file; raises LoadError listing every problem."""
    return load_config_located(path)[0]


def load_config_located(path: Path) -> tuple[GatewayConfig, Located]:
    """The config and the YAML it came from (for FILE:LINE of later checks on its paths)."""
    doc = load_file(path)
    if not isinstance(doc.data, dict):
        raise LoadError([doc.problem((), "the config must be a mapping of keys, e.g. "
                                         "listeners:, upstream:, agency_domains:")])
    try:
        return GatewayConfig.model_validate(doc.data), doc
    except ValidationError as exc:
        # In the administrator's words, one line per problem (gateway.config_errors).
        raise LoadError(config_errors.problems(exc, doc, GatewayConfig)) from None
