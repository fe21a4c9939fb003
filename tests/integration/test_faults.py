"""Faults around the gateway: an upstream that refuses, hangs up or stalls at each stage,
clients that vanish mid-DATA, and the deadlines that keep a client retry from making a
second copy. Real gateway, real upstream server (tests/integration/faultkit.py).

Cases already covered in test_smtp_proxy.py (upstream down, upstream 4xx/5xx passed back,
slow MAIL/END answered 451, drop mid-DATA, one client disconnect) are not repeated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gateway.problems import LoadError

from .faultkit import DISCONNECTS, Client, ScriptedUpstream, make_message
from .support import GatewayFactory, GatewayHandle

RCPT = "b@example.com"
UPSTREAM_TIMEOUT = 1.0  # support.write_config gives the upstream 1 s per stage


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    up = ScriptedUpstream(slow=UPSTREAM_TIMEOUT + 1.5)
    await up.start()
    yield up
    await up.stop()


async def sessions_gone(gw: GatewayHandle) -> None:
    async with asyncio.timeout(5):
        while gw.gateway.ctx.sessions:
            await asyncio.sleep(0.02)


async def test_upstream_refusing_at_connect_is_451_4_4_1_then_recovers(
        make_gateway: GatewayFactory, scripted: ScriptedUpstream) -> None:
    gw = await make_gateway(upstream=scripted.url)
    scripted.greeting = "421 4.3.2 Service not available, closing"
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("r1@anm.gov.my"))
        assert (out.code, out.stage) == (451, "mail")
        assert out.text.startswith("4.4.1 ")
        assert "421" not in out.text and "4.3.2" not in out.text  # no upstream internals
        assert all(seen == [] for seen in scripted.seen.values())  # not even EHLO
        # The upstream is back: the same client session carries on.
        scripted.greeting = "220 upstream.test ESMTP"
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("r2@anm.gov.my"))
        assert out.accepted
    finally:
        await c.quit()
    assert scripted.counts() == {"<r2@anm.gov.my>": 1}
    [rec] = gw.records()
    assert (rec["event"], rec["smtp_code"], rec["enhanced_code"]) == ("tempfail", 451, "4.4.1")


@pytest.mark.parametrize(("fault", "stage"), [("close-mail", "mail"),
                                              ("hangup-mail", "rcpt"),
                                              ("close-rcpt", "rcpt"),
                                              ("close-data", "end")])
async def test_upstream_closing_mid_transaction_is_451_4_4_1(
        make_gateway: GatewayFactory, scripted: ScriptedUpstream, fault: str,
        stage: str) -> None:
    # close-X: the upstream hangs up instead of answering X; hangup-mail: it says 250 to
    # MAIL and then hangs up, so the loss shows only at the next command.
    gw = await make_gateway(upstream=scripted.url)
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction(f"a+{fault}@anm.gov.my", [RCPT], make_message("c1@x"))
        assert (out.code, out.stage) == (451, stage)
        assert out.text.startswith("4.4.1 ")
        # The session is still usable and a fresh upstream connection is made.
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("c2@x"))
        assert out.accepted
    finally:
        await c.quit()
    assert scripted.counts() == {"<c2@x>": 1}
    assert not any("<dot>" in seen for seen in list(scripted.seen.values())[:-1])


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data", "end"])
async def test_slow_upstream_at_each_stage_is_451_and_never_relayed_later(
        make_gateway: GatewayFactory, scripted: ScriptedUpstream, stage: str) -> None:
    gw = await make_gateway(upstream=scripted.url)
    c = await Client.connect(gw.outbound)
    started = time.monotonic()
    try:
        out = await c.transaction(f"a+slow-{stage}@anm.gov.my", [RCPT],
                                  make_message("s1@x"))
    finally:
        await c.quit()
    waited = time.monotonic() - started
    assert out.code == 451 and out.text.startswith("4.4.1 "), out
    assert out.stage == ("end" if stage in ("data", "end") else stage)
    # Answered at the gateway's deadline, not the upstream's pace. A reused idle
    # connection gets one fresh retry at MAIL, hence up to two deadlines.
    assert waited < 2 * UPSTREAM_TIMEOUT + 1.0
    await scripted.settled()  # the slow upstream has woken up and seen what was left
    [conn] = scripted.seen.values()
    if stage == "end":
        # The final dot had gone out: the upstream may keep the message (RFC 1047). The
        # gateway must not add to that: it hung up and sent nothing more.
        assert conn[conn.index("<dot>") + 1:] == ["<eof>"]
        assert len(scripted.kept) == 1
    else:
        assert "<dot>" not in conn
        assert conn[-1] == "<eof>"  # the gateway dropped the stalled connection
        assert scripted.kept == []


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
async def test_client_retry_after_slow_upstream_makes_one_copy(
        make_gateway: GatewayFactory, scripted: ScriptedUpstream, stage: str) -> None:
    """The 451 comes before the final dot ever reaches the upstream, so the client's retry
    of the same message is the only copy there, even though the stalled upstream wakes
    up after the retry has been accepted."""
    gw = await make_gateway(upstream=scripted.url)
    msg = make_message("retry@anm.gov.my")
    scripted.queued.append(f"slow-{stage}")
    outcomes = []
    for _ in range(2):  # a client queue retrying at once, on a new connection
        c = await Client.connect(gw.outbound)
        try:
            outcomes.append(await c.transaction("a@anm.gov.my", [RCPT], msg))
        finally:
            await c.quit()
    assert [o.code for o in outcomes] == [451, 250]
    assert scripted.open_connections() >= 1  # the first upstream is still stalled now
    await scripted.settled()
    assert scripted.counts() == {"<retry@anm.gov.my>": 1}
    first, *_ = scripted.seen.values()
    assert "<dot>" not in first and "." not in first
    assert first[-1] == "<eof>"


@pytest.mark.parametrize("point", DISCONNECTS)
@pytest.mark.parametrize("kind", ["smtp", "maildir"])
async def test_client_disconnect_mid_data_delivers_nothing(
        make_gateway: GatewayFactory, scripted: ScriptedUpstream, tmp_path: Path,
        point: str, kind: str) -> None:
    box = tmp_path / "mail"
    gw = await make_gateway(upstream=scripted.url if kind == "smtp" else f"maildir:{box}")
    body = b"".join(b"line %d of the body\r\n" % i for i in range(200))
    c = await Client.connect(gw.outbound)
    out = await c.transaction("a@anm.gov.my", [RCPT], make_message("d1@x", body=body),
                              disconnect=point)
    assert out.code is None
    await sessions_gone(gw)
    await scripted.settled()
    # Nothing went upstream beyond the envelope, and nothing is in the Maildir.
    assert scripted.kept == []
    assert not any("DATA" in seen for seen in scripted.seen.values())
    if kind == "maildir":
        assert list((box / "new").iterdir()) == []
        assert list((box / "tmp").iterdir()) == []
    # The gateway is unharmed: the next client's message goes through.
    c = await Client.connect(gw.outbound)
    try:
        out = await c.transaction("a@anm.gov.my", [RCPT], make_message("d2@x"))
    finally:
        await c.quit()
    assert out.accepted
    if kind == "maildir":
        assert len(list((box / "new").iterdir())) == 1
    else:
        assert scripted.counts() == {"<d2@x>": 1}
    # A client hanging up is not the gateway's failure: nothing to log as one.
    assert [r for r in gw.records() if r.get("reason") == "internal error"] == []


def _config_with(tmp_path: Path, limits: dict[str, float]) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({
        "listeners": [{"name": "o", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": "maildir:mail", "agency_domains": ["anm.gov.my"],
        "rules_dir": str(tmp_path), "limits": limits}))
    return path


@pytest.mark.parametrize("limits", [
    {"session_timeout": 60, "upstream_timeout": 60},
    {"session_timeout": 60, "upstream_timeout": 90},
    {"session_timeout": 60, "upstream_connect_timeout": 61},
    {"session_timeout": 60, "inspection_timeout": 60},
    {"session_timeout": 60, "inspection_timeout": 40, "upstream_timeout": 30},
])
def test_stage_deadlines_not_shorter_than_session_timeout_is_a_load_error(
        tmp_path: Path, limits: dict[str, float]) -> None:
    with pytest.raises(LoadError) as exc:
        load_config(_config_with(tmp_path, limits))
    [problem] = exc.value.problems
    text = str(problem)
    assert "gw.yaml:" in text and "session_timeout" in text
    assert problem.line is not None and problem.line > 1  # the limits: block, not line 1


def test_shipped_and_default_deadlines_are_shorter_than_the_session_timeout(
        tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    for config in (load_config(repo / "config" / "gateway.yaml"),
                   load_config(_config_with(tmp_path, {}))):
        lim = config.limits
        for stage in (lim.upstream_connect_timeout, lim.upstream_timeout,
                      lim.inspection_timeout):
            assert stage < lim.session_timeout
        # After the final dot the client waits for inspection and the upstream's answer.
        assert lim.inspection_timeout + lim.upstream_timeout < lim.session_timeout
    ok = load_config(_config_with(tmp_path, {"session_timeout": 10, "upstream_timeout": 4,
                                             "inspection_timeout": 5,
                                             "upstream_connect_timeout": 9}))
    assert ok.limits.session_timeout == 10
