"""A bounded soak: a mixed stream of messages and faults through `gateway serve`, counting
that every message ends exactly once - relayed (the upstream has it once and the client
got 250) or refused to the client (4xx/5xx, the upstream does not have it). Zero lost,
zero duplicated.

The stream mixes clean mail, mail the rules refuse (RAHSIA subject, oversize), upstream
faults picked at random (4xx and 5xx at every stage, a drop mid-DATA, a hang-up, a stall
beyond the deadline, a lag within it) and clients that hang up mid-DATA. A seeded RNG
makes a failing run repeatable: GATEWAY_SOAK_SEED. It runs GATEWAY_SOAK_SECONDS
(default 30) with GATEWAY_SOAK_CLIENTS concurrent clients (default 4).

Not in the mix: a stall after the final dot (`slow-end`). There the upstream may keep a
message the gateway had to answer 451 for (RFC 1047); test_faults.py covers that case.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .faultkit import (
    DISCONNECTS,
    STAGES,
    Client,
    Outcome,
    ScriptedUpstream,
    finish,
    make_message,
    serve,
)
from .support import write_config

SECONDS = float(os.environ.get("GATEWAY_SOAK_SECONDS", "30"))
SEED = int(os.environ.get("GATEWAY_SOAK_SEED", "5005"))
CLIENTS = int(os.environ.get("GATEWAY_SOAK_CLIENTS", "4"))
RCPT = "b@example.com"

RULES = """
rules:
  - id: klasifikasi-rahsia
    description: "RAHSIA tidak dibenarkan"
    reference: "PPPA test"
    direction: both
    when: {classification: [RAHSIA BESAR, RAHSIA]}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "RAHSIA.", en: "Classified."}}
  - id: saiz-mesej
    description: "Mesej terlalu besar"
    reference: "PPPA test"
    direction: both
    when: {message_size_over: 20KB}
    action: reject
    reply: {code: 552, enhanced: "5.3.4", text: {ms: "Besar.", en: "Too big."}}
"""

# kind -> weight; a kind is a rule refusal, an upstream fault (faultkit's script) or a
# client hang-up. What each must end as is `expected()`.
MIX: dict[str, int] = {
    "clean": 30, "rahsia": 6, "oversize": 4, "disconnect": 6,
    **{f"tempfail-{s}": 2 for s in STAGES}, **{f"permfail-{s}": 2 for s in STAGES},
    **{f"lag-{s}": 2 for s in STAGES},
    "slow-mail": 1, "slow-rcpt": 1, "slow-data": 1,
    "close-mail": 1, "hangup-mail": 1, "close-rcpt": 1, "close-data": 1, "close-end": 1,
    "drop-body": 2,
}


def expected(kind: str) -> str:
    """The class of the client's outcome: '2', '4', '5', or '-' (the client hung up)."""
    if kind in ("clean",) or kind.startswith("lag-"):
        return "2"
    if kind in ("rahsia", "oversize") or kind.startswith("permfail-"):
        return "5"
    if kind == "disconnect":
        return "-"
    return "4"


@dataclass
class Sent:
    mid: str
    kind: str
    outcome: Outcome | None = None
    error: str | None = None


async def client_loop(n: int, addr: tuple[str, int], rng: random.Random, deadline: float,
                      sent: list[Sent]) -> None:
    kinds, weights = list(MIX), list(MIX.values())
    for i in range(100_000):  # bounded; the deadline ends it long before
        if time.monotonic() > deadline:
            return
        try:
            c = await Client.connect(addr)
        except (ConnectionError, OSError, TimeoutError) as exc:
            sent.append(Sent(f"connect{n}.{i}", "connect", error=repr(exc)))
            return
        try:
            for j in range(rng.randint(1, 4)):
                kind = rng.choices(kinds, weights)[0]
                mid = f"soak{n}.{i}.{j}@anm.gov.my"
                record = Sent(mid, kind)
                sent.append(record)
                sender = "a@anm.gov.my"
                subject, body = f"Laporan {mid}", b"Isi laporan.\r\n" * rng.randint(1, 60)
                disconnect = None
                if kind == "rahsia":
                    subject = f"RAHSIA: {subject}"
                elif kind == "oversize":
                    body = (b"z" * 998 + b"\r\n") * 30
                elif kind == "disconnect":
                    disconnect = rng.choice(DISCONNECTS)
                elif kind != "clean":
                    sender = f"a+{kind}@anm.gov.my"
                try:
                    record.outcome = await c.transaction(
                        sender, [RCPT], make_message(mid, subject=subject, body=body),
                        disconnect=disconnect)
                except (ConnectionError, OSError, TimeoutError) as exc:
                    record.error = repr(exc)
                    break
                if disconnect is not None:
                    break
        finally:
            await c.quit()


def fates(sent: list[Sent], counts: Mapping[str | None, int]) -> list[str]:
    """Every message whose fate is wrong: no outcome, 250 but not exactly one copy
    upstream, refused or abandoned yet upstream, or ended otherwise than its kind
    expects. `counts`: copies upstream by Message-ID."""
    problems: list[str] = []
    for s in sent:
        got = counts.get(f"<{s.mid}>", 0)
        if s.error is not None or s.outcome is None:
            problems.append(f"{s.mid} {s.kind}: no outcome ({s.error})")
            continue
        code = s.outcome.code
        if code == 250 and s.outcome.stage == "end":
            if got != 1:
                problems.append(f"{s.mid} {s.kind}: 250 to the client, {got} upstream")
        elif got != 0:
            problems.append(f"{s.mid} {s.kind}: refused ({code}) or abandoned, "
                            f"yet {got} upstream")
        ended = "-" if code is None else str(code)[0]
        if ended != expected(s.kind):
            problems.append(f"{s.mid} {s.kind}: ended {code} {s.outcome.text!r}, "
                            f"expected {expected(s.kind)}xx")
    return problems


async def test_soak_every_message_ends_exactly_once(tmp_path: Path) -> None:
    upstream = ScriptedUpstream(slow=2.0, lag=0.2)
    await upstream.start()
    config = write_config(tmp_path, upstream=upstream.url, rules=RULES)
    served, addr = await serve(config, tmp_path)
    proc = served.proc
    sent: list[Sent] = []
    try:
        deadline = time.monotonic() + SECONDS
        loops = [client_loop(n, addr, random.Random(SEED * 100 + n), deadline, sent)
                 for n in range(CLIENTS)]
        await asyncio.wait_for(asyncio.gather(*loops), SECONDS + 60)
        await upstream.settled(15)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await finish(served)
        await upstream.stop()

    counts = upstream.counts()
    problems = fates(sent, counts)
    strays = set(counts) - {f"<{s.mid}>" for s in sent}
    assert not strays, f"upstream has messages nobody sent: {strays}"
    assert not problems, "\n".join(problems[:40])
    by_kind = collections.Counter(s.kind for s in sent)
    # Enough traffic that every part of the mix was exercised, even on a slow machine.
    assert len(sent) >= 100, by_kind
    assert {"clean", "rahsia", "oversize", "disconnect", "drop-body"} <= set(by_kind)
    relayed = sum(1 for s in sent if s.outcome and s.outcome.accepted)
    print(f"soak: {len(sent)} messages in {SECONDS:g}s, {relayed} relayed, "
          f"{len(sent) - relayed} refused or abandoned; seed {SEED}")
