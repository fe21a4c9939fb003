"""Red team of reading a spooled message while it arrives (gateway.message.prescan).

The claim: a `Prescan` fed the message piece by piece, and `Known` serving its
decoded parts, change no answer of the inspection, never fail the message, and
cost the front end (the event loop that feeds them) no more than reading the bytes.

The defects found in review (an RFC 2231 boundary in a codec that refuses
`errors=replace` raised out of `feed`; a flood of tiny parts and header blocks
arriving a line at a time were quadratic) have regression tests here; the others are
regressions for claims that held: hostile structures cut at every position give
the same view as the inspection without a prescan (as tests/fuzz/test_fuzz_prescan.py
demands for random input).
"""

from __future__ import annotations

import base64
import io
import re
import time
import tracemalloc

import pytest

from gateway.frontends.datastream import normalize
from gateway.message import prescan, transfer
from gateway.message.view import MessageView
from tests.fuzz.test_fuzz_fast_paths import facts

HEAD = (b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n")
B64 = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^"\s;]{1,200})')


def _enc(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def fed(pieces: list[bytes]) -> tuple[prescan.Prescanned, bytes]:
    sink = io.BytesIO()
    scan = prescan.Prescan(sink.write)
    for piece in pieces:
        scan.feed(piece)
    return scan.result(), sink.getvalue()


def same_as_without(raw: bytes, pieces: list[bytes]) -> int:
    """The prescan of `pieces` (raw cut so) keeps every promise; parts served."""
    assert b"".join(pieces) == raw
    found, decoded = fed(pieces)
    assert found.size == len(raw) and found.lines == raw.count(b"\n--")
    if found.boundaries is not None:
        assert set(_BOUNDARY.findall(raw.lower())) <= found.boundaries
    for part in found.parts:
        assert (decoded[part.offset:part.offset + part.length], part.clean) == \
            transfer.decode_base64(raw[part.start:part.end])
    known = prescan.Known(raw, found, lambda o, n: decoded[o:o + n])
    assert facts(MessageView(raw, prescanned=known)) == facts(MessageView(raw))
    return known.used


def every_cut(raw: bytes) -> int:
    """`same_as_without` for raw in one piece, line by line, and cut in two anywhere."""
    served = same_as_without(raw, [raw])
    same_as_without(raw, raw.splitlines(keepends=True))
    whole, whole_decoded = fed([raw])
    for cut in range(1, len(raw)):
        found, decoded = fed([raw[:cut], raw[cut:]])
        # Where a piece ends changes nothing found (the view was compared above); a
        # part that broke half-way may leave bytes in the sink that no entry names.
        assert found == whole, cut
        assert [decoded[p.offset:p.offset + p.length] for p in found.parts] == \
            [whole_decoded[p.offset:p.offset + p.length] for p in whole.parts], cut
    return served


# -- defects ---------------------------------------------------------------------------

IDNA_BOUNDARY = (b"From: a@anm.gov.my\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: multipart/mixed; boundary*=idna''abc\r\n\r\n"
                 b"--abc\r\n" + B64 + b"\r\n" + _enc(b"data") + b"--abc--\r\n")


@pytest.mark.parametrize("charset", [b"idna", b"undefined"])
def test_an_rfc2231_boundary_charset_does_not_raise_out_of_feed(charset: bytes) -> None:
    raw = IDNA_BOUNDARY.replace(b"idna", charset)
    # The inspection without a prescan reads it (the feedparser fails, caught:
    # an unparsable structure), so the prescan must simply give up.
    assert MessageView(raw).structure is not None
    same_as_without(raw, [raw])


def _cpu(pieces: list[bytes]) -> float:
    scan = prescan.Prescan(lambda _d: None)
    started = time.process_time()
    for piece in pieces:
        scan.feed(piece)
    scan.result()
    return time.process_time() - started


def _dot_lines(size: int) -> list[bytes]:
    # Lines that start with '.' reach the spool one piece each: DataDecoder cuts the
    # DATA stream at every CRLF '.' (the dot-stuffed line start).
    return [b".\r\n"] * (size // 3)


def _as_content(size: int) -> float:
    """The same pieces as content of a part: what reading them should cost."""
    return _cpu([HEAD, b"--b\r\nX-A: 1\r\n\r\n", *_dot_lines(size), b"--b--\r\n"])


TINY_PARTS = HEAD + b"--b\r\n\r\nx\r\n" * (256 * 1024 // 12) + b"--b--\r\n"


def test_a_flood_of_tiny_parts_costs_the_front_end_little() -> None:
    pieces = [TINY_PARTS[i:i + 65536] for i in range(0, len(TINY_PARTS), 65536)]
    assert _cpu(pieces) < 0.25


def test_a_part_header_block_fed_line_by_line_costs_little() -> None:
    size = 24 * 1024
    hostile = _cpu([HEAD, b"--b\r\nX-A: 1\r\n", *_dot_lines(size),
                    b"\r\nQUJD\r\n--b--\r\n"])
    assert hostile < 5 * _as_content(size) + 0.05


def test_a_top_level_header_block_fed_line_by_line_costs_little() -> None:
    size = 24 * 1024
    hostile = _cpu([b"From: a@anm.gov.my\r\n", *_dot_lines(size), b"\r\nbody\r\n"])
    assert hostile < 5 * _as_content(size) + 0.05


def test_a_part_without_line_ends_is_not_held_in_memory() -> None:
    # Held at f587228 (the whole line was kept); bounded by MAX_LINE since 8176d3e.
    line = base64.b64encode(b"\x00" * (6 * 1024 * 1024))  # 8 MB, no line end
    raw = HEAD + b"--b\r\n" + B64 + b"\r\n" + line + b"\r\n--b--\r\n"
    scan = prescan.Prescan(lambda _d: None)
    tracemalloc.start()
    try:
        for at in range(0, len(raw), 65536):
            scan.feed(raw[at:at + 65536])
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, peak


# -- claims that held ------------------------------------------------------------------

def test_boundary_params_split_across_pieces_and_blanks_after_boundary() -> None:
    for param in (b'boundary="b"', b"BOUNDARY = b", b'boundary \r\n\t= \r\n "b"',
                  b"boundary\r\n =b"):
        raw = (b"From: a@anm.gov.my\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed;\r\n " + param + b"\r\n\r\n"
               b"--b\r\n" + B64 + b"\r\n" + _enc(b"satu dua tiga") + b"--b--\r\n")
        every_cut(raw)


def test_hostile_base64_and_delimiters_read_as_without_the_prescan() -> None:
    junk = b"QUJD*REVG\r\n"
    mid_pad = b"QQ==\r\nQUJD\r\n"
    pad_lines = b"QUJDRA=\r\n=\r\n"
    served = 0
    for raw in (
        HEAD + b"--b\r\n" + B64 + b"\r\n" + junk + b"--b--\r\n",
        HEAD + b"--b\r\n" + B64 + b"\r\n" + mid_pad + b"--b--\r\n",
        HEAD + b"--b\r\n" + B64 + b"\r\n" + pad_lines + b"--b--\r\n",
        # a part with no blank line, then a good one
        HEAD + b"--b\r\n" + B64 + b"--b\r\n" + B64 + b"\r\nQUJD\r\n--b--\r\n",
        # delimiter lines in a row, with blanks after them
        HEAD + b"--b\r\n--b \t\r\n" + B64 + b"\r\nQUJD\r\n--b--\r\n",
        # closing delimiter first, then parts the feedparser never reads
        HEAD + b"--b--\r\n--b\r\n" + B64 + b"\r\nQUJD\r\n--b--\r\n",
        # no closing delimiter
        HEAD + b"--b\r\n" + B64 + b"\r\nQUJD\r\n",
        # look-alike delimiters inside the content
        HEAD + b"--b\r\n" + B64 + b"\r\nQUJD\r\n--bb\r\n -b\r\n--b--\r\n",
        # base64 declared on a message/rfc822 part
        HEAD + b"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64"
        b"\r\n\r\n" + _enc(b"Subject: x\r\n\r\nhi\r\n") + b"--b--\r\n",
    ):
        served += every_cut(raw)
    assert served >= 2  # the well-formed parts among them really were served


def test_nested_multiparts_and_a_reused_boundary() -> None:
    inner = (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n" + B64 +
             b"\r\n" + _enc(b"dalam") + b"--b--\r\n")
    raw = HEAD + b"--b\r\n" + inner + b"--b\r\n" + B64 + b"\r\n" + _enc(b"luar") + b"--b--\r\n"
    every_cut(raw)
    inner = (b"Content-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n" + B64 +
             b"\r\n" + _enc(b"dalam") + b"--c--\r\n")
    raw = HEAD + b"--b\r\n" + inner + b"--b\r\n" + B64 + b"\r\n" + _enc(b"luar") + b"--b--\r\n"
    assert every_cut(raw) == 2  # the nested leaf too (tests/unit/test_prescan_nested.py)


def test_cr_only_lines_under_normalize_read_as_without_the_prescan() -> None:
    # What the spool holds under bare_newlines: normalize.
    raw = normalize(HEAD.replace(b"\r\n", b"\r") + b"--b\r" + B64.replace(b"\r\n", b"\r") +
                    b"\r" + _enc(b"isi").replace(b"\r\n", b"\r") + b"--b--\r")
    assert every_cut(raw) == 1


def test_lf_only_and_mixed_line_ends_read_as_without_the_prescan() -> None:
    raw = (HEAD + b"--b\r\n" + B64 + b"\r\n" + _enc(b"isi") + b"--b\n" + B64 + b"\n" +
           _enc(b"lagi").replace(b"\r\n", b"\n") + b"--b--\n")
    every_cut(raw)


def test_a_decoded_file_that_lost_bytes_is_not_used() -> None:
    raw = HEAD + b"--b\r\n" + B64 + b"\r\n" + _enc(b"x" * 3000) + b"--b--\r\n"
    found, decoded = fed([raw])
    assert found.parts
    short = prescan.Known(raw, found, lambda o, n: decoded[o:o + n - 1])
    assert facts(MessageView(raw, prescanned=short)) == facts(MessageView(raw))
    assert short.used == 0
