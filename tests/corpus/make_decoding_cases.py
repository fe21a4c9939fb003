"""Writes the decoding corpus cases: tests/corpus/cases/mime/decoding/.

Every document an officer really sends, in every encoding a mail program writes
or a sender can abuse: base64 read past `=` padding in the middle, a transfer
encoding named `Base64 `, lenient quoted-printable, unknown encodings,
uuencoded files inside a text body, a message attached as
application/octet-stream, 7-bit stateful charsets (ISO-2022-JP, UTF-7), file
names in ISO-2022-JP, and message/partial. Each case is what the MIME code once
got wrong or must keep getting right (gateway.message.transfer, mime, text).

Deterministic and re-runnable (`python tests/corpus/make_decoding_cases.py`):
every message is built here byte by byte, and its `<file>.expect.yaml` sidecar
says what the view must find and what the shipped rules answer
(tests/unit/test_corpus.py runs them). All content is made up for these tests.

Envelope of the runner: inbound luar@example.org -> pegawai@anm.gov.my,
outbound pegawai@anm.gov.my -> penerima@example.org.
"""

from __future__ import annotations

import base64
import binascii
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_mime_cases import PE_TYPE, pe
from sidecars import write_cases

OUT = Path(__file__).resolve().parent / "cases" / "mime" / "decoding"
HEAD = (b"From: Pegawai <pegawai@anm.gov.my>\r\nTo: penerima@example.org\r\n"
        b"Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <nyahkod@anm.gov.my>\r\n"
        b"MIME-Version: 1.0\r\n")
TEXT = b"Content-Type: text/plain; charset=utf-8\r\n\r\nSalam sejahtera.\r\n"

ACCEPT = {"outcome_inbound": "accept", "outcome_outbound": "accept"}
RAHSIA = {"outcome_inbound": "reject", "rule_inbound": "klasifikasi-rahsia",
          "outcome_outbound": "reject", "rule_outbound": "klasifikasi-rahsia"}
UNENCRYPTED = {"outcome_inbound": "reject", "rule_inbound": "klasifikasi-lampiran-tidak-disulitkan",
               "outcome_outbound": "reject",
               "rule_outbound": "klasifikasi-lampiran-tidak-disulitkan"}
EXECUTABLE = {"outcome_inbound": "reject", "rule_inbound": "perisian-hasad-boleh-laku",
              "outcome_outbound": "reject", "rule_outbound": "perisian-hasad-boleh-laku"}
PARTIAL = {"outcome_inbound": "reject", "rule_inbound": "struktur-mesej-separa",
           "outcome_outbound": "reject", "rule_outbound": "struktur-mesej-separa"}


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def b64(data: bytes) -> bytes:
    return crlf(base64.encodebytes(data))


def single(subject: bytes, headers: bytes, body: bytes) -> bytes:
    return HEAD + b"Subject: " + subject + b"\r\n" + headers + b"\r\n" + body


def mixed(parts: list[bytes], subject: bytes = b"Laporan") -> bytes:
    out = (HEAD + b"Subject: " + subject + b"\r\n"
           b'Content-Type: multipart/mixed; boundary="sempadan"\r\n\r\n')
    for part in parts:
        out += b"--sempadan\r\n" + part + b"\r\n"
    return out + b"--sempadan--\r\n"


def uuencode(name: bytes, data: bytes) -> bytes:
    lines = b"".join(binascii.b2a_uu(data[i:i + 45], backtick=True)
                     for i in range(0, len(data), 45))
    return crlf(b"begin 644 " + name + b"\n" + lines + b"`\nend\n")


def ragged(data: bytes) -> bytes:
    """base64 in lines of 37, 50 and 13 characters, with `!` inside the first quantum."""
    encoded = base64.b64encode(data)
    lines: list[bytes] = []
    pos = 0
    for n in [37, 50, 13] * len(encoded):
        if pos >= len(encoded):
            break
        lines.append(encoded[pos:pos + n])
        pos += n
    return b"TV!" + b"\r\n".join(lines)[2:]


def encoded_word(charset: str, text: str) -> bytes:
    data = base64.b64encode(text.encode(charset.lower().replace("-", "_")))
    return b"=?" + charset.encode() + b"?B?" + data + b"?="


def cases() -> dict[str, tuple[bytes, dict[str, Any]]]:
    c: dict[str, tuple[bytes, dict[str, Any]]] = {}

    # -- A. one transfer decoder ------------------------------------------------------
    # "Tuan/Puan," padded on its own, then a second padded stream: compat32 stopped at
    # the first `=` and never saw the RAHSIA BESAR line the reader's client shows.
    c["base64-padding-mid-body.eml"] = (single(
        b"Laporan", b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n",
        b"VHVhbi9QdWFuLAo=\r\n" + b64(b"\nRAHSIA BESAR\nLaporan keselamatan pangkalan.\n")),
        {"classification": "RAHSIA BESAR", "where": ["body"], "defects": ["bad_base64"],
         **RAHSIA})
    # The same trick in an attachment: the SULIT line is in the second stream.
    c["base64-padding-mid-attachment.eml"] = (mixed([TEXT, (
        b'Content-Type: text/plain; charset=utf-8; name="minit.txt"\r\n'
        b'Content-Disposition: attachment; filename="minit.txt"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + b64(b"Minit:\n") + b64(b"SULIT\nMesyuarat pengurusan.\n"))]),
        {"classification": "SULIT", "where": ["attachment:minit.txt:content"],
         "defects": ["bad_base64"], "encrypted": [None], **UNENCRYPTED})
    # `Base64 ` (capital, trailing space) is base64: compat32 compared the raw value.
    c["base64-encoding-name-case-space.eml"] = (single(
        b"Makluman", b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: Base64 \r\n",
        b64(b"Tuan,\n\n*** RAHSIA ***\nPelan pemindahan.\n")),
        {"classification": "RAHSIA", "where": ["body"], "defects": [], **RAHSIA})
    # Junk characters and lines of odd lengths: skipped, the program is still found.
    c["base64-junk-ragged-lines.eml"] = (mixed([TEXT, (
        b'Content-Type: application/pdf; name="invois.pdf"\r\n'
        b'Content-Disposition: attachment; filename="invois.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + ragged(pe()) + b"\r\n")]),
        {"defects": ["bad_base64"], "categories": ["executable"], "encrypted": [None],
         **EXECUTABLE})
    # `=` then blanks before the line end is still a soft line break (RFC 2045 6.7 (3)).
    c["qp-soft-break-trailing-blanks.eml"] = (single(
        b"Makluman", b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Tuan,\r\n\r\nRAH= \t \r\nSIA BESAR\r\nPelan operasi =3D tindakan segera =ZZ.\r\n"),
        {"classification": "RAHSIA BESAR", "where": ["body"], **RAHSIA})
    # A transfer encoding nobody knows: the bytes as they are, and not "clean", so an
    # attachment's encryption is "could not inspect" (the bytes may not be the file).
    c["unknown-transfer-encoding.eml"] = (mixed([TEXT, (
        b'Content-Type: application/octet-stream; name="data.bin"\r\n'
        b'Content-Disposition: attachment; filename="data.bin"\r\n'
        b"Content-Transfer-Encoding: x-gzip64\r\n\r\n"
        b"H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==\r\n")]),
        {"defects": [], "encrypted": [None], **ACCEPT})
    # x-uuencode as a transfer encoding (Outlook Express, old Eudora).
    c["uuencode-transfer-encoding.eml"] = (mixed([TEXT, (
        b'Content-Type: text/plain; name="minit.txt"\r\n'
        b'Content-Disposition: attachment; filename="minit.txt"\r\n'
        b"Content-Transfer-Encoding: X-UUEncode \r\n\r\n"
        + uuencode(b"minit.txt", b"SULIT\nMinit mesyuarat.\n"))]),
        {"classification": "SULIT", "where": ["attachment:minit.txt:content"],
         "encrypted": [False], **UNENCRYPTED})

    # -- B. uuencoded files inside a text body ----------------------------------------
    c["uuencoded-in-body.eml"] = (single(
        b"Minit", b"Content-Type: text/plain; charset=us-ascii\r\n",
        b"Tuan,\r\n\r\nMinit dilampirkan.\r\n\r\n"
        + uuencode(b"minit.txt", b"SULIT\nMinit mesyuarat pengurusan.\n")
        + b"\r\nTerima kasih.\r\n"),
        {"classification": "SULIT", "where": ["attachment:minit.txt:content"],
         "filenames": [["minit.txt"]], "categories": ["text"], "encrypted": [False],
         **UNENCRYPTED})
    c["uuencoded-program-in-body.eml"] = (single(
        b"Alat", b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        crlf(binascii.b2a_qp(b"Sila jalankan.\n\n" + uuencode(b"kemaskini.dat", pe())
                             .replace(b"\r\n", b"\n")))),
        {"filenames": [["kemaskini.dat"]], "types": [PE_TYPE], "categories": ["executable"],
         **EXECUTABLE})
    # "begin 2025 ..." in prose is not a file.
    c["uuencode-lookalike-prose.eml"] = (single(
        b"Jadual", b"Content-Type: text/plain; charset=us-ascii\r\n",
        b"Program akan\r\nbegin 2025 dengan taklimat\r\nMesyuarat pertama pada 3 Mac.\r\n"),
        {"types": [], "defects": [], **ACCEPT})

    # -- C. a message attached whatever its declared type ------------------------------
    inner = (b"From: Ketua <ketua@anm.gov.my>\r\nTo: pegawai@anm.gov.my\r\n"
             b"Subject: [SULIT] Bajet 2026\r\nDate: Fri, 28 Feb 2025 16:00:00 +0800\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
             b"Cadangan bajet dilampirkan.\r\n")
    c["eml-as-octet-stream.eml"] = (mixed([TEXT, (
        b'Content-Type: application/octet-stream; name="Bajet 2026.eml"\r\n'
        b'Content-Disposition: attachment; filename="Bajet 2026.eml"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(inner))], subject=b"Fwd: Bajet"),
        {"classification": "SULIT", "where": ["forwarded:0:subject"], **UNENCRYPTED})
    sniffed = inner.replace(b"[SULIT] Bajet 2026", b"RAHSIA: Pelan keselamatan")
    c["message-sniffed-unnamed.eml"] = (mixed([TEXT, (
        b'Content-Type: application/octet-stream; name="lampiran.dat"\r\n'
        b'Content-Disposition: attachment; filename="lampiran.dat"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(sniffed))]),
        {"classification": "RAHSIA", "where": ["forwarded:0:subject"], **RAHSIA})
    # A note that starts like a header block but is no message: read as text only.
    c["text-note-not-a-message.eml"] = (mixed([TEXT, (
        b'Content-Type: text/plain; name="nota.txt"\r\n'
        b'Content-Disposition: attachment; filename="nota.txt"\r\n\r\n'
        b"Subject: SULIT Minit mesyuarat\r\nTo: semua\r\n\r\nCatatan peribadi.\r\n")]),
        {"classification": None, "categories": ["text"], **ACCEPT})

    # -- D. 7-bit stateful charsets ----------------------------------------------------
    fullwidth = "ＲＡＨＳＩＡ"
    c["iso-2022-jp-subject.eml"] = (single(
        encoded_word("ISO-2022-JP", f"[{fullwidth}] Laporan"),
        b"Content-Type: text/plain; charset=us-ascii\r\n", b"Salam.\r\n"),
        {"classification": "RAHSIA", "where": ["subject"], **RAHSIA})
    c["iso-2022-jp-raw-subject.eml"] = (single(
        f"[{fullwidth}] Laporan".encode("iso2022_jp"),
        b"Content-Type: text/plain; charset=us-ascii\r\n", b"Salam.\r\n"),
        {"classification": "RAHSIA", "where": ["subject"], **RAHSIA})
    c["iso-2022-jp-body.eml"] = (single(
        b"Laporan", b"Content-Type: text/plain; charset=ISO-2022-JP\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n",
        crlf(f"Tuan,\n\n{fullwidth}\n報告書を添付します。\n".encode("iso2022_jp"))),
        {"classification": "RAHSIA", "where": ["body"], **RAHSIA})
    c["utf-7-subject.eml"] = (single(
        b"=?UTF-7?Q?" + f"[{fullwidth}]_Laporan".encode("utf-7") + b"?=",
        b"Content-Type: text/plain; charset=us-ascii\r\n", b"Salam.\r\n"),
        {"classification": "RAHSIA", "where": ["subject"], **RAHSIA})
    c["utf-7-body.eml"] = (single(
        b"Laporan", b"Content-Type: text/plain; charset=UTF-7\r\n",
        crlf(f"Tuan,\n\n{fullwidth}\nLaporan.\n".encode("utf-7"))),
        {"classification": "RAHSIA", "where": ["body"], **RAHSIA})

    # -- E. file-name variants, one decoder --------------------------------------------
    # The same Japanese name as RFC 2231 and as an RFC 2047 word: no conflict.
    name = "報告書.pdf"
    pct = "".join(f"%{b:02X}" for b in name.encode("iso2022_jp")).encode()
    c["iso-2022-jp-filename-variants.eml"] = (mixed([TEXT, (
        b'Content-Type: application/pdf; name="' + encoded_word("ISO-2022-JP", name) + b'"\r\n'
        b"Content-Disposition: attachment; filename*=ISO-2022-JP''" + pct + b"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(b"%PDF-1.4\n%%EOF\n"))]),
        {"defects": [], "filenames": [[name]], **ACCEPT})
    # A variant in a charset nobody can decode is judged, but is no conflict.
    c["undecodable-filename-variant.eml"] = (mixed([TEXT, (
        b'Content-Type: application/pdf; name="laporan.pdf"\r\n'
        b"Content-Disposition: attachment; filename*=x-tiada''laporan%E9%E9%E9.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(b"%PDF-1.4\n%%EOF\n"))]),
        {"defects": [], **ACCEPT})

    # -- F. message/partial ------------------------------------------------------------
    c["message-partial.eml"] = (
        HEAD + b"Subject: Laporan (1/2)\r\n"
        b'Content-Type: message/partial; id="pecahan-1@anm.gov.my"; number=1; total=2\r\n'
        b"\r\n"
        b"Subject: Laporan\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="dalam"\r\n\r\n--dalam\r\n'
        b"Content-Type: text/plain\r\n\r\nBahagian pertama.\r\n",
        # The first fragment ends inside the enclosed multipart, as fragments do.
        {"defects": ["unterminated_multipart", "message_partial"], **PARTIAL})
    c["message-partial-nested.eml"] = (mixed([TEXT, (
        b'Content-Type: message/partial; id="pecahan-2@anm.gov.my"; number=2; total=2\r\n'
        # A later fragment has no header block of its own: the body goes on.
        b"\r\n\r\nSULIT\r\nBahagian kedua.\r\n")]),
        {"defects": ["message_partial"], **PARTIAL})
    return c


def main() -> int:
    print(f"wrote {write_cases(OUT, cases())} cases to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
