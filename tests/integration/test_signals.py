"""Signals during traffic, on `python -m gateway serve` as a real process.

SIGTERM: the gateway stops accepting, tells idle clients 421, lets every transaction
in flight finish (relayed and acknowledged) and exits 0. SIGHUP, sent again and again
while clients keep sending: every message gets exactly one outcome, and a transaction
that starts after a reload is judged by the new rules.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .faultkit import Client, Outcome, ScriptedUpstream, finish, make_message, serve
from .support import GatewayFactory, write_config

RCPT = "b@example.com"


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    up = ScriptedUpstream(lag=1.0)
    await up.start()
    yield up
    await up.stop()


async def test_sigterm_drains_in_flight_transactions_then_exits_0(
        tmp_path: Path, scripted: ScriptedUpstream) -> None:
    config = write_config(tmp_path, upstream=scripted.url, limits={"upstream_timeout": 4.0})
    served, addr = await serve(config, tmp_path)
    try:
        # Waiting for the upstream's answer to their final dot (it lags 1 s) at SIGTERM.
        at_end = [await Client.connect(addr) for _ in range(4)]
        ending = [asyncio.ensure_future(c.transaction("a+lag-end@anm.gov.my", [RCPT],
                                                      make_message(f"end{i}@x")))
                  for i, c in enumerate(at_end)]
        # Between RCPT and DATA at SIGTERM; they send the message afterwards.
        mid = [await Client.connect(addr) for _ in range(3)]
        for c in mid:
            assert (await c.command("MAIL FROM:<a@anm.gov.my>"))[0] == 250
            assert (await c.command(f"RCPT TO:<{RCPT}>"))[0] == 250
        idle = [await Client.connect(addr) for _ in range(2)]
        async with asyncio.timeout(5):
            while sum("<dot>" in s for s in scripted.seen.values()) < len(at_end):
                await asyncio.sleep(0.01)

        mark = len(served.lines)
        served.proc.send_signal(signal.SIGTERM)
        await served.wait_for_line(r"stopping: draining", mark)
        # Idle clients are told the gateway is going away.
        for c in idle:
            code, text = await c.reply()
            assert code == 421 and text.startswith("4.3.")
            c.close()
        # No new connections (or, in the instant before the listener closes, only a 421).
        try:
            late = await Client.connect(addr, timeout=3)
        except (ConnectionError, OSError) as exc:
            assert "greeting 220" not in str(exc)
        else:
            late.close()
            raise AssertionError("a new client was served after SIGTERM")

        finishing = [asyncio.ensure_future(_data(c, make_message(f"mid{i}@x")))
                     for i, c in enumerate(mid)]
        outcomes = await asyncio.wait_for(asyncio.gather(*ending, *finishing), 10)
        started = time.monotonic()
        assert await asyncio.wait_for(served.proc.wait(), 10) == 0
        assert time.monotonic() - started < 5  # well inside the 30 s drain deadline
    finally:
        await finish(served)
    assert [o.code for o in outcomes] == [250] * 7, outcomes
    counts = scripted.counts()
    expected = {f"<end{i}@x>" for i in range(4)} | {f"<mid{i}@x>" for i in range(3)}
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    assert any("gateway stopped" in line for line in served.lines)


async def _data(c: Client, msg: bytes) -> Outcome:
    try:
        code, text = await c.command("DATA")
        if code != 354:
            return Outcome(code, text, "data")
        c.writer.write(msg + b".\r\n")
        code, text = await c.reply()
        return Outcome(code, text, "end")
    finally:
        c.close()


RULES = """
rules:
  - id: larangan
    description: "Subjek dilarang"
    reference: "PPPA test"
    direction: both
    when: {{subject_matches: "{word}"}}
    action: reject
    reply: {{code: 550, enhanced: "5.7.1", text: {{ms: "Dilarang.", en: "Forbidden."}}}}
"""


@dataclass
class Sent:
    kind: str  # the word in the subject
    mid: str
    started: float  # when MAIL went out
    outcome: Outcome | None


async def test_sighup_during_traffic_every_message_one_outcome_new_rules_apply(
        tmp_path: Path, scripted: ScriptedUpstream) -> None:
    config = write_config(tmp_path, upstream=scripted.url, rules=RULES.format(word="ALPHA"))
    rule_file = tmp_path / "rules" / "10-test.yaml"
    served, addr = await serve(config, tmp_path)
    sent: list[Sent] = []
    stop = asyncio.Event()

    async def sender(n: int) -> None:
        for i in range(400):  # bounded; stopped by `stop` long before
            if stop.is_set():
                return
            c = await Client.connect(addr)
            try:
                for j in range(3):  # a few transactions per connection
                    kind = ("ALPHA", "BETA")[(i + j + n) % 2]
                    mid = f"s{n}.{i}.{j}@x"
                    record = Sent(kind, mid, time.monotonic(), None)
                    sent.append(record)
                    record.outcome = await c.transaction(
                        "a@anm.gov.my", [RCPT], make_message(mid, subject=f"{kind} {mid}"))
            finally:
                await c.quit()

    # (the moment SIGHUP was sent, the moment the reload was seen done, word now in force)
    reloads: list[tuple[float, float, str]] = [(0.0, 0.0, "ALPHA")]
    senders = [asyncio.ensure_future(sender(n)) for n in range(3)]
    try:
        for k in range(6):
            await asyncio.sleep(0.6)
            word = ("BETA", "ALPHA")[k % 2]
            rule_file.write_text(RULES.format(word=word))
            mark = len(served.lines)
            sent_at = time.monotonic()
            served.proc.send_signal(signal.SIGHUP)
            await served.wait_for_line(r"policy reloaded", mark)
            reloads.append((sent_at, time.monotonic(), word))
        await asyncio.sleep(0.6)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*senders), 15)
        served.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.proc.wait(), 10) == 0
    finally:
        stop.set()
        for task in senders:
            task.cancel()
        await finish(served)

    counts = scripted.counts()
    judged = 0
    for s in sent:
        assert s.outcome is not None and s.outcome.code in (250, 550), s
        assert counts[f"<{s.mid}>"] == (1 if s.outcome.code == 250 else 0), s
        # The rules in force for certain when this transaction started: it began after
        # one reload was seen done and before the next SIGHUP went out.
        for (_, done, word), (next_sent, _, _) in zip(
                reloads, [*reloads[1:], (float("inf"), 0.0, "")], strict=True):
            if done < s.started < next_sent:
                assert s.outcome.code == (550 if s.kind == word else 250), (s, word)
                judged += 1
    assert sum(counts.values()) == sum(1 for s in sent if s.outcome and s.outcome.code == 250)
    assert len(sent) >= 30 and judged >= 20, (len(sent), judged)
    assert {s.kind for s in sent if s.outcome and s.outcome.code == 550} == {"ALPHA", "BETA"}


async def test_drain_deadline_closes_a_stalled_transaction_without_relaying(
        make_gateway: GatewayFactory, scripted: ScriptedUpstream) -> None:
    """A client that stalls mid-transaction cannot hold the stop past the drain deadline,
    and what it had not finished is not relayed (it never heard 250)."""
    gw = await make_gateway(upstream=scripted.url)
    stalled = await Client.connect(gw.outbound)
    assert (await stalled.command("MAIL FROM:<a@anm.gov.my>"))[0] == 250
    assert (await stalled.command(f"RCPT TO:<{RCPT}>"))[0] == 250
    assert (await stalled.command("DATA"))[0] == 354
    stalled.writer.write(make_message("stalled@x")[:40])
    await stalled.writer.drain()
    started = time.monotonic()
    await gw.gateway.stop(drain_timeout=1.0)
    assert 0.9 < time.monotonic() - started < 4
    with pytest.raises((ConnectionError, TimeoutError)):
        await stalled.reply()
    stalled.close()
    await scripted.settled()
    assert scripted.kept == []
