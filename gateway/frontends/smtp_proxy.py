"""The SMTP proxy front end: an aiosmtpd server in lockstep with the relay.

Per connection, MAIL and RCPT pass relay control (`gateway.policy.relay_control`)
and then go to the upstream as they arrive, so the client hears the upstream's
own answers. DATA is read by our own bounded, chunked reader (aiosmtpd's reads
line by line into a list and has no drain-then-refuse for oversize mail), the
message is inspected in a worker thread with a deadline, and only then relayed:
250 comes only after the upstream's 250 or an fsynced Maildir file. Every
failure of our own is 451 4.3.0 with a ref, never exception text.

Hostile clients meet bounds here (`limits:`): connections overall and per client
IP, commands and bad commands per session, command line length (aiosmtpd's 512
plus extensions: longer is 500 5.5.2), idle time (421 4.4.2). DATA lines may be
longer than RFC 5321's 1000 octets (real mail has them); memory stays bounded
because the message is spooled to disk above `limits.spool_threshold`. The DATA
stream itself (end of data, bare newlines, spool) is `gateway.frontends.datastream`.
STARTTLS is offered when `gateway.tls.server_context` gives a context; plaintext
pipelined behind STARTTLS is discarded by aiosmtpd when the handshake completes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from gateway import pipeline, tls
from gateway.config import Listener, Upstream
from gateway.envelope import Envelope
from gateway.frontends.datastream import DataDecoder, Spool
from gateway.frontends.inspection import NotInspected, inspect_spooled
from gateway.observe.metrics import Metrics
from gateway.observe.rejection_log import RejectionLog
from gateway.pipeline import Inspection
from gateway.policy import relay_control, replies
from gateway.policy.verdict import Reply
from gateway.policy_state import PolicyState
from gateway.relay import maildir
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
_SIMPLE_REPLY = re.compile(r"^(\d{3}) (.*)$", re.DOTALL)
# RFC 3463 codes for the replies aiosmtpd writes itself (syntax errors, RSET, QUIT...).
_DEFAULT_ENHANCED = {221: "2.0.0", 250: "2.0.0", 252: "2.0.0", 421: "4.3.0", 451: "4.3.0",
                     500: "5.5.2", 501: "5.5.4", 502: "5.5.1", 503: "5.5.1", 504: "5.5.4",
                     530: "5.7.0", 552: "5.3.4", 553: "5.1.3", 554: "5.7.0", 555: "5.5.4"}


def with_enhanced(status: str) -> str:
    """Add an RFC 3463 code to a one-line reply lacking one (we advertise ENHANCEDSTATUSCODES)."""
    if "\r\n" in status or _HAS_ENHANCED.match(status):
        return status
    m = _SIMPLE_REPLY.match(status)
    if m is None:
        return status
    enhanced = _DEFAULT_ENHANCED.get(int(m.group(1)))
    return f"{m.group(1)} {enhanced} {m.group(2)}" if enhanced else status


@dataclass
class ProxyContext:
    """What every session shares. `policy` is the one reference a reload swaps."""

    policy: PolicyState
    rejection_log: RejectionLog
    draining: bool = False
    sessions: set[ProxySMTP] = field(default_factory=set)
    per_ip: collections.Counter[str] = field(default_factory=collections.Counter)
    metrics: Metrics = field(default_factory=Metrics)


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
        self.upstream_failed = False
        self.raw_arg = ""
        self.in_data = False
        self._in_mail = False
        self._raw_replies = False
        self.delivering = False
        self.commands = 0
        self.bad_commands = 0
        self._counted_ip: str | None = None
        # Set when the connection must be refused (421) instead of greeted.
        self._refusal: Reply | None = None
        policy = ctx.policy
        context, require = self._tls_settings(policy)
        super().__init__(HANDLER, data_size_limit=None, enable_SMTPUTF8=True,
                         decode_data=False, hostname=policy.config.hostname, ident="ESMTP",
                         timeout=policy.config.limits.session_timeout,
                         tls_context=context, require_starttls=require)
        missing = REQUIRED_HOOKS - set(self._handle_hooks)
        if missing:
            raise RuntimeError(f"aiosmtpd hooks not found: {', '.join(sorted(missing))}")
        self._smtp_methods = {name: self._budgeted(method)
                              for name, method in self._smtp_methods.items()}

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
                await self.close_with(replies.too_many_commands(), "too many commands")
                return
            await method(arg)
        return run

    async def close_with(self, reply: Reply, why: str) -> None:
        """Tell the client why (a 421) and hang up."""
        log.warning("%s client=%s closed: %s", self.listener.name, self.client_ip, why)
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
        if ip == "unknown":
            # A unix-socket client (a local MTA) has no address to count per IP.
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

    def connection_lost(self, error: Exception | None) -> None:
        self.ctx.sessions.discard(self)
        if self._counted_ip is not None:
            ip, self._counted_ip = self._counted_ip, None
            self.ctx.per_ip[ip] -= 1
            if self.ctx.per_ip[ip] <= 0:
                del self.ctx.per_ip[ip]
        if self.upstream is not None:
            self.upstream.abort()
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            # Refused before the greeting: one 421 and the connection is closed.
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.push(replies.render(self._refusal))
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def _timeout_cb(self) -> None:
        if self.delivering:
            # Inspection and relay have deadlines of their own; cutting the client off
            # now could make it retry a message the upstream has already taken.
            self._reset_timeout()
            return
        if self.transport is None:
            return
        log.info("%s client=%s idle timeout", self.listener.name, self.client_ip)
        if not self.transport.is_closing():
            # Written without waiting: close() still sends what is buffered.
            self._writer.write(replies.render(replies.idle_timeout()).encode() + b"\r\n")
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    @property
    def busy(self) -> bool:
        """In a transaction: a drain lets it finish instead of cutting it off."""
        return self._in_mail or self.in_data or (
            self.envelope is not None and self.envelope.mail_from is not None)

    async def shutdown(self) -> None:
        """Tell an idle client we are going away (421) and close."""
        if self.transport is None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.push(replies.render(replies.shutting_down()))
        if self.transport is not None:
            self.transport.close()

    @property
    def client_ip(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    @property
    def helo(self) -> str:
        return (self.session.host_name if self.session is not None else None) or ""

    def gateway_envelope(self) -> Envelope:
        env = self.envelope
        mail_from = env.mail_from if env is not None and env.mail_from else ""
        return Envelope(direction=self.listener.direction, listener=self.listener.name,
                        client_ip=self.client_ip, helo=self.helo,
                        mail_from="" if mail_from == "<>" else mail_from,
                        rcpt_to=tuple(env.rcpt_tos) if env is not None else ())

    # -- replies and logging --------------------------------------------------------------
    async def push(self, status: Any) -> None:
        if isinstance(status, str) and not self._raw_replies:
            status = with_enhanced(status)
        await super().push(status)
        if isinstance(status, str) and status[:3] in _BAD_COMMAND_CODES:
            self.bad_commands += 1
            if self.bad_commands >= self.ctx.policy.config.limits.max_bad_commands:
                await self.close_with(replies.too_many_bad_commands(), "too many bad commands")

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected failure: 451 4.3.0 with a ref; the traceback goes to our log only."""
        ref = pipeline.new_ref()
        log.error("%s ref=%s internal error", self.listener.name, ref, exc_info=error)
        reply = replies.internal_error(ref)
        self.ctx.metrics.message(self.listener.direction, reply.code)
        if self.upstream is not None:
            self.upstream.abort()
        try:
            await self.write_log(event="tempfail", ref=ref, reply=reply, rule_id=None,
                                 reason="internal error")
        except Exception:
            log.exception("rejection log write failed ref=%s", ref)
        return replies.render(reply)

    async def write_log(self, *, event: str, ref: str, reply: Reply | None,
                        inspection: Inspection | None = None, rule_id: str | None = None,
                        reason: str | None = None) -> None:
        await self.ctx.rejection_log.log(
            event=event, ref=ref, envelope=self.gateway_envelope(), reply=reply,
            inspection=inspection, rule_id=rule_id, reason=reason)

    async def refuse(self, reply: Reply, ref: str, *, rule_id: str | None, reason: str,
                     event: str = "reject") -> str:
        log.info("%s ref=%s client=%s from=<%s> action=%s rule=%s reply=%d %s reason=%s",
                 self.listener.name, ref, self.client_ip, self.gateway_envelope().mail_from,
                 event, rule_id, reply.code, reply.enhanced, reason)
        self.ctx.metrics.message(self.listener.direction, reply.code)
        if rule_id is not None:
            self.ctx.metrics.rule_hit(rule_id)
        await self.write_log(event=event, ref=ref, reply=reply, rule_id=rule_id,
                             reason=reason)
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
                                     reason=refusal.reason)
        limit = policy.max_message_size
        for opt in options:
            key, _, value = opt.partition("=")
            if key == "SIZE" and value.isdigit() and int(value) > limit:
                ref = pipeline.new_ref()
                return await self.refuse(replies.size_exceeded(limit, ref), ref,
                                         rule_id="saiz-maksimum",
                                         reason=f"declared SIZE={value} over {limit}")
        self.txn_policy = policy
        self.upstream_failed = False
        target = config.upstream_target
        if target.kind == "smtp":
            try:
                up = await self.upstream_mail(policy, target, sender, options)
            except UpstreamUnavailable as exc:
                return await self.upstream_gone(exc)
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
        if self.upstream is not None and self.upstream_target != target:
            await self.close_upstream()
        for _ in range(2):
            reused = self.upstream is not None and not self.upstream.closed
            if self.upstream is None or self.upstream.closed:
                self.upstream = await UpstreamSession.connect(
                    target.host, target.port, helo_name=policy.config.hostname,
                    connect_timeout=limits.upstream_connect_timeout,
                    timeout=limits.upstream_timeout, tls=policy.config.tls.upstream)
                self.upstream_target = target
            try:
                return await self.upstream.mail(sender, self.forward_params(options))
            except UpstreamUnavailable:
                # A kept-open connection may have been closed by the upstream while
                # idle: try one fresh connection before telling the client.
                if not reused:
                    raise
        raise UpstreamUnavailable("unreachable")  # pragma: no cover - loop always returns

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

    async def upstream_gone(self, exc: Exception, ref: str | None = None) -> str:
        if not self.upstream_failed:
            self.ctx.metrics.upstream_failed(exc)
        self.upstream_failed = True
        if self.upstream is not None:
            self.upstream.abort()
        ref = ref or pipeline.new_ref()
        log.warning("%s ref=%s upstream unavailable: %s", self.listener.name, ref, exc)
        if isinstance(exc, UpstreamTlsFailed):
            return await self.refuse(replies.upstream_tls_failed(ref), ref, rule_id=None,
                                     reason="upstream TLS failed", event="tempfail")
        return await self.refuse(replies.upstream_unavailable(ref), ref, rule_id=None,
                                 reason="upstream unavailable", event="tempfail")

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
            return replies.render(replies.too_many_recipients(config.limits.max_recipients))
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
        if self.upstream is not None and self.upstream.in_transaction:
            try:
                await self.upstream.rset()
            except UpstreamUnavailable:
                self.upstream.abort()

    async def close_upstream(self) -> None:
        if self.upstream is not None:
            await self.upstream.quit()
            self.upstream = None

    # -- DATA -----------------------------------------------------------------------------
    async def read_data(self, decoder: DataDecoder) -> None:
        while True:
            chunk = await self._reader.read(READ_CHUNK)
            if not chunk:
                raise ConnectionResetError("client closed the connection during DATA")
            self._reset_timeout()
            rest = decoder.feed(chunk)
            if rest is not None:
                if rest:
                    # Pipelined commands after the final dot belong to the command loop.
                    self._unread(rest)
                return

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
        limits = policy.config.limits
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self.in_data = True
        decoder = DataDecoder(policy.max_message_size, bare_newlines=limits.bare_newlines,
                              spool=Spool(limits.spool_threshold, limits.spool_dir))
        try:
            await self.read_data(decoder)
            self.delivering = True
            status = await self.deliver(policy, decoder)
        finally:
            # Whatever happened (refusal, client gone, cancellation): no message on disk.
            decoder.spool.close()
            self.in_data = False
            self.delivering = False
        await self.finish_transaction(status)

    async def finish_transaction(self, status: str) -> None:
        await self.end_upstream_transaction()
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)
        if self.ctx.draining and self.transport is not None:
            await self.shutdown()

    async def deliver(self, policy: PolicyState, decoder: DataDecoder) -> str:
        """Inspect the message and relay it; the reply for the client."""
        ref = pipeline.new_ref()
        limit = policy.max_message_size
        if decoder.too_big:
            return await self.refuse(replies.size_exceeded(limit, ref), ref,
                                     rule_id="saiz-maksimum",
                                     reason=f"message of {decoder.size} bytes over {limit}")
        if decoder.bare is not None and decoder.bare_newlines == "reject":
            return await self.refuse(replies.bare_newline(ref), ref, rule_id="baris-tidak-sah",
                                     reason=f"{decoder.bare} in DATA")
        spool = decoder.spool
        env = self.gateway_envelope()
        inspection = await inspect_spooled(policy, spool, env, ref, self.ctx.metrics, log,
                                           self.listener.name)
        if isinstance(inspection, NotInspected):
            return await self.refuse(inspection.reply, ref, rule_id=None,
                                     reason=inspection.reason, event="tempfail")
        raw = inspection.view.raw
        verdict = inspection.verdict
        if inspection.reply is not None:
            self.ctx.metrics.message(env.direction, inspection.reply.code)
            event = verdict.event or "reject"
            self.log_outcome(ref, env, len(raw), event, verdict.rule_id, inspection.reply)
            await self.write_log(event=event, ref=ref, reply=inspection.reply,
                                 inspection=inspection)
            return replies.render(inspection.reply)
        assert inspection.relay_bytes is not None
        # Unchanged by transforms: relay the spooled copy rather than a second one in memory.
        source = spool if spool.spooled and inspection.relay_bytes is raw else None
        started = time.monotonic()
        reply, status = await self.relay(policy, inspection.relay_bytes, ref, source)
        self.ctx.metrics.relay_time(time.monotonic() - started)
        if not self.upstream_failed:  # else upstream_gone counted the tempfail
            self.ctx.metrics.message(env.direction, reply.code)
        noted = verdict.event
        self.log_outcome(ref, env, len(raw), "relay" if noted is None else f"relay+{noted}",
                         verdict.rule_id, reply)
        if noted is not None:
            await self.write_log(event=noted, ref=ref, reply=reply, inspection=inspection)
        return status

    async def relay(self, policy: PolicyState, message: bytes, ref: str,
                    spool: Spool | None = None) -> tuple[Reply, str]:
        target = policy.config.upstream_target
        if target.kind == "smtp":
            assert self.upstream is not None
            try:
                up = await self.upstream.data_stream(
                    spool.chunks() if spool is not None else _pieces(message))
            except (UpstreamUnavailable, OSError) as exc:
                gone = await self.upstream_gone(exc, ref)
                return replies.upstream_unavailable(ref), gone
            self.ctx.metrics.upstream_answered(up.code)
            return _reply_of(up), up.render()
        try:
            await asyncio.to_thread(maildir.deliver, target.path, message)
        except OSError:
            log.exception("%s ref=%s maildir delivery failed", self.listener.name, ref)
            reply = replies.internal_error(ref)
            await self.write_log(event="tempfail", ref=ref, reply=reply, rule_id=None,
                                 reason="internal error")
            return reply, replies.render(reply)
        reply = replies.accepted(f"ref={ref}")
        return reply, replies.render(reply)

    def log_outcome(self, ref: str, env: Envelope, size: int, action: str,
                    rule_id: str | None, reply: Reply) -> None:
        log.info("%s ref=%s client=%s from=<%s> rcpt=%d size=%d action=%s rule=%s reply=%d %s",
                 self.listener.name, ref, env.client_ip, env.mail_from, len(env.rcpt_to),
                 size, action, rule_id or "-", reply.code, reply.enhanced or "-")
