"""Byte-level MIME, decoding once, the candidate-line marking scan (issue "Fast and
bounded under load", item 2): the behaviours each fast path promises, one by one.

That the fast paths give the reference paths' answers everywhere is
tests/fuzz/test_fuzz_fast_paths.py; here are the cases that say why, the one
answer that changed on purpose (a spaced marking the old word guard skipped),
and the memory the decode-once cache may cost. No timing is asserted.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import pickle
import tracemalloc
from collections.abc import Iterator

import pytest

from gateway.message import markings, mime, transfer
from gateway.message.view import MessageView

HEAD = b"From: a@anm.gov.my\r\nTo: b@example.org\r\nSubject: Laporan\r\nMIME-Version: 1.0\r\n"


def multipart(*parts: bytes, boundary: bytes = b"b") -> bytes:
    out = HEAD + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
    for part in parts:
        out += b"--" + boundary + b"\r\n" + part + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def attachment(data: bytes, name: bytes = b"a.bin", ctype: bytes = b"application/pdf") -> bytes:
    return (b"Content-Type: " + ctype + b"\r\nContent-Disposition: attachment; filename=\"" +
            name + b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
            base64.encodebytes(data).replace(b"\n", b"\r\n"))


def leaves(root: email.message.Message) -> Iterator[email.message.Message]:
    for part in root.walk():
        if not part.is_multipart():
            yield part


# -- the byte-level parse -------------------------------------------------------------

def test_leaf_payloads_are_spans_of_the_raw_message() -> None:
    raw = multipart(b"Content-Type: text/plain\r\n\r\nSalam,\r\nSULIT",
                    attachment(b"%PDF-1.4 " * 100))
    root, reason, kind = mime.parse_bounded(raw)
    assert (reason, kind) == (None, None)
    assert isinstance(root, mime.RawPart)
    reference = email.message_from_bytes(raw, policy=email.policy.compat32)
    for fast, slow in zip(leaves(root), leaves(reference), strict=True):
        assert isinstance(fast, mime.RawPart)
        assert fast._stored is None and fast._span is not None  # no string kept
        assert fast.get_payload() == slow.get_payload()
        assert fast.is_multipart() is False
    assert root.as_bytes() == reference.as_bytes()
    # A copy (the worker pool, a log) carries the parts whole.
    again = pickle.loads(pickle.dumps(root))
    assert again.as_bytes() == reference.as_bytes()


def test_the_line_end_before_a_delimiter_belongs_to_it() -> None:
    inner = (b'Content-Type: multipart/alternative; boundary="c"\r\n\r\n--c\r\n\r\nteks\r\n'
             b"--c--\r\nepilog\r\n")
    enclosed = b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nbadan\r\n\r\n"
    raw = multipart(b"\r\nsatu\r\n", inner, enclosed)
    root, _reason, _kind = mime.parse_bounded(raw)
    reference = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert root is not None and root.as_bytes() == reference.as_bytes()
    parts = [p for p in root.get_payload() if isinstance(p, email.message.Message)]
    # multipart() puts a line end after each part: it goes with the delimiter.
    assert parts[0].get_payload() == "satu\r\n"
    assert parts[1].epilogue == "epilog\r\n"  # a multipart's comes off its epilogue
    enclosed_body = parts[2].get_payload(0)
    assert isinstance(enclosed_body, email.message.Message)
    assert enclosed_body.get_payload() == "badan\r\n\r\n"  # the innermost part's


@pytest.mark.parametrize("raw", [
    # a CR alone before a delimiter: a boundary line for the feedparser only
    multipart(b"Content-Type: text/plain\r\n\r\nx\r--b\r\ny"),
    # two delimiter lines in a row, which the feedparser skips
    HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b\r\n\r\nx\r\n--b--\r\n',
    # message/delivery-status: header blocks of its own kind
    HEAD + b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
    b"Action: failed\r\n",
    # a delimiter at the very end, with no line end
    HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b',
])
def test_what_the_byte_level_parse_does_not_model_goes_to_the_feedparser(raw: bytes) -> None:
    assert mime._fast_parse(raw) is None
    root, _reason, _kind = mime.parse_bounded(raw)
    reference = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert root is not None and root.as_bytes() == reference.as_bytes()
    assert [type(d).__name__ for d in root.defects] == [
        type(d).__name__ for d in reference.defects]


@pytest.mark.parametrize("raw", [
    HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\ntiada pembatas\r\n',
    HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\nteks\r\n--b--\r\nbuang\r\n',
    HEAD + b'Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n',
    HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n',
    HEAD + b"bukan pengepala\r\nSubject: y\r\n\r\nbadan\r\n",
])
def test_broken_structures_are_built_as_the_feedparser_builds_them(raw: bytes) -> None:
    root = mime._fast_parse(raw)
    reference = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert root is not None
    assert root.as_bytes() == reference.as_bytes()
    assert [type(d).__name__ for d in root.defects] == [
        type(d).__name__ for d in reference.defects]
    assert root.get_payload() == reference.get_payload() or root.is_multipart()


def test_the_delimiter_bound_is_the_old_count() -> None:
    raw = multipart(*[b"\r\nx"] * 30)
    assert mime.too_many_delimiters(raw, 29) is (mime.count_delimiters(raw, 29) > 29) is True
    assert mime.too_many_delimiters(raw, 31) is (mime.count_delimiters(raw, 31) > 31) is False


# -- decoding once ----------------------------------------------------------------------

def test_an_attachment_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"%PDF-1.4\n" + bytes(range(256)) * 400
    raw = multipart(b"Content-Type: text/plain\r\n\r\nSalam", attachment(data, b"Minit.pdf"))
    encoded = len(base64.encodebytes(data).replace(b"\n", b"\r\n"))
    sizes: list[int] = []
    real = transfer.decode

    def counting(payload: bytes | memoryview, encoding: str) -> tuple[bytes, bool]:
        sizes.append(len(payload))
        return real(payload, encoding)

    monkeypatch.setattr(transfer, "decode", counting)
    view = MessageView(raw)
    _ = (view.structure_defects, view.markings, view.encrypted_message)
    att = view.attachments[0]
    _ = (att.size, att.detected_type, att.category, att.encrypted, att.data(), att.text(),
         att.unreadable, att.document_pieces, att.type_mismatch)
    assert att.size == len(data)
    # The whole payload once (the walk's look for an attached message decodes a head).
    assert sizes.count(encoded - 2) + sizes.count(encoded) == 1, sizes


def test_bad_base64_comes_from_the_one_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = multipart(b"Content-Type: application/octet-stream\r\n"
                    b"Content-Transfer-Encoding: base64\r\n\r\nTVo=TVo=")
    monkeypatch.setattr("gateway.message.defects.bad_base64", None)  # not called any more
    view = MessageView(raw)
    assert "bad_base64" in view.structure_defects
    assert view.attachments[0].data() == b"MZMZ"


def test_released_payloads_decode_again_to_the_same_facts() -> None:
    raw = multipart(attachment(b"PK\x03\x04" + b"\x00" * 100, b"a.zip", b"application/zip"))
    view = MessageView(raw)
    before = view.attachments[0].as_dict()
    data = view.attachments[0].data()
    view.release_payloads()
    assert view.attachments[0].data() == data
    assert view.attachments[0].as_dict() == before


def test_reading_a_large_attachment_costs_its_decoded_bytes_once() -> None:
    # The tree holds spans, not strings: the message, plus the attachment decoded once,
    # plus bounded slices while decoding. The feedparser's tree alone cost about 7x.
    data = bytes(range(256)) * (16 * 1024)  # 4 MiB
    raw = multipart(b"Content-Type: text/plain\r\n\r\nSalam", attachment(data, b"a.bin"))
    tracemalloc.start()
    try:
        view = MessageView(raw)
        _ = (view.structure_defects, view.text_parts, view.markings)
        att = view.attachments[0]
        _ = (att.size, att.encrypted, att.document_pieces)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(raw), peak / len(raw)


# -- the marking scan -------------------------------------------------------------------

@pytest.mark.parametrize("line", ["SU LIT", "S          U L I T", "SULI T", "T E RHAD",
                                  "R A H S I A   B E S A R"])
def test_spaced_markings_the_old_word_guard_skipped_are_found(line: str) -> None:
    # The body rule counts a line that is nothing but the marking once blanks and
    # decoration are gone (docs/markings.md: `S U L I T`); the old guard let through
    # only gaps of 1 to 8 between every two letters.
    text = "Salam,\n\n" + line + "\nTerima kasih.\n"
    expected = [(3, markings._BY_LETTERS["".join(line.split())])]
    assert list(markings.in_text(text)) == list(markings.in_text_reference(text)) == expected
    assert expected[0][1] in markings.in_label(line)


def test_marking_words_in_prose_are_not_candidates() -> None:
    text = "Maklumat ini sulit dan hanya untuk penerima.\r\nTempat terhad: sila daftar.\r\n"
    assert not any(rx.search(text) for rx in markings._UPPER)
    assert not any(rx.search(text.lower()) for rx in markings._LOWER)
    assert list(markings.in_text(text * 1000)) == []


def test_line_numbers_are_those_of_the_folded_text() -> None:
    # A zero-width space between CR and LF is folded away: one line break, not two.
    text = "a\r\u200b\nb\x0bＳＵＬＩＴ\u2028Klasifikasi: Rahsia\r\nSULlT\n"
    assert list(markings.in_text(text)) == list(markings.in_text_reference(text)) == [
        (3, "SULIT"), (4, "RAHSIA"), (5, "SULIT")]


@pytest.mark.parametrize("slice_size", [1, 64, 4096])
def test_lines_of_slices_with_nothing_to_judge_are_counted_when_needed(
        slice_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slices without a marking's letters are skipped uncounted; a later slice with a
    # candidate counts them then, ASCII breaks of every kind and folded slices between.
    plain = "la la la\r\nla\x0bla\x0cla\x1cla\r\nla\rla\n" * 50
    folded = "é la\u2028la\u0085la\r\n" * 20
    text = plain + folded + plain + "SULIT\r\n" + plain + "RAHSIA\n" + plain
    monkeypatch.setattr(markings, "_SLICE", slice_size)
    found = list(markings.in_text(text))
    assert found == list(markings.in_text_reference(text))
    assert [m for _n, m in found] == ["SULIT", "RAHSIA"]
