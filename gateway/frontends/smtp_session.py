"""The SMTP proxy's DATA phase as a sans-io state machine: typed events in, typed actions out.

What happens between the client's DATA command and the reply to its final dot,
decided here without sockets, clocks or threads: the glue
(`gateway.frontends.smtp_proxy`) performs each action and feeds back what came of
it as an event, so every path (refusal, upstream failure, client gone, slow client)
is tested without a network (tests/unit/test_smtp_session.py). RFC 5321: 4.1.1.4
(DATA and the end-of-data indicator), 4.5.2 (dot-stuffing), 3.8 (a lost connection
cancels the pending transaction), 4.5.3.2 (timeouts).

Two ways to carry a message, chosen per transaction by the glue:

- store and forward: 354, the message is read into the spool, inspected, and only
  then relayed (`StoreAndForward`: the glue's SMTP or Maildir delivery).
- cut-through (`cut_through: true`, an smtp:// upstream, and a rule set whose header
  changes the header block decides, `ChangePlan.header_decides`): DATA goes upstream
  first and the client hears 354 only after the upstream's 354. The header block is
  held until it ends; its changes are decided then (`DecideHeader`: forged
  Authentication-Results out, subject tags, added fields, the gateway's own
  Authentication-Results), the changed block goes upstream and every later piece as it
  is read. The final dot goes upstream only once the verdict on the whole message
  accepts it and its header changes are the ones already sent (`HeaderDecision.agrees`;
  a difference is a bug, answered 451 and never relayed). Any other end drops the
  upstream connection before the final dot (`AbortUpstream`), so the next hop keeps
  nothing. A message that cannot be cut through after all (its header block passes
  `max_header_bytes`, or the message ends inside it, or its header decision failed)
  is stored and forwarded in the same upstream DATA.
  With `dkim_sign:` outbound transactions are never cut through (`cuts_through`):
  the signature covers the body, so the header block waits for the whole message.

Upstream failures while streaming do not cut the client off: the rest of the message
is read, inspected (a refusal is still the policy's), and an accepted message is
answered 451 4.4.1. Dot-stuffing holds back a trailing CRLF (`DotStuffer`), so what
went upstream can never end the data by itself.

`DataClock` bounds the client: `limits.data_timeout` seconds of its own time for the
whole DATA phase (waits for the upstream, the header decision and inspection are not
its time), and from `data_rate_grace` seconds on at least `data_min_rate` bytes a
second over the last `data_rate_window` seconds. Every read the glue makes is bounded
by `DataClock.allowance`, so a client dripping bytes is closed (421 4.4.2) at the
moment it falls behind, not kept alive by each byte as the idle timer would be.

Protocol between core and glue: `start()` and `handle(event)` return a batch of
actions. Within a batch every `UpstreamSend` comes first, and at most the last action
waits for an event (`ReadClient`, `UpstreamData`, `UpstreamFinish`, `DecideHeader`,
`Inspect`); a terminal action (`Outcome`) ends the phase. A send that fails is fed
back as `UpstreamFailed` at once, and the core answers with the rest of its batch.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from gateway.auth import AuthResults
from gateway.config import Limits
from gateway.frontends.datastream import ArrivalReader, BareNewlines, DataDecoder, Spool
from gateway.frontends.inspection import NotInspected
from gateway.pipeline import HeaderDecision, Inspected
from gateway.policy import builtin, replies
from gateway.policy.verdict import Reply
from gateway.policy_state import PolicyState
from gateway.relay.smtp import DotStuffer, UpstreamReply

GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"
_BLANK = b"\r\n\r\n"

InspectionResult = Inspected | NotInspected


# -- settings -------------------------------------------------------------------------

def cuts_through(policy: PolicyState, direction: str | None = None) -> bool:
    """Whether transactions under `policy` relay while receiving: `cut_through: true`, an
    smtp:// upstream, and a rule set whose header block decides its changes; and, with
    `dkim_sign:`, not for `direction` outbound: a DKIM signature covers the body's hash
    (RFC 6376 3.7), so it cannot go out before the body has arrived."""
    config = policy.config
    if config.dkim_sign is not None and direction == "outbound":
        return False
    return config.cut_through and config.upstream_target.kind == "smtp" \
        and policy.rules.change_plan.header_decides


def cut_through_status(policy: PolicyState) -> str:
    """One line for the journal at start-up and reload: how messages are carried, and
    when cut-through was asked for but cannot be, why (the first rule in the way)."""
    config = policy.config
    if not config.cut_through:
        return "cut-through off: every message is stored and forwarded"
    if config.upstream_target.kind != "smtp":
        return "cut-through on, but the upstream is a Maildir: messages are stored and " \
               "forwarded"
    plan = policy.rules.change_plan
    if not plan.header_decides:
        more = f" (and {len(plan.blockers) - 1} more)" if len(plan.blockers) > 1 else ""
        return (f"cut-through on, but every message is stored and forwarded: "
                f"{plan.blockers[0]}{more}")
    if config.dkim_sign is not None:
        return "cut-through on: inbound messages are relayed while they arrive, the final " \
               "dot after the verdict; outbound messages are stored and forwarded, as " \
               "dkim_sign signs them whole"
    return "cut-through on: messages are relayed while they arrive, the final dot after " \
           "the verdict"


@dataclass(frozen=True)
class DataSettings:
    """What one DATA phase is bound by (from `limits:`) and how it carries the message."""

    ref: str
    max_size: int
    bare_newlines: BareNewlines = "reject"
    spool_threshold: int = 1024 * 1024
    spool_dir: Path | None = None
    # Reads a spooled message while it arrives (`limits.decode_on_arrival`: the
    # inspection pool's read_on_arrival), or None: decoded after the final dot.
    reader: ArrivalReader | None = None
    max_header_bytes: int = 256 * 1024
    data_timeout: float = 900.0
    min_rate: float = 500.0
    rate_window: float = 30.0
    rate_grace: float = 30.0
    cut_through: bool = False

    @classmethod
    def of(cls, limits: Limits, *, ref: str, max_size: int, cut_through: bool,
           reader: ArrivalReader | None = None) -> DataSettings:
        """`reader` is used when `limits.decode_on_arrival` asks for it."""
        return cls(ref=ref, max_size=max_size, bare_newlines=limits.bare_newlines,
                   spool_threshold=limits.spool_threshold, spool_dir=limits.spool_dir,
                   reader=reader if limits.decode_on_arrival else None,
                   max_header_bytes=limits.max_header_bytes, data_timeout=limits.data_timeout,
                   min_rate=float(limits.data_min_rate), rate_window=limits.data_rate_window,
                   rate_grace=limits.data_rate_grace, cut_through=cut_through)


# -- events (glue -> core) ----------------------------------------------------------------

@dataclass(frozen=True)
class ClientData:
    """Bytes from the client, after `waited` seconds of waiting for them."""

    data: bytes
    waited: float


@dataclass(frozen=True)
class ClientSilent:
    """A `ReadClient` ran out of its allowance after `waited` seconds: nothing came."""

    waited: float


@dataclass(frozen=True)
class ClientGone:
    """The client closed the connection (end of stream) inside DATA."""


@dataclass(frozen=True)
class UpstreamReplied:
    """The upstream's reply to DATA (`UpstreamData`) or to the final dot (`UpstreamFinish`)."""

    reply: UpstreamReply


@dataclass(frozen=True)
class UpstreamFailed:
    """The upstream connection failed (refused, reset, timed out) during an action."""

    error: Exception


@dataclass(frozen=True)
class HeaderDecided:
    """The header block's changes (`DecideHeader`), or None: not decided (the glue says
    why in its log), so the message is stored and forwarded."""

    decision: HeaderDecision | None


@dataclass(frozen=True)
class InspectionDone:
    """The verdict on the whole message (`Inspect`), or the gateway's own tempfail."""

    result: InspectionResult


Event = (ClientData | ClientSilent | ClientGone | UpstreamReplied | UpstreamFailed
         | HeaderDecided | InspectionDone)


# -- actions (core -> glue) ---------------------------------------------------------------

@dataclass(frozen=True)
class ReplyClient:
    status: str


@dataclass(frozen=True)
class ReadClient:
    """Wait for client bytes at most `timeout` seconds: `ClientData`, `ClientSilent` or
    `ClientGone`."""

    timeout: float


@dataclass(frozen=True)
class UpstreamData:
    """Send DATA upstream: `UpstreamReplied` (354 or a refusal) or `UpstreamFailed`."""


@dataclass(frozen=True)
class UpstreamSend:
    """Message bytes, dot-stuffed, to the upstream (never a final dot)."""

    wire: bytes


@dataclass(frozen=True)
class UpstreamFinish:
    """The stuffer's tail and the final dot: `UpstreamReplied` or `UpstreamFailed`."""

    tail: bytes


@dataclass(frozen=True)
class AbortUpstream:
    """Drop the upstream connection, final dot unsent: the next hop keeps nothing."""

    reason: str


@dataclass(frozen=True)
class DecideHeader:
    """Decide the changes of this header block (through its empty line): `HeaderDecided`."""

    received: bytes


@dataclass(frozen=True)
class Inspect:
    """Inspect the spooled message (`DataPhase.spool`), reusing `auth`: `InspectionDone`."""

    auth: AuthResults | None


@dataclass(frozen=True)
class Unread:
    """Bytes after the final dot (pipelined commands): back to the command reader."""

    data: bytes


# Terminal actions: what the transaction came to. The glue logs, counts and replies.

@dataclass(frozen=True)
class Refuse:
    """A refusal of the gateway's own (size, bare newline, could not inspect)."""

    reply: Reply
    rule_id: str
    reason: str
    event: str


@dataclass(frozen=True)
class Decline:
    """The rules refused the message (reject or tempfail): `inspection.reply`."""

    inspection: Inspected


@dataclass(frozen=True)
class StoreAndForward:
    """Store and forward: relay the accepted message now. `begun`: the upstream has
    already answered 354 to DATA (a cut-through that fell back)."""

    inspection: Inspected
    begun: bool


@dataclass(frozen=True)
class Relayed:
    """Cut-through: the upstream's reply to the final dot of the accepted message."""

    inspection: Inspected
    reply: UpstreamReply


@dataclass(frozen=True)
class UpstreamRefused:
    """Cut-through: the upstream answered DATA with a refusal; it is the client's reply."""

    reply: UpstreamReply


@dataclass(frozen=True)
class UpstreamLost:
    """The upstream failed; the message (accepted, or not yet read) is not relayed:
    451 4.4.1 (4.7.5 for TLS)."""

    error: Exception
    inspection: Inspected | None


@dataclass(frozen=True)
class Mismatch:
    """Cut-through: the verdict's header changes differ from those already sent. A bug:
    451 4.3.0, the message never completed upstream."""

    inspection: Inspected
    decision: HeaderDecision


@dataclass(frozen=True)
class TooSlow:
    """The client is past `data_timeout` or below `data_min_rate`: 421 4.4.2, close."""

    reason: str


@dataclass(frozen=True)
class ClientLost:
    """The client went away inside DATA: nothing to answer, nothing relayed."""


Outcome = (Refuse | Decline | StoreAndForward | Relayed | UpstreamRefused | UpstreamLost
           | Mismatch | TooSlow | ClientLost)
Action = (ReplyClient | ReadClient | UpstreamData | UpstreamSend | UpstreamFinish
          | AbortUpstream | DecideHeader | Inspect | Unread | Outcome)
OUTCOMES = (Refuse, Decline, StoreAndForward, Relayed, UpstreamRefused, UpstreamLost, Mismatch,
            TooSlow, ClientLost)


# -- the DATA clock -------------------------------------------------------------------

class DataClock:
    """How long a client may still take inside DATA, counting only its own time.

    `elapsed` grows only by the time spent waiting for the client. The rate is checked
    from `max(grace, window)` seconds on: the bytes received in the last `window`
    seconds must be at least `min_rate * window`. `allowance()` is how long the next
    read may wait before one of the two bounds is broken if nothing more comes.
    """

    def __init__(self, timeout: float, min_rate: float, window: float, grace: float) -> None:
        self.timeout = timeout
        self.min_rate = min_rate
        self.window = window
        self.start = max(grace, window)
        self.elapsed = 0.0
        self.received = 0
        # (elapsed, total received) after each arrival; the first sample at or before
        # the window's start is kept, it says what had come by then.
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(0.0, 0)])

    def record(self, waited: float, size: int) -> None:
        self.elapsed += max(0.0, waited)
        if size:
            self.received += size
            self._samples.append((self.elapsed, self.received))
        edge = self.elapsed - self.window
        while len(self._samples) > 1 and self._samples[1][0] <= edge:
            self._samples.popleft()

    def _rate_deadline(self) -> float:
        """When the window would hold too few bytes if nothing more arrived."""
        need = self.min_rate * self.window
        if need <= 0:
            return float("inf")
        floor = self.received - need
        for at, total in self._samples:
            if total > floor:
                # From at + window on, the window no longer holds what came at `at`.
                return max(self.start, at + self.window)
        return self.start  # pragma: no cover - the last sample always exceeds the floor

    def allowance(self) -> float:
        return min(self.timeout, self._rate_deadline()) - self.elapsed

    def why(self) -> str:
        if self.elapsed >= self.timeout or self._rate_deadline() >= self.timeout:
            return f"DATA took longer than data_timeout ({self.timeout:g}s)"
        return (f"DATA slower than data_min_rate ({self.min_rate:g} bytes/s over "
                f"{self.window:g}s): {self.received} bytes in {self.elapsed:.1f}s")


# -- the phase ---------------------------------------------------------------------------

class _State(Enum):
    AWAIT_GO = "await-go"  # cut-through: DATA sent upstream, its reply not yet in
    RECEIVING = "receiving"
    DECIDING = "deciding"  # cut-through: the header block is being decided
    INSPECTING = "inspecting"
    FINISHING = "finishing"  # cut-through: final dot sent, upstream reply awaited
    DONE = "done"


@dataclass
class _Header:
    """The header block while it arrives (cut-through)."""

    data: bytearray = field(default_factory=bytearray)
    scanned: int = 0  # where the search for the empty line goes on from


class DataPhase:
    """One DATA phase: feed it events, perform the actions it returns (module docstring)."""

    def __init__(self, settings: DataSettings) -> None:
        self.settings = settings
        self.cut_through = settings.cut_through
        self.spool = Spool(settings.spool_threshold, settings.spool_dir,
                           reader=settings.reader)
        self.decoder = DataDecoder(settings.max_size, bare_newlines=settings.bare_newlines,
                                   spool=self.spool, tap=self._tap)
        self.clock = DataClock(settings.data_timeout, settings.min_rate,
                               settings.rate_window, settings.rate_grace)
        self.state = _State.RECEIVING
        self.upstream_in_data = False  # the upstream answered 354: only an abort ends it
        self.upstream_error: Exception | None = None
        self.decision: HeaderDecision | None = None
        # Why this message is stored and forwarded although cut-through was asked for.
        self.fallback: str | None = None
        self._header: _Header | None = _Header() if settings.cut_through else None
        self._received_header: bytes | None = None  # complete, awaiting DecideHeader
        self._held: list[bytes] = []  # pieces read while the header is decided
        self._wire: list[bytes] = []  # stuffed bytes for the upstream, not yet handed out
        self._stuffer = DotStuffer()
        self._streaming = False
        self._rest: bytes | None = None  # after the final dot, kept over a DecideHeader
        self._inspection: Inspected | None = None
        self._batch: list[Action] = []

    # -- public -------------------------------------------------------------------------
    def start(self) -> list[Action]:
        if self.cut_through:
            self.state = _State.AWAIT_GO
            return self._out([UpstreamData()])
        return self._out([ReplyClient(GO_AHEAD), self._read()])

    def handle(self, event: Event) -> list[Action]:
        if isinstance(event, UpstreamFailed):
            # Also after a batch that ends the phase: the rest of that batch is re-issued.
            return self._upstream_failed(event.error)
        if self.state is _State.DONE:
            raise RuntimeError(f"DATA phase already ended, got {type(event).__name__}")
        if isinstance(event, ClientData):
            return self._client_data(event)
        if isinstance(event, ClientSilent):
            self.clock.record(event.waited, 0)
            return self._end(TooSlow(self.clock.why()))
        if isinstance(event, ClientGone):
            return self._end(ClientLost())
        if isinstance(event, UpstreamReplied):
            return self._upstream_replied(event.reply)
        if isinstance(event, HeaderDecided):
            return self._header_decided(event.decision)
        return self._inspected(event.result)

    @property
    def done(self) -> bool:
        return self.state is _State.DONE

    def close(self) -> None:
        """Whatever happened: no message left in memory or on disk."""
        self.spool.close()
        self._held.clear()
        self._wire.clear()
        self._header = None

    # -- internals ------------------------------------------------------------------------
    def _out(self, batch: list[Action]) -> list[Action]:
        self._batch = batch
        if any(isinstance(a, OUTCOMES) for a in batch):
            self.state = _State.DONE
        return batch

    def _end(self, outcome: Outcome, reason: str = "") -> list[Action]:
        """Finish with `outcome`, the upstream's DATA called off first if it began."""
        self._streaming = False
        self._wire.clear()
        abort: list[Action] = []
        if self.upstream_in_data:
            self.upstream_in_data = False
            abort.append(AbortUpstream(reason or type(outcome).__name__))
        return self._out([*abort, outcome])

    def _read(self) -> Action | Outcome:
        allowance = self.clock.allowance()
        if allowance <= 0:
            return TooSlow(self.clock.why())
        return ReadClient(allowance)

    def _sends(self) -> list[Action]:
        # One write per batch: the pieces of one client read (at most a read's worth
        # and the header block) go out together.
        wire = b"".join(self._wire)
        self._wire = []
        return [UpstreamSend(wire)] if wire else []

    def _fall_back(self, why: str) -> None:
        """Store and forward this message after all (in the upstream DATA already begun)."""
        if self.fallback is None:
            self.fallback = why
        self._header = None
        self._received_header = None
        self._held.clear()
        self._streaming = False

    def _tap(self, piece: bytes) -> None:
        """Every piece of the message as the decoder makes it (cut-through only)."""
        if self.upstream_error is not None:
            return
        if self._streaming:
            self._wire.append(self._stuffer.feed(piece))
            return
        header = self._header
        if header is None:
            if self._received_header is not None:
                self._held.append(piece)  # the header block is being decided
            return
        header.data += piece
        data = header.data
        if data.startswith(b"\r\n"):
            end = 2  # an empty header block: the message starts with its blank line
        else:
            found = data.find(_BLANK, max(0, header.scanned - 3))
            end = found + len(_BLANK) if found >= 0 else -1
        if end < 0 and len(data) <= self.settings.max_header_bytes:
            header.scanned = len(data)
            return
        if end < 0 or end > self.settings.max_header_bytes:
            # The view of such a message is incomplete (header_too_large): the rules
            # decide on it as a whole, at the end.
            self._fall_back(f"header block over max_header_bytes "
                            f"({self.settings.max_header_bytes})")
            return
        self._received_header = bytes(data[:end])
        if len(data) > end:
            self._held.append(bytes(data[end:]))
        self._header = None

    def _client_data(self, event: ClientData) -> list[Action]:
        if self.state is not _State.RECEIVING:
            raise RuntimeError(f"client data in state {self.state.value}")
        self.clock.record(event.waited, len(event.data))
        rest = self.decoder.feed(event.data)
        if self._received_header is not None and self.upstream_error is None:
            self.state = _State.DECIDING
            self._rest = rest
            return self._out([DecideHeader(self._received_header)])
        return self._after_feed(rest)

    def _after_feed(self, rest: bytes | None) -> list[Action]:
        if rest is None:
            read = self._read()
            if isinstance(read, TooSlow):
                return self._end(read, "client too slow")
            return self._out([*self._sends(), read])
        if self._header is not None:
            self._fall_back("the message ended inside its header block")
        unread: list[Action] = [Unread(rest)] if rest else []
        refusal = self._refusal()
        if refusal is not None:
            # Nothing more goes upstream for a refused message; `_end` drops the rest.
            return self._out([*unread, *self._end(*refusal)])
        self.state = _State.INSPECTING
        auth = self.decision.auth if self.decision is not None else None
        return self._out([*self._sends(), *unread, Inspect(auth)])

    def _refusal(self) -> tuple[Refuse, str] | None:
        """The gateway's own refusal of a message read to its end, if any."""
        decoder, ref = self.decoder, self.settings.ref
        if decoder.too_big:
            limit = self.settings.max_size
            return (Refuse(replies.size_exceeded(limit, ref), builtin.SIZE.id,
                           f"message of {decoder.size} bytes over {limit}", "reject"),
                    "message over the size limit")
        if decoder.bare is not None and decoder.bare_newlines == "reject":
            return (Refuse(replies.bare_newline(ref), builtin.BARE_NEWLINE.id,
                           f"{decoder.bare} in DATA", "reject"),
                    "bare newline in the message")
        return None

    def _header_decided(self, decision: HeaderDecision | None) -> list[Action]:
        if self.state is not _State.DECIDING:
            raise RuntimeError(f"header decision in state {self.state.value}")
        self.state = _State.RECEIVING
        received = self._received_header
        self._received_header = None
        if decision is None or received is None or decision.received != received:
            self._fall_back("the header changes could not be decided")
        else:
            self.decision = decision
            self._streaming = True
            self._wire.append(self._stuffer.feed(decision.block))
            self._wire.extend(self._stuffer.feed(piece) for piece in self._held)
            self._held.clear()
        rest, self._rest = self._rest, None
        return self._after_feed(rest)

    def _upstream_replied(self, reply: UpstreamReply) -> list[Action]:
        if self.state is _State.AWAIT_GO:
            if reply.code != 354:
                return self._out([UpstreamRefused(reply)])
            self.upstream_in_data = True
            self.state = _State.RECEIVING
            return self._out([ReplyClient(GO_AHEAD), self._read()])
        if self.state is _State.FINISHING and self._inspection is not None:
            self.upstream_in_data = False
            return self._out([Relayed(self._inspection, reply)])
        raise RuntimeError(f"upstream reply in state {self.state.value}")

    def _upstream_failed(self, error: Exception) -> list[Action]:
        self.upstream_error = error
        self._streaming = False
        self._wire.clear()
        self._held.clear()
        if self.state is _State.AWAIT_GO:
            return self._end(UpstreamLost(error, None), "upstream failed")
        if self.state is _State.FINISHING:
            self.upstream_in_data = False
            return self._end(UpstreamLost(error, self._inspection), "upstream failed")
        # A send failed: go on with the rest of the batch (nothing of it has run, as
        # sends come first). The client's message is read to its end all the same.
        rest: list[Action] = [a for a in self._batch if not isinstance(a, UpstreamSend)]
        return self._out(rest)

    def _inspected(self, result: InspectionResult) -> list[Action]:
        if self.state is not _State.INSPECTING:
            raise RuntimeError(f"inspection result in state {self.state.value}")
        if isinstance(result, NotInspected):
            return self._end(Refuse(result.reply, result.rule_id, result.reason, "tempfail"),
                             "message not inspected")
        if result.reply is not None:
            return self._end(Decline(result), "refused by the policy")
        if self.upstream_error is not None:
            return self._end(UpstreamLost(self.upstream_error, result), "upstream failed")
        if self.decision is not None:
            if not self.decision.agrees(result):
                return self._end(Mismatch(result, self.decision),
                                 "header changes differ from those sent")
            self._inspection = result
            self.state = _State.FINISHING
            return self._out([UpstreamFinish(self._stuffer.end())])
        return self._out([StoreAndForward(result, begun=self.upstream_in_data)])
