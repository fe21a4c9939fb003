"""A text scanned a piece at a time finds what the whole text's scan finds, or nothing.

`gateway.message.textscan` decodes and searches a text body a run of lines at a time
while it arrives. Demanded here for fuzz texts (marking words plain and disguised,
URLs, every line break, multi-byte characters, escapes, byte order marks, NULs,
bytes a charset rejects) under every kind of charset label, cut at random places
into pieces and runs: either the scan says it cannot vouch for the text (None), and
then only for a reason it names, or it found exactly what the inspection finds in
the whole text (`decode_bytes`, `markings.in_text`, `links.candidates`) as the
inspection keeps it. And the pieces of a text cut after line feeds scan as the whole.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.message import links, markings, textscan
from gateway.message.text import decode_bytes, line_codec, plain_start

from .settings import FUZZ

LABELS = (None, "", "us-ascii", "utf-8", "UTF-8", '"utf-8"', "iso-8859-1", "latin1",
          "windows-1252", "cp1250", "iso-8859-15", "x-unknown", "x-bogus", "zlib")
PIECES = (b"SULIT", b"S U L I T", b"RAHSIA BESAR", b"Rahsia", b"terhad", b"TERHAD",
          b"Klasifikasi: Sulit", b"SULlT", b"sulit dan", b"maklumat", b" ", b"\t", b":",
          b"\r\n", b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\xc2\x85", b"\xe2\x80\xa8",
          b"http://anm.gov.my/a", b"HTTPS://x.example/b).", b"www.a.my", b"WwW.b.my",
          b"ftp://c", b"://", b"www.", "é".encode(), b"\xe9", b"\x81", b"\xff",
          b"\xef\xbc\xb3", b"\xd0\x86", b"\x1b", b"\x1b$B", b"\x00", b"\xfe\xff",
          b"\xef\xbb\xbf", b"--", b"=", b"la la la")
# What makes a text unfit for the scan (an escape, a NUL, byte order marks, bytes a
# codec rejects) left out: most such texts must be scanned, and compared.
FIT = tuple(p for p in PIECES if not any(b in p for b in (b"\x1b", b"\x00", b"\xff",
                                                          b"\xfe", b"\x81")))
TEXTS = st.one_of(st.lists(st.sampled_from(FIT), max_size=80).map(b"".join),
                  st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join))


def scanned(content: bytes, charset: str | None) -> textscan.Scanned:
    """What a text's scan must find: the marking lines and URLs of its whole text,
    kept as the inspection keeps them (gateway.message.textscan)."""
    text = decode_bytes(content, charset)
    lines: list[tuple[int, str]] = []
    for lineno, marking in markings.in_text(text):
        if sum(1 for _n, m in lines if m == marking) < markings.MAX_PER_PART:
            lines.append((lineno, marking))
    return textscan.Scanned(tuple(lines), tuple(dict.fromkeys(links.candidates(text))))


def scan(content: bytes, eol: bytes, codec: str, seed: int) -> textscan.Scanned | None:
    """`content` and the line end after it that is not its own, fed at random cuts."""
    data = content + eol
    cuts = random.Random(seed)
    reader = textscan.TextScan(codec)
    at = 0
    while at < len(data):  # bounded: each pass moves at least one byte
        step = cuts.choice((1, 2, 3, 5, 16, 100, 4096))
        reader.feed(data[at:at + step])
        at += step
    return reader.end(len(eol))


@FUZZ
@given(st.one_of(TEXTS, st.binary(max_size=300)), st.sampled_from(LABELS),
       st.sampled_from((b"", b"\n", b"\r\n")), st.sampled_from((1, 3, 16, 1 << 18)),
       st.integers(0, 2**32))
def test_fuzz_text_scanned_in_runs_is_the_whole_scan(
        content: bytes, charset: str | None, eol: bytes, run: int, seed: int) -> None:
    codec = line_codec(charset)
    assume(codec is not None)
    assert codec is not None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(textscan, "_RUN", run)  # runs of every size, down to a byte
        found = scan(content, eol, codec, seed)
    if found is None:
        # Only for a reason it names: the text would not be decoded a run at a time.
        try:
            content.decode(codec)
            decodes = True
        except UnicodeDecodeError:
            decodes = False
        assert not plain_start(content) or b"\x1b" in content or not decodes
    else:
        assert found == scanned(content, charset)


@FUZZ
@given(st.lists(st.text(max_size=60), max_size=6), st.sampled_from(("\n", "\r\n")))
def test_fuzz_texts_cut_after_line_feeds_scan_as_the_whole(pieces: list[str],
                                                         end: str) -> None:
    cut = [piece + end for piece in pieces]
    whole = "".join(cut)
    lineno = 1
    found: list[tuple[int, str]] = []
    urls: list[str] = []
    for piece in cut:
        lines, lineno = markings.in_text_from(piece, lineno)
        found += lines
        urls += links.candidates(piece)
    assert found == list(markings.in_text(whole))
    assert urls == links.candidates(whole)


def test_ordinary_bodies_are_vouched_for() -> None:
    # The common case must not be `broken`: a test that always got None above passes.
    body = (b"Salam,\r\nSila rujuk https://www.anm.gov.my/x.\r\nSULIT\r\n"
            b"Terima kasih, pegawai.\r\n") * 2000
    for charset, content in ((None, body), ("utf-8", body + "Dénda\r\n".encode()),
                             ("windows-1252", body + "D\xe9nda\r\n".encode("cp1252"))):
        codec = line_codec(charset)
        assert codec is not None
        found = scan(content, b"\r\n", codec, 1)
        assert found is not None and found == scanned(content, charset)
        assert [m for _n, m in found.markings] == ["SULIT"] * markings.MAX_PER_PART
        assert found.urls == ("https://www.anm.gov.my/x",)
