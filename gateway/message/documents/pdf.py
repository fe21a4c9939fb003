"""PDF: whether it is encrypted for its reader, and its page text as a reader sees it.

Encrypted means a reader needs a password to open it. A PDF with an `/Encrypt`
dictionary but an empty user password (only an owner password restricting
printing or copying) opens in every viewer without a question, so it is plain and
its text is read like any other PDF. `encryption(data)` answers with pypdf: it
decrypts with the empty password to tell the two apart, and it reads the `/Encrypt`
dictionary for the scheme (`pdf-rc4`, `pdf-aes`), which PDFium cannot: PDFium tells
neither `/V` nor `/CFM`, and says nothing at all about a document it cannot open,
the very case the scheme matters for. pypdf's decoders are capped, so parsing a
hostile file there is bounded too. pypdf never extracts text; `pieces` hands
PDFium only what pypdf opened with the empty password, so "not encrypted" and
"its text was read" agree.

Text comes from PDFium's text page: every character with its origin, box, font
size and transformation matrix. Lines are rebuilt from geometry, not from the
order of drawing operators, so that a line is what a reader sees:

- glyphs stand on one baseline when their origins, measured across the writing
  direction, lie within `BASELINE_EM` font sizes (em) of each other. The writing
  direction is each glyph's own (from its matrix), so a diagonal watermark is one
  baseline like any horizontal line, whatever order PDFium keeps its characters in;
- a word with a letter raised or lowered out of its baseline (text rise `Ts`,
  LibreOffice's "raise/lower by 33%") is one word, as a reader sees it: parts of
  words (glyphs with no blank over `SPACE_EM` between them) on nearby baselines
  that touch end to start, letter against letter, within `SPACE_EM` (a blank or an
  overlap), with baselines less than `RAISED_EM` (half an em) apart and fonts of
  about one size (`SAME_SIZE`), are one word, put on the baseline of its longest
  part. A footnote mark or superscript stays a line of its own: its font is smaller
  (58% of the size in LibreOffice), or it is a digit or sign, not a letter.
  Table cells stand apart by their padding, far over `SPACE_EM`. A baseline is
  compared with the next `NEAR_BASELINES` in the order of `across` (lines of a page
  are an em or more apart, so a raised letter's baseline is the next one or the one
  after), each part with the few parts that start where it ends: O(n log n);
- along a baseline, glyphs are taken left to right (along the direction). The
  blank between neighbours is measured from the right edge of everything so far
  to the left edge of the next glyph, in em of the larger of the two; a drawn
  space is a glyph, so a typed space is not a blank:
  - blank up to `SPACE_EM` (0.1 em): the same word (kerning; text drawn one glyph
    per operator, `S` `U` `L` `I` `T` each with its own `Td`/`Tj`);
  - more than `APART_EM` (0.4 em) between glyphs of *different* text-showing
    operators: the baseline splits there, the two sides are separate lines (cells
    of a table row: the cell padding alone, 0.1 cm a side in LibreOffice, 0.19 cm
    in Word, is about 0.45 to 0.9 em of body text);
  - otherwise one space. A blank inside *one* `Tj`/`TJ` never splits: LibreOffice
    justifies a line by widening the word gaps inside one `TJ`, to several em in a
    narrow column, and a capitalised sentence (`MAKLUMAT INI ADALAH RAHSIA ...`)
    must not fall apart into one-word "lines";
- one-letter parts side by side (a word letter-spaced glyph by glyph, each glyph
  its own operator) are also joined into one more line: `R A H S I A`;
- lines are ordered top to bottom, then left to right.
  For glyphs at an angle that is not a multiple of 90 degrees PDFium gives only
  upright boxes, which overstate a glyph's extent along its baseline: such text is
  joined rather than split, which is what a watermark needs.

Each page with text is a `lines` piece, its lines joined by "\\n". A page with no
text but with an image object (a scanned page) is an `unreadable` piece; a blank
page gives nothing.

Bounds. PDFium is C code reading hostile input, so:
- PDFium inflates every stream whole, with no cap (a 500 KB attachment of deflated
  blanks costs it 1 GB): before PDFium sees a file, pypdf's capped decoders measure
  every stream PDFium may inflate to read text (all but images, embedded files and
  the cross-reference streams pypdf already inflated to open it). One stream over
  `MAX_STREAM_BYTES` or all over `MAX_DOCUMENT_STREAM_BYTES` raises
  `LimitExceeded`; a file pypdf cannot parse at all is not given to PDFium;
- a document with more pages than `Bounds.max_pdf_pages` raises `LimitExceeded`
  before any page is read (a silent cut would leave the rest unread and the message
  looking clean); more than `MAX_PAGE_CHARS` characters on one page raises too;
- the deadline is checked between pages, every few thousand characters, streams
  and page objects, and while waiting for PDFium; each page's text is charged to
  the byte budget;
- documents, pages and text pages are closed in `finally` blocks, never left to the
  garbage collector; the raw API is used so that no wrapper object is left behind.
A file or page PDFium cannot parse gives no more pieces; nothing but
`LimitExceeded` is raised. What is left: PDFium parses one page's content
operators without a way to interrupt it (about 0.5 s and 200 MB for 8 MB of
operators), bounded only by the stream caps above.

Threads: PDFium is not thread-safe and the gateway inspects in worker threads, so
every call into pypdfium2 in this module holds `_PDFIUM` (one module-level lock),
and no generator is suspended while holding it: a page is read under the lock, its
lines are built and the piece yielded after the lock is released.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import io
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import pypdf
import pypdfium2  # noqa: F401  # importing the package initialises the PDFium library
import pypdfium2.raw as pdfium
from pypdf import PasswordType
from pypdf.errors import LimitReachedError
from pypdf.filters import decode_stream_data
from pypdf.generic import IndirectObject, StreamObject

from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.piece import Piece

# pypdf reports every oddity of a damaged file as a warning; hostile mail would fill
# the service log with them. Errors still surface as exceptions, which we handle.
logging.getLogger("pypdf").setLevel(logging.ERROR)

# One stream, decompressed (module docstring, Bounds). A page of text is kilobytes of
# content operators, a detailed drawing a few MB, a fully embedded CJK font some
# 20 MB; more is a bomb.
MAX_STREAM_BYTES = 32 * 1024 * 1024
# All those streams of one document together: PDFium keeps a document's fonts while
# it is open and may parse a page's content streams at once.
MAX_DOCUMENT_STREAM_BYTES = 64 * 1024 * 1024
# What pypdf decodes here: filters that only compress or armour. Image codecs (DCT,
# JPX, JBIG2, CCITT) are not decoded for text, and pypdf may run a program for JBIG2.
_PLAIN_FILTERS = frozenset({"/FlateDecode", "/Fl", "/LZWDecode", "/LZW", "/RunLengthDecode",
                            "/RL", "/ASCIIHexDecode", "/AHx", "/ASCII85Decode", "/A85"})
# Streams PDFium does not inflate to read text; /XRef streams pypdf inflated (capped)
# to open the file at all.
_NOT_FOR_TEXT = frozenset({"/XRef", "/EmbeddedFile"})
# Characters on one page: a dense A4 page has a few thousand; a spreadsheet printed
# small perhaps 30 000. More is not a page anyone reads, and each costs memory here.
MAX_PAGE_CHARS = 200_000
# Page objects looked at for an image on a page without text (forms included).
MAX_PAGE_OBJECTS = 100_000
MAX_FORM_DEPTH = 8

# Line geometry, in em (the glyph's font size on the page): module docstring.
BASELINE_EM = 0.25
SPACE_EM = 0.1
APART_EM = 0.4
DUPLICATE_EM = 0.1  # the same glyph drawn twice (fake bold, shadow) is read once
RAISED_EM = 0.5  # a letter raised or lowered less than this still belongs to its word
SAME_SIZE = 0.8  # smaller to larger font size of two glyphs of one word (not superscript)
NEAR_BASELINES = 3  # baselines, in the order of `across`, a raised letter is looked for on
_TOUCH_CANDIDATES = 4

_PDFIUM = threading.Lock()
_CHECK_EVERY = 4096
_PDFIUM_HYPHEN = 0x02  # what PDFium makes of a hyphen that ends a line


class Glyph(NamedTuple):
    """One character as placed on the page, in the frame of its writing direction."""

    char: str
    start: float  # extent along the writing direction
    end: float
    across: float  # origin across the writing direction: equal on one baseline
    y: float  # origin on the page, for the reading order
    x: float
    em: float
    angle: int  # writing direction, whole degrees
    run: int  # the text object (one Tj/TJ) it was drawn by


class _NotOpened(Exception):
    """PDFium could not load the document (damaged, or it needs a password)."""


def looks_like_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]


# -- PDFium access ---------------------------------------------------------------------

@contextlib.contextmanager
def _pdfium(bounds: Bounds | None) -> Iterator[None]:
    """Hold the PDFium lock; with `bounds`, give up waiting at the deadline."""
    timeout = -1.0 if bounds is None else max(0.0, bounds.deadline - time.monotonic())
    if not _PDFIUM.acquire(timeout=timeout):
        raise LimitExceeded("document inspection took too long")
    try:
        yield
    finally:
        _PDFIUM.release()


def _load(data: bytes) -> Any:
    """An FPDF_DOCUMENT (lock held). The raw call, not `PdfDocument`: that leaks the
    handle of a document that loads with no pages."""
    doc = pdfium.FPDF_LoadMemDocument64(data, len(data), None)
    if not doc:
        raise _NotOpened
    return doc


# -- encryption, and what pypdf checks first --------------------------------------

def _limits() -> contextlib.AbstractContextManager[Any]:
    apply = getattr(pypdf, "apply_configuration", None)
    if apply is None:  # pypdf < 7 has fixed module-level limits
        return contextlib.nullcontext()
    manager: contextlib.AbstractContextManager[Any] = apply(
        zlib_maximum_output_length=MAX_STREAM_BYTES,
        lzw_maximum_output_length=MAX_STREAM_BYTES,
        run_length_maximum_output_length=MAX_STREAM_BYTES,
        maximum_declared_stream_length=MAX_STREAM_BYTES,
        image_maximum_buffer_size=MAX_STREAM_BYTES)
    return manager


def _resolved(value: Any) -> Any:
    get_object = getattr(value, "get_object", None)
    return get_object() if callable(get_object) else value


def scheme_of(encrypt: Mapping[str, Any]) -> str | None:
    """`pdf-rc4` or `pdf-aes` from an /Encrypt dictionary (ISO 32000-2 7.6.2): /V 1
    and 2 are RC4, /V 5 is AES-256; /V 4 names crypt filters, whose /CFM is `V2`
    (RC4) or `AESV2`/`AESV3`. When streams and strings use different filters the
    weaker names the scheme. None when it cannot be told."""
    try:
        version = int(_resolved(encrypt.get("/V", 0)))
    except (TypeError, ValueError):
        return None
    if version in (1, 2):
        return "pdf-rc4"
    if version == 5:
        return "pdf-aes"
    if version != 4:
        return None
    filters = _resolved(encrypt.get("/CF"))
    if not isinstance(filters, Mapping):
        return None
    methods = set()
    for key in ("/StmF", "/StrF"):
        name = str(_resolved(encrypt.get(key, "/Identity")))
        crypt = _resolved(filters.get(name)) if name != "/Identity" else None
        if isinstance(crypt, Mapping):
            methods.add(str(_resolved(crypt.get("/CFM", "/None"))))
    if "/V2" in methods:
        return "pdf-rc4"
    if methods and methods <= {"/AESV2", "/AESV3"}:
        return "pdf-aes"
    return None


def _reader(data: bytes) -> pypdf.PdfReader:
    return pypdf.PdfReader(io.BytesIO(data), strict=False)


# Appended to a PDF whose cross-reference table pypdf cannot find: a pointer to
# nowhere makes it rebuild the table by scanning for objects, as PDFium and other
# viewers do with a damaged file (a missing or broken `xref`, no `startxref`).
_REBUILD = b"\nstartxref\n0\n%%EOF\n"


def _unlocked(data: bytes, *, rebuild: bool = False) -> tuple[pypdf.PdfReader, bool]:
    """(reader, encrypted): decrypted with the empty password when that opens it.
    `rebuild`: a file pypdf cannot open as it is is tried again with its
    cross-reference table rebuilt (`_REBUILD`). Raises what pypdf raises on a damaged
    file (LimitReachedError on a bomb)."""
    try:
        reader = _reader(data)
    except LimitReachedError:
        raise
    except Exception:  # no usable cross-reference table: rebuild it as viewers do
        if not rebuild:
            raise
        reader = _reader(data + _REBUILD)
    if not reader.is_encrypted:
        return reader, False
    return reader, reader.decrypt("") == PasswordType.NOT_DECRYPTED


def encryption(data: bytes) -> tuple[bool | None, str | None]:
    """(encrypted, scheme). encrypted: True when a password is needed to open it,
    False when it opens without one (plain, or an owner password only) or when it is
    damaged but has no `/Encrypt` at all (nothing in it is encrypted), None when it is
    damaged with `/Encrypt`. scheme: `pdf-rc4` or `pdf-aes` when encrypted, None
    otherwise or when it cannot be told."""
    with _limits():
        try:
            reader, locked = _unlocked(data)
            if not locked:
                return False, None
            encrypt = _resolved(reader.trailer.get("/Encrypt"))
            return True, scheme_of(encrypt) if isinstance(encrypt, Mapping) else None
        except Exception:  # pypdf raises many types on damaged or unsupported files
            return (None if b"/Encrypt" in data else False), None


def encrypted(data: bytes) -> bool | None:
    """True: a password is needed to open it; False: it opens, or it is damaged but has
    no `/Encrypt` at all (nothing in it is encrypted); None: damaged with `/Encrypt`."""
    return encryption(data)[0]


def _filters(stream: Mapping[str, Any]) -> list[str]:
    found = _resolved(stream.get("/Filter"))
    if found is None:
        return []
    return [str(_resolved(f)) for f in found] if isinstance(found, list) else [str(found)]


def _precheck(data: bytes, bounds: Bounds) -> bool:
    """Whether PDFium may read the file: pypdf opens it (with the empty password when
    it is encrypted) and every stream PDFium may inflate for text stays within
    `MAX_STREAM_BYTES`, all of them within `MAX_DOCUMENT_STREAM_BYTES`; a stream over
    a cap raises LimitExceeded. A file pypdf cannot parse at all is not handed to
    PDFium: a damaged file gives no pieces."""
    with _limits():
        try:
            # Rebuilt when damaged: PDFium reads a file whose cross-reference table is
            # missing or broken, so its streams must be measured here all the same.
            reader, locked = _unlocked(data, rebuild=True)
            numbers = [(num, gen) for gen, table in reader.xref.items() for num in table]
        except LimitReachedError:
            raise LimitExceeded("a PDF stream decompresses beyond the bound") from None
        except Exception:  # damaged: PDFium might read more of it, and meet a bomb
            return False
        if locked:
            return False
        total = 0
        for n, (num, gen) in enumerate(numbers):
            if n % 256 == 0:
                bounds.check_time()
            try:
                stream = reader.get_object(IndirectObject(num, gen, reader))
                if not isinstance(stream, StreamObject) or \
                        str(stream.get("/Type")) in _NOT_FOR_TEXT or \
                        str(stream.get("/Subtype")) == "/Image":
                    continue
                filters = _filters(stream)
                if not filters or not set(filters) <= _PLAIN_FILTERS:
                    continue
                size = len(decode_stream_data(stream))
            except LimitReachedError:
                raise LimitExceeded(
                    f"a PDF stream decompresses beyond {MAX_STREAM_BYTES} bytes") from None
            except Exception:  # a damaged object: PDFium will not get far with it either
                continue
            if size > MAX_STREAM_BYTES:  # pypdf < 7 caps only at its own 75 MB
                raise LimitExceeded(f"a PDF stream decompresses beyond {MAX_STREAM_BYTES} bytes")
            total += size
            if total > MAX_DOCUMENT_STREAM_BYTES:
                raise LimitExceeded(
                    f"PDF streams decompress beyond {MAX_DOCUMENT_STREAM_BYTES} bytes")
    return True


# -- page text -------------------------------------------------------------------------

def _glyphs(textpage: Any, bounds: Bounds, number: int) -> list[Glyph]:
    """The characters PDFium found on a page (lock held), without the spaces and line
    breaks it generates itself: the geometry says where words and lines end."""
    count = int(pdfium.FPDFText_CountChars(textpage))
    if count > MAX_PAGE_CHARS:
        raise LimitExceeded(f"PDF page {number} has more than {MAX_PAGE_CHARS} characters")
    x, y = ctypes.c_double(), ctypes.c_double()
    box, matrix = pdfium.FS_RECTF(), pdfium.FS_MATRIX()
    found: list[Glyph] = []
    for i in range(count):
        if i % _CHECK_EVERY == 0:
            bounds.check_time()
        if pdfium.FPDFText_IsGenerated(textpage, i) != 0:
            continue  # 1: PDFium's own space or line break; -1: no such character
        code = int(pdfium.FPDFText_GetUnicode(textpage, i))
        if code == _PDFIUM_HYPHEN:
            code = ord("-")
        elif (code < 0x20 and code not in (0x09, 0x0A, 0x0D)) or code > 0x10FFFF:
            continue
        if not (pdfium.FPDFText_GetCharOrigin(textpage, i, x, y)
                and pdfium.FPDFText_GetLooseCharBox(textpage, i, box)
                and pdfium.FPDFText_GetMatrix(textpage, i, matrix)):
            continue
        glyph = _glyph(chr(code), x.value, y.value, box, matrix,
                       float(pdfium.FPDFText_GetFontSize(textpage, i)),
                       _address(pdfium.FPDFText_GetTextObject(textpage, i)))
        if glyph is not None:
            found.append(glyph)
    return found


def _address(pointer: Any) -> int:
    return int(ctypes.cast(pointer, ctypes.c_void_p).value or 0)


def _glyph(char: str, x: float, y: float, box: Any, matrix: Any, size: float,
           run: int) -> Glyph | None:
    left, right = float(box.left), float(box.right)
    bottom, top = float(box.bottom), float(box.top)
    a, b, c, d = float(matrix.a), float(matrix.b), float(matrix.c), float(matrix.d)
    # A sum is finite only when every term is (or it overflowed: absurd anyway).
    if not math.isfinite(x + y + left + right + bottom + top + a + b + c + d + size):
        return None
    length = math.hypot(a, b)
    ux, uy = (a / length, b / length) if length > 1e-9 else (1.0, 0.0)
    # The font size scaled by the matrix's vertical axis (Tf 1 with a Tm of 12 is
    # 12 pt text); the box height when a font reports no size.
    em = abs(size) * math.hypot(c, d) or abs(top - bottom)
    em = max(em, 0.5)
    centre = (left + right) / 2 * ux + (bottom + top) / 2 * uy
    half = (abs(ux) * (right - left) + abs(uy) * (top - bottom)) / 2
    angle = round(math.degrees(math.atan2(uy, ux))) % 360
    return Glyph(char, centre - half, centre + half, y * ux - x * uy, y, x, em, angle, run)


def _has_image(page: Any, bounds: Bounds) -> bool:
    """Whether a page draws an image, also inside form XObjects (lock held). Past
    `MAX_PAGE_OBJECTS` objects or `MAX_FORM_DEPTH` nested forms: True, "cannot tell"
    (the page is reported unreadable, never called a blank page unseen)."""
    seen = 0
    stack: list[tuple[Any, bool, int]] = [(page, True, 0)]  # (container, is_page, depth)
    while stack:
        container, is_page, depth = stack.pop()
        count = int(pdfium.FPDFPage_CountObjects(container) if is_page
                    else pdfium.FPDFFormObj_CountObjects(container))
        for i in range(max(count, 0)):
            seen += 1
            if seen > MAX_PAGE_OBJECTS:
                return True
            if seen % _CHECK_EVERY == 0:
                bounds.check_time()
            obj = (pdfium.FPDFPage_GetObject(container, i) if is_page
                   else pdfium.FPDFFormObj_GetObject(container, i))
            if not obj:
                continue
            kind = int(pdfium.FPDFPageObj_GetType(obj))
            if kind == pdfium.FPDF_PAGEOBJ_IMAGE:
                return True
            if kind == pdfium.FPDF_PAGEOBJ_FORM:
                if depth >= MAX_FORM_DEPTH:
                    return True
                stack.append((obj, False, depth + 1))
    return False


def _page(doc: Any, index: int, bounds: Bounds) -> tuple[list[Glyph], bool] | None:
    """(glyphs, has an image when it has no text) of one page (lock held); None when
    PDFium cannot load the page.

    Annotations (a stamp, a text box or a form field added in a PDF editor) are drawn
    by every viewer from their appearance streams, not from the page's content: the
    page is flattened first (their normal appearances merged into the content, as
    they are displayed), then loaded again for its text."""
    page = pdfium.FPDF_LoadPage(doc, index)
    if not page:
        return None
    if pdfium.FPDFPage_GetAnnotCount(page) > 0:
        flattened = pdfium.FPDFPage_Flatten(page, pdfium.FLAT_NORMALDISPLAY)
        pdfium.FPDF_ClosePage(page)
        page = pdfium.FPDF_LoadPage(doc, index)
        if not page:
            return None
        _ = flattened
    try:
        textpage = pdfium.FPDFText_LoadPage(page)
        if not textpage:
            return None
        try:
            glyphs = _glyphs(textpage, bounds, index + 1)
        finally:
            pdfium.FPDFText_ClosePage(textpage)
        blank = all(g.char.isspace() for g in glyphs)
        return glyphs, blank and _has_image(page, bounds)
    finally:
        pdfium.FPDF_ClosePage(page)


def _segments(baseline: list[Glyph]) -> Iterator[tuple[float, str]]:
    """(x, text) of each part of one baseline that stands apart (module docstring)."""
    baseline.sort(key=lambda g: g.start)
    parts: list[str] = []
    x = baseline[0].x
    prev: Glyph | None = None
    reach = -math.inf
    for g in baseline:
        if prev is not None:
            em = max(prev.em, g.em)
            if g.char == prev.char and abs(g.start - prev.start) < DUPLICATE_EM * em:
                continue
            blank = (g.start - reach) / em
            if blank > APART_EM and g.run != prev.run:
                yield x, "".join(parts)
                parts, x, reach = [], g.x, -math.inf
            elif blank > SPACE_EM and not g.char.isspace() and parts[-1] != " ":
                parts.append(" ")
        parts.append(" " if g.char.isspace() else g.char)
        reach = max(reach, g.end)
        prev = g
    yield x, "".join(parts)


def _spaced_words(segments: list[tuple[float, str]]) -> Iterator[tuple[float, str]]:
    """Runs of one-letter segments side by side, joined: a word letter-spaced glyph by
    glyph (`R   A   H   S   I   A`, each glyph its own operator, wide apart) splits
    into one-letter "cells" by the rule above, but a reader sees one word. Added as
    a line of its own; the letters stay lines too."""
    run: list[tuple[float, str]] = []
    for segment in [*segments, (0.0, "")]:
        if len(segment[1].strip()) == 1:
            run.append(segment)
            continue
        if len(run) > 1:
            yield run[0][0], " ".join(text.strip() for _x, text in run)
        run = []


class _Fragment(NamedTuple):
    """Glyphs of one baseline with no blank between them (a word, or part of one)."""

    baseline: int
    glyphs: list[Glyph]
    end: float  # the right edge of everything in it (reach)


def _fragments(baseline: list[Glyph], index: int) -> list[_Fragment]:
    """The fragments of one baseline sorted by `start`, left to right: a blank over
    `SPACE_EM` or a drawn space ends one; drawn spaces are in none."""
    found: list[_Fragment] = []
    current: list[Glyph] = []
    reach = -math.inf
    for g in baseline:
        if current and (g.char.isspace()
                        or g.start - reach > SPACE_EM * max(current[-1].em, g.em)):
            found.append(_Fragment(index, current, reach))
            current, reach = [], -math.inf
        if not g.char.isspace():
            current.append(g)
            reach = max(reach, g.end)
    if current:
        found.append(_Fragment(index, current, reach))
    return found


def _touch(left: _Fragment, right: _Fragment) -> bool:
    """Whether `right` continues the word `left` ends, one of them raised or lowered
    (module docstring): letter against letter, fonts of about one size, blank (or
    overlap) within `SPACE_EM`, baselines less than `RAISED_EM` apart."""
    a, b = left.glyphs[-1], right.glyphs[0]
    em = max(a.em, b.em)
    return (a.char.isalpha() and b.char.isalpha() and min(a.em, b.em) >= SAME_SIZE * em
            and abs(b.start - left.end) <= SPACE_EM * em
            and abs(b.across - a.across) < RAISED_EM * em)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:  # path halving: iterative, no recursion
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _rejoined(baselines: list[list[Glyph]]) -> list[list[Glyph]]:
    """`baselines` (in the order of `across`) with each word that has a letter raised or
    lowered out of its baseline made whole again on one of them (module docstring).
    Fragments of nearby baselines that touch are one word; the word is put on the
    baseline of its longest fragment. Each baseline is compared with the next
    `NEAR_BASELINES`, each fragment with at most `_TOUCH_CANDIDATES` fragments
    starting where it ends: O(n log n) in glyphs."""
    fragments: list[_Fragment] = []
    per_baseline: list[range] = []  # each baseline's fragments, as indices into `fragments`
    for index, baseline in enumerate(baselines):
        baseline.sort(key=lambda g: g.start)
        first = len(fragments)
        fragments.extend(_fragments(baseline, index))
        per_baseline.append(range(first, len(fragments)))
    parent = list(range(len(fragments)))
    joined = False
    for i, mine in enumerate(per_baseline):
        for theirs in per_baseline[i + 1:i + 1 + NEAR_BASELINES]:
            for lefts, rights in ((mine, theirs), (theirs, mine)):
                starts = [fragments[n].glyphs[0].start for n in rights]
                for n in lefts:
                    left = fragments[n]
                    reach = SPACE_EM * left.glyphs[-1].em / SAME_SIZE
                    k = bisect.bisect_left(starts, left.end - reach)
                    for m in rights[k:k + _TOUCH_CANDIDATES]:
                        if fragments[m].glyphs[0].start > left.end + reach:
                            break
                        a, b = _find(parent, n), _find(parent, m)
                        if a != b and _touch(left, fragments[m]):
                            parent[max(a, b)] = min(a, b)
                            joined = True
    if not joined:
        return baselines
    home: dict[int, _Fragment] = {}  # word (root) -> its longest fragment
    for n, f in enumerate(fragments):
        root = _find(parent, n)
        if root not in home or len(f.glyphs) > len(home[root].glyphs):
            home[root] = f
    rebuilt: list[list[Glyph]] = [[] for _ in baselines]
    for n, f in enumerate(fragments):
        rebuilt[home[_find(parent, n)].baseline].extend(f.glyphs)
    for index, baseline in enumerate(baselines):  # drawn spaces stay where they were
        rebuilt[index].extend(g for g in baseline if g.char.isspace())
    return [b for b in rebuilt if b]


def lines(glyphs: list[Glyph]) -> list[str]:
    """A page's lines as a reader sees them, top to bottom (module docstring)."""
    by_angle: dict[int, list[Glyph]] = {}
    for g in glyphs:
        by_angle.setdefault(g.angle, []).append(g)
    placed: list[tuple[float, float, str]] = []
    for group in by_angle.values():
        group.sort(key=lambda g: g.across)
        baselines: list[list[Glyph]] = [[group[0]]]
        for g in group[1:]:
            first = baselines[-1][0]
            if g.across - first.across > BASELINE_EM * max(g.em, first.em):
                baselines.append([])
            baselines[-1].append(g)
        for baseline in _rejoined(baselines):
            y = sum(g.y for g in baseline) / len(baseline)
            segments = list(_segments(baseline))
            placed.extend((-y, x, text) for x, text in segments)
            placed.extend((-y, x, text) for x, text in _spaced_words(segments))
    placed.sort(key=lambda p: (p[0], p[1]))
    out = []
    for _y, _x, text in placed:
        # PDFium hands characters outside the BMP over as UTF-16 surrogate pairs.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        if text.strip():
            out.append(text.strip())
    return out


def _read(data: bytes, bounds: Bounds, path: str) -> list[Piece]:
    if not _precheck(data, bounds):
        return []
    with _pdfium(bounds):
        try:
            doc = _load(data)
        except _NotOpened:  # damaged, or a password is needed: nothing to read
            return []
    try:
        with _pdfium(bounds):
            count = int(pdfium.FPDF_GetPageCount(doc))
        if count > bounds.max_pdf_pages:
            raise LimitExceeded(f"PDF has {count} pages, more than {bounds.max_pdf_pages}")
        found: list[Piece] = []
        for number in range(1, count + 1):
            bounds.check_time()
            with _pdfium(bounds):
                read = _page(doc, number - 1, bounds)
            if read is None:
                continue  # one damaged page does not hide the others
            glyphs, has_image = read
            text = "\n".join(lines(glyphs)) if glyphs else ""
            bounds.charge(len(text))
            if text:
                found.append(Piece("lines", "page", text, number=number, path=path))
            elif has_image:
                found.append(Piece("unreadable", "page", "page has images but no text",
                                   number=number, path=path))
        return found
    finally:
        with _pdfium(None):  # always closed, even past the deadline
            pdfium.FPDF_CloseDocument(doc)


def pieces(data: bytes, bounds: Bounds, path: str = "") -> Iterator[Piece]:
    """Per page (numbered from 1): a `lines` piece of its text, an `unreadable` piece
    when it has images but no text, nothing when blank; nothing at all for an
    encrypted or unreadable PDF. Raises LimitExceeded (module docstring)."""
    yield from _read(data, bounds, path)
