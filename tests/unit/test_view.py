"""MessageView: decoding, attachments, real types, encryption state, links, bounds."""

from __future__ import annotations

import email.policy
import io
import shutil
import subprocess
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import mime
from gateway.message.view import MessageView, NotInspectable

DATA = Path(__file__).parent / "data"
FIXTURES = Path(__file__).resolve().parents[1] / "corpus" / "fixtures"


def build(subject: str = "Ujian", body: str = "Salam.",
          attachments: tuple[tuple[str, bytes, str], ...] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Pegawai <pegawai@anm.gov.my>"
    msg["To"] = "penerima@example.com"
    msg["Subject"] = subject
    msg.set_content(body)
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


# -- headers -------------------------------------------------------------------------

def test_subject_split_encoded_words_are_joined() -> None:
    view = MessageView((DATA / "split-encoded-subject.eml").read_bytes())
    assert view.subject == "[RAHSIA] Laporan"
    assert view.classification == "RAHSIA"


def test_utf8_character_split_across_encoded_words_survives() -> None:
    raw = "Minit Mesyuarat – Bil. 4".encode()
    # Split inside the three-byte en dash.
    cut = raw.index(b"\xe2") + 1
    import base64
    w1 = base64.b64encode(raw[:cut]).decode()
    w2 = base64.b64encode(raw[cut:]).decode()
    msg = f"Subject: =?utf-8?B?{w1}?=\r\n =?utf-8?B?{w2}?=\r\n\r\nx\r\n".encode()
    assert MessageView(msg).subject == "Minit Mesyuarat – Bil. 4"


def test_bad_encoded_words_degrade_without_raising() -> None:
    msg = b"Subject: =?x-nonsense?B?!!!?= =?utf-8?Q?caf=C3=A9?= =?zlib?B?eJw=?=\r\n\r\nx\r\n"
    subject = MessageView(msg).subject
    assert "caf\u00e9" in subject


def test_from_addresses_come_from_the_raw_header_not_the_decoded_name() -> None:
    # The display name decodes to something that looks like an agency address.
    msg = (b"From: =?utf-8?Q?pegawai=40anm.gov.my_=3Cpegawai=40anm.gov.my=3E?= <x@GMAIL.com>\r\n"
           b"Subject: s\r\n\r\nbody\r\n")
    assert MessageView(msg).from_addresses == ("x@gmail.com",)


def test_8bit_utf8_subject() -> None:
    msg = "Subject: Mesyuarat di café\r\n\r\nx\r\n".encode()
    assert MessageView(msg).subject == "Mesyuarat di café"


# -- bodies --------------------------------------------------------------------------

def test_text_bodies_qp_latin1_and_base64_html_rendered() -> None:
    view = MessageView((DATA / "html-qp-marking.eml").read_bytes())
    plain, html = view.text_parts
    assert "Café dibuka." in plain.text
    assert html.content_type == "text/html"
    assert "*** RAHSIA ***" in html.text.splitlines()
    assert "<b>" not in html.text
    assert html.hrefs == ("https://www.dropbox.com/s/xyz",)
    assert set(view.link_hosts) == {"drive.google.com", "www.dropbox.com"}


def test_unknown_charset_falls_back() -> None:
    msg = (b"Content-Type: text/plain; charset=x-bogus\r\n\r\nSULIT\r\nMaklumat \xe9\r\n")
    view = MessageView(msg)
    assert view.text_parts[0].text.startswith("SULIT")
    assert view.classification == "SULIT"


def test_view_is_lazy_headers_do_not_parse_mime() -> None:
    view = MessageView(build())
    assert view.subject == "Ujian"
    assert view.from_addresses == ("pegawai@anm.gov.my",)
    assert "structure" not in view.__dict__


# -- attachments ---------------------------------------------------------------------

def test_attachment_name_size_type_category() -> None:
    pdf = (FIXTURES / "pdf/002-trivial-libre-office-writer.pdf").read_bytes()
    elf = Path("/bin/true").read_bytes()
    raw = build(attachments=(("laporan.pdf", pdf, "application/pdf"),
                             ("gambar.jpg", elf, "image/jpeg")))
    view = MessageView(raw)
    a, b = view.attachments
    assert (a.filename, a.size, a.detected_type, a.category, a.encrypted) == \
        ("laporan.pdf", len(pdf), "application/pdf", "pdf", False)
    # Declared image/jpeg, really an ELF executable: the content decides.
    assert b.declared_type == "image/jpeg"
    assert b.category == "executable"
    assert b.size == len(elf)


def test_rfc2231_and_name_parameter_file_names() -> None:
    msg = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''RAHSIA%20pelan%E2%80%93x.docx\r\n"
           b"\r\nabc\r\n"
           b"--b\r\nContent-Type: application/octet-stream; name=\"=?utf-8?Q?SULIT_fail.txt?=\"\r\n"
           b"\r\ndef\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*0*=utf-8''TER; filename*1*=HAD.txt\r\n"
           b"\r\nghi\r\n--b--\r\n")
    names = [a.filename for a in MessageView(msg).attachments]
    assert names == ["RAHSIA pelan–x.docx", "SULIT fail.txt", "TERHAD.txt"]


def test_script_extension_on_text_makes_it_executable() -> None:
    raw = build(attachments=(("run.bat", b"@echo off\r\ndel x\r\n", "text/plain"),
                             ("nota.txt", b"just text\n", "text/plain")))
    bat, txt = MessageView(raw).attachments
    assert bat.category == "executable"
    assert txt.category == "text"


@pytest.mark.parametrize(("name", "encrypted"), [
    ("office/example_password.docx", True), ("office/example_password.xlsx", True),
    ("office/ecma376standard_password.docx", True), ("office/rc4cryptoapi_password.doc", True),
    ("office/rc4cryptoapi_password.xls", True), ("office/rc4cryptoapi_password.ppt", True),
    ("office/xor_password_123456789012345.xls", True),
    ("office/example.docx", False), ("office/example.xlsx", False), ("office/plain.doc", False),
    ("office/plain.xls", False), ("office/plain.ppt", False),
    ("pdf/libreoffice-writer-password.pdf", True), ("pdf/google-doc-document.pdf", False),
    ("pdf/002-trivial-libre-office-writer.pdf", False), ("pdf/with-attachment.pdf", False),
])
def test_fixture_encryption_state(name: str, encrypted: bool) -> None:
    data = (FIXTURES / name).read_bytes()
    view = MessageView(build(attachments=((Path(name).name, data, "application/octet-stream"),)))
    (att,) = view.attachments
    assert att.encrypted is encrypted
    assert att.size == len(data)
    assert att.category in ("office", "pdf")


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs the zip program")
def test_zip_encrypted_all_entries_vs_mixed(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("SULIT\n")
    (tmp_path / "b.txt").write_text("isi\n")
    subprocess.run(["zip", "-q", "-P", "rahsia123", "enc.zip", "a.txt", "b.txt"],
                   cwd=tmp_path, check=True, timeout=30)
    shutil.copy(tmp_path / "enc.zip", tmp_path / "mixed.zip")
    (tmp_path / "c.txt").write_text("terbuka\n")
    subprocess.run(["zip", "-q", "mixed.zip", "c.txt"], cwd=tmp_path, check=True, timeout=30)
    enc, mixed = (tmp_path / "enc.zip").read_bytes(), (tmp_path / "mixed.zip").read_bytes()
    view = MessageView(build(attachments=(("a.zip", enc, "application/zip"),
                                          ("b.zip", mixed, "application/zip"))))
    a, b = view.attachments
    assert (a.category, a.encrypted) == ("archive", True)
    assert (b.category, b.encrypted) == ("archive", False)


def _aes_zip() -> bytes:
    """A ZIP whose entry carries the WinZip AES marks (flag bit 0, method 99, extra 0x9901)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("pelan.txt", b"\x00" * 40)
    data = bytearray(buf.getvalue())
    # Set bit 0 of the general purpose flags in the local and central headers.
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 6] |= 1
    data[central + 8] |= 1
    return bytes(data)


def test_zip_aes_flagged_entries_count_as_encrypted() -> None:
    view = MessageView(build(attachments=(("x.zip", _aes_zip(), "application/zip"),)))
    assert view.attachments[0].encrypted is True


def test_broken_zip_and_damaged_base64_could_not_inspect() -> None:
    broken = b"PK\x03\x04" + b"\x00" * 30
    msg = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: application/zip; name=a.zip\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + __import__("base64").b64encode(broken) + b"\r\n"
           b"--b\r\nContent-Type: application/pdf; name=b.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK!!!%%%A\r\n--b--\r\n")
    a, b = MessageView(msg).attachments
    assert a.encrypted is None
    assert b.encrypted is None


# -- whole-message encryption --------------------------------------------------------

def _smime_enveloped() -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "penerima@anm.gov.my")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    body = b"Content-Type: text/plain\r\n\r\nSULIT\r\nisi rahsia\r\n"
    smime = (pkcs7.PKCS7EnvelopeBuilder().set_data(body).add_recipient(cert)
             .encrypt(serialization.Encoding.SMIME, []))
    head = (b"From: pegawai@anm.gov.my\r\nTo: penerima@anm.gov.my\r\n"
            b"Subject: Laporan - SULIT\r\n")
    return head + smime.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_smime_enveloped_message_is_encrypted() -> None:
    view = MessageView(_smime_enveloped())
    assert view.encrypted_message is True
    assert view.classification == "SULIT"  # the subject is not encrypted
    assert all(a.encrypted for a in view.attachments)


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
def test_pgp_mime_message_is_encrypted(gnupg_home: Path) -> None:
    armour = subprocess.run(
        ["gpg", "--homedir", str(gnupg_home), "--batch", "--yes", "--pinentry-mode", "loopback",
         "--passphrase", "x", "--symmetric", "--armor"],
        input=b"SULIT\nisi\n", capture_output=True, check=True, timeout=60).stdout
    msg = (b"From: a@anm.gov.my\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";"
           b" boundary=\"e\"\r\n\r\n--e\r\nContent-Type: application/pgp-encrypted\r\n\r\n"
           b"Version: 1\r\n\r\n--e\r\nContent-Type: application/octet-stream; name=\"m.asc\"\r\n"
           b"\r\n" + armour.replace(b"\n", b"\r\n") + b"\r\n--e--\r\n")
    view = MessageView(msg)
    assert view.encrypted_message is True
    assert [a.encrypted for a in view.attachments] == [True]


def test_plain_message_is_not_encrypted() -> None:
    assert MessageView(build()).encrypted_message is False


# -- forwarded messages and auto-forwarding ------------------------------------------

def test_forwarded_rfc822_is_walked() -> None:
    view = MessageView((DATA / "forwarded-sulit.eml").read_bytes())
    assert [f.subject for f in view.forwarded] == ["[SULIT] Bajet 2026"]
    assert view.forwarded[0].filename == "bajet.eml"
    assert [p.nested for p in view.text_parts] == [0, 1]
    # The enclosed message is also an attachment: a file the recipient can save.
    (att,) = view.attachments
    assert (att.filename, att.detected_type, att.encrypted) == \
        ("bajet.eml", "message/rfc822", False)
    assert att.size > 100


def test_auto_forward_headers() -> None:
    assert MessageView(b"Auto-Submitted: auto-forwarded\r\n\r\nx").auto_forwarded == \
        ("Auto-Submitted",)
    assert MessageView(b"Auto-Submitted: auto-replied\r\n\r\nx").auto_forwarded == ()
    ms = (b"X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\r\n"
          b"X-MS-Exchange-Inbox-Rules-Loop: a@anm.gov.my\r\n\r\nx")
    assert MessageView(ms).auto_forwarded == ("X-MS-Exchange-Inbox-Rules-Loop",
                                              "X-MS-Exchange-Generated-Message-Source")
    assert MessageView(build()).auto_forwarded == ()


# -- bounds and hostile input --------------------------------------------------------

def _nested(depth: int) -> bytes:
    raw = b"Subject: SULIT\r\n"
    for i in range(depth):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    return raw + b"Content-Type: text/plain\r\n\r\nhi\r\n"


def test_too_deep_marks_view_incomplete() -> None:
    view = MessageView(_nested(mime.MAX_DEPTH + 5))
    assert view.complete is False
    assert "deeper" in (view.incomplete_reason or "")
    with pytest.raises(NotInspectable):
        view.require_complete()
    # Header facts still answer; nothing raises outside require_complete().
    assert view.subject == "SULIT"
    assert view.classification == "SULIT"


def test_nesting_beyond_the_parser_recursion_limit() -> None:
    view = MessageView(_nested(3000))
    assert view.complete is False
    assert view.attachments == () and view.text_parts == ()


def test_too_many_parts_marks_view_incomplete() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(60))
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    assert MessageView(raw).complete is True
    small = MessageView(raw, max_parts=50)
    assert small.complete is False
    with pytest.raises(NotInspectable):
        small.require_complete()


def test_missing_boundary_multipart_is_read_as_text() -> None:
    raw = b"Content-Type: multipart/mixed\r\n\r\nKlasifikasi: SULIT\r\n"
    view = MessageView(raw)
    assert view.classification == "SULIT"
    assert view.defects  # the parser's complaint is kept


def test_garbage_never_raises() -> None:
    for raw in (b"", b"\r\n\r\n", b"\x00\xff" * 100, b"Content-Type: message/rfc822\r\n\r\n",
                b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n",
                b"Content-Type: text/plain; charset=\"zlib\"\r\n\r\n\x80\x81",
                b"Content-Type: application/octet-stream; name*=bogus''%ZZ\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n====\r\n"):
        view = MessageView(raw)
        _ = (view.subject, view.from_addresses, view.text_parts, view.links, view.markings,
             view.encrypted_message, view.auto_forwarded,
             [a.as_dict() for a in view.attachments])


def test_every_fixture_parses() -> None:
    for path in sorted((FIXTURES / "mime").glob("*.eml")):
        view = MessageView(path.read_bytes())
        _ = (view.subject, view.text_parts, view.links, view.encrypted_message,
             [a.as_dict() for a in view.attachments])
        assert view.complete, path.name
        assert view.classification is None, path.name


def test_wide_message_is_refused_before_the_parser_builds_it() -> None:
    parts = b"".join(b"--b\r\n\r\nx\r\n" for _ in range(100_000))
    raw = b"Content-Type: multipart/mixed; BOUNDARY=b\r\n\r\n" + parts + b"--b--\r\n"
    assert mime.count_delimiters(raw, mime.MAX_PARTS) > mime.MAX_PARTS
    view = MessageView(raw)
    assert view.complete is False
    assert view.message is None  # never parsed
    assert "more than" in (view.incomplete_reason or "")


# -- issue 3: name variants, real type vs claims, limits -----------------------------

def test_type_mismatch_declared_or_extension_vs_content() -> None:
    pdf = (FIXTURES / "pdf/002-trivial-libre-office-writer.pdf").read_bytes()
    elf = Path("/bin/true").read_bytes()
    docx = (FIXTURES / "office/example.docx").read_bytes()
    raw = build(attachments=(("laporan.pdf", elf, "application/pdf"),
                             ("laporan.pdf", pdf, "application/pdf"),
                             ("data.bin", elf, "application/octet-stream"),
                             ("minit.docx", docx, "application/zip"),
                             ("gambar.png", pdf, "application/octet-stream")))
    a, b, c, d, e = MessageView(raw).attachments
    assert (a.type_mismatch, a.claimed_categories, a.category) == (True, ("pdf",), "executable")
    assert b.type_mismatch is False
    assert (c.type_mismatch, c.claimed_categories) == (False, ())  # no claim made
    assert d.type_mismatch is False  # OOXML declared as a ZIP is what it is
    assert (e.type_mismatch, e.as_dict()["type_mismatch"]) == (True, True)


def test_view_carries_its_limits_and_budget() -> None:
    from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits
    view = MessageView(build())
    assert view.limits == DEFAULT_LIMITS
    assert view.budget.limit == DEFAULT_LIMITS.max_expansion_bytes
    small = MessageView(build(), limits=InspectionLimits(max_parts=7), max_depth=3)
    assert (small.limits.max_parts, small.limits.max_depth, small.max_depth) == (7, 3, 3)
    att_view = MessageView(build(attachments=(("a.txt", b"isi\n", "text/plain"),)))
    assert att_view.attachments[0].limits is att_view.limits
