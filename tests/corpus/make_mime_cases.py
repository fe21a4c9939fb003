"""Writes the hostile-MIME and sender-identity corpus cases: tests/corpus/cases/mime/.

Deterministic and re-runnable (`python tests/corpus/make_mime_cases.py`): every
message is built here byte by byte, so each case shows exactly the trick it
plays, and its `<file>.expect.yaml` sidecar says what the view must find and
what the shipped rules answer (tests/unit/test_corpus.py runs them). All
content is made up for these tests (no licence restrictions).

Envelope of the runner: inbound luar@example.org -> pegawai@anm.gov.my,
outbound pegawai@anm.gov.my -> penerima@example.org.
"""

from __future__ import annotations

import base64
import struct
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sidecars import write_cases

OUT = Path(__file__).resolve().parent / "cases" / "mime"
HEAD = (b"From: Pegawai <pegawai@anm.gov.my>\r\nTo: penerima@example.org\r\n"
        b"Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <kes@anm.gov.my>\r\n"
        b"MIME-Version: 1.0\r\n")
PE_TYPE = "application/vnd.microsoft.portable-executable"


def pe() -> bytes:
    """A minimal PE32 file libmagic calls a Windows executable."""
    dos = bytearray(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00"
                    + b"\x00" * (0x40 - 18))
    struct.pack_into("<I", dos, 0x3C, 0x80)
    dos += b"\x00" * (0x80 - len(dos))
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    opt = struct.pack("<H", 0x10B) + b"\x00" * (0xE0 - 2)
    section = b".text\x00\x00\x00" + struct.pack("<IIIIIIHHI", 0x1000, 0x1000, 0x200, 0x200,
                                                 0, 0, 0, 0, 0x60000020)
    data = bytes(dos) + coff + opt + section
    return data + b"\x00" * (0x400 - len(data))


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def mixed(parts: list[bytes], *, boundary: bytes = b"sempadan", subject: bytes = b"Laporan",
          head: bytes = HEAD, ctype: bytes | None = None, close: bool = True) -> bytes:
    ct = ctype or b'Content-Type: multipart/mixed; boundary="' + boundary + b'"'
    out = head + b"Subject: " + subject + b"\r\n" + ct + b"\r\n\r\n"
    for part in parts:
        out += b"--" + boundary + b"\r\n" + part + b"\r\n"
    if close:
        out += b"--" + boundary + b"--\r\n"
    return out


TEXT = b"Content-Type: text/plain; charset=utf-8\r\n\r\nSalam sejahtera.\r\n"


def attachment(name: bytes, data: bytes, ctype: bytes = b"application/octet-stream") -> bytes:
    return (b"Content-Type: " + ctype + b'; name="' + name + b'"\r\n'
            b'Content-Disposition: attachment; filename="' + name + b'"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(data))


AMBIGUOUS = {"outcome_inbound": "reject", "rule_inbound": "struktur-mime-samar",
             "outcome_outbound": "reject", "rule_outbound": "struktur-mime-samar"}
OVER_LIMIT = {"inspectable": False,
              "outcome_inbound": "reject", "rule_inbound": "struktur-melebihi-had",
              "outcome_outbound": "reject", "rule_outbound": "struktur-melebihi-had"}
ACCEPT = {"outcome_inbound": "accept", "outcome_outbound": "accept"}
EXECUTABLE = {"outcome_inbound": "reject", "rule_inbound": "perisian-hasad-boleh-laku",
              "outcome_outbound": "reject", "rule_outbound": "perisian-hasad-boleh-laku"}
IDENTITY_OUT = {"outcome_inbound": "accept",
                "outcome_outbound": "reject", "rule_outbound": "pengirim-identiti-samar"}


def cases() -> dict[str, tuple[bytes, dict[str, Any]]]:
    exe = pe()
    c: dict[str, tuple[bytes, dict[str, Any]]] = {}

    # -- ambiguous structure: one part seen differently by different parsers -------
    c["duplicate-boundary.eml"] = (mixed(
        [TEXT, attachment(b"nota.txt", b"nota\r\n", b"text/plain")],
        ctype=b'Content-Type: multipart/mixed; boundary="sempadan"; boundary="lain"'),
        {"defects": ["duplicate_boundary"], "inspectable": True, **AMBIGUOUS})
    c["duplicate-content-type.eml"] = (mixed([TEXT, (
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b'Content-Type: application/x-msdownload; name="alat.exe"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(exe))]),
        {"defects": ["duplicate_content_type"], "categories": ["executable"], **AMBIGUOUS})
    c["duplicate-transfer-encoding.eml"] = (mixed([TEXT, (
        b'Content-Type: application/octet-stream; name="data.bin"\r\n'
        b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64(exe))]),
        {"defects": ["duplicate_transfer_encoding"], **AMBIGUOUS})
    c["duplicate-disposition.eml"] = (mixed([TEXT, (
        b"Content-Type: text/plain\r\nContent-Disposition: inline\r\n"
        b'Content-Disposition: attachment; filename="nota.txt"\r\n\r\nnota\r\n')]),
        {"defects": ["duplicate_content_disposition"], **AMBIGUOUS})
    c["conflicting-filenames.eml"] = (mixed([TEXT, (
        b'Content-Type: application/pdf; name="laporan.pdf"\r\n'
        b"Content-Disposition: attachment; filename=\"laporan.pdf\"; "
        b"filename*=utf-8''laporan.exe\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(exe))]),
        {"defects": ["conflicting_filenames"], "filenames": [["laporan.exe", "laporan.pdf"]],
         "types": [PE_TYPE], "categories": ["executable"], "type_mismatch": [True],
         **AMBIGUOUS})
    # The script shows as gambar.jpg in one client and runs as gambar.jpg.js in another.
    c["conflicting-name-param.eml"] = (mixed([TEXT, (
        b'Content-Type: image/jpeg; name="gambar.jpg"\r\n'
        b'Content-Disposition: attachment; filename="gambar.jpg.js"\r\n\r\n'
        b"WScript.Echo('x');\r\n")]),
        {"defects": ["conflicting_filenames"], "filenames": [["gambar.jpg.js", "gambar.jpg"]],
         "categories": ["executable"], **AMBIGUOUS})
    # U+202E RIGHT-TO-LEFT OVERRIDE: "laporan\u202efdp.exe" reads "laporanexe.pdf".
    c["bidi-filename.eml"] = (mixed([TEXT, (
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''laporan%E2%80%AEfdp.exe\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(exe))]),
        {"defects": ["bidi_in_filename"], "filenames": [["laporan\u202efdp.exe"]],
         "categories": ["executable"], **AMBIGUOUS})
    # Folded for matching: the marking in the name still counts.
    c["bidi-marking-filename.eml"] = (mixed([TEXT, (
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''RAHSIA%E2%80%AE_pelan.txt\r\n"
        b"\r\nisi\r\n")]),
        {"defects": ["bidi_in_filename"], "classification": "RAHSIA",
         "where": ["attachment:RAHSIA\u202e_pelan.txt:filename"], **AMBIGUOUS})

    # -- broken structure: inspected as mail clients read it ---------------------------
    c["missing-boundary-parameter.eml"] = (
        HEAD + b"Subject: Nota\r\nContent-Type: multipart/mixed\r\n\r\n"
        b"Klasifikasi: TERHAD\r\nisi nota\r\n",
        {"defects": ["missing_boundary"], "classification": "TERHAD", "where": ["body"],
         "inspectable": True, "types": [], **ACCEPT})
    c["boundary-never-used.eml"] = (
        HEAD + b"Subject: Nota\r\nContent-Type: multipart/mixed; boundary=\"tiada\"\r\n\r\n"
        b"SULIT\r\nisi nota\r\n",
        {"defects": ["missing_boundary"], "inspectable": True, **ACCEPT})
    # Truncated: no closing boundary. The executable inside is still seen.
    c["unterminated-multipart.eml"] = (mixed(
        [TEXT, attachment(b"alat.dat", exe)], close=False),
        {"defects": ["unterminated_multipart"], "inspectable": True, "types": [PE_TYPE],
         "categories": ["executable"], **EXECUTABLE})
    # Non-alphabet characters inside base64: decoded as mail clients do (dropped), so
    # "TV!!qQ" is "MZ..." and the program is found.
    encoded = b64(exe).replace(b"TVqQ", b"TV!!qQ", 1)
    c["bad-base64-pe.eml"] = (mixed([TEXT, (
        b'Content-Type: application/pdf; name="invois.pdf"\r\n'
        b'Content-Disposition: attachment; filename="invois.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded)]),
        {"defects": ["bad_base64"], "types": [PE_TYPE], "categories": ["executable"],
         "type_mismatch": [True], "encrypted": [None], **EXECUTABLE})
    # Declared and named a PDF, really a program.
    c["pe-named-pdf.eml"] = (mixed([TEXT, attachment(b"invois.pdf", exe, b"application/pdf")]),
                             {"defects": [], "types": [PE_TYPE], "categories": ["executable"],
                              "type_mismatch": [True], "encrypted": [False], **EXECUTABLE})

    # -- headers: 8-bit, non-UTF-8, huge --------------------------------------------
    c["8bit-headers.eml"] = (
        b"From: =?utf-8?Q?Pegawai?= <pegawai@anm.gov.my>\r\nTo: penerima@example.org\r\n"
        b"Subject: SULIT: Minit mesyuarat caf\xc3\xa9\r\n"
        b"X-Catatan: caf\xe9 \xff\xfe\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSalam.\r\n",
        {"defects": ["eight_bit_header", "non_utf8_header"], "classification": "SULIT",
         "where": ["subject"], "inspectable": True, **ACCEPT})
    c["huge-header.eml"] = (
        HEAD + b"Subject: Nota\r\n"
        + b"".join(b"X-Padding-%d: " % i + b"a" * 990 + b"\r\n" for i in range(300))
        + b"Content-Type: text/plain\r\n\r\nSalam.\r\n",
        {"defects": ["header_too_large"], **OVER_LIMIT})
    c["huge-part-header.eml"] = (mixed([TEXT, (
        b"Content-Type: text/plain\r\n"
        + b"".join(b"X-Padding-%d: " % i + b"b" * 990 + b"\r\n" for i in range(300))
        + b"\r\nnota\r\n")]),
        {"defects": ["header_too_large"], **OVER_LIMIT})

    # -- size of the tree --------------------------------------------------------------
    many = [b"Content-Type: text/plain\r\n\r\nx\r\n"] * 6000
    c["thousands-of-parts.eml"] = (mixed(many), {"defects": ["too_many_parts"], **OVER_LIMIT})
    deep = HEAD + b"Subject: Nota\r\n"
    for i in range(40):
        deep += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
    deep += b"Content-Type: text/plain\r\n\r\nSalam.\r\n"
    c["deep-nesting.eml"] = (deep, {"defects": ["unterminated_multipart", "too_deep"],
                                    **OVER_LIMIT})
    # A message forwarded within a message, ten deep: each level is a file again.
    inner = b"From: a@anm.gov.my\r\nSubject: [SULIT] Bajet\r\n\r\nisi\r\n"
    for i in range(10):
        inner = (b"From: a@anm.gov.my\r\nSubject: Fwd %d\r\nMIME-Version: 1.0\r\n"
                 b'Content-Type: multipart/mixed; boundary="f%d"\r\n\r\n--f%d\r\n'
                 b"Content-Type: message/rfc822\r\n\r\n" % (i, i, i) + inner
                 + b"\r\n--f%d--\r\n" % i)
    c["forwarded-ten-deep.eml"] = (inner.replace(b"From: a@anm.gov.my\r\n", HEAD, 1), {
        "defects": [], "inspectable": True, "classification": "SULIT",
        "outcome_inbound": "reject", "rule_inbound": "klasifikasi-lampiran-tidak-disulitkan",
        "outcome_outbound": "reject", "rule_outbound": "klasifikasi-lampiran-tidak-disulitkan"})

    # -- sender identity ------------------------------------------------------------------
    def ident(from_lines: bytes, extra: bytes = b"") -> bytes:
        return (from_lines + b"To: penerima@example.org\r\nSubject: Makluman\r\n" + extra
                + b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nSalam.\r\n")

    c["from-display-name-address.eml"] = (
        ident(b'From: "ceo@anm.gov.my" <pegawai@anm.gov.my>\r\n'),
        {"identity": ["display_name_address"], **IDENTITY_OUT})
    c["from-display-name-same-address.eml"] = (
        ident(b'From: "pegawai@anm.gov.my" <pegawai@anm.gov.my>\r\n'),
        {"identity": [], **ACCEPT})
    c["from-encoded-display-name-address.eml"] = (
        ident(b"From: =?utf-8?Q?ketua=40anm=2Egov=2Emy?= <pegawai@anm.gov.my>\r\n"),
        {"identity": ["display_name_address"], **IDENTITY_OUT})
    c["from-repeated-header.eml"] = (
        ident(b"From: pegawai@anm.gov.my\r\nFrom: ketua@anm.gov.my\r\n"),
        {"identity": ["multiple_from_headers", "multiple_from_addresses"], **IDENTITY_OUT})
    c["from-several-addresses.eml"] = (
        ident(b"From: pegawai@anm.gov.my, ketua@anm.gov.my\r\n"),
        {"identity": ["multiple_from_addresses"], **IDENTITY_OUT})
    c["from-unparsable.eml"] = (
        ident(b"From: Pegawai <pegawai@anm.gov.my\r\n"),
        {"identity": ["from_unparsable"], **IDENTITY_OUT})
    c["from-missing.eml"] = (
        ident(b""),
        {"identity": ["from_missing"], **IDENTITY_OUT})
    c["from-sender-other-domain.eml"] = (
        ident(b"From: pegawai@anm.gov.my\r\n", b"Sender: ejen@example.com\r\n"),
        {"identity": ["sender_domain_differs"], **ACCEPT})
    return c


def main() -> int:
    # Only this script's files: cases/mime/decoding/ belongs to make_decoding_cases.py.
    print(f"wrote {write_cases(OUT, cases())} cases to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
