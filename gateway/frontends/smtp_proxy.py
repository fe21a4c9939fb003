"""The SMTP proxy front end: an aiosmtpd server in lockstep with the relay.

Per connection, MAIL and RCPT pass relay control (`gateway.policy.relay_control`)
and then go to the upstream as they arrive, so the client hears the upstream's
own answers. DATA is read by our own bounded, chunked reader (aiosmtpd's reads
line by line into a list and has no drain-then-refuse for oversize mail), the
message is inspected in a worker thread with a deadline, and only then relayed:
250 comes only after the upstream's 250 or an fsynced Maildir file. Every
failure of our own is 451 4.3.0 with a ref, never exception text.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from gateway import pipeline
from gateway.config import Listener, Upstream
from gateway.envelope import Envelope
from gateway.observe.rejection_log import RejectionLog, build_record
from gateway.pipeline import Inspection
from gateway.policy import relay_control, replies
from gateway.policy.verdict import Reply
from gateway.policy_state import PolicyState
from gateway.relay import maildir
from gateway.relay.smtp import UpstreamReply, UpstreamSession, UpstreamUnavailable

log = logging.getLogger("gateway.smtp")

# aiosmtpd finds hooks by name: a misspelt one would silently fall back to defaults.
REQUIRED_HOOKS = frozenset({"EHLO", "HELO", "MAIL", "RCPT", "RSET", "QUIT"})
READ_CHUNK = 64 * 1024
# Room for SIZE=, BODY= and SMTPUTF8 on top of RFC 5321's 512 octets.
MAIL_LINE_LIMIT = 1024
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


class DataDecoder:
    """The DATA stream -> message bytes: ends only at CRLF.CRLF, undoes dot-stuffing.

    Sans-io and bounded: once the message passes `limit`, the bytes are dropped and
    only counted, so an oversize message is drained in constant memory and refused
    at the end, as RFC 5321 4.2.5 implies.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.too_big = False
        self.done = False
        self._out = bytearray()
        self._pending = b""
        self._bol = True  # the DATA stream starts at the beginning of a line

    def _emit(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.too_big:
            return
        if self.size > self.limit:
            self.too_big = True
            self._out = bytearray()
            return
        self._out += piece

    def feed(self, chunk: bytes) -> bytes | None:
        """Consume wire bytes. Once the end is seen, returns what followed it (maybe b'')."""
        buf = self._pending + chunk if self._pending else chunk
        self._pending = b""
        i, n = 0, len(buf)
        while True:
            if self._bol:
                if i >= n:
                    return None
                if buf[i] == 0x2E:  # '.' at the start of a line
                    if n - i < 2 or (buf[i + 1] == 0x0D and n - i < 3):
                        self._pending = buf[i:]
                        return None
                    if buf[i + 1] == 0x0D and buf[i + 2] == 0x0A:
                        self.done = True
                        return buf[i + 3:]
                    i += 1  # a stuffed dot
                self._bol = False
            j = buf.find(b"\r\n.", i)
            if j < 0:
                if n - i >= 2 and buf[n - 2] == 0x0D and buf[n - 1] == 0x0A:
                    self._emit(buf[i:n])
                    self._bol = True
                elif n > i and buf[n - 1] == 0x0D:
                    # A CR at the end may begin the CRLF of a line that starts with '.'.
                    self._emit(buf[i:n - 1])
                    self._pending = b"\r"
                else:
                    self._emit(buf[i:n])
                return None
            self._emit(buf[i:j + 2])
            i = j + 2
            self._bol = True

    def message(self) -> bytes:
        data = bytes(self._out)
        self._out = bytearray()
        return data


@dataclass
class ProxyContext:
    """What every session shares. `policy` is the one reference a reload swaps."""

    policy: PolicyState
    rejection_log: RejectionLog
    draining: bool = False
    sessions: set[ProxySMTP] = field(default_factory=set)


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
        return [f"250-{server.hostname}",
                f"250-SIZE {server.ctx.policy.max_message_size}",
                "250-8BITMIME",
                "250-PIPELINING",
                "250-ENHANCEDSTATUSCODES",
                "250 SMTPUTF8"]

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
        policy = ctx.policy
        super().__init__(HANDLER, data_size_limit=None, enable_SMTPUTF8=True,
                         decode_data=False, hostname=policy.config.hostname, ident="ESMTP",
                         timeout=policy.config.limits.session_timeout)
        missing = REQUIRED_HOOKS - set(self._handle_hooks)
        if missing:
            raise RuntimeError(f"aiosmtpd hooks not found: {', '.join(sorted(missing))}")

    # -- connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.ctx.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.ctx.sessions.discard(self)
        if self.upstream is not None:
            self.upstream.abort()
        super().connection_lost(error)

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

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected failure: 451 4.3.0 with a ref; the traceback goes to our log only."""
        ref = pipeline.new_ref()
        log.error("%s ref=%s internal error", self.listener.name, ref, exc_info=error)
        reply = replies.internal_error(ref)
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
        record = build_record(
            event=event, ref=ref, envelope=self.gateway_envelope(),
            view=inspection.view if inspection is not None else None,
            verdict=inspection.verdict if inspection is not None else None,
            reply=reply, rule_id=rule_id, reason=reason)
        await asyncio.to_thread(self.ctx.rejection_log.write, record)

    async def refuse(self, reply: Reply, ref: str, *, rule_id: str | None, reason: str,
                     event: str = "reject") -> str:
        log.info("%s ref=%s client=%s from=<%s> action=%s rule=%s reply=%d %s reason=%s",
                 self.listener.name, ref, self.client_ip, self.gateway_envelope().mail_from,
                 event, rule_id, reply.code, reply.enhanced, reason)
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
            if not up.ok:
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
                    timeout=limits.upstream_timeout)
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
        self.upstream_failed = True
        if self.upstream is not None:
            self.upstream.abort()
        ref = ref or pipeline.new_ref()
        log.warning("%s ref=%s upstream unavailable: %s", self.listener.name, ref, exc)
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
            status = up.render()
            if not up.ok:
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
    async def read_data(self, limit: int) -> DataDecoder:
        decoder = DataDecoder(limit)
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
                return decoder

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
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self.in_data = True
        try:
            decoder = await self.read_data(policy.max_message_size)
            status = await self.deliver(policy, decoder)
        finally:
            self.in_data = False
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
        raw = decoder.message()
        env = self.gateway_envelope()
        timeout = policy.config.limits.inspection_timeout
        try:
            inspection = await asyncio.wait_for(
                asyncio.to_thread(pipeline.inspect, policy, raw, env, ref), timeout)
        except TimeoutError:
            return await self.refuse(replies.not_inspectable(ref), ref, rule_id=None,
                                     reason="inspection timeout", event="tempfail")
        except Exception:
            log.exception("%s ref=%s inspection failed", self.listener.name, ref)
            return await self.refuse(replies.internal_error(ref), ref, rule_id=None,
                                     reason="internal error", event="tempfail")
        verdict = inspection.verdict
        if inspection.reply is not None:
            event = verdict.event or "reject"
            self.log_outcome(ref, env, len(raw), event, verdict.rule_id, inspection.reply)
            await self.write_log(event=event, ref=ref, reply=inspection.reply,
                                 inspection=inspection)
            return replies.render(inspection.reply)
        assert inspection.relay_bytes is not None
        reply, status = await self.relay(policy, inspection.relay_bytes, ref)
        noted = verdict.event
        self.log_outcome(ref, env, len(raw), "relay" if noted is None else f"relay+{noted}",
                         verdict.rule_id, reply)
        if noted is not None:
            await self.write_log(event=noted, ref=ref, reply=reply, inspection=inspection)
        return status

    async def relay(self, policy: PolicyState, message: bytes, ref: str) -> tuple[Reply, str]:
        target = policy.config.upstream_target
        if target.kind == "smtp":
            assert self.upstream is not None
            try:
                up = await self.upstream.data(message)
            except UpstreamUnavailable as exc:
                gone = await self.upstream_gone(exc, ref)
                return replies.upstream_unavailable(ref), gone
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
