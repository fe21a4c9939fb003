"""tar archives and gzip, bzip2, xz and lzma files (documents/compressed.py), and the 7z,
RAR and other archives whose files are reported unreadable (documents/walk.py).

The archives are made by the real programs (`tar`, `gzip`, `bzip2`, `xz`, `7zz` from
the Debian package 7zip) in a temporary folder; a test whose program is missing is
skipped. The documents in them are the corpus builders' (tests/corpus/make_documents.py).
Committed cases made the same way: tests/corpus/cases/archives/ (make_archives.py).
"""

from __future__ import annotations

import email.policy
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message import documents
from gateway.message.documents import Bounds, LimitExceeded, compressed, walk
from gateway.message.limits import DEFAULT_LIMITS, InspectionLimits
from gateway.message.view import MessageView, NotInspectable
from gateway.pipeline import inspect
from gateway.policy_state import PolicyState, load_policy_for

sys.path.insert(0, str(Path(__file__).parents[1] / "corpus"))
import make_documents as make

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
DOCX = make.docx(("Minit mesyuarat.",), footers=("SULIT",))
PDF = make.pdf(("Laporan suku tahun.", "TERHAD"))
TXT = b"RAHSIA\nPelan operasi.\n"
PROSE = b"Maklumat ini sulit dan hanya untuk penerima.\nTempat terhad.\n"


def needs(*programs: str) -> pytest.MarkDecorator:
    missing = [p for p in programs if shutil.which(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


def run(cwd: Path, *argv: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(argv, cwd=cwd, input=stdin, check=True, capture_output=True,
                          timeout=300).stdout


def files(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in members.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def tar(tmp: Path, flags: str, members: dict[str, bytes], *extra: str) -> bytes:
    """An archive by GNU tar (`flags`: c, cz, cj, cJ) of these files."""
    src = files(tmp / "src", members)
    out = tmp / "out.bin"
    run(src, "tar", *extra, f"-{flags}f", str(out), *sorted(members))
    data = out.read_bytes()
    shutil.rmtree(src)
    out.unlink()
    return data


def message(name: str, data: bytes, subject: str = "Dokumen") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Pegawai <pegawai@anm.gov.my>"
    msg["To"] = "penerima@example.org"
    msg["Subject"] = subject
    msg.set_content("Salam, dokumen dilampirkan.\n")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


def view_of(name: str, data: bytes, limits: InspectionLimits | None = None) -> MessageView:
    return MessageView(message(name, data), limits=limits)


def inspectable(view: MessageView) -> bool:
    try:
        _ = (view.markings, [a.unreadable for a in view.attachments])
    except (NotInspectable, LimitExceeded):
        return False
    return view.complete


def ats(view: MessageView) -> list[tuple[str, str]]:
    return sorted((f.marking, f.where["at"]) for f in view.markings.found)


def pieces(data: bytes, limits: InspectionLimits = DEFAULT_LIMITS) -> list[tuple[str, str, str]]:
    return [(p.rule, p.path, p.text) for p in documents.pieces(data, Bounds(limits))]


@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd: the antivirus rules are tests/unit/test_antivirus.py's.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


# -- what a file is ------------------------------------------------------------------------

@needs("tar", "gzip", "bzip2", "xz")
def test_kinds_by_content(tmp_path: Path) -> None:
    plain = tar(tmp_path, "c", {"a.txt": TXT})
    assert walk.kind_of(plain) == "tar"
    assert walk.kind_of(tar(tmp_path, "c", {"a.txt": TXT}, "--format=v7")) == "tar"
    for flags in ("cz", "cj", "cJ"):
        assert walk.kind_of(tar(tmp_path, flags, {"a.txt": TXT})) == "compressed"
    for program, fmt in (("gzip", "gzip"), ("bzip2", "bzip2"), ("xz", "xz"),
                         ("lzma", "lzma")):
        if shutil.which(program):
            packed = run(tmp_path, program, "-c", stdin=TXT)
            assert compressed.compression(packed) == fmt
            assert walk.kind_of(packed) == "compressed"
    # Text that merely starts like one is text.
    assert compressed.compression(b"BZh that is not bzip2\n" * 3) is None
    assert walk.kind(b"x" * 257 + b"ustar  \x00" + b"x" * 300) == "other"


@needs("tar", "gzip")
def test_encryption_state_is_plain(tmp_path: Path) -> None:
    view = view_of("a.tgz", tar(tmp_path, "cz", {"a.txt": TXT}))
    assert [(a.encrypted, a.category) for a in view.attachments] == [(False, "archive")]


# -- marked documents inside -------------------------------------------------------------

@needs("tar", "gzip", "bzip2", "xz")
@pytest.mark.parametrize(("flags", "name"), [
    ("c", "arkib.tar"), ("cz", "arkib.tgz"), ("cz", "arkib.tar.gz"), ("cj", "arkib.tar.bz2"),
    ("cJ", "arkib.tar.xz")])
def test_marked_documents_in_a_tar(tmp_path: Path, flags: str, name: str) -> None:
    data = tar(tmp_path, flags, {"Minit.docx": DOCX, "Laporan.pdf": PDF, "dalam/pelan.txt": TXT,
                                 "nota.txt": PROSE})
    view = view_of(name, data)
    assert ats(view) == [("RAHSIA", f"attachment:{name}/dalam/pelan.txt:content"),
                         ("SULIT", f"attachment:{name}/Minit.docx:footer"),
                         ("TERHAD", f"attachment:{name}/Laporan.pdf:page1")]
    assert view.classification == "RAHSIA"
    assert inspectable(view)
    assert view.attachments[0].unreadable == ()


@needs("tar", "gzip")
def test_member_names_are_read_like_zip_entry_names(tmp_path: Path) -> None:
    data = tar(tmp_path, "cz", {"SULIT-minit.txt": b"Minit.\n", "RAHSIA/pelan.txt": b"Pelan.\n"})
    view = view_of("a.tgz", data)
    assert ("SULIT", "attachment:a.tgz/SULIT-minit.txt:filename") in ats(view)
    assert ("RAHSIA", "attachment:a.tgz/RAHSIA/pelan.txt:filename") in ats(view)


@needs("gzip", "bzip2", "xz")
@pytest.mark.parametrize(("program", "suffix"), [("gzip", ".gz"), ("bzip2", ".bz2"),
                                                ("xz", ".xz"), ("lzma", ".lzma")])
def test_single_compressed_files(tmp_path: Path, program: str, suffix: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"needs {program}")
    for name, data, marking, where in (("pelan.txt", TXT, "RAHSIA", "content"),
                                       ("Laporan.pdf", PDF, "TERHAD", "page1"),
                                       ("Minit.docx", DOCX, "SULIT", "footer")):
        (tmp_path / name).write_bytes(data)
        run(tmp_path, program, "-f", name)  # keeps the name (gzip: FNAME)
        packed = (tmp_path / (name + suffix)).read_bytes()
        # gzip keeps the original name: the file is found under it, as in 7-Zip's view.
        inner = f"{name + suffix}/{name}" if program == "gzip" else name + suffix
        assert ats(view_of(name + suffix, packed)) == [(marking, f"attachment:{inner}:{where}")]


@needs("gzip")
def test_gzip_without_a_name_and_the_name_it_keeps(tmp_path: Path) -> None:
    nameless = run(tmp_path, "gzip", "-n", "-c", stdin=TXT)
    assert compressed.gzip_name(nameless) == ""
    assert ats(view_of("pelan.txt.gz", nameless)) == [
        ("RAHSIA", "attachment:pelan.txt.gz:content")]
    (tmp_path / "SULIT-nota.txt").write_bytes(b"Nota.\n")
    run(tmp_path, "gzip", "SULIT-nota.txt")
    named = (tmp_path / "SULIT-nota.txt.gz").read_bytes()
    assert compressed.gzip_name(named) == "SULIT-nota.txt"
    assert ats(view_of("nota.gz", named)) == [
        ("SULIT", "attachment:nota.gz/SULIT-nota.txt:filename")]


@needs("gzip")
def test_gzip_members_one_after_another_are_all_read(tmp_path: Path) -> None:
    # `cat a.gz b.gz` is one file to gunzip: both halves are its content.
    first = run(tmp_path, "gzip", "-n", "-c", stdin=b"Pelan.\n")
    second = run(tmp_path, "gzip", "-n", "-c", stdin=b"SULIT\n")
    assert ats(view_of("nota.txt.gz", first + b"\0" * 8 + second)) == [
        ("SULIT", "attachment:nota.txt.gz:content")]


@needs("tar", "gzip", "7zz")
def test_zip_in_tar_and_tar_in_zip(tmp_path: Path) -> None:
    inner_zip = make.zip_of({"Minit.docx": DOCX})
    view = view_of("luar.tgz", tar(tmp_path, "cz", {"dalam.zip": inner_zip}))
    assert ats(view) == [("SULIT", "attachment:luar.tgz/dalam.zip/Minit.docx:footer")]
    inner_tgz = tar(tmp_path, "cz", {"pelan.txt": TXT})
    files(tmp_path / "z", {"dalam.tgz": inner_tgz})
    run(tmp_path / "z", "7zz", "a", "-tzip", "-bso0", "-bsp0", "luar.zip", "dalam.tgz")
    view = view_of("luar.zip", (tmp_path / "z" / "luar.zip").read_bytes())
    assert ats(view) == [("RAHSIA", "attachment:luar.zip/dalam.tgz/pelan.txt:content")]
    assert inspectable(view)


@needs("tar", "gzip")
def test_zip_appended_to_a_tar_gz_is_read(tmp_path: Path) -> None:
    # Named .zip, Windows opens it by the directory at its end: what it shows is read.
    data = tar(tmp_path, "cz", {"nota.txt": PROSE}) + make.zip_of({"Minit.docx": DOCX})
    assert ats(view_of("arkib.zip", data)) == [
        ("SULIT", "attachment:arkib.zip/Minit.docx:footer")]
    plain = tar(tmp_path, "c", {"nota.txt": PROSE}) + make.zip_of({"Minit.docx": DOCX})
    assert ats(view_of("arkib.zip", plain)) == [
        ("SULIT", "attachment:arkib.zip/Minit.docx:footer")]
    # A docx that is a plain tar's last member is read once, as that member.
    last = tar(tmp_path, "c", {"nota.txt": PROSE, "z.docx": DOCX})
    assert ats(view_of("arkib.tar", last)) == [("SULIT", "attachment:arkib.tar/z.docx:footer")]


# -- negatives ---------------------------------------------------------------------------

@needs("tar", "gzip", "bzip2", "xz")
@pytest.mark.parametrize("flags", ["c", "cz", "cj", "cJ"])
def test_prose_in_a_tar_is_not_a_marking(tmp_path: Path, flags: str) -> None:
    data = tar(tmp_path, flags, {"nota.txt": PROSE, "laporan_terhad_akses.txt": b"a,b\n",
                                 "Minit.docx": make.docx(("Kata laluan anda adalah rahsia.",))})
    view = view_of("a.tar", data)
    assert view.classification is None
    assert inspectable(view)
    assert view.attachments[0].unreadable == ()


@needs("tar", "gzip")
def test_programs_and_unknown_members_are_not_read(tmp_path: Path) -> None:
    data = tar(tmp_path, "cz", {"alat.bin": b"\x7fELF" + os.urandom(5000)})
    assert pieces(data) == [("filename", "alat.bin", "alat.bin")]


# -- bombs and bounds --------------------------------------------------------------------

@pytest.fixture(scope="module")
def zeros_gz(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("gzip") is None:
        pytest.skip("needs gzip")
    return run(tmp_path_factory.mktemp("bomb"), "gzip", "-9", "-n", "-c",
               stdin=bytes(100 * MiB))


def test_gzip_bomb_is_not_inspectable(zeros_gz: bytes) -> None:
    assert len(zeros_gz) < 200_000  # 100 MB of zeros
    with pytest.raises(LimitExceeded, match="expands more than 200 times"):
        pieces(zeros_gz)
    view = view_of("kosong.gz", zeros_gz)
    assert not inspectable(view)
    assert view.attachments[0].encrypted is False


def test_bomb_is_stopped_early(zeros_gz: bytes) -> None:
    bounds = Bounds()
    with pytest.raises(LimitExceeded):
        list(documents.pieces(zeros_gz, bounds))
    # Found within a few MB of output, never the whole 100 MB.
    assert bounds.budget.spent < 8 * MiB


@needs("bzip2", "xz", "tar", "gzip")
@pytest.mark.parametrize("argv", [("bzip2", "-c"), ("xz", "-c")])
def test_bzip2_and_xz_bombs(tmp_path: Path, argv: tuple[str, ...]) -> None:
    data = run(tmp_path, *argv, stdin=bytes(20 * MiB))
    with pytest.raises(LimitExceeded, match="expands"):
        pieces(data)


@needs("tar", "gzip")
def test_tar_bomb_inside_a_tgz(tmp_path: Path) -> None:
    data = tar(tmp_path, "cz", {"kosong.bin": bytes(20 * MiB), "pelan.txt": TXT})
    with pytest.raises(LimitExceeded, match="expands"):
        pieces(data)


def test_below_the_floor_a_high_ratio_means_nothing() -> None:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tf:
        info = tarfile.TarInfo("ruang.txt")
        info.size = 500_000
        tf.addfile(info, io.BytesIO(b" " * 499_999 + b"\n"))
    assert pieces(packed.getvalue())[0] == ("filename", "ruang.txt", "ruang.txt")


@needs("tar", "gzip")
def test_tar_with_too_many_members(tmp_path: Path) -> None:
    src = tmp_path / "banyak"
    src.mkdir()
    run(src, "xargs", "touch", stdin="\n".join(f"f{i}" for i in range(20000)).encode())
    run(src, "tar", "-cf", str(tmp_path / "banyak.tar"), ".")
    data = (tmp_path / "banyak.tar").read_bytes()
    with pytest.raises(LimitExceeded, match="more than 10000 entries"):
        pieces(data)
    assert not inspectable(view_of("banyak.tar", data))
    packed = run(tmp_path, "gzip", "-c", str(tmp_path / "banyak.tar"))
    with pytest.raises(LimitExceeded, match="more than 10000 entries"):
        pieces(packed)
    # The limit is the configured one.
    few = replace(DEFAULT_LIMITS, max_archive_entries=3)
    small = tar(tmp_path, "c", {f"f{i}.txt": b"x" for i in range(4)})
    with pytest.raises(LimitExceeded, match="entries"):
        pieces(small, few)


def test_every_byte_is_charged() -> None:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:xz") as tf:
        body = b"SULIT\n" + os.urandom(300_000).hex().encode()
        info = tarfile.TarInfo("a.txt")
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    bounds = Bounds()
    bounds.budget.limit = 200_000
    with pytest.raises(LimitExceeded, match="expand beyond"):
        list(documents.pieces(packed.getvalue(), bounds))


def test_time_is_checked() -> None:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"Isi\n"))
    with pytest.raises(LimitExceeded, match="too long"):
        list(documents.pieces(packed.getvalue(), Bounds(seconds=-1)))


def test_nesting_counts_like_zip() -> None:
    def gz(data: bytes) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as tf:
            info = tarfile.TarInfo("n.tgz")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        return out.getvalue()

    inner = b"SULIT\n"
    levels = inner
    for _ in range(DEFAULT_LIMITS.max_archive_depth + 1):
        levels = gz(levels)
    view = view_of("d.tgz", levels)
    assert inspectable(view) and view.classification == "SULIT"
    assert not inspectable(view_of("d.tgz", gz(levels)))


def test_xz_decoder_memory_is_bounded() -> None:
    import lzma
    data = bytearray(lzma.compress(TXT, format=lzma.FORMAT_ALONE))
    data[1:5] = (3 << 29).to_bytes(4, "little")  # a 1.5 GiB dictionary
    assert compressed.compression(bytes(data)) == "lzma"
    with pytest.raises(LimitExceeded, match="to decode"):
        pieces(bytes(data))


# -- what is never followed --------------------------------------------------------------

@needs("tar")
def test_links_are_not_followed(tmp_path: Path) -> None:
    src = files(tmp_path / "src", {"nota.txt": PROSE})
    (src / "SULIT-pautan.txt").symlink_to("/etc/hostname")
    (src / "dalam.txt").symlink_to("nota.txt")
    os.link(src / "nota.txt", src / "salinan.txt")
    os.mkfifo(src / "paip")
    run(src, "tar", "-cf", str(tmp_path / "a.tar"), "nota.txt", "SULIT-pautan.txt",
        "dalam.txt", "salinan.txt", "paip")
    got = pieces((tmp_path / "a.tar").read_bytes())
    assert [(rule, path) for rule, path, _text in got] == [
        ("filename", "nota.txt"), ("lines", "nota.txt"), ("filename", "SULIT-pautan.txt"),
        ("filename", "dalam.txt"), ("filename", "salinan.txt"), ("filename", "paip")]
    view = view_of("a.tar", (tmp_path / "a.tar").read_bytes())
    assert ats(view) == [("SULIT", "attachment:a.tar/SULIT-pautan.txt:filename")]


def test_unknown_member_type_is_read_as_a_file() -> None:
    # GNU tar extracts a type it does not know as a regular file: so is it read.
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("pelan.txt")
        info.size = len(TXT)
        info.type = b"Z"
        tf.addfile(info, io.BytesIO(TXT))
    assert ("lines", "pelan.txt", TXT.decode()) in pieces(out.getvalue())


# -- damage ------------------------------------------------------------------------------

@needs("tar", "gzip")
def test_truncated_tgz_keeps_what_was_read(tmp_path: Path) -> None:
    program = b"\x7fELF\x02\x01\x01" + os.urandom(200_000)  # not a document: not read
    data = tar(tmp_path, "cz", {"a-pelan.txt": TXT, "b-rawak.bin": program,
                                "c-SULIT.txt": b"Isi.\n"})
    cut = data[:len(data) // 2]
    view = view_of("pelan.tgz", cut)
    assert ats(view) == [("RAHSIA", "attachment:pelan.tgz/a-pelan.txt:content")]
    assert inspectable(view)  # quietly, as a damaged ZIP (documents/compressed.py)
    assert [p[1] for p in pieces(cut)] == ["a-pelan.txt", "a-pelan.txt", "b-rawak.bin"]


def test_member_cut_short_is_read_as_far_as_it_goes() -> None:
    body = b"SULIT\n" + b"Isi minit.\n" * 3000
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        info = tarfile.TarInfo("minit.txt")
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
    cut = out.getvalue()[:512 + 20_000]
    (text,) = [t for rule, _path, t in pieces(cut) if rule == "lines"]
    assert text.startswith("SULIT\n") and 8192 <= len(text) < 20_000


@needs("tar")
def test_damaged_header_is_skipped_as_gnu_tar_does(tmp_path: Path) -> None:
    data = bytearray(tar(tmp_path, "c", {"a.txt": b"Isi.\n", "b.txt": b"Isi.\n",
                                         "c-pelan.txt": TXT}))
    second = data.index(b"b.txt")
    data[second + 148:second + 156] = b"0000000\0"  # its checksum no longer holds
    (tmp_path / "rosak.tar").write_bytes(data)
    listed = subprocess.run(["tar", "-tf", "rosak.tar"], cwd=tmp_path, capture_output=True,
                            timeout=60).stdout.decode().split()
    assert "c-pelan.txt" in listed  # GNU tar skips to the next header
    assert ats(view_of("rosak.tar", bytes(data))) == [
        ("RAHSIA", "attachment:rosak.tar/c-pelan.txt:content")]
    # The first header damaged: libmagic still calls it a tar, GNU tar still reads on.
    data[148:156] = b"0000000\0"
    (tmp_path / "rosak.tar").write_bytes(data)
    listed = subprocess.run(["tar", "-tf", "rosak.tar"], cwd=tmp_path, capture_output=True,
                            timeout=60).stdout.decode().split()
    assert "c-pelan.txt" in listed
    assert walk.kind_of(bytes(data)) == "tar"
    assert ats(view_of("rosak.tar", bytes(data))) == [
        ("RAHSIA", "attachment:rosak.tar/c-pelan.txt:content")]


@needs("tar")
def test_archives_one_after_another_are_all_read(tmp_path: Path) -> None:
    # `cat a.tar b.tar`: GNU tar -i and 7-Zip read on past the first end-of-archive.
    data = tar(tmp_path, "c", {"a.txt": b"Isi.\n"}) + tar(tmp_path, "c", {"b.txt": TXT})
    assert ats(view_of("dua.tar", data)) == [("RAHSIA", "attachment:dua.tar/b.txt:content")]


NOISE = random.Random(10).randbytes(400)


@pytest.mark.parametrize("data", [
    compressed.GZIP + b"\x00" * 7 + b"\x03" + NOISE,
    b"BZh91AY&SY" + NOISE,
    compressed.XZ + NOISE,
])
def test_damaged_compressed_file_is_quiet(data: bytes) -> None:
    assert walk.kind_of(data) == "compressed"
    view = view_of("rosak.gz", data)
    assert inspectable(view) and view.classification is None


def test_negative_size_header_is_skipped() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, body in (("a.txt", b"Isi.\n"), ("b-pelan.txt", TXT)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    data = bytearray(out.getvalue())
    data[124:136] = b"\xff" * 12  # a.txt's size in base-256: -1
    header = bytes(data[:148]) + b" " * 8 + bytes(data[156:512])
    data[148:156] = b"%06o\0 " % sum(header)
    got = pieces(bytes(data))
    assert ("lines", "b-pelan.txt", TXT.decode()) in got


# -- tar headers that cost too much ------------------------------------------------------

def _record(key: bytes, value: bytes) -> bytes:
    """One pax record: its length counts its own digits."""
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _pax(records: bytes, then: str = "a.txt", data: bytes = b"") -> bytes:
    out = io.BytesIO()
    head = tarfile.TarInfo("././@PaxHeader")
    head.type = tarfile.XHDTYPE
    head.size = len(records)
    out.write(head.tobuf(format=tarfile.USTAR_FORMAT))
    out.write(records + b"\0" * (-len(records) % 512))
    member = tarfile.TarInfo(then)
    member.size = len(data)
    out.write(member.tobuf(format=tarfile.USTAR_FORMAT))
    out.write(data + b"\0" * (-len(data) % 512) + b"\0" * 1024)
    return out.getvalue()


def test_long_pax_name_is_read() -> None:
    name = "dalam/" * 30 + "SULIT-minit.txt"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        tf.addfile(info, io.BytesIO(b""))
    assert pieces(out.getvalue()) == [("filename", name, name)]


def test_pax_header_too_large_is_not_inspectable() -> None:
    # Python's pax parser is quadratic in the header's size before 3.11.10 (CVE-2024-6232).
    with pytest.raises(LimitExceeded, match="tar header larger"):
        pieces(_pax(b"1" * (compressed.MAX_META_BYTES + 1)))
    assert pieces(_pax(_record(b"path", b"pelan.txt"))) == [
        ("filename", "pelan.txt", "pelan.txt")]


def test_chained_headers_are_not_inspectable() -> None:
    record = b"10 x=abcd\n"
    head = tarfile.TarInfo("././@PaxHeader")
    head.type = tarfile.XGLTYPE
    head.size = len(record)
    one = head.tobuf(format=tarfile.USTAR_FORMAT) + record + b"\0" * (512 - len(record))
    member = tarfile.TarInfo("a.txt").tobuf(format=tarfile.USTAR_FORMAT)
    with pytest.raises(LimitExceeded, match="chained"):
        pieces(one * 3000 + member + b"\0" * 1024)


@needs("tar", "truncate")
@pytest.mark.parametrize("extra", [("--format=gnu",), ("--format=pax", "--sparse-version=1.0"),
                                   ("--format=pax", "--sparse-version=0.1")])
def test_sparse_files_are_not_inspectable(tmp_path: Path, extra: tuple[str, ...]) -> None:
    src = files(tmp_path / "src", {})
    with (src / "jarang.txt").open("wb") as f:
        f.write(b"SULIT\n")
        f.seek(4 * MiB)
        f.write(b"Akhir.\n")
    run(src, "tar", "-S", *extra, "-cf", str(tmp_path / "a.tar"), "jarang.txt")
    with pytest.raises(LimitExceeded, match="sparse"):
        pieces((tmp_path / "a.tar").read_bytes())


def test_gnu_sparse_map_is_refused_before_it_is_read() -> None:
    # tarfile reads a GNU 1.0 sparse map of any length into a list; the override of
    # `_proc_gnusparse_10` (compressed._Header) must still be what it calls: without it,
    # this map would be read to the end of the data and end quietly.
    records = b"".join(_record(k, v) for k, v in (
        (b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"),
        (b"GNU.sparse.name", b"a.txt"), (b"GNU.sparse.realsize", b"10")))
    data = _pax(records, "GNUSparseFile.0/a.txt", b"1000000000\n" + b"1\n" * 20000)
    with pytest.raises(LimitExceeded, match="sparse"):
        pieces(data)


# -- 7z, RAR and other archives: reported unreadable -------------------------------------

@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if shutil.which("7zz") is None:
        pytest.skip("needs 7zz (Debian package 7zip)")
    tmp = files(tmp_path_factory.mktemp("7z"), {"Minit.docx": DOCX})
    run(tmp, "7zz", "a", "-bso0", "-bsp0", "plain.7z", "Minit.docx")
    run(tmp, "7zz", "a", "-bso0", "-bsp0", "-prahsia", "-mhe=on", "aes.7z", "Minit.docx")
    return {"plain": (tmp / "plain.7z").read_bytes(), "aes": (tmp / "aes.7z").read_bytes()}


def test_plain_7z_is_unreadable(seven: dict[str, bytes]) -> None:
    assert pieces(seven["plain"]) == [
        ("unreadable", "", "the files in a 7z archive are not read")]
    view = view_of("minit.7z", seven["plain"])
    (attachment,) = view.attachments
    assert (attachment.encrypted, attachment.unreadable) == (False, ("archive",))
    assert view.classification is None  # its SULIT footer is not read: the finding says so
    assert inspectable(view)


def test_encrypted_7z_is_not_unreadable(seven: dict[str, bytes]) -> None:
    view = view_of("minit.7z", seven["aes"])
    (attachment,) = view.attachments
    assert (attachment.encrypted, attachment.unreadable) == (True, ())


def test_7z_inside_a_tar_and_a_zip(seven: dict[str, bytes]) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        info = tarfile.TarInfo("minit.7z")
        info.size = len(seven["plain"])
        tf.addfile(info, io.BytesIO(seven["plain"]))
    assert view_of("a.tgz", out.getvalue()).attachments[0].unreadable == ("minit.7z:archive",)
    zipped = make.zip_of({"minit.7z": seven["plain"]})
    assert view_of("a.zip", zipped).attachments[0].unreadable == ("minit.7z:archive",)


@pytest.mark.parametrize(("data", "unreadable"), [
    (make.rar5((("Minit.docx", False),)), ("archive",)),
    (make.rar4((("Minit.docx", False),)), ("archive",)),
    (make.rar5((("Minit.docx", True),)), ()),
    (make.rar5((), encrypted_headers=True), ()),
    (make.rar5((("a.docx", True), ("b.docx", False))), ("archive",)),
])
def test_rar_is_unreadable_unless_encrypted(data: bytes, unreadable: tuple[str, ...]) -> None:
    assert view_of("minit.rar", data).attachments[0].unreadable == unreadable


def test_other_archive_is_unreadable() -> None:
    # A Microsoft cabinet (Windows opens it as a folder): libmagic names it an archive.
    cab = (b"MSCF\0\0\0\0" + (200).to_bytes(4, "little") + b"\0" * 4 +
           (44).to_bytes(4, "little") + b"\0" * 4 + b"\x03\x01\x01\x00\x01\x00\x00\x00"
           + b"\0" * 160)
    got = pieces(cab)
    assert [(rule, path) for rule, path, _text in got] == [("unreadable", "")]
    assert "vnd.ms-cab-compressed" in got[0][2]


def test_unreadable_archive_in_marked_mail_is_monitored(policy: PolicyState,
                                                        seven: dict[str, bytes]) -> None:
    env = Envelope(direction="outbound", listener="outbound", client_ip="127.0.0.1",
                   helo="client.example", mail_from="pegawai@anm.gov.my",
                   rcpt_to=("penerima@example.org",))
    got = inspect(policy, message("minit.7z", seven["plain"], subject="SULIT: Minit"), env)
    monitored = [h.rule_id for h in got.verdict.hits if h.mode == "monitor"]
    assert monitored == ["klasifikasi-lampiran-tidak-boleh-dibaca"], got.verdict.hits
    assert got.verdict.hits[0].evidence["unreadable"] == [
        {"index": 0, "name": "minit.7z", "at": ["archive"]}]
    # Not encrypted, so the SULIT rule refuses it as well.
    assert got.verdict.rule_id == "klasifikasi-lampiran-tidak-disulitkan"
    plain = inspect(policy, message("minit.7z", seven["plain"], subject="Minit"), env)
    assert [h.rule_id for h in plain.verdict.hits if h.mode == "monitor"] == []


def test_zip_behind_a_7z_is_read(seven: dict[str, bytes]) -> None:
    data = seven["plain"] + make.zip_of({"pelan.txt": TXT})
    got = pieces(data)
    assert got[0][0] == "unreadable"
    assert ("lines", "pelan.txt", TXT.decode()) in got
    assert zipfile.is_zipfile(io.BytesIO(data))
