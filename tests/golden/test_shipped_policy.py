"""The SHIPPED policy (rules/*.yaml + config/gateway.yaml) on one message per rule.

Messages are built here, byte by byte, so each case shows exactly what it sends;
the expected verdicts are in tests/golden/shipped/expected.json. The whole path
runs as in the proxy: `gateway.pipeline.inspect` (view, engine, transforms).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.pipeline import Inspection, inspect
from gateway.policy_state import PolicyState, load_policy_for

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "shipped"
EXPECTED: dict[str, dict[str, Any]] = {
    k: v for k, v in json.loads((HERE / "expected.json").read_text(encoding="utf-8")).items()
    if not k.startswith("_")}
MiB = 1024 * 1024


# -- building messages -------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    filename: str
    content_type: str
    data: bytes


def mime(*, sender: str, to: str, subject: str | None, body: str = "Salam sejahtera.\n",
         parts: tuple[Part, ...] = (), extra: tuple[str, ...] = ()) -> bytes:
    """A CRLF message as a mail client sends it: text body, base64 attachments."""
    head = [f"From: {sender}", f"To: {to}", "Date: Mon, 03 Mar 2025 09:00:00 +0800",
            "Message-ID: <golden@anm.gov.my>", "MIME-Version: 1.0", *extra]
    if subject is not None:
        head.append(f"Subject: {subject}")
    text = body.replace("\n", "\r\n").encode("utf-8")
    if not parts:
        head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        return "\r\n".join(head).encode("utf-8") + b"\r\n\r\n" + text
    boundary = "=_golden_boundary_"
    head.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    out = ["\r\n".join(head).encode("utf-8"), b"", b"--" + boundary.encode(),
           b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: 8bit", b"",
           text]
    for part in parts:
        encoded = base64.encodebytes(part.data).replace(b"\n", b"\r\n")
        out += [b"--" + boundary.encode(),
                f'Content-Type: {part.content_type}; name="{part.filename}"'.encode(),
                f'Content-Disposition: attachment; filename="{part.filename}"'.encode(),
                b"Content-Transfer-Encoding: base64", b"", encoded]
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"\r\n".join(out)


@functools.cache
def blob(size: int) -> bytes:
    # Incompressible, typeless data: only the size rules can object to it.
    return os.urandom(size)


def _crc_step(crc: int, byte: int) -> int:
    return (~zlib.crc32(bytes([byte]), ~crc & 0xFFFFFFFF)) & 0xFFFFFFFF


def zipcrypto(name: str, data: bytes, password: bytes) -> bytes:
    """A ZIP whose one entry is encrypted with traditional PKWARE encryption (stored)."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = _crc_step(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = _crc_step(keys[2], keys[1] >> 24)

    for b in password:
        update(b)
    crc = zlib.crc32(data)
    plain = os.urandom(11) + bytes([crc >> 24]) + data
    cipher = bytearray()
    for b in plain:
        t = (keys[2] | 2) & 0xFFFF
        cipher.append(b ^ (((t * (t ^ 1)) >> 8) & 0xFF))
        update(b)
    fname = name.encode()
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 1, 0, 0, 0x21, crc, len(cipher),
                        len(data), len(fname), 0) + fname + bytes(cipher)
    central = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 1, 0, 0, 0x21, crc, len(cipher),
                          len(data), len(fname), 0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


def pe_executable() -> bytes:
    """The headers of a Windows PE32 program: what libmagic calls an executable."""
    dos = bytearray(b"MZ\x90\x00" + b"\x00" * 60)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    dos += b"\x00" * (0x80 - len(dos))
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    return bytes(dos) + coff + struct.pack("<H", 0x10B) + b"\x00" * (0xE0 - 2 + 512)


def test_zipcrypto_helper_makes_a_real_encrypted_zip(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(zipcrypto("minit.txt", b"SULIT\nMinit mesyuarat\n", b"rahsia123"))
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
        assert info.flag_bits & 1
        with pytest.raises(RuntimeError):
            z.read("minit.txt")
        assert z.read("minit.txt", pwd=b"rahsia123") == b"SULIT\nMinit mesyuarat\n"


# -- the cases ---------------------------------------------------------------------
JANM = "ali@anm.gov.my"
OTHER = "pegawai@jpn.gov.my"
PDF = HERE / "minit.pdf"  # real files from LibreOffice and Word; see shipped/NOTICE.md
DOCX_PASSWORD = HERE / "cadangan-password.docx"
# Office macro documents of the corpus (tests/corpus/make_macros.py)
MACROS = REPO / "tests" / "corpus" / "cases" / "macros"


@dataclass(frozen=True)
class Case:
    mail_from: str
    rcpt: tuple[str, ...]
    build: Callable[[], bytes]


def _case(mail_from: str, rcpt: str, build: Callable[[], bytes]) -> Case:
    return Case(mail_from, (rcpt,), build)


CASES: dict[str, Case] = {
    "attachment-26mb-outbound": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Data banci", parts=(
            Part("banci.bin", "application/octet-stream", blob(26 * MiB)),))),
    "attachment-26mb-inbound": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="Data banci", parts=(
            Part("banci.bin", "application/octet-stream", blob(26 * MiB)),))),
    "attachment-exactly-25mb-inbound": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="Data banci", parts=(
            Part("banci.bin", "application/octet-stream", blob(25 * MiB)),))),
    "attachment-11mb-from-janm": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Penyata", parts=(
            Part("penyata.bin", "application/octet-stream", blob(11 * MiB)),))),
    "attachment-11mb-inbound-from-other-agency": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="Penyata", parts=(
            Part("penyata.bin", "application/octet-stream", blob(11 * MiB)),))),
    "rahsia-subject-outbound": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="[RAHSIA] Laporan Keselamatan")),
    "rahsia-subject-inbound": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="RAHSIA: Pelan Pemindahan")),
    "rahsia-besar-encoded-subject-inbound": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="=?UTF-8?B?" + base64.b64encode(
            b"[RAHSIA BESAR] Pelan Operasi").decode() + "?=")),
    "sulit-plain-attachment": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="SULIT: Minit Mesyuarat Pengurusan Bil. 4/2025",
        parts=(Part("minit.pdf", "application/pdf", PDF.read_bytes()),))),
    "sulit-encrypted-zip": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="SULIT: Minit Mesyuarat Pengurusan Bil. 4/2025",
        body="Kata laluan dihantar melalui SMS.\n",
        parts=(Part("minit.zip", "application/zip",
                    zipcrypto("minit.txt", b"SULIT\nMinit mesyuarat\n", b"k4t4-l4lu4n")),))),
    "sulit-password-docx": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="SULIT: Kertas Cadangan",
        parts=(Part("cadangan.docx", "application/vnd.openxmlformats-officedocument."
                    "wordprocessingml.document", DOCX_PASSWORD.read_bytes()),))),
    # The password in the same message (rules/20-klasifikasi.yaml, password_in_message).
    "sulit-zip-password-in-body": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="SULIT: Minit Mesyuarat Pengurusan Bil. 4/2025",
        body="Tuan,\n\nKata laluan: k4t4-l4lu4n\n",
        parts=(Part("minit.zip", "application/zip",
                    zipcrypto("minit.txt", b"SULIT\nMinit mesyuarat\n", b"k4t4-l4lu4n")),))),
    "terhad-docx-password-in-subject": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="TERHAD: Kertas Cadangan (pwd Password1234_)",
        parts=(Part("cadangan.docx", "application/vnd.openxmlformats-officedocument."
                    "wordprocessingml.document", DOCX_PASSWORD.read_bytes()),))),
    "sulit-to-gmail": _case(JANM, "kawan@gmail.com", lambda: mime(
        sender=JANM, to="kawan@gmail.com", subject="SULIT: Bajet 2026")),
    "terhad-from-gmail-inbound": _case("orang.awam@gmail.com", JANM, lambda: mime(
        sender="orang.awam@gmail.com", to=JANM, subject="Laporan Audit Dalaman - TERHAD")),
    "outbound-envelope-gmail": _case("ali.peribadi@gmail.com", OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Mesyuarat")),
    "outbound-header-from-gmail": _case(JANM, OTHER, lambda: mime(
        sender="Ali <ali.peribadi@gmail.com>", to=OTHER, subject="Mesyuarat")),
    "outbound-non-agency-sender": _case("info@syarikat.com.my", OTHER, lambda: mime(
        sender="info@syarikat.com.my", to=OTHER, subject="Sebut harga")),
    "outbound-bounce-null-sender": _case("", OTHER, lambda: mime(
        sender="Mail Delivery System <MAILER-DAEMON@gateway.localdomain>", to=OTHER,
        subject="Undelivered Mail Returned to Sender", extra=("Auto-Submitted: auto-replied",),
        body="This is the mail system at host gateway.localdomain.\n")),
    "hebahan-tagged": _case("hebahan@anm.gov.my", OTHER, lambda: mime(
        sender="Hebahan JANM <hebahan@anm.gov.my>", to=OTHER,
        subject="Mesyuarat Agung Tahunan 2025")),
    "hebahan-already-tagged": _case("hebahan@anm.gov.my", OTHER, lambda: mime(
        sender="hebahan@anm.gov.my", to=OTHER,
        subject="Re: [HEBAHAN JANM] Mesyuarat Agung Tahunan 2025")),
    "hebahan-forged-inbound": _case("admin@jpn-gov.example", JANM, lambda: mime(
        sender="JANM <admin@jpn-gov.example>", to=JANM,
        subject="[Hebahan  JANM] Kemaskini kata laluan anda")),
    "hebahan-forged-outbound": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="[HEBAHAN JANM] Makluman")),
    "hebahan-forged-inbound-reply": _case("admin@jpn-gov.example", JANM, lambda: mime(
        sender="JANM <admin@jpn-gov.example>", to=JANM,
        subject="RE: Fwd: [HEBAHAN JANM] Jadual baharu")),
    "hebahan-forged-outbound-lookalike": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="\uff3bHEBAHAN JANM\uff3d Makluman")),
    "hebahan-prefixed-not-doubled": _case("hebahan@anm.gov.my", OTHER, lambda: mime(
        sender="hebahan@anm.gov.my", to=OTHER,
        subject="Majukan: FW: [hebahan janm] Mesyuarat Agung Tahunan 2025")),
    # Replies and forwards quote the tag (rules/40-hebahan.yaml, subject_quotes_tag).
    "hebahan-reply-outbound": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="RE: [HEBAHAN JANM] Makluman Cuti Umum",
        extra=("In-Reply-To: <hebahan-1@anm.gov.my>",))),
    "hebahan-forward-outbound-no-thread-fields": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="FW: [HEBAHAN JANM] Makluman Cuti Umum")),
    "hebahan-reply-outbound-no-thread-fields": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Balas: [HEBAHAN JANM] Makluman Cuti Umum")),
    "hebahan-reply-inbound-defanged": _case("admin@jpn-gov.example", JANM, lambda: mime(
        sender="admin@jpn-gov.example", to=JANM, subject="Re: [HEBAHAN JANM] Jadual baharu",
        extra=("References: <hebahan-1@anm.gov.my>",))),
    # Greek capital Alpha and a zero-width space, RFC 2047-encoded.
    "hebahan-forward-inbound-lookalike-defanged": _case(
        "admin@jpn-gov.example", JANM, lambda: mime(
            sender="admin@jpn-gov.example", to=JANM, subject="=?UTF-8?B?" + base64.b64encode(
                "Majukan: RE: [HEB\u0391HAN\u200b JANM] Jadual baharu".encode()).decode()
            + "?=")),
    "hebahan-reply-inbound-tag-twice": _case("admin@jpn-gov.example", JANM, lambda: mime(
        sender="admin@jpn-gov.example", to=JANM,
        subject="Re: [HEBAHAN JANM] Jadual [HEBAHAN JANM] Klik di sini",
        extra=("In-Reply-To: <hebahan-1@anm.gov.my>",))),
    "exe-renamed-pdf": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="Invois",
        parts=(Part("invois.pdf", "application/pdf", pe_executable()),))),
    "script-attachment": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Skrip",
        parts=(Part("kemaskini.js", "application/javascript", b"var x = 1;\n"),))),
    "macro-autoexec-suspicious-inbound": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="Minit", parts=(Part(
            "minit.doc", "application/msword", (MACROS / "Makro-AutoOpen.doc").read_bytes()),))),
    "macro-autoexec-suspicious-outbound-monitored": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Laporan", parts=(Part(
            "laporan.docx", "application/octet-stream",
            (MACROS / "Laporan.docx").read_bytes()),))),
    "macro-benign-inbound-monitored": _case(OTHER, JANM, lambda: mime(
        sender=OTHER, to=JANM, subject="Laporan", parts=(Part(
            "laporan.docm", "application/vnd.ms-word.document.macroEnabled.12",
            (MACROS / "Laporan-makro.docm").read_bytes()),))),
    "dropbox-link-monitored": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Dokumen",
        body="Sila muat turun: https://www.dropbox.com/s/abc123/laporan.pdf?dl=0\n")),
    "auto-forward-outside-monitored": _case(JANM, "ali.peribadi@gmail.com", lambda: mime(
        sender=JANM, to="ali.peribadi@gmail.com", subject="FW: Jadual",
        extra=("Auto-Submitted: auto-forwarded",
               "X-MS-Exchange-Inbox-Rules-Loop: ali@anm.gov.my"))),
    "plain-official-mail": _case(JANM, OTHER, lambda: mime(
        sender="Ali bin Abu <ali@anm.gov.my>", to=OTHER,
        subject="Mesyuarat Jawatankuasa ICT Bil. 2/2025",
        body="Tuan,\n\nDengan hormatnya dimaklumkan mesyuarat akan diadakan pada 10 Mac.\n")),
    "rahsia-as-a-word-in-prose": _case(JANM, OTHER, lambda: mime(
        sender=JANM, to=OTHER, subject="Rahsia kejayaan pasukan kita",
        body="Kata laluan anda adalah rahsia. Jangan kongsi dengan sesiapa.\n")),
}


@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd: the antivirus rules are tests/unit/test_antivirus.py's.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


def run(policy: PolicyState, name: str) -> tuple[bytes, Inspection]:
    case, exp = CASES[name], EXPECTED[name]
    raw = case.build()
    env = Envelope(direction=exp["direction"], listener=exp["direction"], client_ip="127.0.0.1",
                   helo="client.example", mail_from=case.mail_from, rcpt_to=case.rcpt)
    return raw, inspect(policy, raw, env)


def test_every_expected_verdict_has_a_case() -> None:
    assert set(CASES) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shipped_policy(policy: PolicyState, name: str) -> None:
    exp = EXPECTED[name]
    raw, got = run(policy, name)
    verdict = got.verdict
    hits = [(h.rule_id, h.mode) for h in verdict.hits]
    if exp["action"] == "accept":
        assert got.reply is None, (got.reply, hits)
        assert got.relay_bytes is not None
    else:
        assert got.reply is not None, hits
        assert got.relay_bytes is None
        assert (got.reply.code, got.reply.enhanced) == (exp["smtp_code"], exp["enhanced_code"])
        assert got.reply.lines[-1] == f"rule={exp['rule_id']} ref={got.ref}"
        assert verdict.outcome.value == exp["action"]
    assert verdict.rule_id == exp["rule_id"], hits
    assert [r for r, mode in hits if mode == "monitor"] == exp.get("monitored", []), hits
    if "classification" in exp:
        assert got.view.classification == exp["classification"]
    if "subject" in exp:
        assert got.relay_bytes is not None
        assert MessageView(got.relay_bytes).subject == exp["subject"]
    if exp.get("unchanged"):
        assert got.relay_bytes == raw
        assert verdict.hits == ()


def test_hebahan_tag_changes_only_the_subject_line(policy: PolicyState) -> None:
    raw, got = run(policy, "hebahan-tagged")
    assert got.relay_bytes == raw.replace(b"Subject: Mesyuarat",
                                          b"Subject: [HEBAHAN JANM] Mesyuarat")
    assert verdict_event(got) == "tag"


def verdict_event(got: Inspection) -> str | None:
    return got.verdict.event


def test_monitor_hits_are_logged_as_monitor(policy: PolicyState) -> None:
    _, got = run(policy, "dropbox-link-monitored")
    assert verdict_event(got) == "monitor"


def test_kelantan_example_profile(tmp_path: Path) -> None:
    """rules/examples/kelantan.yaml, once copied into a rules dir, limits whole messages."""
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))
    shutil.copy(REPO / "rules" / "examples" / "kelantan.yaml", rules / "15-kelantan.yaml")
    config = load_config(REPO / "config" / "gateway.yaml")
    state = load_policy_for(config.model_copy(update={
        "rules_dir": rules, "agency_domains": ("kelantan.gov.my",), "antivirus": None}))
    sender = "pegawai@kelantan.gov.my"

    def verdict(size: int, direction: str, mail_from: str, rcpt: str) -> str | None:
        raw = mime(sender=mail_from, to=rcpt, subject="Laporan",
                   parts=(Part("a.bin", "application/octet-stream", blob(size)),))
        env = Envelope(direction=direction, listener="t", client_ip="127.0.0.1",  # type: ignore[arg-type]
                       helo="h", mail_from=mail_from, rcpt_to=(rcpt,))
        return inspect(state, raw, env).verdict.rule_id

    # 8 MiB decoded is about 10.8 MiB on the wire: over the whole-message limit.
    assert verdict(8 * MiB, "outbound", sender, OTHER) == "kelantan-saiz-emel-10mb"
    assert verdict(8 * MiB, "inbound", OTHER, sender) == "kelantan-saiz-emel-10mb"
    assert verdict(6 * MiB, "outbound", sender, OTHER) is None
    # Other domains are not bound by Kelantan's guideline.
    assert verdict(8 * MiB, "inbound", OTHER, "x@jpn.gov.my") is None


@pytest.mark.parametrize(("direction", "mail_from", "rcpt", "outer"), [
    ("outbound", JANM, OTHER, True), ("inbound", OTHER, JANM, True),
    ("outbound", JANM, OTHER, False), ("inbound", OTHER, JANM, False)])
def test_message_partial_is_refused(policy: PolicyState, direction: str, mail_from: str,
                                    rcpt: str, outer: bool) -> None:
    """struktur-mesej-separa: a fragment of a message (RFC 2046 5.2.2), the whole message
    or one part of it, is refused both ways: no filter ever sees the fragments whole."""
    fragment = (b'Content-Type: message/partial; id="p1@anm.gov.my"; number=1; total=2\r\n'
                b"\r\nSubject: Laporan\r\n\r\nBahagian pertama.\r\n")
    if outer:
        raw = (f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: Laporan (1/2)\r\n"
               "MIME-Version: 1.0\r\n").encode() + fragment
    else:
        raw = mime(sender=mail_from, to=rcpt, subject="Laporan",
                   parts=(Part("nota.txt", "text/plain", b"Nota.\n"),))
        raw = raw.replace(b"--=_golden_boundary_--", b"--=_golden_boundary_\r\n" + fragment
                          + b"--=_golden_boundary_--")
    env = Envelope(direction=direction, listener=direction,  # type: ignore[arg-type]
                   client_ip="127.0.0.1", helo="client.example", mail_from=mail_from,
                   rcpt_to=(rcpt,))
    got = inspect(policy, raw, env)
    assert "message_partial" in got.view.structure_defects
    assert got.verdict.rule_id == "struktur-mesej-separa", got.verdict.hits
    assert got.reply is not None and got.relay_bytes is None
    assert (got.reply.code, got.reply.enhanced) == (554, "5.6.0")
    assert got.reply.lines[-1] == f"rule=struktur-mesej-separa ref={got.ref}"


SCAN = REPO / "tests" / "corpus" / "cases" / "pdf" / "Imbasan.pdf"  # an image-only page


@pytest.mark.parametrize(("subject", "name", "data", "decided"), [
    ("SULIT: Minit", "imbasan.pdf", SCAN.read_bytes(), "klasifikasi-lampiran-tidak-disulitkan"),
    ("[RAHSIA] Pelan", "pelan.pdf", SCAN.read_bytes(), "klasifikasi-rahsia"),
    ("Minit mesyuarat", "imbasan.pdf", SCAN.read_bytes(), None),
    ("SULIT: Minit", "minit.txt", b"Minit mesyuarat.\n", "klasifikasi-lampiran-tidak-disulitkan"),
])
def test_unreadable_attachment_of_marked_mail_is_monitored(
        policy: PolicyState, subject: str, name: str, data: bytes, decided: str | None) -> None:
    """klasifikasi-lampiran-tidak-boleh-dibaca: a scan or picture in marked mail is logged
    (monitor) before the rules that decide; unmarked mail and readable files are not."""
    ctype = "application/pdf" if name.endswith(".pdf") else "text/plain"
    raw = mime(sender=JANM, to=OTHER, subject=subject, parts=(Part(name, ctype, data),))
    env = Envelope(direction="outbound", listener="outbound", client_ip="127.0.0.1",
                   helo="client.example", mail_from=JANM, rcpt_to=(OTHER,))
    got = inspect(policy, raw, env)
    monitored = [h.rule_id for h in got.verdict.hits if h.mode == "monitor"]
    marked = subject != "Minit mesyuarat"
    scan = name.endswith(".pdf")
    assert monitored == (["klasifikasi-lampiran-tidak-boleh-dibaca"] if marked and scan
                         else []), got.verdict.hits
    assert got.verdict.rule_id == decided, got.verdict.hits
    if monitored:
        hit = got.verdict.hits[0]
        assert hit.evidence["unreadable"] == [{"index": 0, "name": name, "at": ["page1"]}]
