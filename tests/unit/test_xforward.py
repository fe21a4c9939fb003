"""XFORWARD parsing (gateway.frontends.xforward): Postfix's XFORWARD_README and smtpd.c."""

from __future__ import annotations

import pytest

from gateway.frontends.xforward import (
    EHLO_KEYWORD,
    Forwarded,
    XforwardError,
    apply,
    normalise_addr,
    parse,
    upstream_commands,
    xtext_decode,
    xtext_encode,
)


def test_ehlo_keyword_lists_what_postfix_sends() -> None:
    assert EHLO_KEYWORD.split() == ["XFORWARD", "NAME", "ADDR", "PROTO", "HELO", "SOURCE",
                                    "PORT", "IDENT"]


def test_the_readme_example() -> None:
    first = parse("NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP")
    assert first == {"NAME": "spike.porcupine.org", "ADDR": "168.100.189.2", "PROTO": "ESMTP"}
    fwd = apply(None, first)
    fwd = apply(fwd, parse("HELO=spike.porcupine.org"))
    assert fwd == Forwarded(name="spike.porcupine.org", addr="168.100.189.2", proto="ESMTP",
                            helo="spike.porcupine.org")


def test_the_first_xforward_starts_from_unknown_and_later_ones_overwrite() -> None:
    # README: the first XFORWARD sets every attribute to [UNAVAILABLE] (nothing of the
    # MTA's own session mixes in); later ones change only what they name.
    fwd = apply(None, parse("ADDR=192.0.2.7"))
    assert fwd == Forwarded(addr="192.0.2.7")
    fwd = apply(fwd, parse("HELO=mx.example PORT=40000"))
    assert (fwd.addr, fwd.helo, fwd.port) == ("192.0.2.7", "mx.example", "40000")
    fwd = apply(fwd, parse("HELO=[UNAVAILABLE]"))
    assert (fwd.addr, fwd.helo) == ("192.0.2.7", None)


@pytest.mark.parametrize("value", ["[UNAVAILABLE]", "[unavailable]", "[Unavailable]",
                                   "[TEMPUNAVAIL]", "+5BUNAVAILABLE+5D"])
def test_unavailable_in_any_case_means_unknown(value: str) -> None:
    assert parse(f"ADDR={value} NAME={value} HELO={value}") == \
        {"ADDR": None, "NAME": None, "HELO": None}


@pytest.mark.parametrize(("sent", "seen"), [
    ("IPv6:2001:db8::1", "2001:db8::1"),
    ("ipv6:2001:DB8::1", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
    ("::ffff:192.0.2.9", "192.0.2.9"),
    ("IPv6:::ffff:192.0.2.9", "192.0.2.9"),
    ("127.0.0.9", "127.0.0.9"),
])
def test_addr_forms(sent: str, seen: str) -> None:
    assert parse(f"ADDR={sent}")["ADDR"] == seen
    assert normalise_addr(sent) == seen


def test_values_are_xtext_decoded_and_neutered() -> None:
    # A space or a header special in HELO becomes '?', as Postfix's smtpd does.
    assert parse("HELO=evil+20host+3Bx")["HELO"] == "evil?host?x"
    assert parse("IDENT=ABC+2B123")["IDENT"] == "ABC+123"
    assert parse("HELO=caf+C3+A9")["HELO"] == "caf?"  # non-ASCII never reaches a header
    assert parse("proto=esmtp source=remote")["SOURCE"] == "REMOTE"


def test_invalid_xtext_is_taken_as_sent() -> None:
    # Postfix before 2.3 did not encode: smtpd falls back to the raw value.
    assert parse("HELO=a+zz")["HELO"] == "a+zz"


@pytest.mark.parametrize(("arg", "reply"), [
    (None, "501 5.5.4 Syntax: XFORWARD attribute=value..."),
    ("   ", "501 5.5.4 Syntax: XFORWARD attribute=value..."),
    ("ADDR", "501 5.5.4 Error: attribute=value expected"),
    ("ADDR=", "501 5.5.4 Error: attribute=value expected"),
    ("HELO=" + "a" * 256, "501 5.5.4 Error: attribute value too long"),
    ("COLOUR=blue", "501 5.5.4 Bad XFORWARD attribute name: COLOUR"),
    ("ADDR=not-an-ip", "501 5.5.4 Bad ADDR syntax: not-an-ip"),
    ("ADDR=999.1.1.1", "501 5.5.4 Bad ADDR syntax: 999.1.1.1"),
    ("PORT=70000", "501 5.5.4 Bad PORT syntax: 70000"),
    ("PORT=-1", "501 5.5.4 Bad PORT syntax: -1"),
    ("SOURCE=ELSEWHERE", "501 5.5.4 Bad SOURCE syntax: ELSEWHERE"),
    ("NAME=bad..name", "501 5.5.4 Bad NAME syntax: bad..name"),
    ("NAME=a+20b", "501 5.5.4 Bad NAME syntax: a?b"),
    ("PROTO=" + "P" * 65, "501 5.5.4 Bad PROTO syntax: " + "P" * 65),
])
def test_bad_commands_get_postfix_replies(arg: str | None, reply: str) -> None:
    with pytest.raises(XforwardError) as info:
        parse(arg)
    assert info.value.reply == reply


def test_xtext_round_trip() -> None:
    for text in ("plain", "a b+c=d", "ünï", "[UNAVAILABLE]", "\r\n"):
        assert xtext_decode(xtext_encode(text)) == text
    assert xtext_encode("a b+c=d") == "a+20b+2Bc+3Dd"
    assert xtext_decode("a=b") is None
    assert xtext_decode("a+4") is None


def test_upstream_commands_send_only_what_the_next_hop_lists() -> None:
    attrs: dict[str, str | None] = {
        "NAME": None, "ADDR": "127.0.0.9", "PORT": "40000", "PROTO": "ESMTP",
        "HELO": "mx pengirim", "IDENT": None, "SOURCE": "REMOTE"}
    assert upstream_commands(attrs, ["NAME", "ADDR", "PROTO", "HELO"]) == [
        "XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.9 PROTO=ESMTP HELO=mx+20pengirim"]
    assert upstream_commands(attrs, []) == []
    assert upstream_commands(attrs, ["addr", "port"]) == ["XFORWARD ADDR=127.0.0.9 PORT=40000"]


def test_upstream_commands_stay_within_512_octets() -> None:
    long = "h" * 250
    attrs: dict[str, str | None] = {"NAME": long, "ADDR": "192.0.2.1", "HELO": long,
                                    "IDENT": long}
    lines = upstream_commands(attrs, ["NAME", "ADDR", "HELO", "IDENT"])
    assert len(lines) == 3
    assert all(len(line) + 2 <= 512 for line in lines)
    merged: dict[str, str | None] = {}
    for line in lines:
        merged.update(parse(line.removeprefix("XFORWARD ")))
    assert merged == attrs
