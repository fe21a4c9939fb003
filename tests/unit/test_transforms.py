"""Subject tags and added headers on raw bytes: only what the verdict asks changes."""

from __future__ import annotations

import email
import email.policy

import pytest

from gateway import transforms
from gateway.message.view import MessageView
from gateway.policy.verdict import Outcome, Verdict
from gateway.transforms.headers import add_headers, line_ending
from gateway.transforms.subject_tag import has_tag, tag_subject

TAG = "[HEBAHAN JANM]"


def tagged(raw: bytes, tag: str = TAG) -> bytes:
    return transforms.apply(raw, Verdict(Outcome.ACCEPT, subject_tags=(tag,)))


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]


def lines(raw: bytes) -> list[bytes]:
    return header_block(raw).split(b"\n")


def test_nothing_to_do_returns_the_same_bytes() -> None:
    raw = b"From: a@anm.gov.my\r\nSubject: x\r\n\r\nbody\r\n"
    assert transforms.apply(raw, Verdict(Outcome.ACCEPT)) is raw


def test_ascii_subject_gets_the_tag_and_nothing_else_changes() -> None:
    raw = (b"Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"From: Hebahan <hebahan@anm.gov.my>\r\nSubject:  Mesyuarat  Agung\r\n"
           b"To: semua@anm.gov.my\r\n\r\nBadan =C3=A9 \r\n.. titik\r\n\x00\xff\r\n")
    out = tagged(raw)
    assert out == raw.replace(b"Subject:  Mesyuarat", b"Subject:  [HEBAHAN JANM] Mesyuarat")
    assert MessageView(out).subject == "[HEBAHAN JANM] Mesyuarat  Agung"


def test_bytes_outside_the_subject_field_are_identical() -> None:
    body = bytes(range(256)) * 4
    raw = (b"From: hebahan@anm.gov.my\r\nX-A: 1\r\nSubject: a\r\nX-B: 2\r\n\r\n" + body)
    out = tagged(raw)
    start = raw.index(b"Subject:")
    end = raw.index(b"X-B:")
    new_end = out.index(b"X-B:")
    assert out[:start] == raw[:start]
    assert out[new_end:] == raw[end:]
    assert out[start:new_end] == b"Subject: [HEBAHAN JANM] a\r\n"


def test_encoded_subject_is_reencoded_as_utf8_words() -> None:
    raw = (b"From: hebahan@anm.gov.my\r\n"
           b"Subject: =?ISO-8859-1?Q?Caf=E9?= dan =?UTF-8?B?4oCcbWFrbHVtYXTigJ0=?=\r\n"
           b"\r\nbody\r\n")
    out = tagged(raw)
    assert MessageView(out).subject == "[HEBAHAN JANM] Café dan \u201cmaklumat\u201d"
    subject_lines = [x for x in lines(out) if x.startswith(b"Subject:")]
    assert subject_lines and subject_lines[0].startswith(b"Subject: =?UTF-8?B?")
    assert out.endswith(b"\r\n\r\nbody\r\n")
    assert out.startswith(b"From: hebahan@anm.gov.my\r\nSubject: ")


def test_long_non_ascii_subject_is_folded_under_78_columns() -> None:
    subject = "Makluman penting: " + "kemaskini maklumat pegawai ñ " * 8
    raw = ("From: hebahan@anm.gov.my\r\nSubject: " + subject + "\r\n\r\nbody\r\n").encode()
    out = tagged(raw)
    for line in lines(out):
        assert len(line.rstrip(b"\r")) <= 78, line
    assert out.isascii()
    assert MessageView(out).subject == TAG + " " + " ".join(subject.split())
    # The standard library reads the same subject back.
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert str(parsed["Subject"]) == TAG + " " + " ".join(subject.split())


@pytest.mark.parametrize("subject", [
    "[HEBAHAN JANM] Mesyuarat",
    "Re: [HEBAHAN JANM] Mesyuarat",
    "Fwd: [hebahan janm] Mesyuarat",
    "Balas: [ HEBAHAN  JANM ] Mesyuarat",
    "Majukan: RE: [Hebahan JANM] Mesyuarat",
])
def test_existing_tag_is_not_added_again(subject: str) -> None:
    raw = f"From: hebahan@anm.gov.my\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    assert tagged(raw) == raw


def test_existing_tag_inside_encoded_words_is_recognised() -> None:
    raw = (b"From: hebahan@anm.gov.my\r\n"
           b"Subject: Re: =?UTF-8?B?W0hFQkFIQU4gSkFOTV0gTWVzeXVhcmF0?=\r\n\r\nbody\r\n")
    assert tagged(raw) == raw
    assert has_tag("Re: [Hebahan JANM] x", TAG)
    assert not has_tag("HEBAHAN JANM", TAG)


def test_folded_ascii_subject_keeps_its_folding() -> None:
    raw = (b"From: hebahan@anm.gov.my\r\nSubject: Mesyuarat Agung Tahunan\r\n"
           b"\tBil. 3/2025\r\nTo: a@anm.gov.my\r\n\r\nbody\r\n")
    out = tagged(raw)
    assert out == raw.replace(b"Subject: Mesyuarat", b"Subject: [HEBAHAN JANM] Mesyuarat")
    assert MessageView(out).subject == "[HEBAHAN JANM] Mesyuarat Agung Tahunan\tBil. 3/2025"


def test_subject_starting_on_a_continuation_line() -> None:
    raw = b"From: hebahan@anm.gov.my\r\nSubject:\r\n Mesyuarat\r\n\r\nbody\r\n"
    out = tagged(raw)
    assert out == (b"From: hebahan@anm.gov.my\r\nSubject: [HEBAHAN JANM]\r\n Mesyuarat\r\n"
                   b"\r\nbody\r\n")
    assert MessageView(out).subject == "[HEBAHAN JANM] Mesyuarat"


def test_missing_subject_is_added_at_the_end_of_the_header_block() -> None:
    raw = b"From: hebahan@anm.gov.my\r\nTo: a@anm.gov.my\r\n\r\nSubject: not a header\r\n"
    out = tagged(raw)
    assert out == (b"From: hebahan@anm.gov.my\r\nTo: a@anm.gov.my\r\nSubject: [HEBAHAN JANM]\r\n"
                   b"\r\nSubject: not a header\r\n")


def test_empty_subject_gets_just_the_tag() -> None:
    raw = b"From: hebahan@anm.gov.my\r\nSubject:\r\n\r\nbody\r\n"
    assert tagged(raw) == b"From: hebahan@anm.gov.my\r\nSubject: [HEBAHAN JANM]\r\n\r\nbody\r\n"


def test_only_the_first_subject_field_is_tagged() -> None:
    raw = b"Subject: one\r\nSubject: two\r\n\r\nbody\r\n"
    assert tagged(raw) == b"Subject: [HEBAHAN JANM] one\r\nSubject: two\r\n\r\nbody\r\n"


def test_lf_only_message_keeps_lf_line_endings() -> None:
    raw = b"From: hebahan@anm.gov.my\nSubject: =?UTF-8?Q?Caf=C3=A9?=\n\nbody\nline\n"
    out = transforms.apply(raw, Verdict(Outcome.ACCEPT, subject_tags=(TAG,),
                                        added_headers=(("X-Gateway-Policy", "checked"),)))
    assert b"\r" not in out
    assert out.startswith(b"X-Gateway-Policy: checked\nFrom: hebahan@anm.gov.my\nSubject: =?UTF-8?")
    assert out.endswith(b"\n\nbody\nline\n")
    assert MessageView(out).subject == "[HEBAHAN JANM] Café"
    assert line_ending(out) == b"\n"


def test_lf_only_message_without_subject() -> None:
    raw = b"From: a@anm.gov.my\n\nbody\n"
    assert tagged(raw) == b"From: a@anm.gov.my\nSubject: [HEBAHAN JANM]\n\nbody\n"


def test_header_only_message_without_final_newline() -> None:
    assert tagged(b"From: a@anm.gov.my") == b"From: a@anm.gov.my\r\nSubject: [HEBAHAN JANM]\r\n"
    assert tagged(b"Subject: x") == b"Subject: [HEBAHAN JANM] x"


def test_crlf_in_the_tag_cannot_inject_a_header() -> None:
    raw = b"From: a@anm.gov.my\r\nSubject: x\r\n\r\nbody\r\n"
    out = tagged(raw, "[A]\r\nBcc: victim@example.com")
    assert out == b"From: a@anm.gov.my\r\nSubject: [A] Bcc: victim@example.com x\r\n\r\nbody\r\n"
    parsed = email.message_from_bytes(out, policy=email.policy.compat32)
    assert parsed["Bcc"] is None
    # Also with a subject that has to be re-encoded, and when the field is missing.
    out2 = tagged(b"Subject: =?UTF-8?Q?x?=\r\n\r\nb\r\n", "[A]\nBcc: v@example.com")
    assert email.message_from_bytes(out2, policy=email.policy.compat32)["Bcc"] is None
    out3 = tagged(b"From: a@anm.gov.my\r\n\r\nb\r\n", "[A]\rBcc: v@example.com")
    assert email.message_from_bytes(out3, policy=email.policy.compat32)["Bcc"] is None


def test_crlf_in_an_added_header_value_cannot_inject_a_header() -> None:
    raw = b"From: a@anm.gov.my\r\nSubject: x\r\n\r\nbody\r\n"
    out = add_headers(raw, (("X-Gateway", "ok\r\nBcc: victim@example.com\r\n\r\nfake body"),))
    parsed = email.message_from_bytes(out, policy=email.policy.compat32)
    assert parsed["Bcc"] is None
    assert parsed["X-Gateway"] == "ok Bcc: victim@example.com fake body"
    assert out.endswith(raw)


def test_added_headers_go_on_top_in_order_and_are_folded() -> None:
    raw = b"From: a@anm.gov.my\r\nSubject: x\r\n\r\nbody\r\n"
    long_value = " ".join(["perkataan"] * 30)
    out = transforms.apply(raw, Verdict(Outcome.ACCEPT, added_headers=(
        ("X-First", "1"), ("X-Long", long_value), ("X-Bahasa", "Pengelasan: ñ sulit"))))
    assert out.startswith(b"X-First: 1\r\nX-Long: perkataan")
    assert out.endswith(raw)
    for line in lines(out):
        assert len(line.rstrip(b"\r")) <= 78
    parsed = email.message_from_bytes(out, policy=email.policy.default)
    assert str(parsed["X-Long"]) == long_value
    assert str(parsed["X-Bahasa"]) == "Pengelasan: ñ sulit"


def test_bad_header_name_is_refused() -> None:
    with pytest.raises(ValueError):
        add_headers(b"Subject: x\r\n\r\n", (("X-Bad\r\nBcc", "v"),))


def test_non_utf8_8bit_subject_keeps_its_bytes() -> None:
    raw = b"From: a@anm.gov.my\r\nSubject: Caf\xe9 pagi\r\n\r\nbody\r\n"
    assert tagged(raw) == (b"From: a@anm.gov.my\r\nSubject: [HEBAHAN JANM] Caf\xe9 pagi\r\n"
                           b"\r\nbody\r\n")


def test_two_tags_read_in_rule_order() -> None:
    raw = b"Subject: x\r\n\r\nb\r\n"
    out = transforms.apply(raw, Verdict(Outcome.ACCEPT, subject_tags=("[A]", "[B]")))
    assert out == b"Subject: [A] [B] x\r\n\r\nb\r\n"
    assert tag_subject(out, "[b]") == out
