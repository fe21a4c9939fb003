"""OpenDocument text, spreadsheets and presentations (ODF 1.2/1.3), packaged or flat XML.

Follows OASIS *Open Document Format for Office Applications (OpenDocument) v1.3*
(Part 2, packages: `META-INF/manifest.xml` and its encryption data; Part 3, schema:
the elements named below). `.odt`, `.ods`, `.odp` (and `.odg`) are ZIP packages of
XML parts; `.fodt`, `.fods`, `.fodp` are the same XML in one flat
`<office:document>` (`office:meta`, `office:styles`, `office:master-styles`,
`office:body` in one file). Both are read by the same grammar.

Which text is read, and as what (see `piece.Piece` for the rules):
- `content.xml` body: paragraphs and headings (`text:p`, `text:h`; `lines`,
  part `body`), table cells (`table:table-cell`: `cell`, each paragraph its own
  line), frames, text boxes and shapes (`draw:frame`, `draw:text-box`,
  `draw:custom-shape`...: `textbox`), footnotes (`text:note-body`: `footnote`);
  presentations: everything on a slide (`draw:page`: `slide`, numbered from 1),
  speaker notes (`presentation:notes`: `notes`, with the slide's number), and the
  slides' header and footer texts (`presentation:header-decl`,
  `presentation:footer-decl`: `label`);
- `styles.xml` master pages: page headers and footers, first-page and left-page
  ones too (`style:header`, `style:footer`, `-first`, `-left`: `label`, part
  `header`/`footer`), which in a spreadsheet hold `style:region-left|center|right`
  (each region's paragraphs a label segment); a presentation's master page and
  handout master (their frames: `slide_master`);
- `meta.xml` user-defined properties named `MSIP_Label_*` (Microsoft Purview
  sensitivity labels that Office writes on export: `msip`);
- the same parts of embedded objects (`Object 1/content.xml`...), with the
  object's folder as their path.

Spaces written as `<text:s text:c="n"/>`, tabs and line breaks are kept (a wide
gap or a tab splits a header into segments). Comments (`office:annotation`),
deleted tracked changes, footnote citation numbers, phonetic ruby text, alt text
(`svg:title`, `svg:desc`) and embedded binary data are not shown text and are not
read. Every part goes through `xmltext` (expat, streamed, DOCTYPE refused, byte
cap, charged to the bounds).

An encrypted package (`encryption`: the manifest gives `manifest:encryption-data`
for a document part) cannot be read: its encrypted parts give no text. Its
readable `meta.xml` still counts.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

from gateway.message.documents import archives
from gateway.message.documents.bounds import MAX_XML_PART_BYTES, Bounds, LimitExceeded
from gateway.message.documents.piece import Piece, Rule
from gateway.message.documents.xmltext import (
    ODF_CAPITALS,
    BadXML,
    Grammar,
    Paragraph,
    paragraphs,
)

_HEADERS = frozenset({"header", "header-first", "header-left"})
_FOOTERS = frozenset({"footer", "footer-first", "footer-left"})
_MASTERS = frozenset({"master-page", "handout-master"})
_CELLS = frozenset({"table-cell", "covered-table-cell"})
# Drawing shapes that may hold paragraphs (ODF 1.3 part 3, 10.2 and 10.3).
_SHAPES = frozenset({"frame", "text-box", "custom-shape", "rect", "ellipse", "circle",
                     "polygon", "polyline", "path", "regular-polygon", "caption", "measure",
                     "line", "connector"})
_SHOWN = frozenset({"p", "h"})
_SVG = "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0}"
_META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0}"
# `svg:title`/`svg:desc` are paragraphs of their own here only so that a frame's alt
# text anchored inside a paragraph does not join that paragraph's text; they are
# never yielded. `text:p` inside them (a chart title) is its own paragraph still.
# Qualified names: the fields `text:title` (the document title) and
# `text:user-defined` (a custom property, as classification tools put in a header)
# are shown text of the paragraph they stand in.
_ALT = frozenset({_SVG + "title", _SVG + "desc"})
_USER_DEFINED = _META + "user-defined"
_DECLS = {"header-decl": "header", "footer-decl": "footer"}

_GRAMMAR = Grammar(
    paragraphs=_SHOWN | _ALT | frozenset(_DECLS) | {_USER_DEFINED},
    texts=_SHOWN | frozenset(_DECLS) | {_USER_DEFINED},
    tabs=frozenset({"tab"}),
    breaks=frozenset({"line-break"}),
    spaces=frozenset({"s"}),
    hidden=frozenset({"annotation", "tracked-changes", "note-citation", "ruby-text",
                      "binary-data"}),
    context=_HEADERS | _FOOTERS | _MASTERS | _CELLS | _SHAPES
    | {"page", "notes", "note-body"},
    # Text whose automatic style sets `fo:text-transform="uppercase"` or small caps is
    # read in capitals, as it is shown.
    capitals=ODF_CAPITALS,
)
_MANIFEST = Grammar(paragraphs=frozenset({"file-entry", "encryption-data", "algorithm"}),
                    texts=frozenset())
# A manifest lists every file of the package; a few KB, a few MB with thousands of
# pictures. More is not an office document.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
# Parts whose encryption makes the document unreadable (the manifest of a
# password-protected file marks every stream but `meta.xml` and the manifest).
_DOCUMENT_PARTS = ("content.xml", "styles.xml")
_OWN_PARTS = frozenset({"mimetype", "content.xml", "styles.xml", "meta.xml", "settings.xml",
                        "manifest.rdf"})
_OWN_FOLDERS = ("META-INF/", "Configurations2/", "Thumbnails/", "ObjectReplacements/")
_PICTURES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".svg", ".wmf", ".emf", ".svm",
             ".tif", ".tiff", ".webp")


def is_odf(names: set[str]) -> bool:
    """A ZIP that is an ODF package: `content.xml` with a `mimetype` entry or a
    `META-INF/manifest.xml`."""
    return "content.xml" in names and ("mimetype" in names or "META-INF/manifest.xml" in names)


def looks_like_flat(head: bytes) -> bool:
    """A flat ODF XML document (.fodt/.fods/.fodp): `<office:document` in the head."""
    return b"<office:document" in head


def _place(paragraph: Paragraph) -> tuple[Rule, str, int]:
    """The rule, part and number of a paragraph, from the containers it sits in."""
    if paragraph.tag in _DECLS:
        return "label", _DECLS[paragraph.tag], 0
    names = [name for name, _ordinal in paragraph.context]
    for name in names:  # outermost first: a text box in a header is the header
        if name in _HEADERS:
            return "label", "header", 0
        if name in _FOOTERS:
            return "label", "footer", 0
    if any(name in _MASTERS for name in names):
        return "lines", "slide_master", 0
    slide = next((ordinal for name, ordinal in paragraph.context if name == "page"), 0)
    if "notes" in names:
        return "lines", "notes", slide
    if slide:
        return "lines", "slide", slide
    for name in reversed(names):  # innermost: a table inside a text box is cells
        if name in _CELLS:
            return "lines", "cell", 0
        if name in _SHAPES:
            return "lines", "textbox", 0
        if name == "note-body":
            return "lines", "footnote", 0
    return "lines", "body", 0


def _from(stream: IO[bytes], bounds: Bounds, path: str, labels: list[str]
          ) -> Iterator[Piece]:
    """Pieces of one XML part (or a flat document); `MSIP_Label_*` properties are
    collected into `labels`. Bad XML ends the part quietly after what was read."""
    try:
        for paragraph in paragraphs(stream, _GRAMMAR, bounds, MAX_XML_PART_BYTES):
            bounds.check_time()
            if paragraph.tag in _ALT:
                continue
            if paragraph.tag == _USER_DEFINED:
                name = paragraph.attrs.get("name", "")
                if name.startswith("MSIP_Label_"):
                    labels.append(f"{name}={paragraph.text.strip()};")
                continue
            if not paragraph.text.strip():
                continue
            rule, part, number = _place(paragraph)
            yield Piece(rule, part, paragraph.text, number=number, path=path)
    except LimitExceeded:
        raise
    except (BadXML, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError):
        return


def _labels(labels: list[str], path: str) -> Iterator[Piece]:
    if labels:
        yield Piece("msip", "msip_labels", " ".join(labels), path=path)


def _manifest(zf: zipfile.ZipFile, bounds: Bounds) -> dict[str, list[str]] | None:
    """{full path: encryption algorithm names} of the entries the manifest says are
    encrypted; None without a readable manifest."""
    try:
        info = zf.getinfo("META-INF/manifest.xml")
    except KeyError:
        return None
    encrypted: dict[str, list[str]] = {}
    algorithms: list[str] = []
    declared = False
    try:
        with zf.open(info) as stream:
            # Nested elements come first: an entry's algorithm and encryption data,
            # then the entry that holds them.
            for p in paragraphs(stream, _MANIFEST, bounds, MAX_MANIFEST_BYTES):
                if p.tag == "algorithm":
                    algorithms.append(p.attrs.get("algorithm-name", ""))
                elif p.tag == "encryption-data":
                    declared = True
                elif p.tag == "file-entry":
                    if declared:
                        encrypted[p.attrs.get("full-path", "")] = algorithms
                    algorithms, declared = [], False
    except LimitExceeded:
        raise
    except (BadXML, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError):
        return None
    return encrypted


def _document_parts(encrypted: dict[str, list[str]]) -> list[str]:
    return [name for name in encrypted
            if name in _DOCUMENT_PARTS or name.endswith(tuple("/" + p for p in _DOCUMENT_PARTS))]


def _scheme(algorithms: list[str]) -> str | None:
    """`blowfish` when any part uses Blowfish CFB (the weakest names it), `aes` when
    every part uses AES (xmlenc aes256-cbc, xmlenc11 aes256-gcm), else unknown."""
    names = [a.lower() for a in algorithms]
    if any("blowfish" in a for a in names):
        return "blowfish"
    if names and all("#aes" in a for a in names):
        return "aes"
    return None


def encryption(zf: zipfile.ZipFile) -> tuple[bool, str | None]:
    """(encrypted, scheme): encrypted when the manifest declares
    `manifest:encryption-data` for the content; scheme `aes` or `blowfish`."""
    encrypted = _manifest(zf, Bounds())
    if not encrypted:
        return False, None
    parts = _document_parts(encrypted)
    if not parts:
        return False, None
    return True, _scheme([a for name in parts for a in encrypted[name]])


def _parts(zf: zipfile.ZipFile) -> list[tuple[str, zipfile.ZipInfo]]:
    """(folder, entry) of the XML parts to read: the document's, then its objects'."""
    found: list[tuple[str, zipfile.ZipInfo]] = []
    for info in zf.infolist():
        folder, _, leaf = info.filename.rpartition("/")
        if leaf not in ("content.xml", "styles.xml", "meta.xml"):
            continue
        if folder and (folder + "/").startswith(_OWN_FOLDERS):
            continue
        found.append((folder, info))
    return found


def pieces(zf: zipfile.ZipFile, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Marking-bearing text of an ODF package (module docstring), part by part."""
    encrypted = _manifest(zf, bounds) or {}
    for folder, info in _parts(zf):
        bounds.check_time()
        if info.flag_bits & 0x1 or info.filename in encrypted:
            continue  # ciphertext: nothing to read (`encryption` reports it)
        where = f"{path}/{folder}" if path and folder else folder or path
        labels: list[str] = []
        try:
            with zf.open(info) as stream:
                yield from _from(stream, bounds, where, labels)
        except LimitExceeded:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError, RuntimeError):
            continue
        yield from _labels(labels, where)


def flat_pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """The same pieces from a flat ODF document (.fodt/.fods/.fodp)."""
    labels: list[str] = []
    yield from _from(io.BytesIO(data), bounds, path, labels)
    yield from _labels(labels, path)


def embedded(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Files in the package that are not ODF's own parts, for the caller to open like
    archive members: OLE objects (`Object 2`: an Excel sheet embedded in a text),
    an inserted PDF, and anything else a sender added to the ZIP. Pictures are left
    out: a picture in a document is not a reason to call it unreadable."""
    found: list[zipfile.ZipInfo] = []
    for info in zf.infolist():
        name = info.filename
        if archives.is_dir(info) or name in _OWN_PARTS or name.startswith(_OWN_FOLDERS):
            continue
        if name.rpartition("/")[2] in _OWN_PARTS:
            continue  # an object's own XML: read by `pieces`
        if name.startswith("Pictures/") and name.lower().endswith(_PICTURES):
            continue
        found.append(info)
    return found
