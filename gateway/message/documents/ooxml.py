"""Text of Word, Excel and PowerPoint (OOXML) files where a marking stands.

Which parts are read, and as what (see `piece.Piece` for the rules):
- Word: `word/document.xml` paragraphs (`lines`); `word/header*.xml` and
  `word/footer*.xml` paragraphs (`label`), text split over runs joined, text boxes
  and DrawingML WordArt in them (their `w:txbxContent` paragraphs), and watermarks:
  VML WordArt `<v:textpath string="...">` (`label`, part `watermark`); footnotes
  and endnotes (`lines`, part `footnote`);
- Excel: `xl/sharedStrings.xml` strings and inline strings in the sheets
  (`lines`: a cell that is only the marking, or a label such as
  `Klasifikasi: SULIT`); the sheets' header/footer strings (`label`), after the
  `&`-codes are removed (`&C&"Arial,Bold"SULIT`, `&LTERHAD&RMuka &P`);
- PowerPoint: paragraphs of slides (`lines`, numbered; text boxes and shapes are
  paragraphs of the slide), of slide masters and layouts, of notes pages (`notes`);
- SmartArt (`*/diagrams/data*.xml`) wherever it is shown: the relationships of the
  document, header, footer, slide or master that shows it say where;
- any of them: `docProps/custom.xml` Microsoft Purview sensitivity labels
  (`MSIP_Label_<id>_Name`, `msip`).

Embedded OOXML files (`*/embeddings/*.docx|xlsx|pptx`) are returned as members
for the caller to open like archive members. Every part is read through
`xmltext` (streamed, DOCTYPE refused, byte cap) and charged to the bounds.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator

from gateway.message.documents.bounds import MAX_XML_PART_BYTES, Bounds, LimitExceeded
from gateway.message.documents.piece import Piece, Rule
from gateway.message.documents.xmltext import BadXML, Grammar, paragraphs

_WORD = Grammar(paragraphs=frozenset({"p"}), texts=frozenset({"t"}),
                tabs=frozenset({"tab", "ptab"}), breaks=frozenset({"br", "cr"}),
                attribute_texts=frozenset({("textpath", "string")}))
_DRAWING = Grammar(paragraphs=frozenset({"p"}), texts=frozenset({"t"}),
                   breaks=frozenset({"br"}),
                   attribute_texts=frozenset({("textpath", "string")}))
_RELS = Grammar(paragraphs=frozenset({"Relationship"}), texts=frozenset())
_SHARED_STRINGS = Grammar(paragraphs=frozenset({"si"}), texts=frozenset({"t"}),
                          hidden=frozenset({"rPh"}))
_HEADER_FOOTER_TAGS = frozenset({"oddHeader", "oddFooter", "evenHeader", "evenFooter",
                                 "firstHeader", "firstFooter"})
_SHEET = Grammar(paragraphs=_HEADER_FOOTER_TAGS | {"is"},
                 texts=_HEADER_FOOTER_TAGS | {"t"}, hidden=frozenset({"rPh"}))
_CUSTOM = Grammar(paragraphs=frozenset({"property"}),
                  texts=frozenset({"lpwstr", "lpstr", "bstr", "bool"}))

_WORD_HF = re.compile(r"word/(header|footer)\d*\.xml")
_WORD_NOTES = re.compile(r"word/(?:footnotes|endnotes)\.xml")
_NOTES = re.compile(r"ppt/notesSlides/notesSlide(\d+)\.xml")
# SmartArt text lives in its own data part, related from the part that shows it.
_DIAGRAM = re.compile(r"(?:word|ppt)/diagrams/data\d+\.xml")
_SHOWS_DIAGRAMS = re.compile(r"word/(?:document|header\d*|footer\d*)\.xml|"
                             r"ppt/(?:slides/slide\d+|slideMasters/slideMaster\d+|"
                             r"slideLayouts/slideLayout\d+)\.xml")
_SHEET_PART = re.compile(r"xl/worksheets/sheet\d*\.xml")
_SLIDE = re.compile(r"ppt/slides/slide(\d+)\.xml")
_MASTER = re.compile(r"ppt/(?:slideMasters/slideMaster|slideLayouts/slideLayout)\d+\.xml")
_EMBEDDED = re.compile(r"(?:word|xl|ppt)/embeddings/[^/]+\.(?:docx|docm|xlsx|xlsm|pptx|pptm)",
                       re.IGNORECASE)

# Excel header/footer codes: sections (&L &C &R), fonts (&"Arial,Bold"), sizes (&12),
# colours (&KFF0000, &K01+000), fields (&P &N &D &T &F &A &Z &G) and toggles (&B &I
# &U &E &X &Y &S &O &H). `&&` is a literal ampersand.
_HF_CODE = re.compile(r'&(?:"[^"]*"|\d+|K(?:[0-9A-Fa-f]{6}|\d\d[+-]\d{3})|[A-Za-z]|&)')


def is_ooxml(names: set[str]) -> bool:
    return "[Content_Types].xml" in names


def header_footer_sections(code: str) -> list[str]:
    """The visible text of an Excel header/footer string, one item per section."""
    sections: list[str] = []
    current: list[str] = []
    pos = 0
    for m in _HF_CODE.finditer(code):
        current.append(code[pos:m.start()])
        token = m.group(0)
        if token in ("&L", "&C", "&R"):
            sections.append("".join(current))
            current = []
        elif token == "&&":
            current.append("&")
        elif token[1:2] in ("P", "N", "D", "T", "F", "A", "Z", "G"):
            current.append(" ")  # a field: page number, date, file name...
        pos = m.end()
    current.append(code[pos:])
    sections.append("".join(current))
    return [s.strip() for s in sections if s.strip()]


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo, grammar: Grammar, bounds: Bounds
          ) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Paragraphs of one part; a damaged part (bad XML, bad compressed data) ends early,
    after what could be read: the other parts are still read."""
    try:
        with zf.open(info) as stream:
            for p in paragraphs(stream, grammar, bounds, MAX_XML_PART_BYTES):
                yield p.tag, p.text, p.attrs
    except LimitExceeded:
        raise
    except (BadXML, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError):
        return


def _where_shown(name: str) -> tuple[Rule, str, int]:
    """(rule, part, number) of the text of part `name` (and of what it relates to)."""
    if m := _WORD_HF.fullmatch(name):
        return "label", m.group(1), 0
    if m := _SLIDE.fullmatch(name):
        return "lines", "slide", int(m.group(1))
    if _MASTER.fullmatch(name):
        return "lines", "slide_master", 0
    return "lines", "slide" if name.startswith("ppt/") else "body", 0


def _diagram_places(zf: zipfile.ZipFile, bounds: Bounds) -> dict[str, tuple[Rule, str, int]]:
    """Which SmartArt data part is shown where: from the relationships of the parts
    that show diagrams (ECMA-376 Part 2, 9.3: `_rels/<part>.rels`)."""
    places: dict[str, tuple[Rule, str, int]] = {}
    names = set(zf.namelist())
    for name in sorted(names):
        if not _SHOWS_DIAGRAMS.fullmatch(name):
            continue
        folder, _, base = name.rpartition("/")
        rels = f"{folder}/_rels/{base}.rels"
        if rels not in names:
            continue
        for _tag, _text, attrs in _read(zf, zf.getinfo(rels), _RELS, bounds):
            target = posixpath.normpath(posixpath.join(folder, attrs.get("Target", "")))
            if _DIAGRAM.fullmatch(target):
                places.setdefault(target, _where_shown(name))
    return places


def pieces(zf: zipfile.ZipFile, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Marking-bearing text of an OOXML package (module docstring), in part order."""
    diagrams: dict[str, tuple[Rule, str, int]] | None = None
    for info in zf.infolist():
        name = info.filename
        if info.flag_bits & 0x1:
            continue  # an encrypted member cannot be read; the package is odd anyway
        if name == "word/document.xml":
            for tag, text, _a in _read(zf, info, _WORD, bounds):
                yield Piece("lines", "watermark" if tag == "textpath" else "body", text,
                            path=path)
        elif m := _WORD_HF.fullmatch(name):
            for tag, text, _a in _read(zf, info, _WORD, bounds):
                yield Piece("label", "watermark" if tag == "textpath" else m.group(1), text,
                            path=path)
        elif _WORD_NOTES.fullmatch(name):
            for _tag, text, _a in _read(zf, info, _WORD, bounds):
                yield Piece("lines", "footnote", text, path=path)
        elif _DIAGRAM.fullmatch(name):
            if diagrams is None:
                diagrams = _diagram_places(zf, bounds)
            rule, part, number = diagrams.get(name, _where_shown(name))
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece(rule, part, text, number=number, path=path)
        elif m := _NOTES.fullmatch(name):
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece("lines", "notes", text, number=int(m.group(1)), path=path)
        elif name == "xl/sharedStrings.xml":
            for _tag, text, _a in _read(zf, info, _SHARED_STRINGS, bounds):
                yield Piece("lines", "cell", text, path=path)
        elif _SHEET_PART.fullmatch(name):
            for tag, text, _a in _read(zf, info, _SHEET, bounds):
                if tag == "is":
                    yield Piece("lines", "cell", text, path=path)
                    continue
                part = "header" if tag.endswith("Header") else "footer"
                for section in header_footer_sections(text):
                    yield Piece("label", part, section, path=path)
        elif m := _SLIDE.fullmatch(name):
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece("lines", "slide", text, number=int(m.group(1)), path=path)
        elif _MASTER.fullmatch(name):
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece("lines", "slide_master", text, path=path)
        elif name == "docProps/custom.xml":
            pairs = [f"{a.get('name', '')}={text.strip()};"
                     for _tag, text, a in _read(zf, info, _CUSTOM, bounds)
                     if a.get("name", "").startswith("MSIP_Label_")]
            if pairs:
                yield Piece("msip", "msip_labels", " ".join(pairs), path=path)


def embedded(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """OOXML files embedded in this one (an Excel sheet inside a Word file)."""
    return [i for i in zf.infolist() if _EMBEDDED.fullmatch(i.filename)]
