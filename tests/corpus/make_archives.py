"""Builds the archive cases of the corpus: tests/corpus/cases/archives/.

Run `python tests/corpus/make_archives.py` from the repository root with GNU `tar`,
`gzip`, `bzip2`, `xz` and `7zz` (Debian package 7zip) on the PATH; it rewrites every
case and its `.expect.yaml` sidecar. The outputs are committed, so the tests never need
the programs (tests/unit/test_documents_compressed.py makes its own when they are there).

The archives are made by the real programs, of documents from the other cases
(documents/Minit-footer.docx: SULIT in its footer; documents/Laporan-page.pdf: TERHAD on
its page) and small text files: tar plain and with gzip, bzip2 and xz; single gzip and
bzip2 files; a ZIP in a tar.gz and a tar.gz in a ZIP; prose that is no marking; a
tar.gz cut in half; a gzip bomb; plain and encrypted 7z archives, whose files are not
read (a plain one is `unreadable`), alone and in marked mail. File times are fixed and
tar writes names sorted and owners numeric, so reruns give the same bytes except for
7-Zip's encryption (random salt).
"""

from __future__ import annotations

import email.policy
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sidecars import write_cases

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases" / "archives"
DOCX = (HERE / "cases" / "documents" / "Minit-footer.docx").read_bytes()
PDF = (HERE / "cases" / "documents" / "Laporan-page.pdf").read_bytes()
PROSE = b"Maklumat ini sulit dan hanya untuk penerima.\nTempat terhad.\n"
STAMP = 1735689600  # 2025-01-01 00:00 UTC
TAR = ("tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
       "--mtime=@1735689600")
NOTE = "archives (tests/corpus/make_archives.py)"


def _run(cwd: Path, *argv: str) -> None:
    subprocess.run(argv, cwd=cwd, check=True, timeout=300, capture_output=True)


def _folder(root: Path, name: str, members: Mapping[str, bytes]) -> Path:
    folder = root / name
    for member, data in members.items():
        path = folder / member
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (STAMP, STAMP))
    return folder


def _tar(root: Path, flags: str, members: Mapping[str, bytes]) -> bytes:
    src = _folder(root, f"tar-{len(list(root.iterdir()))}", members)
    out = root / "out.tar"
    _run(src, *TAR, f"-{flags}f", str(out), *sorted(members))
    data = out.read_bytes()
    out.unlink()
    return data


def _single(root: Path, program: str, name: str, data: bytes, suffix: str) -> bytes:
    src = _folder(root, f"one-{len(list(root.iterdir()))}", {name: data})
    _run(src, program, name)  # gzip keeps the name and time (FNAME, MTIME)
    return (src / (name + suffix)).read_bytes()


def _7z(root: Path, members: Mapping[str, bytes], *options: str) -> bytes:
    src = _folder(root, f"7z-{len(list(root.iterdir()))}", members)
    _run(src, "7zz", "a", "-bso0", "-bsp0", *options, "out.7z", *sorted(members))
    return (src / "out.7z").read_bytes()


def _message(subject: str, name: str, data: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Pegawai <pegawai@anm.gov.my>"
    msg["To"] = "penerima@example.org"
    msg["Subject"] = subject
    msg["Date"] = "Wed, 01 Jan 2025 08:00:00 +0800"
    msg["Message-ID"] = "<arkib@anm.gov.my>"
    msg.set_content("Salam, dokumen dilampirkan.\n")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


def cases(root: Path) -> dict[str, tuple[bytes, dict[str, object]]]:
    plain: dict[str, object] = {"encrypted": [False], "categories": ["archive"],
                                "unreadable": [False], "inspectable": True}
    out: dict[str, tuple[bytes, dict[str, object]]] = {}
    out["Minit.tar"] = (_tar(root, "c", {"Minit-footer.docx": DOCX, "nota.txt": PROSE}), {
        "classification": "SULIT", "where": ["attachment:Minit.tar/Minit-footer.docx:footer"],
        **plain, "outcome_outbound": "reject",
        "rule_outbound": "klasifikasi-lampiran-tidak-disulitkan"})
    out["Laporan.tgz"] = (_tar(root, "cz", {"Laporan-page.pdf": PDF}), {
        "classification": "TERHAD", "where": ["attachment:Laporan.tgz/Laporan-page.pdf:page1"],
        **plain})
    out["Pelan.tar.bz2"] = (_tar(root, "cj", {"dalam/pelan.txt": b"RAHSIA\nPelan.\n"}), {
        "classification": "RAHSIA", "where": ["attachment:Pelan.tar.bz2/dalam/pelan.txt:content"],
        **plain, "outcome_outbound": "reject", "rule_outbound": "klasifikasi-rahsia"})
    out["Minit.tar.xz"] = (_tar(root, "cJ", {"Minit-footer.docx": DOCX}), {
        "classification": "SULIT", "where": ["attachment:Minit.tar.xz/Minit-footer.docx:footer"],
        **plain})
    out["nota.txt.gz"] = (_single(root, "gzip", "nota.txt", b"TERHAD\nNota.\n", ".gz"), {
        "classification": "TERHAD", "where": ["attachment:nota.txt.gz/nota.txt:content"],
        **plain})
    out["Laporan.pdf.bz2"] = (_single(root, "bzip2", "Laporan.pdf", PDF, ".bz2"), {
        "classification": "TERHAD", "where": ["attachment:Laporan.pdf.bz2:page1"], **plain})
    zipped = _7z(root, {"Minit-footer.docx": DOCX}, "-tzip")
    out["Zip-dalam-tar.tgz"] = (_tar(root, "cz", {"dalam.zip": zipped}), {
        "classification": "SULIT",
        "where": ["attachment:Zip-dalam-tar.tgz/dalam.zip/Minit-footer.docx:footer"], **plain})
    inner = _tar(root, "cz", {"pelan.txt": b"RAHSIA\nPelan.\n"})
    out["Tar-dalam-zip.zip"] = (_7z(root, {"dalam.tgz": inner}, "-tzip"), {
        "classification": "RAHSIA",
        "where": ["attachment:Tar-dalam-zip.zip/dalam.tgz/pelan.txt:content"], **plain})
    out["Prosa.tgz"] = (_tar(root, "cz", {"nota.txt": PROSE, "laporan_terhad_akses.txt": b"a\n"}),
                        {"classification": None, **plain, "outcome_outbound": "accept"})
    cut = _tar(root, "cz", {"a-pelan.txt": b"RAHSIA\nPelan.\n",
                            "b-rawak.bin": b"\x7fELF\x02\x01\x01" + os.urandom(150_000)})
    out["Terpotong.tgz"] = (cut[:len(cut) // 2], {
        "classification": "RAHSIA", "where": ["attachment:Terpotong.tgz/a-pelan.txt:content"],
        **plain,
        "note": "cut in half: the first member is read, the rest is not in the message"})
    bomb = subprocess.run(["gzip", "-9", "-n", "-c"], input=bytes(16 * 1024 * 1024),
                          check=True, capture_output=True, timeout=300).stdout
    out["Bom.gz"] = (bomb, {"encrypted": [False], "inspectable": False,
                            "outcome_outbound": "reject", "rule_outbound": "struktur-melebihi-had",
                            "note": "16 MiB of zeros: a ratio of 1000, above the limit of 200"})
    seven = _7z(root, {"Minit-footer.docx": DOCX})
    out["Minit.7z"] = (seven, {
        "classification": None, "encrypted": [False], "categories": ["archive"],
        "unreadable": [True], "inspectable": True,
        "note": "its files are not read (no 7z decoder is shipped): unreadable"})
    out["Minit-aes.7z"] = (_7z(root, {"Minit-footer.docx": DOCX}, "-prahsia", "-mhe=on"), {
        "encrypted": [True], "schemes": ["aes"], "unreadable": [False], "inspectable": True})
    out["Minit-7z-bertanda.eml"] = (_message("SULIT: Minit mesyuarat", "Minit.7z", seven), {
        "classification": "SULIT", "encrypted": [False], "unreadable": [True],
        "outcome_outbound": "reject", "rule_outbound": "klasifikasi-lampiran-tidak-disulitkan",
        "note": "klasifikasi-lampiran-tidak-boleh-dibaca logs it too (monitor)"})
    return {name: (data, {**expect, "note": f"{NOTE}; {expect['note']}" if "note" in expect
                          else NOTE})
            for name, (data, expect) in out.items()}


def main() -> int:
    for program in ("tar", "gzip", "bzip2", "xz", "7zz"):
        if shutil.which(program) is None:
            print(f"{program} is needed to build these cases", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory(prefix="make-archives-") as tmp:
        print(f"{write_cases(CASES, cases(Path(tmp)))} archive cases in {CASES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
