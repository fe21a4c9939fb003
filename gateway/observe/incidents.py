"""Incident alerts: the security contacts hear of refusals by `incident: true` rules.

The JANM guideline for cader mail (5.2.2(d)) has the agency's administrator report
every ICT security incident by the incident handling procedure; an attempt to send
RAHSIA, a virus, a refused macro, a forged announcement are such incidents. This module
owns telling the contacts of config `incidents:` (the ICTSO, the help desk) about them:

- `alert_of` picks the facts of one refusal that an alert may carry and nothing of the
  message's content: rule id, description, clause, the log ref, the time, the envelope
  sender and recipients, client IP, listener and direction, the marking and where it
  was found (the evidence `at` paths, never the text around them), the virus
  signature names. Never the subject, the body, or an attachment's text.
- `IncidentAlerts.notice` is called by both front ends where they write the rejection
  log record (after the verdict): it only queues, never blocks or raises, so the SMTP
  reply is never held up by an alert.
- `IncidentAlerts.run`, a background task of the front end's event loop, sends the
  queued alerts: those within `batch_seconds` of the first go in one bilingual (ms/en)
  mail, through the configured upstream (a new SMTP transaction with
  `gateway.relay.smtp.UpstreamSession`, or a file in the Maildir).
- Rate bound: at most `max_per_hour` alerts are accepted in any hour; beyond, an alert
  is dropped, logged, and the count of dropped alerts is told in the next mail sent (a
  mail with the count alone once the hour allows, if no new alert comes): no silent cap.
- Failures: an alert the upstream does not take is logged and kept to be sent with the
  next mail, until it is `retry_seconds` old (or MAX_PENDING are waiting); then it is
  logged as lost, with its ref. At stop, what is pending is sent within a bound
  (`close`), and what still is not is logged as lost.

With `workers:` above 1 each worker process has its own IncidentAlerts: each sends the
alerts of the refusals it made, and the rate bound applies per worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config import DEFAULT_TIMEZONE, GatewayConfig, IncidentSettings
from gateway.envelope import Envelope
from gateway.observe.report import printable
from gateway.policy.rules import Rule, RuleSet
from gateway.policy.verdict import Verdict
from gateway.relay import maildir
from gateway.relay.smtp import UpstreamSession, UpstreamUnavailable

log = logging.getLogger("gateway.incidents")

# Alerts in one mail at most; more wait for the next mail (sent right after).
MAX_PER_MAIL = 100
# Alerts waiting (new and failed) at most; beyond, the oldest is logged as lost.
MAX_PENDING = 1000
# Shown per alert at most: recipients, places a marking was found, signatures.
MAX_LISTED = 20
# Longest envelope address or `at` path shown; longer is cut with "...".
MAX_TEXT = 200
# Seconds between attempts after the upstream did not take a mail (at least).
RETRY_INTERVAL = 1.0
# Seconds `close` may spend sending what is pending at stop.
FLUSH_TIMEOUT = 10.0
HOUR = 3600.0


@dataclass(frozen=True)
class Alert:
    """One refusal by an incident rule, as an alert may tell it: no message content.
    `time` is the refusal's (UTC); `where`: evidence `at` paths; `signatures`:
    (signature, part) of each virus clamd named."""

    ref: str
    rule_id: str
    description: str
    clause: str
    time: datetime
    mail_from: str
    rcpt_to: tuple[str, ...]
    client_ip: str | None
    listener: str
    direction: str
    classification: str | None = None
    where: tuple[str, ...] = ()
    signatures: tuple[tuple[str, str], ...] = ()


def _shown(text: object) -> str:
    """A client-chosen value as one line of visible characters, at most MAX_TEXT."""
    out = printable(str(text))
    return out if len(out) <= MAX_TEXT else out[:MAX_TEXT - 3] + "..."


def _where(evidence: Mapping[str, Any]) -> tuple[str, ...]:
    """The `at` paths of a classification evidence (`{"where": [{"at": ...}, ...]}`)."""
    places = evidence.get("where")
    if not isinstance(places, list | tuple):
        return ()
    out: list[str] = []
    for place in places:
        if isinstance(place, Mapping) and isinstance(place.get("at"), str):
            out.append(_shown(place["at"]))
    return tuple(dict.fromkeys(out))


def _signatures(evidence: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(signature, part) of the virus evidence (`ScanResult.as_dict()`): the part as
    `attachment N` or `message`, never the attachment's file name."""
    found = evidence.get("virus")
    if not isinstance(found, list | tuple):
        return ()
    out: list[tuple[str, str]] = []
    for item in found:
        if not isinstance(item, Mapping) or not isinstance(item.get("signature"), str):
            continue
        part = str(item.get("part", "message"))
        if item.get("index") is not None:
            part = f"{part} {item['index']}"
        out.append((_shown(item["signature"]), _shown(part)))
    return tuple(out)


def incident_rule(rules: RuleSet, verdict: Verdict) -> Rule | None:
    """The enforced `incident: true` rule that refused this verdict's message, if any."""
    if verdict.event != "reject" or verdict.rule_id is None:
        return None
    for rule in rules.rules:
        if rule.id == verdict.rule_id:
            return rule if rule.incident and rule.mode == "enforce" else None
    return None


def alert_of(rule: Rule, verdict: Verdict, envelope: Envelope, ref: str,
             when: datetime | None = None) -> Alert:
    """The alert for a refusal by `rule` (an incident rule): only the facts named in
    the module docstring; `when` (UTC) defaults to now."""
    evidence = verdict.evidence or {}
    return Alert(
        ref=ref, rule_id=rule.id, description=rule.description, clause=rule.reference,
        time=when or datetime.now(UTC), mail_from=_shown(envelope.mail_from),
        rcpt_to=tuple(_shown(r) for r in envelope.rcpt_to),
        client_ip=envelope.client_ip, listener=_shown(envelope.listener),
        direction=envelope.direction, classification=verdict.classification,
        where=_where(evidence), signatures=_signatures(evidence))


def zone_of(config: GatewayConfig) -> tzinfo:
    """The agency's time zone: config `timezone` when the config has one, else
    Asia/Kuala_Lumpur (UTC when even that is not in the system's tz database)."""
    name = getattr(config, "timezone", None) or DEFAULT_TIMEZONE
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("incidents: time zone %s unknown, alerts give times in UTC", name)
        return UTC


def status(config: GatewayConfig, rules: RuleSet) -> str:
    """The `rules check` and start-up line: which rules are incidents and who hears."""
    marked = [r.id for r in rules.rules if r.incident and r.mode == "enforce"]
    settings = config.incidents
    if settings is None:
        return (f"incidents: NOT CONFIGURED (no incidents: in the config): refusals by "
                f"{len(marked)} incident rule(s) are only logged"
                + (f" ({', '.join(marked)})" if marked else ""))
    return (f"incidents: refusals by {len(marked)} rule(s) are told to "
            f"{', '.join(settings.to)} through the upstream, at most "
            f"{settings.max_per_hour} alerts an hour"
            + (" per worker" if config.worker_count > 1 else "")
            + (f" ({', '.join(marked)})" if marked else ""))


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f" (+{len(items) - MAX_LISTED} lagi / more)"
    return shown or "-"


def render_body(alerts: Sequence[Alert], dropped: int, zone: tzinfo, hostname: str,
                max_per_hour: int) -> str:
    """The bilingual (ms/en) text of one alert mail: the alerts, then the count of
    alerts dropped by the rate bound since the last mail (0: not said)."""
    lines = [
        "Makluman insiden keselamatan ICT / ICT security incident notice",
        "",
        f"Gerbang e-mel {hostname} telah menolak {len(alerts)} mesej melalui peraturan "
        "yang ditanda sebagai insiden. Laporkan dan ambil tindakan mengikut prosedur "
        "pengendalian insiden keselamatan ICT (Garis Panduan JANM 5.2.2(d)).",
        f"The e-mail gateway {hostname} refused {len(alerts)} message(s) by rules marked "
        "as incidents. Report and act on them by the ICT security incident handling "
        "procedure (JANM guideline 5.2.2(d)).",
        "",
        "Kandungan mesej tidak disertakan; rujukan (ref) mencari rekod dalam log "
        "penolakan. / The message content is not included; the ref finds the record "
        "in the rejection log.",
    ]
    for number, alert in enumerate(alerts, 1):
        local = alert.time.astimezone(zone)
        lines += [
            "",
            f"[{number}]",
            f"Peraturan / Rule: {alert.rule_id}",
            f"Keterangan / Description: {alert.description or '-'}",
            f"Klausa / Clause: {alert.clause or '-'}",
            f"Rujukan / Ref: {alert.ref}",
            f"Masa / Time: {local.strftime('%Y-%m-%d %H:%M:%S %z')} ({zone})",
            f"Pengirim / Sender: <{alert.mail_from}>",
            f"Penerima / Recipients: {_listed([f'<{r}>' for r in alert.rcpt_to])}",
            f"IP klien / Client IP: {alert.client_ip or '-'}",
            f"Pendengar / Listener: {alert.listener} ({alert.direction})",
        ]
        if alert.classification is not None:
            lines.append(f"Pengelasan / Marking: {alert.classification}")
        if alert.where:
            lines.append(f"Ditemui di / Found at: {_listed(list(alert.where))}")
        if alert.signatures:
            lines.append("Virus: " + _listed([f"{s} ({p})" for s, p in alert.signatures]))
    if dropped:
        lines += [
            "",
            f"Tidak dimaklumkan / Not told: {dropped} amaran lagi digugurkan kerana had "
            f"{max_per_hour} sejam (lihat log penolakan) / {dropped} more alert(s) dropped "
            f"by the limit of {max_per_hour} per hour (see the rejection log).",
        ]
    return "\r\n".join(lines) + "\r\n"


def render_mail(alerts: Sequence[Alert], dropped: int, settings: IncidentSettings,
                zone: tzinfo, hostname: str, now: datetime | None = None) -> bytes:
    """One alert mail (RFC 5322, CRLF, UTF-8 quoted-printable), Auto-Submitted:
    auto-generated (RFC 3834 5) so no auto-responder answers it."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    count = f"{len(alerts)} insiden / incident(s)" if alerts else \
        f"{dropped} amaran digugurkan / alert(s) dropped"
    msg["Subject"] = f"[INSIDEN ICT] Gerbang e-mel {hostname}: {count}"
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(zone))
    msg["Message-ID"] = make_msgid(domain=hostname)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(render_body(alerts, dropped, zone, hostname, settings.max_per_hour),
                    charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


class Deliverer(Protocol):
    async def __call__(self, config: GatewayConfig, message: bytes) -> None: ...


async def deliver(config: GatewayConfig, message: bytes) -> None:
    """Send an alert mail through the configured upstream: a new SMTP transaction
    (limits.upstream_connect_timeout/upstream_timeout, tls.upstream as for relayed
    mail), or a Maildir file. Raises UpstreamUnavailable (or OSError for the Maildir)
    when no contact took it; contacts refused while others took it are logged."""
    settings = config.incidents
    assert settings is not None
    target = config.upstream_target
    if target.kind == "maildir":
        await asyncio.to_thread(maildir.deliver, target.path, message)
        return
    limits = config.limits
    session = await UpstreamSession.connect(
        target.host, target.port, helo_name=config.hostname,
        connect_timeout=limits.upstream_connect_timeout, timeout=limits.upstream_timeout,
        tls=config.tls.upstream)
    try:
        reply = await session.mail(settings.sender, [])
        if not reply.ok:
            raise UpstreamUnavailable(f"MAIL FROM refused: {reply.render().strip()}")
        taken = 0
        for contact in settings.to:
            reply = await session.rcpt(contact)
            if reply.ok:
                taken += 1
            else:
                log.error("incidents: the upstream refused contact <%s>: %s", contact,
                          reply.render().strip())
        if not taken:
            raise UpstreamUnavailable("every contact refused at RCPT")
        reply = await session.data(message)
        if not reply.ok:
            raise UpstreamUnavailable(f"message refused: {reply.render().strip()}")
        await session.quit()
    finally:
        session.abort()


@dataclass
class _Pending:
    alert: Alert
    queued: float  # monotonic
    tried: int = 0


@dataclass
class IncidentAlerts:
    """The alerts of one gateway process (module docstring). `config` and `rules` give
    those in force (a reload changes them); `send` delivers one mail."""

    config: Callable[[], GatewayConfig]
    rules: Callable[[], RuleSet]
    send: Deliverer = deliver
    _pending: collections.deque[_Pending] = field(default_factory=collections.deque)
    _accepted: collections.deque[float] = field(default_factory=collections.deque)
    dropped: int = 0  # dropped by the rate bound and not yet told in a mail
    lost: int = 0  # given up after failures (for tests and the stop line)
    sent: int = 0  # mails the upstream took
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _last_failure: float | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def notice(self, *, event: str, ref: str, envelope: Envelope,
               verdict: Verdict | None) -> None:
        """A front end logged `event` for message `ref`: queue an alert when an
        enforced incident rule refused it. Never raises, never waits."""
        try:
            config = self.config()
            settings = config.incidents
            if settings is None or event != "reject" or verdict is None:
                return
            rule = incident_rule(self.rules(), verdict)
            if rule is None:
                return
            now = time.monotonic()
            while self._accepted and now - self._accepted[0] >= HOUR:
                self._accepted.popleft()
            if len(self._accepted) >= settings.max_per_hour:
                self.dropped += 1
                log.warning("incidents: alert for ref=%s rule=%s dropped: more than %d "
                            "alerts in the last hour (%d dropped since the last alert "
                            "mail; the next one says how many)", ref, rule.id,
                            settings.max_per_hour, self.dropped)
                self._wake.set()
                return
            self._accepted.append(now)
            self._pending.append(_Pending(alert_of(rule, verdict, envelope, ref), now))
            while len(self._pending) > MAX_PENDING:
                self._lose([self._pending.popleft()], f"more than {MAX_PENDING} waiting")
            self._wake.set()
        except Exception:
            log.exception("incidents: alert for ref=%s could not be queued", ref)

    def start(self) -> None:
        """Start the background sender on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    def _lose(self, lost: Sequence[_Pending], why: str) -> None:
        self.lost += len(lost)
        refs = " ".join(f"{p.alert.ref}({p.alert.rule_id})" for p in lost[:20])
        log.error("incidents: %d alert(s) lost, never told to the contacts (%s): %s%s",
                  len(lost), why, refs, " ..." if len(lost) > 20 else "")

    def _delay(self, settings: IncidentSettings) -> float | None:
        """Seconds until the next mail is due; None: nothing to send yet."""
        now = time.monotonic()
        fresh = [p.queued for p in self._pending if not p.tried]
        due: list[float] = []
        if fresh:
            due.append(min(fresh) + settings.batch_seconds)
        if any(p.tried for p in self._pending) and self._last_failure is not None:
            due.append(self._last_failure + max(settings.batch_seconds, RETRY_INTERVAL))
        if not self._pending and self.dropped:
            # Nothing new to carry the count: say it alone once the hour allows a mail.
            at = (self._accepted[0] + HOUR) if self._accepted else now
            if self._last_failure is not None:
                at = max(at, self._last_failure + max(settings.batch_seconds,
                                                      RETRY_INTERVAL))
            due.append(at)
        return max(0.0, min(due) - now) if due else None

    async def run(self) -> None:
        """Send queued alerts until cancelled (module docstring)."""
        while True:
            try:
                settings = self.config().incidents
                delay = self._delay(settings) if settings is not None else None
                self._wake.clear()
                if delay is None:
                    await self._wake.wait()
                    continue
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        # A new alert may be due sooner (dropped count, or reload).
                        await asyncio.wait_for(self._wake.wait(), delay)
                    continue
                await self.send_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("incidents: the alert sender failed; trying again")
                await asyncio.sleep(RETRY_INTERVAL)

    async def send_once(self) -> bool:
        """Send one mail with what is pending (at most MAX_PER_MAIL alerts) and the
        dropped count; True when the upstream took it. Alerts older than
        `retry_seconds` that failed before are logged as lost first."""
        config = self.config()
        settings = config.incidents
        if settings is None:
            if self._pending:
                self._lose(list(self._pending), "incidents: removed from the config")
                self._pending.clear()
            return False
        now = time.monotonic()
        expired = [p for p in self._pending
                   if p.tried and now - p.queued >= settings.retry_seconds]
        if expired:
            self._lose(expired, f"the upstream did not take them for "
                                f"{settings.retry_seconds:g}s")
            gone = {id(p) for p in expired}
            self._pending = collections.deque(p for p in self._pending if id(p) not in gone)
        batch = list(self._pending)[:MAX_PER_MAIL]
        dropped = self.dropped
        if not batch and not dropped:
            return True
        zone = zone_of(config)
        message = render_mail([p.alert for p in batch], dropped, settings, zone,
                              config.hostname)
        try:
            await self.send(config, message)
        except (UpstreamUnavailable, OSError, TimeoutError) as exc:
            self._last_failure = time.monotonic()
            for p in batch:
                p.tried += 1
            log.error("incidents: alert mail to %s not sent (%s): %d alert(s) kept to "
                      "try again (refs %s)", ", ".join(settings.to), exc, len(batch),
                      " ".join(p.alert.ref for p in batch[:20]))
            return False
        done = {id(p) for p in batch}
        self._pending = collections.deque(p for p in self._pending if id(p) not in done)
        self._last_failure = None
        self.dropped -= dropped
        self.sent += 1
        log.info("incidents: alert mail sent to %s: %d alert(s) (refs %s)%s",
                 ", ".join(settings.to), len(batch),
                 " ".join(p.alert.ref for p in batch[:20]),
                 f", {dropped} dropped by the hourly limit" if dropped else "")
        return True

    async def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """At stop: end the sender, send what is pending within `timeout` seconds, and
        log what could not be sent as lost."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                while (self._pending or self.dropped) and time.monotonic() < deadline:
                    if not await self.send_once():
                        break
        except TimeoutError:
            log.error("incidents: sending pending alerts at stop took over %gs", timeout)
        if self._pending:
            self._lose(list(self._pending), "the gateway stopped")
            self._pending.clear()
        if self.dropped:
            log.error("incidents: %d alert(s) dropped by the hourly limit were never "
                      "told in a mail (the gateway stopped)", self.dropped)
