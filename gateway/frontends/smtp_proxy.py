"""The SMTP proxy front end: an aiosmtpd server in lockstep with the relay.

Per connection, MAIL and RCPT pass relay control (`gateway.policy.relay_control`)
and then go to the upstream as they arrive, so the client hears the upstream's
own answers. DATA is read by our own bounded, chunked reader (aiosmtpd's reads
line by line into a list and has no drain-then-refuse for oversize mail): its
decisions are the sans-io `gateway.frontends.smtp_session.DataPhase`, and this
module only performs the actions it returns (`run_data`). The message is inspected
with a deadline and relayed after (store and forward), or, with `cut_through`,
relayed while it arrives with the final dot held back until the verdict; either
way 250 comes only after the upstream's 250 or an fsynced Maildir file. Every
failure of our own is 451 4.3.0 with a ref, never exception text.

Hostile clients meet bounds here (`limits:`): connections overall and per client
IP, commands and bad commands per session, command line length (aiosmtpd's 512
plus extensions: longer is 500 5.5.2), idle time (421 4.4.2), and inside DATA a
total deadline and a minimum rate (421 4.4.2, `DataClock`). DATA lines may be
longer than RFC 5321's 1000 octets (real mail has them); memory stays bounded
because the message is spooled to disk above `limits.spool_threshold`. The DATA
stream itself (end of data, bare newlines, spool) is `gateway.frontends.datastream`.
STARTTLS is offered when `gateway.tls.server_context` gives a context; plaintext
pipelined behind STARTTLS is discarded by aiosmtpd when the handshake completes.

The client the policy sees is the real one (CONTRACT.md): a trusted load balancer's
PROXY header (`gateway.frontends.proxy_protocol`, listener `proxy_protocol:`) names
it for the whole connection, a trusted MTA's XFORWARD (`gateway.frontends.xforward`,
`xforward_peers`) for one transaction. `client_ip` and `helo` answer with that
client for relay control, rules, SPF and the log, and the per-IP connection limit
counts it, not the balancer or MTA in front. XFORWARD goes on to an upstream that
offers it, so the next hop logs the real client too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd import __version__ as aiosmtpd_version
from aiosmtpd.proxy_protocol import V2_SIGNATURE
from aiosmtpd.smtp import MISSING, SMTP, login_always_fail
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession
from aiosmtpd.smtp import _AuthMechAttr as AuthMechAttr
from aiosmtpd.smtp import log as aiosmtpd_log
from aiosmtpd.smtp import make_loop as aiosmtpd_make_loop

from gateway import pipeline, tls
from gateway.auth.facts import BodyNeeded
from gateway.config import Listener, ProxyProtocolSettings, Upstream
from gateway.envelope import Envelope
from gateway.frontends import proxy_protocol, xforward
from gateway.frontends.inspection import Inspection, Relay, inspect_spooled
from gateway.frontends.pool import InspectionPool
from gateway.frontends.smtp_session import (
    OUTCOMES,
    AbortUpstream,
    Action,
    ClientData,
    ClientGone,
    ClientLost,
    ClientSilent,
    DataPhase,
    DataSettings,
    DecideHeader,
    Decline,
    Event,
    HeaderDecided,
    Inspect,
    InspectionDone,
    Mismatch,
    Outcome,
    ReadClient,
    Refuse,
    Relayed,
    ReplyClient,
    StoreAndForward,
    TooSlow,
    Unread,
    UpstreamData,
    UpstreamFailed,
    UpstreamFinish,
    UpstreamLost,
    UpstreamRefused,
    UpstreamReplied,
    UpstreamSend,
    cuts_through,
)
from gateway.observe import journal
from gateway.observe.incidents import IncidentAlerts
from gateway.observe.metrics import Metrics
from gateway.observe.rejection_log import RejectionLog
from gateway.policy import builtin, relay_control, replies
from gateway.policy.verdict import Reply
from gateway.policy_state import PolicyState
from gateway.relay import maildir
from gateway.relay.connection_cache import ConnectionCache
from gateway.relay.smtp import (
    UpstreamReply,
    UpstreamSession,
    UpstreamTlsFailed,
    UpstreamUnavailable,
)

log = logging.getLogger("gateway.smtp")

# aiosmtpd finds hooks by name: a misspelt one would silently fall back to defaults.
REQUIRED_HOOKS = frozenset({"EHLO", "HELO", "MAIL", "RCPT", "RSET", "QUIT"})
READ_CHUNK = 64 * 1024
RELAY_PIECE = 1024 * 1024
# Room for SIZE=, BODY= and SMTPUTF8 on top of RFC 5321's 512 octets.
MAIL_LINE_LIMIT = 1024
# Replies that say the client sent a bad command (syntax, sequence, unknown, too long).
_BAD_COMMAND_CODES = frozenset({"500", "501", "502", "503", "504"})
_HAS_ENHANCED = re.compile(r"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
_REPLY_LINE = re.compile(r"^(\d{3})([ -])(.*)$", re.DOTALL)
# RFC 3463 codes for the replies aiosmtpd writes itself (syntax errors, RSET, QUIT...).
# Not 220 (the greeting takes none, RFC 2034 3) nor 354 (intermediate).
_DEFAULT_ENHANCED = {221: "2.0.0", 250: "2.0.0", 252: "2.0.0", 421: "4.3.0", 451: "4.3.0",
                     454: "4.7.0", 500: "5.5.2", 501: "5.5.4", 502: "5.5.1", 503: "5.5.1",
                     504: "5.5.4", 530: "5.7.0", 552: "5.3.4", 553: "5.1.3", 554: "5.7.0",
                     555: "5.5.4"}
# aiosmtpd's STARTTLS answer; unlike the greeting it answers a command (RFC 3207 4).
_STARTTLS_READY = "220 Ready to start TLS"
# aiosmtpd's own words for refusals the gateway documents as its own: said the
# gateway's way instead (Malay then English, RFC 3463 code; see gateway.policy.builtin).
_AIOSMTPD_REFUSALS: dict[str, Callable[[], Reply]] = {
    "500 Command line too long": replies.command_too_long,
    "530 Must issue a STARTTLS command first": replies.tls_required,
}


def _line_with_enhanced(line: str) -> str:
    m = _REPLY_LINE.match(line)
    if m is None or _HAS_ENHANCED.match(line):
        return line
    enhanced = _DEFAULT_ENHANCED.get(int(m.group(1)))
    return f"{m.group(1)}{m.group(2)}{enhanced} {m.group(3)}" if enhanced else line


def with_enhanced(status: str) -> str:
    """Add an RFC 3463 code to each reply line lacking one (we advertise ENHANCEDSTATUSCODES)."""
    if status == _STARTTLS_READY:
        return "220 2.0.0 Ready to start TLS"
    return "\r\n".join(_line_with_enhanced(line) for line in status.split("\r\n"))


CommandMethod = Callable[[str | None], Awaitable[None]]


class _Commands(dict[str, CommandMethod]):
    """aiosmtpd's command table, with a handler of ours for every command it lacks.

    aiosmtpd looks commands up with `.get()` and answers a miss itself, from a budget
    of its own (5 unknown commands, then 502 and a hang-up) that would cut in before
    `limits.max_bad_commands`. Membership, iteration and HELP are unchanged: the
    unknown-command handler is made per look-up and has no HELP syntax. What `.get()`
    returns is wrapped by `wrap` (the command budget) at look-up, not once per method
    and connection: a connection uses a few of the fifteen commands.
    """

    def __init__(self, methods: dict[str, CommandMethod],
                 unknown: Callable[[str], CommandMethod],
                 wrap: Callable[[CommandMethod], CommandMethod]) -> None:
        super().__init__(methods)
        self._unknown = unknown
        self._wrap = wrap

    def get(self, key: str, default: object = None) -> Any:
        found = super().get(key)
        return self._wrap(found if found is not None else self._unknown(key))


@dataclass(frozen=True)
class _Tables:
    """What aiosmtpd's SMTP.__init__ finds by introspection, for one server class and
    handler: names only (bound per connection), and the handler's own bound hooks."""

    auth: tuple[tuple[str, str, bool], ...]  # mechanism, attribute, on the server itself
    hooks: dict[str, Callable[..., Any]]
    ehlo_hook_version: str | None
    commands: tuple[tuple[str, str], ...]  # command, method name


# aiosmtpd's SMTP.__init__ runs inspect.getmembers and dir() over the server and the
# handler on every connection (about 0.4 ms, some 12 % of the CPU at 2 KB x 20
# sessions) to build tables that only depend on the class. ProxySMTP builds them once
# per class and binds them per connection (`_init_smtp`), reproducing aiosmtpd 1.4.6's
# __init__ exactly (tests/unit/test_smtp_init.py compares every attribute); with any
# other aiosmtpd version it calls aiosmtpd's own __init__.
FAST_INIT_VERSION = "1.4.6"
_TABLES: dict[tuple[type, object], _Tables] = {}


def _tables(cls: type, handler: object) -> _Tables:
    key = (cls, handler)
    found = _TABLES.get(key)
    if found is not None:
        return found
    # As aiosmtpd: auth_* of the server, then of the handler (a later name wins).
    auth: list[tuple[str, str, bool]] = []
    for owner, builtin_ in ((cls, True), (type(handler), False)):
        for name in sorted(dir(owner)):
            if name.startswith("auth_"):
                method = getattr(owner, name)
                mech = getattr(method, "__auth_mechanism_name__",
                               name.replace("auth_", "").replace("__", "-"))
                auth.append((mech, name, builtin_))
    hooks = {name.replace("handle_", ""): getattr(handler, name)
             for name in dir(handler) if name.startswith("handle_")}
    ehlo = hooks.get("EHLO")
    version: str | None = None
    if ehlo is not None:
        count = len(inspect.signature(ehlo).parameters)
        version = {4: "old", 5: "new"}.get(count)
        if version is None:
            raise RuntimeError("Unsupported EHLO Hook")
    commands = tuple((name.replace("smtp_", ""), name)
                     for name in dir(cls) if name.startswith("smtp_"))
    found = _TABLES[key] = _Tables(tuple(auth), hooks, version, commands)
    return found


@dataclass
class ProxyContext:
    """What every session shares. `policy` is the one reference a reload swaps."""

    policy: PolicyState
    rejection_log: RejectionLog
    draining: bool = False
    sessions: set[ProxySMTP] = field(default_factory=set)
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)
    metrics: Metrics = field(default_factory=Metrics)
    # The inspection processes (the service starts and stops them); None: a thread.
    pool: InspectionPool | None = None
    # Upstream connections kept between sessions (the service closes them at stop).
    upstream_cache: ConnectionCache = field(default_factory=ConnectionCache)
    # Alerts to the security contacts on refusals by incident rules (the service
    # starts and stops its sender); None: none are sent (tests of the front end alone).
    incidents: IncidentAlerts | None = None


async def _pieces(message: bytes) -> AsyncIterator[bytes]:
    """A message in memory as large slices (each a copy of at most RELAY_PIECE bytes)."""
    for start in range(0, len(message), RELAY_PIECE):
        yield message[start:start + RELAY_PIECE]


def _reply_of(up: UpstreamReply) -> Reply:
    """An upstream reply as a Reply (for the log), enhanced code read from its text."""
    first = up.lines[0] if up.lines else ""
    m = re.match(r"([245]\.\d{1,3}\.\d{1,3})\s?(.*)$", first)
    enhanced = m.group(1) if m else ""
    return Reply(up.code, enhanced, up.lines)


class ProxyHandler:
    """The aiosmtpd hooks. Stateless: per-connection state lives on the ProxySMTP."""

    async def handle_EHLO(self, server: ProxySMTP, session: SmtpSession,
                          envelope: SmtpEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        # With an EHLO hook aiosmtpd leaves recording the name to us.
        session.host_name = hostname
        server.command_size_limits["MAIL"] = MAIL_LINE_LIMIT
        await server.end_upstream_transaction()
        lines = [f"250-{server.hostname}",
                 f"250-SIZE {server.ctx.policy.max_message_size}",
                 "250-8BITMIME",
                 "250-PIPELINING",
                 "250-ENHANCEDSTATUSCODES"]
        if server.tls_context is not None and server.session is not None \
                and server.session.ssl is None:
            lines.append("250-STARTTLS")
        if server.xforward_allowed:
            lines.append(f"250-{xforward.EHLO_KEYWORD}")
        return [*lines, "250 SMTPUTF8"]

    async def handle_HELO(self, server: ProxySMTP, session: SmtpSession,
                          envelope: SmtpEnvelope, hostname: str) -> str:
        session.host_name = hostname
        await server.end_upstream_transaction()
        return f"250 {server.hostname}"

    async def handle_MAIL(self, server: ProxySMTP, session: SmtpSession,
                          envelope: SmtpEnvelope, address: str,
                          mail_options: list[str]) -> str:
        return await server.on_mail(envelope, address, mail_options)

    async def handle_RCPT(self, server: ProxySMTP, session: SmtpSession,
                          envelope: SmtpEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        return await server.on_rcpt(envelope, address)

    async def handle_RSET(self, server: ProxySMTP, session: SmtpSession,
                          envelope: SmtpEnvelope) -> Any:
        await server.end_upstream_transaction()
        return MISSING

    async def handle_QUIT(self, server: ProxySMTP, session: SmtpSession,
                          envelope: SmtpEnvelope) -> Any:
        await server.close_upstream()
        return MISSING


HANDLER = ProxyHandler()


class ProxySMTP(SMTP):
    """One client connection on one listener."""

    def __init__(self, ctx: ProxyContext, listener: Listener) -> None:
        self.ctx = ctx
        self.listener = listener
        # aiosmtpd keeps this on the class and grows it on every EHLO; keep ours per session.
        self.command_size_limits: collections.defaultdict[str, int] = \
            collections.defaultdict(lambda: SMTP.command_size_limit)
        self.txn_policy: PolicyState | None = None
        self.upstream: UpstreamSession | None = None
        self.upstream_target: Upstream | None = None
        self.upstream_key: Hashable = None
        self.upstream_failed = False
        self.raw_arg = ""
        self.in_data = False
        self._in_mail = False
        self._raw_replies = False
        self.delivering = False
        self.commands = 0
        self.bad_commands = 0
        self._counted_ip: str | None = None
        # The client a trusted balancer's PROXY header named (whole connection) and the
        # one a trusted MTA's XFORWARD named (until the transaction ends).
        self.proxied: proxy_protocol.Accepted | None = None
        self.forwarded: xforward.Forwarded | None = None
        # Set when the connection must be refused (421) instead of greeted.
        self._refusal: Reply | None = None
        # The first bytes of the connection, until they cannot be a PROXY v2 signature
        # any more (then None): see data_received.
        self._opening: bytes | None = b""
        policy = ctx.policy
        context, require = self._tls_settings(policy)
        if aiosmtpd_version == FAST_INIT_VERSION and not self.aiosmtpd_init:
            self._init_smtp(HANDLER, hostname=policy.config.hostname, ident="ESMTP",
                            timeout=policy.config.limits.session_timeout,
                            tls_context=context, require_starttls=require)
        else:
            super().__init__(HANDLER, data_size_limit=None, enable_SMTPUTF8=True,
                             decode_data=False, hostname=policy.config.hostname,
                             ident="ESMTP", timeout=policy.config.limits.session_timeout,
                             tls_context=context, require_starttls=require)
        missing = REQUIRED_HOOKS - set(self._handle_hooks)
        if missing:
            raise RuntimeError(f"aiosmtpd hooks not found: {', '.join(sorted(missing))}")
        self._smtp_methods = _Commands(
            self._smtp_methods,
            lambda command: functools.partial(self.unknown_command, command),
            self._budgeted)

    # Tests set it to compare the cached construction with aiosmtpd's own.
    aiosmtpd_init = False

    def _init_smtp(self, handler: object, *, hostname: str, ident: str, timeout: float,
                   tls_context: ssl.SSLContext | None, require_starttls: bool) -> None:
        """aiosmtpd 1.4.6's SMTP.__init__ for our arguments (data_size_limit=None,
        enable_SMTPUTF8=True, decode_data=False, no AUTH settings, no call limit, no
        PROXY timeout), with the introspected tables taken from `_tables`. Its
        per-connection INFO line listing AUTH mechanisms is left out: the gateway
        silences aiosmtpd's INFO log anyway (service.setup_logging)."""
        tables = _tables(type(self), handler)
        self.__ident__ = ident
        self.loop = aiosmtpd_make_loop()
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=self.loop)
        self.event_handler = handler
        self.data_size_limit = None
        self.enable_SMTPUTF8 = True
        self._decode_data = False
        self.command_size_limits.clear()
        self.hostname = hostname or socket.getfqdn()
        self.tls_context = tls_context
        if tls_context:
            if tls_context.verify_mode not in {ssl.CERT_NONE, ssl.CERT_OPTIONAL}:
                aiosmtpd_log.warning("tls_context.verify_mode not in {CERT_NONE, "
                                     "CERT_OPTIONAL}; this might cause client "
                                     "connection problems")
            elif tls_context.check_hostname:
                aiosmtpd_log.warning("tls_context.check_hostname == True; "
                                     "this might cause client connection problems")
        self.require_starttls = tls_context and require_starttls
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = True
        self._proxy_timeout = None
        self._authenticator = None
        self._auth_callback = login_always_fail
        self._auth_required = False
        self._auth_methods = {
            mech: AuthMechAttr(getattr(self if on_self else handler, name), on_self)
            for mech, name, on_self in tables.auth}
        self._handle_hooks = dict(tables.hooks)
        self._ehlo_hook_ver = tables.ehlo_hook_version
        self._smtp_methods = {command: getattr(self, name) for command, name in tables.commands}
        self._enforce_call_limit = False

    def _tls_settings(self, policy: PolicyState) -> tuple[ssl.SSLContext | None, bool]:
        require = policy.config.tls.require_starttls
        try:
            return tls.server_context(policy.config), require
        except (OSError, ssl.SSLError):
            log.exception("%s: TLS certificate or key cannot be loaded", self.listener.name)
            if require:
                # Never fall back to plaintext where TLS is required: tempfail the client.
                self._refusal = replies.shutting_down()
            return None, False

    def _budgeted(self, method: Callable[[str | None], Awaitable[None]]
                  ) -> Callable[[str | None], Awaitable[None]]:
        """A command handler that first spends one of the session's command budget."""
        @functools.wraps(method)
        async def run(arg: str | None) -> None:
            self.commands += 1
            if self.commands > self.ctx.policy.config.limits.max_commands:
                await self.close_with(replies.too_many_commands(), "too many commands",
                                      builtin.TOO_MANY_COMMANDS.id)
                return
            await method(arg)
        return run

    async def close_with(self, reply: Reply, why: str, rule_id: str | None = None) -> None:
        """Tell the client why (a 421) and hang up."""
        log.warning("%s client=%s closed: %s rule=%s reply=%d %s", self.listener.name,
                    self.client_ip, why, rule_id or builtin.identify(reply) or "-",
                    reply.code, reply.enhanced)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.push(replies.render(reply))
        if self.transport is not None:
            self.transport.close()
        # Pipelined commands already buffered must not run after the 421. Cancelling
        # alone is not enough: a read that finds its line already buffered returns
        # without suspending, so the cancellation would only land inside the next
        # command (e.g. after MAIL had opened an upstream connection). Dropping the
        # buffer makes the next read wait, and the cancellation lands there.
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    # -- connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        after_starttls = self._original_transport is not None
        super().connection_made(transport)
        if after_starttls:
            # RFC 3207 4.2: nothing from before TLS survives, an open upstream
            # transaction included (aiosmtpd already dropped the buffered plaintext).
            self.txn_policy = None
            self.forwarded = None
            if self.upstream is not None:
                self.upstream.abort()
                self.upstream = None
            return
        if self._refusal is not None:
            return
        limits = self.ctx.policy.config.limits
        ip = self.client_ip
        if len(self.ctx.sessions) >= limits.max_connections:
            self._refusal = replies.too_many_connections()
            log.warning("%s client=%s refused: %d connections open", self.listener.name, ip,
                        len(self.ctx.sessions))
            return
        if ip == "unknown" or self._fronts_clients(ip):
            # A unix-socket client (a local MTA) has no address to count per IP. A
            # trusted balancer or MTA in front carries many clients: each connection
            # counts as the client its PROXY header or XFORWARD names (_count_as).
            self.ctx.sessions.add(self)
            return
        if self.ctx.per_ip[ip] >= limits.max_connections_per_ip:
            self._refusal = replies.too_many_connections()
            log.warning("%s client=%s refused: %d connections from this address",
                        self.listener.name, ip, self.ctx.per_ip[ip])
            return
        self.ctx.sessions.add(self)
        self.ctx.per_ip[ip] += 1
        self._counted_ip = ip

    def data_received(self, data: bytes) -> None:
        """Watch the first bytes for a PROXY v2 signature from an untrusted peer.

        A v1 header from such a peer reaches the command loop as a `PROXY` command
        (smtp_PROXY names it). A v2 one would read as two empty lines, a NUL and QUIT,
        and the connection would end with nothing in the journal: so the binary
        signature at the very start is recognised here, named the same way and the
        connection closed with the same 421. A trusted balancer's header is read by
        _take_proxy_header and never looked at here.
        """
        if self._opening is not None:
            seen = self._opening + data[:len(V2_SIGNATURE) - len(self._opening)]
            self._opening = seen if V2_SIGNATURE.startswith(seen) \
                and len(seen) < len(V2_SIGNATURE) else None
            if seen == V2_SIGNATURE and not proxy_protocol.trusted(
                    self.peer_ip, self.listener.proxy_protocol):
                self._refuse_v2_header()
                return
        super().data_received(data)

    def _refuse_v2_header(self) -> None:
        """Name an untrusted peer's v2 header in the journal, answer 421 and hang up."""
        reply = proxy_protocol.UNTRUSTED
        log.warning("%s client=%s closed: %s rule=- reply=%d %s", self.listener.name,
                    self.client_ip, f"PROXY v2 header from {self.peer_ip}, not a trusted "
                    "balancer", reply.code, reply.enhanced)
        if self.transport is not None and not self.transport.is_closing():
            # Written without waiting: close() still sends what is buffered.
            self._writer.write(replies.render(reply).encode() + b"\r\n")
            self.transport.close()
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    def connection_lost(self, error: Exception | None) -> None:
        self.ctx.sessions.discard(self)
        self._uncount()
        if self.upstream is not None:
            if self.in_data:
                # A cut-through DATA may be open upstream: reset it, final dot unsent.
                self.upstream.discard()
            elif self.upstream.reusable and not self.ctx.draining:
                # The client left between transactions: the next client may use it.
                self.give_back_upstream()
            else:
                self.upstream.abort()
        super().connection_lost(error)

    def _uncount(self) -> None:
        if self._counted_ip is not None:
            ip, self._counted_ip = self._counted_ip, None
            self.ctx.per_ip[ip] -= 1
            if self.ctx.per_ip[ip] <= 0:
                del self.ctx.per_ip[ip]

    def _count_as(self, ip: str) -> bool:
        """Count this connection as client `ip` from now on; False when that client
        already has `max_connections_per_ip` (it is then counted as nobody)."""
        if ip == self._counted_ip:
            return True
        self._uncount()
        if ip == "unknown":
            return True
        if self.ctx.per_ip[ip] >= self.ctx.policy.config.limits.max_connections_per_ip:
            log.warning("%s client=%s refused: %d connections from this address",
                        self.listener.name, ip, self.ctx.per_ip[ip])
            return False
        self.ctx.per_ip[ip] += 1
        self._counted_ip = ip
        return True

    def _fronts_clients(self, peer_ip: str) -> bool:
        """Whether the peer is a trusted balancer or MTA speaking for other clients."""
        return proxy_protocol.trusted(peer_ip, self.listener.proxy_protocol) or \
            relay_control.client_in(peer_ip, self.ctx.policy.config.xforward_peers)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            # Refused before the greeting: one 421 and the connection is closed.
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.push(replies.render(self._refusal))
            if self.transport is not None:
                self.transport.close()
            return
        settings = self.listener.proxy_protocol
        if settings is not None and proxy_protocol.trusted(self.peer_ip, settings) \
                and not await self._take_proxy_header(settings):
            return
        await super()._handle_client()

    async def _take_proxy_header(self, settings: ProxyProtocolSettings) -> bool:
        """Read a trusted balancer's PROXY header before the greeting; False when the
        connection was closed instead (no valid header, or its client over the limit)."""
        outcome = await proxy_protocol.read_header(self._reader, settings.versions,
                                                   settings.timeout)
        if isinstance(outcome, proxy_protocol.Refused):
            log.warning("%s peer=%s closed: %s", self.listener.name, self.peer_ip,
                        outcome.reason)
            if self.transport is not None:
                self.transport.close()
            return False
        self.proxied = outcome
        if not self._count_as(self.connection_ip):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.push(replies.render(replies.too_many_connections()))
            if self.transport is not None:
                self.transport.close()
            return False
        log.debug("%s peer=%s PROXY v%d client=%s", self.listener.name, self.peer_ip,
                  outcome.version, self.connection_ip)
        return True

    def _timeout_cb(self) -> None:
        if self.delivering:
            # Inspection and relay have deadlines of their own; cutting the client off
            # now could make it retry a message the upstream has already taken.
            self._reset_timeout()
            return
        if self.transport is None:
            return
        reply = replies.idle_timeout()
        log.info("%s client=%s idle timeout rule=%s reply=%d %s", self.listener.name,
                 self.client_ip, builtin.IDLE_TIMEOUT.id, reply.code, reply.enhanced)
        if not self.transport.is_closing():
            # Written without waiting: close() still sends what is buffered.
            self._writer.write(replies.render(reply).encode() + b"\r\n")
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    @property
    def busy(self) -> bool:
        """In a transaction: a drain lets it finish instead of cutting it off."""
        return self._in_mail or self.in_data or (
            self.envelope is not None and self.envelope.mail_from is not None)

    async def shutdown(self) -> None:
        """Tell an idle client we are going away (421) and close."""
        if self.transport is None or self.transport.is_closing():
            # A closed TLS transport has dropped its SSL protocol: writing to it raises
            # AttributeError rather than a ConnectionError (CI run of 2026-11-30).
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.push(replies.render(replies.shutting_down()))
        if self.transport is not None:
            self.transport.close()

    @property
    def peer_ip(self) -> str:
        """The address at the other end of the TCP connection ("unknown" on a unix socket)."""
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    @property
    def connection_ip(self) -> str:
        """The connection's client: the peer, or whom a trusted PROXY header named."""
        if self.proxied is not None and self.proxied.client_ip is not None:
            return self.proxied.client_ip
        return self.peer_ip

    @property
    def client_ip(self) -> str:
        """The client the policy sees: XFORWARD's for this transaction, else the
        connection's. A forwarded local submission (ADDR unknown) has no address."""
        if self.forwarded is not None:
            return self.forwarded.addr or "unknown"
        return self.connection_ip

    @property
    def helo(self) -> str:
        if self.forwarded is not None:
            # XFORWARD_README: with ADDR unknown the other client attributes are ignored.
            return (self.forwarded.helo or "") if self.forwarded.addr is not None else ""
        return (self.session.host_name if self.session is not None else None) or ""

    @property
    def xforward_allowed(self) -> bool:
        # As Postfix's smtpd_authorized_xforward_hosts, matched against the connection's
        # client (behind a balancer: the MTA the PROXY header names).
        return relay_control.client_in(self.connection_ip,
                                       self.ctx.policy.config.xforward_peers)

    def xforward_attributes(self) -> dict[str, str | None]:
        """The client as XFORWARD attributes for an upstream that offers XFORWARD."""
        fwd = self.forwarded
        if fwd is not None:
            return {"NAME": fwd.name, "ADDR": fwd.addr, "PORT": fwd.port, "PROTO": fwd.proto,
                    "HELO": fwd.helo, "IDENT": fwd.ident, "SOURCE": fwd.source}
        ip = self.client_ip
        port = self.proxied.client_port if self.proxied is not None else None
        peer = self.session.peer if self.session is not None else None
        if port is None and self.proxied is None and isinstance(peer, tuple) and len(peer) > 1:
            port = int(peer[1])
        extended = self.session is not None and self.session.extended_smtp
        return {"NAME": None, "ADDR": None if ip == "unknown" else ip,
                "PORT": None if port is None else str(port),
                "PROTO": "ESMTP" if extended else "SMTP", "HELO": self.helo or None,
                "IDENT": None, "SOURCE": "REMOTE"}

    def gateway_envelope(self, mail_from: str | None = None) -> Envelope:
        """The transaction's envelope; `mail_from` for a sender refused at MAIL FROM, which
        never becomes the transaction's but is what the client gave (and the log shows)."""
        env = self.envelope
        if mail_from is None:
            mail_from = env.mail_from if env is not None and env.mail_from else ""
        return Envelope(direction=self.listener.direction, listener=self.listener.name,
                        client_ip=self.client_ip, helo=self.helo,
                        mail_from="" if mail_from == "<>" else mail_from,
                        rcpt_to=tuple(env.rcpt_tos) if env is not None else ())

    # -- replies and logging --------------------------------------------------------------
    async def push(self, status: Any) -> None:
        if isinstance(status, str) and not self._raw_replies:
            own = _AIOSMTPD_REFUSALS.get(status)
            status = replies.render(own()) if own is not None else with_enhanced(status)
        await super().push(status)
        if isinstance(status, str) and status[:3] in _BAD_COMMAND_CODES:
            self.bad_commands += 1
            if self.bad_commands >= self.ctx.policy.config.limits.max_bad_commands:
                await self.close_with(replies.too_many_bad_commands(), "too many bad commands",
                                      builtin.TOO_MANY_BAD_COMMANDS.id)

    async def unknown_command(self, command: str, arg: str | None) -> None:
        """A command aiosmtpd has no method for: 500 5.5.1, counted as a bad command.

        Answered here rather than by aiosmtpd, whose own budget of unknown commands
        (5, then 502 and a hang-up) would cut in before `limits.max_bad_commands`.
        """
        await self.push(f'500 5.5.1 Error: command "{command}" not recognized')

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected failure: 451 4.3.0 with a ref; the traceback goes to our log only."""
        ref = pipeline.new_ref()
        log.error("%s ref=%s internal error", self.listener.name, ref, exc_info=error)
        reply = replies.internal_error(ref)
        rule_id = builtin.INTERNAL_ERROR.id
        log.info("%s ref=%s client=%s from=<%s> action=tempfail rule=%s reply=%d %s "
                 "reason=internal error", self.listener.name, ref, self.client_ip,
                 journal.value(self.gateway_envelope().mail_from), rule_id, reply.code,
                 reply.enhanced)
        self.ctx.metrics.message(self.listener.direction, reply.code)
        self.ctx.metrics.rule_hit(rule_id)
        if self.upstream is not None:
            self.upstream.abort()
        await self.write_log(event="tempfail", ref=ref, reply=reply, rule_id=rule_id,
                             reason="internal error")
        return replies.render(reply)

    async def write_log(self, *, event: str, ref: str, reply: Reply | None,
                        inspection: Inspection | None = None, rule_id: str | None = None,
                        reason: str | None = None, mail_from: str | None = None) -> None:
        # Never raises (RejectionLog.log): the client hears the reply whatever the disk does.
        envelope = self.gateway_envelope(mail_from)
        await self.ctx.rejection_log.log(
            event=event, ref=ref, envelope=envelope, reply=reply,
            inspection=inspection, rule_id=rule_id, reason=reason)
        if self.ctx.incidents is not None:  # only queued: never waits, never raises
            self.ctx.incidents.notice(event=event, ref=ref, envelope=envelope,
                                      verdict=inspection.verdict if inspection else None)

    async def refuse(self, reply: Reply, ref: str, *, rule_id: str | None, reason: str,
                     event: str = "reject", mail_from: str | None = None,
                     inspection: Inspection | None = None) -> str:
        """Log, count and render a refusal of the gateway's own. `mail_from`: the sender
        the client gave, for a refusal at MAIL FROM (it never joins the envelope)."""
        log.info("%s ref=%s client=%s from=<%s> action=%s rule=%s reply=%d %s reason=%s",
                 self.listener.name, ref, self.client_ip,
                 journal.value(self.gateway_envelope(mail_from).mail_from), event, rule_id,
                 reply.code,
                 reply.enhanced, reason)
        self.ctx.metrics.message(self.listener.direction, reply.code)
        if rule_id is not None:
            self.ctx.metrics.rule_hit(rule_id)
        await self.write_log(event=event, ref=ref, reply=reply, rule_id=rule_id,
                             reason=reason, mail_from=mail_from, inspection=inspection)
        return replies.render(reply)

    # -- commands -------------------------------------------------------------------------
    async def smtp_EHLO(self, hostname: str) -> None:
        self._raw_replies = True  # EHLO keyword lines take no enhanced code
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._raw_replies = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._raw_replies = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._raw_replies = False

    async def smtp_MAIL(self, arg: str | None) -> None:
        # The raw path is kept because aiosmtpd's parser drops source routes.
        self.raw_arg = arg or ""
        self._in_mail = True
        try:
            await super().smtp_MAIL(arg)
        finally:
            self._in_mail = False

    async def smtp_RCPT(self, arg: str | None) -> None:
        raw = arg or ""
        self.raw_arg = raw[3:] if raw[:3].upper() == "TO:" else raw
        await super().smtp_RCPT(arg)

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        # Checked in the order Postfix's smtpd checks (smtpd.c, xforward_cmd).
        if self._in_mail or (self.envelope is not None and self.envelope.mail_from is not None):
            await self.push(xforward.IN_TRANSACTION)
            return
        if not arg:
            await self.push(xforward.SYNTAX)
            return
        if not self.xforward_allowed:
            log.warning("%s client=%s XFORWARD refused: not in xforward_peers",
                        self.listener.name, self.connection_ip)
            await self.push(xforward.NOT_AUTHORIZED)
            return
        try:
            updates = xforward.parse(arg)
        except xforward.XforwardError as exc:
            await self.push(exc.reply)
            return
        forwarded = xforward.apply(self.forwarded, updates)
        if not self._count_as(forwarded.addr or "unknown"):
            await self.close_with(replies.too_many_connections(),
                                  "too many connections from the forwarded client")
            return
        self.forwarded = forwarded
        await self.push("250 2.0.0 Ok")

    async def smtp_PROXY(self, arg: str | None) -> None:
        # A PROXY header is read only before the greeting and only from a listener's
        # trusted balancers (_take_proxy_header). As a command it comes from anyone else,
        # or late: believing it would let any client choose its own address.
        await self.close_with(proxy_protocol.UNTRUSTED,
                              f"PROXY header from {self.peer_ip}, not a trusted balancer")

    async def on_mail(self, envelope: SmtpEnvelope, address: str,
                      options: list[str]) -> str:
        policy = self.ctx.policy
        config = policy.config
        sender = "" if address == "<>" else address
        refusal = relay_control.check_mail(
            direction=self.listener.direction, client_ip=self.client_ip, sender=sender,
            relay_networks=config.relay_networks, agency_domains=config.agency_domains)
        if refusal is not None:
            ref = pipeline.new_ref()
            return await self.refuse(refusal.reply(ref), ref, rule_id=refusal.rule_id,
                                     reason=refusal.reason, mail_from=sender)
        limit = policy.max_message_size
        for opt in options:
            key, _, value = opt.partition("=")
            if key == "SIZE" and value.isdigit() and int(value) > limit:
                ref = pipeline.new_ref()
                return await self.refuse(replies.size_exceeded(limit, ref), ref,
                                         rule_id=builtin.SIZE.id,
                                         reason=f"declared SIZE={value} over {limit}",
                                         mail_from=sender)
        self.txn_policy = policy
        self.upstream_failed = False
        target = config.upstream_target
        if target.kind == "smtp":
            try:
                up = await self.upstream_mail(policy, target, sender, options)
            except UpstreamUnavailable as exc:
                return await self.upstream_gone(exc, mail_from=sender)
            self.ctx.metrics.upstream_answered(up.code)
            if not up.ok:
                self.ctx.metrics.message(self.listener.direction, up.code)
                return up.render()
            status = up.render()
        else:
            status = replies.render(replies.accepted())
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return status

    async def upstream_mail(self, policy: PolicyState, target: Upstream, sender: str,
                            options: list[str]) -> UpstreamReply:
        limits = policy.config.limits
        key = (target.host, target.port, policy.config.hostname, policy.config.tls.upstream)
        if self.upstream is not None and self.upstream_key != key:
            await self.close_upstream()
        for _ in range(2):
            if self.upstream is None or self.upstream.closed:
                self.upstream = self.ctx.upstream_cache.take(key)
            reused = self.upstream is not None
            if self.upstream is None:
                self.upstream = await UpstreamSession.connect(
                    target.host, target.port, helo_name=policy.config.hostname,
                    connect_timeout=limits.upstream_connect_timeout,
                    timeout=limits.upstream_timeout, tls=policy.config.tls.upstream)
            self.upstream_target, self.upstream_key = target, key
            try:
                await self.upstream.xforward(self.xforward_attributes())
                reply = await self.upstream.mail(sender, self.forward_params(options))
            except UpstreamUnavailable:
                # A kept-open connection (this session's, or one another session left)
                # may have been closed by the upstream while idle: nothing of this
                # transaction was sent, so try one fresh connection before telling
                # the client.
                if not reused:
                    raise
                self.upstream = None
                continue
            if reply.code == 421 and reused:
                # An upstream closing a kept connection says so to the next command.
                self.upstream.abort()
                self.upstream = None
                continue
            return reply
        raise UpstreamUnavailable("a fresh upstream connection failed too")

    def forward_params(self, options: list[str]) -> list[str]:
        """MAIL parameters the upstream understands (it may not advertise every one)."""
        assert self.upstream is not None
        ext = self.upstream.extensions
        out = []
        for opt in options:
            key = opt.partition("=")[0]
            if (key == "SIZE" and "SIZE" in ext) or (key == "BODY" and "8BITMIME" in ext) \
                    or (key == "SMTPUTF8" and "SMTPUTF8" in ext):
                out.append(opt)
        return out

    async def upstream_gone(self, exc: Exception, ref: str | None = None,
                            mail_from: str | None = None) -> str:
        return replies.render((await self.upstream_refusal(exc, ref, mail_from))[0])

    async def upstream_refusal(self, exc: Exception, ref: str | None = None,
                               mail_from: str | None = None,
                               inspection: Inspection | None = None) -> tuple[Reply, str]:
        """The tempfail for an upstream that failed (451 4.4.1, or 4.7.5 for TLS), logged;
        (the reply, its rendering) so that every log line names the one the client got."""
        if not self.upstream_failed:
            self.ctx.metrics.upstream_failed(exc)
        self.upstream_failed = True
        if self.upstream is not None:
            self.upstream.abort()
        ref = ref or pipeline.new_ref()
        log.warning("%s ref=%s upstream unavailable: %s", self.listener.name, ref, exc)
        if isinstance(exc, UpstreamTlsFailed):
            reply, own, reason = (replies.upstream_tls_failed(ref), builtin.UPSTREAM_TLS,
                                  "upstream TLS failed")
        else:
            reply, own, reason = (replies.upstream_unavailable(ref),
                                  builtin.UPSTREAM_UNAVAILABLE, "upstream unavailable")
        status = await self.refuse(reply, ref, rule_id=own.id, reason=reason, event="tempfail",
                                   mail_from=mail_from, inspection=inspection)
        return reply, status

    async def on_rcpt(self, envelope: SmtpEnvelope, address: str) -> str:
        policy = self.txn_policy or self.ctx.policy
        config = policy.config
        refusal = relay_control.check_rcpt(
            direction=self.listener.direction, recipient=address, path=self.raw_arg,
            agency_domains=config.agency_domains)
        if refusal is not None:
            ref = pipeline.new_ref()
            return await self.refuse(refusal.reply(ref), ref, rule_id=refusal.rule_id,
                                     reason=refusal.reason)
        if len(envelope.rcpt_tos) >= config.limits.max_recipients:
            reply = replies.too_many_recipients(config.limits.max_recipients)
            log.info("%s client=%s from=<%s> action=tempfail rule=%s reply=%d %s "
                     "reason=recipient over the limit of %d", self.listener.name,
                     self.client_ip, journal.value(self.gateway_envelope().mail_from),
                     builtin.TOO_MANY_RECIPIENTS.id, reply.code, reply.enhanced,
                     config.limits.max_recipients)
            return replies.render(reply)
        if config.upstream_target.kind == "smtp":
            if self.upstream_failed or self.upstream is None or self.upstream.closed:
                return await self.upstream_gone(UpstreamUnavailable("lost before RCPT"))
            try:
                up = await self.upstream.rcpt(address)
            except UpstreamUnavailable as exc:
                return await self.upstream_gone(exc)
            self.ctx.metrics.upstream_answered(up.code)
            status = up.render()
            if not up.ok:
                self.ctx.metrics.message(self.listener.direction, up.code)
                return status
        else:
            status = replies.render(replies.accepted())
        envelope.rcpt_tos.append(address)
        return status

    async def end_upstream_transaction(self) -> None:
        self.txn_policy = None
        self.upstream_failed = False
        # XFORWARD attributes last one transaction (RSET, end of DATA, HELO/EHLO), as in
        # Postfix's smtpd (mail_reset): the next one speaks for itself.
        self.forwarded = None
        if self.upstream is not None and self.upstream.in_transaction:
            try:
                await self.upstream.rset()
            except UpstreamUnavailable:
                self.upstream.abort()

    async def close_upstream(self) -> None:
        """The client is done with the upstream (QUIT, or another next hop): keep the
        connection for another session when it can be reused, else QUIT it."""
        if self.upstream is not None:
            if self.upstream.reusable and not self.ctx.draining:
                self.give_back_upstream()
            else:
                await self.upstream.quit()
            self.upstream = None

    def give_back_upstream(self) -> None:
        assert self.upstream is not None
        cache = self.ctx.upstream_cache
        limits = self.ctx.policy.config.limits
        # A reload's settings apply from the next connection given back.
        cache.idle_time = limits.upstream_connection_cache_time
        cache.reuse_time = limits.upstream_connection_reuse_time
        cache.give_back(self.upstream_key, self.upstream)
        self.upstream = None

    # -- DATA -----------------------------------------------------------------------------
    def _unread(self, data: bytes) -> None:
        # StreamReader has no public unread; aiosmtpd itself works on _buffer (STARTTLS).
        buffer: bytearray = self._reader._buffer  # type: ignore[attr-defined]
        buffer[0:0] = data

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        policy = self.txn_policy or self.ctx.policy
        smtp_upstream = policy.config.upstream_target.kind == "smtp"
        if smtp_upstream and (self.upstream_failed or self.upstream is None
                              or self.upstream.closed):
            status = await self.upstream_gone(UpstreamUnavailable("lost before DATA"))
            await self.finish_transaction(status)
            return
        phase = DataPhase(DataSettings.of(
            policy.config.limits, ref=pipeline.new_ref(), max_size=policy.max_message_size,
            cut_through=smtp_upstream and cuts_through(policy, self.listener.direction),
            reader=None if self.ctx.pool is None else self.ctx.pool.read_on_arrival))
        self.in_data = True
        try:
            reply = await self.run_data(policy, phase)
        finally:
            # Whatever happened (refusal, client gone, cancellation): no message on disk.
            phase.close()
            self.in_data = False
            self.delivering = False
        if reply is not None:
            await self.finish_transaction(reply)

    async def finish_transaction(self, status: str) -> None:
        await self.end_upstream_transaction()
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)
        if self.ctx.draining and self.transport is not None:
            await self.shutdown()

    async def run_data(self, policy: PolicyState, phase: DataPhase) -> str | None:
        """Drive the DATA phase (gateway.frontends.smtp_session): perform each action,
        feed back what came of it. The reply for the client, or None when the session
        ends instead (the client too slow); raises ConnectionResetError when the client
        went away."""
        pending = collections.deque(phase.start())
        while pending:
            action = pending.popleft()
            if isinstance(action, OUTCOMES):
                return await self.data_outcome(policy, phase, action)
            event = await self.perform(policy, phase, action)
            if event is not None:
                pending = collections.deque(phase.handle(event))
        raise RuntimeError("the DATA phase ended without an outcome")

    async def perform(self, policy: PolicyState, phase: DataPhase, action: Action
                      ) -> Event | None:
        """One action of the DATA phase; the event it results in, if any."""
        if isinstance(action, ReadClient):
            return await self.read_client(action.timeout)
        if isinstance(action, ReplyClient):
            await self.push(action.status)
            return None
        if isinstance(action, Unread):
            # Pipelined commands after the final dot belong to the command loop.
            self._unread(action.data)
            return None
        if isinstance(action, AbortUpstream):
            if self.upstream is not None and not self.upstream.closed:
                log.info("%s ref=%s cut-through: upstream transaction aborted before its "
                         "final dot: %s", self.listener.name, phase.settings.ref, action.reason)
                self.upstream.discard()
            return None
        # Waiting on the upstream or on inspection, not on the client: the idle timer
        # must not cut the client off now (_timeout_cb), and starts afresh afterwards.
        self.delivering = True
        try:
            return await self.perform_own(policy, phase, action)
        finally:
            self.delivering = False
            self._reset_timeout()

    async def perform_own(self, policy: PolicyState, phase: DataPhase, action: Action
                          ) -> Event | None:
        if isinstance(action, DecideHeader):
            return HeaderDecided(await self.decide_header(policy, action.received,
                                                          phase.settings.ref))
        if isinstance(action, Inspect):
            return InspectionDone(await inspect_spooled(
                policy, phase.spool, self.gateway_envelope(), phase.settings.ref,
                self.ctx.metrics, log, self.listener.name, pool=self.ctx.pool,
                auth=action.auth))
        upstream = self.upstream
        if upstream is None:
            return UpstreamFailed(UpstreamUnavailable("no upstream connection"))
        try:
            if isinstance(action, UpstreamSend):
                await upstream.send_data(action.wire)
                return None
            if isinstance(action, UpstreamData):
                return UpstreamReplied(await upstream.begin_data())
            assert isinstance(action, UpstreamFinish), action
            started = time.monotonic()
            reply = await upstream.end_data(action.tail)
            self.ctx.metrics.relay_time(time.monotonic() - started)
            return UpstreamReplied(reply)
        except (UpstreamUnavailable, OSError) as exc:
            return UpstreamFailed(exc)

    async def read_client(self, timeout: float) -> Event:
        """The next bytes of DATA, waiting at most `timeout` seconds (the DATA clock)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout):
                chunk = await self._reader.read(READ_CHUNK)
        except TimeoutError:
            return ClientSilent(loop.time() - started)
        if not chunk:
            return ClientGone()
        self._reset_timeout()
        return ClientData(chunk, loop.time() - started)

    async def decide_header(self, policy: PolicyState, received: bytes, ref: str
                            ) -> pipeline.HeaderDecision | None:
        """The header block's changes for cut-through; None (stored and forwarded) when
        they cannot be decided in time. Off the loop only when a sender_auth condition
        may query DNS: otherwise it is a few microseconds of header parsing."""
        env = self.gateway_envelope()
        try:
            if not policy.rules.change_plan.reads_auth(env.direction):
                return pipeline.decide_header(policy, received, env)
            return await asyncio.wait_for(
                asyncio.to_thread(pipeline.decide_header, policy, received, env),
                policy.config.limits.inspection_timeout)
        except TimeoutError:
            log.warning("%s ref=%s cut-through: header changes not decided within "
                        "inspection_timeout; message stored and forwarded",
                        self.listener.name, ref)
        except BodyNeeded:
            log.info("%s ref=%s cut-through: sender authentication of a DKIM- or "
                     "ARC-signed message needs its body; message stored and forwarded",
                     self.listener.name, ref)
        except Exception:
            log.exception("%s ref=%s cut-through: header changes not decided; message "
                          "stored and forwarded", self.listener.name, ref)
        return None

    async def data_outcome(self, policy: PolicyState, phase: DataPhase, outcome: Outcome
                           ) -> str | None:
        """What the DATA phase came to: logged, counted, and the reply for the client."""
        ref = phase.settings.ref
        if isinstance(outcome, ClientLost):
            raise ConnectionResetError("client closed the connection during DATA")
        if isinstance(outcome, TooSlow):
            await self.close_with(replies.data_too_slow(), outcome.reason,
                                  builtin.DATA_TOO_SLOW.id)
            return None
        self.delivering = True
        if phase.fallback is not None:
            log.info("%s ref=%s cut-through: message stored and forwarded instead: %s",
                     self.listener.name, ref, phase.fallback)
        if isinstance(outcome, Refuse):
            return await self.refuse(outcome.reply, ref, rule_id=outcome.rule_id,
                                     reason=outcome.reason, event=outcome.event)
        if isinstance(outcome, UpstreamLost):
            inspection = outcome.inspection
            return (await self.upstream_refusal(
                outcome.error, ref, inspection=inspection if isinstance(
                    inspection, Inspection) else None))[1]
        if isinstance(outcome, UpstreamRefused):
            up = outcome.reply
            self.ctx.metrics.upstream_answered(up.code)
            self.ctx.metrics.message(self.listener.direction, up.code)
            self.log_outcome(ref, self.gateway_envelope(), 0, "upstream-refused-data", None,
                             _reply_of(up))
            return up.render()
        assert isinstance(outcome.inspection, Inspection), outcome
        inspection = outcome.inspection
        if isinstance(outcome, Decline):
            return await self.declined(inspection, ref)
        if isinstance(outcome, Mismatch):
            sent = outcome.decision
            log.error("%s ref=%s cut-through: BUG: the verdict's header changes differ from "
                      "those relayed (relayed tags=%r fields=%r trace=%d removed=%r; verdict "
                      "tags=%r fields=%r trace=%d removed=%r); not completed upstream",
                      self.listener.name, ref, sent.subject_tags, sent.added_headers,
                      len(sent.trace_headers), sent.removed_headers,
                      inspection.verdict.subject_tags, inspection.verdict.added_headers,
                      len(inspection.trace_headers), inspection.removed_headers)
            return await self.refuse(replies.internal_error(ref), ref,
                                     rule_id=builtin.INTERNAL_ERROR.id,
                                     reason="internal error: cut-through header mismatch",
                                     event="tempfail", inspection=inspection)
        if isinstance(outcome, Relayed):
            self.ctx.metrics.upstream_answered(outcome.reply.code)
            return await self.relayed(inspection, ref, _reply_of(outcome.reply),
                                      outcome.reply.render())
        assert isinstance(outcome, StoreAndForward), outcome
        return await self.deliver(policy, inspection, ref, begun=outcome.begun)

    async def declined(self, inspection: Inspection, ref: str) -> str:
        """The rules refused the message (reject or tempfail)."""
        assert inspection.reply is not None
        env = self.gateway_envelope()
        verdict = inspection.verdict
        self.ctx.metrics.message(env.direction, inspection.reply.code)
        event = verdict.event or "reject"
        self.log_outcome(ref, env, inspection.view.size, event, verdict.rule_id,
                         inspection.reply)
        await self.write_log(event=event, ref=ref, reply=inspection.reply,
                             inspection=inspection)
        return replies.render(inspection.reply)

    async def deliver(self, policy: PolicyState, inspection: Inspection, ref: str, *,
                      begun: bool = False) -> str:
        """Relay an accepted message now (store and forward); the reply for the client.
        `begun`: the upstream already answered 354 (a cut-through that fell back)."""
        assert inspection.relay_message is not None
        started = time.monotonic()
        reply, status, own = await self.relay(policy, inspection.relay_message, ref,
                                              inspection, begun=begun)
        self.ctx.metrics.relay_time(time.monotonic() - started)
        if own:
            # The gateway's own tempfail (upstream gone, Maildir not written): refuse()
            # has logged it, counted it and written its one record.
            return status
        return await self.relayed(inspection, ref, reply, status)

    async def relayed(self, inspection: Inspection, ref: str, reply: Reply, status: str
                      ) -> str:
        """The next hop's (or the Maildir's) answer to an accepted message: logged."""
        env = self.gateway_envelope()
        verdict = inspection.verdict
        self.ctx.metrics.message(env.direction, reply.code)
        noted = verdict.event
        self.log_outcome(ref, env, inspection.view.size,
                         "relay" if noted is None else f"relay+{noted}", verdict.rule_id, reply)
        if noted is not None:
            await self.write_log(event=noted, ref=ref, reply=reply, inspection=inspection)
        return status

    async def relay(self, policy: PolicyState, message: Relay, ref: str,
                    inspection: Inspection | None = None, *, begun: bool = False
                    ) -> tuple[Reply, str, bool]:
        """(the reply, its rendering, whether it is the gateway's own refusal, logged).
        `begun`: DATA was already sent and answered 354."""
        target = policy.config.upstream_target
        if target.kind == "smtp":
            assert self.upstream is not None
            try:
                # The new header block, then the rest from memory or the spool file.
                up = await self.upstream.data_stream(message.chunks(), begin=not begun)
            except (UpstreamUnavailable, OSError) as exc:
                reply, status = await self.upstream_refusal(exc, ref, inspection=inspection)
                return reply, status, True
            self.ctx.metrics.upstream_answered(up.code)
            return _reply_of(up), up.render(), False
        try:
            await asyncio.to_thread(maildir.deliver, target.path, await message.read())
        except OSError:
            log.exception("%s ref=%s maildir delivery failed", self.listener.name, ref)
            reply = replies.internal_error(ref)
            status = await self.refuse(reply, ref, rule_id=builtin.INTERNAL_ERROR.id,
                                       reason="internal error: maildir delivery failed",
                                       event="tempfail", inspection=inspection)
            return reply, status, True
        reply = replies.accepted(f"ref={ref}")
        return reply, replies.render(reply), False

    def log_outcome(self, ref: str, env: Envelope, size: int, action: str,
                    rule_id: str | None, reply: Reply) -> None:
        log.info("%s ref=%s client=%s from=<%s> rcpt=%d size=%d action=%s rule=%s reply=%d %s",
                 self.listener.name, ref, env.client_ip, journal.value(env.mail_from),
                 len(env.rcpt_to),
                 size, action, rule_id or "-", reply.code, reply.enhanced or "-")
