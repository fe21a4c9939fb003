"""Fuzz the message parser and view: arbitrary bytes and mutated real messages.

Whatever the bytes, every property of MessageView (and of each attachment, text part
and enclosed message) either returns or raises NotInspectable: never another
exception, so a hostile message can only ever be tempfailed, never crash inspection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.message.limits import InspectionLimits
from gateway.message.view import MessageView, NotInspectable

from .settings import FUZZ

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "fixtures" / "mime"
SAMPLES = sorted(CORPUS.glob("*.eml"))
# Small bounds so that fuzzed inputs also reach the "beyond a limit" paths quickly.
TIGHT = InspectionLimits(max_header_bytes=4096, max_parts=20, max_depth=4,
                         max_expansion_bytes=2 * 1024 * 1024, max_archive_entries=20,
                         max_archive_depth=1, max_archive_ratio=50, max_seconds=10.0)

# Pieces of MIME syntax that steer random mutation towards the parser's corners.
TOKENS = [b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"--", b"\r\n--", b"--\r\n", b"=?", b"?=",
          b"=?utf-8?B?", b"=?iso-8859-1?Q?", b"Content-Type: multipart/mixed; boundary=\"b\"\r\n",
          b"Content-Type: message/rfc822\r\n", b"Content-Transfer-Encoding: base64\r\n",
          b"Content-Transfer-Encoding: quoted-printable\r\n", b"Content-Disposition: "
          b"attachment; filename*=utf-8''%E2%80%AE.exe\r\n", b"boundary=", b"\x00", b"\xff",
          b"\xe2\x80\xae", b"=\r\n", b"=3D", b"Subject: RAHSIA\r\n", b"<a href=\"http://x\">",
          b"PK\x03\x04", b"%PDF-1.4\r\n", b"-----BEGIN PGP MESSAGE-----", b"\t", b" " * 80,
          b"x" * 1000]


def touch(view: MessageView) -> None:
    """Read every fact the policy can read; only NotInspectable may come out."""
    def get(fn: Callable[[], object]) -> None:
        with contextlib.suppress(NotInspectable):
            fn()

    for name in ("size", "header_block", "subject", "message_id", "from_addresses",
                 "from_header", "identity", "auto_forwarded", "structure", "message",
                 "complete", "incomplete_reason", "structure_defects", "defects",
                 "encrypted_message", "text_parts", "forwarded", "links", "link_hosts",
                 "markings", "classification"):
        get(lambda name=name: getattr(view, name))
    get(view.require_complete)
    for header in ("Subject", "From", "To", "Content-Type", "X-Classification"):
        get(lambda header=header: view.header_values(header))
        get(lambda header=header: view.raw_header_values(header))
    try:
        attachments = view.attachments
    except NotInspectable:
        attachments = ()
    for att in attachments:
        for name in ("filename", "filenames", "size", "detected_type", "category",
                     "encrypted", "claimed_categories", "type_mismatch"):
            get(lambda att=att, name=name: getattr(att, name))
        get(att.text)
        get(att.as_dict)
    try:
        forwarded = view.forwarded
    except NotInspectable:
        forwarded = ()
    for fwd in forwarded:
        get(lambda fwd=fwd: fwd.subject)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)).read_bytes())
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=16)))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 200))]
        elif op == "duplicate":
            piece = bytes(data[at:at + draw(st.integers(1, 400))])
            data[at:at] = piece * draw(st.integers(1, 5))
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def structured() -> st.SearchStrategy[bytes]:
    """Messages assembled from MIME tokens: nearer to real structure than random bytes."""
    return st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=24)),
                    max_size=60).map(b"".join)


@FUZZ
@given(st.binary(max_size=4096))
def test_view_on_arbitrary_bytes(raw: bytes) -> None:
    touch(MessageView(raw))


@FUZZ
@given(structured())
def test_view_on_token_soup(raw: bytes) -> None:
    touch(MessageView(raw))
    touch(MessageView(raw, limits=TIGHT))


@FUZZ
@given(mutated())
def test_view_on_mutated_real_messages(raw: bytes) -> None:
    touch(MessageView(raw))
    touch(MessageView(raw, limits=TIGHT))


def test_corpus_is_there() -> None:
    # The mutation target above silently fuzzes nothing without its seeds.
    assert len(SAMPLES) >= 20
