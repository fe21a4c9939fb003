"""One decoder for every part's content, charset and file name (gateway.message.transfer).

Each decoding fault of the issue "Every document an officer really sends" is here
at least once as a regression: base64 read past `=` padding in the middle, an
encoding named `Base64 `, lenient quoted-printable, uuencode, unknown encodings,
uuencoded files in text bodies, messages attached as application/octet-stream,
ISO-2022-JP and UTF-7, file-name variants decoded alike, message/partial.
tests/corpus/cases/mime/decoding/ runs the same through the shipped rules.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import os
import time

import pytest

from gateway.message import defects, mime, transfer
from gateway.message.headers import decode_str
from gateway.message.limits import InspectionLimits
from gateway.message.text import decode_bytes, decode_checked
from gateway.message.view import MessageView

HEAD = b"From: a@anm.gov.my\r\nTo: b@example.org\r\nMIME-Version: 1.0\r\n"


def single(headers: bytes, body: bytes, subject: bytes = b"Laporan") -> bytes:
    return HEAD + b"Subject: " + subject + b"\r\n" + headers + b"\r\n" + body


def multipart(*parts: bytes, subject: bytes = b"Laporan") -> bytes:
    out = HEAD + b"Subject: " + subject + b'\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    for part in parts:
        out += b"--b\r\n" + part + b"\r\n"
    return out + b"--b--\r\n"


def uuencode(name: bytes, data: bytes) -> bytes:
    lines = b"".join(binascii.b2a_uu(data[i:i + 45], backtick=True)
                     for i in range(0, len(data), 45))
    return b"begin 644 " + name + b"\n" + lines + b"`\nend\n"


def part_of(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


# -- A. base64 ---------------------------------------------------------------------------

def test_base64_goes_on_past_padding_in_the_middle() -> None:
    """Regression: compat32 stopped at the first `=`; the RAHSIA BESAR line was never read."""
    second = base64.encodebytes(b"\nRAHSIA BESAR\nPelan operasi.\n")
    body = b"VHVhbi9QdWFuLAo=\r\n" + second.replace(b"\n", b"\r\n")
    data, clean = transfer.decode_base64(body)
    assert data == b"Tuan/Puan,\n\nRAHSIA BESAR\nPelan operasi.\n"
    assert clean is False  # still damaged: a rule may judge it (bad_base64)
    view = MessageView(single(b"Content-Type: text/plain; charset=utf-8\r\n"
                              b"Content-Transfer-Encoding: base64\r\n", body))
    assert view.classification == "RAHSIA BESAR"
    assert [f.where["at"] for f in view.markings.found] == ["body"]
    assert "bad_base64" in view.structure_defects


@pytest.mark.parametrize(("encoded", "decoded", "clean"), [
    (b"TVqQ", b"MZ\x90", True),
    (b"TVo=", b"MZ", True),
    (b"TVo", b"MZ", True),  # missing final padding: tolerated
    (b"TV!!qQ==", b"MZ\x90", False),  # junk skipped
    (b"TVo=TVo=", b"MZMZ", False),  # two streams
    (b"TVo=\r\n\r\n=\r\n", b"MZ", True),  # padding and blank lines at the end
    (b"TVoxA", b"MZ1", False),  # a dangling character dropped
    (b"T\r\nVq\r\nQT\r\nVo=", b"MZ\x90MZ", True),  # lines of any length
    (b"QUJD=REVG", b"ABCDEF", False),  # a stray `=` between whole quanta
    (b"QQ==QkM=RA==", b"ABCD", False),  # three streams, each with its own padding
    (b"", b"", True),
])
def test_base64_cases(encoded: bytes, decoded: bytes, clean: bool) -> None:
    assert transfer.decode_base64(encoded) == (decoded, clean)
    assert transfer.base64_damaged(encoded) is not clean
    assert defects.bad_base64(encoded.decode("ascii")) is not clean


def test_base64_well_formed_is_binascii() -> None:
    data = os.urandom(3 * 1024 * 1024 + 1)
    encoded = base64.encodebytes(data)
    assert transfer.decode_base64(encoded) == (data, True)


def test_base64_glued_streams_stay_linear() -> None:
    # `AA==` repeated is a stream per quantum: one binascii call each, never quadratic.
    started = time.monotonic()
    data, clean = transfer.decode_base64(b"AA==" * 1_000_000)
    assert data == b"\x00" * 1_000_000 and clean is False
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(("value", "name"), [
    ("base64", "base64"), ("Base64 ", "base64"), ("  BASE64\t", "base64"),
    ('"base64"', "base64"), ("base64 (encoded by Outlook)", "base64"),
    ("Quoted-Printable", "quoted-printable"), (None, ""), ("", ""),
])
def test_encoding_name_is_a_trimmed_token(value: str | None, name: str) -> None:
    assert transfer.encoding_name(value) == name


def test_encoding_name_with_a_trailing_space_is_decoded() -> None:
    """Regression: compat32 lower-cased but did not trim `Base64 `: the body was unread."""
    raw = single(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: Base64 \r\n",
                 base64.encodebytes(b"*** RAHSIA ***\nPelan.\n"))
    assert MessageView(raw).classification == "RAHSIA"


# -- A. quoted-printable -----------------------------------------------------------------

@pytest.mark.parametrize(("encoded", "decoded", "clean"), [
    (b"caf=C3=A9", "café".encode(), True),
    (b"caf=c3=a9", "café".encode(), True),  # lower-case hex
    (b"RAH=  \r\nSIA", b"RAHSIA", True),  # soft break with trailing blanks
    (b"RAH=\t\nSIA", b"RAHSIA", True),
    (b"RAH=\rSIA\r\nBESAR", b"RAHSIA\r\nBESAR", True),  # a bare CR soft break eats nothing
    (b"a=ZZb", b"a=ZZb", False),  # a bad escape is kept literally
    (b"a=4", b"a=4", False),
    (b"akhir=", b"akhir", True),  # a soft break at the very end
    (b"baris  \r\nseterusnya\t\r\n", b"baris\r\nseterusnya\r\n", True),  # transport padding
    (b"tiada sama dengan", b"tiada sama dengan", True),
])
def test_quoted_printable_cases(encoded: bytes, decoded: bytes, clean: bool) -> None:
    assert transfer.decode_quoted_printable(encoded) == (decoded, clean)


def test_quoted_printable_soft_break_with_blanks_reaches_the_marking() -> None:
    """Regression: `=` + blanks + CRLF was no soft break, so RAH= / SIA BESAR stayed apart."""
    raw = single(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                 b"Tuan,\r\nRAH= \r\nSIA BESAR\r\n")
    assert MessageView(raw).classification == "RAHSIA BESAR"


def test_quoted_printable_hostile_blanks_stay_linear() -> None:
    started = time.monotonic()
    data, _clean = transfer.decode_quoted_printable(b" " * 2_000_000 + b"x=3D")
    assert data.endswith(b"x=")
    assert time.monotonic() - started < 5


# -- A. uuencode and unknown encodings -------------------------------------------------

def test_uuencode_transfer_encodings() -> None:
    content = os.urandom(500)
    block = uuencode(b"data.bin", content)
    for name in ("x-uuencode", "uuencode", "x-uue", "uue"):
        assert transfer.decode(block, name) == (content, True)
    assert transfer.decode(b"no begin line\n", "x-uuencode") == (b"no begin line\n", False)


def test_uuencode_lines_without_trailing_blanks() -> None:
    # Encoders that write zero bits as spaces lose them to trailing-blank stripping.
    assert binascii.b2a_uu(b"a\x00\x00") == b"#80  \n"
    assert transfer.decode(b"begin 600 z\n#80\n \nend\n", "x-uuencode") == (
        b"a\x00\x00", True)


def test_unknown_encoding_is_the_bytes_marked_damaged() -> None:
    """Regression: an unknown encoding was 'clean', so its encryption looked inspected."""
    assert transfer.decode(b"H4sI", "x-gzip64") == (b"H4sI", False)
    raw = multipart(b'Content-Type: application/octet-stream; name="a.bin"\r\n'
                    b"Content-Transfer-Encoding: x-gzip64\r\n\r\nH4sIAAAA")
    (att,) = MessageView(raw).attachments
    assert att.data() == b"H4sIAAAA"
    assert att.encrypted is None


def test_identity_encodings_keep_8bit_bytes() -> None:
    raw = single(b"Content-Type: text/plain; charset=iso-8859-1\r\n"
                 b"Content-Transfer-Encoding: 8bit\r\n", b"caf\xe9 SULIT\r\n")
    (leaf,) = MessageView(raw).structure.bodies
    assert mime.decoded_payload(leaf.part) == (b"caf\xe9 SULIT\r\n", True)


def test_message_rfc822_in_base64_is_decoded_by_the_same_decoder() -> None:
    inner = b"From: x@anm.gov.my\r\nSubject: [SULIT] Bajet\r\n\r\nisi\r\n"
    raw = multipart(b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: BASE64 \r\n"
                    b"\r\n" + base64.encodebytes(inner[:10]) + base64.encodebytes(inner[10:]))
    view = MessageView(raw)
    assert view.forwarded[0].subject == "[SULIT] Bajet"
    assert view.attachments[0].data() == inner  # the file, both streams of it


# -- B. uuencoded files in a text body -----------------------------------------------------

def test_uuencoded_block_in_a_body_is_an_attachment() -> None:
    """Regression: the uuencoded file in the body was never an attachment."""
    body = (b"Salam,\r\n\r\n" + uuencode(b"SULIT_minit.txt", b"Minit mesyuarat.\n")
            .replace(b"\n", b"\r\n") + b"\r\nTerima kasih.\r\n")
    view = MessageView(single(b"Content-Type: text/plain; charset=us-ascii\r\n", body))
    assert len(view.text_parts) == 1  # the body stays a body
    (att,) = view.attachments
    assert att.filename == "SULIT_minit.txt"
    assert att.filenames == ("SULIT_minit.txt",)
    assert att.declared_type == "application/octet-stream"
    assert att.data() == b"Minit mesyuarat.\n"
    assert att.size == len(b"Minit mesyuarat.\n")
    assert att.category == "text"
    assert view.classification == "SULIT"
    assert "attachment:SULIT_minit.txt:filename" in {f.where["at"] for f in view.markings.found}


def test_uuencoded_program_in_a_base64_body() -> None:
    program = b"MZ\x90\x00" + b"\x00" * 300
    body = base64.encodebytes(b"Jalankan:\n" + uuencode(b"alat.dat", program))
    view = MessageView(single(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
                              body))
    (att,) = view.attachments
    assert (att.filename, att.data()) == ("alat.dat", program)


def test_uu_blocks_names_modes_and_begin_base64() -> None:
    text = (b"x\nbegin 600 satu.txt\n" + binascii.b2a_uu(b"satu") + b"`\nend\n"
            b"begin-base64 644 dua.txt\n" + base64.encodebytes(b"dua") + b"====\n"
            b"begin 644 nama dengan ruang.txt\n" + binascii.b2a_uu(b"tiga") + b"`\nend\n")
    blocks = transfer.uu_blocks(text, 10)
    assert [(b.name, b.mode, b.data, b.clean) for b in blocks] == [
        (b"satu.txt", 0o600, b"satu", True), (b"dua.txt", 0o644, b"dua", True),
        (b"nama dengan ruang.txt", 0o644, b"tiga", True)]
    assert transfer.uu_blocks(text, 2) == blocks[:2]


@pytest.mark.parametrize("text", [
    b"begin 2025 dengan taklimat\nMesyuarat pertama.\n",
    b"begin 644 x\n\n\nend\n",
    b"Kita begin 644 pada pukul 9.\n",
    b"begin 644\nM86)C\nend\n",  # no name
])
def test_uu_blocks_not_in_prose(text: bytes) -> None:
    assert transfer.uu_blocks(text, 10) == []


def test_uu_block_without_end_is_damaged() -> None:
    (block,) = transfer.uu_blocks(b"begin 644 a\n" + binascii.b2a_uu(b"abc") + b"teks biasa\n", 5)
    assert (block.data, block.clean) == (b"abc", False)


def test_uuencoded_files_count_against_the_part_bound() -> None:
    one = uuencode(b"a.txt", b"x").replace(b"\n", b"\r\n")
    view = MessageView(single(b"Content-Type: text/plain\r\n", one * 30),
                       limits=InspectionLimits(max_parts=20))
    assert view.complete is False
    assert "too_many_parts" in view.structure_defects
    assert len(view.structure.attachments) == 19  # the body is part 1
    within = MessageView(single(b"Content-Type: text/plain\r\n", one * 30))
    assert within.complete and len(within.attachments) == 30
    assert within.structure.parts == 31


def test_uuencoded_files_count_against_the_expansion_budget() -> None:
    block = uuencode(b"a.bin", b"\x01" * 4000).replace(b"\n", b"\r\n")
    view = MessageView(single(b"Content-Type: text/plain\r\n", block),
                       limits=InspectionLimits(max_expansion_bytes=7000))
    assert view.structure.expansion >= len(block) + 4000
    assert view.complete is False


def test_uu_scan_is_linear_on_many_begin_lines() -> None:
    text = b"begin 644 a\nbegin 644 b\n" * 100_000 + b"\n" * 100_000
    started = time.monotonic()
    assert transfer.uu_blocks(text, 5000) == []
    assert time.monotonic() - started < 5


# -- C. a message attached whatever its declared type ----------------------------------------

INNER = (b"From: Ketua <ketua@anm.gov.my>\r\nTo: pegawai@anm.gov.my\r\n"
         b"Subject: [SULIT] Bajet 2026\r\nDate: Fri, 28 Feb 2025 16:00:00 +0800\r\n\r\n"
         b"Cadangan bajet.\r\n")


def test_eml_as_octet_stream_is_read_as_a_forwarded_message() -> None:
    """Regression: a .eml attached as application/octet-stream was only a text file."""
    raw = multipart(b'Content-Type: application/octet-stream; name="bajet.eml"\r\n'
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(INNER))
    view = MessageView(raw)
    assert view.classification == "SULIT"
    assert "forwarded:0:subject" in {f.where["at"] for f in view.markings.found}
    (fwd,) = view.forwarded
    assert (fwd.subject, fwd.filename, fwd.nested) == ("[SULIT] Bajet 2026", "bajet.eml", 1)
    (att,) = view.attachments  # still an attachment, as message/rfc822 parts are
    assert att.filename == "bajet.eml"
    assert view.structure.attachments[0].message is True
    assert [p.where for p in view.text_parts] == ["forwarded:1:body"]


def test_unnamed_message_is_sniffed() -> None:
    raw = multipart(b'Content-Type: application/octet-stream; name="lampiran.dat"\r\n\r\n'
                    + INNER)
    assert MessageView(raw).forwarded[0].subject == "[SULIT] Bajet 2026"


@pytest.mark.parametrize(("head", "named", "is_message"), [
    (INNER, False, True),
    (b"From x@y Mon Mar  3 09:00:00 2025\n" + INNER, False, True),  # mbox separator
    (b"Received: from a by b\r\nSubject: x\r\n\r\nbody", False, True),  # libmagic says so
    (b"Subject: SULIT Minit\r\nTo: semua\r\n\r\nNota.", False, False),  # no From
    (b"Subject: Minit\r\n\r\nNota.", False, False),
    (b"From: Ali\r\n\r\nNota.", False, False),  # one field
    (b"Nama: Ali\r\nJawatan: Pegawai\r\n\r\nNota.", False, False),
    (b"2025-03-01: mula\r\n2025-03-02: tamat\r\n", False, False),
    (b"From: a\r\nSubject: b\r\nini bukan pengepala\r\n\r\n", False, False),
    (b"PK\x03\x04\x14\x00", True, False),  # named .eml, but a ZIP
    (b"X-Any: 1\r\n\r\nx", True, True),
    (b"", True, False),
])
def test_looks_like_message(head: bytes, named: bool, is_message: bool) -> None:
    assert mime.looks_like_message(head, named=named) is is_message


def test_text_file_is_not_taken_for_a_message() -> None:
    raw = multipart(b'Content-Type: text/plain; name="nota.txt"\r\n\r\n'
                    b"Subject: SULIT Minit\r\nTo: semua\r\n\r\nCatatan.\r\n")
    view = MessageView(raw)
    assert view.forwarded == ()
    assert view.structure.attachments[0].message is False
    assert view.classification is None


def test_attached_message_is_parsed_within_the_limits() -> None:
    many = b'Content-Type: multipart/mixed; boundary="d"\r\n\r\n' + b"".join(
        b"--d\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(50)) + b"--d--\r\n"
    inner = b"From: a@b\r\nSubject: s\r\nMIME-Version: 1.0\r\n" + many
    raw = multipart(b'Content-Type: application/octet-stream; name="a.eml"\r\n'
                    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(inner))
    view = MessageView(raw, limits=InspectionLimits(max_parts=20))
    assert view.complete is False and "too_many_parts" in view.structure_defects
    assert MessageView(raw).complete


# -- D. 7-bit stateful charsets ----------------------------------------------------------

FULLWIDTH = "ＲＡＨＳＩＡ"


@pytest.mark.parametrize("charset", ["ISO-2022-JP", "iso-2022-jp-2", "UTF-7", "HZ-GB-2312",
                                     "ISO-2022-KR", "csISO2022JP"])
def test_stateful_charsets_are_never_ascii(charset: str) -> None:
    """Regression: ISO-2022-JP bytes are ASCII, so they were decoded as ASCII."""
    codec = {"csISO2022JP": "iso2022_jp"}.get(charset, charset)
    data = f"Tuan,\n{FULLWIDTH}\n".encode(codec)
    assert data.isascii()
    assert decode_checked(data, charset) == (f"Tuan,\n{FULLWIDTH}\n", True)


def test_iso_2022_cn_has_a_decoder() -> None:
    gb = FULLWIDTH.encode("gb2312")
    seven = bytes(b & 0x7F for b in gb)
    data = b"Tuan,\r\n\x1b$)A\x0e" + seven + b"\x0f ok\r\nlagi\r\n"
    assert decode_checked(data, "ISO-2022-CN") == (f"Tuan,\r\n{FULLWIDTH} ok\r\nlagi\r\n", True)
    # CNS 11643 has no codec: replaced, and not clean.
    text, clean = decode_checked(b"\x1b$)G\x0e!!\x0f", "iso-2022-cn")
    assert (text, clean) == ("\ufffd", False)


def test_iso_2022_escapes_are_read_whatever_the_label() -> None:
    data = FULLWIDTH.encode("iso2022_jp")
    for label in (None, "us-ascii", "utf-8", "cp50220"):
        assert decode_bytes(data, label) == FULLWIDTH
    assert decode_bytes(b"plain \x1b[1m ansi", None) == "plain \x1b[1m ansi"


@pytest.mark.parametrize("subject", [
    b"=?ISO-2022-JP?B?" + base64.b64encode(f"[{FULLWIDTH}] Laporan".encode("iso2022_jp")) + b"?=",
    f"[{FULLWIDTH}] Laporan".encode("iso2022_jp"),  # raw, as old Japanese clients send it
    b"=?UTF-7?Q?" + f"[{FULLWIDTH}]_Laporan".encode("utf-7") + b"?=",
    b"=?utf-7?B?" + base64.b64encode(f"[{FULLWIDTH}] Laporan".encode("utf-7")) + b"?=",
])
def test_stateful_charset_subjects(subject: bytes) -> None:
    view = MessageView(single(b"Content-Type: text/plain\r\n", b"Salam.\r\n", subject=subject))
    assert view.subject == f"[{FULLWIDTH}] Laporan"
    assert view.classification == "RAHSIA"


@pytest.mark.parametrize(("charset", "codec"), [("ISO-2022-JP", "iso2022_jp"),
                                                ("UTF-7", "utf-7")])
def test_stateful_charset_bodies(charset: str, codec: str) -> None:
    body = f"Tuan,\r\n\r\n{FULLWIDTH}\r\nLaporan.\r\n".encode(codec)
    view = MessageView(single(f"Content-Type: text/plain; charset={charset}\r\n".encode(), body))
    assert view.classification == "RAHSIA"
    assert [f.where["at"] for f in view.markings.found] == ["body"]


# -- E. file-name variants, one decoder ------------------------------------------------------

def _names_part(content_type: bytes, disposition: bytes) -> email.message.Message:
    return part_of(b"Content-Type: " + content_type + b"\r\nContent-Disposition: "
                   + disposition + b"\r\n\r\nx")


def test_iso_2022_jp_name_variants_agree() -> None:
    """Regression: filename*=ISO-2022-JP'' decoded as ASCII beside the RFC 2047 name=
    made an innocent Japanese file ambiguous MIME (conflicting_filenames)."""
    name = "報告書.pdf"
    jis = name.encode("iso2022_jp")
    pct = "".join(f"%{b:02X}" for b in jis).encode()
    part = _names_part(b'application/pdf; name="=?ISO-2022-JP?B?' + base64.b64encode(jis)
                       + b'?="', b"attachment; filename*=ISO-2022-JP''" + pct)
    assert mime.name_variants(part) == ((name, True),)
    raw = multipart(b'Content-Type: application/pdf; name="=?ISO-2022-JP?B?'
                    + base64.b64encode(jis) + b'?="\r\n'
                    b"Content-Disposition: attachment; filename*=ISO-2022-JP''" + pct
                    + b"\r\n\r\n%PDF-1.4\n")
    view = MessageView(raw)
    assert "conflicting_filenames" not in view.structure_defects
    assert view.attachments[0].filenames == (name,)


def test_undecodable_name_is_no_conflict_but_still_judged() -> None:
    part = _names_part(b'application/pdf; name="laporan.pdf"',
                       b"attachment; filename*=x-tiada''laporan%E9%E9%E9.exe")
    variants = mime.name_variants(part)
    assert variants == (("laporan\xe9\xe9\xe9.exe", False), ("laporan.pdf", True))
    assert "conflicting_filenames" not in mime._name_kinds(variants)
    assert any(n.endswith(".exe") for n in mime.filenames(part))  # judged all the same


def test_decodable_names_that_differ_still_conflict() -> None:
    part = _names_part(b'application/pdf; name="laporan.pdf"',
                       b"attachment; filename*=utf-8''laporan.exe")
    assert "conflicting_filenames" in mime._name_kinds(mime.name_variants(part))
    assert defects.name_kinds(["a.pdf", "a.exe"], undecodable=["a.exe"]) == set()
    assert defects.name_kinds(["a\u202e.pdf"], undecodable=["a\u202e.pdf"]) == {
        "bidi_in_filename"}


@pytest.mark.parametrize(("content_type", "disposition"), [
    (b'text/plain; name="a.txt"', b'attachment; filename="b.txt"'),
    (b'text/plain; name="a.txt"', b"attachment; filename*=utf-8''b%20c.txt"),
    (b"text/plain", b"attachment; filename*0*=utf-8''b%20; filename*1=c.txt"),
    (b'text/plain; name="=?utf-8?Q?caf=C3=A9.txt?="', b"inline"),
    (b"text/plain", b'attachment; filename="b.txt"; filename*=utf-8\'\'d.txt'),
    (b"text/plain", b"attachment; filename*=utf-8''d.txt; filename=\"b.txt\""),
])
def test_primary_name_is_the_stdlib_choice(content_type: bytes, disposition: bytes) -> None:
    part = _names_part(content_type, disposition)
    expected = part.get_filename()
    if expected is None:
        got = part.get_param("name")
        expected = email.utils.collapse_rfc2231_value(got) if got else None
    assert mime.filename(part) == mime.filenames(part)[0]
    assert decode_str(str(expected)).strip() == mime.filename(part)


# -- F. message/partial ------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    HEAD + b"Subject: s\r\nContent-Type: message/partial; id=\"a@b\"; number=1; total=2\r\n"
    b"\r\nSubject: dalam\r\n\r\nbahagian\r\n",
    multipart(b"Content-Type: message/partial; id=\"a@b\"; number=2; total=2\r\n\r\n"
              b"\r\nbahagian kedua\r\n"),
    multipart(b"Content-Type: message/rfc822\r\n\r\nSubject: luar\r\n"
              b"Content-Type: message/partial; id=x; number=1; total=3\r\n\r\n\r\nx\r\n"),
])
def test_message_partial_is_a_defect_anywhere(raw: bytes) -> None:
    view = MessageView(raw)
    assert "message_partial" in view.structure_defects
    assert "message_partial" in defects.KINDS
    assert "message_partial" not in defects.LIMIT_KINDS
    assert view.complete  # a fragment is readable; the policy decides


def test_old_base64_reader_lost_the_second_stream() -> None:
    # The stdlib reading this module replaces: what the regressions above guard against.
    body = b"VHVhbi9QdWFuLAo=\r\n" + base64.encodebytes(b"\nRAHSIA BESAR\n")
    msg = part_of(b"Content-Transfer-Encoding: base64\r\n\r\n" + body)
    assert msg.get_payload(decode=True) == b"Tuan/Puan,\n"
    assert mime.decoded_payload(msg)[0] == b"Tuan/Puan,\n\nRAHSIA BESAR\n"
