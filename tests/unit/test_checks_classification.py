"""classification: the HIGHEST marking is in the list; fails closed beyond the bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.envelope import Envelope
from gateway.message.view import MessageView, NotInspectable
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence

DATA = Path(__file__).parent / "data"
ENV = Envelope(direction="outbound", listener="t", client_ip="127.0.0.1", helo="h",
               mail_from="a@anm.gov.my", rcpt_to=("b@example.com",))


def run(value: Any, view: MessageView) -> Evidence | None:
    check = REGISTRY["classification"]
    return check.evaluate(check.validate(value), Context(view, ENV, ("anm.gov.my",)))


def msg(subject: str, body: str = "Isi.") -> MessageView:
    return MessageView(f"From: a@anm.gov.my\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode())


def test_listed_highest_marking_holds() -> None:
    assert run(["RAHSIA BESAR", "RAHSIA"], msg("[RAHSIA] Pelan")) == {
        "classification": "RAHSIA", "where": [{"in": "subject", "at": "subject"}]}
    assert run(["TERHAD", "SULIT"], msg("SULIT: Minit", "*** SULIT ***")) == {
        "classification": "SULIT", "where": [
            {"in": "subject", "at": "subject"},
            {"in": "body", "part": 0, "lineno": 1, "at": "body"}]}


def test_unlisted_or_none_does_not_hold() -> None:
    assert run(["RAHSIA"], msg("SULIT: Minit")) is None
    assert run(["TERHAD", "SULIT", "RAHSIA", "RAHSIA BESAR"], msg("Tempat terhad")) is None


def test_only_the_highest_counts() -> None:
    view = msg("TERHAD: Minit", "Klasifikasi: RAHSIA")
    assert run(["TERHAD", "SULIT"], view) is None
    assert run(["RAHSIA"], view) is not None


def test_forwarded_message_marking() -> None:
    view = MessageView((DATA / "forwarded-sulit.eml").read_bytes())
    got = run(["SULIT"], view)
    assert got is not None and got["where"][0]["in"] == "forwarded"


def test_values_are_case_and_space_normalised() -> None:
    assert REGISTRY["classification"].validate(["rahsia  besar", "Sulit"]) == \
        frozenset({"RAHSIA BESAR", "SULIT"})
    assert REGISTRY["classification"].validate("TERHAD") == frozenset({"TERHAD"})


def test_fails_closed_beyond_bounds() -> None:
    raw = b"Subject: x\r\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(40)) + b"Content-Type: text/plain\r\n\r\nRAHSIA\r\n"
    with pytest.raises(NotInspectable):
        run(["RAHSIA"], MessageView(raw))
    # `not: classification` must not turn "cannot tell" into "unmarked" either.
    with pytest.raises(NotInspectable):
        run(["TERHAD"], MessageView(raw))
