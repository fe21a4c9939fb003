"""Text bodies scanned while they arrive (gateway.message.textscan, through prescan):
what is read, and where the reading gives up so the inspection scans after the dot."""

from __future__ import annotations

import io

from gateway.message import links, prescan, textscan
from gateway.message.view import MessageView

HEAD = b"From: a@anm.gov.my\r\nTo: b@example.com\r\nSubject: Laporan\r\n"
LINES = b"Mesyuarat jawatankuasa daerah pada hari Isnin.\r\n" * 8000  # 392 KB


def prescanned(raw: bytes, step: int) -> prescan.Prescan:
    scan = prescan.Prescan(io.BytesIO().write)
    for at in range(0, len(raw), step):
        scan.feed(raw[at:at + step])
    return scan


def test_a_text_message_is_read_whole_and_its_findings_used() -> None:
    raw = HEAD + b"\r\n" + LINES + b"SULIT\r\nhttps://www.anm.gov.my/a\r\n"
    found = prescanned(raw, 65536).result()
    [text] = found.texts
    assert (text.start, text.end, text.charset) == (len(HEAD) + 2, len(raw), None)
    assert text.scanned.markings == ((8001, "SULIT"),)
    assert text.scanned.urls == ("https://www.anm.gov.my/a",)
    known = prescan.Known(raw, found, lambda _o, _n: b"")
    view = MessageView(raw, prescanned=known)
    assert [(m.marking, m.where["lineno"]) for m in view.markings.found] == [("SULIT", 8001)]
    assert [link.url for link in view.links] == ["https://www.anm.gov.my/a"]
    assert known.scanned == 1 and view.scanned_on_arrival == 1


def test_a_multipart_text_part_ends_before_its_delimiter() -> None:
    raw = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + LINES
           + b"TERHAD\r\n--b\r\nContent-Type: text/plain; charset=utf-16\r\n\r\nx\r\n--b--\r\n")
    found = prescanned(raw, 4096).result()
    # The UTF-16 part is not read on the way (no codec reads it a line at a time).
    [text] = found.texts
    assert raw[text.end:text.end + 5] == b"\r\n--b" and text.charset == "utf-8"
    assert text.scanned.markings == ((8001, "TERHAD"),)


def test_a_text_whose_first_piece_cannot_be_vouched_for_is_fruitless_at_once() -> None:
    # Header block and an escape in one piece (the reading's first read of the spool
    # file): the process must go back at once, not after the next piece.
    raw = HEAD + b"\r\nSalam.\r\n\x1b(B\r\n" + LINES + LINES
    scan = prescan.Prescan(io.BytesIO().write)
    scan.feed(raw[:len(raw) // 2])
    assert scan.fruitless
    assert scan.result().texts == ()


def test_what_the_scan_does_not_vouch_for_is_left_to_the_inspection() -> None:
    nul = HEAD + b"\r\n\x00S\x00U" + LINES  # UTF-16 without a byte order mark, maybe
    long_line = HEAD + b"\r\n" + b"q" * (2 * textscan.MAX_LINE) + b"\r\nSULIT\r\n"
    rejected = HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + LINES + b"\xe9\r\n"
    for raw in (nul, long_line, rejected):
        scan = prescanned(raw, 65536)
        # The last line is searched only at the end: no reading stops for it.
        assert scan.fruitless is (raw is not rejected)
        assert scan.result().texts == ()


def test_more_distinct_urls_than_the_inspection_keeps_are_left_to_it() -> None:
    urls = b"".join(b"http://h%d.example/\r\n" % i for i in range(links.MAX_LINKS + 1))
    assert prescanned(HEAD + b"\r\n" + urls, 65536).result().texts == ()
    fewer = b"".join(b"http://h%d.example/\r\n" % i for i in range(links.MAX_LINKS))
    [text] = prescanned(HEAD + b"\r\n" + fewer + fewer, 65536).result().texts
    assert len(text.scanned.urls) == links.MAX_LINKS


def test_urls_longer_in_all_than_the_reading_may_hold_are_left_to_the_inspection() -> None:
    # Ten URLs of 150 KB: each a line, together past what a lent reading holds.
    urls = b"".join(b"http://h.example/" + b"%d" % i * 150000 + b"\r\n" for i in range(10))
    assert sum(len(u) for u in urls.split()) > textscan.MAX_URL_CHARS
    assert prescanned(HEAD + b"\r\n" + urls, 65536).result().texts == ()
