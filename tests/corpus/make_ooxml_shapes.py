"""Builds the OOXML shape cases of the corpus: tests/corpus/cases/office/ooxml/.

Watermarks, footnotes and notes pages are written by LibreOffice (headless) from
flat OpenDocument sources this script writes: LibreOffice exports a header
watermark ("PowerPlusWaterMarkObject" fontwork) to .docx as VML WordArt
`<v:textpath string="...">`, as Word does. SmartArt cannot be made by any free
program, so those packages are written here from ECMA-376 Part 1 (21.4, DrawingML
diagrams) with the builders of make_documents.py.

Run `python tests/corpus/make_ooxml_shapes.py` from the repository root on a machine
with LibreOffice (`soffice`); the outputs are committed, so the tests never need it.
`--no-soffice` rewrites only the hand-built cases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_documents import W_NS, _content_types, zip_of
from sidecars import write_case

CASES = Path(__file__).parent / "cases" / "office" / "ooxml"
NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"')
DGM_NS = 'xmlns:dgm="http://schemas.openxmlformats.org/drawingml/2006/diagram" ' \
         'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
REL_NS = 'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"'
DIAGRAM_DATA = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/diagramData"


def watermark_fodt(mark: str, header: str = "Kementerian Kewangan") -> str:
    shape = (
        f'<draw:custom-shape draw:name="PowerPlusWaterMarkObject1" text:anchor-type="char" '
        f'draw:z-index="0" draw:style-name="gr1" svg:width="15cm" svg:height="4cm" '
        f'svg:x="2cm" svg:y="10cm"><text:p>{mark}</text:p>'
        '<draw:enhanced-geometry svg:viewBox="0 0 21600 21600" '
        'draw:text-areas="0 0 21600 21600" draw:text-path="true" '
        'draw:text-path-mode="shape" draw:text-path-scale="shape" '
        'draw:type="fontwork-plain-text" '
        'draw:enhanced-path="M 0 0 L 21600 0 M 0 21600 L 21600 21600 N"/>'
        '</draw:custom-shape>')
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document {NS} office:version="1.3" '
        'office:mimetype="application/vnd.oasis.opendocument.text">'
        '<office:automatic-styles><style:page-layout style:name="pm1">'
        '<style:page-layout-properties fo:page-width="21cm" fo:page-height="29.7cm"/>'
        '<style:header-style/></style:page-layout>'
        '<style:style style:name="gr1" style:family="graphic"><style:graphic-properties '
        'draw:fill-color="#c0c0c0" draw:stroke="none" style:wrap="run-through" '
        'style:run-through="foreground"/></style:style></office:automatic-styles>'
        '<office:master-styles><style:master-page style:name="Standard" '
        f'style:page-layout-name="pm1"><style:header><text:p>{header}{shape}</text:p>'
        '</style:header></style:master-page></office:master-styles>'
        '<office:body><office:text><text:p>Isi dokumen biasa.</text:p></office:text>'
        '</office:body></office:document>')


def footnote_fodt(note: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document {NS} office:version="1.3" '
        'office:mimetype="application/vnd.oasis.opendocument.text"><office:body>'
        '<office:text><text:p>Laporan tahunan<text:note text:id="n1" '
        'text:note-class="footnote"><text:note-citation>1</text:note-citation>'
        f'<text:note-body><text:p>{note}</text:p></text:note-body></text:note></text:p>'
        '</office:text></office:body></office:document>')


def notes_fodp(notes: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document {NS} office:version="1.3" '
        'office:mimetype="application/vnd.oasis.opendocument.presentation">'
        '<office:master-styles><style:master-page style:name="Default"/>'
        '</office:master-styles><office:body><office:presentation>'
        '<draw:page draw:name="s1" draw:master-page-name="Default">'
        '<draw:frame svg:x="2cm" svg:y="2cm" svg:width="20cm" svg:height="3cm">'
        '<draw:text-box><text:p>Taklimat bajet</text:p></draw:text-box></draw:frame>'
        '<presentation:notes><draw:frame presentation:class="notes" svg:x="2cm" '
        'svg:y="15cm" svg:width="17cm" svg:height="10cm"><draw:text-box>'
        f'<text:p>{notes}</text:p></draw:text-box></draw:frame></presentation:notes>'
        '</draw:page></office:presentation></office:body></office:document>')


def smartart_docx(header_diagram: str, body: str = "Isi laporan.") -> bytes:
    """A Word package whose header shows a SmartArt diagram with `header_diagram` in a
    node: the text is only in word/diagrams/data1.xml, related from header1.xml."""
    data = (f'<dgm:dataModel {DGM_NS}><dgm:ptLst><dgm:pt modelId="1"><dgm:t><a:bodyPr/>'
            f'<a:p><a:r><a:t>{header_diagram}</a:t></a:r></a:p></dgm:t></dgm:pt></dgm:ptLst>'
            '</dgm:dataModel>')
    rels = (f'<Relationships {REL_NS}><Relationship Id="rId1" Type="{DIAGRAM_DATA}" '
            'Target="diagrams/data1.xml"/></Relationships>')
    header = (f'<w:hdr {W_NS}><w:p><w:r><w:t>Kementerian Kewangan</w:t></w:r></w:p></w:hdr>')
    return zip_of({
        "[Content_Types].xml": _content_types("word/document.xml",
                                              {"word/header1.xml": "header+xml"}),
        "word/document.xml": f"<w:document {W_NS}><w:body><w:p><w:r><w:t>{body}</w:t>"
                             "</w:r></w:p></w:body></w:document>".encode(),
        "word/header1.xml": header.encode(),
        "word/_rels/header1.xml.rels": rels.encode(),
        "word/diagrams/data1.xml": data.encode(),
    })


WPS_NS = ('xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
          'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
          'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape"')


def wordart_header_docx(text: str) -> bytes:
    """A Word package whose header holds a DrawingML WordArt shape (ECMA-376 Part 1,
    20.4 anchors; Word 2010 `wps:wsp` with `fromWordArt`) whose text is `text`."""
    shape = (f'<w:r><w:drawing><wp:anchor {WPS_NS}><a:graphic><a:graphicData>'
             '<wps:wsp><wps:txbx><w:txbxContent>'
             f'<w:p><w:r><w:t>{text}</w:t></w:r></w:p>'
             '</w:txbxContent></wps:txbx><wps:bodyPr fromWordArt="1"/></wps:wsp>'
             '</a:graphicData></a:graphic></wp:anchor></w:drawing></w:r>')
    header = f'<w:hdr {W_NS}><w:p><w:r><w:t>Kementerian Kewangan</w:t></w:r>{shape}</w:p></w:hdr>'
    return zip_of({
        "[Content_Types].xml": _content_types("word/document.xml",
                                              {"word/header1.xml": "header+xml"}),
        "word/document.xml": f"<w:document {W_NS}><w:body><w:p><w:r><w:t>Isi laporan.</w:t>"
                             "</w:r></w:p></w:body></w:document>".encode(),
        "word/header1.xml": header.encode(),
    })


def smartart_slide_pptx(node: str) -> bytes:
    """A PowerPoint package whose slide 2 shows a SmartArt diagram with `node` in it."""
    p_ns = ('xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
            'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"')
    slide = (f'<p:sld {p_ns}><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>{{}}</a:t>'
             '</a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>')
    data = (f'<dgm:dataModel {DGM_NS}><dgm:ptLst><dgm:pt modelId="1"><dgm:t><a:bodyPr/>'
            f'<a:p><a:r><a:t>{node}</a:t></a:r></a:p></dgm:t></dgm:pt></dgm:ptLst>'
            '</dgm:dataModel>')
    rels = (f'<Relationships {REL_NS}><Relationship Id="rId2" Type="{DIAGRAM_DATA}" '
            'Target="../diagrams/data1.xml"/></Relationships>')
    return zip_of({
        "[Content_Types].xml": _content_types("ppt/presentation.xml", {}),
        "ppt/presentation.xml": f"<p:presentation {p_ns}/>".encode(),
        "ppt/slides/slide1.xml": slide.format("Taklimat").encode(),
        "ppt/slides/slide2.xml": slide.format("Carta organisasi").encode(),
        "ppt/slides/_rels/slide2.xml.rels": rels.encode(),
        "ppt/diagrams/data1.xml": data.encode(),
    })


SOFFICE_CASES: dict[str, tuple[str, str, dict[str, object]]] = {
    # name: (source suffix, source, expectation)
    "Watermark-RAHSIA.docx": (".fodt", watermark_fodt("RAHSIA"), {
        "classification": "RAHSIA", "where": ["attachment:Watermark-RAHSIA.docx:watermark"]}),
    "Watermark-DRAF.docx": (".fodt", watermark_fodt("DRAF"), {"classification": None}),
    "Footnote-SULIT.docx": (".fodt", footnote_fodt("SULIT"), {
        "classification": "SULIT", "where": ["attachment:Footnote-SULIT.docx:footnote"]}),
    "Footnote-prose.docx": (".fodt", footnote_fodt("Maklumat ini sulit dan hanya untuk "
                                                   "penerima."), {"classification": None}),
    "Notes-TERHAD.pptx": (".fodp", notes_fodp("TERHAD"), {
        "classification": "TERHAD", "where": ["attachment:Notes-TERHAD.pptx:notes1"]}),
}
BUILT_CASES: dict[str, tuple[bytes, dict[str, object]]] = {
    "WordArt-header.docx": (wordart_header_docx("TERHAD"), {
        "classification": "TERHAD", "where": ["attachment:WordArt-header.docx:header"],
        "note": "hand-built from ECMA-376: DrawingML WordArt (wps:wsp) in a header"}),
    "SmartArt-slide.pptx": (smartart_slide_pptx("RAHSIA"), {
        "classification": "RAHSIA", "where": ["attachment:SmartArt-slide.pptx:slide2"],
        "note": "hand-built from ECMA-376: no free program writes SmartArt"}),
    "SmartArt-header.docx": (smartart_docx("SULIT"), {
        "classification": "SULIT", "where": ["attachment:SmartArt-header.docx:header"],
        "note": "hand-built from ECMA-376: no free program writes SmartArt"}),
    "SmartArt-prose.docx": (smartart_docx("Proses kerja jabatan"), {
        "classification": None,
        "note": "hand-built from ECMA-376: no free program writes SmartArt"}),
}


def convert(source: str, suffix: str, fmt: str) -> bytes:
    """`source` converted by LibreOffice headless to format `fmt` (its own profile)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"source{suffix}"
        src.write_text(source, encoding="utf-8")
        subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp}/profile",
                        "--convert-to", fmt, "--outdir", tmp, str(src)],
                       check=True, capture_output=True, timeout=180)
        return (Path(tmp) / f"source.{fmt}").read_bytes()


def main(argv: list[str]) -> int:
    CASES.mkdir(parents=True, exist_ok=True)
    for name, (data, expect) in BUILT_CASES.items():
        write_case(CASES, name, data, expect)
    if "--no-soffice" not in argv:
        if shutil.which("soffice") is None:
            print("soffice not found: install LibreOffice or use --no-soffice", file=sys.stderr)
            return 1
        for name, (suffix, source, expect) in SOFFICE_CASES.items():
            write_case(CASES, name, convert(source, suffix, name.rsplit(".", 1)[1]),
                   {**expect, "source": "LibreOffice headless from a source this script writes"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
