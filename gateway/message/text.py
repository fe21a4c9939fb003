"""Text out of bytes: charset decoding, HTML rendered to text, and Unicode folding.

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
    except LookupError:
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


def _drop_hidden(html: str) -> str:
    """Remove comments and script/style/template content in one forward pass.

    An unclosed one hides the rest of the document, as in a browser; scanning
    only forward keeps hostile input (thousands of unclosed `<script>`) linear.
    """
    out: list[str] = []
    pos = 0
    while True:
        m = _HIDDEN_START.search(html, pos)
        if m is None:
            out.append(html[pos:])
            break
        out.append(html[pos:m.start()])
        if m.group(1):
            close = _HIDDEN_END[m.group(1).lower()].search(html, m.end())
            end = close.end() if close else -1
        else:
            found = html.find("-->", m.end())
            end = found + 3 if found >= 0 else -1
        if end < 0:
            break
        pos = end
    return "".join(out)


def html_to_text(html: str) -> tuple[str, tuple[str, ...]]:
    """Render HTML to plain text lines, and collect link targets (href) on the way."""
    hrefs: list[str] = []

    def tag(m: re.Match[str]) -> str:
        name = (m.group(2) or "").lower()
        if name in ("a", "area", "base") and not m.group(1):
            h = _HREF.search(m.group(3) or "")
            if h:
                hrefs.append(unescape(h.group(1) or h.group(2) or h.group(3) or "").strip())
        return "\n" if name in _BLOCK else ""

    html = _drop_hidden(html)
    text = unescape(_TAG.sub(tag, html)).replace("\xa0", " ")
    # Collapse runs of spaces inside a line the way a browser does, keep line breaks.
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(lines), tuple(hrefs)


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
