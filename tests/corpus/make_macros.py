"""Builds the Office macro cases of the corpus: tests/corpus/cases/macros/.

Run `.venv/bin/python tests/corpus/make_macros.py` from the repository root; it
rewrites every case and its `.expect.yaml` sidecar. Output is byte-identical between runs.

The real files (tests/corpus/fixtures/macros/, from oletools' own test data, BSD
licence, see LICENSE-oletools.md there) are copied as cases:
- `autostart-encrypt-standardpassword.xls`: Excel 97-2003, a VBA `Auto_Open` (the
  workbook is RC4-encrypted with Excel's built-in password; its VBA storage is not);
- `excel4_sample_macro.xls`: Excel 4.0 (XLM) macro sheet with `Auto_Open`;
- `oleform-PR314.docm`: Word 2007+, VBA with form control events (autoexec).
None of them calls anything suspicious. The derived cases take the REAL VBA project
of the first (its `_VBA_PROJECT_CUR` storage, made by Excel) and replace the source
of its module `Modul1`:
- the new source compressed per [MS-OVBA] 2.4.1 (`compress`: literal tokens only,
  a valid CompressedContainer), written as the whole module stream, and the
  module's MODULEOFFSET record ([MS-OVBA] 2.3.4.2.3.2.5) in the `dir` stream set to
  0 (the dir stream decompressed with olevba, patched, compressed again): the
  project has no p-code, only source, as a project saved by another program;
- `AUTOEXEC_SUSPICIOUS` (AutoOpen + Shell + CreateObject) and `BENIGN` (a routine
  run by hand, no suspicious call);
- put into the real plain Word and Excel 97 files of tests/corpus/fixtures/office/
  (msoffcrypto-tool's, MIT) as their `Macros` / `_VBA_PROJECT_CUR` storage, written
  with `make_outlook.cfb`; and as `vbaProject.bin` into the real example.docx (a .docm:
  content type, relationship), also under a .docx name, and into a ZIP.
olevba reading each one as the sidecar says is the test of this writer (the corpus
test, tests/unit/test_corpus.py, checks `macros:` per attachment).
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from pathlib import Path

import olefile
from oletools.olevba import decompress_stream

sys.path.insert(0, str(Path(__file__).parent))
from make_outlook import Tree, cfb
from sidecars import write_cases

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases" / "macros"
FIXTURES = HERE / "fixtures" / "macros"
OFFICE = HERE / "fixtures" / "office"
SOURCE = FIXTURES / "autostart-encrypt-standardpassword.xls"
LICENCE = ("oletools test data, BSD 2-clause, (c) Philippe Lagadec "
           "(fixtures/macros/LICENSE-oletools.md)")

AUTOEXEC_SUSPICIOUS = (
    'Attribute VB_Name = "Modul1"\r\n'
    "Sub AutoOpen()\r\n"
    '    Shell "cmd.exe /c calc.exe", vbHide\r\n'
    '    Set o = CreateObject("WScript.Shell")\r\n'
    "End Sub\r\n")
BENIGN = (
    'Attribute VB_Name = "Modul1"\r\n'
    "Sub JumlahBajet()\r\n"
    '    Range("B10").Value = Application.Sum(Range("B1:B9"))\r\n'
    "End Sub\r\n")


# -- [MS-OVBA] 2.4.1 compression ------------------------------------------------------

def compress(data: bytes) -> bytes:
    """A CompressedContainer: signature 0x01, then chunks of 4096 decompressed bytes.
    A full chunk is stored raw (CompressedChunkHeader flag 0, [MS-OVBA] 2.4.1.1.5);
    the last one as literal tokens (a FlagByte of 0 before every 8 bytes), which fits
    the 12-bit chunk size only up to 3640 bytes: longer sources are not needed here."""
    out = bytearray(b"\x01")
    for start in range(0, len(data), 4096):
        chunk = data[start:start + 4096]
        if len(chunk) == 4096:
            out += struct.pack("<H", (4096 + 2 - 3) | 0b011 << 12) + chunk
            continue
        if len(chunk) > 3640:
            raise ValueError("a last chunk over 3640 bytes needs copy tokens")
        body = bytearray()
        for i in range(0, len(chunk), 8):
            body += b"\x00" + chunk[i:i + 8]
        out += struct.pack("<H", (len(body) + 2 - 3) | 0b011 << 12 | 0x8000) + body
    return bytes(out)


def _records(dir_stream: bytes) -> list[tuple[int, bytes]]:
    """The dir stream's records ([MS-OVBA] 2.3.4.2): id, size, data; PROJECTVERSION
    (0x0009) declares 4 bytes but has 6."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 6 <= len(dir_stream):
        rid, size = struct.unpack_from("<HI", dir_stream, pos)
        if rid == 0x0009:
            size = 6
        out.append((rid, dir_stream[pos + 6:pos + 6 + size]))
        pos += 6 + size
    return out


def _dir_with_source_at_zero(dir_stream: bytes, module: str) -> bytes:
    """The dir stream with `module`'s MODULEOFFSET (0x0031) set to 0."""
    out = bytearray()
    current = ""
    for rid, data in _records(dir_stream):
        if rid == 0x0019:  # MODULENAME
            current = data.decode("latin-1")
        if rid == 0x0031 and current == module:
            data = struct.pack("<I", 0)
        size = 4 if rid == 0x0009 else len(data)
        out += struct.pack("<HI", rid, size) + data
    return bytes(out)


def _tree(ole: olefile.OleFileIO, prefix: list[str]) -> Tree:
    out: Tree = {}
    for path in ole.listdir(streams=True, storages=False):
        if path[:len(prefix)] != prefix:
            continue
        node = out
        for part in path[len(prefix):-1]:
            sub = node.setdefault(part, {})
            assert isinstance(sub, dict)
            node = sub
        node[path[-1]] = ole.openstream(path).read()
    return out


def read_tree(data: bytes, prefix: tuple[str, ...] = ()) -> Tree:
    """Every stream of a compound file (under `prefix`) as a nested dict."""
    ole = olefile.OleFileIO(io.BytesIO(data))
    try:
        return _tree(ole, list(prefix))
    finally:
        ole.close()


def vba_project(source: str) -> Tree:
    """Excel's real VBA project (PROJECT, PROJECTwm, VBA/...) with `Modul1` replaced
    by `source` (module docstring)."""
    project = read_tree(SOURCE.read_bytes(), ("_VBA_PROJECT_CUR",))
    vba = project["VBA"]
    assert isinstance(vba, dict)
    dir_stream = vba["dir"]
    assert isinstance(dir_stream, bytes)
    plain = bytes(decompress_stream(bytearray(dir_stream)))
    vba["dir"] = compress(_dir_with_source_at_zero(plain, "Modul1"))
    vba["Modul1"] = compress(source.encode("cp1252"))
    return project


def vba_project_bin(source: str) -> bytes:
    """`vbaProject.bin` of an OOXML file: the project's storages at the root."""
    return cfb(vba_project(source))


def legacy_with_macros(base: bytes, storage: str, source: str) -> bytes:
    """A real Word or Excel 97 file with a VBA project in `storage` (`Macros` for
    Word, `_VBA_PROJECT_CUR` for Excel)."""
    tree = read_tree(base)
    tree[storage] = vba_project(source)
    return cfb(tree)


def docm(base: bytes, source: str) -> bytes:
    """The real example.docx made a macro-enabled document: word/vbaProject.bin, its
    relationship and content types ([MS-OFFMACRO2] / ECMA-376 part 2)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as zin, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.wordprocessingml."
                    b"document.main+xml",
                    b"application/vnd.ms-word.document.macroEnabled.main+xml")
                data = data.replace(
                    b"</Types>",
                    b'<Default Extension="bin" '
                    b'ContentType="application/vnd.ms-office.vbaProject"/></Types>')
            elif info.filename == "word/_rels/document.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdVba" Type="http://schemas.microsoft.com/office/'
                    b'2006/relationships/vbaProject" Target="vbaProject.bin"/></Relationships>')
            zout.writestr(_fixed(info.filename), data)
        zout.writestr(_fixed("word/vbaProject.bin"), vba_project_bin(source))
    return out.getvalue()


def _fixed(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2025, 3, 3, 9, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(_fixed(name), data)
    return out.getvalue()


AUTO = ["present", "autoexec", "suspicious"]


def cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    refused = {"outcome_inbound": "reject", "rule_inbound": "makro-autoexec-mencurigakan",
               "outcome_outbound": "accept"}
    plain_doc = (OFFICE / "plain.doc").read_bytes()
    auto_xls = legacy_with_macros((OFFICE / "plain.xls").read_bytes(), "_VBA_PROJECT_CUR",
                                  AUTOEXEC_SUSPICIOUS)
    example = (OFFICE / "example.docx").read_bytes()
    real = {"source": "oletools tests/test-data", "licence": LICENCE}
    return {
        "autostart-encrypt-standardpassword.xls": (SOURCE.read_bytes(), {
            "macros": [["present", "autoexec"]], **real,
            "outcome_inbound": "accept", "outcome_outbound": "accept"}),
        "excel4_sample_macro.xls": ((FIXTURES / "excel4_sample_macro.xls").read_bytes(), {
            "macros": [["present", "autoexec"]], **real, "outcome_inbound": "accept"}),
        "oleform-PR314.docm": ((FIXTURES / "oleform-PR314.docm").read_bytes(), {
            "macros": [["present", "autoexec"]], **real, "outcome_inbound": "accept"}),
        "Makro-AutoOpen.doc": (legacy_with_macros(plain_doc, "Macros", AUTOEXEC_SUSPICIOUS),
                               {"macros": [AUTO], **refused}),
        "Makro-biasa.doc": (legacy_with_macros(plain_doc, "Macros", BENIGN), {
            "macros": [["present"]], "outcome_inbound": "accept",
            "outcome_outbound": "accept"}),
        "Bajet-AutoOpen.xls": (auto_xls, {"macros": [AUTO], **refused}),
        "Laporan-makro.docm": (docm(example, BENIGN), {
            "macros": [["present"]], "outcome_inbound": "accept"}),
        # A .docm renamed .docx: found by its content.
        "Laporan.docx": (docm(example, AUTOEXEC_SUSPICIOUS), {"macros": [AUTO], **refused}),
        "Arkib-makro.zip": (zip_of({"nota.txt": b"Bajet 2025\r\n",
                                    "bajet/Bajet-AutoOpen.xls": auto_xls}),
                            {"macros": [AUTO], **refused}),
        "Tanpa-makro.docx": (example, {"macros": [[]], "outcome_inbound": "accept"}),
    }


def main() -> int:
    count = write_cases(CASES, cases())
    print(f"{count} cases written to {CASES.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
