"""Reading a message as it arrives changes no answer: the corpus and fuzz input, fed in pieces.

`gateway.message.prescan` decodes base64 parts, searches text bodies and gathers the delimiter
count's inputs while the message arrives; the inspection then uses them instead of
doing that work after the final dot. Demanded here, for every corpus message and
fuzz input cut into pieces at random places: each recorded part's bytes are what
`transfer.decode_base64` makes of its span, the count's inputs are the message's
(`\\n--` exactly, the boundary values a superset), and the view's facts and the
verdicts under the shipped rules are those of the inspection without a prescan.
And the corpus must give the prescan work to do: a prescan that recorded nothing
would pass every other test here.
"""

from __future__ import annotations

import base64
import contextlib
import io
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.message import prescan, transfer
from gateway.message.view import MessageView, NotInspectable
from gateway.pipeline import inspect
from gateway.policy_state import PolicyState
from tests.support.corpus import message_of

from .settings import FUZZ
from .test_fuzz_fast_paths import (
    BASE64ISH,
    CASES,
    EMLS,
    ENVELOPES,
    REPO,
    facts,
    mime_bytes,
)
from .test_fuzz_fast_paths import policy as policy  # the fixture
from .test_fuzz_textscan import scanned
from .test_fuzz_view import TIGHT, structured

_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^"\s;]{1,200})')


FRUITLESS: list[bytes] = []  # messages whose prescan said so


def fed(raw: bytes, cuts: random.Random) -> tuple[prescan.Prescanned, bytes]:
    """The prescan of `raw` fed in pieces cut at random, and what its sink got.

    Also demanded: once `fruitless` (the reading process then stops reading, gateway
    .frontends.pool), it stays so and the whole message's result has no part: stopping
    there loses nothing the inspection would have used."""
    sink = io.BytesIO()
    scan = prescan.Prescan(sink.write)
    at = 0
    seen = False
    while at < len(raw):
        step = cuts.choice((1, 2, 3, 7, 64, 1000, 65536))
        scan.feed(raw[at:at + step])
        at += step
        assert scan.fruitless or not seen
        seen = scan.fruitless
    found = scan.result()
    if seen:
        assert found.parts == () and found.texts == ()
        FRUITLESS.append(raw)
    return found, sink.getvalue()


def check(raw: bytes, cuts: random.Random, policy: PolicyState | None = None) -> int:
    """Asserts the module docstring's demands; returns how many parts were served."""
    found, decoded = fed(raw, cuts)
    assert found.size == len(raw)
    assert found.lines == raw.count(b"\n--")
    if found.boundaries is not None:
        assert set(_BOUNDARY.findall(raw.lower())) <= found.boundaries
    for part in found.parts:
        assert (decoded[part.offset:part.offset + part.length], part.clean) == \
            transfer.decode_base64(raw[part.start:part.end])
    for text in found.texts:
        content = raw[text.start:text.end]
        if text.quoted:
            content = transfer.decode_quoted_printable(content)[0]
        assert text.scanned == scanned(content, text.charset)
    for limits in (None, TIGHT):
        known = prescan.Known(raw, found, lambda o, n: decoded[o:o + n])
        assert facts(MessageView(raw, limits=limits, prescanned=known)) == \
            facts(MessageView(raw, limits=limits))
    served = known.used
    if policy is not None:
        for envelope in ENVELOPES:
            known = prescan.Known(raw, found, lambda o, n: decoded[o:o + n])
            with_scan = inspect(policy, raw, envelope, ref="sama", prescanned=known)
            without = inspect(policy, raw, envelope, ref="sama")
            assert (with_scan.verdict, with_scan.reply, with_scan.relay_bytes) == (
                without.verdict, without.reply, without.relay_bytes)
    return served


@pytest.mark.parametrize("path", CASES + EMLS,
                         ids=[str(p.relative_to(REPO / "tests" / "corpus"))
                              for p in CASES + EMLS])
def test_corpus_prescanned_inspection_is_the_same(policy: PolicyState, path: Path) -> None:
    raw = message_of(path)
    # The proxy spools CRLF lines: both forms are fed.
    crlf = re.sub(rb"\r?\n", b"\r\n", raw)
    check(raw, random.Random(str(path)), policy)
    check(crlf, random.Random(str(path) + "crlf"), policy)


def test_the_corpus_gives_the_prescan_work() -> None:
    served = texts = 0
    for path in CASES + EMLS:
        raw = re.sub(rb"\r?\n", b"\r\n", message_of(path))
        found, decoded = fed(raw, random.Random(str(path)))
        known = prescan.Known(raw, found, lambda o, n: decoded[o:o + n])  # noqa: B023
        view = MessageView(raw, prescanned=known)
        with contextlib.suppress(NotInspectable):
            for attachment in view.attachments:
                attachment.data()
        with contextlib.suppress(NotInspectable):
            view.markings  # noqa: B018 (what reads the scanned texts)
        served += known.used > 0
        texts += known.scanned > 0
    # 235 of the 305 corpus messages (228 while only top-level parts were read): most
    # attachments are base64.
    assert served >= 200, served
    # Text bodies scanned on the way and used: 287 of the 305 (279 before nested and
    # quoted-printable texts were read).
    assert texts >= 250, texts
    # And the other side: messages read no further because nothing would come of it
    # (9 of the 305: not multipart, and not a text read on the way).
    FRUITLESS.clear()
    for path in CASES + EMLS:
        fed(re.sub(rb"\r?\n", b"\r\n", message_of(path)), random.Random(str(path)))
    assert len(FRUITLESS) >= 5


@FUZZ
@given(st.one_of(mime_bytes(), structured()), st.integers(0, 2**32))
def test_fuzz_prescanned_view_is_the_same(raw: bytes, seed: int) -> None:
    check(raw, random.Random(seed))


def _multipart(bodies: list[bytes]) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"\r\n"
                     for body in bodies)
    return (b"From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n")


@FUZZ
@given(st.lists(BASE64ISH, min_size=1, max_size=4), st.integers(0, 2**32))
def test_fuzz_damaged_base64_parts_read_the_same(bodies: list[bytes], seed: int) -> None:
    check(_multipart(bodies), random.Random(seed))


@FUZZ
@given(BASE64ISH, st.lists(st.integers(1, 40), max_size=20))
def test_fuzz_base64_in_pieces_is_the_whole(data: bytes, steps: list[int]) -> None:
    stream = transfer.Base64Stream()
    out, at = [], 0
    for step in [*steps, len(data)]:
        out.append(stream.feed(data[at:at + step]))
        at += step
    if not stream.broken:
        last, clean = stream.end()
        assert (b"".join(out) + last, clean) == transfer.decode_base64(data)


def test_well_formed_base64_is_decoded_on_the_way() -> None:
    # What the property above needs to mean anything: clean streams are not broken.
    data = b"QUJD\r\nREVG\r\nRw==\r\n"
    stream = transfer.Base64Stream()
    got = b"".join(stream.feed(data[i:i + 5]) for i in range(0, len(data), 5))
    assert not stream.broken and got + stream.end()[0] == b"ABCDEFG"


def test_a_boundary_value_across_pieces_is_found() -> None:
    raw = (b'Content-Type: multipart/mixed;\r\n boundary = "' + b"x" * 150 +
           b'"\r\n\r\n--' + b"x" * 150 + b"\r\n\r\nhi\r\n--" + b"x" * 150 + b"--\r\n")
    for cut in range(1, len(raw)):
        scan = prescan.Prescan(lambda _d: None)
        scan.feed(raw[:cut])
        scan.feed(raw[cut:])
        assert scan.result().boundaries == frozenset({b"x" * 150}), cut


def test_endless_blanks_after_boundary_give_no_count() -> None:
    scan = prescan.Prescan(lambda _d: None)
    scan.feed(b"Content-Type: multipart/mixed; boundary")
    for _ in range(100):
        scan.feed(b" " * 1000)
    assert scan.result().boundaries is None


def test_a_part_decoded_on_the_way_is_served_to_the_view() -> None:
    payload = bytes(range(256)) * 400
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = _multipart([encoded.rstrip(b"\r\n")])
    found, decoded = fed(raw, random.Random(1))
    assert len(found.parts) == 1
    known = prescan.Known(raw, found, lambda o, n: decoded[o:o + n])
    assert MessageView(raw, prescanned=known).attachments[0].size == len(payload)
    assert known.used == 1
    # A prescan of fewer or more bytes than the message is never used.
    shorter = prescan.Known(raw + b"\r\n", found, lambda o, n: decoded[o:o + n])
    assert MessageView(raw + b"\r\n", prescanned=shorter).attachments[0].size == len(payload)
    assert shorter.used == 0 and shorter.counted is None


QP_TOKENS = (b"=", b"==", b"=4", b"=41", b"=4g", b" ", b"\t", b"\r", b"\n", b"\r\n", b"a",
             b"SULIT", b"=\r\n", b"= \n", b"=\r", b"=0D=0A", b"x" * 300, b" " * 300)


@FUZZ
@given(st.lists(st.sampled_from(QP_TOKENS), max_size=40).map(b"".join),
       st.sampled_from((b"", b"\r\n", b"\n")), st.lists(st.integers(1, 400), max_size=20))
def test_fuzz_quoted_printable_in_pieces_is_the_whole(data: bytes, eol: bytes,
                                                      steps: list[int]) -> None:
    # `eol`: the line end before a delimiter, fed but not the content's (`end(drop)`).
    stream = transfer.QuotedPrintableStream()
    fed_data = data + eol
    out, at = [], 0
    for step in [*steps, len(fed_data)]:
        out.append(stream.feed(fed_data[at:at + step]))
        at += step
    assert not stream.broken
    assert b"".join(out) + stream.end(len(eol)) == \
        (transfer.decode_quoted_printable(data)[0] if data else b"")
