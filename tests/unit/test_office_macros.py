"""`office_macros` and documents.macros on messages built from the corpus' macro files
(tests/corpus/make_macros.py: real Word/Excel files, a VBA project made by Excel)."""

from __future__ import annotations

import email.policy
import io
import sys
import tarfile
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.envelope import Envelope
from gateway.message.documents import Bounds, macros
from gateway.message.view import MessageView, NotInspectable
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Context, Evidence

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
