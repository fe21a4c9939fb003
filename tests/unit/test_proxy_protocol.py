"""PROXY protocol trust decisions (gateway.frontends.proxy_protocol), no sockets.

Headers are fed to a plain asyncio.StreamReader as a balancer would write them
(haproxy.org proxy-protocol.txt), through the same aiosmtpd parser the listener uses.
The config part (`proxy_protocol:` on a listener, `xforward_peers`) is checked here too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from pathlib import Path

import pytest

from gateway.config import ProxyProtocolSettings, load_config
from gateway.frontends.proxy_protocol import Accepted, Refused, read_header, trusted
from gateway.problems import LoadError

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command: int, family: int, protocol: int, addresses: bytes, tlv: bytes = b"") -> bytes:
    body = addresses + tlv
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family << 4 | protocol,
                                      len(body)) + body


def v2_inet(src: str, dst: str, sport: int, dport: int, protocol: int = 1) -> bytes:
    return v2(1, 1, protocol, socket.inet_aton(src) + socket.inet_aton(dst)
              + struct.pack("!HH", sport, dport))


def v2_inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return v2(1, 2, 1, socket.inet_pton(socket.AF_INET6, src)
              + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport))


def read(data: bytes, versions: tuple[int, ...] = (1, 2), *, eof: bool = True,
         timeout: float = 1.0) -> Accepted | Refused:
    async def run() -> Accepted | Refused:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        return await read_header(reader, versions, timeout)
    return asyncio.run(run())


@pytest.mark.parametrize(("header", "client"), [
    (b"PROXY TCP4 127.0.0.7 127.0.0.1 40000 25\r\n", ("127.0.0.7", 40000)),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 25\r\n", ("2001:db8::7", 40000)),
    (v2_inet("192.0.2.7", "10.0.0.11", 40000, 25), ("192.0.2.7", 40000)),
    (v2_inet6("2001:db8::7", "2001:db8::1", 1234, 25), ("2001:db8::7", 1234)),
    (v2_inet6("::ffff:192.0.2.7", "::ffff:10.0.0.11", 1234, 25), ("192.0.2.7", 1234)),
    # TLVs (HAProxy may add some) do not change the address.
    (v2(1, 1, 1, socket.inet_aton("192.0.2.8") + socket.inet_aton("10.0.0.1")
        + struct.pack("!HH", 5, 25), tlv=b"\x04\x00\x02ab"), ("192.0.2.8", 5)),
])
def test_a_valid_header_names_the_client(header: bytes, client: tuple[str, int]) -> None:
    outcome = read(header + b"EHLO client.test\r\n")
    assert isinstance(outcome, Accepted), outcome
    assert (outcome.client_ip, outcome.client_port) == client


@pytest.mark.parametrize("header", [
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
    v2(0, 0, 0, b""),  # LOCAL: the balancer's own health check
    v2(0, 1, 1, socket.inet_aton("192.0.2.7") * 2 + b"\0\1\0\2"),  # LOCAL ignores addresses
    v2(1, 0, 0, b""),  # PROXY, UNSPEC family
])
def test_local_and_unknown_mean_the_connection_itself(header: bytes) -> None:
    outcome = read(header)
    assert isinstance(outcome, Accepted), outcome
    assert outcome.client_ip is None  # the caller uses the real peer: the balancer


def test_a_unix_socket_source_has_no_address() -> None:
    outcome = read(v2(1, 3, 1, b"/run/client".ljust(108, b"\0") + b"/run/gw".ljust(108, b"\0")))
    assert isinstance(outcome, Accepted) and outcome.client_ip == "unknown"


@pytest.mark.parametrize(("data", "why"), [
    (b"EHLO client.test\r\n", "signature"),
    (b"GET / HTTP/1.0\r\n\r\n", "signature"),
    (b"PROXY TCP4 127.0.0.7 127.0.0.1 40000\r\n", "exception"),
    (b"PROXY TCP4 ::1 127.0.0.1 40000 25\r\n", "IPv4"),
    (b"PROXY TCP4 127.0.0.7 127.0.0.1 40000 25 extra\r\n", "extraneous"),
    (b"PROXY TCP4 127.0.0.7 127.0.0.1 40000 99999\r\n", "out of bounds"),
    (b"PROXY UDP4 127.0.0.7 127.0.0.1 40000 25\r\n", "protocol"),
    (b"PROXY TCP4 " + b"1" * 200 + b"\r\n", "too long"),
    (v2_inet("192.0.2.7", "10.0.0.1", 1, 25, protocol=2), "non-TCP"),
    (V2_SIGNATURE + b"\x30\x11\x00\x0c" + b"\0" * 12, "version"),
    (V2_SIGNATURE + b"\x21\x11\x00\x04" + b"\0" * 4, "truncated"),
])
def test_no_valid_header_is_refused(data: bytes, why: str) -> None:
    outcome = read(data)
    assert isinstance(outcome, Refused), outcome
    assert why.lower() in outcome.reason.lower(), outcome.reason


def test_closed_before_a_header() -> None:
    assert read(b"") == Refused("closed before sending a PROXY header")
    assert isinstance(read(b"PRO"), Refused)


def test_silence_is_refused_after_the_timeout() -> None:
    outcome = read(b"", eof=False, timeout=0.05)
    assert outcome == Refused("no PROXY header within 0.05s")


def test_a_version_the_listener_does_not_take_is_refused() -> None:
    v1 = b"PROXY TCP4 127.0.0.7 127.0.0.1 40000 25\r\n"
    two = v2_inet("127.0.0.7", "127.0.0.1", 40000, 25)
    assert read(v1, (2,)) == Refused("PROXY protocol v1 not accepted on this listener")
    assert read(two, (1,)) == Refused("PROXY protocol v2 not accepted on this listener")
    assert isinstance(read(v1, (1,)), Accepted) and isinstance(read(two, (2,)), Accepted)


def test_trust_is_by_network() -> None:
    settings = ProxyProtocolSettings.model_validate({"from": ["10.0.0.5/32", "10.1.0.0/24"]})
    assert settings.versions == (1, 2) and settings.timeout == 5.0
    assert trusted("10.0.0.5", settings)
    assert trusted("10.1.0.200", settings)
    assert trusted("::ffff:10.0.0.5", settings)  # a dual-stack socket's view of IPv4
    assert not trusted("10.0.0.6", settings)
    assert not trusted("unknown", settings)
    assert not trusted("10.0.0.5", None)


LISTENER = """\
listeners:
  - name: inbound
    listen: "127.0.0.1:2526"
    direction: inbound
    proxy_protocol: {from: [10.0.0.5/32, "10.0.1.0/24"], versions: [2], timeout: 3}
upstream: "maildir:var/mail"
agency_domains: [anm.gov.my]
xforward_peers: [127.0.0.1/32, "::1"]
"""


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(LISTENER)
    config = load_config(path)
    pp = config.listeners[0].proxy_protocol
    assert pp is not None
    assert pp.peers == (ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("10.0.1.0/24"))
    assert (pp.versions, pp.timeout) == ((2,), 3.0)
    assert config.xforward_peers == (ipaddress.ip_network("127.0.0.1/32"),
                                     ipaddress.ip_network("::1/128"))
    path.write_text(LISTENER.replace("xforward_peers: [127.0.0.1/32, \"::1\"]\n", ""))
    assert load_config(path).xforward_peers == ()  # default: XFORWARD from nobody


PP_LINE = '{from: [10.0.0.5/32, "10.0.1.0/24"], versions: [2], timeout: 3}'


@pytest.mark.parametrize(("setting", "where", "word"), [
    ("{from: [balancer]}", "from", "'balancer'"),
    ("{from: []}", "from", "empty"),
    ("{from: [10.0.0.5], versions: [3]}", "versions.0", "1 or 2"),
    ("{from: [10.0.0.5], timeout: 0}", "timeout", "0"),
    ("{versions: [2]}", "from", "required"),
    ("{from: [10.0.0.5], form: [10.0.0.6]}", "form", "unknown key"),
])
def test_bad_proxy_protocol_settings(tmp_path: Path, setting: str, where: str,
                                     word: str) -> None:
    # The wording belongs to gateway.config's error messages; here: the key and the cause.
    path = tmp_path / "gateway.yaml"
    path.write_text(LISTENER.replace(PP_LINE, setting))
    with pytest.raises(LoadError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.line == 5, problem  # the proxy_protocol line
    head, _, cause = problem.message.partition(": ")
    assert head == f"listeners.0.proxy_protocol.{where}", problem.message
    assert word in cause, problem.message


def test_proxy_protocol_only_on_tcp_smtp_listeners(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    for text in (LISTENER.replace("    direction: inbound\n",
                                  "    direction: inbound\n    mode: milter\n"),
                 LISTENER.replace('"127.0.0.1:2526"', '"unix:/run/gw.sock"')):
        path.write_text(text)
        with pytest.raises(LoadError) as info:
            load_config(path)
        assert "proxy_protocol needs a TCP listener in smtp mode" in \
            info.value.problems[0].message
