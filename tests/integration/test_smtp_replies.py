"""Every reply the proxy sends itself carries an RFC 3463 code (it advertises
ENHANCEDSTATUSCODES, RFC 2034), aiosmtpd's defaults included; and a client past
`limits.max_bad_commands` hears 421 4.7.0 and is closed, whatever the bad commands
were (aiosmtpd's own budget of unknown commands, 502 after 5, never cuts in).

Real clients on loopback: a raw socket for exact bytes, smtplib for STARTTLS.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy_state import load_policy
from gateway.service import Gateway
from gateway.tls import generate_dev_cert

from .raw_client import RawClient
from .support import FakeUpstream, GatewayFactory, in_thread, write_config

ENHANCED_LINE = re.compile(rb"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}( |$)")


def assert_enhanced(text: bytes) -> None:
    for line in text.split(b"\r\n"):
        assert ENHANCED_LINE.match(line), text


@pytest.fixture
async def tls_gateway(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Gateway]:
    cert = generate_dev_cert(tmp_path / "tls", "127.0.0.1", 2)
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}")
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["tls"] = {"cert": str(cert.cert), "key": str(cert.key)}
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(drain_timeout=1.0)


async def test_every_reply_of_a_session_has_an_enhanced_code(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"max_bad_commands": 50})
    commands = [b"NOOP", b"HELP", b"HELP MAIL", b"HELP FROB", b"VRFY postmaster",
                b"VRFY", b"EXPN staff", b"DATA", b"RCPT TO:<b@example.com>", b"MAIL",
                b"MAIL FROM:<a@anm.gov.my> FROB=1", b"MAIL FROM:<a@anm.gov.my>",
                b"MAIL FROM:<a@anm.gov.my>", b"RCPT TO:<b@example.com>", b"RSET",
                b"FROBNICATE", b"NOOP " + b"x" * 600, b"STARTTLS", b"QUIT"]

    def run() -> list[tuple[bytes, int, bytes]]:
        with RawClient(gw.outbound) as c:
            code, greeting = c.reply()
            assert code == 220 and not ENHANCED_LINE.match(greeting)  # the greeting takes none
            assert c.command(b"EHLO client.test")[0] == 250
            return [(cmd, *c.command(cmd)) for cmd in commands]

    answers = await in_thread(run)
    for cmd, code, text in answers:
        assert code != 0, cmd
        assert_enhanced(text)
    by_command = {cmd: (code, text) for cmd, code, text in answers}
    assert by_command[b"FROBNICATE"][0] == 500
    assert by_command[b"FROBNICATE"][1].startswith(b"500 5.5.1 ")
    assert by_command[b"QUIT"][1].startswith(b"221 2.0.0 ")
    # Without a certificate STARTTLS is not a command here: refused, with a code.
    assert by_command[b"STARTTLS"][0] in (454, 500, 502)


async def test_starttls_ready_reply_has_an_enhanced_code(tls_gateway: Gateway) -> None:
    addr = tls_gateway.address("outbound")

    def run() -> tuple[int, bytes, int]:
        with smtplib.SMTP(addr[0], addr[1], timeout=5) as s:
            s.ehlo("client.test")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            code, text = s.starttls(context=context)
            noop = s.noop()[0]
            return code, text, noop

    code, text, noop = await in_thread(run)
    assert (code, text) == (220, b"2.0.0 Ready to start TLS")
    assert noop == 250


@pytest.mark.parametrize("limit", [3, 7, 10])
async def test_past_max_bad_commands_the_client_gets_421_and_is_closed(
        make_gateway: GatewayFactory, upstream: FakeUpstream, limit: int) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"max_bad_commands": limit})

    def run() -> tuple[list[int], bytes]:
        with RawClient(gw.outbound) as c:
            c.reply()
            c.command(b"EHLO client.test")
            codes = [c.command(f"FROB{i}".encode())[0] for i in range(limit - 1)]
            c.send(b"FROBLAST\r\nNOOP\r\n")
            codes.append(c.reply()[0])
            return codes, c.rest()

    codes, rest = await in_thread(run)
    assert codes == [500] * limit
    assert rest.startswith(b"421-4.7.0 Terlalu banyak arahan yang salah")
    assert b"421 4.7.0 Too many bad commands; closing the connection.\r\n" in rest
    assert rest.count(b"\r\n") == 2  # nothing after the 421: NOOP never ran
    assert b"502" not in rest
