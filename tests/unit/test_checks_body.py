"""Body checks: body_matches and link_domain, on real .eml files and built messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.envelope import Envelope
from gateway.message import mime
from gateway.message.view import MessageView, NotInspectable
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence

DATA = Path(__file__).parent / "data"
ENV = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="h",
               mail_from="a@anm.gov.my", rcpt_to=("b@example.com",))


def run(name: str, value: Any, view: MessageView) -> Evidence | None:
    check = REGISTRY[name]
    return check.evaluate(check.validate(value), Context(view, ENV, ("anm.gov.my",)))


def html_view() -> MessageView:
    return MessageView((DATA / "html-qp-marking.eml").read_bytes())


def test_body_matches_plain_and_html() -> None:
    assert run("body_matches", r"Caf. dibuka", html_view()) == \
        {"body_matches": {"part": 0, "match": "Café dibuka"}}
    # Text of the HTML part, tags gone: the <b> between does not break the match.
    assert run("body_matches", r"Sila lihat laporan\.", html_view()) == \
        {"body_matches": {"part": 1, "match": "Sila lihat laporan."}}
    assert run("body_matches", r"(?i)kata laluan", html_view()) is None


def test_body_matches_forwarded_body_counts() -> None:
    view = MessageView((DATA / "forwarded-sulit.eml").read_bytes())
    assert run("body_matches", r"Lampiran bajet", view) == \
        {"body_matches": {"part": 1, "match": "Lampiran bajet"}}


def test_link_domain_text_and_href() -> None:
    assert run("link_domain", ["dropbox.com"], html_view()) == \
        {"link_domain": {"match": "www.dropbox.com", "url": "https://www.dropbox.com/s/xyz"}}
    assert run("link_domain", ["drive.google.com"], html_view()) is not None
    assert run("link_domain", ["mega.nz"], html_view()) is None


@pytest.mark.parametrize(("body", "hit"), [
    ("lihat https://anm.gov.my@dropbox.com/s/1", True),   # userinfo is not the host
    ("lihat HTTPS://WWW.DROPBOX.COM./x", True),
    ("lihat ftp://files.dropbox.com/a", True),
    ("lihat www.dropbox.com/s/2", True),
    ("lihat https://dropbox.com.evil.example/x", False),
    ("lihat https://notdropbox.com/x", False),
    ("tiada pautan, cuma dropbox.com disebut", False),
])
def test_link_host_parsing(body: str, hit: bool) -> None:
    raw = f"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n".encode()
    assert (run("link_domain", ["dropbox.com"], MessageView(raw)) is not None) is hit


def test_body_checks_fail_closed_when_incomplete() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(20))
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    view = MessageView(raw, max_parts=10)
    assert mime.MAX_PARTS > 10
    with pytest.raises(NotInspectable):
        run("body_matches", "x", view)
    with pytest.raises(NotInspectable):
        run("link_domain", ["dropbox.com"], view)
