"""The milter codec: every command and reply round-trips, framing survives any split,
malformed input is a ProtocolError, and reply text has its '%' doubled."""

from __future__ import annotations

import struct

import pytest

from gateway.frontends.milter import protocol as p

COMMANDS: list[p.Command] = [
    p.OptNeg(6, 0x1FF, 0x1FFFFF),
    p.Macro(b"C", (("j", "mx.anm.gov.my"), ("{daemon_name}", "smtpd"), ("_", "x [1.2.3.4]"))),
    p.Macro(b"M", ()),
    p.Connect("client.example", "4", 40123, "192.0.2.7"),
    p.Connect("client6.example", "6", 25, "2001:db8::7"),
    p.Connect("localhost", "L", 0, "/run/socket"),
    p.Connect("unknown", "U", 0, ""),
    p.Helo("client.example"),
    p.Mail(("<a@anm.gov.my>", "SIZE=100", "BODY=8BITMIME")),
    p.Mail(("<>",)),
    p.Rcpt(("<b@example.com>",)),
    p.Data(),
    p.Header("Subject", " Mesyuarat 100% hadir"),
    p.Header("X-Empty", ""),
    p.EndOfHeaders(),
    p.Body(b"line one\r\nline two\r\n"),
    p.Body(b"\x00\xff binary"),
    p.EndOfBody(),
    p.EndOfBody(b"last piece\r\n"),
    p.Abort(),
    p.Quit(),
    p.QuitNewConnection(),
    p.Unknown("XFOO bar"),
    p.Mail(("<\u00fcser@anm.gov.my>", "SMTPUTF8")),
]

REPLIES: list[p.Reply] = [
    p.Continue(), p.Accept(), p.Reject(), p.Tempfail(), p.Progress(),
    p.ReplyCode("550-5.7.1 Baris satu\r\n550-5.7.1 Line two\r\n550 5.7.1 rule=x ref=y"),
    p.ReplyCode("451 4.3.0 100% temporary"),
    p.AddHeader("X-Gateway", "diperiksa"),
    p.InsertHeader(0, "Authentication-Results", "gw.test; spf=pass"),
    p.ChangeHeader(1, "Subject", "[HEBAHAN JANM] Notis"),
    p.ChangeHeader(2, "X-Old", ""),
    p.OptNegReply(6, p.ACTIONS, p.SMFIP_NOHREPL),
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: type(c).__name__)
def test_command_round_trip(cmd: p.Command) -> None:
    assert p.Decoder().feed(p.encode_command(cmd)) == [cmd]


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_reply_round_trip(reply: p.Reply) -> None:
    assert p.ReplyDecoder().feed(p.encode_reply(reply)) == [reply]


def test_wire_format_matches_libmilter() -> None:
    # Length counts the command byte; strings are NUL-terminated.
    assert p.encode_command(p.Helo("h")) == b"\x00\x00\x00\x03Hh\x00"
    assert p.encode_reply(p.Continue()) == b"\x00\x00\x00\x01c"
    assert p.encode_reply(p.ChangeHeader(1, "Subject", "x")) == (
        b"\x00\x00\x00\x0fm\x00\x00\x00\x01Subject\x00x\x00")
    assert p.encode_command(p.Connect("h", "4", 25, "1.2.3.4")) == (
        b"\x00\x00\x00\x0eCh\x004\x00\x191.2.3.4\x00")


def test_byte_by_byte_and_coalesced() -> None:
    stream = b"".join(p.encode_command(c) for c in COMMANDS)
    dec = p.Decoder()
    got: list[p.Command] = []
    for i in range(len(stream)):
        got += dec.feed(stream[i:i + 1])
    assert got == COMMANDS
    assert p.Decoder().feed(stream) == COMMANDS
    # Arbitrary split points across packet boundaries.
    dec = p.Decoder()
    got = []
    for start in range(0, len(stream), 7):
        got += dec.feed(stream[start:start + 7])
    assert got == COMMANDS


def test_replies_byte_by_byte() -> None:
    stream = b"".join(p.encode_reply(r) for r in REPLIES)
    dec = p.ReplyDecoder()
    got: list[p.Reply] = []
    for i in range(len(stream)):
        got += dec.feed(stream[i:i + 1])
    assert got == REPLIES


def test_percent_doubled_on_the_wire() -> None:
    wire = p.encode_reply(p.ReplyCode("550 5.7.1 100% pasti"))
    assert wire.endswith(b"y550 5.7.1 100%% pasti\x00")
    assert p.escape_percent("a%b%%c") == "a%%b%%%%c"


@pytest.mark.parametrize("wire", [
    struct.pack(">I", 0),  # empty packet
    struct.pack(">I", p.MAX_PAYLOAD + 2) + b"B",  # over the limit: refused from the header
    struct.pack(">I", 3) + b"Hab",  # string not NUL-terminated
    struct.pack(">I", 2) + b"Z\x00",  # unknown command
    struct.pack(">I", 5) + b"O\x00\x00\x00\x06",  # short OPTNEG
    struct.pack(">I", 3) + b"Ch\x00",  # CONNECT without family
    struct.pack(">I", 6) + b"Ch\x00X\x00\x00",  # bad family
    struct.pack(">I", 4) + b"Lab\x00",  # HEADER without a value
    struct.pack(">I", 4) + b"DCa\x00",  # MACRO name without value
    struct.pack(">I", 2) + b"T\x00",  # DATA with payload
    struct.pack(">I", 2) + b"A\x00",  # ABORT with payload
    struct.pack(">I", 3) + b"Ha\x00" + struct.pack(">I", 1) + b"D",  # MACRO without code
])
def test_malformed_commands(wire: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.Decoder().feed(wire)


def test_oversize_refused_before_it_is_buffered() -> None:
    dec = p.Decoder()
    with pytest.raises(p.ProtocolError):
        dec.feed(struct.pack(">I", 10 * 1024 * 1024))
    # The largest allowed packet passes.
    big = p.encode_command(p.Body(b"x" * p.MAX_PAYLOAD))
    assert p.Decoder().feed(big) == [p.Body(b"x" * p.MAX_PAYLOAD)]
    with pytest.raises(p.ProtocolError):
        p.encode_command(p.Body(b"x" * (p.MAX_PAYLOAD + 1)))


@pytest.mark.parametrize("wire", [
    struct.pack(">I", 2) + b"c\x00",
    struct.pack(">I", 3) + b"yab",
    struct.pack(">I", 4) + b"hab\x00",
    struct.pack(">I", 3) + b"m\x00\x00",
    struct.pack(">I", 2) + b"?\x00",
])
def test_malformed_replies(wire: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.ReplyDecoder().feed(wire)


def test_replycode_must_be_a_failure_without_nul() -> None:
    with pytest.raises(ValueError):
        p.encode_reply(p.ReplyCode("250 ok"))
    with pytest.raises(ValueError):
        p.encode_reply(p.ReplyCode("550 a\0b"))


def test_negotiate_takes_only_what_both_sides_support() -> None:
    answer = p.negotiate(p.OptNeg(6, 0x1FF, 0x1FFFFF))
    assert answer == p.OptNegReply(6, p.SMFIF_ADDHDRS | p.SMFIF_CHGHDRS,
                                   p.SMFIP_NOHREPL | p.SMFIP_HDR_LEADSPC)
    # An MTA that offers neither flag gets none; an older version is answered in kind.
    assert p.negotiate(p.OptNeg(2, 0x3F, 0)) == p.OptNegReply(2, p.ACTIONS, 0)
    with pytest.raises(p.ProtocolError):
        p.negotiate(p.OptNeg(6, p.SMFIF_ADDHDRS, 0))  # may not change headers
    with pytest.raises(p.ProtocolError):
        p.negotiate(p.OptNeg(1, 0x1FF, 0))


@pytest.mark.parametrize("length", [2**32 - 1, 2**31, p.MAX_PAYLOAD + 2])
def test_a_huge_length_field_is_refused_from_the_four_bytes_alone(length: int) -> None:
    """The length is checked before anything waits for or buffers the payload: a peer
    announcing 4 GiB cannot make us allocate it (nor hold the connection waiting)."""
    for framer in (p.Decoder(), p.ReplyDecoder()):
        with pytest.raises(p.ProtocolError, match="over the limit"):
            framer.feed(struct.pack(">I", length))


def test_macro_packets_are_bounded_in_all_and_per_value() -> None:
    # The largest allowed macro packet and value pass.
    value = "v" * p.MAX_MACRO_VALUE
    count = (p.MAX_MACRO_PAYLOAD - 1) // (len(value) + 4)  # names "m0".."m9" and 2 NULs
    ok = p.Macro(b"C", tuple((f"m{i}", value) for i in range(count)))
    assert len(p.encode_command(ok)) - 5 > p.MAX_MACRO_PAYLOAD - len(value) - 4
    assert p.Decoder().feed(p.encode_command(ok)) == [ok]
    # One value too long, in a small packet.
    long_value = p.Macro(b"C", (("{x}", "v" * (p.MAX_MACRO_VALUE + 1)),))
    with pytest.raises(p.ProtocolError, match="a value of"):
        p.Decoder().feed(p.encode_command(long_value))
    # Many short values, a packet over the macro limit (still under MAX_PAYLOAD).
    many = p.Macro(b"C", tuple((f"{{m{i}}}", "v" * 1000) for i in range(80)))
    wire = p.encode_command(many)
    assert p.MAX_MACRO_PAYLOAD < len(wire) < p.MAX_PAYLOAD
    with pytest.raises(p.ProtocolError, match=r"MACRO: \d+ bytes over"):
        p.Decoder().feed(wire)
    # A value counts in bytes, not characters.
    wide = p.Macro(b"C", (("{x}", "\u00e9" * (p.MAX_MACRO_VALUE // 2 + 1)),))
    with pytest.raises(p.ProtocolError, match="a value of"):
        p.Decoder().feed(p.encode_command(wide))
