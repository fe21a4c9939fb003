"""PowerPoint 97-2003 (`.ppt`, [MS-PPT]): slide, master and notes text; and the record
walker for OfficeArt drawings, which Word (`msdoc`) shares.

PowerPoint and OfficeArt ([MS-ODRAW]) records have one header ([MS-PPT] 2.3.1
RecordHeader = [MS-ODRAW] 2.2.1 OfficeArtRecordHeader): recVer (4 bits; 0xF marks a
container whose body is more records), recInstance (12 bits), recType (16 bits),
recLen (32 bits). `records` walks such a tree iteratively, every record once.

Which text belongs where ([MS-PPT] 3.2 File Structure):
- the `Current User` stream's CurrentUserAtom (2.3.2) gives offsetToCurrentEdit, the
  newest UserEditAtom (2.3.3) in the `PowerPoint Document` stream; each edit points to
  its PersistDirectoryAtom (2.3.4, entries 2.3.5) and to the previous edit. The newest
  offset of each persist id wins (older versions of a slide after a fast save are
  stale and not read);
- the DocumentContainer (2.4.1, recType 0x03E8) holds SlideListWithTextContainer
  (2.4.14.3, 0x0FF0): instance 0 lists the slides in order, 1 the masters, 2 the
  notes; each SlidePersistAtom (2.4.14.5, 0x03F3) names a persist object and is
  followed by the outline text of its placeholders;
- every slide (SlideContainer 0x03EE), master (MainMasterContainer 0x03F8, or a title
  master SlideContainer) and notes page (NotesContainer 0x03F0) holds a drawing whose
  shapes carry their own text in OfficeArtClientTextbox (0xF00D; [MS-PPT] 2.9.76);
- the header and footer strings of Insert > Header and Footer are CString records
  (2.3.9, 0x0FBA) in a HeadersFootersContainer (2.4.15.1, 0x0FD9) of a slide, of
  notes or of the document: `label` pieces, part `header`/`footer`;
- text itself is TextCharsAtom (2.9.42, recType 0x0FA0, UTF-16LE) or TextBytesAtom
  (2.9.43, recType 0x0FA8, the low bytes of UTF-16 code units: Latin-1). A carriage return
  separates paragraphs, a vertical tab breaks a line;
- WordArt text is the shape property gtextUNICODE (opid 0x00C0, [MS-ODRAW] geometry
  text properties) in an OfficeArtFOPT (0xF00B) or its secondary/tertiary variants (0xF121, 0xF122).

Pieces: each paragraph a `lines` piece; part `slide` numbered 1, 2... in the order of
the slide list, `slide_master` for main and title masters, `notes` for notes pages and
the notes master. When the persist chain cannot be followed (damaged file), the top
level records of the stream are read instead (slides then carry no number).

Encryption ([MS-PPT] 2.3.7 CryptSession10Container, 0x2F14): the CurrentUserAtom
headerToken is 0xF3D1C4DF, or the newest UserEditAtom names an encryptSession persist
object. PowerPoint encrypts only with RC4 (CryptoAPI); such a file has no readable text.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.message.documents.bounds import Bounds
from gateway.message.documents.piece import Piece

HEADER = struct.Struct("<HHI")
TOKEN_PLAIN = 0xE391C05F
TOKEN_ENCRYPTED = 0xF3D1C4DF

RT_DOCUMENT = 0x03E8
RT_DOCUMENT_ATOM = 0x03E9
RT_SLIDE = 0x03EE
RT_NOTES = 0x03F0
RT_SLIDE_PERSIST = 0x03F3
RT_MAIN_MASTER = 0x03F8
RT_TEXT_CHARS = 0x0FA0
RT_TEXT_BYTES = 0x0FA8
RT_CURRENT_USER = 0x0FF6
RT_SLIDE_LIST = 0x0FF0
RT_USER_EDIT = 0x0FF5
RT_PERSIST_DIRECTORY = 0x1772
RT_CRYPT_SESSION = 0x2F14
RT_HEADERS_FOOTERS = 0x0FD9
RT_CSTRING = 0x0FBA
OPT_TYPES = frozenset({0xF00B, 0xF121, 0xF122})  # OfficeArtFOPT, secondary, tertiary
GTEXT_UNICODE = 0x00C0

# Records between two clock checks: a record costs microseconds, so the clock is read
# often enough to stop a hostile file within the deadline without slowing real ones.
_CHECK_EVERY = 4096


@dataclass(frozen=True)
class Record:
    type: int
    instance: int
    start: int  # first byte of the body
    end: int  # one past the last byte of the body (clamped to the parent)
    container: bool


def records(data: bytes, start: int, end: int, bounds: Bounds, *, deep: bool = True
            ) -> Iterator[Record]:
    """Records in data[start:end], depth first (children right after their container)
    when `deep`, else the top level only. A header that does not fit ends its level;
    a length past its parent's end is clamped to it (what is there is still read)."""
    end = min(end, len(data))
    stack = [(start, end)]
    seen = 0
    while stack:
        pos, stop = stack.pop()
        if pos + HEADER.size > stop:
            continue
        seen += 1
        if seen % _CHECK_EVERY == 0:
            bounds.check_time()
        ver_inst, rtype, length = HEADER.unpack_from(data, pos)
        body = pos + HEADER.size
        body_end = min(body + length, stop)
        container = ver_inst & 0x000F == 0x000F
        stack.append((body_end, stop))  # the next sibling, after this record's children
        yield Record(rtype, ver_inst >> 4, body, body_end, container)
        if deep and container:
            stack.append((body, body_end))


def gtext(data: bytes, rec: Record) -> str | None:
    """The WordArt text (gtextUNICODE) of an OfficeArtFOPT-like record, if it has one:
    `rec.instance` fixed 6-byte properties, then the complex ones' data in order."""
    count = rec.instance
    complex_at = rec.start + 6 * count
    if complex_at > rec.end:
        return None
    for i in range(count):
        opid, op = struct.unpack_from("<HI", data, rec.start + 6 * i)
        if not opid & 0x8000:
            continue
        if opid & 0x3FFF == GTEXT_UNICODE:
            raw = data[complex_at:min(complex_at + op, rec.end)]
            return raw[:len(raw) & ~1].decode("utf-16le", "replace").split("\x00", 1)[0]
        complex_at += op
        if complex_at > rec.end:
            return None
    return None


def shape_texts(data: bytes, start: int, end: int, bounds: Bounds) -> Iterator[str]:
    """Every text atom and WordArt text under data[start:end], in record order."""
    for kind, text in _texts(data, start, end, bounds):
        if kind == "text":
            yield text


def _texts(data: bytes, start: int, end: int, bounds: Bounds) -> Iterator[tuple[str, str]]:
    """(`text`, text) of every text atom and WordArt text under data[start:end], and
    (`header`/`footer`, text) of the header and footer strings of Insert > Header and
    Footer: CString records (2.3.9, 0x0FBA; instance 1 the notes header, 2 the
    footer) in a HeadersFootersContainer (2.4.15.1, 0x0FD9), which the footer
    placeholder shows; no text atom holds them."""
    hf: list[tuple[int, int]] = []  # open HeadersFootersContainers (start, end)
    for rec in records(data, start, end, bounds):
        if rec.type == RT_HEADERS_FOOTERS and rec.container:
            hf.append((rec.start, rec.end))
        elif rec.type == RT_CSTRING and rec.instance in (1, 2) and \
                any(a <= rec.start < b for a, b in hf[-8:]):
            size = rec.end - rec.start
            bounds.charge(size)
            string = data[rec.start:rec.start + (size & ~1)].decode("utf-16le", "replace")
            if string.strip():
                yield ("header" if rec.instance == 1 else "footer"), string
        elif rec.type in (RT_TEXT_CHARS, RT_TEXT_BYTES) or rec.type in OPT_TYPES:
            text = _text(data, rec, bounds)
            if text:
                yield "text", text


def _text(data: bytes, rec: Record, bounds: Bounds) -> str | None:
    size = rec.end - rec.start
    if rec.type in OPT_TYPES:
        found = gtext(data, rec)
        if found:
            bounds.charge(2 * len(found))
        return found
    bounds.charge(size if rec.type == RT_TEXT_CHARS else 2 * size)
    raw = data[rec.start:rec.end]
    if rec.type == RT_TEXT_CHARS:
        return raw[:size & ~1].decode("utf-16le", "replace")
    return raw.decode("latin-1")


def paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of a PowerPoint text: CR ends one, VT breaks a line inside it."""
    for para in text.replace("\x0b", "\n").split("\r"):
        if para.strip():
            yield para


def encrypted(current_user: bytes | None, document: bytes | None) -> bool | None:
    """True when encrypted ([MS-PPT] 2.3.7), False when not, None when unreadable."""
    if current_user is None or document is None:
        return None
    token = _current_user(current_user)
    if token is None:
        return None
    header_token, offset = token
    if header_token == TOKEN_ENCRYPTED:
        return True
    edit = _user_edit(document, offset)
    if edit is None:
        return None
    return edit.crypt_session is not None


def pieces(current_user: bytes | None, document: bytes, bounds: Bounds, path: str = ""
           ) -> Iterator[Piece]:
    """Text of a presentation (module docstring); nothing when it is encrypted."""
    token = _current_user(current_user) if current_user is not None else None
    if token is not None and token[0] == TOKEN_ENCRYPTED:
        return
    persist: dict[int, int] = {}
    doc_ref = None
    if token is not None:
        first = _user_edit(document, token[1])
        if first is not None and first.crypt_session is not None:
            return
        if first is not None:
            doc_ref = first.doc_ref
            persist = _persist_directory(document, token[1], bounds)
    doc_at = persist.get(doc_ref) if doc_ref is not None else None
    doc = _record_at(document, doc_at, RT_DOCUMENT) if doc_at is not None else None
    if doc is None:
        yield from _flat(document, bounds, path)
        return
    yield from _structured(document, doc, persist, bounds, path)


@dataclass(frozen=True)
class _Edit:
    last_edit: int
    persist_directory: int
    doc_ref: int
    crypt_session: int | None


def _current_user(stream: bytes) -> tuple[int, int] | None:
    """(headerToken, offsetToCurrentEdit) of a CurrentUserAtom ([MS-PPT] 2.3.2)."""
    if len(stream) < 20:
        return None
    _vi, rtype, _len = HEADER.unpack_from(stream, 0)
    _size, token, offset = struct.unpack_from("<III", stream, 8)
    if rtype != RT_CURRENT_USER or token not in (TOKEN_PLAIN, TOKEN_ENCRYPTED):
        return None
    return token, offset


def _user_edit(document: bytes, offset: int) -> _Edit | None:
    """The UserEditAtom at `offset` ([MS-PPT] 2.3.3), or None if there is none."""
    if offset + HEADER.size + 28 > len(document):
        return None
    _vi, rtype, length = HEADER.unpack_from(document, offset)
    if rtype != RT_USER_EDIT or length < 28:
        return None
    body = offset + HEADER.size
    last_edit, persist_dir, doc_ref = struct.unpack_from("<III", document, body + 8)
    crypt = None
    if length >= 32 and body + 32 <= len(document):
        crypt = struct.unpack_from("<I", document, body + 28)[0]
    return _Edit(last_edit, persist_dir, doc_ref, crypt)


def _persist_directory(document: bytes, offset: int, bounds: Bounds) -> dict[int, int]:
    """persist id -> stream offset, following the edits from the newest back: the
    first offset found for an id is its current version ([MS-PPT] 3.2)."""
    directory: dict[int, int] = {}
    seen: set[int] = set()
    while offset and offset not in seen:  # an edit chain that loops ends here
        bounds.check_time()
        seen.add(offset)
        edit = _user_edit(document, offset)
        if edit is None:
            break
        at = edit.persist_directory
        if at + HEADER.size <= len(document):
            _vi, rtype, length = HEADER.unpack_from(document, at)
            if rtype == RT_PERSIST_DIRECTORY:
                _read_directory(document, at + HEADER.size,
                                min(at + HEADER.size + length, len(document)), directory)
        offset = edit.last_edit
    return directory


def _read_directory(document: bytes, pos: int, end: int, into: dict[int, int]) -> None:
    # PersistDirectoryEntry: persistId (20 bits) and cPersist (12 bits), then cPersist
    # offsets for consecutive ids; each entry consumes bytes, so the loop ends.
    while pos + 4 <= end:
        head = struct.unpack_from("<I", document, pos)[0]
        first, count = head & 0xFFFFF, head >> 20
        pos += 4
        for i in range(count):
            if pos + 4 > end:
                return
            into.setdefault(first + i, struct.unpack_from("<I", document, pos)[0])
            pos += 4


def _record_at(document: bytes, offset: int, *types: int) -> Record | None:
    if offset + HEADER.size > len(document):
        return None
    ver_inst, rtype, length = HEADER.unpack_from(document, offset)
    if types and rtype not in types:
        return None
    body = offset + HEADER.size
    return Record(rtype, ver_inst >> 4, body, min(body + length, len(document)),
                  ver_inst & 0xF == 0xF)


def _structured(document: bytes, doc: Record, persist: dict[int, int], bounds: Bounds,
                path: str) -> Iterator[Piece]:
    lists: dict[int, list[tuple[int, list[str]]]] = {}
    notes_master: int | None = None
    footers: list[tuple[str, str]] = []
    for rec in records(document, doc.start, doc.end, bounds, deep=False):
        if rec.type == RT_SLIDE_LIST and rec.container:
            lists.setdefault(rec.instance, []).extend(_slide_list(document, rec, bounds))
        elif rec.type == RT_DOCUMENT_ATOM and rec.end - rec.start >= 28:
            notes_master = struct.unpack_from("<I", document, rec.start + 24)[0]
        elif rec.type == RT_HEADERS_FOOTERS and rec.container:
            # The document's own header and footer strings, for slides and notes.
            footers.extend((kind, text) for kind, text in
                           _texts(document, rec.start - HEADER.size, rec.end, bounds)
                           if kind != "text")
    yield from _pieces(footers, "slide", 0, path)
    if not lists:  # a document without slide lists shows nothing: read what is there
        yield from _flat(document, bounds, path)
        return
    # A persist object is read once, however many list entries name it: a hostile list
    # naming one large slide a million times must not cost a million walks.
    read: set[int] = set()
    for number, (ref, outline) in enumerate(lists.get(0, []), start=1):
        yield from _object(document, persist.get(ref), outline, "slide", number, read,
                           bounds, path, RT_SLIDE)
    for ref, outline in lists.get(1, []):
        yield from _object(document, persist.get(ref), outline, "slide_master", 0, read,
                           bounds, path, RT_MAIN_MASTER, RT_SLIDE)
    for ref, outline in lists.get(2, []):
        yield from _object(document, persist.get(ref), outline, "notes", 0, read, bounds,
                           path, RT_NOTES)
    if notes_master:
        yield from _object(document, persist.get(notes_master), [], "notes", 0, read,
                           bounds, path, RT_NOTES)


def _slide_list(document: bytes, slide_list: Record, bounds: Bounds
                ) -> list[tuple[int, list[str]]]:
    """(persist id, outline texts) of each SlidePersistAtom in a slide list, in order."""
    found: list[tuple[int, list[str]]] = []
    for rec in records(document, slide_list.start, slide_list.end, bounds, deep=False):
        if rec.type == RT_SLIDE_PERSIST and rec.end - rec.start >= 4:
            found.append((struct.unpack_from("<I", document, rec.start)[0], []))
        elif rec.type in (RT_TEXT_CHARS, RT_TEXT_BYTES) and found:
            text = _text(document, rec, bounds)
            if text:
                found[-1][1].append(text)
    return found


def _object(document: bytes, offset: int | None, outline: list[str], part: str,
            number: int, read: set[int], bounds: Bounds, path: str, *types: int
            ) -> Iterator[Piece]:
    texts = [("text", text) for text in outline]
    rec = _record_at(document, offset, *types) if offset is not None else None
    if rec is not None and rec.start not in read:
        read.add(rec.start)
        texts.extend(_texts(document, rec.start, rec.end, bounds))
    yield from _pieces(texts, part, number, path)


def _pieces(texts: list[tuple[str, str]], part: str, number: int, path: str
            ) -> Iterator[Piece]:
    for kind, text in texts:
        if kind != "text":  # a header or footer string: one label, as Word's are
            yield Piece("label", kind, text, number=number, path=path)
            continue
        for para in paragraphs(text):
            yield Piece("lines", part, para, number=number, path=path)


def _flat(document: bytes, bounds: Bounds, path: str) -> Iterator[Piece]:
    """Every top-level record's text, for a stream whose persist chain is broken."""
    parts = {RT_SLIDE: "slide", RT_MAIN_MASTER: "slide_master", RT_NOTES: "notes"}
    for top in records(document, 0, len(document), bounds, deep=False):
        part = parts.get(top.type, "slide")
        if not top.container:
            continue
        yield from _pieces(list(_texts(document, top.start, top.end, bounds)), part, 0, path)
