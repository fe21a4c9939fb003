"""STARTTLS on both sides: offered to clients, used towards the upstream, and never bypassed.

Client side: a message relayed over STARTTLS with the gateway's dev certificate;
plaintext pipelined behind STARTTLS is discarded (CVE-2011-0411 class);
`require_starttls` refuses MAIL before TLS. Upstream side: opportunistic and
required modes, certificate verification (a throwaway CA, a name mismatch, an
untrusted self-signed certificate) and a hostile upstream injecting a reply
behind its 220. Every failure is 451 4.7.5, logged, and nothing goes in plaintext.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.service import Gateway
from gateway.tls import DevCert, generate_dev_cert

from .support import FakeUpstream, client, in_thread, message
from .tls_support import CertFiles, TlsUpstream, issue, make_ca, start_gateway

StartGateway = Callable[[int, dict[str, Any]], Awaitable[Gateway]]
StartUpstream = Callable[..., Awaitable[TlsUpstream]]
_FINAL_LINE = re.compile(rb"(?:^|\r\n)\d{3} [^\r\n]*\r\n$")


@pytest.fixture
def gw_cert(tmp_path: Path) -> DevCert:
    # For the loopback address the clients dial, so hostname checks stay on.
    return generate_dev_cert(tmp_path / "gw-tls", "127.0.0.1", 2)


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[StartGateway]:
    started: list[Gateway] = []

    async def start(upstream_port: int, tls: dict[str, Any]) -> Gateway:
        gateway = await start_gateway(tmp_path, upstream_port=upstream_port, tls=tls)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop(drain_timeout=1.0)


@pytest.fixture
async def tls_upstreams() -> AsyncIterator[StartUpstream]:
    started: list[TlsUpstream] = []

    async def start(**kwargs: Any) -> TlsUpstream:
        up = TlsUpstream(**kwargs)
        await up.start()
        started.append(up)
        return up

    yield start
    for up in started:
        await up.stop()


@pytest.fixture
def ca(tmp_path: Path) -> CertFiles:
    return make_ca(tmp_path / "ca")


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def server_tls(cert: DevCert, **extra: Any) -> dict[str, Any]:
    return {"cert": str(cert.cert), "key": str(cert.key), **extra}


def read_reply(sock: socket.socket) -> bytes:
    """Exactly one (multi-line) reply, byte by byte so nothing after it is consumed."""
    out = b""
    while not _FINAL_LINE.search(out):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed after {out!r}")
        out += byte
    return out


def rejections(tmp: Path) -> list[dict[str, Any]]:
    path = tmp / "rejections.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def send(addr: tuple[str, int]) -> tuple[int, bytes]:
    """MAIL as a plaintext client; the gateway dials the upstream at MAIL."""
    with client(addr) as s:
        code, text = s.mail("a@anm.gov.my")
        if code == 250:
            s.rcpt("b@example.com")
            try:
                s.data(message())
            except smtplib.SMTPResponseException as exc:
                error = exc.smtp_error
                return exc.smtp_code, error if isinstance(error, bytes) else error.encode()
            s.quit()
        return code, text


# -- client side ------------------------------------------------------------------------
async def test_client_starttls_then_message_relayed(
        upstream: FakeUpstream, gateways: StartGateway, gw_cert: DevCert) -> None:
    gateway = await gateways(upstream.port, server_tls(gw_cert))
    addr = gateway.address("outbound")

    def run() -> str | None:
        with client(addr) as s:
            assert s.has_extn("starttls")
            code, _ = s.starttls(context=trusting(gw_cert.cert))
            assert code == 220
            s.ehlo("client.test")
            assert not s.has_extn("starttls")  # not offered twice
            s.sendmail("a@anm.gov.my", ["b@example.com"], message(subject="Lewat TLS"))
            assert isinstance(s.sock, ssl.SSLSocket)
            return s.sock.version()

    version = await in_thread(run)
    assert version in ("TLSv1.2", "TLSv1.3")
    assert len(upstream.messages) == 1
    assert b"Subject: Lewat TLS" in upstream.messages[0].data


async def test_plaintext_pipelined_behind_starttls_is_discarded(
        upstream: FakeUpstream, gateways: StartGateway, gw_cert: DevCert) -> None:
    gateway = await gateways(upstream.port, server_tls(gw_cert))
    addr = gateway.address("outbound")

    def run() -> tuple[bytes, bytes, bytes]:
        with socket.create_connection(addr, timeout=5) as raw:
            assert read_reply(raw).startswith(b"220")
            raw.sendall(b"EHLO client.test\r\n")
            assert b"STARTTLS" in read_reply(raw)
            # One TCP write: an attacker in the middle appends commands to the client's.
            raw.sendall(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@x.test>\r\n")
            ready = read_reply(raw)
            with trusting(gw_cert.cert).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"EHLO client.test\r\n")
                ehlo = read_reply(tls)
                # Had MAIL been acted on, RCPT would now be accepted.
                tls.sendall(b"RCPT TO:<b@example.com>\r\n")
                rcpt = read_reply(tls)
                tls.sendall(b"QUIT\r\n")
                read_reply(tls)
        return ready, ehlo, rcpt

    ready, ehlo, rcpt = await in_thread(run)
    assert ready.startswith(b"220 ") and ready.count(b"\r\n") == 1
    assert ehlo.startswith(b"250-gw.test"), ehlo  # the EHLO's reply, not RSET's or MAIL's
    assert rcpt.startswith(b"503"), rcpt
    assert not any("evil" in c for c in upstream.commands)
    assert upstream.connections == 0  # no MAIL ever reached the proxy's relay


async def test_require_starttls_refuses_mail_before_tls(
        upstream: FakeUpstream, gateways: StartGateway, gw_cert: DevCert) -> None:
    gateway = await gateways(upstream.port, server_tls(gw_cert, require_starttls=True))
    addr = gateway.address("outbound")

    def run() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with client(addr) as s:
            assert s.has_extn("starttls")
            before = s.mail("a@anm.gov.my")
            s.starttls(context=trusting(gw_cert.cert))
            s.ehlo("client.test")
            after = s.mail("a@anm.gov.my")
            s.rcpt("b@example.com")
            s.data(message())
            s.quit()
        return before, after

    before, after = await in_thread(run)
    assert before[0] == 530 and before[1].startswith(b"5.7.0"), before
    assert after[0] == 250
    assert len(upstream.messages) == 1
    assert upstream.commands.count("MAIL FROM:<a@anm.gov.my>") == 1


# -- upstream side ----------------------------------------------------------------------
async def test_upstream_opportunistic_tls_used_when_offered(
        tls_upstreams: StartUpstream, gateways: StartGateway, ca: CertFiles,
        tmp_path: Path) -> None:
    up = await tls_upstreams(cert=issue(ca, tmp_path / "up", "127.0.0.1"))
    gateway = await gateways(up.port, {"upstream": {"mode": "opportunistic",
                                                    "ca_file": str(ca.cert)}})
    code, _ = await in_thread(lambda: send(gateway.address("outbound")))
    assert code == 250
    assert up.tls_messages == [True]
    # EHLO again after the handshake (RFC 3207 4.2), before any MAIL.
    assert [c.split(" ")[0] for c in up.commands[:4]] == ["EHLO", "STARTTLS", "EHLO", "MAIL"]


async def test_upstream_opportunistic_plaintext_when_not_offered(
        tls_upstreams: StartUpstream, gateways: StartGateway) -> None:
    up = await tls_upstreams(offer_starttls=False)
    gateway = await gateways(up.port, {"upstream": {"mode": "opportunistic"}})
    code, _ = await in_thread(lambda: send(gateway.address("outbound")))
    assert code == 250
    assert up.tls_messages == [False]
    assert "STARTTLS" not in up.commands


async def test_upstream_required_but_not_offered_tempfails(
        tls_upstreams: StartUpstream, gateways: StartGateway, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    up = await tls_upstreams(offer_starttls=False)
    gateway = await gateways(up.port, {"upstream": {"mode": "required"}})
    with caplog.at_level(logging.WARNING):
        code, text = await in_thread(lambda: send(gateway.address("outbound")))
    assert code == 451 and text.startswith(b"4.7.5"), (code, text)
    assert up.messages == [] and not any(c.startswith("MAIL") for c in up.commands)
    assert "does not offer STARTTLS" in caplog.text
    [record] = rejections(tmp_path)
    assert record["event"] == "tempfail" and record["enhanced_code"] == "4.7.5"


async def test_upstream_untrusted_certificate_tempfails_and_is_logged(
        tls_upstreams: StartUpstream, gateways: StartGateway, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    self_signed = generate_dev_cert(tmp_path / "up", "127.0.0.1", 2)
    up = await tls_upstreams(cert=CertFiles(self_signed.cert, self_signed.key))
    gateway = await gateways(up.port, {"upstream": {"mode": "opportunistic", "verify": True}})
    with caplog.at_level(logging.WARNING):
        code, text = await in_thread(lambda: send(gateway.address("outbound")))
    assert code == 451 and text.startswith(b"4.7.5"), (code, text)
    assert b"TLS" in text and b"127.0.0.1" not in text  # no internals in the reply
    assert up.messages == [] and not any(c.startswith("MAIL") for c in up.commands)
    assert "certificate not accepted" in caplog.text
    assert [r["enhanced_code"] for r in rejections(tmp_path)] == ["4.7.5"]


async def test_upstream_untrusted_certificate_relayed_with_verify_off(
        tls_upstreams: StartUpstream, gateways: StartGateway, tmp_path: Path) -> None:
    self_signed = generate_dev_cert(tmp_path / "up", "127.0.0.1", 2)
    up = await tls_upstreams(cert=CertFiles(self_signed.cert, self_signed.key))
    gateway = await gateways(up.port, {"upstream": {"mode": "required", "verify": False}})
    code, _ = await in_thread(lambda: send(gateway.address("outbound")))
    assert code == 250
    assert up.tls_messages == [True]


@pytest.mark.parametrize(("server_name", "relayed"), [(None, False), ("mx.other.test", True)])
async def test_upstream_certificate_name_is_checked(
        tls_upstreams: StartUpstream, gateways: StartGateway, ca: CertFiles, tmp_path: Path,
        server_name: str | None, relayed: bool) -> None:
    # Signed by a trusted CA but for another name: only right when server_name says so.
    up = await tls_upstreams(cert=issue(ca, tmp_path / "up", "mx.other.test"))
    gateway = await gateways(up.port, {"upstream": {
        "mode": "required", "ca_file": str(ca.cert), "server_name": server_name}})
    code, _ = await in_thread(lambda: send(gateway.address("outbound")))
    assert code == (250 if relayed else 451)
    assert up.tls_messages == ([True] if relayed else [])


async def test_upstream_reply_injected_behind_its_220_tempfails(
        tls_upstreams: StartUpstream, gateways: StartGateway, ca: CertFiles,
        tmp_path: Path) -> None:
    up = await tls_upstreams(cert=issue(ca, tmp_path / "up", "127.0.0.1"),
                             inject_after_220=True)
    gateway = await gateways(up.port, {"upstream": {"mode": "opportunistic",
                                                    "ca_file": str(ca.cert)}})
    code, text = await in_thread(lambda: send(gateway.address("outbound")))
    assert code == 451 and text.startswith(b"4.7.5"), (code, text)
    assert up.handshakes == 0 and up.messages == []


async def test_stop_with_a_closed_tls_session_still_registered(
        upstream: FakeUpstream, gateways: StartGateway, gw_cert: DevCert) -> None:
    # Regression (CI, 2026-11-30): a client that QUITs over TLS leaves its session in the
    # set until connection_lost runs; a stop in that window wrote the 421 to a TLS
    # transport that had dropped its SSL protocol, and stop() raised AttributeError.
    gateway = await gateways(upstream.port, server_tls(gw_cert))
    addr = gateway.address("outbound")

    def handshake() -> socket.socket:
        raw = socket.create_connection(addr, timeout=5)
        assert read_reply(raw).startswith(b"220")
        raw.sendall(b"EHLO client.test\r\nSTARTTLS\r\n")
        read_reply(raw)
        assert read_reply(raw).startswith(b"220")
        tls = trusting(gw_cert.cert).wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(b"EHLO client.test\r\n")
        read_reply(tls)
        return tls

    tls = await in_thread(handshake)
    try:
        sessions = list(gateway.ctx.sessions)
        assert len(sessions) == 1 and sessions[0].transport is not None
        transport = sessions[0].transport
        # Closed twice, as the session's QUIT and aiosmtpd's teardown do: the second
        # close drops the SSL protocol while the session is still registered.
        transport.close()
        transport.close()
        await gateway.stop(drain_timeout=1.0)
    finally:
        tls.close()
