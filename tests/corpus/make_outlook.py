"""Builds the Outlook cases of the corpus: tests/corpus/cases/outlook/.

Run `python tests/corpus/make_outlook.py` from the repository root; it rewrites
every case and its `.expect.yaml` sidecar. The unit tests import the writers from
here too, so a case and its unit test are the same bytes.

No free program here writes Outlook items or TNEF, so this script does, from the
specifications:
- `cfb`: an [MS-CFB] compound file, version 3 (512-byte sectors): header, FAT,
  directory (each storage's children as a balanced tree in CFB name order), a
  mini stream with its MiniFAT for streams under 4096 bytes;
- `outlook_msg`: the [MS-OXMSG] storage layout on top of it: property streams
  with their headers, `__substg1.0_` streams, recipient and attachment storages,
  attached messages (`__substg1.0_3701000D`), named properties (`__nameid_version1.0`);
- `tnef`: an [MS-OXTNEF] stream: signature, legacy key, attributes with their
  checksums, attMsgProps/attAttachment MAPI property lists, attached messages.
A real reader accepting the output is the test of each writer: extract-msg and
olefile read the .msg files, tnefparse the TNEF streams (tests/unit/test_documents_outlook.py).
Output is byte-identical between runs.
"""

from __future__ import annotations

import email.policy
import struct
import sys
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import compressed_rtf

sys.path.insert(0, str(Path(__file__).parent))
import make_documents
from sidecars import write_cases

CASES = Path(__file__).parent / "cases" / "outlook"

# -- [MS-CFB] ------------------------------------------------------------------------

MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
SECTOR = 512
MINI = 64
CUTOFF = 4096
FREESECT, ENDOFCHAIN, FATSECT = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
STORAGE, STREAM, ROOT = 1, 2, 5

Tree = dict[str, "Tree | bytes"]


@dataclass
class _Entry:
    name: str
    kind: int
    data: bytes = b""
    kids: list[int] = field(default_factory=list)
    left: int = NOSTREAM
    right: int = NOSTREAM
    child: int = NOSTREAM
    start: int = ENDOFCHAIN
    size: int = 0


def _cfb_key(name: str) -> tuple[int, str]:
    # [MS-CFB] 2.6.4: shorter names first, then by upper-case code points.
    return len(name), name.upper()


def _flatten(tree: Tree, entries: list[_Entry], sid: int) -> None:
    for name, value in tree.items():
        kid = len(entries)
        if isinstance(value, bytes):
            entries.append(_Entry(name, STREAM, value))
        else:
            entries.append(_Entry(name, STORAGE))
            _flatten(value, entries, kid)
        entries[sid].kids.append(kid)


def _balance(entries: list[_Entry], sids: list[int]) -> int:
    if not sids:
        return NOSTREAM
    middle = len(sids) // 2
    top = sids[middle]
    entries[top].left = _balance(entries, sids[:middle])
    entries[top].right = _balance(entries, sids[middle + 1:])
    return top


def _chain(fat: list[int], first: int, count: int) -> int:
    for i in range(count):
        fat[first + i] = first + i + 1 if i < count - 1 else ENDOFCHAIN
    return first if count else ENDOFCHAIN


def cfb(tree: Tree) -> bytes:
    """A version 3 compound file holding `tree` (dict: storage, bytes: stream)."""
    entries = [_Entry("Root Entry", ROOT)]
    _flatten(tree, entries, 0)
    for entry in entries:
        entry.child = _balance(entries, sorted(entry.kids,
                                               key=lambda k: _cfb_key(entries[k].name)))
    # Small streams go to the mini stream, 64-byte mini sectors chained in the MiniFAT.
    mini = bytearray()
    minifat: list[int] = []
    big: list[_Entry] = []
    for entry in entries:
        if entry.kind != STREAM or not entry.data:
            continue
        entry.size = len(entry.data)
        if entry.size < CUTOFF:
            count = -(-entry.size // MINI)
            first = len(minifat)
            minifat.extend(first + i + 1 for i in range(count))
            minifat[-1] = ENDOFCHAIN
            entry.start = first
            mini += entry.data.ljust(count * MINI, b"\0")
        else:
            big.append(entry)
    n_dir = -(-len(entries) * 128 // SECTOR)
    n_minifat = -(-len(minifat) * 4 // SECTOR)
    n_mini = -(-len(mini) // SECTOR)
    n_big = [-(-e.size // SECTOR) for e in big]
    body = n_dir + n_minifat + n_mini + sum(n_big)
    n_fat = 1
    while n_fat * (SECTOR // 4) < n_fat + body:
        n_fat += 1
    if n_fat > 109:
        raise ValueError("too large for a header-only DIFAT")
    total = n_fat + body
    fat = [FREESECT] * (n_fat * SECTOR // 4)
    for i in range(n_fat):
        fat[i] = FATSECT
    pos = n_fat
    first_dir = _chain(fat, pos, n_dir)
    pos += n_dir
    first_minifat = _chain(fat, pos, n_minifat)
    pos += n_minifat
    entries[0].start = _chain(fat, pos, n_mini)
    entries[0].size = len(mini)
    pos += n_mini
    sectors = bytearray()
    for entry, count in zip(big, n_big, strict=True):
        entry.start = _chain(fat, pos, count)
        pos += count
        sectors += entry.data.ljust(count * SECTOR, b"\0")
    assert pos == total
    directory = bytearray()
    for entry in entries:
        name = (entry.name + "\0").encode("utf-16-le")
        assert len(name) <= 64, entry.name
        directory += struct.pack(
            "<64sHBBIII16sIQQIQ", name, len(name), entry.kind, 1, entry.left, entry.right,
            entry.child, b"\0" * 16, 0, 0, 0, entry.start, entry.size)
    directory = directory.ljust(n_dir * SECTOR, b"\0")
    for unused in range(len(entries), n_dir * SECTOR // 128):
        # Free entries: no name, and NOSTREAM siblings and child.
        struct.pack_into("<III", directory, unused * 128 + 68, NOSTREAM, NOSTREAM, NOSTREAM)
    difat = list(range(n_fat)) + [FREESECT] * (109 - n_fat)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII109I", MAGIC, b"\0" * 16, 0x3E, 3, 0xFFFE, 9, 6, b"\0" * 6,
        0, n_fat, first_dir, 0, CUTOFF,
        first_minifat if minifat else ENDOFCHAIN, n_minifat, ENDOFCHAIN, 0, *difat)
    return (header + struct.pack(f"<{len(fat)}I", *fat) + directory
            + struct.pack(f"<{len(minifat)}I", *minifat).ljust(n_minifat * SECTOR, b"\xff")
            + bytes(mini).ljust(n_mini * SECTOR, b"\0") + sectors)


# -- [MS-OXMSG] ----------------------------------------------------------------------

PT_LONG, PT_OBJECT, PT_STRING8, PT_UNICODE, PT_BINARY = 0x0003, 0x000D, 0x001E, 0x001F, 0x0102
PS_INTERNET_HEADERS = uuid.UUID("00020386-0000-0000-c000-000000000046").bytes_le
IID_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")


@dataclass
class Attachment:
    """One attachment. `method`: PR_ATTACH_METHOD (1 by value, 5 message, 6 OLE)."""

    long_name: str = ""
    short_name: str = ""
    display: str = ""
    data: bytes | None = None
    mime: str = ""
    method: int | None = 1
    message: Message | None = None
    storage: Tree | None = None  # the OLE object's storage (method 6, .msg only)


@dataclass
class Message:
    subject: str | None = None
    body: str | None = None
    html: bytes | None = None
    rtf: bytes | None = None  # raw RTF: compressed by the writers
    headers: str | None = None  # PR_TRANSPORT_MESSAGE_HEADERS
    named: dict[str, str] = field(default_factory=dict)  # PS_INTERNET_HEADERS strings
    attachments: list[Attachment] = field(default_factory=list)
    message_class: str = "IPM.Note"
    codepage: int | None = None  # set: strings are PT_STRING8 in that code page


def compressed(rtf: bytes) -> bytes:
    return bytes(compressed_rtf.compress(rtf))


class _Props:
    """Property stream entries and `__substg1.0_` streams of one storage."""

    def __init__(self, codepage: int | None) -> None:
        self.fixed: list[bytes] = []
        self.streams: Tree = {}
        self.codepage = codepage

    def string(self, pid: int, value: str | None) -> None:
        if value is None:
            return
        if self.codepage:
            raw, ptype = value.encode(f"cp{self.codepage}") + b"\0", PT_STRING8
        else:
            raw, ptype = (value + "\0").encode("utf-16-le"), PT_UNICODE
        self._variable(pid, ptype, raw)

    def binary(self, pid: int, value: bytes | None) -> None:
        if value is not None:
            self._variable(pid, PT_BINARY, value)

    def long(self, pid: int, value: int | None) -> None:
        if value is not None:
            self.fixed.append(struct.pack("<IIIi", pid << 16 | PT_LONG, 6, value & 0xFFFFFFFF,
                                          0)[:16])

    def storage(self, pid: int, tree: Tree) -> None:
        self.fixed.append(struct.pack("<IIII", pid << 16 | PT_OBJECT, 6, 0xFFFFFFFF, 0))
        self.streams[f"__substg1.0_{pid:04X}{PT_OBJECT:04X}"] = tree

    def _variable(self, pid: int, ptype: int, raw: bytes) -> None:
        self.fixed.append(struct.pack("<IIII", pid << 16 | ptype, 6, len(raw), 0))
        # Strings are stored with their terminator counted in the size, not in the stream.
        stored = raw[:-2] if ptype == PT_UNICODE else raw[:-1] if ptype == PT_STRING8 else raw
        self.streams[f"__substg1.0_{pid:04X}{ptype:04X}"] = stored

    def tree(self, header: bytes) -> Tree:
        return {"__properties_version1.0": header + b"".join(self.fixed), **self.streams}


def _message_tree(message: Message, *, top: bool, named_ids: dict[str, int]) -> Tree:
    props = _Props(message.codepage)
    props.string(0x001A, message.message_class)
    props.string(0x0037, message.subject)
    props.string(0x1000, message.body)
    props.binary(0x1013, message.html)
    props.binary(0x1009, None if message.rtf is None else compressed(message.rtf))
    props.string(0x007D, message.headers)
    if message.codepage:
        props.long(0x3FFD, message.codepage)
    else:
        props.long(0x340D, 0x00040000)  # STORE_UNICODE_OK: strings are PT_UNICODE
    for name, value in message.named.items():
        props.string(named_ids[name], value)
    tree: Tree = {}
    recipient = _Props(message.codepage)
    recipient.string(0x3001, "Pegawai")
    recipient.string(0x3003, "pegawai@anm.gov.my")
    recipient.long(0x0C15, 1)
    tree["__recip_version1.0_#00000000"] = recipient.tree(b"\0" * 8)
    for index, att in enumerate(message.attachments):
        a = _Props(message.codepage)
        a.long(0x0E21, index)
        a.long(0x3705, att.method)
        a.long(0x370B, -1)
        a.string(0x3707, att.long_name or None)
        a.string(0x3704, att.short_name or None)
        a.string(0x3001, att.display or None)
        a.string(0x370E, att.mime or None)
        if att.message is not None:
            a.storage(0x3701, _message_tree(att.message, top=False, named_ids=named_ids))
        elif att.storage is not None:
            a.storage(0x3701, att.storage)
        else:
            a.binary(0x3701, att.data)
        tree[f"__attach_version1.0_#{index:08X}"] = a.tree(b"\0" * 8)
    n_att = len(message.attachments)
    counts = struct.pack("<8sIIII", b"\0" * 8, 1, n_att, 1, n_att)
    header = counts + b"\0" * 8 if top else counts
    return {**props.tree(header), **tree}


def _named_names(message: Message, out: list[str]) -> list[str]:
    for name in message.named:
        if name not in out:
            out.append(name)
    for att in message.attachments:
        if att.message is not None:
            _named_names(att.message, out)
    return out


def outlook_msg(message: Message) -> bytes:
    """An Outlook item ([MS-OXMSG]) as a compound file."""
    names = _named_names(message, [])
    named_ids = {name: 0x8000 + i for i, name in enumerate(names)}
    strings = bytearray()
    entries = bytearray()
    for i, name in enumerate(names):
        entries += struct.pack("<II", len(strings), i << 16 | 3 << 1 | 1)
        raw = name.encode("utf-16-le")
        strings += struct.pack("<I", len(raw)) + raw
        strings += b"\0" * (-len(strings) % 4)
    tree = _message_tree(message, top=True, named_ids=named_ids)
    tree["__nameid_version1.0"] = {
        "__substg1.0_00020102": PS_INTERNET_HEADERS if names else b"",
        "__substg1.0_00030102": bytes(entries),
        "__substg1.0_00040102": bytes(strings),
    }
    return cfb(tree)


def ole_package(name: str, data: bytes) -> Tree:
    """The storage of a Windows Packager OLE object carrying one file ([MS-OLEDS])."""
    label = name.encode("cp1252") + b"\0"
    path = f"C:\\Temp\\{name}".encode("cp1252") + b"\0"
    body = (struct.pack("<H", 2) + label + path + struct.pack("<I", 0x00030000)
            + struct.pack("<I", len(path)) + path + struct.pack("<I", len(data)) + data)
    return {"\x01Ole10Native": struct.pack("<I", len(body)) + body,
            "\x01CompObj": b"\x01\x00\xfe\xff\x03\x0a\x00\x00" + b"\0" * 20}


# -- [MS-OXTNEF] ---------------------------------------------------------------------

TNEF_SIGNATURE = 0x223E9F78
LVL_MESSAGE, LVL_ATTACHMENT = 1, 2
ATT_TNEF_VERSION = 0x00089006
ATT_OEM_CODEPAGE = 0x00069007
ATT_MESSAGE_CLASS = 0x00078008
ATT_SUBJECT = 0x00018004
ATT_BODY = 0x0002800C
ATT_MSG_PROPS = 0x00069003
ATT_ATTACH_REND_DATA = 0x00069002
ATT_ATTACH_TITLE = 0x00018010
ATT_ATTACH_DATA = 0x0006800F
ATT_ATTACHMENT = 0x00069005



def tnef_attribute(level: int, attr: int, data: bytes, *, checksum: int | None = None
                   ) -> bytes:
    """One attribute: level, id, length, data, checksum (sum of the data bytes mod 2^16)."""
    check = sum(data) & 0xFFFF if checksum is None else checksum
    return struct.pack("<BII", level, attr, len(data)) + data + struct.pack("<H", check)


def _pad(raw: bytes) -> bytes:
    return raw + b"\0" * (-len(raw) % 4)


def mapi_props(props: list[tuple[int, int | str | bytes]],
               named: dict[str, str] | None = None, *, objects: tuple[int, ...] = ()
               ) -> bytes:
    """A TNEF property list ([MS-OXTNEF] 2.1.3.4). Values: int (PT_LONG), str
    (PT_UNICODE), bytes (PT_BINARY, or PT_OBJECT for the ids in `objects`)."""
    out = bytearray(struct.pack("<I", len(props) + len(named or {})))
    for pid, value in props:
        if isinstance(value, int):
            out += struct.pack("<HHI", PT_LONG, pid, value & 0xFFFFFFFF)
        elif isinstance(value, str):
            raw = (value + "\0").encode("utf-16-le")
            out += struct.pack("<HHII", PT_UNICODE, pid, 1, len(raw)) + _pad(raw)
        else:
            ptype = PT_OBJECT if pid in objects else PT_BINARY
            out += struct.pack("<HHII", ptype, pid, 1, len(value)) + _pad(value)
    for index, (name, text) in enumerate((named or {}).items()):
        raw_name = (name + "\0").encode("utf-16-le")
        raw = (text + "\0").encode("utf-16-le")
        out += struct.pack("<HH", PT_UNICODE, 0x8000 + index) + PS_INTERNET_HEADERS
        out += struct.pack("<II", 1, len(raw_name)) + _pad(raw_name)
        out += struct.pack("<II", 1, len(raw)) + _pad(raw)
    return bytes(out)


def tnef(message: Message, *, legacy: bool = True, key: int = 0x1234) -> bytes:
    """A TNEF stream. `legacy`: subject and body as attSubject/attBody and attachment
    data as attAttachData (as Exchange writes for plain mail); otherwise everything in
    attMsgProps / attAttachment MAPI properties."""
    out = bytearray(struct.pack("<IH", TNEF_SIGNATURE, key))
    out += tnef_attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += tnef_attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", 1252, 0))
    out += tnef_attribute(LVL_MESSAGE, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\0")
    props: list[tuple[int, int | str | bytes]] = []
    if legacy and message.subject is not None:
        out += tnef_attribute(LVL_MESSAGE, ATT_SUBJECT,
                              message.subject.encode("cp1252") + b"\0")
    elif message.subject is not None:
        props.append((0x0037, message.subject))
    if legacy and message.body is not None:
        out += tnef_attribute(LVL_MESSAGE, ATT_BODY, message.body.encode("cp1252"))
    elif message.body is not None:
        props.append((0x1000, message.body))
    if message.html is not None:
        props.append((0x1013, message.html))
    if message.rtf is not None:
        props.append((0x1009, compressed(message.rtf)))
    if message.headers is not None:
        props.append((0x007D, message.headers))
    if props or message.named:
        out += tnef_attribute(LVL_MESSAGE, ATT_MSG_PROPS, mapi_props(props, message.named))
    for att in message.attachments:
        rend = struct.pack("<HIHHI", 1 if att.method != 6 else 2, 0xFFFFFFFF, 0xFFFF, 0xFFFF, 1)
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_REND_DATA, rend)
        title = att.short_name or att.long_name
        if legacy and title:
            out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE,
                                  title.encode("cp1252") + b"\0")
        aprops: list[tuple[int, int | str | bytes]] = []
        if att.method is not None:
            aprops.append((0x3705, att.method))
        if att.long_name:
            aprops.append((0x3707, att.long_name))
        if att.display:
            aprops.append((0x3001, att.display))
        if att.mime:
            aprops.append((0x370E, att.mime))
        if att.message is not None:
            aprops.append((0x3701, IID_IMESSAGE + tnef(att.message, legacy=legacy)))
        elif att.data is not None and legacy:
            out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, att.data)
        elif att.data is not None:
            aprops.append((0x3701, att.data))
        out += tnef_attribute(LVL_ATTACHMENT, ATT_ATTACHMENT,
                              mapi_props(aprops, objects=(0x3701,) if att.message else ()))
    return bytes(out)


# -- the cases -----------------------------------------------------------------------

PROSE_SUBJECT = "Rahsia kejayaan pasukan kita"
PROSE_BODY = ("Kata laluan anda adalah rahsia. Jangan kongsi dengan sesiapa.\n"
              "Maklumat ini sulit dan hanya untuk penerima.\n"
              "Sila jaga kerahsiaan dokumen ini.\n")
HEADERS = ("Received: from mel.anm.gov.my by mx.anm.gov.my; Mon, 6 Jan 2025 09:00:00 +0800\r\n"
           "From: Pegawai <pegawai@anm.gov.my>\r\n"
           "Subject: =?UTF-8?B?W1JBSFNJQV0gUGVsYW4=?=\r\n"
           "X-Pengelasan: TERHAD\r\n\r\n")


def eml_with_tnef(data: bytes) -> bytes:
    """A message with winmail.dat attached as application/ms-tnef, as Outlook sends it."""
    msg = EmailMessage()
    msg["From"] = "Pegawai <pegawai@anm.gov.my>"
    msg["To"] = "penerima@example.org"
    msg["Subject"] = "Mesyuarat"
    msg["Message-ID"] = "<winmail@anm.gov.my>"
    msg.set_content("Salam, sila lihat lampiran.\n")
    msg.add_attachment(data, maintype="application", subtype="ms-tnef",
                       filename="winmail.dat")
    msg.set_boundary("==winmail-lampiran==")  # a fixed boundary: the same bytes every run
    return msg.as_bytes(policy=email.policy.SMTP)


# A real password-protected Word file (msoffcrypto-tool's test input, MIT licence:
# tests/corpus/fixtures/README.md): AES, ECMA-376 agile encryption.
ENCRYPTED_DOCX = (Path(__file__).parent / "fixtures" / "office" /
                  "example_password.docx").read_bytes()
# Legacy Office files with a password, from the same MIT-licensed inputs: Word 97 with
# RC4 CryptoAPI encryption, Excel 97 with XOR obfuscation.
RC4_DOC = (Path(__file__).parent / "fixtures" / "office" /
           "rc4cryptoapi_password.doc").read_bytes()
XOR_XLS = (Path(__file__).parent / "fixtures" / "office" /
           "xor_password_123456789012345.xls").read_bytes()


def cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    """File name -> (bytes, expectation)."""
    footer_docx = make_documents.docx(("Laporan suku tahun.",), footers=("SULIT",))
    pelan = Message(subject="[RAHSIA] Pelan", body="Salam, pelan dilampirkan.\n")
    return {
        "Pelan.msg": (
            outlook_msg(pelan),
            {"classification": "RAHSIA", "where": ["attachment:Pelan.msg:subject"]}),
        "Minit-body.msg": (
            outlook_msg(Message(subject="Minit mesyuarat",
                                body="SULIT\r\n\r\nMinit mesyuarat pengurusan.\r\n")),
            {"classification": "SULIT", "where": ["attachment:Minit-body.msg:body"]}),
        "Notis-html.msg": (
            outlook_msg(Message(subject="Notis", html=(
                b"<html><body><p>TERHAD</p><p>Notis kepada semua pegawai.</p>"
                b"</body></html>"))),
            {"classification": "TERHAD", "where": ["attachment:Notis-html.msg:body"]}),
        "Laporan-rtf.msg": (
            outlook_msg(Message(subject="Laporan", rtf=(
                b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Arial;}}\\f0\\fs20 "
                b"SULIT\\par Laporan bulanan.\\par}"))),
            {"classification": "SULIT", "where": ["attachment:Laporan-rtf.msg:body"],
             "note": "the RTF body, read by rtf.plain_text"}),
        "Lampiran-docx.msg": (
            outlook_msg(Message(subject="Laporan", body="Sila lihat lampiran.\n",
                                attachments=[Attachment(
                                    long_name="inner.docx", short_name="inner.docx",
                                    data=footer_docx, mime=make_documents.DOCX)])),
            {"classification": "SULIT",
             "where": ["attachment:Lampiran-docx.msg/inner.docx:footer"]}),
        "Diteruskan.msg": (
            outlook_msg(Message(subject="FW: Bajet", body="Untuk makluman.\n",
                                attachments=[Attachment(display="Bajet", method=5,
                                                        message=Message(
                                                            subject="[SULIT] Bajet 2026",
                                                            body="Bajet dilampirkan.\n"))])),
            {"classification": "SULIT", "where": ["attachment:Diteruskan.msg/Bajet:subject"]}),
        "Label.msg": (
            outlook_msg(Message(subject="Draf", body="Draf surat.\n", named={
                "msip_labels": "MSIP_Label_0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d_Enabled=true; "
                               "MSIP_Label_0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d_Name=SULIT;"})),
            {"classification": "SULIT", "where": ["attachment:Label.msg:msip_labels"],
             "note": "a saved draft keeps msip_labels as a PS_INTERNET_HEADERS named property"}),
        "Berkata-laluan.msg": (
            outlook_msg(Message(subject="[SULIT] Bajet 2026",
                                body="Kata laluan dihantar melalui SMS.\n",
                                attachments=[Attachment(long_name="Bajet.docx",
                                                        data=ENCRYPTED_DOCX,
                                                        mime=make_documents.DOCX)])),
            {"classification": "SULIT", "encrypted": [True, True], "schemes": ["aes", "aes"],
             "outcome_outbound": "accept", "rule_outbound": None,
             "note": "a SULIT item whose only file is encrypted (AES): encrypted as a whole"}),
        "Sebahagian-berkata-laluan.msg": (
            outlook_msg(Message(subject="[SULIT] Bajet 2026", body="Dilampirkan.\n",
                                attachments=[
                                    Attachment(long_name="Bajet.docx", data=ENCRYPTED_DOCX,
                                               mime=make_documents.DOCX),
                                    Attachment(long_name="Nota.txt", data=b"Nota.\r\n",
                                               mime="text/plain")])),
            {"classification": "SULIT", "encrypted": [False, True, False],
             "outcome_outbound": "reject",
             "rule_outbound": "klasifikasi-lampiran-tidak-disulitkan",
             "note": "one file inside travels in the clear: the item is not encrypted"}),
        "Prosa.msg": (
            outlook_msg(Message(subject=PROSE_SUBJECT, body=PROSE_BODY, html=(
                b"<p>Tempat terhad: daftar segera.</p>"))),
            {"classification": None}),
        "Pelan-winmail.dat": (
            tnef(pelan),
            {"classification": "RAHSIA", "where": ["attachment:Pelan-winmail.dat:subject"]}),
        "Props-winmail.dat": (
            tnef(Message(subject="[RAHSIA] Pelan", rtf=b"{\\rtf1\\ansi Pelan operasi.\\par}"),
                 legacy=False),
            {"classification": "RAHSIA", "where": ["attachment:Props-winmail.dat:subject"],
             "note": "PR_SUBJECT and PR_RTF_COMPRESSED in attMsgProps, no attSubject"}),
        "Rtf-winmail.dat": (
            tnef(Message(subject="Laporan", rtf=b"{\\rtf1\\ansi TERHAD\\par Laporan.\\par}"),
                 legacy=False),
            {"classification": "TERHAD", "where": ["attachment:Rtf-winmail.dat:body"],
             "note": "the RTF body, read by rtf.plain_text"}),
        "Autoexec-winmail.dat": (
            tnef(Message(subject="Skrip", body="Skrip dilampirkan.\n", attachments=[
                Attachment(long_name="AUTOEXEC.BAT", short_name="AUTOEXEC.BAT",
                           data=b"@echo off\r\n")])),
            {"classification": None, "categories": ["other", "executable"],
             "filenames": [["Autoexec-winmail.dat"], ["AUTOEXEC.BAT"]],
             "outcome_outbound": "reject", "rule_outbound": "perisian-hasad-boleh-laku",
             "outcome_inbound": "reject", "rule_inbound": "perisian-hasad-boleh-laku",
             "note": "AUTOEXEC.BAT inside is an attachment for every rule, as if attached "
                     "plainly"}),
        "Nota-winmail.dat": (
            tnef(Message(subject="Nota", body="Nota dilampirkan.\n", attachments=[
                Attachment(long_name="nota.txt", short_name="nota.txt",
                           data=b"SULIT\r\nNota dalaman.\r\n", mime="text/plain")])),
            {"classification": "SULIT",
             "where": ["attachment:Nota-winmail.dat/nota.txt:content"]}),
        "Diteruskan-winmail.dat": (
            tnef(Message(subject="FW: Bajet", body="Untuk makluman.\n", attachments=[
                Attachment(display="Bajet", method=5,
                           message=Message(subject="[SULIT] Bajet 2026", body="Bajet.\n"))])),
            {"classification": "SULIT",
             "where": ["attachment:Diteruskan-winmail.dat/Bajet:subject"]}),
        "Berkata-laluan-winmail.dat": (
            tnef(Message(subject="[SULIT] Bajet 2026", body="Kata laluan melalui SMS.\n",
                         attachments=[Attachment(long_name="Bajet.docx",
                                                 short_name="BAJET~1.DOC",
                                                 data=ENCRYPTED_DOCX,
                                                 mime=make_documents.DOCX)])),
            {"classification": "SULIT", "encrypted": [True, True], "schemes": ["aes", "aes"],
             "outcome_outbound": "accept", "rule_outbound": None,
             "note": "a SULIT TNEF whose only file is encrypted (AES): encrypted as a whole"}),
        "Lama-berkata-laluan-winmail.dat": (
            tnef(Message(subject="[SULIT] Bajet 2026", body="Kata laluan melalui SMS.\n",
                         attachments=[
                             Attachment(long_name="Bajet.doc", short_name="BAJET.DOC",
                                        data=RC4_DOC, mime="application/msword"),
                             Attachment(long_name="Jadual.xls", short_name="JADUAL.XLS",
                                        data=XOR_XLS, mime="application/vnd.ms-excel")]),
                 legacy=False),
            {"classification": "SULIT", "encrypted": [True, True, True],
             "schemes": [None, "rc4", "xor"],
             "note": "legacy Office files with a password inside TNEF: each file's scheme, "
                     "none for the wrapper whose files differ"}),
        "Lama-berkata-laluan.msg": (
            outlook_msg(Message(subject="[SULIT] Bajet 2026", body="Dilampirkan.\n",
                                attachments=[Attachment(long_name="Bajet.doc", data=RC4_DOC,
                                                        mime="application/msword")])),
            {"classification": "SULIT", "encrypted": [True, True], "schemes": ["rc4", "rc4"],
             "note": "a Word 97 file with an RC4 password inside an Outlook item"}),
        "Prosa-winmail.dat": (
            tnef(Message(subject=PROSE_SUBJECT, body=PROSE_BODY, attachments=[
                Attachment(long_name="nota.txt", data=b"Tempat terhad.\r\n")])),
            {"classification": None}),
        "winmail-lampiran.eml": (
            eml_with_tnef(tnef(pelan)),
            {"classification": "RAHSIA", "where": ["attachment:winmail.dat:subject"]}),
    }


def main() -> int:
    print(f"{write_cases(CASES, cases())} Outlook cases in {CASES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
