"""The running gateway: listeners, signals, reload and drain (`gateway serve`).

`Gateway` owns the listening sockets and the one PolicyState reference that every
new transaction reads. SIGHUP builds a complete new PolicyState off the event
loop and swaps that reference only when it loads cleanly; a broken rule file is
logged as FILE:LINE and the old policy stays in force. SIGTERM/SIGINT stop
accepting, tell idle clients 421, let transactions in flight finish until a
deadline, then close what is left. SIGUSR1 reopens the rejection log (logrotate).

Each Gateway owns its inspection processes (gateway.frontends.pool): started as
messages need them, given the reloaded policy after SIGHUP, and ended and reaped
when the gateway stops, after the drain (inspections in flight finish first).

Each Gateway owns its incident alerts (gateway.observe.incidents): the sender task
starts with the listeners, and at stop, after the drain, pending alerts are sent within
INCIDENT_FLUSH_TIMEOUT or logged as lost. Under `workers:` each worker has its own.

Under systemd (Type=notify) the gateway says READY=1 once every listener is bound,
RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 when it starts to drain,
and WATCHDOG=1 at half of WatchdogSec while its event loop keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gateway import antivirus, eventloop, sdnotify
from gateway.antivirus import clamd
from gateway.config import GatewayConfig, Listener
from gateway.frontends.milter.server import MilterFrontend
from gateway.frontends.pool import InspectionPool, PoolSettings
from gateway.frontends.smtp_proxy import ProxyContext, ProxySMTP
from gateway.frontends.smtp_session import cut_through_status
from gateway.observe import incidents
from gateway.observe.ecs import SyslogOutput
from gateway.observe.incidents import IncidentAlerts
from gateway.observe.log_privacy import LogKeyError, LogPrivacy, load_or_create_key
from gateway.observe.metrics import Metrics
from gateway.observe.metrics_http import MetricsServer
from gateway.observe.rejection_log import RejectionLog
from gateway.policy_state import PolicyState, load_policy
from gateway.problems import LoadError
from gateway.relay import maildir

log = logging.getLogger("gateway.service")

# What to do about the usual reasons a listener cannot be bound.
_BIND_HINTS = {
    errno.EADDRINUSE: " (another program, or another gateway, listens there)",
    errno.EADDRNOTAVAIL: " (not an address of this machine)",
    errno.EACCES: " (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
}

DRAIN_TIMEOUT = 30.0
# Seconds the stop may spend sending incident alerts still pending.
INCIDENT_FLUSH_TIMEOUT = 10.0
# Seconds between attempts to write rejection-log records kept in memory while the log
# cannot be written, when no new record comes to try it.
LOG_RETRY_INTERVAL = 5.0


async def _log_antivirus(policy: PolicyState) -> None:
    """The start-up line on antivirus scanning (gateway.antivirus.status), loud when
    nothing is scanned; with clamd configured, whether it answers PING right now."""
    configured, line = antivirus.status(policy.config, policy.rules)
    if not configured:
        log.warning("%s", line)
        return
    log.info("%s", line)
    settings = policy.config.antivirus
    assert settings is not None
    address = clamd.parse_address(settings.clamd)
    try:
        await asyncio.to_thread(clamd.ping, address, min(settings.timeout, 5.0))
    except clamd.ClamdError as exc:
        log.warning("antivirus: clamd at %s does not answer PING (%s): messages that reach "
                    "the antivirus rules are tempfailed until it does", address, exc)


def log_outputs(config: GatewayConfig) -> tuple[LogPrivacy, SyslogOutput | None]:
    """The rejection log's key (made at the first start) and syslog output for `config`.

    Raises OSError naming the config key when the key file or the syslog address
    cannot be used; the key itself is never part of a message.
    """
    try:
        key = load_or_create_key(config.log_key_path)
    except LogKeyError as exc:
        raise OSError(f"log_key_file: {exc}") from None
    syslog = None
    if config.syslog is not None:
        try:
            syslog = SyslogOutput(config.syslog.address, config.syslog.facility)
        except (OSError, ValueError) as exc:
            raise OSError(f"syslog: {config.syslog.address}: {exc}") from exc
    return LogPrivacy(key=key, subjects=config.log_subjects), syslog


class Gateway:
    """The listeners of one config, started and stopped together."""

    def __init__(self, policy: PolicyState, *, reuse_port: bool = False,
                 load_seconds: float | None = None) -> None:
        # SO_REUSEPORT only for gateway.workers: a lone gateway must fail on a port
        # another process holds, not share it.
        self.reuse_port = reuse_port
        metrics = Metrics()
        self.pool = InspectionPool(PoolSettings.of(policy.config), policy)
        self.ctx = ProxyContext(policy=policy, metrics=metrics,
                                rejection_log=RejectionLog(policy.config.rejection_log,
                                                           metrics=metrics),
                                pool=self.pool)
        # Alerts on refusals by incident rules; config and rules as a reload leaves them.
        self.incidents = IncidentAlerts(config=lambda: self.ctx.policy.config,
                                        rules=lambda: self.ctx.policy.rules)
        self.ctx.incidents = self.incidents
        self._servers: list[tuple[Listener, asyncio.AbstractServer]] = []
        self._milters: list[MilterFrontend] = []
        # listener name -> the addresses actually bound (host, port) or unix path
        self.bound: dict[str, list[tuple[str, int] | str]] = {}
        self.metrics = self.ctx.metrics
        self.metrics.track_sessions(lambda: len(self.ctx.sessions))
        self.metrics.track_rejection_log(lambda: self.ctx.rejection_log.pending)
        self._log_retry: asyncio.Task[None] | None = None
        self.metrics.rules_loaded(policy.rules.version, load_seconds)
        self.metrics_server: MetricsServer | None = None

    @property
    def policy(self) -> PolicyState:
        return self.ctx.policy

    async def start(self) -> None:
        config = self.policy.config
        # The preflight (access(2)) cannot see every directory that will not be made (as
        # root under /proc, on NFS with root_squash): name the key here too.
        try:
            what = "upstream: cannot deliver into the Maildir"
            if config.upstream_target.kind == "maildir":
                await asyncio.to_thread(maildir.ensure, config.upstream_target.path)
            what = "limits.spool_dir: large messages cannot be spooled"
            if config.limits.spool_dir is not None:
                # Spool files are made with mkstemp, which needs the directory to exist.
                await asyncio.to_thread(config.limits.spool_dir.mkdir, mode=0o700,
                                        parents=True, exist_ok=True)
            what = "rejection_log: the rejection log cannot be written"
            # Not a gateway that starts and then cannot log its first refusal.
            await asyncio.to_thread(self.ctx.rejection_log.open_now)
            what = "the rejection log's outputs cannot be used"
            privacy, syslog = await asyncio.to_thread(log_outputs, config)
            self.ctx.rejection_log.privacy, self.ctx.rejection_log.syslog = privacy, syslog
        except OSError as exc:
            path = f"{exc.filename}: " if exc.filename else ""
            raise OSError(f"{what}: {path}{exc.strerror or exc}") from exc
        loop = asyncio.get_running_loop()
        try:
            for listener in config.listeners:
                addr = listener.address

                def factory(listener: Listener = listener) -> ProxySMTP:
                    return ProxySMTP(self.ctx, listener)

                server: asyncio.AbstractServer
                try:
                    if listener.mode == "milter":
                        milter = MilterFrontend(self.ctx, listener)
                        server, self.bound[listener.name] = await milter.start(
                            self.reuse_port)
                        self._milters.append(milter)
                    elif addr.unix_path is not None:
                        server = await loop.create_unix_server(factory, addr.unix_path)
                        self.bound[listener.name] = [addr.unix_path]
                    else:
                        assert addr.port is not None
                        srv = await loop.create_server(factory, addr.host, addr.port,
                                                       reuse_address=True,
                                                       reuse_port=self.reuse_port or None)
                        self.bound[listener.name] = [
                            (str(s.getsockname()[0]), int(s.getsockname()[1]))
                            for s in srv.sockets]
                        server = srv
                except OSError as exc:
                    raise OSError(f"listeners: {listener.name} cannot listen on "
                                  f"{listener.listen}: {exc.strerror or exc}"
                                  f"{_BIND_HINTS.get(exc.errno or 0, '')}") from exc
                self._servers.append((listener, server))
                for where in self.bound[listener.name]:
                    shown = where if isinstance(where, str) else (
                        f"[{where[0]}]:{where[1]}" if ":" in where[0]
                        else f"{where[0]}:{where[1]}")
                    log.info("listener %s (%s%s) listening on %s", listener.name,
                             listener.direction, ", milter" if listener.mode == "milter"
                             else "", shown)
        except BaseException:
            for _, server in self._servers:
                server.close()
            self._servers.clear()
            self._milters.clear()
            raise
        self._log_retry = asyncio.get_running_loop().create_task(self._retry_log())
        self.incidents.start()
        log.info("%s", incidents.status(config, self.policy.rules))
        if config.metrics is not None:
            await self._start_metrics(config.metrics.address.host or "127.0.0.1",
                                      config.metrics.address.port or 0)
        log.info("gateway started: upstream %s, rules version %s (%d rules)",
                 config.upstream_target, self.policy.rules.version,
                 len(self.policy.rules.rules))
        log.info("%s", cut_through_status(self.policy))
        await _log_antivirus(self.policy)
        log.info("event loop: %s (event_loop: %s)",
                 eventloop.name(asyncio.get_running_loop()), config.event_loop)
        pool = self.pool.settings
        log.info("inspection: up to %d processes, %d messages waiting, %d MB of memory",
                 pool.processes, pool.queue, pool.memory // (1024 * 1024))

    async def _start_metrics(self, host: str, port: int) -> None:
        server = MetricsServer(self.metrics, lambda: self.policy.config.upstream_target,
                               lambda: bool(self._servers) and not self.ctx.draining,
                               self.rejection_log_problem)
        try:
            await server.start(host, port)
        except BaseException:
            # Without its metrics listener the gateway does not start half-way.
            await self.stop(drain_timeout=0.0)
            raise
        self.metrics_server = server

    async def rejection_log_problem(self) -> str | None:
        """Retry the rejection log's pending records; None when it works, else why not."""
        rejection_log = self.ctx.rejection_log
        why = await asyncio.to_thread(rejection_log.retry)
        if why is None:
            return None
        return f"{why} ({rejection_log.pending} record(s) buffered)"

    async def _retry_log(self) -> None:
        # Records kept while the log failed reach the disk soon after it works again,
        # even when no new refusal comes along to try it.
        while True:
            await asyncio.sleep(LOG_RETRY_INTERVAL)
            if self.ctx.rejection_log.problem is not None:
                await asyncio.to_thread(self.ctx.rejection_log.retry)

    def address(self, listener: str) -> tuple[str, int]:
        """The first TCP address a listener is bound to (tests use port 0)."""
        for where in self.bound[listener]:
            if not isinstance(where, str):
                return where
        raise KeyError(listener)

    def swap(self, new: PolicyState,
             outputs: tuple[LogPrivacy, SyslogOutput | None] | None = None) -> None:
        """Put a fully loaded policy in force for every transaction that starts after this.

        `outputs` (service.log_outputs of the new config) replaces the log's key,
        log_subjects and syslog output; None keeps them.
        """
        old = self.ctx.policy
        if new.config.listeners != old.config.listeners:
            log.warning("listener changes take effect only after a restart")
        if new.config.rejection_log != old.config.rejection_log:
            previous = self.ctx.rejection_log
            replacement = RejectionLog(new.config.rejection_log, metrics=self.metrics,
                                       privacy=previous.privacy, syslog=previous.syslog)
            replacement.adopt(previous)
            self.ctx.rejection_log = replacement
            previous.close()
        if outputs is not None:
            current = self.ctx.rejection_log
            previous_syslog = current.syslog
            current.privacy, current.syslog = outputs
            if previous_syslog is not None and previous_syslog is not current.syslog:
                previous_syslog.close()
        if new.config.upstream_target.kind == "maildir":
            maildir.ensure(new.config.upstream_target.path)
        self.ctx.policy = new
        self.pool.reconfigure(PoolSettings.of(new.config), new)
        log.info("policy reloaded: rules version %s (%d rules), upstream %s",
                 new.rules.version, len(new.rules.rules), new.config.upstream_target)
        log.info("%s", cut_through_status(new))
        if (new.config.antivirus, antivirus.scanning_rules(new.rules)) != (
                old.config.antivirus, antivirus.scanning_rules(old.rules)):
            configured, line = antivirus.status(new.config, new.rules)
            log.log(logging.INFO if configured else logging.WARNING, "%s", line)

    async def reload(self, config_path: Path) -> bool:
        """SIGHUP: load config and rules off the loop; swap only if all of it is valid."""
        started = time.monotonic()
        try:
            new = await asyncio.to_thread(load_policy, config_path)
            outputs = await asyncio.to_thread(log_outputs, new.config)
        except LoadError as exc:
            for problem in exc.problems:
                log.error("reload refused, old rules stay in force: %s", problem)
            return False
        except OSError as exc:
            log.error("reload refused, old rules stay in force: %s: %s", config_path, exc)
            return False
        self.swap(new, outputs)
        self.metrics.rules_loaded(new.rules.version, time.monotonic() - started)
        return True

    def reopen_log(self) -> None:
        self.ctx.rejection_log.reopen()
        log.info("rejection log reopened")

    async def stop(self, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        """Stop accepting, let transactions in flight finish by the deadline, close the rest."""
        self.ctx.draining = True
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self._log_retry is not None:
            self._log_retry.cancel()
            self._log_retry = None
        for _, server in self._servers:
            server.close()
        for session in list(self.ctx.sessions):
            if not session.busy:
                await session.shutdown()
        for milter in self._milters:
            milter.close_idle()
        deadline = time.monotonic() + drain_timeout
        while ((self.ctx.sessions or any(m.sessions for m in self._milters))
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        for session in list(self.ctx.sessions):
            log.warning("closing a session still busy after the drain deadline")
            if session.transport is not None:
                session.transport.close()
        for milter in self._milters:
            milter.abort_all()
        for _, server in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()
        self._milters.clear()
        # Let connection_lost callbacks of the sessions just closed run.
        await asyncio.sleep(0)
        await self.ctx.upstream_cache.close()
        # Alerts of the refusals just made: sent within a bound, or logged as lost.
        await self.incidents.close(INCIDENT_FLUSH_TIMEOUT)
        await self.pool.close()
        self.ctx.rejection_log.close()
        if self.ctx.rejection_log.syslog is not None:
            self.ctx.rejection_log.syslog.close()
        log.info("gateway stopped")


def setup_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    # aiosmtpd logs every command at INFO; our own lines say what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def _status(gateway: Gateway) -> str:
    rules = gateway.policy.rules
    return f"STATUS=serving: rules version {rules.version} ({len(rules.rules)} rules)"


async def _watchdog(notify: Callable[[str], bool], interval: float) -> None:
    # The ping comes from a task of the event loop itself: a loop blocked by a
    # runaway inspection stops pinging and systemd restarts the service.
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval / 2)


async def run(config_path: Path, policy: PolicyState, *, reuse_port: bool = False,
              on_ready: Callable[[], None] | None = None,
              notify: Callable[[str], bool] = sdnotify.notify,
              watchdog: float | None = None, load_seconds: float | None = None) -> int:
    """Serve until SIGTERM/SIGINT. `notify` receives the sd_notify states (systemd's
    socket, or the worker pipe to the parent); `watchdog`: seconds of WatchdogSec."""
    gateway = Gateway(policy, reuse_port=reuse_port, load_seconds=load_seconds)
    try:
        await gateway.start()
    except (OSError, ValueError) as exc:
        print(f"{config_path}: cannot start: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        notify(sdnotify.reloading_state())
        try:
            await gateway.reload(config_path)
        finally:
            # READY=1 whether or not the new rules were accepted: either way a
            # complete policy is in force and the gateway is serving.
            notify("READY=1\n" + _status(gateway))

    def on_hup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGUSR1, gateway.reopen_log)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    if on_ready is not None:
        on_ready()
    notify("READY=1\n" + _status(gateway))
    pinger = loop.create_task(_watchdog(notify, watchdog)) if watchdog else None
    try:
        await stopping.wait()
        notify("STOPPING=1\nSTATUS=stopping: draining sessions")
        log.info("stopping: draining sessions for up to %.0fs", DRAIN_TIMEOUT)
        await gateway.stop(DRAIN_TIMEOUT)
    finally:
        if pinger is not None:
            pinger.cancel()
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def serve(config_path: Path) -> int:
    """`gateway serve`: 0 after a clean stop, 2 when the config cannot be put in force."""
    setup_logging()
    started = time.monotonic()
    try:
        policy = load_policy(config_path)
    except LoadError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{config_path}:1: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:  # `event_loop: uvloop` without uvloop: refused before anything starts
        eventloop.loop_factory(policy.config.event_loop)
    except eventloop.EventLoopUnavailable as exc:
        print(f"{config_path}: {exc}", file=sys.stderr)
        return 2
    workers = policy.config.worker_count
    if workers > 1:
        from gateway import workers as worker_processes  # it imports this module

        return worker_processes.serve(config_path, policy, workers)
    return eventloop.run(run(config_path, policy, watchdog=sdnotify.watchdog_interval(),
                             load_seconds=time.monotonic() - started),
                         policy.config.event_loop)
