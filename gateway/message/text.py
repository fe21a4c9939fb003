"""Text out of bytes: charset decoding, HTML rendered to text as it is shown (text
CSS shows in capitals is in capitals: see "CSS capitals"), and Unicode folding.

Decoding never raises: an unknown or bogus charset (including codecs that are not
text encodings, such as `zlib`) falls back to UTF-8, then Windows-1252. The 7-bit
stateful charsets (ISO-2022-JP/KR/CN, HZ-GB-2312, UTF-7) are always decoded, never
taken for ASCII because their bytes are ASCII, and 7-bit text carrying ISO 2022
escapes is read as ISO-2022 whatever its label says. Folding
is what the marking detector reads: NFKC (full-width letters become ASCII), with
zero-width and combining characters removed and Cyrillic/Greek/Cherokee letters
that look like Latin ones mapped to those Latin letters, so `SULІT` (Cyrillic І)
reads as `SULIT`; so are Latin small capitals (`ʀᴀʜꜱɪᴀ`) and a lower-case l between
capitals (`SULlT`), which sans-serif fonts draw as a capital I. Folded text is
for detection only; checks that quote the message (`body_matches`) read the plain
decoded text. A byte order mark says which Unicode encoding a text is in (Windows
Notepad's "Unicode" files), whatever the part's label.
"""

from __future__ import annotations

import codecs
import functools
import re
import unicodedata
from html import unescape


@functools.lru_cache(maxsize=256)
def _is_text_encoding(charset: str) -> bool:
    # A charset label that is not a text encoding (zlib, hex...) must not reach decode().
    try:
        return bool(codecs.lookup(charset)._is_text_encoding)
    except (LookupError, ValueError):
        # ValueError: a label with a NUL, UnicodeEncodeError one with an 8-bit byte
        # (surrogate-escaped by the parser): no codec either.
        return False


_UNDECLARED = frozenset({"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "default"})
# ASCII bytes that are not ASCII text: UTF-16/32 and EBCDIC (which mail never uses).
_NOT_ASCII_SUPERSETS = ("utf-16", "utf16", "utf-32", "utf32", "cp037", "ibm")
# 7-bit stateful charsets: every byte is ASCII, the text is not. ISO-2022-JP/KR/CN
# (RFC 1468, 1557, 1922), HZ (RFC 1842), UTF-7 (RFC 2152), Microsoft's ISO-2022-JP
# (cp5022x). Labels compared with everything but letters and digits removed.
_STATEFUL = ("iso2022", "csiso2022", "hz", "utf7", "unicode11utf7", "csunicode11utf7",
             "cp5022")
# An ISO 2022 designation of a multi-byte set (or JIS X 0201 kana): text that says
# it is ISO-2022 whatever its label.
_DESIGNATION = re.compile(rb"\x1b(?:\$[@AB]|\$\([@ABCDGHQ]|\([IJ]|\$\)[ACEG]|\$\*H|\$\+[I-M])")
_CN_DESIGNATION = re.compile(rb"\x1b\$(?:\)[AEG]|\*H|\+[I-M])")
_KR_DESIGNATION = b"\x1b$)C"


def _bare(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", label)


# ISO-2022-CN has no Python codec. RFC 1922: SO/SI switch between ASCII and the G1 set
# (ESC $ ) A: GB 2312, E: ISO-IR-165, a GB 2312 superset; G: CNS 11643 plane 1); ESC N
# and ESC O single-shift one character of G2/G3 (CNS 11643 planes 2-7). Line ends reset
# everything. CNS 11643 has no codec either: its characters become U+FFFD.
_CN_TOKEN = re.compile(rb"\x1b\$\)([AEG])|\x1b\$[*+][H-M]|\x1b[NO][\x21-\x7e]{0,2}|\x1b"
                       rb"|\x0e|\x0f|\r\n|\r|\n|[^\x1b\x0e\x0f\r\n]+")
_HIGH = bytes.maketrans(bytes(range(256)), bytes(b | 0x80 for b in range(256)))


def _iso2022_cn(data: bytes) -> tuple[str, bool]:
    out: list[str] = []
    clean = True
    g1 = ""
    shifted = False
    for m in _CN_TOKEN.finditer(data):
        token = m.group()
        if m.group(1):
            g1 = "cns" if m.group(1) == b"G" else "gb2312"
        elif token[:1] == b"\x1b":
            if token[1:2] in (b"N", b"O"):
                out.append("\ufffd")
                clean = False
            elif token == b"\x1b":
                clean = False
        elif token == b"\x0e":
            shifted = True
        elif token == b"\x0f":
            shifted = False
        elif token in (b"\r\n", b"\r", b"\n"):
            out.append(token.decode("ascii"))
            g1, shifted = "", False
        elif shifted and g1 == "gb2312":
            try:
                out.append(token.translate(_HIGH).decode("gb2312"))
            except UnicodeDecodeError:
                out.append(token.translate(_HIGH).decode("gb2312", errors="replace"))
                clean = False
        elif shifted:
            out.append("\ufffd" * max(1, len(token) // 2))
            clean = False
        else:
            out.append(token.decode("ascii", errors="replace"))
    return "".join(out), clean


def _escaped(data: bytes) -> tuple[str, bool]:
    """7-bit text with ISO 2022 escapes, by the designations it uses."""
    if _CN_DESIGNATION.search(data):
        return _iso2022_cn(data)
    codecs_ = ("iso2022_kr",) if _KR_DESIGNATION in data else (
        "iso2022_jp_2", "iso2022_jp_ext", "iso2022_jp_2004")
    for codec in codecs_:
        try:
            return data.decode(codec), True
        except UnicodeDecodeError:
            continue
    return data.decode(codecs_[0], errors="replace"), False


def _stateful(data: bytes, label: str) -> tuple[str, bool]:
    bare = _bare(label)
    if bare.startswith(("iso2022cn", "csiso2022cn")):
        return _iso2022_cn(data)
    if _is_text_encoding(label):
        try:
            return data.decode(label), True
        except (UnicodeDecodeError, ValueError):
            return data.decode(label, errors="replace"), False
    # A label Python has no codec for (cp50220, iso-2022-jp-ms...): read the escapes.
    return _escaped(data)


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
         (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"), (b"\xef\xbb\xbf", "utf-8"))
_WIDE = ("utf16", "utf32", "ucs2", "ucs4", "unicode")


def _unicode_file(data: bytes, label: str) -> tuple[str, bool] | None:
    """Text a Windows program saved as Unicode: a byte order mark says which (Notepad's
    "Unicode" is UTF-16LE with a BOM), and the program that opens the file reads it so
    whatever the mail part's label says; UTF-16 without a BOM (ASCII letters with a NUL
    byte beside each) when no charset is declared. None for anything else."""
    bare = _bare(label)
    if not bare.startswith(_WIDE):
        for bom, codec in _BOMS:
            if data.startswith(bom):
                try:
                    return data[len(bom):].decode(codec), True
                except UnicodeDecodeError:
                    return data[len(bom):].decode(codec, errors="replace"), False
    if label in _UNDECLARED and len(data) >= 4 and len(data) % 2 == 0 and b"\x00" in data[:2]:
        head = data[:1024]
        for codec, zeros in (("utf-16-le", head[1::2]), ("utf-16-be", head[0::2])):
            if zeros.count(0) >= 0.9 * len(zeros):
                try:
                    return data.decode(codec), True
                except UnicodeDecodeError:
                    return None
    return None


def decode_checked(data: bytes, charset: str | None) -> tuple[str, bool]:
    """`decode_bytes`, and whether the bytes were read in a known charset without
    guessing or replacement (False: the text is a best effort)."""
    label = (charset or "").strip().strip('"').lower()
    if data[:1] in (b"\xff", b"\xfe", b"\xef", b"\x00") or (data[1:2] == b"\x00"):
        found = _unicode_file(data, label)
        if found is not None:
            return found
    declared = label not in _UNDECLARED
    # A 7-bit stateful charset is never ASCII, however ASCII its bytes are.
    if declared and _bare(label).startswith(_STATEFUL):
        return _stateful(data, label)
    # Every other charset a mail client uses is an ASCII superset (but UTF-16/32, and
    # EBCDIC): ASCII bytes need no codec, unless ISO 2022 escapes say what they are.
    if data.isascii() and not label.startswith(_NOT_ASCII_SUPERSETS):
        if b"\x1b" in data and _DESIGNATION.search(data):
            return _escaped(data)
        return data.decode("ascii"), True
    if declared and _is_text_encoding(label):
        try:
            return data.decode(label), True
        except (UnicodeDecodeError, ValueError):
            pass
    try:
        # Undeclared 8-bit is UTF-8 (SMTPUTF8); under another declared charset, a guess.
        return data.decode("utf-8"), not declared
    except UnicodeDecodeError:
        pass
    if declared and _is_text_encoding(label):
        try:
            return data.decode(label, errors="replace"), False
        except (UnicodeDecodeError, ValueError):
            pass
    # Undeclared 8-bit: UTF-8 with a few broken bytes (a truncated name) is still
    # UTF-8; anything else is most likely a Windows code page.
    utf8 = data.decode("utf-8", errors="replace")
    if utf8.count("\ufffd") <= max(2, len(utf8) // 100):
        return utf8, False
    return data.decode("cp1252", errors="replace"), False


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes to text in the declared charset, degrading (never raising) on nonsense."""
    return decode_checked(data, charset)[0]


# Codecs (by `codecs.lookup` name) that are ASCII supersets without state and where
# byte 0x0A is always a whole line feed: a text in one of them decodes a run of
# whole lines at a time into the pieces of its whole decoding.
_LINE_CODECS = frozenset({"utf-8", "ascii", "latin-1", *(f"iso8859-{n}" for n in range(1, 17)),
                          *(f"cp125{n}" for n in range(9))})


def line_codec(charset: str | None) -> str | None:
    """The codec `decode_checked` reads a text labelled `charset` in, when runs of whole
    lines (each but the last ending at a line feed) may be decoded one at a time
    instead (`decode_lines`); None when the label alone cannot say (a stateful or wide
    charset, a codec outside _LINE_CODECS). What the bytes hold can still rule it out:
    a byte order mark or NUL at the start (`plain_start`), an escape, a byte the codec
    rejects."""
    label = (charset or "").strip().strip('"').lower()
    declared = label not in _UNDECLARED
    if declared and (_bare(label).startswith(_STATEFUL)
                     or label.startswith(_NOT_ASCII_SUPERSETS)):
        return None
    codec = label if declared and _is_text_encoding(label) else "utf-8"
    name = codecs.lookup(codec).name  # a text encoding: found
    return name if name in _LINE_CODECS else None


def plain_start(data: bytes) -> bool:
    """Whether a text's first bytes leave `decode_checked` on its plain path (no byte
    order mark, no UTF-16 without one): `decode_lines` applies only then."""
    return data[:1] not in (b"\xff", b"\xfe", b"\xef", b"\x00") and data[1:2] != b"\x00"


def decode_lines(data: bytes, codec: str) -> str | None:
    """A run of whole lines of a text whose `line_codec` is `codec` and whose start is
    `plain_start`, decoded as `decode_checked` decodes them within the whole text;
    None when it would not (an escape, which may make 7-bit text ISO-2022; a byte the
    codec rejects, after which the whole text is decoded by a fallback)."""
    if b"\x1b" in data:
        return None
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


# -- HTML ----------------------------------------------------------------------------

# Elements whose start or end breaks a line in a rendered mail. Table cells count:
# a marking alone in a cell is alone on its line, as the reader sees it.
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "center", "dd", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
    "table", "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul",
})
# A regex renderer rather than html.parser: about ten times faster on the HTML mail
# clients write, and possessive quantifiers keep hostile markup linear. No length cap
# on an attribute value: a tag with a longer one (a long inline style) was left as
# text, and the marking after it on the same line went unread. Each quoted value runs
# to the next quote, so hostile markup stays linear all the same.
_HIDDEN_START = re.compile(r"(?i)<(script|style|template)\b|<!--")
_HIDDEN_END = {name: re.compile(rf"(?i)</{name}\s*>") for name in ("script", "style", "template")}
_TAG = re.compile(
    r"""<(/?)([A-Za-z][A-Za-z0-9:-]*+)((?>[^<>"']++|"[^"]*+"|'[^']*+')*+)/?>"""
    r"|<![^<>]*+>|<\?[^<>]*+>")
_HREF = re.compile(r"""(?i)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")


def _drop_hidden(html: str, sheets: list[str] | None = None) -> str:
    """Remove comments and script/style/template content in one forward pass; with
    `sheets`, append the text of each `<style>` element to it (MAX_STYLE_CHARS in
    all: the rest is not read).

    An unclosed one hides the rest of the document, as in a browser; scanning
    only forward keeps hostile input (thousands of unclosed `<script>`) linear.
    """
    out: list[str] = []
    pos = 0
    room = MAX_STYLE_CHARS
    while True:
        m = _HIDDEN_START.search(html, pos)
        if m is None:
            out.append(html[pos:])
            break
        out.append(html[pos:m.start()])
        if m.group(1):
            close = _HIDDEN_END[m.group(1).lower()].search(html, m.end())
            end = close.end() if close else -1
            if sheets is not None and room > 0 and m.group(1).lower() == "style":
                stop = close.start() if close else len(html)
                gt = html.find(">", m.end(), stop)
                if gt >= 0:
                    sheets.append(html[gt + 1:min(stop, gt + 1 + room)])
                    room -= len(sheets[-1])
        else:
            found = html.find("-->", m.end())
            end = found + 3 if found >= 0 else -1
        if end < 0:
            break
        pos = end
    return "".join(out)


# -- CSS capitals ----------------------------------------------------------------------
#
# Text a mail client shows in capitals is read in capitals, as the document readers
# read Word's All caps: CSS `text-transform: uppercase`, and small capitals by
# `font-variant` or `font-variant-caps` (small-caps, all-small-caps, petite-caps,
# all-petite-caps, unicase) or the `font` shorthand. `capitalize` (a capital first
# letter only) and `lowercase` leave the text as typed. Both properties are inherited;
# a declaration on an element holds for its content up to its end tag; an element left
# open ends where HTML parsing ends it: with the element holding it (`</td>` closes
# an open `<span>` in the cell), at an implied end (a new `<p>` or block closes an
# open paragraph, `<li>` an item, `<dd>`/`<dt>` a definition, `<tr>`/`<td>` a row or
# cell), or at the end of the document. Declarations come from the `style` attribute
# of any element and from the message's `<style>` elements: rules whose selector is a
# type, `*`, a class or an id or a compound of them (`span`, `.x`, `p.x`, `#y`,
# `td.a.b`; in selector lists; inside `@media` blocks whatever the medium), in the
# cascade's order: `!important`, then inline, then specificity, then order. Classes
# and ids match in any case, as in quirks mode, which most mail is in.
#
# Not modelled (that text is read as typed): selectors with combinators, attributes
# or pseudo-classes (`.a p`, `p > span`, `[lang]`, `:first-child`, `::first-line`),
# external style sheets (`<link>`, `@import`), CSS nesting, scripts, and the
# re-opening of formatting elements across paragraphs (HTML's adoption agency).
# Bounds, past which text is read as typed: MAX_STYLE_CHARS of style sheet text and
# MAX_CSS_RULES capital-making selectors are read; elements nest MAX_HTML_DEPTH deep
# (Blink's parser bound; a deeper element's own style is not applied, it takes its
# parent's); MATCH_BUDGET selector tests per document. Every step is linear in the
# input.

MAX_STYLE_CHARS = 256 * 1024
MAX_CSS_RULES = 4096
MAX_HTML_DEPTH = 512
MATCH_BUDGET = 300_000
_TRANSFORM, _VARIANT = 1, 2  # bits of an element's capitals state
_CAPS_PROPERTIES = {"text-transform": _TRANSFORM, "font-variant": _VARIANT,
                    "font-variant-caps": _VARIANT, "font": _VARIANT}
_TRANSFORM_WORDS = frozenset({"none", "capitalize", "uppercase", "lowercase", "full-width",
                              "full-size-kana", "initial", "revert", "revert-layer"})
_CAPS_VARIANTS = frozenset({"small-caps", "all-small-caps", "petite-caps", "all-petite-caps",
                            "unicase"})
_OTHER_VARIANTS = frozenset({
    "normal", "none", "titling-caps", "initial", "revert", "revert-layer",
    "common-ligatures", "no-common-ligatures", "discretionary-ligatures",
    "no-discretionary-ligatures", "historical-ligatures", "no-historical-ligatures",
    "contextual", "no-contextual", "lining-nums", "oldstyle-nums", "proportional-nums",
    "tabular-nums", "diagonal-fractions", "stacked-fractions", "ordinal", "slashed-zero",
    "jis78", "jis83", "jis90", "jis04", "simplified", "traditional", "full-width",
    "proportional-width", "ruby", "historical-forms", "sub", "super"})
# The `font` shorthand resets the variant when it is valid: a size then a family, or
# a system font.
_FONT_SIZE = re.compile(
    r"(?:^|\s)(?:[+-]?(?:\d++\.?\d*+|\.\d++)(?:[a-z]++|%)?|xx-small|x-small|small|medium|"
    r"large|x-large|xx-large|xxx-large|larger|smaller)(?:\s*+/\s*+\S++)?\s++\S")
_SYSTEM_FONTS = frozenset({"caption", "icon", "menu", "message-box", "small-caption",
                           "status-bar", "initial", "revert", "revert-layer"})
_CAPS_HINT = re.compile(r"(?i)transform|variant|font\s*+:|\\")
_CSS_COMMENT = re.compile(r"/\*(?:[^*]++|\*(?!/))*+(?:\*/)?")
_CSS_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{1,6})[ \t\r\n\f]?|\\(.)", re.S)
_DECLARATION = re.compile(r"""(?:[^;"']++|"[^"]*+"?|'[^']*+'?)++""")
_IMPORTANT = re.compile(r"!\s*+important$")
_CSS_STOP = re.compile(r"[{};]")
_COMPOUND = re.compile(r"(\*|[a-z][a-z0-9_-]*+)?((?:[.#][^\s.#:\[\]>+~*(),{}]++)*+)")
_ATTRIBUTE = re.compile(
    r"""([^\s"'<>/=]++)(?:\s*+=\s*+(?:"([^"]*+)"|'([^']*+)'|([^\s>]*+)))?""")
_STYLED = re.compile(r"(?i)style")

# property bit: (True capitals, False as typed, None inherit; !important)
_Declarations = dict[int, tuple[bool | None, bool]]
# a rule: type ("" for any), classes, id (""), specificity, order, its declarations
_Rule = tuple[str, frozenset[str], str, tuple[int, int, int], int, _Declarations]


def _css_unescape(text: str) -> str:
    """CSS escapes (`\\74`, `\\t`) resolved (CSS Syntax 3, 4.3.7)."""
    if "\\" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        if m.group(2) is not None:
            return m.group(2)
        code = int(m.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"

    return _CSS_ESCAPE.sub(one, text)


def _caps_value(name: str, value: str) -> bool | str | None:
    """A declaration's value: True (capitals), False (as typed), None (inherit), or
    "" when the value is not valid for the property (the declaration is dropped)."""
    words = value.split()
    if value in ("inherit", "unset"):
        return None
    if name == "text-transform":
        return "uppercase" in words if words and set(words) <= _TRANSFORM_WORDS else ""
    if name == "font":
        if "small-caps" in words:
            return True
        return False if value in _SYSTEM_FONTS or _FONT_SIZE.search(value) else ""
    if any(w in _CAPS_VARIANTS for w in words):
        return True
    return False if words and set(words) <= _OTHER_VARIANTS else ""


def _declarations(block: str) -> _Declarations:
    """The capitals properties a declaration block (a `style` attribute, a rule's body)
    sets: the last valid declaration of each wins, unless an earlier one is
    `!important` (CSS Cascade 4, 6.4)."""
    out: _Declarations = {}
    if not _CAPS_HINT.search(block):
        return out
    if "/*" in block:
        block = _CSS_COMMENT.sub("", block)
    for m in _DECLARATION.finditer(block):
        name, sep, value = m.group().partition(":")
        name = _css_unescape(name).strip().lower()
        prop = _CAPS_PROPERTIES.get(name) if sep else None
        if prop is None:
            continue
        value = _css_unescape(value).strip().lower()
        important = _IMPORTANT.search(value)
        if important:
            value = value[:important.start()].rstrip()
        parsed = _caps_value(name, value)
        if parsed == "" or (prop in out and out[prop][1] and not important):
            continue
        out[prop] = (parsed if isinstance(parsed, bool) else None, bool(important))
    return out


class _StyleSheet:
    """The capital-making rules of a message's `<style>` elements, each indexed by the
    key an element finds it by: its id, else one of its classes, else its type."""

    def __init__(self, sheets: list[str]) -> None:
        self.by_key: dict[str, list[_Rule]] = {}
        self.count = 0
        self.budget = MATCH_BUDGET
        for sheet in sheets:
            # `<!--` and `-->` around a style sheet (Word, Outlook) are no part of it.
            sheet = sheet.replace("<!--", " ").replace("-->", " ")
            self._read(_CSS_COMMENT.sub("", sheet) if "/*" in sheet else sheet)

    def _read(self, css: str) -> None:
        # Rules at the top level and inside at-rule blocks alike; statements
        # (`@import ...;`) and stray braces skipped. Every step moves forward.
        pos = 0
        while self.count < MAX_CSS_RULES:
            m = _CSS_STOP.search(css, pos)
            if m is None:
                return
            prelude = css[pos:m.start()].strip()
            pos = m.end()
            if m.group() != "{" or prelude.startswith("@"):
                continue  # an at-rule block's rules are read as they come
            close = css.find("}", pos)
            end = close if close >= 0 else len(css)
            declared = _declarations(css[pos:end])
            pos = end + 1
            if declared:
                for selector in prelude.split(","):
                    self._add(_css_unescape(selector).strip(), declared)

    def _add(self, selector: str, declared: _Declarations) -> None:
        m = _COMPOUND.fullmatch(selector.lower())
        if m is None or not selector or self.count >= MAX_CSS_RULES:
            return  # not modelled: combinators, attributes, pseudo-classes
        kind = m.group(1) if m.group(1) not in (None, "*") else ""
        parts = re.findall(r"[.#][^.#]+", m.group(2))
        ids = [p[1:] for p in parts if p[0] == "#"]
        classes = frozenset(p[1:] for p in parts if p[0] == ".")
        if len(set(ids)) > 1:
            return  # `#a#b` matches nothing
        ident = ids[0] if ids else ""
        rule: _Rule = (kind, classes, ident, (len(ids), len(parts) - len(ids),
                                              1 if kind else 0), self.count, declared)
        key = f"#{ident}" if ident else f".{min(classes)}" if classes else kind
        self.by_key.setdefault(key, []).append(rule)
        self.count += 1

    def matching(self, name: str, classes: list[str], ident: str) -> list[_Rule]:
        """The rules an element (lower-case name, classes, id) matches."""
        keys = [name, ""] + [f".{c}" for c in classes] + ([f"#{ident}"] if ident else [])
        found: list[_Rule] = []
        for key in keys:
            for rule in self.by_key.get(key, ()):
                self.budget -= 1
                if self.budget < 0:
                    return found  # past the budget: read as typed
                kind, want, rule_id, _spec, _order, _decl = rule
                if (not kind or kind == name) and (not rule_id or rule_id == ident) and \
                        want.issubset(classes):
                    found.append(rule)
        return found


def _attributes(text: str, wanted: tuple[str, ...]) -> dict[str, str]:
    """The first value of each `wanted` attribute of a start tag's attribute text,
    character references resolved (HTML: a repeated attribute is ignored)."""
    out: dict[str, str] = {}
    for m in _ATTRIBUTE.finditer(text):
        name = m.group(1).lower()
        if name in wanted and name not in out:
            value = m.group(2) or m.group(3) or m.group(4) or ""
            out[name] = unescape(value) if "&" in value else value
    return out


def _cascade(state: int, rules: list[_Rule], inline: _Declarations) -> int:
    """An element's capitals state from its parent's `state`, the style sheet rules it
    matches and its own `style` attribute (CSS Cascade 4, 6: importance, then
    inline, then specificity, then order)."""
    for prop in (_TRANSFORM, _VARIANT):
        best: tuple[bool, bool, tuple[int, int, int], int] | None = None
        value: bool | None = None
        for _k, _c, _i, spec, order, declared in rules:
            if prop in declared:
                rank = (declared[prop][1], False, spec, order)
                if best is None or rank > best:
                    best, value = rank, declared[prop][0]
        if prop in inline:
            rank = (inline[prop][1], True, (0, 0, 0), 0)
            if best is None or rank > best:
                best, value = rank, inline[prop][0]
        if best is not None and value is not None:
            state = state | prop if value else state & ~prop
    return state


# Implied ends (HTML Living Standard, 13.2.6.4.7): a start tag closes the nearest open
# element of a group unless an element of the group's scope boundary is nearer.
# Group: (elements it closes, scope boundary, start tags that close it).
_SCOPE = frozenset({"applet", "caption", "html", "table", "td", "th", "marquee", "object",
                    "template", "foreignobject", "desc", "title", "mi", "mo", "mn", "ms",
                    "mtext", "annotation-xml"})
_TABLE_SCOPE = frozenset({"html", "table", "template"})
_P_CLOSERS = frozenset({
    "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir",
    "div", "dl", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
    "h4", "h5", "h6", "header", "hgroup", "hr", "main", "menu", "nav", "ol", "p", "pre",
    "listing", "section", "summary", "ul", "xmp", "li", "dd", "dt", "plaintext", "search"})
_GROUPS = (
    (frozenset({"p"}), _SCOPE | {"button"}, _P_CLOSERS),
    (frozenset({"li"}), _SCOPE | {"ol", "ul"}, frozenset({"li"})),
    (frozenset({"dd", "dt"}), _SCOPE | {"dl", "ol", "ul", "li"}, frozenset({"dd", "dt"})),
    (frozenset({"td", "th"}), _TABLE_SCOPE,
     frozenset({"td", "th", "tr", "tbody", "thead", "tfoot"})),
    (frozenset({"tr"}), _TABLE_SCOPE, frozenset({"tr", "tbody", "thead", "tfoot"})),
    (frozenset({"tbody", "thead", "tfoot"}), _TABLE_SCOPE,
     frozenset({"tbody", "thead", "tfoot"})),
)
# Per element name: (group, True when the group closes it, False when it bounds the
# group's scope).
_GROUP_ROLES = {name: tuple((g, name in closes) for g, (closes, scope, _t) in enumerate(_GROUPS)
                            if name in closes or name in scope)
                for name in frozenset().union(*(c | s for c, s, _t in _GROUPS))}
_CLOSED_BY = {name: tuple(g for g, (_c, _s, starts) in enumerate(_GROUPS) if name in starts)
              for name in frozenset().union(*(t for _c, _s, t in _GROUPS))}
_NO_GROUP = (-1,) * len(_GROUPS)
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
                   "meta", "param", "source", "track", "wbr", "keygen", "basefont",
                   "bgsound", "frame", "image"})


def _shown(text: str) -> str:
    """Raw HTML text in capitals, with its character references resolved first (and
    `&` escaped again for the one `unescape` of the whole rendering)."""
    if "&" in text:
        text = unescape(text)
    return text.upper().replace("&", "&amp;")


def html_to_text(html: str) -> tuple[str, tuple[str, ...]]:
    """Render HTML to plain text lines, and collect link targets (href) on the way.

    Text is as a mail client shows it: without tags, comments, scripts and styles, a
    line break at each block element, runs of spaces collapsed, and in capitals where
    CSS shows it in capitals (see "CSS capitals" above for what is modelled and what is
    not). Never raises; linear in the length of `html`."""
    shown, _typed, hrefs = html_to_texts(html)
    return shown, hrefs


def html_to_texts(html: str) -> tuple[str, str | None, tuple[str, ...]]:
    """`html_to_text`, and the text as typed where CSS shows some of it in capitals
    (None when it shows none): a password written in a styled block is the typed
    one (gateway.message.unlock), a marking the shown one."""
    hrefs: list[str] = []
    sheets: list[str] = []
    html = _drop_hidden(html, sheets)
    sheet = _StyleSheet(sheets) if sheets else None
    if sheet is not None and not sheet.count:
        sheet = None
    wanted = ("style", "class", "id") if sheet is not None else ("style",)
    # Open elements: (name, capitals state, index of the open element of each group
    # the next start tag may close, or -1). Deeper than MAX_HTML_DEPTH: only counted.
    stack: list[tuple[str, int, tuple[int, ...]]] = []
    open_count: dict[str, int] = {}
    too_deep: dict[str, int] = {}
    state = 0
    out: list[str] = []
    typed: list[str] | None = None  # `out` as typed, from the first segment shown in capitals
    pos = 0
    for m in _TAG.finditer(html):
        start, end = m.span()
        if start > pos:
            if state and typed is None:
                typed = list(out)
            out.append(_shown(html[pos:start]) if state else html[pos:start])
            if typed is not None:
                typed.append(html[pos:start])
        pos = end
        slash, name, attrs = m.groups()
        if name is None:
            continue  # <!DOCTYPE>, <![CDATA[...]]>, <?...?>
        name = name.lower()
        if name in ("a", "area", "base") and not slash:
            h = _HREF.search(attrs)
            if h:
                hrefs.append(unescape(h.group(1) or h.group(2) or h.group(3) or "").strip())
        if name in _BLOCK:
            out.append("\n")
            if typed is not None:
                typed.append("\n")
        if slash:  # an end tag: close the nearest open one of its name
            if too_deep.get(name):
                too_deep[name] -= 1
            elif open_count.get(name):
                while stack:
                    top = stack.pop()[0]
                    open_count[top] -= 1
                    if top == name:
                        break
                state = stack[-1][1] if stack else 0
            continue
        closes = _CLOSED_BY.get(name)
        if closes and stack:
            groups = stack[-1][2]
            cut = -1
            for g in closes:
                if groups[g] >= 0 and (cut < 0 or groups[g] < cut):
                    cut = groups[g]
            if cut >= 0:
                for closed in stack[cut:]:
                    open_count[closed[0]] -= 1
                del stack[cut:]
                state = stack[-1][1] if stack else 0
        if name in _VOID or ((open_count.get("svg") or open_count.get("math"))
                             and html[end - 2] == "/"):
            continue
        if len(stack) >= MAX_HTML_DEPTH:
            too_deep[name] = too_deep.get(name, 0) + 1
            continue
        found = _attributes(attrs, wanted) if attrs and (
            sheet is not None or _STYLED.search(attrs)) else {}
        own = state
        inline = _declarations(found["style"]) if "style" in found else {}
        rules = sheet.matching(
            name, list(dict.fromkeys(found.get("class", "").lower().split()[:64])),
            found.get("id", "").strip().lower()) if sheet is not None else []
        if inline or rules:
            own = _cascade(state, rules, inline)
        groups = stack[-1][2] if stack else _NO_GROUP
        roles = _GROUP_ROLES.get(name)
        if roles:
            changed = list(groups)
            for g, closes_it in roles:
                changed[g] = len(stack) if closes_it else -1
            groups = tuple(changed)
        stack.append((name, own, groups))
        open_count[name] = open_count.get(name, 0) + 1
        state = own
    if pos < len(html):
        if state and typed is None:
            typed = list(out)
        out.append(_shown(html[pos:]) if state else html[pos:])
        if typed is not None:
            typed.append(html[pos:])
    return _lines(out), None if typed is None else _lines(typed), tuple(hrefs)


def _lines(out: list[str]) -> str:
    text = unescape("".join(out)).replace("\xa0", " ")
    # Collapse runs of spaces inside a line the way a browser does, keep line breaks.
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


# -- folding -------------------------------------------------------------------------

# Zero-width, bidi-control and invisible characters, and combining marks left after NFKC.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")

# Letters that render like Latin ones. Applied everywhere: the folded text only feeds
# marking detection, where a Cyrillic word turned into Latin letters cannot become
# a marking unless it was written to look like one.
_CONFUSABLES = str.maketrans({
    # Cyrillic
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ү": "Y", "Ӏ": "I",
    "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W", "Ꙅ": "S",
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i",
    "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "ο": "o", "ι": "i", "α": "a", "κ": "k", "ν": "v", "ρ": "p",
    # Armenian and Cherokee capitals used in spoofing kits
    "Ս": "U", "Տ": "S", "Օ": "O",
    # Latin small capitals (IPA and phonetic letters): they render as capitals, so
    # `ʀᴀʜꜱɪᴀ` reads as RAHSIA; NFKC leaves them alone
    "ᴀ": "A", "ʙ": "B", "ᴄ": "C", "ᴅ": "D", "ᴇ": "E", "ꜰ": "F", "ɢ": "G", "ʜ": "H",
    "ɪ": "I", "ᴊ": "J", "ᴋ": "K", "ʟ": "L", "ᴍ": "M", "ɴ": "N", "ᴏ": "O", "ᴘ": "P",
    "ʀ": "R", "ꜱ": "S", "ᴛ": "T", "ᴜ": "U", "ᴠ": "V", "ᴡ": "W", "ʏ": "Y", "ᴢ": "Z",
    "Ꭰ": "D", "Ꭱ": "R", "Ꭺ": "A", "Ᏼ": "B", "Ꭼ": "E", "Ꮋ": "H", "Ꮪ": "S",
    "Ꮮ": "L", "Ꭲ": "T", "Ꮃ": "W", "Ꮇ": "M", "Ꮯ": "C", "Ꮩ": "V",
})


# A lower-case l between capitals looks like a capital I in the sans-serif fonts
# documents use (`SULlT`, `RAHSlA`); no capitalised word has one. The `l` first: the
# search runs at literal speed (20 times faster on prose than a look-behind first).
_L_FOR_I = re.compile(r"l(?<=[A-Z]l)(?=[A-Z])")


def fold(text: str) -> str:
    """Text as the marking detector reads it (see the module docstring)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _INVISIBLE.sub("", text)
        text = text.translate(_CONFUSABLES)
    if "l" in text:
        text = _L_FOR_I.sub("I", text)
    return text
