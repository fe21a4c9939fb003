"""Nested MIME and quoted-printable texts read as they arrive change no answer.

The prescan (gateway.message.prescan) follows multiparts inside multiparts and enclosed
messages, and decodes quoted-printable text bodies a run of lines at a time. Demanded
here for trees of MIME parts a strategy builds (boundaries that repeat an enclosing
one, end in `--` or are a prefix of another; delimiter-like lines inside bodies; a
multipart never closed, or closed before it opens; enclosed messages; base64 and
quoted-printable bodies, damaged too), in CRLF and LF lines, fed in random pieces:
everything `test_fuzz_prescan.check` demands (each recorded part and text is what its
span holds; the view's facts are those without a prescan). That such trees are read
at all (parts below the top level recorded and served) is tests/unit/test_prescan_nested.py's.
"""

from __future__ import annotations

import base64
import random

from hypothesis import given
from hypothesis import strategies as st

from .settings import FUZZ
from .test_fuzz_prescan import check

BOUNDARIES = (b"b", b"bb", b"b--", b"b-", b"c", b"=_x.1")
TEXT_TOKENS = (b"SULIT", b"RAHSIA BESAR", b"terhad", b"Klasifikasi: TERHAD", b"la la",
               b"https://anm.gov.my/a", b"www.x.my", b" ", b"\t", b"\r\n", b"\n",
               b"=", b"=41", b"=4", b"=\r\n", b"= \r\n", b"SU=\r\nLIT", b"=0D=0A", b"==",
               "\u00e9".encode(), b"=C3=A9")
# Lines a delimiter search must not take for one, or must: rarer than words.
TRAPS = (b"\r\n--b\r\n", b"\r\n--b--\r\n", b"\r\n--c\r\n", b"\r\n--bb--\r\n",
         b"\r\n--b-- \r\n", b"\xe9", b"\x1b", b"\r", b"\r--b\r\n", b"\r\n--b\r")
CHARSETS = (b"", b"; charset=utf-8", b"; charset=iso-8859-1", b'; charset="us-ascii"',
            b"; charset=utf-8", b"; charset=utf-16")
LEAF_TYPES = (b"text/plain", b"text/plain", b"text/plain", b"text/html",
              b"application/pdf", b"application/octet-stream", b"", b"message/delivery-status")
ENCODINGS = (b"7bit", b"8bit", b"quoted-printable", b"quoted-printable", b"base64",
             b"base64", b"Quoted-Printable ")

texts = st.lists(st.one_of(st.sampled_from(TEXT_TOKENS), st.sampled_from(TEXT_TOKENS),
                           st.sampled_from(TEXT_TOKENS), st.sampled_from(TRAPS)),
                 max_size=30).map(b"".join)


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from(LEAF_TYPES))
    charset = draw(st.sampled_from(CHARSETS)) if ctype.startswith(b"text/") else b""
    encoding = draw(st.sampled_from(ENCODINGS))
    if encoding == b"base64" and not ctype.startswith(b"text/"):
        body = base64.encodebytes(draw(st.binary(max_size=300))).replace(b"\n", b"\r\n")
        body = body.rstrip(b"\r\n")
        if draw(st.integers(0, 4)) == 0:
            body += draw(st.sampled_from((b"==", b"!!", b"QQ=", b"\r\n--b", b"")))
    else:
        body = draw(texts)
    # No Content-Type at all: text/plain by default (RFC 2045 5.2).
    head = b"Content-Type: " + ctype + charset + b"\r\n" if ctype else b""
    return head + b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body


def multipart(children: list[bytes], boundary: bytes, subtype: bytes, close: str,
              preamble: bytes, epilogue: bytes) -> bytes:
    sep = b"--" + boundary
    parts = b"".join(b"\r\n" + sep + b"\r\n" + child for child in children)
    ending = {"closed": b"\r\n" + sep + b"--\r\n", "open": b"\r\n",
              "first": b""}[close]
    if close == "first":  # the closing delimiter before any opening one
        parts = b"\r\n" + sep + b"--\r\n" + parts
    return (b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary
            + b'"\r\n\r\n' + preamble + parts + ending + epilogue)


def enclosed(child: bytes, encoding: bytes) -> bytes:
    # In quoted-printable or base64 (against RFC 2046, but sent): parsed anew from its
    # decoded bytes by the inspection (the base64 one is its text, not encoded here).
    return (b"Content-Type: message/rfc822\r\n" + encoding + b"\r\n"
            b"From: x@example.org\r\nSubject: fwd\r\n" + child)


def multiparts(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(multipart, st.lists(inner, min_size=1, max_size=4),
                     st.sampled_from(BOUNDARIES),
                     st.sampled_from((b"mixed", b"alternative", b"related", b"mixed",
                                      b"digest")),
                     st.sampled_from(("closed",) * 6 + ("open", "first")),
                     st.sampled_from((b"", b"preamble\r\n")),
                     st.sampled_from((b"", b"epilogue\r\n--b\r\n")))


def trees() -> st.SearchStrategy[bytes]:
    def extend(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        return st.one_of(multiparts(inner), st.builds(enclosed, inner, st.sampled_from(
            (b"", b"", b"Content-Transfer-Encoding: quoted-printable\r\n",
             b"Content-Transfer-Encoding: base64\r\n"))))
    # The top of a tree a multipart: a message that is one part has no nesting.
    return multiparts(st.recursive(leaves(), extend, max_leaves=10))


def message(tree: bytes, lf: bool) -> bytes:
    raw = b"From: a@anm.gov.my\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n" + tree
    return raw.replace(b"\r\n", b"\n") if lf else raw


@FUZZ
@given(trees(), st.booleans(), st.integers(0, 2**32))
def test_fuzz_nested_trees_read_the_same(tree: bytes, lf: bool, seed: int) -> None:
    check(message(tree, lf), random.Random(seed))
