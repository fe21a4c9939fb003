"""SMTP smuggling: every end-of-data look-alike gives one message, never a second one.

The client speaks raw bytes (smtplib would normalise them). Each variant hides a
second transaction (MAIL, RCPT, DATA, a forged message) behind a fake end of data,
then ends properly with CRLF.CRLF. Under the default `bare_newlines: reject` the
message is refused and nothing reaches the upstream; under `normalize` exactly one
message arrives there, carrying the smuggled text as content, with no bare CR, bare
LF or NUL in it; in both the smuggled commands are never executed, by the gateway
or upstream.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import yaml

from gateway.frontends.datastream import DataDecoder, bare_in
from gateway.policy_state import load_policy
from gateway.service import Gateway
from gateway.tls import generate_dev_cert

from .raw_client import open_transaction
from .support import FakeUpstream, GatewayFactory, in_thread, write_config

FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "CRLF.LF": b"\r\n.\n",
    "CR.CR": b"\r.\r",
    "CRLF.NUL-CRLF": b"\r\n.\x00\r\n",
    "CRLF-NUL.CRLF": b"\r\n\x00.\r\n",
    "CRLF-NUL.NUL-CRLF": b"\r\n\x00.\x00\r\n",
    "CRLF.CRCRLF": b"\r\n.\r\r\n",
}
SMUGGLED = (b"MAIL FROM:<ceo@anm.gov.my>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
            b"From: ceo@anm.gov.my\r\nSubject: smuggled\r\n\r\nPay now.\r\n")


def payload(fake_end: bytes) -> bytes:
    head = b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Ujian\r\n\r\nFirst message."
    return head + fake_end + SMUGGLED + b"\r\n.\r\n"


def run(addr: tuple[str, int], data: bytes) -> tuple[tuple[int, bytes], bytes]:
    """The reply to the end of DATA, then everything the gateway says to a QUIT."""
    with open_transaction(addr) as c:
        c.send(data)
        end = c.reply()
        c.send(b"QUIT\r\n")
        return end, c.rest()


@pytest.mark.parametrize("name", sorted(FAKE_ENDS))
async def test_fake_end_is_refused_by_default(name: str, make_gateway: GatewayFactory,
                                              upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}")
    (code, text), after = await in_thread(lambda: run(gw.outbound, payload(FAKE_ENDS[name])))
    assert (code, text[:11]) == (550, b"550-5.6.11 "), text
    # Exactly one reply to the whole stream, then QUIT: no smuggled command was run.
    assert after.startswith(b"221 ") and after.count(b"\r\n") == 1, after
    assert upstream.messages == []
    assert not any(c.startswith(("DATA", "RCPT TO:<victim")) for c in upstream.commands)
    [rec] = gw.records()
    assert rec["rule_id"] == "baris-tidak-sah"


@pytest.mark.parametrize("name", sorted(FAKE_ENDS))
async def test_fake_end_is_one_clean_message_when_normalising(
        name: str, make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"bare_newlines": "normalize"})
    (code, text), after = await in_thread(lambda: run(gw.outbound, payload(FAKE_ENDS[name])))
    assert code == 250, text
    assert after.startswith(b"221 ") and after.count(b"\r\n") == 1, after
    [got] = upstream.messages
    assert bare_in(got.data) is None
    assert b"First message." in got.data and b"Pay now.\r\n" in got.data
    assert got.rcpt_to == ["b@example.com"]
    verbs = [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in upstream.commands]
    assert verbs.count("MAIL") == 1 and verbs.count("DATA") == 1, upstream.commands
    assert not any("victim" in c for c in upstream.commands)


async def test_normalize_keeps_clean_lines_and_turns_bare_ones_into_crlf(
        make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}",
                            limits={"bare_newlines": "normalize"})
    body = b"Subject: x\r\n\r\none\ntwo\rthree\r\nfo\x00ur\r\n..dot\r\n"
    (code, _), _ = await in_thread(lambda: run(gw.outbound, body + b".\r\n"))
    assert code == 250
    [got] = upstream.messages
    assert got.data == b"Subject: x\r\n\r\none\r\ntwo\r\nthree\r\nfour\r\n.dot\r\n"


@pytest.mark.parametrize("name", sorted(FAKE_ENDS))
@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_decoder_finds_one_end_whatever_the_chunking(name: str, step: int) -> None:
    data = payload(FAKE_ENDS[name]) + b"QUIT\r\n"
    for mode in ("reject", "normalize"):
        decoder = DataDecoder(10_000, bare_newlines=mode)  # type: ignore[arg-type]
        rest = None
        for i in range(0, len(data), step):
            rest = decoder.feed(data[i:i + step])
            if rest is not None:
                rest += data[i + step:]
                break
        # The only end is the last CRLF.CRLF: what follows is the pipelined QUIT.
        assert decoder.done and decoder.bare is not None
        assert rest == b"QUIT\r\n"
        if mode == "normalize":
            message = decoder.message()
            assert bare_in(message) is None and message.endswith(b"Pay now.\r\n\r\n")


async def test_plaintext_behind_starttls_after_data_is_discarded(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    # The bytes after the final dot go back to the command loop (our DATA reader's
    # pushback); a STARTTLS among them must still drop the plaintext queued behind it.
    cert = generate_dev_cert(tmp_path / "tls", "127.0.0.1", 1)
    path = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}")
    config = yaml.safe_load(path.read_text())
    config["tls"] = {"cert": str(cert.cert), "key": str(cert.key)}
    path.write_text(yaml.safe_dump(config))
    gateway = Gateway(load_policy(path))
    await gateway.start()
    trusting = ssl.create_default_context(cafile=str(cert.cert))

    def run() -> tuple[tuple[int, bytes], tuple[int, bytes], bytes]:
        c = open_transaction(gateway.address("outbound"))
        with c:
            c.send(b"Subject: x\r\n\r\nhello\r\n.\r\nSTARTTLS\r\n"
                   b"RSET\r\nMAIL FROM:<evil@anm.gov.my>\r\n")
            end, ready = c.reply(), c.reply()
            with trusting.wrap_socket(c.sock, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"EHLO client.test\r\nRCPT TO:<b@example.com>\r\nQUIT\r\n")
                out = b""
                while chunk := tls.recv(65536):
                    out += chunk
            return end, ready, out

    try:
        end, ready, after = await in_thread(run)
    finally:
        await gateway.stop(drain_timeout=1.0)
    assert end[0] == 250 and ready[0] == 220
    assert after.startswith(b"250-gw.test")
    # Had the queued MAIL run, RCPT would be accepted; it is out of sequence instead.
    assert b"\r\n503 5.5.1 " in after and b"221 " in after
    assert len(upstream.messages) == 1
    assert not any("evil" in c for c in upstream.commands)
