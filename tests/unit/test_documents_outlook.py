"""Outlook items (.msg) and TNEF (winmail.dat): the enclosed message, bounded (MARKINGS.md 4).

The files are written by tests/corpus/make_outlook.py; the first tests check that
real readers (olefile, extract-msg, tnefparse) accept what it writes, so the rest
test our readers against files a real reader agrees with.
"""

from __future__ import annotations

import io
import logging
import random
import struct
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import compressed_rtf
import extract_msg
import olefile
import pytest
from tnefparse import TNEF

from gateway.message.documents import Bounds, LimitExceeded, msg, pieces, rtf, tnef
from gateway.message.documents.enclosure import BadEnclosure, Enclosure
from gateway.message.limits import ExpansionBudget, InspectionLimits

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_documents
import make_outlook as mk

HEADERS = ("Microsoft Mail Internet Headers Version 2.0\r\n"
           "Received: from mel.anm.gov.my\r\n by mx.anm.gov.my; Mon, 6 Jan 2025 09:00:00 +0800\r\n"
           "Subject: =?UTF-8?B?W1JBSFNJQV0gUGVsYW4=?=\r\n"
           "X-Pengelasan: TERHAD\r\n\r\n"
           "Not-A-Header: after the blank line\r\n")
LABEL = "MSIP_Label_0a1b_Enabled=true; MSIP_Label_0a1b_Name=SULIT;"
RTF = b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\f0 SULIT\\par Isi laporan.\\par}"
BIG = bytes(range(256)) * 48  # 12 KiB: a stream in regular sectors, not the mini stream


def full_message() -> mk.Message:
    return mk.Message(
        subject="[RAHSIA] Pelan", body="Isi mesej.\r\nSULIT\r\n",
        html=b"<html><body><p>*** TERHAD ***</p><p>Isi &amp; lagi.</p></body></html>",
        rtf=RTF, headers=HEADERS, named={"msip_labels": LABEL, "x-classification": "SULIT"},
        attachments=[
            mk.Attachment(long_name="Laporan Tahunan.docx", short_name="LAPORA~1.DOC",
                          display="Laporan Tahunan.docx",
                          data=make_documents.docx(("Isi.",), footers=("SULIT",)),
                          mime=make_documents.DOCX),
            mk.Attachment(long_name="data.bin", data=BIG),
            mk.Attachment(display="Bajet", method=5, message=mk.Message(
                subject="[SULIT] Bajet 2026", body="Bajet.\r\n", attachments=[
                    mk.Attachment(long_name="AUTOEXEC.BAT", data=b"@echo off\r\n")])),
        ])


def nested(levels: int) -> mk.Message:
    inner = mk.Message(subject="[RAHSIA] Paling dalam", body="Isi.\n")
    for level in range(levels):
        inner = mk.Message(subject=f"Lapis {level}", attachments=[
            mk.Attachment(display=f"lapis{level}", method=5, message=inner)])
    return inner


def depth_of(enclosure: Enclosure) -> int:
    inner = [f.message for f in enclosure.files if f.message is not None]
    return 1 + max((depth_of(m) for m in inner), default=0)


# -- the writers: real readers accept them ---------------------------------------------

def test_olefile_and_extract_msg_read_the_msg_writer() -> None:
    data = mk.outlook_msg(full_message())
    ole = olefile.OleFileIO(data, raise_defects=olefile.DEFECT_POTENTIAL)
    assert ole.parsing_issues == []
    assert ole.exists("__attach_version1.0_#00000001/__substg1.0_37010102")
    assert ole.openstream("__attach_version1.0_#00000001/__substg1.0_37010102").read() == BIG
    assert ole.exists("__attach_version1.0_#00000002/__substg1.0_3701000D/"
                      "__properties_version1.0")
    m = extract_msg.openMsg(data)
    try:
        assert m.subject == "[RAHSIA] Pelan"
        assert m.body == "Isi mesej.\r\nSULIT\r\n"
        assert m.htmlBody.startswith(b"<html>")
        assert m.rtfBody == RTF
        assert m.getNamedProp("msip_labels", "{00020386-0000-0000-C000-000000000046}") == LABEL
        assert [a.longFilename for a in m.attachments[:2]] == ["Laporan Tahunan.docx",
                                                               "data.bin"]
        assert m.attachments[1].data == BIG
        embedded = m.attachments[2].data
        assert embedded.subject == "[SULIT] Bajet 2026"
        assert embedded.attachments[0].data == b"@echo off\r\n"
    finally:
        m.close()


def test_tnefparse_reads_the_tnef_writer() -> None:
    legacy = TNEF(mk.tnef(full_message()))
    assert all(o.good_checksum for o in legacy.objects)
    assert ("Subject", "[RAHSIA] Pelan") in [(o.name_str, o.data) for o in legacy.msgprops]
    assert legacy.body == b"Isi mesej.\r\nSULIT\r\n"
    assert legacy.rtfbody == RTF
    assert [a.long_filename() for a in legacy.attachments[:2]] == ["Laporan Tahunan.docx",
                                                                   "data.bin"]
    assert legacy.attachments[1].data == BIG
    embed = legacy.attachments[2].embed
    assert ("Subject", "[SULIT] Bajet 2026") in [(o.name_str, o.data) for o in embed.msgprops]
    props = TNEF(mk.tnef(full_message(), legacy=False))
    assert ("MAPI_SUBJECT", "[RAHSIA] Pelan") in [(p.name_str, p.data) for p in props.mapiprops]
    assert props.attachments[1].data == BIG


# -- .msg ------------------------------------------------------------------------------

def test_msg_subject_bodies_headers() -> None:
    got = msg.read(mk.outlook_msg(full_message()), Bounds())
    assert got.kind == "msg" and got.complete
    assert got.subject == "[RAHSIA] Pelan"
    kinds = dict(got.bodies)
    assert kinds["plain"] == "Isi mesej.\r\nSULIT\r\n"
    assert "*** TERHAD ***" in kinds["html"].splitlines()
    assert "Isi & lagi." in kinds["html"].splitlines()
    assert "SULIT" in kinds["rtf"].splitlines()
    headers = list(got.headers)
    # The Exchange banner line is passed over; the block ends at the blank line.
    assert ("Subject", "[RAHSIA] Pelan") in headers
    assert ("X-Pengelasan", "TERHAD") in headers
    assert ("Received", "from mel.anm.gov.my by mx.anm.gov.my; Mon, 6 Jan 2025 09:00:00 "
                        "+0800") in headers
    assert not any(name == "Not-A-Header" for name, _ in headers)
    assert ("msip_labels", LABEL) in headers and ("x-classification", "SULIT") in headers


def test_msg_rtf_body_is_decompressed_for_the_rtf_reader(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []

    def plain_text(data: bytes, bounds: Bounds) -> str:
        seen.append(data)
        return "dari RTF"

    monkeypatch.setattr(rtf, "plain_text", plain_text)
    got = msg.read(mk.outlook_msg(mk.Message(subject="x", rtf=RTF)), Bounds())
    assert seen == [RTF]
    assert got.bodies == (("rtf", "dari RTF"),)


def test_msg_attachments() -> None:
    got = msg.read(mk.outlook_msg(full_message()), Bounds())
    docx, blob, forwarded = got.files
    assert docx.names == ("Laporan Tahunan.docx", "LAPORA~1.DOC")
    assert docx.declared_type == make_documents.DOCX
    assert docx.data.startswith(b"PK") and docx.message is None
    assert blob.names == ("data.bin",) and blob.data == BIG
    assert blob.declared_type == "application/octet-stream"
    assert forwarded.names == ("Bajet",) and forwarded.data == b""
    assert forwarded.message is not None
    assert forwarded.message.subject == "[SULIT] Bajet 2026"
    assert forwarded.message.files[0].names == ("AUTOEXEC.BAT",)
    assert forwarded.message.files[0].data == b"@echo off\r\n"


def test_msg_embedding_up_to_the_depth_and_not_beyond() -> None:
    limits = InspectionLimits(max_archive_depth=3)
    got = msg.read(mk.outlook_msg(nested(3)), Bounds(limits))
    assert depth_of(got) == 4
    with pytest.raises(LimitExceeded):
        msg.read(mk.outlook_msg(nested(4)), Bounds(limits))


def test_msg_8bit_strings_in_the_message_code_page() -> None:
    data = mk.outlook_msg(mk.Message(subject="Laporan – TERHAD", body="Café\r\n",
                                     codepage=1252, attachments=[
                                         mk.Attachment(long_name="Résumé.txt", data=b"x")]))
    assert olefile.OleFileIO(data).exists("__substg1.0_0037001E")
    got = msg.read(data, Bounds())
    assert got.subject == "Laporan – TERHAD"
    assert got.bodies == (("plain", "Café\r\n"),)
    assert got.files[0].names == ("Résumé.txt",)


def test_msg_subject_from_prefix_and_normalized_subject() -> None:
    tree = {"__properties_version1.0": b"\0" * 32,
            "__substg1.0_003D001F": "RE: ".encode("utf-16-le"),
            "__substg1.0_0E1D001F": "[SULIT] Bajet".encode("utf-16-le")}
    assert msg.read(mk.cfb(tree), Bounds()).subject == "RE: [SULIT] Bajet"


def test_msg_attachments_by_reference_and_missing_data() -> None:
    data = mk.outlook_msg(mk.Message(subject="x", attachments=[
        mk.Attachment(long_name="di-pelayan.docx", method=2),
        mk.Attachment(long_name="hilang.pdf", method=1)]))
    got = msg.read(data, Bounds())
    by_reference, missing = got.files
    assert by_reference.names == ("di-pelayan.docx",) and by_reference.data == b""
    assert missing.names == ("hilang.pdf",) and missing.data == b""
    # The by-value attachment had no bytes: something was not read.
    assert not got.complete


def test_msg_ole_package_is_unpacked() -> None:
    data = mk.outlook_msg(mk.Message(subject="x", attachments=[
        mk.Attachment(display="Package", method=6,
                      storage=mk.ole_package("setup.exe", b"MZ\x90\x00program"))]))
    got = msg.read(data, Bounds())
    assert got.complete
    (file,) = got.files
    assert file.names == ("Package", "setup.exe")
    assert file.data == b"MZ\x90\x00program"


def test_msg_ole_object_of_a_server_is_not_vouched_for() -> None:
    data = mk.outlook_msg(mk.Message(subject="x", attachments=[
        mk.Attachment(display="Dokumen", method=6,
                      storage={"WordDocument": b"\xec\xa5" + b"\0" * 100})]))
    got = msg.read(data, Bounds())
    assert got.files[0].names == ("Dokumen",) and got.files[0].data == b""
    assert not got.complete


def test_msg_ole_object_with_a_whole_file() -> None:
    data = mk.outlook_msg(mk.Message(subject="x", attachments=[
        mk.Attachment(display="Acrobat", method=6,
                      storage={"CONTENTS": b"%PDF-1.4 ...", "\x01CompObj": b"\0" * 20})]))
    got = msg.read(data, Bounds())
    assert got.complete and got.files[0].data == b"%PDF-1.4 ..."


def test_looks_like_msg() -> None:
    assert msg.looks_like_msg(mk.outlook_msg(mk.Message(subject="x")))
    assert not msg.looks_like_msg(mk.cfb({"WordDocument": b"\0" * 600}))
    assert not msg.looks_like_msg(make_documents.docx(("Isi.",)))
    assert not msg.looks_like_msg(b"")
    assert not msg.looks_like_msg(mk.MAGIC + b"\0" * 100)


def test_msg_damaged_rtf_body_is_skipped_and_not_vouched_for() -> None:
    data = bytearray(mk.outlook_msg(mk.Message(subject="Tajuk", body="Isi.", rtf=RTF)))
    packed = mk.compressed(RTF)
    at = bytes(data).index(packed)
    data[at + 20] ^= 0xFF  # inside the compressed data: the CRC no longer matches
    got = msg.read(bytes(data), Bounds())
    assert got.subject == "Tajuk" and got.bodies == (("plain", "Isi."),)
    assert not got.complete


def test_msg_bytes_are_charged() -> None:
    data = mk.outlook_msg(full_message())
    with pytest.raises(LimitExceeded):
        msg.read(data, Bounds(budget=ExpansionBudget(10_000)))
    bounds = Bounds()
    msg.read(data, bounds)
    assert bounds.budget.spent >= len(BIG)


def test_msg_attachment_count_is_bounded() -> None:
    data = mk.outlook_msg(mk.Message(subject="x", attachments=[
        mk.Attachment(long_name=f"{i}.txt", data=b"x") for i in range(3)]))
    with pytest.raises(LimitExceeded):
        msg.read(data, Bounds(InspectionLimits(max_archive_entries=2)))


def test_msg_deadline() -> None:
    with pytest.raises(LimitExceeded):
        msg.read(mk.outlook_msg(full_message()), Bounds(seconds=-1))


# -- hostile .msg ----------------------------------------------------------------------

def _dir_entry(data: bytes, name: str) -> int:
    """Offset of a directory entry (the directory is one contiguous run in our files)."""
    first_dir = struct.unpack_from("<I", data, 48)[0]
    start = 512 * (first_dir + 1)
    raw = (name + "\0").encode("utf-16-le")
    for offset in range(start, len(data) - 127, 128):
        if data[offset:offset + len(raw)] == raw:
            return offset
    raise AssertionError(name)


def only_bad_or_limit(read: Callable[[bytes, Bounds], Enclosure], data: bytes,
                      seconds: float = 5.0) -> Enclosure | None:
    started = time.monotonic()
    try:
        return read(data, Bounds(seconds=seconds))
    except (BadEnclosure, LimitExceeded):
        return None
    finally:
        assert time.monotonic() - started < seconds + 1


def test_msg_stream_size_past_the_file() -> None:
    data = bytearray(mk.outlook_msg(full_message()))
    entry = _dir_entry(bytes(data), "__substg1.0_1000001F")
    struct.pack_into("<I", data, entry + 120, 0x7FFFFFF0)
    with pytest.raises(BadEnclosure):
        msg.read(bytes(data), Bounds())


def test_msg_fat_loop() -> None:
    data = bytearray(mk.outlook_msg(full_message()))
    entry = _dir_entry(bytes(data), "__substg1.0_37010102")
    start = struct.unpack_from("<I", data, entry + 116)[0]
    struct.pack_into("<I", data, 512 + 4 * start, start)  # the first sector points at itself
    struct.pack_into("<I", data, entry + 120, len(data) - 512)
    assert only_bad_or_limit(msg.read, bytes(data)) is None


@pytest.mark.parametrize("cut", [600, 1024, 1536, 2048, 3000, 4000, -512, -1])
def test_msg_truncated(cut: int) -> None:
    data = mk.outlook_msg(full_message())
    only_bad_or_limit(msg.read, data[:cut])
    assert isinstance(msg.looks_like_msg(data[:cut]), bool)


def test_msg_random_damage() -> None:
    clean = mk.outlook_msg(full_message())
    rng = random.Random(10)
    for _ in range(300):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        damaged = bytes(data)
        if msg.looks_like_msg(damaged):
            only_bad_or_limit(msg.read, damaged)


def test_msg_directory_loop_and_deep_storage_tree() -> None:
    # Storages nested 900 deep: olefile recurses; the reader must still only raise ours.
    tree: mk.Tree = {"__properties_version1.0": b"\0" * 32}
    node = tree
    for i in range(900):
        child: mk.Tree = {}
        node[f"s{i}"] = child
        node = child
    only_bad_or_limit(msg.read, mk.cfb(tree))
    data = bytearray(mk.outlook_msg(mk.Message(subject="x")))
    entry = _dir_entry(bytes(data), "__recip_version1.0_#00000000")
    struct.pack_into("<I", data, entry + 76, 0)  # its child is the root
    only_bad_or_limit(msg.read, bytes(data))


def test_msg_damaged_attached_message_structure() -> None:
    message = mk.Message(subject="x", attachments=[mk.Attachment(
        display="m", method=5, message=mk.Message(subject="[SULIT] y"))])
    data = bytearray(mk.outlook_msg(message))
    entry = _dir_entry(bytes(data), "__substg1.0_3701000D")
    struct.pack_into("<I", data, entry + 76, 0xFFFFFFF0)  # child index out of range
    only_bad_or_limit(msg.read, bytes(data))


def test_damaged_files_log_no_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    data = bytearray(mk.outlook_msg(full_message()))
    data[-100:] = b"\xff" * 100
    only_bad_or_limit(msg.read, bytes(data))
    msg.looks_like_msg(bytes(data))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- compressed RTF --------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"", RTF, b"{\\rtf1 " + b"abcabcabc " * 50 + b"}", bytes(range(256)) * 2,
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman}" * 5])
def test_decompress_rtf_agrees_with_compressed_rtf(raw: bytes) -> None:
    packed = compressed_rtf.compress(raw)
    assert msg.decompress_rtf(packed, Bounds()) == compressed_rtf.decompress(packed) == raw
    plain = compressed_rtf.compress(raw, compressed=False)
    assert msg.decompress_rtf(plain, Bounds()) == raw


def test_decompress_rtf_the_specification_example() -> None:
    # [MS-OXRTFCP] section 3, "Example 1: Simple Compressed RTF", as Microsoft prints it.
    packed = bytes.fromhex("2d0000002b0000004c5a4675f1c5c7a703000a007263706731323542320af320"
                           "68656c090020627705b06c647d0a800fa0")
    assert msg.decompress_rtf(packed, Bounds()) == \
        b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"


def test_decompress_rtf_damage() -> None:
    packed = bytearray(compressed_rtf.compress(RTF))
    for bad in (bytes(packed[:10]), bytes(packed[:-1]), b"\x10\0\0\0\0\0\0\0XXXX\0\0\0\0"
                + b"\0" * 4):
        with pytest.raises(msg.DamagedPart):
            msg.decompress_rtf(bad, Bounds())
    crc = bytearray(packed)
    crc[12] ^= 1
    with pytest.raises(msg.DamagedPart):
        msg.decompress_rtf(bytes(crc), Bounds())
    lying = bytearray(packed)
    struct.pack_into("<I", lying, 4, 0x7FFFFFFF)  # RawSize no data could give
    with pytest.raises(msg.DamagedPart):
        msg.decompress_rtf(bytes(lying), Bounds())
    short = bytearray(packed)
    struct.pack_into("<I", short, 4, 5)  # more output than RawSize says
    with pytest.raises(msg.DamagedPart):
        msg.decompress_rtf(bytes(short), Bounds())


def test_decompress_rtf_is_charged_before_it_expands() -> None:
    # References only, 17 bytes each: the densest expansion LZFu allows. A reference
    # to the write position would be the end marker, so each points elsewhere.
    body = bytearray()
    write = 207
    for _ in range(2000):
        body.append(0xFF)
        for _ in range(8):
            body += struct.pack(">H", ((write + 100) & 0xFFF) << 4 | 0xF)
            write = (write + 17) & 0xFFF
    packed_body = bytes(body)
    raw_size = 136 * 2000
    packed = struct.pack("<II4sI", len(packed_body) + 12, raw_size, b"LZFu",
                         msg.rtf_crc(packed_body)) + packed_body
    assert len(msg.decompress_rtf(packed, Bounds())) == raw_size
    with pytest.raises(LimitExceeded):
        msg.decompress_rtf(packed, Bounds(budget=ExpansionBudget(raw_size - 1)))


# -- TNEF ------------------------------------------------------------------------------

def test_tnef_legacy_attributes() -> None:
    got = tnef.read(mk.tnef(full_message()), Bounds())
    assert got.kind == "tnef" and got.complete
    assert got.subject == "[RAHSIA] Pelan"
    kinds = [kind for kind, _ in got.bodies]
    assert kinds == ["plain", "html", "rtf"]
    assert got.bodies[0] == ("plain", "Isi mesej.\r\nSULIT\r\n")
    assert "SULIT" in got.bodies[2][1].splitlines()
    assert ("X-Pengelasan", "TERHAD") in got.headers
    assert ("msip_labels", LABEL) in got.headers
    docx, blob, forwarded = got.files
    assert docx.names == ("Laporan Tahunan.docx", "LAPORA~1.DOC")
    assert docx.declared_type == make_documents.DOCX
    assert blob.data == BIG
    assert forwarded.message is not None and forwarded.message.kind == "tnef"
    assert forwarded.message.subject == "[SULIT] Bajet 2026"
    assert forwarded.message.files[0].names == ("AUTOEXEC.BAT",)
    assert forwarded.message.files[0].data == b"@echo off\r\n"


def test_tnef_properties_only() -> None:
    got = tnef.read(mk.tnef(full_message(), legacy=False), Bounds())
    assert got.complete
    assert got.subject == "[RAHSIA] Pelan"
    assert got.bodies[0] == ("plain", "Isi mesej.\r\nSULIT\r\n")
    assert [f.names[0] for f in got.files] == ["Laporan Tahunan.docx", "data.bin", "Bajet"]
    assert got.files[1].data == BIG


def test_tnef_the_subject_set_last_is_the_subject() -> None:
    data = mk.tnef(mk.Message(subject="Biasa")) + mk.tnef_attribute(
        mk.LVL_MESSAGE, mk.ATT_MSG_PROPS, mk.mapi_props([(0x0037, "[RAHSIA] Pelan")]))
    assert tnef.read(data, Bounds()).subject == "[RAHSIA] Pelan"
    data = mk.tnef(mk.Message(subject="Biasa", body="x"), legacy=False) + mk.tnef_attribute(
        mk.LVL_MESSAGE, mk.ATT_SUBJECT, b"[SULIT] Bajet\0")
    assert tnef.read(data, Bounds()).subject == "[SULIT] Bajet"


def test_tnef_embedding_up_to_the_depth_and_not_beyond() -> None:
    limits = InspectionLimits(max_archive_depth=3)
    assert depth_of(tnef.read(mk.tnef(nested(3)), Bounds(limits))) == 4
    with pytest.raises(LimitExceeded):
        tnef.read(mk.tnef(nested(4)), Bounds(limits))
    with pytest.raises(LimitExceeded):
        tnef.read(mk.tnef(nested(200)), Bounds(limits))


def test_tnef_wrong_checksum_is_read_but_not_vouched_for() -> None:
    data = bytearray(mk.tnef(mk.Message(subject="[RAHSIA] Pelan", body="Isi.")))
    subject = data.index(b"[RAHSIA] Pelan\0")
    end = subject + len(b"[RAHSIA] Pelan\0")
    data[end] ^= 0xFF
    got = tnef.read(bytes(data), Bounds())
    assert got.subject == "[RAHSIA] Pelan"
    assert not got.complete


def test_tnef_damaged_attached_message_leaves_the_rest() -> None:
    inner = mk.tnef(mk.Message(subject="dalam"))
    att = mk.mapi_props([(0x3705, 5), (0x3001, "m"), (0x3701, mk.IID_IMESSAGE + inner[:-5])],
                        objects=(0x3701,))
    data = mk.tnef(mk.Message(subject="luar")) + mk.tnef_attribute(
        mk.LVL_ATTACHMENT, mk.ATT_ATTACH_REND_DATA, b"\1\0" + b"\0" * 12) + mk.tnef_attribute(
        mk.LVL_ATTACHMENT, mk.ATT_ATTACHMENT, att)
    got = tnef.read(data, Bounds())
    assert got.subject == "luar" and not got.complete
    assert got.files[0].names == ("m",) and got.files[0].message is None


@pytest.mark.parametrize("cut", [3, 5, 10, 20, 41, -1, -3])
def test_tnef_truncated(cut: int) -> None:
    data = mk.tnef(full_message())
    with pytest.raises(BadEnclosure):
        tnef.read(data[:cut], Bounds())


def test_tnef_length_past_the_end() -> None:
    data = bytearray(mk.tnef(mk.Message(subject="x", body="y")))
    struct.pack_into("<I", data, 6 + 5, 0xFFFFFF00)  # the first attribute's length
    with pytest.raises(BadEnclosure):
        tnef.read(bytes(data), Bounds())


def test_tnef_trailing_zero_padding_is_fine() -> None:
    data = mk.tnef(mk.Message(subject="[RAHSIA] Pelan")) + b"\0" * 5
    assert tnef.read(data, Bounds()).subject == "[RAHSIA] Pelan"


def test_tnef_no_signature_or_bad_level() -> None:
    with pytest.raises(BadEnclosure):
        tnef.read(b"PK\x03\x04" + b"\0" * 40, Bounds())
    data = bytearray(mk.tnef(mk.Message(subject="x")))
    data[6] = 7
    with pytest.raises(BadEnclosure):
        tnef.read(bytes(data), Bounds())


@pytest.mark.parametrize("props", [
    struct.pack("<I", 0xFFFFFFFF),  # a property count no attribute can hold
    struct.pack("<IHHI", 1, 0x1003, 0x3705, 0xFFFFFFFF),  # a multi-value count
    struct.pack("<IHHI", 1, 0x001F, 0x0037, 0xFFFFFFFF),  # a value count
    struct.pack("<IHHII", 1, 0x001F, 0x0037, 1, 0xFFFFFFF0),  # a value length
    struct.pack("<IHH", 1, 0x00FE, 0x0037),  # an unknown type
    struct.pack("<IHH16sII", 1, 0x001F, 0x8000, mk.PS_INTERNET_HEADERS, 1, 0xFFFFFFF0),
])
def test_tnef_hostile_property_lists_are_damage_not_work(props: bytes) -> None:
    data = mk.tnef(mk.Message(subject="[RAHSIA] Pelan")) + mk.tnef_attribute(
        mk.LVL_MESSAGE, mk.ATT_MSG_PROPS, props)
    started = time.monotonic()
    got = tnef.read(data, Bounds())
    assert time.monotonic() - started < 1
    assert got.subject == "[RAHSIA] Pelan" and not got.complete


def test_tnef_properties_before_the_damage_are_kept() -> None:
    good = mk.mapi_props([(0x0037, "[SULIT] Bajet")])
    props = struct.pack("<I", 2) + good[4:] + struct.pack("<HH", 0x00FE, 0x1000)
    data = mk.tnef(mk.Message()) + mk.tnef_attribute(mk.LVL_MESSAGE, mk.ATT_MSG_PROPS, props)
    got = tnef.read(data, Bounds())
    assert got.subject == "[SULIT] Bajet" and not got.complete


def test_tnef_attachment_before_its_rendering_data() -> None:
    data = mk.tnef(mk.Message(subject="x")) + mk.tnef_attribute(
        mk.LVL_ATTACHMENT, mk.ATT_ATTACH_TITLE, b"AUTOEXEC.BAT\0") + mk.tnef_attribute(
        mk.LVL_ATTACHMENT, mk.ATT_ATTACH_DATA, b"@echo off")
    (file,) = tnef.read(data, Bounds()).files
    assert file.names == ("AUTOEXEC.BAT",) and file.data == b"@echo off"


def test_tnef_ole_package_attachment() -> None:
    package = mk.cfb(mk.ole_package("setup.exe", b"MZprogram"))
    att = mk.mapi_props([(0x3705, 6), (0x3001, "Package"), (0x3701, package)])
    data = mk.tnef(mk.Message(subject="x")) + mk.tnef_attribute(
        mk.LVL_ATTACHMENT, mk.ATT_ATTACH_REND_DATA, b"\2\0" + b"\0" * 12) + mk.tnef_attribute(
        mk.LVL_ATTACHMENT, mk.ATT_ATTACHMENT, att)
    got = tnef.read(data, Bounds())
    assert got.complete
    assert got.files[0].names == ("Package", "setup.exe")
    assert got.files[0].data == b"MZprogram"


def test_tnef_bytes_time_and_count_are_bounded() -> None:
    data = mk.tnef(full_message())
    with pytest.raises(LimitExceeded):
        tnef.read(data, Bounds(budget=ExpansionBudget(5_000)))
    with pytest.raises(LimitExceeded):
        tnef.read(data, Bounds(seconds=-1))
    many = mk.tnef(mk.Message(subject="x", attachments=[
        mk.Attachment(long_name=f"{i}.txt", data=b"x") for i in range(3)]))
    with pytest.raises(LimitExceeded):
        tnef.read(many, Bounds(InspectionLimits(max_archive_entries=2)))


def test_tnef_many_tiny_attributes_are_linear() -> None:
    attribute = mk.tnef_attribute(mk.LVL_MESSAGE, 0x00010001, b"")
    data = mk.tnef(mk.Message(subject="x")) + attribute * 200_000
    started = time.monotonic()
    tnef.read(data, Bounds())
    assert time.monotonic() - started < 3


def test_tnef_random_damage() -> None:
    clean = mk.tnef(full_message(), legacy=False)
    rng = random.Random(11)
    for _ in range(500):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        only_bad_or_limit(tnef.read, bytes(data))


# -- through the document walk ---------------------------------------------------------

def test_walk_reads_msg_and_tnef_inside_a_zip() -> None:
    archive = make_documents.zip_of({
        "surat.msg": mk.outlook_msg(full_message()),
        "winmail.dat": mk.tnef(mk.Message(subject="[SULIT] Nota", attachments=[
            mk.Attachment(long_name="nota.txt", data=b"TERHAD\r\n")]))})
    assert zipfile.is_zipfile(io.BytesIO(archive))
    found = {(p.rule, p.path, p.text) for p in pieces(archive, Bounds())}
    assert ("subject", "surat.msg", "[RAHSIA] Pelan") in found
    assert ("msip", "surat.msg", LABEL) in found
    assert ("subject", "surat.msg/Bajet", "[SULIT] Bajet 2026") in found
    assert ("subject", "winmail.dat", "[SULIT] Nota") in found
    assert ("lines", "winmail.dat/nota.txt", "TERHAD\r\n") in found


def test_walk_skips_a_damaged_msg() -> None:
    data = bytearray(mk.outlook_msg(mk.Message(subject="[RAHSIA] x")))
    entry = _dir_entry(bytes(data), "__substg1.0_0037001F")
    struct.pack_into("<I", data, entry + 120, 0x7FFFFFF0)
    assert [p for p in pieces(bytes(data), Bounds()) if p.rule == "subject"] == []
