"""The SMTP proxy end to end: real client (smtplib), real gateway, real upstream server."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from pathlib import Path

import pytest

from gateway import pipeline

from .support import (
    FakeUpstream,
    GatewayFactory,
    client,
    in_thread,
    message,
    transaction,
)

RCPT = "b@example.com"


def send(addr: tuple[str, int], msg: bytes, sender: str = "a@anm.gov.my",
         rcpts: tuple[str, ...] = (RCPT,)) -> tuple[int, bytes]:
    """One transaction; the reply to the end of DATA (or the first refusal)."""
    return transaction(addr, msg, mail_from=sender, rcpts=rcpts)


async def test_accepted_mail_reaches_upstream_byte_for_byte(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    body = (b".leading dot line\r\n..two dots\r\n.\tdot tab\r\nodd\tcontrol \x0b\x0c\r\n"
            b"8-bit: \xe2\x9c\x93 \xff\r\n" + b"x" * 3000 + b"\r\n\r\n.\r\n trailing\r\n")
    msg = message(body=body, extra=b"X-Odd:   spaced  \r\n")
    code, text = await in_thread(lambda: send(gw.outbound, msg))
    assert code == 250
    assert b"queued as X1" in text  # the upstream's own reply is the client's reply
    assert len(upstream.messages) == 1
    got = upstream.messages[0]
    assert got.data == msg
    assert got.mail_from == "a@anm.gov.my"
    assert got.rcpt_to == [RCPT]
    assert gw.records() == []  # an accepted, untagged message is not in the rejection log


async def test_bare_lf_or_cr_is_refused_by_default_and_never_relayed(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    # Bare newlines are refused (SMTP smuggling, see test_smuggling.py), so byte-exact
    # relay holds for every message the gateway accepts.
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    for body in (b"bare\nLF\r\n", b"bare\rCR\r\n"):
        code, text = await in_thread(lambda body=body: send(gw.outbound, message(body=body)))
        assert code == 550
        assert text.startswith(b"5.6.11 ")
        assert b"bare CR or LF" in text and b"rule=baris-tidak-sah" in text
    assert upstream.messages == []
    assert [r["rule_id"] for r in gw.records()] == ["baris-tidak-sah"] * 2


async def test_rule_reject_is_multiline_with_rule_and_ref_and_logged(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    msg = message(sender="x@blocked.anm.gov.my", subject="Laporan")
    code, text = await in_thread(lambda: send(gw.outbound, msg, sender="x@blocked.anm.gov.my"))
    assert code == 550
    lines = text.decode().splitlines()
    assert lines[0].startswith("5.7.1 Penghantar disekat")
    assert lines[1].startswith("5.7.1 Sender blocked")
    assert "rule=penghantar-dilarang" in lines[-1]
    ref = lines[-1].split("ref=")[1].strip()
    assert upstream.messages == []
    assert "RSET" in upstream.commands  # the upstream transaction was abandoned
    [rec] = gw.records()
    assert rec["ref"] == ref
    assert rec["event"] == "reject"
    assert rec["rule_id"] == "penghantar-dilarang"
    assert rec["reference"] == "PPPA test 2"
    assert rec["listener"] == "outbound" and rec["direction"] == "outbound"
    assert rec["client_ip"] == "127.0.0.1"
    assert rec["helo"] == "client.test"
    assert rec["mail_from"] == "x@blocked.anm.gov.my"
    assert rec["rcpt_to"] == [RCPT]
    assert rec["subject"] == "Laporan"
    assert rec["message_id"] == "<m1@anm.gov.my>"
    assert rec["size"] == len(msg)
    assert (rec["smtp_code"], rec["enhanced_code"]) == (550, "5.7.1")


async def test_upstream_refusals_are_passed_back(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    upstream.answers["RCPT"] = "550-5.1.1 No such user here\r\n550 5.1.1 second line"
    code, text = await in_thread(lambda: send(gw.outbound, message()))
    assert code == 550
    assert text == b"5.1.1 No such user here\n5.1.1 second line"

    upstream.answers.clear()
    upstream.answers["END"] = "554 5.7.1 Content refused upstream"
    code, text = await in_thread(lambda: send(gw.outbound, message()))
    assert (code, text) == (554, b"5.7.1 Content refused upstream")

    upstream.answers.clear()
    upstream.answers["MAIL"] = "452 4.3.1 Insufficient system storage"
    code, text = await in_thread(lambda: send(gw.outbound, message()))
    assert (code, text) == (452, b"4.3.1 Insufficient system storage")
    assert upstream.messages == []


async def test_upstream_down_is_451_4_4_1(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{port}")
    code, text = await in_thread(lambda: send(gw.outbound, message()))
    assert code == 451
    assert text.startswith(b"4.4.1 ")
    ref = text.decode().rsplit("ref=", 1)[1]
    [rec] = gw.records()
    assert (rec["event"], rec["ref"], rec["smtp_code"]) == ("tempfail", ref, 451)
    assert str(port) not in text.decode()  # no internals in the reply


@pytest.mark.parametrize("stage", ["MAIL", "END"])
async def test_slow_upstream_is_451_4_4_1(make_gateway: GatewayFactory, upstream: FakeUpstream,
                                          stage: str) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    upstream.delay[stage] = 2.0  # the test config gives the upstream 1 s
    code, text = await in_thread(lambda: send(gw.outbound, message()))
    assert code == 451
    assert text.startswith(b"4.4.1 ")


async def test_upstream_dropping_mid_data_is_never_250(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    upstream.drop_mid_data = True
    msg = message(body=(b"y" * 998 + b"\r\n") * 15)
    code, text = await in_thread(lambda: send(gw.outbound, msg))
    assert 400 <= code < 500
    assert text.startswith(b"4.4.1 ")
    assert upstream.messages == []


async def test_exception_in_inspection_is_451_4_3_0_without_internals(
        make_gateway: GatewayFactory, upstream: FakeUpstream,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # No registered check raises on any input we could find, so this one test
    # replaces the pipeline with one that fails the way a bug would.
    def broken(*args: object, **kwargs: object) -> pipeline.Inspection:
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(pipeline, "inspect", broken)
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    code, text = await in_thread(lambda: send(gw.outbound, message()))
    assert code == 451
    assert text.startswith(b"4.3.0 ")
    assert b"secret" not in text and b"RuntimeError" not in text
    ref = text.decode().rsplit("ref=", 1)[1]
    [rec] = gw.records()
    assert rec["ref"] == ref
    assert (rec["event"], rec["rule_id"], rec["reason"]) == \
        ("tempfail", "ralat-dalaman", "internal error")
    assert upstream.messages == []


async def test_declared_size_too_big_is_refused_at_mail(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def run() -> tuple[int, bytes]:
        s = client(gw.outbound)
        try:
            return s.mail("a@anm.gov.my", ["SIZE=30000"])
        finally:
            s.close()

    code, text = await in_thread(run)
    assert code == 552
    assert text.startswith(b"5.3.4 ")
    assert b"rule=saiz-maksimum" in text
    assert upstream.connections == 0
    [rec] = gw.records()
    assert rec["rule_id"] == "saiz-maksimum" and rec["event"] == "reject"


async def test_oversize_data_is_drained_then_refused_and_session_goes_on(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def run() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        s = client(gw.outbound)
        try:
            s.mail("a@anm.gov.my")
            s.rcpt(RCPT)
            big = s.data(message(body=(b"z" * 998 + b"\r\n") * 40))  # ~40 KB > 20 KB
            s.mail("a@anm.gov.my")
            s.rcpt(RCPT)
            small = s.data(message(subject="after"))
            return big, small
        finally:
            s.close()

    (code, text), (code2, _) = await in_thread(run)
    assert code == 552
    assert text.startswith(b"5.3.4 ")
    assert code2 == 250
    assert len(upstream.messages) == 1
    assert b"Subject: after" in upstream.messages[0].data


async def test_outbound_from_foreign_network_is_refused(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            relay_networks=["192.0.2.0/24"])
    code, text = await in_thread(lambda: send(gw.outbound, message()))
    assert code == 554
    assert text.startswith(b"5.7.1 ")
    assert b"rule=relay-access" in text
    assert upstream.connections == 0
    [rec] = gw.records()
    assert (rec["rule_id"], rec["event"]) == ("relay-access", "reject")
    # Inbound takes mail from anyone, for the agency only.
    code, _ = await in_thread(lambda: send(gw.inbound, message(), rcpts=("c@anm.gov.my",)))
    assert code == 250


async def test_outbound_sender_must_be_agency_null_sender_allowed(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    code, text = await in_thread(lambda: send(gw.outbound, message(), sender="x@gmail.com"))
    assert code == 550
    assert b"rule=relay-sender" in text
    code, _ = await in_thread(lambda: send(gw.outbound, message(), sender=""))
    assert code == 250
    assert upstream.messages[0].mail_from == ""
    code, _ = await in_thread(lambda: send(gw.outbound, message(), sender="p@kl.anm.gov.my"))
    assert code == 250


@pytest.mark.parametrize("path", ["<user%victim.example@anm.gov.my>",
                                  "<@relay.example,@other.example:user@anm.gov.my>",
                                  "<user@[192.0.2.1]>",
                                  '<"victim@evil.example"@anm.gov.my>',
                                  '<"victim\\@evil.example"@anm.gov.my>',
                                  "<evil.example!victim@anm.gov.my>"])
async def test_routing_addresses_are_refused(make_gateway: GatewayFactory,
                                             upstream: FakeUpstream, path: str) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def run(addr: tuple[str, int]) -> tuple[int, bytes]:
        s = client(addr)
        try:
            s.mail("a@anm.gov.my")
            return s.docmd("RCPT", f"TO:{path}")
        finally:
            s.close()

    for addr in (gw.outbound, gw.inbound):
        code, text = await in_thread(lambda addr=addr: run(addr))  # type: ignore[misc]
        assert code == 550, text
        assert b"rule=relay-address" in text
    assert not any(c.startswith("RCPT") for c in upstream.commands)


async def test_inbound_to_foreign_recipient_is_refused(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    code, text = await in_thread(lambda: send(gw.inbound, message(), sender="x@gmail.com",
                                              rcpts=("victim@example.com",)))
    assert code == 554
    assert b"rule=relay-access" in text
    code, _ = await in_thread(lambda: send(gw.inbound, message(), sender="x@gmail.com",
                                           rcpts=("b@jkr.anm.gov.my",)))
    assert code == 250
    assert [m.rcpt_to for m in upstream.messages] == [["b@jkr.anm.gov.my"]]


async def test_maildir_delivery_writes_exact_bytes(make_gateway: GatewayFactory,
                                                   tmp_path: Path) -> None:
    box = tmp_path / "mail"
    gw = await make_gateway(upstream=f"maildir:{box}")
    msg = message(body=b".dot\r\nline\r\n")
    code, text = await in_thread(lambda: send(gw.outbound, msg, rcpts=(RCPT, "c@example.com")))
    assert code == 250
    assert text.startswith(b"2.0.0 ")
    files = list((box / "new").iterdir())
    assert len(files) == 1
    assert files[0].read_bytes() == msg
    assert list((box / "tmp").iterdir()) == []
    assert (box / "cur").is_dir()


async def test_ehlo_advertises_extensions(make_gateway: GatewayFactory,
                                          upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def run() -> tuple[int, bytes]:
        s = smtplib.SMTP(*gw.outbound, timeout=5)
        try:
            return s.ehlo("client.test")
        finally:
            s.close()

    code, text = await in_thread(run)
    assert code == 250
    lines = text.decode().splitlines()
    assert lines[0] == "gw.test"
    assert "SIZE 20480" in lines
    for ext in ("8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES", "SMTPUTF8"):
        assert ext in lines


async def test_many_transactions_on_one_connection(make_gateway: GatewayFactory,
                                                   upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def run() -> list[int]:
        s = client(gw.outbound)
        codes = []
        try:
            for i in range(3):
                s.mail("a@anm.gov.my")
                s.rcpt(RCPT)
                codes.append(s.data(message(subject=f"n{i}"))[0])
            s.mail("a@anm.gov.my")
            codes.append(s.rset()[0])
            s.mail("x@blocked.anm.gov.my")
            s.rcpt(RCPT)
            codes.append(s.data(message(subject="blocked"))[0])
            s.mail("a@anm.gov.my")
            s.rcpt(RCPT)
            codes.append(s.data(message(subject="last"))[0])
            codes.append(s.quit()[0])
        finally:
            s.close()
        return codes

    codes = await in_thread(run)
    assert codes == [250, 250, 250, 250, 550, 250, 221]
    assert [m.data.split(b"Subject: ")[1][:4] for m in upstream.messages] == \
        [b"n0\r\n", b"n1\r\n", b"n2\r\n", b"last"]
    assert upstream.connections == 1  # the upstream connection is kept between transactions


async def test_pipelined_commands(make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    msg = message(subject="pipelined")

    def run() -> bytes:
        with socket.create_connection(gw.outbound, timeout=5) as sock:
            f = sock.makefile("rb")

            def reply() -> bytes:
                out = b""
                while True:
                    line = f.readline()
                    assert line, "connection closed"
                    out += line
                    if line[3:4] == b" ":
                        return out

            reply()  # greeting
            sock.sendall(b"EHLO client.test\r\n")
            reply()
            sock.sendall(b"MAIL FROM:<a@anm.gov.my>\r\nRCPT TO:<b@example.com>\r\n"
                         b"RCPT TO:<c@example.com>\r\nDATA\r\n")
            got = reply() + reply() + reply() + reply()
            # The message, its end and the next commands in one write.
            sock.sendall(msg + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
            got += reply() + reply() + reply() + reply()
            return got

    got = (await in_thread(run)).decode()
    codes = [line[:3] for line in got.splitlines() if line[3:4] == " "]
    assert codes == ["250", "250", "250", "354", "250", "250", "250", "221"]
    assert "250 2.0.0 OK" in got  # aiosmtpd's own replies carry enhanced codes too
    assert [m.data for m in upstream.messages] == [msg]
    assert upstream.messages[0].rcpt_to == [RCPT, "c@example.com"]


async def test_client_disconnect_closes_upstream(make_gateway: GatewayFactory,
                                                 upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")

    def run() -> None:
        with socket.create_connection(gw.outbound, timeout=5) as sock:
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"HELO client.test\r\nMAIL FROM:<a@anm.gov.my>\r\n")
            f.readline()
            f.readline()
            sock.sendall(b"RCPT TO:<b@example.com>\r\nDATA\r\n")
            f.readline()
            f.readline()
            sock.sendall(b"Subject: half a message\r\n")

    await in_thread(run)
    for _ in range(100):
        if not gw.gateway.ctx.sessions:
            break
        await asyncio.sleep(0.02)
    assert not gw.gateway.ctx.sessions
    assert upstream.messages == []


async def test_ipv6_listener(make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 on this host")
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", host="[::1]")
    host, port = gw.outbound
    assert host == "::1" and port > 0
    code, _ = await in_thread(lambda: send((host, port), message()))
    assert code == 250
    assert len(upstream.messages) == 1


async def test_stop_lets_a_transaction_in_flight_finish(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    upstream.delay["END"] = 0.5
    sending = asyncio.ensure_future(in_thread(lambda: send(gw.outbound, message())))
    for _ in range(200):
        if upstream.commands and upstream.commands[-1] == "DATA":
            break
        await asyncio.sleep(0.01)
    await gw.gateway.stop(drain_timeout=3.0)
    code, _ = await sending
    assert code == 250
    assert len(upstream.messages) == 1
    with pytest.raises(OSError):
        socket.create_connection(gw.outbound, timeout=1).close()
