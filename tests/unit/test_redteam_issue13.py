"""Red-team reproducers for issue 13 (ClamAV, Office macros, DKIM, DMARC, DKIM signing).

Each `xfail(strict=True)` test shows a defect found by review: it asserts what the
gateway SHOULD do and fails today. When the defect is fixed the test passes, strict
xfail turns that into a failure, and the marker is to be removed. The tests without
a marker are the preconditions the reproducers rest on (olevba reads the crafted
file; dkimpy verifies the untampered signature), so an xfail can never pass for a
wrong reason.

Real parts as elsewhere: the SHIPPED config and rules through `pipeline.inspect`,
real DNS (tests/support/dns_server.py) with keys made here, dkimpy, oletools, and a
real clamd with a signature database of our own (tests/support/clamd.py).
"""

from __future__ import annotations

import base64
import email.policy
import io
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from oletools import olevba

from gateway.config import AntivirusSettings, DkimSignSettings, load_config
from gateway.envelope import Envelope
from gateway.message.view import MessageView
from gateway.pipeline import Inspection, inspect
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence
from gateway.policy.verdict import Outcome
from gateway.policy_state import PolicyState, load_policy_for
from gateway.transforms.dkim_sign import Signer
from tests.support.clamd import Clamd
from tests.support.dkim_keys import make_key
from tests.support.dkim_signer import SigningKey
from tests.support.dns_server import DnsServer

REPO = Path(__file__).resolve().parents[2]
MACROS = REPO / "tests" / "corpus" / "cases" / "macros"

# -- DKIM / DMARC: the shipped hebahan rules on real DNS --------------------------------

JANM = SigningKey.rsa("hebahan2025", "anm.gov.my")
# The attacker's own domain: a look-alike with its own DMARC record and DKIM key, all
# of which anyone can publish for a domain they register.
ATTACKER = SigningKey.rsa("s1", "anm-gov.example")
ZONE: dict[str, list[tuple[str, object]]] = {
    "anm.gov.my": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
    "_dmarc.anm.gov.my": [("TXT", "v=DMARC1; p=reject")],
    JANM.record_name: [("TXT", JANM.record)],
    "anm-gov.example": [("TXT", "v=spf1 -all")],
    "_dmarc.anm-gov.example": [("TXT", "v=DMARC1; p=none")],
    ATTACKER.record_name: [("TXT", ATTACKER.record)],
}
ATTACKER_IP = "127.0.0.9"  # not in anm.gov.my's SPF


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer(ZONE) as server:
        yield server


@pytest.fixture(scope="module")
def hebahan_policy(dns: DnsServer) -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    return load_policy_for(config.model_copy(update={
        "rules_dir": REPO / config.rules_dir, "hebahan_senders": ("hebahan@anm.gov.my",),
        "antivirus": None, "hebahan_relays": (),
        "dns": config.dns.model_copy(update={"port": dns.port, "timeout": 0.5})}))


def inbound(policy: PolicyState, raw: bytes, *, mail_from: str = "hebahan@anm.gov.my",
            client_ip: str = ATTACKER_IP) -> Inspection:
    env = Envelope(direction="inbound", listener="t", client_ip=client_ip,
                   helo="mx.attacker.example", mail_from=mail_from,
                   rcpt_to=("semua@anm.gov.my",))
    return inspect(policy, raw, env)


def announcement(from_field: str, subject: str) -> bytes:
    return (f"From: {from_field}\r\nTo: semua@anm.gov.my\r\nSubject: {subject}\r\n"
            "Date: Mon, 03 Mar 2025 09:00:00 +0800\r\nMessage-ID: <rt-13@anm.gov.my>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Tuan/Puan,\r\n\r\nSila kemas kini kata laluan anda.\r\n").encode()


def test_precondition_attacker_signature_verifies(hebahan_policy: PolicyState) -> None:
    raw = ATTACKER.sign(announcement('"Hebahan JANM" <hebahan@anm-gov.example>', "Notis"))
    got = inbound(hebahan_policy, raw)
    auth = got.verdict.auth
    assert auth is not None and auth["dkim"] == [
        {"result": "pass", "domain": "anm-gov.example", "selector": "s1"}], auth


# Fixed: rules/40-hebahan.yaml asks from_in: @hebahan_senders (issue 13 review).
def test_forged_announcement_with_attackers_own_dkim_is_refused(
        hebahan_policy: PolicyState) -> None:
    raw = ATTACKER.sign(announcement('"Hebahan JANM" <hebahan@anm-gov.example>',
                                     "[HEBAHAN JANM] Kemas kini kata laluan"))
    got = inbound(hebahan_policy, raw)
    hits = [h.rule_id for h in got.verdict.hits]
    assert got.reply is not None and got.reply.code == 550, (hits, got.verdict.auth)


# Fixed: rules/40-hebahan.yaml asks from_in: @hebahan_senders (issue 13 review).
def test_gateway_never_tags_mail_whose_from_is_not_a_registered_sender(
        hebahan_policy: PolicyState) -> None:
    raw = ATTACKER.sign(announcement('"Hebahan JANM" <hebahan@anm-gov.example>',
                                     "Kemas kini kata laluan"))
    got = inbound(hebahan_policy, raw)
    relayed = got.relay_bytes
    assert relayed is None or "[HEBAHAN JANM]" not in MessageView(relayed).subject


def test_precondition_genuine_forwarded_announcement_passes(
        hebahan_policy: PolicyState) -> None:
    raw = JANM.sign(announcement("Hebahan JANM <hebahan@anm.gov.my>", "Mesyuarat 10 Mac"))
    got = inbound(hebahan_policy, raw, client_ip="127.0.0.2")
    assert got.reply is None and got.relay_bytes is not None, got.verdict.hits
    assert MessageView(got.relay_bytes).subject == "[HEBAHAN JANM] Mesyuarat 10 Mac"


def test_replayed_announcement_with_a_prepended_subject_is_refused(
        hebahan_policy: PolicyState) -> None:
    genuine = JANM.sign(announcement("Hebahan JANM <hebahan@anm.gov.my>",
                                     "Mesyuarat 10 Mac"))
    replay = b"Subject: [HEBAHAN JANM] Sahkan akaun anda: http://phish.example/\r\n" + genuine
    got = inbound(hebahan_policy, replay, client_ip="127.0.0.2")
    assert got.reply is not None, ([h.rule_id for h in got.verdict.hits],
                                   got.relay_bytes[:200] if got.relay_bytes else None)


# -- DKIM signing: no over-signing -----------------------------------------------------

OUTBOUND_MSG = (b"From: Ali <ali@anm.gov.my>\r\nTo: rakan@example.org\r\n"
                b"Subject: Jemputan mesyuarat\r\nDate: Mon, 03 Mar 2025 09:00:00 +0800\r\n"
                b"Message-ID: <sign-13@anm.gov.my>\r\n\r\nSalam.\r\n")


def _signed(tmp_path: Path) -> tuple[bytes, bytes]:
    key = make_key(tmp_path / "gw.key")
    signer = Signer.load(DkimSignSettings(domain="anm.gov.my", selector="gw",
                                          key_file=key.path))
    name, value = signer.sign(OUTBOUND_MSG)
    return f"{name}: {value}\r\n".encode() + OUTBOUND_MSG, "".join(key.record).encode()


def _verifies(message: bytes, record: bytes) -> bool:
    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return record if name == b"gw._domainkey.anm.gov.my." else None
    return bool(dkim.DKIM(message).verify(dnsfunc=lookup))


def test_precondition_gateway_signature_verifies(tmp_path: Path) -> None:
    signed, record = _signed(tmp_path)
    assert _verifies(signed, record)


def test_a_subject_added_above_the_signed_one_breaks_our_signature(tmp_path: Path) -> None:
    signed, record = _signed(tmp_path)
    field, _, rest = signed.partition(b"\r\n")
    assert not _verifies(field + b"\r\nSubject: Tukar akaun bank segera\r\n" + rest, record)


def test_a_from_added_above_the_signed_one_breaks_our_signature(tmp_path: Path) -> None:
    # Sound today, though h= names From once: dkimpy's verifier itself refuses a second
    # From. Kept as the contrast to the Subject case above.
    signed, record = _signed(tmp_path)
    field, _, rest = signed.partition(b"\r\n")
    assert not _verifies(field + b"\r\nFrom: CEO <ceo@anm.gov.my>\r\n" + rest, record)


# -- Office macros ----------------------------------------------------------------------

CHECK = REGISTRY["office_macros"]
INBOUND = Envelope(direction="inbound", listener="t", client_ip="192.0.2.1", helo="x",
                   mail_from="luar@example.org", rcpt_to=("pegawai@anm.gov.my",))


def mail(name: str, data: bytes, ctype: str = "application/octet-stream") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "luar@example.org", "pegawai@anm.gov.my", "Dokumen"
    m.set_content("Lampiran.")
    main, sub = ctype.split("/")
    m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m.as_bytes(policy=email.policy.SMTP)


def macros(levels: object, raw: bytes) -> Evidence | None:
    return CHECK.evaluate(CHECK.validate(levels), Context(MessageView(raw), INBOUND, ()))


def word2003_xml() -> bytes:
    """A Word 2003 XML document (WordprocessingML) carrying a VBA project the way Word
    saves one: `w:binData w:name="editdata.mso"`, base64 of an ActiveMime blob whose
    zlib stream is the OLE container (olevba's `open_word2003xml`, `mso_file_extract`:
    header 'ActiveMime', data offset = uint16 at 0x1E + 46). The OLE is the corpus'
    Makro-AutoOpen.doc (AutoOpen + Shell + CreateObject). Word opens .doc/.xml files in
    this format and runs the project."""
    ole_data = (MACROS / "Makro-AutoOpen.doc").read_bytes()
    header = bytearray(b"ActiveMime".ljust(0x32, b"\0"))
    struct.pack_into("<H", header, 0x1E, 0x32 - 46)
    mso = bytes(header) + zlib.compress(ole_data)
    b64 = base64.encodebytes(mso).decode("ascii")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
            '<?mso-application progid="Word.Document"?>\r\n'
            '<w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml" '
            'w:macrosPresent="yes">'
            f'<w:binData w:name="editdata.mso">{b64}</w:binData>'
            '<w:body><w:p><w:r><w:t>Laporan</w:t></w:r></w:p></w:body>'
            '</w:wordDocument>\r\n').encode("ascii")


def test_precondition_olevba_reads_the_word2003_xml_macros() -> None:
    parser = olevba.VBA_Parser("laporan.doc", data=word2003_xml())
    try:
        assert parser.detect_macros()
        kinds = {kind for kind, _, _ in parser.analyze_macros()}
        assert {"AutoExec", "Suspicious"} <= kinds
    finally:
        parser.close()


def test_word2003_xml_with_autoexec_macro_is_seen() -> None:
    assert macros(["autoexec", "suspicious"], mail("laporan.doc", word2003_xml())) is not None


def xlsm_with_xlm_macrosheet() -> bytes:
    """An OOXML workbook with an Excel 4.0 macro sheet (xl/macrosheets/sheet1.xml) and
    the defined name _xlnm.Auto_Open pointing at it, the layout Excel writes when a
    macro sheet is saved as .xlsm. No vbaProject.bin."""
    decl = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    pkg = "http://schemas.openxmlformats.org/package/2006"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    sml = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    xlmacro = "http://schemas.microsoft.com/office/2006/relationships/xlMacrosheet"
    ct = (f'{decl}<Types xmlns="{pkg}/content-types">'
          '<Default Extension="rels" '
          'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
          '<Default Extension="xml" ContentType="application/xml"/>'
          '<Override PartName="/xl/workbook.xml" '
          'ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/>'
          '<Override PartName="/xl/macrosheets/sheet1.xml" '
          'ContentType="application/vnd.ms-excel.macrosheet+xml"/></Types>')
    rels = (f'{decl}<Relationships xmlns="{pkg}/relationships">'
            f'<Relationship Id="rId1" Type="{office}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>')
    workbook = (f'{decl}<workbook xmlns="{sml}" xmlns:r="{office}">'
                '<sheets><sheet name="Macro1" sheetId="1" r:id="rId1"/></sheets>'
                '<definedNames><definedName name="_xlnm.Auto_Open">Macro1!$A$1</definedName>'
                '</definedNames></workbook>')
    wb_rels = (f'{decl}<Relationships xmlns="{pkg}/relationships">'
               f'<Relationship Id="rId1" Type="{xlmacro}" Target="macrosheets/sheet1.xml"/>'
               '</Relationships>')
    sheet = (f'{decl}<xm:macrosheet xmlns="{sml}" '
             'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
             '<sheetData><row r="1"><c r="A1"><f>EXEC("cmd.exe /c calc.exe")</f></c></row>'
             '<row r="2"><c r="A2"><f>HALT()</f></c></row></sheetData></xm:macrosheet>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", ct)
        z.writestr("_rels/.rels", rels)
        z.writestr("xl/workbook.xml", workbook)
        z.writestr("xl/_rels/workbook.xml.rels", wb_rels)
        z.writestr("xl/macrosheets/sheet1.xml", sheet)
    return out.getvalue()


def test_xlm_macrosheet_in_xlsm_is_present() -> None:
    assert macros("present", mail("bajet.xlsm", xlsm_with_xlm_macrosheet())) is not None


# -- Antivirus with the shipped config ---------------------------------------------------


@pytest.fixture(scope="module")
def debian_clamd() -> Iterator[Clamd]:
    # Debian's clamd.conf: StreamMaxLength 25M, the value the shipped max_size follows.
    with Clamd(stream_max="25M") as daemon:
        yield daemon


# Fixed: gateway/antivirus/facts.py scans the message without its scanned attachments.
def test_a_message_the_size_rules_admit_is_not_tempfailed_forever(
        debian_clamd: Clamd) -> None:
    config = load_config(REPO / "config" / "gateway.yaml")
    assert config.antivirus is not None
    policy = load_policy_for(config.model_copy(update={
        "rules_dir": REPO / config.rules_dir,
        "antivirus": AntivirusSettings(clamd=debian_clamd.address,
                                       max_size=config.antivirus.max_size,
                                       oversize=config.antivirus.oversize)}))
    assert policy.max_message_size > 30 * 1024 * 1024
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * (20 * 1024 * 4) + b"\n%%EOF\n"  # 20 MB
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "rakan@example.org", "pegawai@anm.gov.my", "Laporan"
    m.set_content("Salam.")
    m.add_attachment(pdf, maintype="application", subtype="pdf", filename="laporan.pdf")
    raw = m.as_bytes(policy=email.policy.SMTP)
    assert len(raw) < policy.max_message_size
    env = Envelope(direction="inbound", listener="inbound", client_ip="192.0.2.1",
                   helo="mx.example.org", mail_from="rakan@example.org",
                   rcpt_to=("pegawai@anm.gov.my",))
    got = inspect(policy, raw, env)
    assert got.verdict.outcome is not Outcome.TEMPFAIL, (got.verdict.rule_id,
                                                         got.verdict.evidence)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
