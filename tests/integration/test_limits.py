"""Hostile clients meet bounds: connections, commands, bad commands, line lengths, idling."""

from __future__ import annotations

import time

from .raw_client import RawClient, open_transaction
from .support import FakeUpstream, GatewayFactory, in_thread


def greeted(addr: tuple[str, int]) -> tuple[RawClient, int, bytes]:
    c = RawClient(addr)
    code, text = c.reply()
    return c, code, text


async def test_connections_over_the_overall_limit_get_421_and_are_closed(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"max_connections": 2, "max_connections_per_ip": 10})

    def run() -> list[tuple[int, bytes, bytes]]:
        a, code_a, _ = greeted(gw.outbound)
        b, code_b, _ = greeted(gw.inbound)  # the limit spans every listener
        c, code_c, text_c = greeted(gw.outbound)
        after_c = c.rest()
        c.close()
        a.command(b"QUIT")
        a.rest()
        a.close()
        # A place is free again once a session has ended.
        deadline = time.monotonic() + 3
        while True:
            d, code_d, _ = greeted(gw.outbound)
            d.close()
            if code_d == 220 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        b.close()
        return [(code_a, b"", b""), (code_b, b"", b""), (code_c, text_c, after_c),
                (code_d, b"", b"")]

    (code_a, _, _), (code_b, _, _), (code_c, text_c, after_c), (code_d, _, _) = \
        await in_thread(run)
    assert (code_a, code_b) == (220, 220)
    assert code_c == 421 and text_c.startswith(b"421-4.7.0 ")
    assert b"Too many connections" in text_c
    assert after_c == b""  # closed right after the 421
    assert code_d == 220


async def test_connections_over_the_per_ip_limit_get_421(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"max_connections_per_ip": 1})

    def run() -> tuple[int, int, bytes]:
        a, code_a, _ = greeted(gw.outbound)
        try:
            b, code_b, text_b = greeted(gw.outbound)
            b.close()
        finally:
            a.close()
        return code_a, code_b, text_b

    code_a, code_b, text_b = await in_thread(run)
    assert code_a == 220
    assert code_b == 421 and text_b.startswith(b"421-4.7.0 ")


async def test_commands_over_the_session_budget_get_421_and_close(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"max_commands": 5})

    def run() -> tuple[list[int], int, bytes, bytes]:
        c, _, _ = greeted(gw.outbound)
        with c:
            codes = [c.command(b"EHLO client.test")[0]]
            codes += [c.command(b"NOOP")[0] for _ in range(4)]
            # Pipelined behind the command that breaks the budget: must not run.
            c.send(b"NOOP\r\nMAIL FROM:<a@anm.gov.my>\r\n")
            code, text = c.reply()
            return codes, code, text, c.rest()

    codes, code, text, rest = await in_thread(run)
    assert codes == [250] * 5
    assert code == 421 and text.startswith(b"421-4.7.0 ")
    assert b"Too many commands" in text
    assert rest == b""
    assert upstream.connections == 0


async def test_bad_commands_over_the_limit_get_421_and_close(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"max_bad_commands": 3})

    def run() -> tuple[list[int], bytes]:
        c, _, _ = greeted(gw.outbound)
        with c:
            c.command(b"EHLO client.test")
            codes = [c.command(b"RCPT TO:<b@example.com>")[0],  # out of sequence
                     c.command(b"MAIL")[0]]  # syntax
            c.send(b"DATA\r\nMAIL FROM:<a@anm.gov.my>\r\n")
            codes.append(c.reply()[0])
            return codes, c.rest()

    codes, rest = await in_thread(run)
    assert codes == [503, 501, 503]
    assert rest.startswith(b"421-4.7.0 ") and b"Too many bad commands" in rest
    assert rest.count(b"\r\n") == 2  # the 421 and nothing after it: MAIL never ran
    assert upstream.connections == 0


async def test_over_long_command_lines_get_500_and_the_session_goes_on(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def run() -> list[tuple[int, bytes]]:
        c, _, _ = greeted(gw.outbound)
        with c:
            out = [c.command(b"EHLO client.test")]
            out.append(c.command(b"NOOP " + b"x" * 600))  # over 512, under the read limit
            out.append(c.command(b"MAIL FROM:<" + b"a" * 200_000 + b"@anm.gov.my>"))
            out.append(c.command(b"MAIL FROM:<a@anm.gov.my>"))
            return out

    replies = await in_thread(run)
    assert [r[0] for r in replies] == [250, 500, 500, 250]
    # Malay then English, as every refusal of the gateway's own (arahan-terlalu-panjang).
    assert replies[1][1].startswith(b"500-5.5.2 ") and replies[2][1].startswith(b"500-5.5.2 ")
    assert b"500 5.5.2 Command line too long." in replies[1][1]
    assert upstream.commands.count("MAIL FROM:<a@anm.gov.my>") == 1


async def test_long_data_lines_are_accepted_and_relayed_as_sent(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    # RFC 5321 4.5.3.1.6 says 1000 octets, real mail has longer lines: accepted, and
    # memory stays bounded by the message size and the spool, not the line length.
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"spool_threshold": "4KB"})
    msg = b"Subject: long\r\n\r\n" + b"y" * 15_000 + b"\r\n" + b"z" * 999 + b"\r\n"

    def run() -> tuple[int, bytes]:
        with open_transaction(gw.outbound) as c:
            c.send(msg + b".\r\n")
            return c.reply()

    code, _ = await in_thread(run)
    assert code == 250
    assert upstream.messages[0].data == msg


async def test_idle_client_is_told_421_4_4_2_and_dropped(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"session_timeout": 0.5, "upstream_connect_timeout": 0.1,
                                    "upstream_timeout": 0.1, "inspection_timeout": 0.2})

    def run() -> tuple[int, float, bytes]:
        c, code, _ = greeted(gw.outbound)
        with c:
            c.command(b"EHLO client.test")
            start = time.monotonic()
            rest = c.rest()
            return code, time.monotonic() - start, rest

    code, waited, rest = await in_thread(run)
    assert code == 220
    assert rest.startswith(b"421-4.4.2 ") and b"Idle for too long" in rest
    assert 0.3 < waited < 4.0
