"""The milter front end: one asyncio server per `mode: milter` listener, glue only.

The MTA (Postfix `smtpd_milters`) keeps the SMTP session and the queue; this end
hears the transaction as milter commands (`gateway.frontends.milter.protocol`)
and answers with the same decisions the proxy makes, from the same code: relay
control at MAIL and RCPT (`gateway.policy.relay_control`), the message through
`gateway.pipeline.inspect` in a worker thread with the inspection deadline, the
reply text from `gateway.policy.replies`, the log line from
`gateway.observe.rejection_log.RejectionLog.log`.

The message is rebuilt from the header events (in order, `name: value`, CRLF)
and the body chunks, and kept in a `Spool` (memory up to
`limits.spool_threshold`, then a private temporary file); beyond the maximum
message size it is dropped and refused with 552 5.3.4 at once. The header events
are bounded too: past `limits.max_header_bytes` for the header block (one field
included) nothing more is kept and the message is refused with 552 5.3.4
(`pengepala-terlalu-besar`) at the end of the headers, the first point where a
reply is due (we ask for no reply to each header). Macros are bounded by the codec
per packet and per value, and here in all per connection (`p.MAX_MACRO_PAYLOAD`):
past that the connection is dropped as a protocol error.

Direction per message: the listener's, unless the MTA's macros say otherwise:
  1. `{daemon_name}` equal to the name of a configured listener: that listener's
     direction (Postfix: `-o milter_macro_daemon_name=outbound` in master.cf);
  2. `{daemon_name}` = ORIGINATING (Postfix's usual name for submission): outbound;
  3. `{auth_authen}` set (the client logged in with SMTP AUTH): outbound;
  4. the client address in `relay_networks`: outbound;
  5. otherwise the listener's direction.

A verdict maps to milter replies: reject/tempfail -> SMFIR_REPLYCODE with the
multi-line bilingual text; accept -> SMFIR_CHGHEADER with an empty value deleting
each forged Authentication-Results field (RFC 8601 5: one claiming our `hostname`),
SMFIR_CHGHEADER Subject for tags, SMFIR_INSHEADER at index 0 (the very top) for our
own Authentication-Results and SMFIR_ADDHEADER for the rules' added fields, then
SMFIR_CONTINUE. Any failure of our own
answers 451 4.3.0 (or a bare SMFIR_TEMPFAIL when no reply can be composed), and a
broken connection leaves the MTA to its `milter_default_action` (tempfail).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from gateway import pipeline
from gateway.config import Listener
from gateway.envelope import Direction, Envelope
from gateway.frontends.datastream import Spool
from gateway.frontends.inspection import Inspection, NotInspected, inspect_spooled
from gateway.frontends.milter import protocol as p
from gateway.frontends.smtp_proxy import ProxyContext
from gateway.observe import journal
from gateway.policy import builtin, relay_control, replies
from gateway.policy.verdict import Reply
from gateway.policy_state import PolicyState
from gateway.transforms.headers import render_field
from gateway.transforms.subject_tag import tagged_subject

log = logging.getLogger("gateway.milter")

READ_SIZE = 64 * 1024
ORIGINATING = "ORIGINATING"


def _macro_name(name: str) -> str:
    # Sendmail sends `{daemon_name}` and `j`; some MTAs leave out the braces.
    return name[1:-1] if name.startswith("{") and name.endswith("}") else name


def _path(args: tuple[str, ...]) -> tuple[str, str]:
    """(address without brackets, the path as written) of a MAIL/RCPT argument list."""
    raw = args[0] if args else ""
    inner = raw.strip()
    if inner.startswith("<") and inner.endswith(">"):
        inner = inner[1:-1]
    return inner, raw


def _field_value(name: str, value: str) -> str:
    """A field value as the proxy writes it (cleaned, encoded words, folded), LF-folded
    as milter header changes expect."""
    rendered = render_field(name, value, b"\n").decode("ascii")
    return rendered[len(name) + 1:].rstrip("\n").lstrip(" ")


@dataclass
class Transaction:
    """One message on a milter connection, from MAIL to end of body or abort."""

    policy: PolicyState
    direction: Direction
    spool: Spool
    mail_from: str = ""
    rcpt_to: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0
    too_big: bool = False
    header_bytes: int = 0  # the header block so far, as rebuilt (`name: value` CRLF)
    header_too_big: str | None = None  # why the header block is refused, once it is
    refused: bool = False  # answered already (refusal): ignore the rest until the next MAIL
    in_body: bool = False

    def close(self) -> None:
        self.spool.close()


class MilterSession:
    """One MTA connection: commands in, replies out, one transaction at a time."""

    def __init__(self, ctx: ProxyContext, listener: Listener, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.ctx = ctx
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.decoder = p.Decoder()
        self.protocol = 0  # the negotiated SMFIP_* flags
        self.macros: dict[str, str] = {}
        self.client_ip = ""
        self.helo = ""
        self.txn: Transaction | None = None
        self.closing = False

    @property
    def busy(self) -> bool:
        return self.txn is not None and self.txn.in_body

    # -- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while not self.closing:
                timeout = self.ctx.policy.config.limits.session_timeout
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    log.info("%s milter connection idle for %.0fs: closed", self.listener.name,
                             timeout)
                    return
                if not data:
                    return
                for cmd in self.decoder.feed(data):
                    answers = await self.handle(cmd)
                    if answers:
                        self.writer.write(b"".join(p.encode_reply(a) for a in answers))
                        await self.writer.drain()
                    if self.closing:
                        return
        except p.ProtocolError as exc:
            log.warning("%s milter protocol error: %s; connection closed", self.listener.name,
                        exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("%s milter session failed", self.listener.name)
            self.ctx.metrics.message(self.envelope().direction, 451)
            with contextlib.suppress(Exception):
                self.writer.write(p.encode_reply(p.Tempfail()))
                await self.writer.drain()
        finally:
            self.end_transaction()
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    def end_transaction(self) -> None:
        if self.txn is not None:
            self.txn.close()
            self.txn = None

    async def handle(self, cmd: p.Command) -> list[p.Reply]:
        """The replies for one command ([] where the protocol wants none)."""
        if isinstance(cmd, p.OptNeg):
            answer = p.negotiate(cmd)
            self.protocol = answer.protocol
            return [answer]
        if isinstance(cmd, p.Macro):
            for name, value in cmd.macros:
                self.macros[_macro_name(name)] = value
            # Each packet is bounded by the codec; distinct names could still pile up.
            held = sum(len(n) + len(v) for n, v in self.macros.items())
            if held > p.MAX_MACRO_PAYLOAD:
                raise p.ProtocolError(f"macros of {held} characters held, over "
                                      f"{p.MAX_MACRO_PAYLOAD}")
            return []
        if isinstance(cmd, p.Connect):
            self.client_ip = cmd.address if cmd.family in "46" else (
                self.macros.get("client_addr", "") or "127.0.0.1")
            return [p.Continue()]
        if isinstance(cmd, p.Helo):
            self.helo = cmd.name
            return [p.Continue()]
        if isinstance(cmd, p.Mail):
            return [await self.on_mail(cmd)]
        if isinstance(cmd, p.Rcpt):
            return [await self.on_rcpt(cmd)]
        if isinstance(cmd, p.Header):
            self.on_header(cmd)
            if self.protocol & p.SMFIP_NOHREPL:
                return []  # a refusal waits for the end of the headers (on_body)
            txn = self.txn
            if txn is not None and not txn.refused and txn.header_too_big is not None:
                return [await self.refuse_header_too_big(txn)]
            return [p.Continue()]
        if isinstance(cmd, p.EndOfHeaders):
            return [await self.on_body(b"\r\n")]
        if isinstance(cmd, p.Body):
            return [await self.on_body(cmd.chunk)]
        if isinstance(cmd, p.EndOfBody):
            return await self.on_end(cmd.chunk)
        if isinstance(cmd, p.Abort):
            self.end_transaction()
            return []
        if isinstance(cmd, p.Quit):
            self.closing = True
            return []
        if isinstance(cmd, p.QuitNewConnection):
            self.end_transaction()
            self.macros.clear()
            self.client_ip = self.helo = ""
            return []
        return [p.Continue()]  # DATA, UNKNOWN: nothing to decide yet

    # -- envelope ------------------------------------------------------------------------
    def direction(self, policy: PolicyState) -> Direction:
        config = policy.config
        daemon = self.macros.get("daemon_name", "")
        for listener in config.listeners:
            if daemon and daemon == listener.name:
                return listener.direction
        if daemon == ORIGINATING or self.macros.get("auth_authen"):
            return "outbound"
        if relay_control.client_in(self.client_ip, config.relay_networks):
            return "outbound"
        return self.listener.direction

    def envelope(self) -> Envelope:
        txn = self.txn
        return Envelope(direction=txn.direction if txn else self.listener.direction,
                        listener=self.listener.name, client_ip=self.client_ip or "unknown",
                        helo=self.helo, mail_from=txn.mail_from if txn else "",
                        rcpt_to=tuple(txn.rcpt_to) if txn else ())

    async def on_mail(self, cmd: p.Mail) -> p.Reply:
        self.end_transaction()
        if not self.client_ip:
            self.client_ip = self.macros.get("client_addr", "")
        policy = self.ctx.policy
        config = policy.config
        limits = config.limits
        sender, _ = _path(cmd.args)
        self.txn = txn = Transaction(policy, self.direction(policy),
                                     Spool(limits.spool_threshold, limits.spool_dir,
                                           reader=self.ctx.pool.read_on_arrival
                                           if limits.decode_on_arrival
                                           and self.ctx.pool is not None else None),
                                     mail_from=sender)
        refusal = relay_control.check_mail(
            direction=txn.direction, client_ip=self.client_ip, sender=sender,
            relay_networks=config.relay_networks, agency_domains=config.agency_domains,
            authenticated=bool(self.macros.get("auth_authen")))
        if refusal is not None:
            ref = pipeline.new_ref()
            return await self.refuse(refusal.reply(ref), ref, rule_id=refusal.rule_id,
                                     reason=refusal.reason)
        limit = policy.max_message_size
        for opt in cmd.args[1:]:
            key, _, value = opt.partition("=")
            if key.upper() == "SIZE" and value.isdigit() and int(value) > limit:
                ref = pipeline.new_ref()
                return await self.refuse(replies.size_exceeded(limit, ref), ref,
                                         rule_id=builtin.SIZE.id,
                                         reason=f"declared SIZE={value} over {limit}")
        return p.Continue()

    async def on_rcpt(self, cmd: p.Rcpt) -> p.Reply:
        txn = self.txn
        if txn is None or txn.refused:
            return p.Continue()
        recipient, path = _path(cmd.args)
        refusal = relay_control.check_rcpt(
            direction=txn.direction, recipient=recipient, path=path,
            agency_domains=txn.policy.config.agency_domains)
        if refusal is not None:
            ref = pipeline.new_ref()
            reply = refusal.reply(ref)
            log.info("%s ref=%s client=%s from=<%s> action=reject rule=%s reply=%d %s "
                     "reason=%s", self.listener.name, ref, self.client_ip,
                     journal.value(txn.mail_from),
                     refusal.rule_id, reply.code, reply.enhanced, refusal.reason)
            self.ctx.metrics.message(txn.direction, reply.code)
            self.ctx.metrics.rule_hit(refusal.rule_id)
            await self.write_log(event="reject", ref=ref, reply=reply,
                                 rule_id=refusal.rule_id, reason=refusal.reason)
            return p.ReplyCode(replies.render(reply))
        txn.rcpt_to.append(recipient)
        return p.Continue()

    # -- content -------------------------------------------------------------------------
    def _keep(self, piece: bytes) -> None:
        txn = self.txn
        if txn is None or txn.refused or txn.too_big:
            return
        txn.size += len(piece)
        if txn.size > txn.policy.max_message_size:
            txn.too_big = True
            txn.spool.drop()
            return
        txn.spool.write(piece)

    def on_header(self, cmd: p.Header) -> None:
        """Keep one header field, or note that the header block is over
        `limits.max_header_bytes` (then keep nothing more: the message is refused)."""
        value = cmd.value
        # With SMFIP_HDR_LEADSPC the value keeps the space after the colon; without it
        # the MTA dropped it and we put the usual one back.
        sep = ":" if self.protocol & p.SMFIP_HDR_LEADSPC else ": "
        line = (cmd.name + sep + value).replace("\r\n", "\n").replace("\n", "\r\n")
        data = line.encode("utf-8", errors="surrogateescape") + b"\r\n"
        txn = self.txn
        if txn is None or txn.refused or txn.header_too_big is not None:
            return
        limit = txn.policy.config.limits.max_header_bytes
        txn.header_bytes += len(data)
        if len(data) > limit:
            txn.header_too_big = (f"header field {journal.value(cmd.name)} of {len(data)} "
                                  f"bytes, over {limit}")
        elif txn.header_bytes > limit:
            txn.header_too_big = f"header block of more than {limit} bytes"
        if txn.header_too_big is not None:
            txn.headers.clear()
            txn.spool.drop()
            return
        txn.headers.append((cmd.name, value))
        self._keep(data)

    async def on_body(self, chunk: bytes) -> p.Reply:
        txn = self.txn
        if txn is None or txn.refused:
            return p.Continue()
        txn.in_body = True
        if txn.header_too_big is not None:
            return await self.refuse_header_too_big(txn)
        self._keep(chunk)
        if txn.too_big:
            return await self.refuse_too_big(txn)
        return p.Continue()

    async def refuse_header_too_big(self, txn: Transaction) -> p.Reply:
        ref = pipeline.new_ref()
        limit = txn.policy.config.limits.max_header_bytes
        return await self.refuse(replies.header_too_large(limit, ref), ref,
                                 rule_id=builtin.HEADER_TOO_LARGE.id,
                                 reason=txn.header_too_big or "header block too large")

    async def refuse_too_big(self, txn: Transaction) -> p.Reply:
        ref = pipeline.new_ref()
        limit = txn.policy.max_message_size
        return await self.refuse(replies.size_exceeded(limit, ref), ref, rule_id=builtin.SIZE.id,
                                 reason=f"message of more than {limit} bytes")

    async def on_end(self, chunk: bytes) -> list[p.Reply]:
        txn = self.txn
        if txn is None or txn.refused:
            self.end_transaction()
            return [p.Continue()]
        try:
            if txn.header_too_big is not None:
                return [await self.refuse_header_too_big(txn)]
            if chunk:
                self._keep(chunk)
            if txn.too_big:
                return [await self.refuse_too_big(txn)]
            return await self.decide(txn)
        finally:
            self.end_transaction()

    async def decide(self, txn: Transaction) -> list[p.Reply]:
        policy = txn.policy
        ref = pipeline.new_ref()
        env = self.envelope()
        inspection = await inspect_spooled(policy, txn.spool, env, ref, self.ctx.metrics, log,
                                           self.listener.name, pool=self.ctx.pool)
        if isinstance(inspection, NotInspected):
            return [await self.refuse(inspection.reply, ref, rule_id=inspection.rule_id,
                                      reason=inspection.reason, event="tempfail")]
        # The received header block (the Subject to tag is in it); the body stays in the spool.
        raw = inspection.received_head
        size = inspection.view.size
        verdict = inspection.verdict
        if inspection.reply is not None:
            self.ctx.metrics.message(env.direction, inspection.reply.code)
            event = verdict.event or "reject"
            self.log_outcome(ref, env, size, event, verdict.rule_id, inspection.reply)
            await self.write_log(event=event, ref=ref, reply=inspection.reply,
                                 inspection=inspection)
            return [p.ReplyCode(replies.render(inspection.reply))]
        changes = self.changes(txn, raw, inspection)
        reply = replies.accepted(f"ref={ref}")
        # Accepted here: the MTA queues it, so "relayed" means handed back to the MTA.
        self.ctx.metrics.message(env.direction, reply.code)
        noted = verdict.event
        self.log_outcome(ref, env, size, "accept" if noted is None else f"accept+{noted}",
                         verdict.rule_id, reply)
        if noted is not None:
            await self.write_log(event=noted, ref=ref, reply=reply, inspection=inspection)
        return [*changes, p.Continue()]

    def changes(self, txn: Transaction, raw: bytes, inspection: Inspection) -> list[p.Reply]:
        """The header changes that make the MTA's copy what the proxy would relay."""
        out: list[p.Reply] = []
        verdict = inspection.verdict
        # With SMFIP_HDR_LEADSPC the MTA writes `name:value` as given (Postfix does), so
        # the space after the colon is ours to send.
        lead = " " if self.protocol & p.SMFIP_HDR_LEADSPC else ""
        # Forged fields go first, the last one first: Postfix renumbers the fields after
        # a deletion (Sendmail does not), so only this order means the same to both; and
        # before our own field is inserted, which would shift the count by one.
        for name, index in reversed(inspection.removed_headers):
            out.append(p.ChangeHeader(index, name, ""))
        if verdict.subject_tags or verdict.subject_defangs:
            value = tagged_subject(raw, verdict.subject_tags, verdict.subject_defangs)
            if value is not None:
                has_subject = any(n.lower() == "subject" for n, _ in txn.headers)
                out.append(p.ChangeHeader(1, "Subject", lead + value) if has_subject
                           else p.AddHeader("Subject", lead + value))
        # Our trace fields go at the very top as the proxy puts them (RFC 8601 5), above
        # the MTA's own Received (index 0); inserted last first so they keep their order.
        for name, value in reversed(inspection.trace_headers):
            out.append(p.InsertHeader(0, name, lead + _field_value(name, value)))
        # The proxy puts the rules' fields at the top too; the MTA appends added fields
        # in the order given, which keeps the rules' order.
        for name, value in verdict.added_headers:
            out.append(p.AddHeader(name, lead + _field_value(name, value)))
        return out

    # -- replies and logging -------------------------------------------------------------
    async def write_log(self, *, event: str, ref: str, reply: Reply | None,
                        inspection: Inspection | None = None, rule_id: str | None = None,
                        reason: str | None = None) -> None:
        envelope = self.envelope()
        await self.ctx.rejection_log.log(
            event=event, ref=ref, envelope=envelope, reply=reply,
            inspection=inspection, rule_id=rule_id, reason=reason)
        if self.ctx.incidents is not None:  # only queued: never waits, never raises
            self.ctx.incidents.notice(event=event, ref=ref, envelope=envelope,
                                      verdict=inspection.verdict if inspection else None)

    async def refuse(self, reply: Reply, ref: str, *, rule_id: str | None, reason: str,
                     event: str = "reject") -> p.Reply:
        """Refuse the whole transaction: log it and answer with the reply text."""
        log.info("%s ref=%s client=%s from=<%s> action=%s rule=%s reply=%d %s reason=%s",
                 self.listener.name, ref, self.client_ip, journal.value(self.envelope().mail_from),
                 event,
                 rule_id, reply.code, reply.enhanced, reason)
        self.ctx.metrics.message(self.envelope().direction, reply.code)
        if rule_id is not None:
            self.ctx.metrics.rule_hit(rule_id)
        if self.txn is not None:
            self.txn.refused = True
            self.txn.spool.drop()
        await self.write_log(event=event, ref=ref, reply=reply, rule_id=rule_id, reason=reason)
        return p.ReplyCode(replies.render(reply))

    def log_outcome(self, ref: str, env: Envelope, size: int, action: str,
                    rule_id: str | None, reply: Reply) -> None:
        log.info("%s ref=%s client=%s from=<%s> rcpt=%d size=%d action=%s rule=%s reply=%d %s",
                 self.listener.name, ref, env.client_ip, journal.value(env.mail_from),
                 len(env.rcpt_to),
                 size, action, rule_id or "-", reply.code, reply.enhanced or "-")


class MilterFrontend:
    """The sessions of one milter listener, for the service's start and drain."""

    def __init__(self, ctx: ProxyContext, listener: Listener) -> None:
        self.ctx = ctx
        self.listener = listener
        self.sessions: dict[MilterSession, asyncio.Task[None]] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.ctx.draining:
            writer.close()
            return
        session = MilterSession(self.ctx, self.listener, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self.sessions[session] = task
        try:
            await session.run()
        finally:
            self.sessions.pop(session, None)

    def close_idle(self) -> None:
        """Draining: a connection between messages is closed; the MTA opens a new one."""
        for session in list(self.sessions):
            if not session.busy:
                session.writer.close()

    def abort_all(self) -> None:
        for task in list(self.sessions.values()):
            task.cancel()

    async def start(self, reuse_port: bool) -> tuple[asyncio.AbstractServer,
                                                     list[tuple[str, int] | str]]:
        addr = self.listener.address
        if addr.unix_path is not None:
            server = await asyncio.start_unix_server(self.serve, addr.unix_path)
            return server, [addr.unix_path]
        assert addr.port is not None
        srv = await asyncio.start_server(self.serve, addr.host, addr.port, reuse_address=True,
                                         reuse_port=reuse_port or None)
        return srv, [(str(s.getsockname()[0]), int(s.getsockname()[1])) for s in srv.sockets]
