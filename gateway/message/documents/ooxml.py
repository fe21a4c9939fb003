"""Text of Word, Excel and PowerPoint (OOXML) files where a marking stands.

Which parts are read, and as what (see `piece.Piece` for the rules):
- Word: `word/document.xml` paragraphs (`lines`); `word/header*.xml` and
  `word/footer*.xml` paragraphs (`label`), text split over runs joined, text boxes
  and DrawingML WordArt in them (their `w:txbxContent` paragraphs), and watermarks:
  VML WordArt `<v:textpath string="...">` (`label`, part `watermark`); footnotes
  and endnotes (`lines`, part `footnote`);
- Excel: `xl/sharedStrings.xml` strings, inline strings and formula string
  results (`<c t="str"><v>`) in the sheets (`lines`: a cell that is only the
  marking, or a label such as `Klasifikasi: SULIT`); the sheets' header/footer
  strings (`label`), after the `&`-codes are removed (`&C&"Arial,Bold"SULIT`,
  `&LTERHAD&RMuka &P`); text boxes and shapes drawn on a sheet (`xl/drawings`,
  `lines`, part `textbox`);
- PowerPoint: paragraphs of slides (`lines`, numbered; text boxes and shapes are
  paragraphs of the slide), of slide masters and layouts, of notes pages (`notes`);
- SmartArt (`*/diagrams/data*.xml`) wherever it is shown: the relationships of the
  document, header, footer, slide or master that shows it say where;
- any of them: `docProps/custom.xml` Microsoft Purview sensitivity labels
  (`MSIP_Label_<id>_Name`, `msip`), and `docMetadata/LabelInfo.xml` ([MS-OFFCRYPTO]
  2.6.4, newer Office: the label's id only, `clbl:label id= enabled= removed=`),
  given as the same `MSIP_Label_<id>_Enabled=` pairs (`msip`, part `label_info`).

A part is known by its content type in `[Content_Types].xml`, not by its name:
Office finds parts through relationships, so a header renamed `word/kepala.xml` is
a header still (the usual names are the fallback for a part of another type).

Word text is read as it is shown: a run in All caps or Small caps reads in capitals
(`rahsia` shown `RAHSIA` reads `RAHSIA`), whether the run itself says so or one of
its styles does (`_WordStyles`, from the styles parts, `word/styles.xml`).

Embedded OOXML files (`*/embeddings/*.docx|xlsx|pptx`) are returned as members
for the caller to open like archive members. Every part is read through
`xmltext` (streamed, DOCTYPE refused, byte cap) and charged to the bounds.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator

from gateway.message.documents.bounds import MAX_XML_PART_BYTES, Bounds, LimitExceeded
from gateway.message.documents.piece import Piece, Rule
from gateway.message.documents.xmltext import (
    WORD_CAPITALS,
    BadXML,
    Grammar,
    elements,
    paragraphs,
)

# Text in a run formatted All caps or Small caps (`w:caps`, `w:smallCaps`) is read in
# capitals, as Word shows it; with the document's styles, `_word_grammar`.
_WORD = Grammar(paragraphs=frozenset({"p"}), texts=frozenset({"t"}),
                tabs=frozenset({"tab", "ptab"}), breaks=frozenset({"br", "cr"}),
                attribute_texts=frozenset({("textpath", "string")}),
                capitals=WORD_CAPITALS)
_DRAWING = Grammar(paragraphs=frozenset({"p"}), texts=frozenset({"t"}),
                   breaks=frozenset({"br"}),
                   attribute_texts=frozenset({("textpath", "string")}))
_RELS = Grammar(paragraphs=frozenset({"Relationship"}), texts=frozenset())
_SHARED_STRINGS = Grammar(paragraphs=frozenset({"si"}), texts=frozenset({"t"}),
                          hidden=frozenset({"rPh"}))
_HEADER_FOOTER_TAGS = frozenset({"oddHeader", "oddFooter", "evenHeader", "evenFooter",
                                 "firstHeader", "firstFooter"})
# A cell is its inline string (`<is><t>`) or its value: a formula's string result
# (`t="str"`) is only in `<v>`. Other values (numbers, shared-string indexes) are
# digits, which no rule reads as a marking.
_SHEET = Grammar(paragraphs=_HEADER_FOOTER_TAGS | {"c"},
                 texts=_HEADER_FOOTER_TAGS | {"t", "v"}, hidden=frozenset({"rPh", "f"}))
_TYPES = Grammar(paragraphs=frozenset({"Default", "Override"}), texts=frozenset())
_CUSTOM = Grammar(paragraphs=frozenset({"property"}),
                  texts=frozenset({"lpwstr", "lpstr", "bstr", "bool"}))
_LABEL_INFO = Grammar(paragraphs=frozenset({"label"}), texts=frozenset())
_XSD_TRUE = ("1", "true")  # xsd:boolean (XML Schema Part 2, 3.2.2)
_OFF_VALUES = frozenset({"0", "false", "off"})  # ST_OnOff (ECMA-376 Part 1, 22.9.2.7): off

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
_XL_DRAWING = re.compile(r"xl/drawings/drawing\d+\.xml")
_EMBEDDED = re.compile(r"(?:word|xl|ppt)/embeddings/[^/]+\.(?:docx|docm|xlsx|xlsm|pptx|pptm)",
                       re.IGNORECASE)

# Excel header/footer codes: sections (&L &C &R), fonts (&"Arial,Bold"), sizes (&12),
# colours (&KFF0000, &K01+000), fields (&P &N &D &T &F &A &Z &G) and toggles (&B &I
# &U &E &X &Y &S &O &H). `&&` is a literal ampersand.
_HF_CODE = re.compile(r'&(?:"[^"]*"|\d+|K(?:[0-9A-Fa-f]{6}|\d\d[+-]\d{3})|[A-Za-z]|&)')


# What a part is, by its content type ([Content_Types].xml, ECMA-376 Part 2, 10.1.2):
# a part may have any name (Office finds parts by their relationships), so a header
# named `word/kepala.xml` is a header still. The usual names are the fallback for a
# part whose content type is not one of these.
_OOXML = "application/vnd.openxmlformats-officedocument."
_ROLES = {
    **{t: "word" for t in (
        _OOXML + "wordprocessingml.document.main+xml",
        _OOXML + "wordprocessingml.template.main+xml",
        "application/vnd.ms-word.document.macroenabled.main+xml",
        "application/vnd.ms-word.template.macroenabledtemplate.main+xml")},
    _OOXML + "wordprocessingml.header+xml": "header",
    _OOXML + "wordprocessingml.footer+xml": "footer",
    _OOXML + "wordprocessingml.footnotes+xml": "notes",
    _OOXML + "wordprocessingml.endnotes+xml": "notes",
    _OOXML + "drawingml.diagramdata+xml": "diagram",
    _OOXML + "presentationml.notesslide+xml": "notes_slide",
    _OOXML + "spreadsheetml.sharedstrings+xml": "shared_strings",
    _OOXML + "spreadsheetml.worksheet+xml": "sheet",
    "application/vnd.ms-excel.worksheet+xml": "sheet",
    _OOXML + "drawing+xml": "sheet_drawing",
    _OOXML + "presentationml.slide+xml": "slide",
    _OOXML + "presentationml.slidemaster+xml": "master",
    _OOXML + "presentationml.slidelayout+xml": "master",
    _OOXML + "custom-properties+xml": "custom",
    _OOXML + "wordprocessingml.styles+xml": "styles",
    "application/vnd.ms-office.classificationlabels+xml": "label_info",
}
_NUMBER = re.compile(r"(\d+)\.xml$")
_LABEL_ID = re.compile(r"[0-9A-Za-z-]{1,100}")
_LETTER = re.compile(r"[^\W\d_]")


def _content_types(zf: zipfile.ZipFile, bounds: Bounds) -> tuple[dict[str, str], dict[str, str]]:
    """(part name -> content type, extension -> content type) of [Content_Types].xml."""
    overrides: dict[str, str] = {}
    defaults: dict[str, str] = {}
    try:
        info = zf.getinfo("[Content_Types].xml")
    except KeyError:
        return overrides, defaults
    for tag, _text, attrs in _read(zf, info, _TYPES, bounds):
        ctype = attrs.get("ContentType", "").strip().lower()
        if tag == "Override":
            overrides[attrs.get("PartName", "").lstrip("/")] = ctype
        else:
            defaults[attrs.get("Extension", "").lower()] = ctype
    return overrides, defaults


def _by_name(name: str) -> str | None:
    if name == "word/document.xml":
        return "word"
    if m := _WORD_HF.fullmatch(name):
        return m.group(1)
    for rx, role in ((_WORD_NOTES, "notes"), (_DIAGRAM, "diagram"), (_NOTES, "notes_slide"),
                     (_SHEET_PART, "sheet"), (_XL_DRAWING, "sheet_drawing"),
                     (_SLIDE, "slide"), (_MASTER, "master")):
        if rx.fullmatch(name):
            return role
    return {"xl/sharedStrings.xml": "shared_strings",
            "word/styles.xml": "styles",
            "docProps/custom.xml": "custom",
            "docMetadata/LabelInfo.xml": "label_info"}.get(name)


def _roles(zf: zipfile.ZipFile, bounds: Bounds) -> dict[str, str]:
    """The role (`_ROLES`) of every part that holds text we read, by its content type,
    else by its usual name."""
    overrides, defaults = _content_types(zf, bounds)
    roles: dict[str, str] = {}
    for info in zf.infolist():
        name = info.filename
        ext = name.rpartition(".")[2].lower() if "." in name.rpartition("/")[2] else ""
        ctype = overrides.get(name) or defaults.get(ext)
        role = (_ROLES.get(ctype) if ctype else None) or _by_name(name)
        if role is not None:
            roles[name] = role
    return roles


def _number(name: str) -> int:
    m = _NUMBER.search(name)
    return int(m.group(1)) if m else 0


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


# Word styles (ECMA-376 Part 1, 17.7): how far a `w:basedOn` chain is followed. Real
# templates chain a few styles (Heading 1 on Normal); the bound is for hostile ones.
MAX_BASED_ON = 50
_WORD_CAPS_FLAGS = WORD_CAPITALS.flags


class _WordStyles:
    """Which capitals flags (`caps`, `smallCaps`) Word's styles turn on for a run.

    ECMA-376 Part 1: run properties come from the style hierarchy (17.7.2): the
    document defaults (`w:docDefaults/w:rPrDefault/w:rPr`, 17.7.5), then the
    paragraph's style (`w:pPr/w:pStyle`, 17.3.1.27), then the run's character style
    (`w:rPr/w:rStyle`, 17.3.2.29), then the run's own (direct) formatting. A
    paragraph or run that names no style, or one not defined, has its type's
    default style (`w:style w:default="1"`, 17.7.4.17). A style inherits the
    properties of the style it is based on (`w:basedOn`, 17.7.4.3), followed here
    at most `MAX_BASED_ON` steps and never round a cycle.

    `w:caps` (17.3.2.5) and `w:smallCaps` (17.3.2.33) are toggle properties
    (17.7.3): set in a style, `true` flips the state reached so far and `false`
    leaves it; set on the run itself, either is absolute (`xmltext` applies that).
    Word follows the flip (a character style in capitals over a paragraph style in
    capitals shows lower case); LibreOffice lets the nearer style win, and writes
    exactly that pair when a paragraph style and a character style both say
    UPPERCASE. Text is read as any reader shows it, so a flag that any level of the
    styles turns on counts as on: a marking shown in capitals to one reader is found,
    and text that no style puts in capitals is read as typed."""

    def __init__(self) -> None:
        self.flags: dict[str, set[str]] = {}  # style id -> flags it turns on itself
        self.based_on: dict[str, str] = {}
        self.defaults: set[str] = set()  # flags the document defaults turn on
        self.default_paragraph: str | None = None
        self.default_character: str | None = None
        self._chains: dict[str, frozenset[str]] = {}
        self._steps: dict[str, dict[str, int]] = {}  # style id -> flag -> steps up

    def learn(self, events: Iterator[tuple[str, int, dict[str, str]]]) -> None:
        """Reads the start tags of a styles part (`xmltext.elements`, every tag). What
        was read before an error raised by `events` is kept."""
        path: list[str] = []
        style = ""
        for tag, depth, attrs in events:
            del path[depth - 1:]
            path.append(tag)
            if depth == 2 and tag == "style":
                style = attrs.get("styleId", "")
                self.flags.setdefault(style, set())
                if attrs.get("default", "0").strip().lower() in _XSD_TRUE:
                    kind = attrs.get("type", "paragraph")
                    if kind == "paragraph" and self.default_paragraph is None:
                        self.default_paragraph = style
                    elif kind == "character" and self.default_character is None:
                        self.default_character = style
            elif depth == 3 and tag == "basedOn" and path[1] == "style":
                self.based_on.setdefault(style, attrs.get("val", ""))
            elif tag in _WORD_CAPS_FLAGS and attrs.get("val", "true").strip().lower() \
                    not in _OFF_VALUES:
                # `w:style/w:rPr/w:caps`; `w:docDefaults/w:rPrDefault/w:rPr/w:caps`.
                if depth == 4 and path[1:3] == ["style", "rPr"]:
                    self.flags[style].add(tag)
                elif depth == 5 and path[1:4] == ["docDefaults", "rPrDefault", "rPr"]:
                    self.defaults.add(tag)

    def any_capitals(self) -> bool:
        return bool(self.defaults) or any(self.flags.values())

    def chain(self, style_id: str) -> frozenset[str]:
        """Flags turned on by the style or a style it is based on, at most
        `MAX_BASED_ON` styles up the chain, never round a cycle.

        Kept per style: how many steps up the nearest style turning each flag on is.
        That does not depend on where a walk began, so every style on a walk is
        settled by it, and each style is walked over once in all: the cost is the
        number of styles, however long or many the chains."""
        known = self._chains.get(style_id)
        if known is not None:
            return known
        walked: list[str] = []
        seen: set[str] = set()
        current: str | None = style_id
        while current is not None and current in self.flags and current not in seen \
                and current not in self._steps:
            seen.add(current)
            walked.append(current)
            current = self.based_on.get(current)
        never = len(self.flags) + MAX_BASED_ON  # no such style up the chain
        steps = self._steps.get(current, {}) if current is not None else {}
        above = {flag: steps.get(flag, never) for flag in _WORD_CAPS_FLAGS}
        for sid in reversed(walked):
            above = {flag: 0 if flag in self.flags[sid] else min(n + 1, never)
                     for flag, n in above.items()}
            self._steps[sid] = above
        found = frozenset(flag for flag, n in self._steps.get(style_id, {}).items()
                          if n < MAX_BASED_ON)
        self._chains[style_id] = found
        return found

    def styled(self, paragraph_style: str | None, run_style: str | None) -> frozenset[str]:
        """Flags the styles turn on for a run (`xmltext._Capitals.styled`)."""
        if paragraph_style is None or paragraph_style not in self.flags:
            paragraph_style = self.default_paragraph
        if run_style is None or run_style not in self.flags:
            run_style = self.default_character
        found = frozenset(self.defaults)
        for style_id in (paragraph_style, run_style):
            if style_id is not None:
                found |= self.chain(style_id)
        return found



def _word_grammar(zf: zipfile.ZipFile, bounds: Bounds, roles: dict[str, str]) -> Grammar:
    """The Word grammar for this package: `_WORD` with the capitals its styles parts
    give (`_WordStyles`). Every styles part counts (a flag any of them turns on is on).
    A missing or damaged styles part gives what could be read of it, down to nothing:
    direct formatting only. A styles part over the byte cap, or with a DOCTYPE, is
    `LimitExceeded` as any part is."""
    styles = _WordStyles()
    for info in zf.infolist():
        if roles.get(info.filename) != "styles" or info.flag_bits & 0x1:
            continue
        try:
            with zf.open(info) as stream:
                styles.learn(elements(stream, None, bounds, MAX_XML_PART_BYTES))
        except LimitExceeded:
            raise
        except (BadXML, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError, RuntimeError):
            continue
    if not styles.any_capitals():
        return _WORD
    return dataclasses.replace(_WORD, capitals=dataclasses.replace(
        WORD_CAPITALS, styled=styles.styled))


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


def _where_shown(name: str, roles: dict[str, str]) -> tuple[Rule, str, int]:
    """(rule, part, number) of the text of part `name` (and of what it relates to)."""
    role = roles.get(name)
    if role in ("header", "footer"):
        return "label", str(role), 0
    if role == "slide":
        return "lines", "slide", _number(name)
    if role == "master":
        return "lines", "slide_master", 0
    return "lines", "slide" if name.startswith("ppt/") else "body", 0


def _diagram_places(zf: zipfile.ZipFile, bounds: Bounds, roles: dict[str, str]
                    ) -> dict[str, tuple[Rule, str, int]]:
    """Which SmartArt data part is shown where: from the relationships of the parts
    that show diagrams (ECMA-376 Part 2, 9.3: `_rels/<part>.rels`)."""
    places: dict[str, tuple[Rule, str, int]] = {}
    names = set(zf.namelist())
    for name in sorted(names):
        if roles.get(name) not in ("word", "header", "footer", "slide", "master") and \
                not _SHOWS_DIAGRAMS.fullmatch(name):
            continue
        folder, _, base = name.rpartition("/")
        rels = f"{folder}/_rels/{base}.rels"
        if rels not in names:
            continue
        for _tag, _text, attrs in _read(zf, zf.getinfo(rels), _RELS, bounds):
            target = posixpath.normpath(posixpath.join(folder, attrs.get("Target", "")))
            if roles.get(target) == "diagram":
                places.setdefault(target, _where_shown(name, roles))
    return places


def pieces(zf: zipfile.ZipFile, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Marking-bearing text of an OOXML package (module docstring), in part order."""
    roles = _roles(zf, bounds)
    diagrams: dict[str, tuple[Rule, str, int]] | None = None
    word: Grammar | None = None
    for info in zf.infolist():
        name = info.filename
        role = roles.get(name)
        if role is None:
            continue
        if info.flag_bits & 0x1:
            continue  # an encrypted member cannot be read; the package is odd anyway
        if role in ("word", "header", "footer", "notes") and word is None:
            word = _word_grammar(zf, bounds, roles)
        if role == "word":
            for tag, text, _a in _read(zf, info, word or _WORD, bounds):
                yield Piece("lines", "watermark" if tag == "textpath" else "body", text,
                            path=path)
        elif role in ("header", "footer"):
            for tag, text, _a in _read(zf, info, word or _WORD, bounds):
                yield Piece("label", "watermark" if tag == "textpath" else role, text,
                            path=path)
        elif role == "notes":
            for _tag, text, _a in _read(zf, info, word or _WORD, bounds):
                yield Piece("lines", "footnote", text, path=path)
        elif role == "diagram":
            if diagrams is None:
                diagrams = _diagram_places(zf, bounds, roles)
            rule, part, number = diagrams.get(name, _where_shown(name, roles))
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece(rule, part, text, number=number, path=path)
        elif role == "notes_slide":
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece("lines", "notes", text, number=_number(name), path=path)
        elif role == "shared_strings":
            for _tag, text, _a in _read(zf, info, _SHARED_STRINGS, bounds):
                yield Piece("lines", "cell", text, path=path)
        elif role == "sheet":
            for tag, text, _a in _read(zf, info, _SHEET, bounds):
                if tag == "c":
                    if _LETTER.search(text):  # numbers and string indexes: no marking
                        yield Piece("lines", "cell", text, path=path)
                    continue
                part = "header" if tag.endswith("Header") else "footer"
                for section in header_footer_sections(text):
                    yield Piece("label", part, section, path=path)
        elif role == "sheet_drawing":
            # Text boxes and shapes drawn on a sheet.
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece("lines", "textbox", text, path=path)
        elif role == "slide":
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece("lines", "slide", text, number=_number(name), path=path)
        elif role == "master":
            for _tag, text, _a in _read(zf, info, _DRAWING, bounds):
                yield Piece("lines", "slide_master", text, path=path)
        elif role == "custom":
            pairs = [f"{a.get('name', '')}={text.strip()};"
                     for _tag, text, a in _read(zf, info, _CUSTOM, bounds)
                     if a.get("name", "").startswith("MSIP_Label_")]
            if pairs:
                yield Piece("msip", "msip_labels", " ".join(pairs), path=path)
        elif role == "label_info":
            pairs = []
            for _tag, _text, a in _read(zf, info, _LABEL_INFO, bounds):
                label_id = a.get("id", "").strip().strip("{}")
                if not label_id or not _LABEL_ID.fullmatch(label_id):
                    continue
                enabled = (a.get("enabled", "1").strip().lower() in _XSD_TRUE
                           and a.get("removed", "0").strip().lower() not in _XSD_TRUE)
                pairs.append(f"MSIP_Label_{label_id}_Enabled={'true' if enabled else 'false'};")
            if pairs:
                yield Piece("msip", "label_info", " ".join(pairs), path=path)


def embedded(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """OOXML files embedded in this one (an Excel sheet inside a Word file)."""
    return [i for i in zf.infolist() if _EMBEDDED.fullmatch(i.filename)]
