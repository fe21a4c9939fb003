"""The DATA phase core (gateway.frontends.smtp_session) without sockets: events in, actions out.

Every test drives a `DataPhase` by hand, as the proxy's glue does, and checks the
actions: what the client is told, what goes upstream and when, when the upstream is
called off, and what the transaction comes to. `run` also checks the protocol every
batch keeps: upstream sends first, at most one action that waits, and it comes last.
"""

from __future__ import annotations

import pytest

from gateway.frontends.inspection import NotInspected
from gateway.frontends.smtp_session import (
    GO_AHEAD,
    AbortUpstream,
    Action,
    ClientData,
    ClientGone,
    ClientLost,
    ClientSilent,
    DataClock,
    DataPhase,
    DataSettings,
    DecideHeader,
    Decline,
    HeaderDecided,
    Inspect,
    InspectionDone,
    Mismatch,
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
)
from gateway.message.headers import header_end
from gateway.pipeline import HeaderDecision, Inspected, Summary
from gateway.policy.verdict import Outcome, Reply, Verdict
from gateway.relay.smtp import UpstreamReply, UpstreamUnavailable, dot_stuff

WAITS = (ReadClient, UpstreamData, UpstreamFinish, DecideHeader, Inspect)
HEADER = b"From: a@anm.gov.my\r\nSubject: Ujian\r\n\r\n"
BODY = b".titik di awal\r\nbaris biasa\r\n" * 50
MESSAGE = HEADER + BODY
WIRE = dot_stuff(MESSAGE) + b".\r\n"  # as the client sends it
ADDED = b"X-Gerbang: ya\r\n"


def settings(**kw: object) -> DataSettings:
    base: dict[str, object] = {"ref": "R1", "max_size": 1_000_000, "data_timeout": 100.0,
                               "min_rate": 0.0, "cut_through": False}
    base.update(kw)
    return DataSettings(**base)  # type: ignore[arg-type]


def check_batch(batch: list[Action]) -> None:
    kinds = [type(a) for a in batch]
    sends = [i for i, k in enumerate(kinds) if k is UpstreamSend]
    assert sends == list(range(len(sends))), kinds  # sends come first
    waits = [i for i, k in enumerate(kinds) if k in WAITS]
    assert len(waits) <= 1 and (not waits or waits[0] == len(batch) - 1), kinds


def run(phase: DataPhase, event: object) -> list[Action]:
    batch = phase.handle(event)  # type: ignore[arg-type]
    check_batch(batch)
    return batch


def upstream_bytes(batches: list[list[Action]]) -> bytes:
    out = b""
    for batch in batches:
        for a in batch:
            if isinstance(a, UpstreamSend):
                out += a.wire
            elif isinstance(a, UpstreamFinish):
                out += a.tail + b".\r\n"
    return out


def accepted(raw: bytes, head: bytes = b"", offset: int = 0,
             added: tuple[tuple[str, str], ...] = ()) -> Inspected:
    verdict = Verdict(outcome=Outcome.ACCEPT, added_headers=added)
    return Inspected("R1", verdict, Summary("", "s", "", len(raw), None), None, head, offset)


def refused() -> Inspected:
    reply = Reply(550, "5.7.1", ("tolak", "rule=x ref=R1"))
    verdict = Verdict(outcome=Outcome.REJECT, reply=reply, rule_id="x")
    return Inspected("R1", verdict, Summary("", "s", "", 10, None), reply, None)


def decision(received: bytes = HEADER) -> HeaderDecision:
    return HeaderDecision(received, ADDED + received, (), (("X-Gerbang", "ya"),), (), (), None)


# -- store and forward ---------------------------------------------------------------------

def test_store_and_forward_reads_inspects_then_relays() -> None:
    phase = DataPhase(settings())
    start = phase.start()
    assert start == [ReplyClient(GO_AHEAD), ReadClient(100.0)]
    half = len(WIRE) // 2
    assert isinstance(run(phase, ClientData(WIRE[:half], 0.5))[-1], ReadClient)
    end = run(phase, ClientData(WIRE[half:] + b"QUIT\r\n", 0.5))
    assert end == [Unread(b"QUIT\r\n"), Inspect(None)]
    assert phase.spool.read() == MESSAGE
    result = accepted(MESSAGE)
    assert run(phase, InspectionDone(result)) == [StoreAndForward(result, begun=False)]
    assert phase.done


@pytest.mark.parametrize(("wire", "rule_id"), [
    (b"x" * 2000 + b"\r\n.\r\n", "saiz-maksimum"),
    (b"bare\nLF\r\n.\r\n", "baris-tidak-sah"),
])
def test_own_refusals_at_the_end_of_data(wire: bytes, rule_id: str) -> None:
    phase = DataPhase(settings(max_size=1000))
    phase.start()
    [outcome] = run(phase, ClientData(wire, 0.1))
    assert isinstance(outcome, Refuse) and outcome.rule_id == rule_id
    assert outcome.reply.lines[-1] == f"rule={rule_id} ref=R1"


def test_not_inspected_and_declined() -> None:
    for result, kind in ((NotInspected(Reply(451, "4.3.0", ("x",)), "internal error"), Refuse),
                         (refused(), Decline)):
        phase = DataPhase(settings())
        phase.start()
        run(phase, ClientData(WIRE, 0.1))
        [outcome] = run(phase, InspectionDone(result))
        assert isinstance(outcome, kind)


def test_client_gone_in_store_and_forward_calls_nothing_off() -> None:
    phase = DataPhase(settings())
    phase.start()
    run(phase, ClientData(WIRE[:100], 0.1))
    assert run(phase, ClientGone()) == [ClientLost()]


# -- cut-through -------------------------------------------------------------------------

def cut_phase(**kw: object) -> DataPhase:
    phase = DataPhase(settings(cut_through=True, **kw))
    assert phase.start() == [UpstreamData()]
    go = run(phase, UpstreamReplied(UpstreamReply(354, ("go ahead",))))
    assert go[0] == ReplyClient(GO_AHEAD) and isinstance(go[1], ReadClient)
    return phase


def test_cut_through_streams_the_changed_header_then_the_body_and_dots_after_the_verdict(
        ) -> None:
    phase = cut_phase()
    batches: list[list[Action]] = []
    # The header block in two pieces: held until its empty line.
    first = run(phase, ClientData(WIRE[:10], 0.1))
    [read] = first
    assert isinstance(read, ReadClient) and read.timeout == pytest.approx(99.9)
    second = run(phase, ClientData(WIRE[10:len(HEADER) + 40], 0.1))
    assert second == [DecideHeader(HEADER)]
    batches.append(run(phase, HeaderDecided(decision())))
    assert isinstance(batches[-1][-1], ReadClient)
    assert upstream_bytes(batches).startswith(ADDED + HEADER)
    batches.append(run(phase, ClientData(WIRE[len(HEADER) + 40:], 0.1)))
    assert isinstance(batches[-1][-1], Inspect)
    offset = header_end(MESSAGE)
    result = accepted(MESSAGE, ADDED + HEADER, offset, (("X-Gerbang", "ya"),))
    batches.append(run(phase, InspectionDone(result)))
    assert isinstance(batches[-1][-1], UpstreamFinish)
    # What went upstream is the changed message, dot-stuffed, then the final dot.
    assert upstream_bytes(batches) == dot_stuff(ADDED + MESSAGE) + b".\r\n"
    ok = UpstreamReply(250, ("2.0.0 Ok",))
    assert run(phase, UpstreamReplied(ok)) == [Relayed(result, ok)]


def test_nothing_sent_upstream_can_end_the_data_before_the_final_dot() -> None:
    # A body that ends in CRLF and a line of just "." inside: stuffed, tail held back.
    phase = cut_phase()
    wire = dot_stuff(HEADER + b"a\r\n.\r\nb\r\n") + b".\r\n"
    sent = [run(phase, ClientData(wire[:len(HEADER)], 0.1))]
    sent.append(run(phase, HeaderDecided(HeaderDecision(HEADER, HEADER, (), (), (), (), None))))
    sent.append(run(phase, ClientData(wire[len(HEADER):], 0.1)))
    streamed = upstream_bytes(sent)
    assert b"\r\n.\r\n" not in b"\r\n" + streamed and not streamed.endswith(b"\r\n")


@pytest.mark.parametrize("result", [refused(),
                                    NotInspected(Reply(451, "4.3.0", ("x",)), "timeout")])
def test_a_refusal_at_the_final_dot_calls_the_upstream_off(result: Inspected | NotInspected
                                                           ) -> None:
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    run(phase, HeaderDecided(decision()))
    run(phase, ClientData(WIRE[len(HEADER):], 0.1))
    abort, outcome = run(phase, InspectionDone(result))
    assert isinstance(abort, AbortUpstream)
    assert isinstance(outcome, Decline | Refuse)


def test_a_verdict_that_disagrees_with_the_sent_header_is_a_mismatch() -> None:
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    run(phase, HeaderDecided(decision()))
    run(phase, ClientData(WIRE[len(HEADER):], 0.1))
    result = accepted(MESSAGE)  # the verdict adds nothing; the stream added a field
    abort, outcome = run(phase, InspectionDone(result))
    assert isinstance(abort, AbortUpstream) and isinstance(outcome, Mismatch)


def test_size_and_bare_newline_refusals_call_the_upstream_off() -> None:
    phase = cut_phase(max_size=len(HEADER) + 100)
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    run(phase, HeaderDecided(decision()))
    abort, outcome = run(phase, ClientData(WIRE[len(HEADER):], 0.1))
    assert isinstance(abort, AbortUpstream)
    assert isinstance(outcome, Refuse) and outcome.rule_id == "saiz-maksimum"


def test_the_upstream_refusing_data_is_the_clients_reply_before_354() -> None:
    phase = DataPhase(settings(cut_through=True))
    phase.start()
    no = UpstreamReply(554, ("5.7.1 no",))
    assert run(phase, UpstreamReplied(no)) == [UpstreamRefused(no)]


def test_the_upstream_failing_at_data_is_451_without_354() -> None:
    phase = DataPhase(settings(cut_through=True))
    phase.start()
    error = UpstreamUnavailable("gone")
    assert run(phase, UpstreamFailed(error)) == [UpstreamLost(error, None)]


def test_a_send_failing_mid_stream_reads_on_and_never_accepts() -> None:
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    batch = run(phase, HeaderDecided(decision()))
    assert isinstance(batch[0], UpstreamSend)
    error = UpstreamUnavailable("reset")
    # The failed send's batch goes on without its sends: the client is read on.
    assert run(phase, UpstreamFailed(error)) == [a for a in batch
                                                 if not isinstance(a, UpstreamSend)]
    end = run(phase, ClientData(WIRE[len(HEADER):], 0.1))
    assert end == [Inspect(None)]  # nothing more goes upstream
    abort, lost = run(phase, InspectionDone(accepted(MESSAGE, ADDED + HEADER, len(HEADER))))
    assert isinstance(abort, AbortUpstream) and lost == UpstreamLost(
        error, accepted(MESSAGE, ADDED + HEADER, len(HEADER)))


def test_a_send_failing_then_a_policy_refusal_is_the_policys_answer() -> None:
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    run(phase, HeaderDecided(decision()))
    run(phase, UpstreamFailed(UpstreamUnavailable("reset")))
    run(phase, ClientData(WIRE[len(HEADER):], 0.1))
    assert isinstance(run(phase, InspectionDone(refused()))[-1], Decline)


def test_the_upstream_failing_after_the_final_dot() -> None:
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    run(phase, HeaderDecided(decision()))
    run(phase, ClientData(WIRE[len(HEADER):], 0.1))
    result = accepted(MESSAGE, ADDED + HEADER, len(HEADER), (("X-Gerbang", "ya"),))
    run(phase, InspectionDone(result))
    error = UpstreamUnavailable("timed out")
    assert run(phase, UpstreamFailed(error)) == [UpstreamLost(error, result)]


def test_the_client_vanishing_mid_stream_calls_the_upstream_off() -> None:
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    run(phase, HeaderDecided(decision()))
    assert [type(a) for a in run(phase, ClientGone())] == [AbortUpstream, ClientLost]


def test_header_decided_while_the_message_already_ended() -> None:
    # The whole message and a pipelined command in one read.
    phase = cut_phase()
    assert run(phase, ClientData(WIRE + b"QUIT\r\n", 0.1)) == [DecideHeader(HEADER)]
    batch = run(phase, HeaderDecided(decision()))
    assert [type(a) for a in batch][-2:] == [Unread, Inspect]
    assert batch[-2] == Unread(b"QUIT\r\n")
    assert upstream_bytes([batch]) == dot_stuff(ADDED + MESSAGE)[:-2]  # CRLF held back


@pytest.mark.parametrize(("wire", "why"), [
    (b"From: a@b\r\nSubject: " + b"x" * 3000 + b"\r\n\r\nbody\r\n.\r\n", "max_header_bytes"),
    (b"From: a@b\r\nSubject: no body\r\n.\r\n", "ended inside its header block"),
])
def test_falling_back_to_store_and_forward_in_the_same_upstream_data(wire: bytes,
                                                                     why: str) -> None:
    phase = cut_phase(max_header_bytes=1024)
    batch = run(phase, ClientData(wire, 0.1))
    assert batch == [Inspect(None)]
    assert phase.fallback is not None and why in phase.fallback
    result = accepted(phase.spool.read())
    assert run(phase, InspectionDone(result)) == [StoreAndForward(result, begun=True)]


def test_an_undecided_header_falls_back() -> None:
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    assert isinstance(run(phase, HeaderDecided(None))[-1], ReadClient)
    assert run(phase, ClientData(WIRE[len(HEADER):], 0.1)) == [Inspect(None)]
    result = accepted(MESSAGE)
    assert run(phase, InspectionDone(result)) == [StoreAndForward(result, begun=True)]


def test_an_empty_header_block() -> None:
    phase = cut_phase()
    assert run(phase, ClientData(b"\r\nbody\r\n.\r\n", 0.1)) == [DecideHeader(b"\r\n")]


def test_sender_auth_of_the_header_goes_to_the_inspection() -> None:
    from gateway.auth import AuthResults, DmarcResult, SpfResult
    auth = AuthResults(SpfResult("pass", "anm.gov.my"), DmarcResult("pass", "anm.gov.my"))
    phase = cut_phase()
    run(phase, ClientData(WIRE[:len(HEADER)], 0.1))
    run(phase, HeaderDecided(HeaderDecision(HEADER, HEADER, (), (), (), (), auth)))
    assert run(phase, ClientData(WIRE[len(HEADER):], 0.1))[-1] == Inspect(auth)


# -- the DATA clock ----------------------------------------------------------------------

def test_clock_total_deadline_counts_client_time_only() -> None:
    clock = DataClock(timeout=10.0, min_rate=0.0, window=5.0, grace=5.0)
    assert clock.allowance() == 10.0
    clock.record(4.0, 100)
    assert clock.allowance() == 6.0
    clock.record(6.0, 0)
    assert clock.allowance() <= 0 and "data_timeout" in clock.why()


def test_clock_rate_over_a_window_after_the_grace() -> None:
    clock = DataClock(timeout=1000.0, min_rate=100.0, window=10.0, grace=20.0)
    # Nothing needed before max(grace, window); by then the last window must hold 1000.
    assert clock.allowance() == 20.0
    clock.record(1.0, 5000)  # a burst early on
    # The burst leaves the window 10 s after it came, but the grace lasts to 20 s.
    assert clock.allowance() == pytest.approx(19.0)
    clock.record(19.0, 0)
    assert clock.allowance() <= 0 and "data_min_rate" in clock.why()


def test_clock_a_steady_client_is_never_too_slow() -> None:
    clock = DataClock(timeout=1000.0, min_rate=100.0, window=10.0, grace=10.0)
    for _ in range(200):
        clock.record(1.0, 150)
        assert clock.allowance() > 0
    assert clock.elapsed == 200.0


def test_clock_a_drip_is_cut_off_when_the_window_runs_dry() -> None:
    clock = DataClock(timeout=1000.0, min_rate=100.0, window=10.0, grace=10.0)
    for _ in range(30):
        clock.record(1.0, 1)  # one byte a second, each arrival "resets" nothing
        if clock.allowance() <= 0:
            break
    assert clock.elapsed <= 11.0 and clock.allowance() <= 0


def test_a_silent_client_past_its_allowance_is_too_slow() -> None:
    phase = DataPhase(settings(min_rate=100.0, rate_window=1.0, rate_grace=1.0))
    [_, read] = phase.start()
    assert isinstance(read, ReadClient) and read.timeout == 1.0
    [outcome] = run(phase, ClientSilent(1.0))
    assert isinstance(outcome, TooSlow) and "data_min_rate" in outcome.reason


def test_a_slow_client_in_cut_through_calls_the_upstream_off() -> None:
    phase = cut_phase(data_timeout=2.0)
    run(phase, ClientData(WIRE[:5], 1.0))
    abort, outcome = run(phase, ClientSilent(1.0))
    assert isinstance(abort, AbortUpstream) and isinstance(outcome, TooSlow)
