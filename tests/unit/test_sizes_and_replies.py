"""Byte sizes as administrators write them, and the rendering of SMTP replies."""

from __future__ import annotations

import pytest

from gateway.policy import replies
from gateway.policy.verdict import Reply
from gateway.sizes import format_size, parse_size


@pytest.mark.parametrize(("text", "value"), [
    ("25MB", 25 * 1024**2), ("25 MiB", 25 * 1024**2), ("10mb", 10 * 1024**2),
    ("512KB", 512 * 1024), ("1GB", 1024**3), ("1048576", 1048576), (100, 100),
    ("1.5MB", int(1.5 * 1024**2)),
])
def test_parse_size(text: str | int, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("bad", ["25XB", "MB", "-1", "", True, None, -5, "25 M B"])
def test_parse_size_refuses(bad: object) -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size(bad)


def test_format_size() -> None:
    assert format_size(25 * 1024**2) == "25MB"
    assert format_size(1000) == "1000B"


def test_render_multiline_repeats_code_on_every_line() -> None:
    text = replies.render(Reply(550, "5.7.1", ("satu", "two", "rule=x ref=y")))
    assert text.split("\r\n") == ["550-5.7.1 satu", "550-5.7.1 two", "550 5.7.1 rule=x ref=y"]


def test_render_cannot_be_used_to_inject_lines() -> None:
    text = replies.render(Reply(550, "5.7.1", ("a\r\n250 OK", "b")))
    assert text.split("\r\n") == ["550-5.7.1 a  250 OK", "550 5.7.1 b"]


def test_gateway_replies_have_codes_and_ref() -> None:
    for reply, code, enhanced in [
        (replies.size_exceeded(25 * 1024**2, "R1"), 552, "5.3.4"),
        (replies.relay_denied("R1"), 554, "5.7.1"),
        (replies.internal_error("R1"), 451, "4.3.0"),
        (replies.upstream_unavailable("R1"), 451, "4.4.1"),
    ]:
        assert (reply.code, reply.enhanced) == (code, enhanced)
        assert "ref=R1" in reply.lines[-1]
        assert len(reply.lines) >= 3  # Malay, English, reference
