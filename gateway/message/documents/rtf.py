"""RTF documents: body, header and footer groups, table cells, text boxes.

A small reader written from Microsoft's *Rich Text Format (RTF) Specification,
Version 1.9.1* (2008): the syntax of groups, control words (`\\word`, an optional
signed parameter, a space delimiter that belongs to the word), control symbols
(`\\~`, `\\'hh`...), `\\binN` binary data, `\\*` ignorable destinations, and
Unicode (`\\uN` with the `\\ucN` count of fallback characters to skip, which ends
at a brace; a `\\binN` and any control word count as one character).

Which text is read, and as what (see `piece.Piece` for the rules):
- the document body: each paragraph (`\\par`, `\\sect`) a `lines` piece, part
  `body`; a table cell (`\\cell`, `\\nestcell`) or a paragraph inside a table
  (`\\intbl`) part `cell`, each its own line;
- `\\header`, `\\headerl`, `\\headerr`, `\\headerf` and the `\\footer` ones:
  `label`, part `header`/`footer` (first-page, left and right ones alike);
- text boxes and shapes (`\\shptxt`) part `textbox`, and WordArt text (the shape
  property `gtextUNICODE`, which is how Word writes a watermark); inside a
  header or footer both belong to it;
- footnotes (`\\footnote`) part `footnote`; field results (`\\fldrslt`) as text;
- document properties (`\\*\\userprops`) named `MSIP_Label_*`: `msip`.

Text formatted All caps or Small caps (`\\caps`, `\\scaps`) is read in capitals, as
it is shown.

Not read: destinations that are not text (font, colour, style and list tables,
`\\info`, pictures, object data, theme data, data stores, field instructions,
numbering text, `\\shprslt` and `\\nonshppict` copies of a shape for old readers),
every `\\*` destination not named above, deleted revision text (`\\deleted`).
Bytes (`\\'hh`, and 8-bit text) decode in the code page of the current font's
character set (`\\fcharsetN`, `\\cpgN`) or else of the document (`\\ansicpgN`,
`\\mac`, `\\pc`, `\\pca`; cp1252 when none is named); double-byte code pages are
decoded a run at a time.

The reader is a loop, not a recursion: groups nested deeper than `MAX_DEPTH`
raise `LimitExceeded`, as do the bounds (decoded characters are charged, the
clock is checked). Damaged RTF (truncated, unbalanced) ends quietly with what
was read; text after the document's closing brace is not part of it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.piece import Piece, Rule

# Word nests groups a dozen levels deep (a shape in a table in a header); thousands
# of levels is an attack on readers that recurse.
MAX_DEPTH = 1000
_TIME_EVERY = 4096  # tokens between clock checks

_TOKEN = re.compile(
    rb"\\(?P<word>[a-zA-Z]{1,32})(?P<arg>-?[0-9]{1,10})? ?"
    rb"|\\'(?P<hex>[0-9a-fA-F]{2})"
    rb"|\\(?P<sym>[\x00-\xff])"
    rb"|(?P<brace>[{}])"
    rb"|(?P<text>[^\\{}\r\n]+)"
    rb"|[\r\n]+")

_HEADERS = {"header": "header", "headerl": "header", "headerr": "header",
            "headerf": "header", "footer": "footer", "footerl": "footer",
            "footerr": "footer", "footerf": "footer"}
# Destinations whose content is not text a reader sees (spec: "destinations").
_SKIP = frozenset({
    "colortbl", "stylesheet", "info", "pict", "objdata", "objclass", "objname", "objalias",
    "objsect", "objtime", "themedata", "datastore", "colorschememapping", "latentstyles",
    "listtable", "listoverridetable", "revtbl", "rsidtbl", "generator", "pgdsctbl",
    "filetbl", "fldinst", "xe", "tc", "tcn", "template", "bkmkstart", "bkmkend",
    "listtext", "pntext", "pntxta", "pntxtb", "shprslt", "nonshppict", "nonesttables",
    "nesttableprops", "atnid", "atnauthor", "annotation", "atndate", "atnref", "atrfstart",
    "atrfend", "ftnsep", "ftnsepc", "ftncn", "aftnsep", "aftnsepc", "aftncn", "docvar",
    "xmlnstbl", "fchars", "lchars", "do", "background", "passwordhash", "protusertbl",
    "wgrffmtfilter", "listpicture", "panose", "falt", "formfield", "datafield",
    "mmathPr", "htmltag", "mhtmltag", "author", "operator", "title", "subject",
    "keywords", "doccomm", "comment", "company", "category", "manager", "hlinkbase",
    "blipuid", "fontemb", "fontfile", "pgp", "ud",
})
# `\*` destinations that hold text we read (a shape's text box, document properties).
# LibreOffice writes `{\*\footnote`, Word `{\footnote`: both are the footnote.
_STARRED_READ = frozenset({"shpinst", "userprops", "footnote"})
# WordArt (a watermark is one) keeps its text in this shape property.
_WORDART = frozenset({"gtextunicode"})
_CHARACTERS = {
    "emdash": "\u2014", "endash": "\u2013", "bullet": "\u2022", "lquote": "\u2018",
    "rquote": "\u2019", "ldblquote": "\u201c", "rdblquote": "\u201d", "emspace": " ",
    "enspace": " ", "qmspace": " ", "zwj": "\u200d", "zwnj": "\u200c", "tab": "\t",
    "line": "\n", "page": "\n", "column": "\n", "lbr": "\n", "chpgn": " ", "chdate": " ",
    "chtime": " ", "chftn": " ", "sectnum": " ",
}
_SYMBOLS = {b"~": "\u00a0", b"_": "\u2011", b"\\": "\\", b"{": "{", b"}": "}", b":": ":",
            b"|": "|", b"-": ""}
# \fcharsetN -> code page (spec, "Font table").
_CHARSETS = {77: "mac_roman", 128: "cp932", 129: "cp949", 130: "johab", 134: "cp936",
             136: "cp950", 161: "cp1253", 162: "cp1254", 163: "cp1258", 177: "cp1255",
             178: "cp1256", 186: "cp1257", 204: "cp1251", 222: "cp874", 238: "cp1250",
             254: "cp437", 255: "cp850"}
_CODEPAGES = {10000: "mac_roman", 65001: "utf-8", 20127: "ascii", 1200: "utf-16-le"}


def looks_like_rtf(head: bytes) -> bool:
    return head.lstrip()[:5] == b"{\\rtf"


def _codec(codepage: int) -> str | None:
    name = _CODEPAGES.get(codepage, f"cp{codepage}")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


@dataclass(eq=False, slots=True)  # one flow is one object: compared by identity
class _Dest:
    """Where a group's text goes: a text flow that makes pieces (`text`), or a small
    value some other destination reads (`fonttbl`, `sp`, `sn`, `sv`, `userprops`,
    `propname`, `staticval`)."""

    kind: str
    rule: Rule = "lines"
    part: str = "body"
    buf: list[str] = field(default_factory=list)
    owner: _Dest | None = None  # the `sp`/`userprops` an `sn`/`sv`/`prop*` belongs to
    name: str = ""  # `sp`: the property name; `userprops`: the last property's name
    value: str = ""  # `sp`: the property value


@dataclass(slots=True)
class _Group:
    dest: _Dest
    skip: bool = False
    star: bool = False  # `\*` seen: the next control word decides whether to skip
    uc: int = 1
    font: int | None = None
    intbl: bool = False
    deleted: bool = False
    caps: bool = False  # `\\caps` / `\\scaps`: the text is shown in capitals


class _Reader:
    def __init__(self, data: bytes, bounds: Bounds) -> None:
        self.data = data
        self.bounds = bounds
        self.out: list[tuple[Rule, str, str]] = []
        self.labels: list[str] = []
        self.fonts: dict[int, str] = {}
        self.ansi = "cp1252"
        self.deff: int | None = None
        self.font_def = 0
        self.stack: list[_Group] = []
        self.skip_left = 0  # fallback characters still to skip after `\uN`
        self.high: int | None = None  # a UTF-16 high surrogate waiting for its pair
        self.pending = bytearray()
        self.pending_at: tuple[_Dest, str, bool] | None = None

    # -- text -------------------------------------------------------------------

    def codec(self, group: _Group) -> str:
        font = group.font if group.font is not None else self.deff
        return self.fonts.get(font, self.ansi) if font is not None else self.ansi

    def add_bytes(self, group: _Group, raw: bytes) -> None:
        if group.skip or group.star or group.deleted:
            return
        at = (group.dest, self.codec(group), group.caps)
        if self.pending_at is not None and self.pending_at != at:
            self.flush_bytes()
        self.pending_at = at
        self.pending += raw

    def flush_bytes(self) -> None:
        if self.pending_at is not None and self.pending:
            dest, codec, caps = self.pending_at
            text = bytes(self.pending).decode(codec, "replace")
            self.add_text(dest, text.upper() if caps else text)
        self.pending.clear()
        self.pending_at = None

    def add_text(self, dest: _Dest, text: str) -> None:
        if self.high is not None:
            text = "\ufffd" + text  # a high surrogate without its low half
            self.high = None
        if dest.kind == "fonttbl" or not text:
            return
        self.bounds.charge(len(text))
        dest.buf.append(text)

    def add_unicode(self, group: _Group, code: int) -> None:
        self.flush_bytes()
        code &= 0xFFFF  # N is a signed 16-bit value: \u-3913 is U+F0B7
        if 0xD800 <= code <= 0xDBFF:
            if self.high is not None:
                self.add_text(group.dest, "")
            self.high = code
            return
        if 0xDC00 <= code <= 0xDFFF:
            if self.high is None:
                char = "\ufffd"
            else:
                char = chr(0x10000 + ((self.high - 0xD800) << 10) + (code - 0xDC00))
                self.high = None
        else:
            char = chr(code)
        if not group.skip and not group.deleted:
            self.add_text(group.dest, char.upper() if group.caps else char)

    def end_paragraph(self, dest: _Dest, part: str | None = None) -> None:
        self.flush_bytes()
        if dest.kind != "text":
            return
        text = "".join(dest.buf)
        dest.buf.clear()
        self.out.append((dest.rule, part or dest.part, text))

    # -- groups -----------------------------------------------------------------

    def open_group(self) -> None:
        self.flush_bytes()
        if len(self.stack) >= MAX_DEPTH:
            raise LimitExceeded(f"RTF groups nested deeper than {MAX_DEPTH}")
        if self.stack:
            top = self.stack[-1]
            self.stack.append(_Group(top.dest, top.skip, False, top.uc, top.font, top.intbl,
                                     top.deleted, top.caps))
        else:
            self.stack.append(_Group(_Dest("text")))

    def close_group(self) -> None:
        self.flush_bytes()
        group = self.stack.pop()
        parent = self.stack[-1].dest if self.stack else None
        if group.dest is not parent:
            self.close_dest(group.dest)

    def close_dest(self, dest: _Dest) -> None:
        text = "".join(dest.buf)
        if dest.kind == "text":
            if text:
                self.end_paragraph(dest)
        elif dest.kind in ("sn", "propname") and dest.owner is not None:
            dest.owner.name = text.strip()
        elif dest.kind == "sv" and dest.owner is not None:
            dest.owner.value = text
        elif dest.kind == "staticval" and dest.owner is not None:
            if dest.owner.name.startswith("MSIP_Label_"):
                self.labels.append(f"{dest.owner.name}={text.strip()};")
        elif dest.kind == "sp" and dest.name.lower() in _WORDART and dest.value.strip() \
                and dest.owner is not None:
            self.out.append((dest.owner.rule, dest.owner.part, dest.value))

    def text_dest(self, group: _Group, rule: Rule, part: str) -> None:
        """A new text flow for this group; a header's shapes stay in the header."""
        if group.dest.kind == "text" and group.dest.rule == "label":
            rule, part = "label", group.dest.part
        self.set_dest(group, _Dest("text", rule, part))

    def set_dest(self, group: _Group, dest: _Dest) -> None:
        """Point the group at a new destination, closing the one it had opened itself
        (a second destination word in one group: `{\\header A\\footer B}`)."""
        parent = self.stack[-2].dest if len(self.stack) > 1 else None
        if group.dest is not parent:
            self.close_dest(group.dest)
        group.dest = dest

    # -- control words ------------------------------------------------------------

    def word(self, group: _Group, word: str, arg: int | None) -> None:
        if group.star:
            group.star = False
            if word not in _STARRED_READ:
                group.skip = True
        if group.skip:
            return
        dest = group.dest
        if word in _HEADERS:
            self.set_dest(group, _Dest("text", "label", _HEADERS[word]))
        elif word == "footnote":
            self.text_dest(group, "lines", "footnote")
        elif word == "shptxt":
            self.text_dest(group, "lines", "textbox")
        elif word == "sp":
            self.set_dest(group, _Dest("sp", owner=self.shape_owner(dest)))
        elif word in ("sn", "sv") and dest.kind == "sp":
            self.set_dest(group, _Dest(word, owner=dest))
        elif word == "userprops":
            self.set_dest(group, _Dest("userprops"))
        elif word in ("propname", "staticval") and dest.kind == "userprops":
            self.set_dest(group, _Dest(word, owner=dest))
        elif word == "fonttbl":
            self.set_dest(group, _Dest("fonttbl"))
        elif word in _SKIP:
            group.skip = True
        elif dest.kind == "fonttbl":
            self.font_word(word, arg)
        else:
            self.format_word(group, word, arg)

    def shape_owner(self, dest: _Dest) -> _Dest:
        """The text flow a shape's WordArt belongs to: the header it stands in, else a
        text box of its own."""
        if dest.kind == "text" and dest.rule == "label":
            return dest
        return _Dest("text", "lines", "textbox")

    def font_word(self, word: str, arg: int | None) -> None:
        if word == "f" and arg is not None:
            self.font_def = arg
        elif word == "fcharset" and arg is not None and arg in _CHARSETS:
            self.fonts[self.font_def] = _CHARSETS[arg]
        elif word == "cpg" and arg is not None:
            codec = _codec(arg)
            if codec is not None:
                self.fonts[self.font_def] = codec

    def format_word(self, group: _Group, word: str, arg: int | None) -> None:
        dest = group.dest
        if word in ("par", "sect"):
            self.end_paragraph(dest, "cell" if group.intbl and dest.rule == "lines" else None)
        elif word in ("cell", "nestcell"):
            self.end_paragraph(dest, "cell" if dest.rule == "lines" else None)
        elif word in ("row", "nestrow"):
            if dest.buf:
                self.end_paragraph(dest, "cell" if dest.rule == "lines" else None)
        elif word in _CHARACTERS:
            if not group.deleted:
                self.flush_bytes()
                self.add_text(dest, _CHARACTERS[word])
        elif word == "u" and arg is not None:
            self.add_unicode(group, arg)
            self.skip_left = group.uc
        elif word == "uc" and arg is not None:
            group.uc = max(0, arg)
        elif word == "intbl":
            group.intbl = True
        elif word == "pard":
            group.intbl = False
        elif word == "f" and arg is not None:
            group.font = arg
        elif word == "plain":
            group.font = None
            group.deleted = False
            group.caps = False
        elif word in ("caps", "scaps"):
            group.caps = arg != 0
        elif word == "deleted":
            group.deleted = arg != 0
        elif word == "deff" and arg is not None:
            self.deff = arg
        elif word == "ansicpg" and arg is not None:
            self.ansi = _codec(arg) or self.ansi
        elif word in ("mac", "pc", "pca"):
            self.ansi = {"mac": "mac_roman", "pc": "cp437", "pca": "cp850"}[word]

    def symbol(self, group: _Group, sym: bytes) -> None:
        if sym == b"*":
            if not group.skip:
                group.star = True
            return
        if group.skip or group.star:
            return
        if sym in (b"\r", b"\n"):
            self.word(group, "par", None)
        elif sym in _SYMBOLS and not group.deleted:
            self.flush_bytes()
            self.add_text(group.dest, _SYMBOLS[sym])

    # -- the loop -----------------------------------------------------------------

    def run(self) -> Iterator[tuple[Rule, str, str]]:
        data = self.data
        start = data.find(b"{")
        if start < 0:
            return
        pos = start
        end = len(data)
        count = 0
        while pos < end:
            count += 1
            if count % _TIME_EVERY == 0:
                self.bounds.check_time()
                yield from self.drain()
            m = _TOKEN.match(data, pos)
            if m is None:
                break  # a lone backslash at the end
            pos = m.end()
            kind = "word" if m.lastgroup == "arg" else m.lastgroup
            if kind == "brace":
                self.skip_left = 0  # the fallback of a \uN never crosses a brace
                if m.group("brace") == b"{":
                    self.open_group()
                else:
                    self.close_group()
                    if not self.stack:
                        break  # the document's closing brace
                continue
            if not self.stack or kind is None:
                continue
            group = self.stack[-1]
            if kind == "word":
                word = m.group("word").decode("ascii")
                raw_arg = m.group("arg")
                arg = int(raw_arg) if raw_arg is not None else None
                if word == "bin":
                    # N bytes of binary data follow; a length beyond the data ends it.
                    pos = min(end, pos + max(0, arg or 0))
                    if self.skip_left:
                        self.skip_left -= 1
                    continue
                if self.skip_left:
                    self.skip_left -= 1
                    continue
                self.flush_bytes()
                self.word(group, word, arg)
            elif kind == "hex":
                if self.skip_left:
                    self.skip_left -= 1
                    continue
                self.add_bytes(group, bytes.fromhex(m.group("hex").decode("ascii")))
            elif kind == "sym":
                if self.skip_left:
                    self.skip_left -= 1
                    continue
                self.flush_bytes()
                self.symbol(group, m.group("sym"))
            elif kind == "text":
                text = m.group("text")
                if self.skip_left:
                    dropped = min(self.skip_left, len(text))
                    self.skip_left -= dropped
                    text = text[dropped:]
                if text:
                    self.add_bytes(group, text)
        while self.stack:  # truncated: what was read still counts
            self.close_group()
        self.flush_bytes()
        yield from self.drain()

    def drain(self) -> Iterator[tuple[Rule, str, str]]:
        out, self.out = self.out, []
        yield from out


def _paragraphs(data: bytes, bounds: Bounds) -> Iterator[tuple[Rule, str, str]]:
    """(rule, part, text) of every paragraph, empty ones too, then the labels."""
    reader = _Reader(data, bounds)
    yield from reader.run()
    if reader.labels:
        yield "msip", "msip_labels", " ".join(reader.labels)


def pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Marking-bearing text of an RTF document (module docstring), in document order."""
    for rule, part, text in _paragraphs(data, bounds):
        if text.strip():
            yield Piece(rule, part, text, path=path)


def plain_text(data: bytes, bounds: Bounds) -> str:
    """The text a reader sees (body, then headers and footers), one paragraph a line:
    for RTF message bodies (Outlook)."""
    body: list[str] = []
    margins: list[str] = []
    for rule, _part, text in _paragraphs(data, bounds):
        if rule == "lines":
            body.append(text)
        elif rule == "label":
            margins.append(text)
    return "\n".join(body + margins)
