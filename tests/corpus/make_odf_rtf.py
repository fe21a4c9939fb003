"""Builds the OpenDocument and RTF cases of the corpus: tests/corpus/cases/office/{odf,rtf}/.

Run `python tests/corpus/make_odf_rtf.py` from the repository root with LibreOffice
(`soffice`, 7.4 was used) on the PATH; it rewrites every case and its `.expect.yaml`
sidecar. LibreOffice is not needed by the tests: the generated files are committed.

How each case is made:
- this script writes a flat ODF document (`.fodt`, `.fods`, `.fodp`: one XML file,
  built from the strings below, ODF 1.3);
- LibreOffice converts it (`soffice --headless --convert-to odt|ods|odp|rtf`), so
  the packaged ODF and the RTF are what a real office suite writes;
- some flat documents are cases themselves;
- the password-protected ODF files are saved by LibreOffice too: `--convert-to`
  takes no password in 7.4, so a Basic macro put in this script's own LibreOffice
  profile loads the flat document and stores it with a `Password`
  (`XStorable.storeToURL`): AES-256-CBC with the profile's defaults, and
  Blowfish CFB from a second profile whose ODF version is set to 1.1 (as
  OpenOffice.org 2 and 3 wrote).

LibreOffice stamps dates into what it writes, so the files change from run to run;
their expectations do not. The unit tests import the flat builders from here.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent / "cases" / "office"
ODF_DIR = ROOT / "odf"
RTF_DIR = ROOT / "rtf"
# Our own LibreOffice profiles: other builds run soffice at the same time, and one
# profile cannot be shared between running instances.
PROFILE = Path("/tmp/lo-odf")
PROFILE_ODF11 = Path("/tmp/lo-odf-11")
PASSWORD = "Rahsia123"

NS = " ".join(f'xmlns:{k}="{v}"' for k, v in {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "fo": "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0",
    "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}.items())
MIME = {"fodt": "application/vnd.oasis.opendocument.text",
        "fods": "application/vnd.oasis.opendocument.spreadsheet",
        "fodp": "application/vnd.oasis.opendocument.presentation"}

PROSE = ("Maklumat ini sulit dan hanya untuk penerima.",
         "PENDAFTARAN DIBUKA - TEMPAT TERHAD",
         "Sila jaga kerahsiaan dokumen ini.")


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;")


def p(text: str) -> str:
    """A paragraph; a tab is ODF's `<text:tab/>` (a literal one is collapsed white space)."""
    return "<text:p>" + "<text:tab/>".join(esc(t) for t in text.split("\t")) + "</text:p>"


def frame(text: str, *, x: str = "2cm", y: str = "1cm", extra: str = "") -> str:
    """A text frame (a text box) holding one paragraph."""
    return (f'<draw:frame draw:name="Kotak" text:anchor-type="paragraph" svg:x="{x}" '
            f'svg:y="{y}" svg:width="8cm" svg:height="1.5cm" {extra}>'
            f"<draw:text-box>{p(text)}</draw:text-box></draw:frame>")


def watermark(text: str) -> str:
    """A paragraph holding what LibreOffice's Format > Watermark makes: a Fontwork
    custom shape (text on a path) anchored in the page header."""
    return ('<text:p><draw:custom-shape draw:name="PowerPlusWaterMarkObject" '
            'text:anchor-type="char" svg:x="3cm" svg:y="8cm" svg:width="12cm" '
            f'svg:height="4cm">{p(text)}<draw:enhanced-geometry svg:viewBox="0 0 21600 21600" '
            'draw:type="fontwork-plain-text" draw:text-path="true" draw:text-path-mode="shape" '
            'draw:text-path-scale="shape"/></draw:custom-shape></text:p>')


def footnote(text: str, note: str) -> str:
    return (f'<text:p>{esc(text)}<text:note text:id="n1" text:note-class="footnote">'
            f"<text:note-citation>1</text:note-citation><text:note-body>{p(note)}"
            "</text:note-body></text:note></text:p>")


def table(rows: tuple[tuple[str, ...], ...]) -> str:
    columns = max(len(r) for r in rows)
    cells = "".join("<table:table-row>" + "".join(
        f'<table:table-cell office:value-type="string">{p(c)}</table:table-cell>'
        for c in row) + "</table:table-row>" for row in rows)
    return (f'<table:table table:name="Jadual1">'
            f'<table:table-column table:number-columns-repeated="{columns}"/>{cells}'
            "</table:table>")


def meta_labels(name: str) -> str:
    guid = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
    props = (("Enabled", "true"), ("Method", "Standard"), ("Name", name))
    return "".join(f'<meta:user-defined meta:name="MSIP_Label_{guid}_{k}">{esc(v)}'
                   "</meta:user-defined>" for k, v in props)


def _document(kind: str, *, masters: str, body: str, meta: str = "",
              layout: str = '<style:page-layout-properties fo:page-width="21cm" '
                            'fo:page-height="29.7cm"/>') -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<office:document {NS} office:version="1.3" office:mimetype="{MIME[kind]}">'
            f"<office:meta>{meta}</office:meta>"
            # Without an office:styles, Impress drops the master page's own shapes.
            '<office:styles/><office:automatic-styles><style:page-layout style:name="pm1">'
            f"{layout}</style:page-layout></office:automatic-styles>"
            f"<office:master-styles>{masters}</office:master-styles>"
            f"<office:body>{body}</office:body></office:document>\n")


def fodt(body: tuple[str, ...] = ("Isi laporan.",), *, header: str = "", footer: str = "",
         header_first: str = "", footer_left: str = "", meta: str = "",
         header_xml: str = "") -> str:
    """A text document: `body` items are XML (use `p`, `frame`, `table`), the page
    headers and footers plain text (`header_xml`: XML put before the header's text)."""
    hf = "".join(f"<style:{tag}>{xml}{p(text) if text else ''}</style:{tag}>"
                 for tag, xml, text in (
                     ("header", header_xml, header), ("header-first", "", header_first),
                     ("footer", "", footer), ("footer-left", "", footer_left)) if text or xml)
    masters = f'<style:master-page style:name="Standard" style:page-layout-name="pm1">{hf}' \
              "</style:master-page>"
    return _document("fodt", masters=masters, meta=meta,
                     body=f"<office:text>{''.join(body)}</office:text>")


def fods(rows: tuple[tuple[str, ...], ...] = (("Bil", "Perkara"),), *,
         header: tuple[str, str, str] = ("", "", ""), footer: str = "") -> str:
    """A spreadsheet: one sheet of string cells; a page header with left, centre and
    right regions; a footer."""
    regions = "".join(f"<style:region-{side}>{p(text)}</style:region-{side}>"
                      for side, text in zip(("left", "center", "right"), header, strict=True)
                      if text)
    hf = (f"<style:header>{regions}</style:header>" if regions else "") + (
        f"<style:footer>{p(footer)}</style:footer>" if footer else "")
    masters = f'<style:master-page style:name="Default" style:page-layout-name="pm1">{hf}' \
              "</style:master-page>"
    cells = "".join("<table:table-row>" + "".join(
        f'<table:table-cell office:value-type="string">{p(c)}</table:table-cell>'
        for c in row) + "</table:table-row>" for row in rows)
    body = ('<office:spreadsheet><table:table table:name="Helaian1">'
            f'<table:table-column table:number-columns-repeated="{max(map(len, rows))}"/>'
            f"{cells}</table:table></office:spreadsheet>")
    return _document("fods", masters=masters, body=body)


def _shape_box(text: str, y: str = "2cm", cls: str = "", layer: str = "") -> str:
    klass = f'presentation:class="{cls}" ' if cls else ""
    klass += f'draw:layer="{layer}" ' if layer else ""
    return (f'<draw:frame {klass}svg:x="2cm" svg:y="{y}" svg:width="20cm" '
            f'svg:height="3cm"><draw:text-box>{p(text)}</draw:text-box></draw:frame>')


def fodp(slides: tuple[tuple[str, ...], ...], *, master: tuple[str, ...] = (),
         notes: tuple[str, ...] = (), footer: str = "") -> str:
    """A presentation: each slide a tuple of text boxes; `notes[i]` the speaker notes of
    slide i+1; `master` text boxes on the master page; `footer` the slides' footer
    text (Impress's Header and Footer dialog)."""
    boxes = "".join(_shape_box(t, f"{1 + 3 * i}cm", layer="backgroundobjects")
                    for i, t in enumerate(master))
    if footer:
        boxes += ('<draw:frame presentation:class="footer" draw:layer="backgroundobjects" '
                  'svg:x="2cm" svg:y="14cm" svg:width="10cm" svg:height="1cm"><draw:text-box>'
                  "<text:p><presentation:footer/></text:p></draw:text-box></draw:frame>")
    masters = f'<style:master-page style:name="Default" style:page-layout-name="pm1">{boxes}' \
              "</style:master-page>"
    pages = []
    for n, texts in enumerate(slides, start=1):
        shapes = "".join(_shape_box(t, f"{2 + 4 * i}cm") for i, t in enumerate(texts))
        note = notes[n - 1] if n - 1 < len(notes) else ""
        if note:
            shapes += ("<presentation:notes>"
                       f"{_shape_box(note, '15cm', 'notes')}</presentation:notes>")
        use = ' presentation:use-footer-name="kaki1"' if footer else ""
        pages.append(f'<draw:page draw:name="slaid{n}" draw:master-page-name="Default"{use}>'
                     f"{shapes}</draw:page>")
    layout = ('<style:page-layout-properties fo:page-width="28cm" fo:page-height="15.75cm" '
              'style:print-orientation="landscape"/>')
    decl = (f'<presentation:footer-decl presentation:name="kaki1">{esc(footer)}'
            "</presentation:footer-decl>") if footer else ""
    return _document("fodp", masters=masters, layout=layout,
                     body=f"<office:presentation>{decl}{''.join(pages)}</office:presentation>")


# -- the cases ---------------------------------------------------------------------------
# (file name, flat source, convert to, expectations). `convert` None: the flat file is
# the case; "encrypt"/"encrypt11": saved with a password by the macro.

def _cases() -> list[tuple[str, str, str | None, dict[str, Any]]]:
    def at(name: str, *parts: str) -> list[str]:
        return [f"attachment:{name}:{part}" for part in parts]

    cases: list[tuple[str, str, str | None, dict[str, Any]]] = []

    def add(name: str, source: str, convert: str | None, classification: str | None,
            where: tuple[str, ...] = (), not_where: tuple[str, ...] = (),
            **more: Any) -> None:
        expect: dict[str, Any] = {"classification": classification}
        if where:
            expect["where"] = at(name, *where)
        if not_where:
            expect["not_where"] = at(name, *not_where)
        expect.update(more)
        cases.append((name, source, convert, expect))

    # Writer
    add("Minit-header.odt", fodt((p("Minit Mesyuarat Bil. 4/2025"), p(PROSE[0])),
                                 header="SULIT"), "odt", "SULIT", ("header",), ("body",),
        encrypted=[False], categories=["office"])
    add("Laporan-footer.odt", fodt((p("Laporan audit dalaman."),),
                                   footer="Muka surat 1\t\tTERHAD"), "odt", "TERHAD",
        ("footer",))
    add("Pelan-first-header.odt", fodt((p("Pelan operasi."),), header="Jabatan Audit Negara",
                                       header_first="RAHSIA"), "odt", "RAHSIA", ("header",))
    add("Bajet-left-footer.odt", fodt((p("Bajet 2026."),), footer="Bajet 2026",
                                      footer_left="Klasifikasi: SULIT"), "odt", "SULIT",
        ("footer",))
    add("Nota-textbox.odt", fodt((f"<text:p>{frame('RAHSIA BESAR')}Nota taklimat.</text:p>",)),
        "odt", "RAHSIA BESAR", ("textbox",), ("body",))
    add("Senarai-cell.odt", fodt((table((("TERHAD", "Rujukan: ANM.100-1/2/3"),
                                         ("Bil", "Perkara"))),)), "odt", "TERHAD", ("cell",))
    add("Surat-body.odt", fodt((p("*** SULIT ***"), p("Tuan,"), p("Dengan hormatnya..."))),
        "odt", "SULIT", ("body",))
    add("Tera-air.odt", fodt((p("Isi."),), header="Jabatan Audit Negara",
                             header_xml=watermark("RAHSIA")), "odt", "RAHSIA", ("header",))
    add("Nota-kaki.odt", fodt((footnote("Laporan tahunan", "SULIT"),)), "odt", "SULIT",
        ("footnote",), ("body",))
    add("Label-msip.odt", fodt((p("Isi."),), meta=meta_labels("RAHSIA")), "odt", "RAHSIA",
        ("msip_labels",))
    add("Prose.odt", fodt(tuple(p(t) for t in PROSE), header="Jabatan Audit Negara",
                          footer=PROSE[1]), "odt", None)
    add("Minit-flat.fodt", fodt((p("Minit."),), header="SULIT"), None, "SULIT", ("header",))
    # A flat document inside a ZIP is read by content, whatever its name.
    cases.append(("Minit-flat.zip", fodt((p("Minit."),), footer="TERHAD"), "zip",
                  {"classification": "TERHAD",
                   "where": ["attachment:Minit-flat.zip/Minit.fodt:footer"]}))
    # Calc
    add("Jadual.ods", fods((("Bil", "Perkara"), ("1", "SULIT"))), "ods", "SULIT", ("cell",),
        encrypted=[False], categories=["office"])
    add("Bajet-header.ods", fods((("Bajet", "2026"),), header=("Jabatan", "TERHAD", "")),
        "ods", "TERHAD", ("header",), ("cell",))
    add("Prose.ods", fods(tuple((t,) for t in PROSE), header=("", "Bajet 2026", "")), "ods",
        None)
    add("Jadual-flat.fods", fods((("Bajet",),), header=("", "", "RAHSIA")), None, "RAHSIA",
        ("header",))
    # Impress
    add("Taklimat.odp", fodp((("Taklimat",), ("Agenda", "SULIT"))), "odp", "SULIT",
        ("slide2",), ("slide1",), categories=["office"])
    add("Master.odp", fodp((("Taklimat",),), master=("RAHSIA",)), "odp", "RAHSIA",
        ("slide_master",))
    add("Nota-penceramah.odp", fodp((("Taklimat",), ("Isi",)), notes=("", "TERHAD")), "odp",
        "TERHAD", ("notes2",))
    add("Kaki-slaid.odp", fodp((("Taklimat",), ("Isi",)), footer="SULIT"), "odp", "SULIT",
        ("footer",))
    add("Prose.odp", fodp(((PROSE[0], PROSE[1]), (PROSE[2],))), "odp", None)
    # Password-protected: nothing inside can be read.
    add("Berkata-laluan.odt", fodt((p("SULIT"),), header="SULIT"), "encrypt", None,
        encrypted=[True], schemes=["aes"], categories=["office"])
    add("Berkata-laluan-lama.odt", fodt((p("SULIT"),)), "encrypt11", None,
        encrypted=[True], schemes=["blowfish"])
    # RTF, as LibreOffice writes it from the same kind of document
    add("Minit-header.rtf", fodt((p("Minit Mesyuarat."),), header="SULIT"), "rtf", "SULIT",
        ("header",), ("body",), categories=["office"])
    add("Laporan-footer.rtf", fodt((p("Laporan."),), footer="TERHAD"), "rtf", "TERHAD",
        ("footer",))
    add("Senarai-cell.rtf", fodt((table((("RAHSIA", "Rujukan: ANM.100-1/2/3"),)),)), "rtf",
        "RAHSIA", ("cell",))
    add("Surat-body.rtf", fodt((p("Klasifikasi: SULIT"), p("Tuan,"))), "rtf", "SULIT",
        ("body",))
    add("Tera-air.rtf", fodt((p("Isi."),), header="Jabatan Audit Negara",
                             header_xml=watermark("RAHSIA")), "rtf", "RAHSIA", ("header",))
    add("Nota-kaki.rtf", fodt((footnote("Laporan tahunan", "SULIT"),)), "rtf", "SULIT",
        ("footnote",), ("body",))
    add("Nota-textbox.rtf", fodt((f"<text:p>{frame('TERHAD')}Nota.</text:p>",)), "rtf",
        "TERHAD", ("textbox",))
    # Full-width letters and a Cyrillic І: LibreOffice writes both as \uN escapes.
    add("Fullwidth.rtf", fodt((p("\uff33\uff35\uff2c\uff29\uff34"), p("Isi."))), "rtf", "SULIT",
        ("body",))
    add("Cyrillic.rtf", fodt((p("RAHS\u0406A"), p("Isi."))), "rtf", "RAHSIA", ("body",))
    add("Prose.rtf", fodt(tuple(p(t) for t in PROSE), header="Jabatan Audit Negara"), "rtf",
        None)
    return cases


# -- LibreOffice ---------------------------------------------------------------------------

_MACRO = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE script:module PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "module.dtd">
<script:module xmlns:script="http://openoffice.org/2000/script" script:name="Module1" \
script:language="StarBasic">
Sub Encrypt(src As String, dst As String, filter As String, pw As String)
  Dim args(0) As New com.sun.star.beans.PropertyValue
  args(0).Name = &quot;Hidden&quot;
  args(0).Value = True
  doc = StarDesktop.loadComponentFromURL(ConvertToURL(src), &quot;_blank&quot;, 0, args())
  Dim out(1) As New com.sun.star.beans.PropertyValue
  out(0).Name = &quot;FilterName&quot;
  out(0).Value = filter
  out(1).Name = &quot;Password&quot;
  out(1).Value = pw
  doc.storeToURL(ConvertToURL(dst), out())
  doc.close(True)
End Sub
</script:module>
"""
# ODF 1.0/1.1 as the default version (officecfg Save/ODF/DefaultVersion = 2): what
# OpenOffice.org 2 and 3 wrote, with Blowfish encryption.
_ODF11 = ('<item oor:path="/org.openoffice.Office.Common/Save/ODF"><prop '
          'oor:name="DefaultVersion" oor:op="fuse"><value>2</value></prop></item>\n')


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, (2025, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def soffice(profile: Path, *args: str) -> None:
    subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{profile}", *args],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=300)


def convert(sources: list[Path], target: str, outdir: Path) -> None:
    soffice(PROFILE, "--convert-to", target, "--outdir", str(outdir), *map(str, sources))


def _prepare_profile(profile: Path, scratch: Path, odf11: bool) -> None:
    """A profile with the Basic macro (and, for `odf11`, ODF 1.1 as the version)."""
    if not (profile / "user" / "basic" / "Standard").is_dir():
        dummy = scratch / "profile-init.fodt"
        dummy.write_text(fodt(), encoding="utf-8")
        soffice(profile, "--convert-to", "odt", "--outdir", str(scratch / "init"), str(dummy))
    (profile / "user" / "basic" / "Standard" / "Module1.xba").write_text(_MACRO,
                                                                       encoding="utf-8")
    if odf11:
        xcu = profile / "user" / "registrymodifications.xcu"
        text = xcu.read_text(encoding="utf-8")
        if "Save/ODF" not in text:
            xcu.write_text(text.replace("</oor:items>", _ODF11 + "</oor:items>"),
                           encoding="utf-8")


def encrypt(source: Path, target: Path, profile: Path) -> None:
    soffice(profile, f'macro:///Standard.Module1.Encrypt("{source}","{target}","writer8",'
                     f'"{PASSWORD}")')
    if not target.is_file():
        raise RuntimeError(f"LibreOffice did not write {target}")


def main() -> int:
    if shutil.which("soffice") is None:
        print("soffice (LibreOffice) is needed to build these cases", file=sys.stderr)
        return 1
    for folder in (ODF_DIR, RTF_DIR):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
    cases = _cases()
    with tempfile.TemporaryDirectory(prefix="make-odf-rtf-") as tmp:
        scratch = Path(tmp)
        batches: dict[str, list[tuple[Path, str]]] = {}
        for name, source, target, _expect in cases:
            stem = Path(name).stem
            kind = {"odt": "fodt", "ods": "fods", "odp": "fodp"}.get(
                Path(name).suffix[1:], "fodt")
            folder = RTF_DIR if name.endswith(".rtf") else ODF_DIR
            if target is None:
                (folder / name).write_text(source, encoding="utf-8")
                continue
            if target == "zip":
                (folder / name).write_bytes(zip_of({"Minit.fodt": source.encode()}))
                continue
            src = scratch / target / f"{stem}.{kind}"
            src.parent.mkdir(exist_ok=True)
            src.write_text(source, encoding="utf-8")
            batches.setdefault(target, []).append((src, name))
        for target, items in batches.items():
            out = scratch / f"out-{target}"
            out.mkdir()
            if target.startswith("encrypt"):
                profile = PROFILE_ODF11 if target == "encrypt11" else PROFILE
                _prepare_profile(profile, scratch, odf11=target == "encrypt11")
                for src, name in items:
                    encrypt(src, out / name, profile)
            else:
                convert([src for src, _ in items], target, out)
                for src, name in items:
                    (out / f"{src.stem}.{target}").rename(out / name)
            for _src, name in items:
                folder = RTF_DIR if name.endswith(".rtf") else ODF_DIR
                shutil.copyfile(out / name, folder / name)
    for name, _source, _target, expect in cases:
        folder = RTF_DIR if name.endswith(".rtf") else ODF_DIR
        (folder / f"{name}.expect.yaml").write_text(
            yaml.safe_dump(expect, sort_keys=False, allow_unicode=True, width=100),
            encoding="utf-8")
    print(f"wrote {len(cases)} cases under {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
