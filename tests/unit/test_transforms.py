"""Subject tags and added headers on raw bytes: only what the verdict asks changes."""

from __future__ import annotations

import base64
import email
import email.header
import email.message
import email.policy
import json
from pathlib import Path

import pytest

from gateway import transforms
from gateway.message.view import MessageView
from gateway.policy.rules import builtin_lists, load_rules
from gateway.policy.verdict import Outcome, Verdict
from gateway.problems import LoadError
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


# -- issue 4: the [HEBAHAN JANM] tag on real subjects ------------------------------------
@pytest.mark.parametrize("subject", [
    "RE: [HEBAHAN JANM] Mesyuarat",
    "FW: [HEBAHAN JANM] Mesyuarat",
    "fw: fwd: re: [hebahan janm] Mesyuarat",
    "Re: Re: RE: Fwd: [HEBAHAN JANM] Mesyuarat",
    "BALAS: majukan: [HEBAHAN JANM] Mesyuarat",
    "Majukan: Balas: Re:[HEBAHAN JANM]Mesyuarat",
    "Re: \uff3bHEBAHAN JANM\uff3d Mesyuarat",  # full-width brackets: the rule reads a tag
    "Re: [HEBAHAN\u200b JANM] Mesyuarat",  # a zero-width space inside
])
def test_tag_after_any_prefixes_is_not_doubled(subject: str) -> None:
    raw = f"From: hebahan@anm.gov.my\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    assert tagged(raw) == raw


@pytest.mark.parametrize("encoded", [
    b"=?UTF-8?Q?Re:_=5BHEBAHAN_JANM=5D_Mesyuarat?=",
    b"=?ISO-8859-1?Q?Fwd:?= =?UTF-8?B?W0hFQkFIQU4g?= =?UTF-8?B?SkFOTV0gTWVzeXVhcmF0?=",
    b"Balas: =?utf-8?b?W2hlYmFoYW4gamFubV0=?= Mesyuarat",
])
def test_an_encoded_tag_is_decoded_first_and_not_doubled(encoded: bytes) -> None:
    raw = b"From: hebahan@anm.gov.my\r\nSubject: " + encoded + b"\r\n\r\nbody\r\n"
    assert tagged(raw) == raw


def _subject_lines(raw: bytes) -> list[bytes]:
    out: list[bytes] = []
    for line in header_block(raw).split(b"\r\n"):
        if line.lower().startswith(b"subject:") or (out and line[:1] in (b" ", b"\t")):
            out.append(line)
        elif out:
            break
    return out


@pytest.mark.parametrize("subject", [
    "Notis penyelenggaraan sistem: gangguan perkhidmatan e-Perolehan pada 15 Mac",
    "Jemputan Majlis Hari Raya Aidilfitri – Jabatan Akauntan Negara Malaysia (JANM) "
    "Putrajaya 2025 « semua pegawai »",
    "会议通知 " * 12,
    "Émoji 📢 hebahan " * 6,
])
def test_non_ascii_subjects_are_reencoded_and_folded_within_78_octets(subject: str) -> None:
    encoded = email.header.Header(subject, "utf-8").encode(maxlinelen=76)
    raw = (b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"From: hebahan@anm.gov.my\r\nSubject: " + encoded.replace("\n", "\r\n").encode()
           + b"\r\nTo: semua@anm.gov.my\r\n\r\nbody \xe2\x9c\x93\r\n")
    out = tagged(raw)
    want = TAG + " " + " ".join(subject.split()) if not subject.isascii() else None
    lines_ = _subject_lines(out)
    assert lines_, out
    for line in lines_:
        assert len(line) <= 78, line
        assert line.isascii()
    got = MessageView(out).subject
    if want is not None:
        assert got == want
        parsed = email.message_from_bytes(out, policy=email.policy.default)
        assert str(parsed["Subject"]) == want
    assert got.startswith(TAG + " ")
    # Everything but the Subject field is byte-identical.
    before, after = raw.split(b"Subject:", 1)
    assert out.startswith(before + b"Subject:")
    assert out.endswith(after[after.index(b"\r\nTo:"):])


def test_raw_utf8_subject_is_reencoded_and_the_rest_is_identical() -> None:
    raw = ("From: hebahan@anm.gov.my\r\nSubject: Makluman: Café Jabatan ✓\r\n"
           "X-After: 1\r\n\r\nbody\r\n").encode()
    out = tagged(raw)
    assert MessageView(out).subject == "[HEBAHAN JANM] Makluman: Café Jabatan ✓"
    start, end = raw.index(b"Subject:"), raw.index(b"X-After:")
    assert out[:start] == raw[:start]
    assert out[out.index(b"X-After:"):] == raw[end:]
    assert out[start:out.index(b"X-After:")].isascii()


@pytest.mark.parametrize("encoded", [
    b"=?UTF-8?B?" + base64.b64encode(b"Notis\r\nBcc: victim@example.com\r\n\r\nbody") + b"?=",
    b"=?UTF-8?Q?Notis=0D=0ABcc:_victim@example.com?=",
    b"=?UTF-8?B?" + base64.b64encode("Notis ✓\nBcc: v@example.com".encode()) + b"?=",
])
def test_encoded_words_decoding_to_crlf_cannot_break_the_header(encoded: bytes) -> None:
    raw = b"From: hebahan@anm.gov.my\r\nSubject: " + encoded + b"\r\nTo: a@anm.gov.my\r\n\r\nb\r\n"
    out = tagged(raw)
    parsed = email.message_from_bytes(out, policy=email.policy.compat32)
    assert parsed["Bcc"] is None
    assert parsed["To"] == "a@anm.gov.my"
    assert parsed.get_payload() == "b\r\n"
    subject = MessageView(out).subject
    assert subject.startswith(TAG + " Notis")
    assert "\r" not in subject and "\n" not in subject
    assert out.endswith(b"\r\nTo: a@anm.gov.my\r\n\r\nb\r\n")


@pytest.mark.parametrize("tag", ["[HEBAHAN\r\nBcc: v@example.com]", "[A]\nX: y", "[A]\rX"])
def test_a_tag_with_cr_or_lf_in_a_rule_is_refused_at_load(tmp_path: Path, tag: str) -> None:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "10-a.yaml").write_text(
        "rules:\n  - id: t\n    action: tag\n    when: {null_sender: false}\n"
        f"    tag: {json.dumps(tag)}\n", encoding="utf-8")
    with pytest.raises(LoadError) as info:
        load_rules(d, builtin_lists(("anm.gov.my",), (), ()))
    assert "action tag needs 'tag: <text>'" in str(info.value.problems[0])


def test_every_byte_outside_the_subject_line_is_unchanged_on_a_real_message() -> None:
    m = email.message.EmailMessage()
    m["From"] = "Hebahan JANM <hebahan@anm.gov.my>"
    m["To"] = "semua@anm.gov.my"
    m["Subject"] = "Pekeliling Perbendaharaan: pindaan – berkuat kuasa segera"
    m["Message-ID"] = "<p1@anm.gov.my>"
    m.set_content("Tuan/Puan,\n\nSila ambil maklum.\n")
    m.add_attachment(bytes(range(256)) * 10, maintype="application", subtype="pdf",
                     filename="pekeliling.pdf")
    raw = m.as_bytes(policy=email.policy.SMTP)
    out = tagged(raw)
    start = raw.index(b"Subject:")
    end = raw.index(b"\r\n", start) + 2
    while raw[end:end + 1] in (b" ", b"\t"):
        end = raw.index(b"\r\n", end) + 2
    new_end = out.index(raw[end:])
    assert out[:start] == raw[:start]
    assert out[new_end:] == raw[end:]
    assert MessageView(out).subject == TAG + " " + str(m["Subject"])
