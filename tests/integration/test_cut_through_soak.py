"""The soak of test_soak.py with `cut_through: true`: every message ends exactly once.

The same seeded mix of clean mail, rule refusals decided at the final dot (RAHSIA,
oversize), upstream faults at every stage (a drop mid-stream among them) and clients
hanging up mid-DATA, through `gateway serve` relaying while it receives. Relayed means
the client got 250 and the upstream has the message once; anything else means the
upstream has no copy. Shorter than the store-and-forward soak (GATEWAY_CUT_SOAK_SECONDS,
default 15).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import time
from pathlib import Path

import yaml

from .faultkit import ScriptedUpstream, finish, serve
from .support import write_config
from .test_soak import CLIENTS, RULES, SEED, Sent, client_loop, fates

SECONDS = float(os.environ.get("GATEWAY_CUT_SOAK_SECONDS", "15"))


async def test_cut_through_soak_every_message_ends_exactly_once(tmp_path: Path) -> None:
    upstream = ScriptedUpstream(slow=2.0, lag=0.2)
    await upstream.start()
    config = write_config(tmp_path, upstream=upstream.url, rules=RULES)
    data = yaml.safe_load(config.read_text())
    data["cut_through"] = True
    config.write_text(yaml.safe_dump(data))
    served, addr = await serve(config, tmp_path)
    sent: list[Sent] = []
    try:
        await served.wait_for_line(r"cut-through on: messages are relayed while they arrive")
        deadline = time.monotonic() + SECONDS
        loops = [client_loop(n, addr, random.Random(SEED * 100 + n + 7), deadline, sent)
                 for n in range(CLIENTS)]
        await asyncio.wait_for(asyncio.gather(*loops), SECONDS + 60)
        await upstream.settled(15)
        served.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.proc.wait(), 15) == 0
    finally:
        await finish(served)
        await upstream.stop()

    counts = upstream.counts()
    problems = fates(sent, counts)
    strays = set(counts) - {f"<{s.mid}>" for s in sent}
    assert not strays, f"upstream has messages nobody sent: {strays}"
    assert not problems, "\n".join(problems[:40])
    by_kind = collections.Counter(s.kind for s in sent)
    assert len(sent) >= 50, by_kind
    assert {"clean", "rahsia", "oversize", "disconnect"} <= set(by_kind)
    # The refused messages were streamed and called off: DATA went upstream, no dot.
    aborted = sum(1 for seen in upstream.seen.values()
                  if "DATA" in seen and "<dot>" not in seen)
    assert aborted > 0
