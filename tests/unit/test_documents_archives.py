"""ZIP archives: names and contents of members, recursively, and the bombs that stop it."""

from __future__ import annotations

import email.policy
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message import documents, encryption
from gateway.message.documents import archives
from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits
from gateway.message.view import MessageView, NotInspectable

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_documents as make


def view_with(name: str, data: bytes, limits: InspectionLimits | None = None) -> MessageView:
    msg = EmailMessage()
    msg["From"] = "pegawai@anm.gov.my"
    msg["Subject"] = "Lampiran"
    msg.set_content("Salam.")
    msg.add_attachment(data, maintype="application", subtype="zip", filename=name)
    return MessageView(msg.as_bytes(policy=email.policy.SMTP), limits=limits)


def inspectable(view: MessageView) -> bool:
    """False when reading the documents met a bound (fail closed)."""
    try:
        view.markings  # noqa: B018
    except NotInspectable:
        return False
    return view.complete


def ats(view: MessageView) -> list[tuple[str, str]]:
    return sorted((f.marking, f.where["at"]) for f in view.markings.found)


def test_member_document_contents() -> None:
    data = make.zip_of({"inner.docx": make.docx(headers=("SULIT",)),
                        "nota.txt": b"Sila semak.\n"})
    view = view_with("a.zip", data)
    assert ats(view) == [("SULIT", "attachment:a.zip/inner.docx:header")]
    (where,) = view.markings.where("SULIT")
    assert where["member"] == "inner.docx" and where["field"] == "header"


def test_zip_in_zip_names_and_contents() -> None:
    inner = make.zip_of({"SULIT.docx": make.docx(footers=("RAHSIA",)),
                         "laporan.pdf": make.pdf(("TERHAD",))})
    view = view_with("luar.zip", make.zip_of({"dalam.zip": inner}))
    assert ats(view) == [
        ("RAHSIA", "attachment:luar.zip/dalam.zip/SULIT.docx:footer"),
        ("SULIT", "attachment:luar.zip/dalam.zip/SULIT.docx:filename"),
        ("TERHAD", "attachment:luar.zip/dalam.zip/laporan.pdf:page1"),
    ]
    assert view.classification == "RAHSIA"
    assert inspectable(view)


def test_text_member_by_body_rules_and_prose_member() -> None:
    data = make.zip_of({"a.txt": b"Perkara\n\n[ TERHAD ]\n",
                        "b.txt": b"Tempat terhad. Maklumat ini sulit.\nKERAHSIAAN\n",
                        "laporan_terhad_akses.csv": b"a,b\n"})
    assert ats(view_with("t.zip", data)) == [("TERHAD", "attachment:t.zip/a.txt:content")]


def test_encrypted_members_names_still_read(tmp_path: Path) -> None:
    if shutil.which("zip") is None:
        pytest.skip("needs the zip program")
    (tmp_path / "SULIT-minit.txt").write_text("RAHSIA\n")
    subprocess.run(["zip", "-q", "-P", "rahsia123", "e.zip", "SULIT-minit.txt"],
                   cwd=tmp_path, check=True, timeout=30)
    view = view_with("e.zip", (tmp_path / "e.zip").read_bytes())
    assert view.attachments[0].encrypted is True
    assert ats(view) == [("SULIT", "attachment:e.zip/SULIT-minit.txt:filename")]


# -- bombs -----------------------------------------------------------------------------

def test_overlapping_entries() -> None:
    data = make.zip_overlapping()
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as zf:
        assert len({i.header_offset for i in zf.infolist()}) == 1 < len(zf.infolist())
    with pytest.raises(documents.LimitExceeded, match="overlap"):
        archives.open_zip(data, DEFAULT_LIMITS)
    view = view_with("o.zip", data)
    assert view.attachments[0].encrypted is None
    assert not inspectable(view)


def test_compression_ratio() -> None:
    data = make.zip_ratio(8)
    assert len(data) < 20_000
    with pytest.raises(documents.LimitExceeded, match="expands"):
        archives.open_zip(data, DEFAULT_LIMITS)
    view = view_with("r.zip", data)
    assert view.attachments[0].encrypted is None
    assert not inspectable(view)
    # Below the floor a high ratio means nothing (a small file of spaces).
    archives.open_zip(make.zip_of({"ruang.txt": b" " * 100_000}), DEFAULT_LIMITS)


def test_nesting_depth() -> None:
    at_limit = make.zip_nested(DEFAULT_LIMITS.max_archive_depth + 1, b"SULIT\n", "n.txt")
    view = view_with("d.zip", at_limit)
    assert inspectable(view) and view.classification == "SULIT"
    too_deep = make.zip_nested(DEFAULT_LIMITS.max_archive_depth + 2, b"SULIT\n", "n.txt")
    view = view_with("d.zip", too_deep)
    assert view.attachments[0].encrypted is False  # the outer archive itself is fine
    assert not inspectable(view)


def test_too_many_entries() -> None:
    data = make.zip_of({f"f{i}.txt": b"x" for i in range(30)})
    small = replace(DEFAULT_LIMITS, max_archive_entries=20)
    with pytest.raises(documents.LimitExceeded, match="entries"):
        archives.open_zip(data, small)
    assert encryption.zip_encrypted(data, small) is None
    assert not inspectable(view_with("m.zip", data, small))
    assert inspectable(view_with("m.zip", data))


def test_total_declared_expansion() -> None:
    data = make.zip_of({f"f{i}.bin": bytes(range(256)) * 4096 for i in range(3)})  # 3 MiB
    small = replace(DEFAULT_LIMITS, max_expansion_bytes=2 * 1024 * 1024)
    with pytest.raises(documents.LimitExceeded, match="declares"):
        archives.open_zip(data, small)
    assert not inspectable(view_with("x.zip", data, small))


def test_members_read_in_chunks_under_the_budget() -> None:
    data = make.zip_of({"a.txt": b"SULIT\n" + b"isi\n" * 300_000})
    bounds = documents.Bounds()
    bounds.budget.limit = 200_000
    with pytest.raises(documents.LimitExceeded):
        list(documents.pieces(data, bounds))


def test_broken_archive_is_skipped_not_fatal() -> None:
    view = view_with("b.zip", b"PK\x03\x04" + b"\x00" * 40)
    assert view.attachments[0].encrypted is None
    assert inspectable(view) and view.classification is None


def test_corrupt_member_skipped_names_still_read() -> None:
    data = bytearray(make.zip_of({"SULIT.txt": b"RAHSIA\n" * 1000}))
    start = data.index(b"SULIT.txt") + len(b"SULIT.txt")
    data[start + 2:start + 10] = b"\xff" * 8  # break the deflate stream
    view = view_with("c.zip", bytes(data))
    assert ats(view) == [("SULIT", "attachment:c.zip/SULIT.txt:filename")]
