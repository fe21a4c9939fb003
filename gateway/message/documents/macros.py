"""Office macros in one attachment, by content, with oletools (olevba): none, present,
autoexec, suspicious, or unreadable.

Where macros are looked for (the bytes decide, never the name or declared type):
- an OLE compound file ([MS-CFB]) that is not an Outlook item: Word, Excel and
  PowerPoint 97-2003 (`Macros/VBA`, `_VBA_PROJECT_CUR/VBA`, PowerPoint's compressed
  VBA storage), Excel 4.0 (XLM) macro sheets, and a bare `vbaProject.bin`;
- a ZIP: an OOXML package is a ZIP, so `word/vbaProject.bin` of a .docm is found
  whatever the file is called (a .docm renamed .docx too), and so is an OLE object
  embedded in it (`word/embeddings/oleObject1.bin`); every member of any ZIP that is
  OLE or a container below is read, recursively;
- tar archives (any compression) and single gzip/bzip2/xz files (`compressed`);
- an Outlook item or TNEF stream inside an archive (`msg`, `tnef`): the files it
  carries. At the top of a message the view makes those files attachments of their
  own, and a forwarded message's attachments are attachments too, so each is judged
  as an attachment.
- the text carriers of a VBA project that olevba opens itself (`carrier`), found by
  their markers anywhere in the file, whatever its name: Word 2003 XML
  (WordprocessingML namespace and a `binData` element: the project is the base64
  ActiveMime blob `editdata.mso`), MHTML, Word's and Excel's "Single File Web Page"
  (a MIME document with an ActiveMime part: `ActiveMime`, or its base64
  `QWN0aXZlTWltZQ`), and flat OPC (`pkg:package` XML with a
  `application/vnd.ms-office.vbaProject` part). One that carries a project
  (`editdata.mso`, `w:macrosPresent="yes"`, an ActiveMime blob, a vbaProject part)
  and in which olevba finds none, or that olevba reads as something else, is
  `unreadable`. A DOCTYPE or entity declaration in such XML is hostile
  (`xmltext.UnsafeXML`: not inspectable);
- Excel 4.0 (XLM) macro sheets in an OOXML package (`xl/macrosheets/*.xml` or `.bin`,
  any part of content type `application/vnd.ms-excel.macrosheet+xml`,
  `...macrosheet` or `...intlmacrosheet+xml`, or the target of an `xlMacrosheet`
  relationship): olevba 0.60.2 does not look for them (its XML macrosheet code is
  commented out), so they are read here (`_xlm`): the package is `present`;
  `autoexec` when xl/workbook.xml defines a name `Auto_Open` or `_xlnm.Auto_Open`
  (any suffix: Excel runs every name that starts so, as XLMMacroDeobfuscator's
  `auto_open` search assumes); `suspicious` when a macro sheet formula calls one of
  `XLM_SUSPICIOUS` (the XLM functions olevba's `XLM` keywords and
  XLMMacroDeobfuscator flag for running code or fetching files). The formulas of a
  binary (.xlsb) macro sheet and its workbook's names are not read: `present` only;
- a 7z or RAR archive that is not encrypted, or another archive libmagic names
  (`walk.kind`): its files are not read (no decoder is shipped), so it is
  `unopened` (macros unknown; clamd still opens such archives for viruses), as
  `attachment_unreadable` reports it; an encrypted one has nothing
  to see (the encryption rules judge it); a ZIP behind it is read.
Nothing else is handed to oletools: olevba reads any text as VBA source, so a text
attachment would "have macros". RTF objects and OpenDocument Basic are not read
(`MacroState` says nothing of them).

The levels (`LEVELS`), from olevba's analysis of each module's source after the
`Attribute VB_` lines Office writes itself (`filter_vba`: their GUIDs would read as
hex-encoded strings in every class module):
- `present`: the file has a VBA project or Excel 4.0 macros (`detect_macros`);
- `autoexec`: a routine runs by itself: AutoOpen, Document_Open, Auto_Open,
  Workbook_Open, a form control event... (olevba's `AutoExec` keywords);
- `suspicious`: it calls what malware calls: Shell, CreateObject, URLDownloadToFile,
  Environ, Lib (a DLL), obfuscated strings... (olevba's `Suspicious` keywords);
- `unreadable`: a file that should have been read could not be: olevba raised, it
  logged an error (a module it could not extract: olevba goes on with the others, so
  its log record is the only sign), or it found macros but no source at all (a
  project of p-code only: olevba cannot detect VBA stomping in a file held in
  memory, so the source it would compare is missing). A macro the gateway cannot
  read is never taken for no macro (fail closed); the shipped rules refuse it inbound;
- `unopened`: an archive the gateway does not open (7z, RAR): its files, and so
  their macros, are unknown. Kept apart from `unreadable` because such archives are
  ordinary mail (clamd opens them for viruses): the shipped rules log them.

An encrypted document (the whole OOXML package encrypted: `EncryptionInfo` +
`EncryptedPackage`) has no macros to see without the password; like its text, they
are unknown, and it is judged by the encryption rules, not as unreadable.

Bounds: every ZIP member and tar member is read through `archives`/`compressed`
(bomb checks, the expansion budget), the source code olevba decompresses is charged
to the same budget, and so is every ActiveMime blob of a text carrier, inflated here
first at each offset olevba tries and no further than the budget left (`_inflate`),
before olevba inflates it again, and `check_time()` runs between files and modules; a bound met
raises `LimitExceeded` (the message is not inspectable). olevba itself runs inside
the inspection process, which is killed at `limits.inspection_timeout`.
"""

from __future__ import annotations

import binascii
import email
import io
import logging
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from oletools import olevba

from gateway.message.documents import (
    archives,
    compressed,
    msg,
    ole,
    rar,
    sevenzip,
    tnef,
    walk,
    xmltext,
)
from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.enclosure import BadEnclosure, EnclosedFile, Enclosure

Level = Literal["present", "autoexec", "suspicious", "unreadable", "unopened"]
LEVELS: tuple[Level, ...] = ("present", "autoexec", "suspicious", "unreadable", "unopened")
PEEK = 4096
# Keywords kept per level and file: evidence, not a cap on what is judged.
MAX_KEYWORDS = 20
# XLM functions that run a program, call a DLL or rewrite formulas at run time: the
# Excel 4.0 keywords of olevba's `SUSPICIOUS_KEYWORDS`/`SUSPICIOUS_KEYWORDS_REGEX`
# (oletools 0.60.2: EXEC, CALL, REGISTER, FORMULA.FILL), with REGISTER.ID, the same
# DLL call by another name; matched as a call in a macro sheet formula. And the
# download function such a CALL/REGISTER names as a string (olevba's
# `URLDownloadToFileA` keyword).
XLM_SUSPICIOUS = ("EXEC", "CALL", "REGISTER", "REGISTER.ID", "FORMULA.FILL")
_XLM_CALL = re.compile(r"(?<![A-Za-z0-9_.])(" + "|".join(
    re.escape(n) for n in sorted(XLM_SUSPICIOUS, key=len, reverse=True)) +
    r")\s*\(", re.IGNORECASE)
_XLM_DOWNLOAD = re.compile(r"URLDownloadToFile[AW]?", re.IGNORECASE)
_MACROSHEET_TYPE = re.compile(r"application/vnd\.ms-excel\.(intl)?macrosheet", re.I)
_MACROSHEET_REL = re.compile(r"/xl(Intl)?Macrosheet$", re.I)
_WORKBOOK_TYPE = re.compile(
    r"application/vnd\.(ms-excel\.|openxmlformats-officedocument\.spreadsheetml\.).*"
    r"\.main(\+xml)?$", re.I)
_CONTENT_TYPES = xmltext.Grammar(frozenset({"Default", "Override"}), frozenset())
_RELATIONSHIPS = xmltext.Grammar(frozenset({"Relationship"}), frozenset())
_DEFINED_NAMES = xmltext.Grammar(frozenset({"definedName"}), frozenset())
_FORMULAS = xmltext.Grammar(frozenset({"f"}), frozenset({"f"}))
# Text carriers of a VBA project (module docstring, olevba's `VBA_Parser.__init__`).
_WORDML = b"http://schemas.microsoft.com/office/word/2003/wordml"
_XMLPACKAGE = b"http://schemas.microsoft.com/office/2006/xmlPackage"
_ACTIVEMIME = (b"ActiveMime", b"QWN0aXZlTWltZQ")
_VBAPROJECT_TYPE = b"application/vnd.ms-office.vbaProject"
_BINDATA = re.compile(rb"<(?:[\w.-]+:)?binData\b[^>]*>([^<]*)<")
_B64_ACTIVEMIME = re.compile(rb"QWN0aXZlTWltZQ[A-Za-z0-9+/=\s]*")
SEALED_SIGNATURES = (sevenzip.SIGNATURE, rar.RAR5, rar.RAR4)
_CARRIER_TYPES = {"Word 2003 XML": olevba.TYPE_Word2003_XML,
                  "MHTML": olevba.TYPE_MHTML, "flat OPC": olevba.TYPE_FlatOPC_XML}


class _Errors(logging.Handler):
    """The errors olevba logs (and goes on after) while it reads one file."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage()[:200])


@contextmanager
def _olevba_errors() -> Iterator[_Errors]:
    """olevba's `ERROR` log records while the block runs, kept from the journal: olevba
    logs a module it could not extract and then returns the others, so a record here
    is the only sign that a macro was lost."""
    logger = logging.getLogger("olevba")
    handler = _Errors()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@dataclass(frozen=True)
class Found:
    """Macros in one file of an attachment: `path` inside it ('' for the attachment
    itself, else `inner.zip/laporan.docm`), the keywords of each level, and why it
    could not be read (`unreadable`, our own words; '' when it was). `sealed`: an
    archive whose files are not read (7z, RAR): whether it holds macros is unknown, so
    it is `unopened`, neither `present` nor `unreadable` (the reason is in
    `unreadable`)."""

    path: str
    autoexec: tuple[str, ...] = ()
    suspicious: tuple[str, ...] = ()
    unreadable: str = ""
    sealed: bool = False

    @property
    def levels(self) -> tuple[Level, ...]:
        out: list[Level] = [] if self.sealed else ["present"]
        if self.autoexec:
            out.append("autoexec")
        if self.suspicious:
            out.append("suspicious")
        if self.unreadable:
            out.append("unopened" if self.sealed else "unreadable")
        return tuple(out)


@dataclass(frozen=True)
class MacroState:
    """An attachment's macros: every file in it that has some (`found`, () for none)."""

    found: tuple[Found, ...] = field(default=())

    @property
    def levels(self) -> tuple[Level, ...]:
        """Every level some file holds, in `LEVELS` order; () for no macros."""
        held = {level for f in self.found for level in f.levels}
        return tuple(level for level in LEVELS if level in held)

    def matching(self, wanted: frozenset[str]) -> tuple[Found, ...]:
        """The files that hold every one of `wanted` (a rule's levels) at once."""
        return tuple(f for f in self.found if wanted <= set(f.levels))

    def as_dict(self) -> dict[str, object]:
        return {"levels": list(self.levels),
                "files": [{"path": f.path, "levels": list(f.levels),
                           "autoexec": list(f.autoexec), "suspicious": list(f.suspicious),
                           **({"unreadable": f.unreadable} if f.unreadable else {})}
                          for f in self.found]}


NONE = MacroState()


def scan(data: bytes, bounds: Bounds) -> MacroState:
    """The macros of one decoded attachment (module docstring).

    Raises LimitExceeded when reading it goes beyond the bounds (a bomb, the
    expansion budget, the time)."""
    return MacroState(tuple(_scan(data, bounds, "", 0)))


def _scan(data: bytes, bounds: Bounds, path: str, depth: int) -> Iterator[Found]:
    bounds.check_time()
    head = data[:PEEK]
    if ole.is_ole(head):
        if msg.looks_like_msg(data):
            yield from _enclosure(msg.read, data, bounds, path, depth)
        else:
            found = _ole(data, bounds, path)
            if found is not None:
                yield found
    elif (sealed := walk.kind(head)) in ("sevenzip", "rar", "archive"):
        yield from _sealed(data, sealed, bounds, path, depth)
    elif archives.is_zip(head):
        yield from _zip(data, bounds, path, depth)
    elif (kind := carrier(data)) is not None:
        found = _carrier(data, kind, bounds, path)
        if found is not None:
            yield found
        if archives.has_directory(data):
            yield from _zip(data, bounds, path, depth)
    elif archives.has_directory(data):
        yield from _zip(data, bounds, path, depth)
    elif compressed.compression(head) is not None or compressed.is_tar(head):
        _nest(bounds, depth)
        reader = compressed.Reader(data, bounds, _wanted, PEEK)
        for member in reader.members():
            if member.data is not None:
                yield from _scan(member.data, bounds, _join(path, member.name), depth + 1)
        if reader.trailing and archives.has_directory(reader.trailing):
            yield from _zip(reader.trailing, bounds, path, depth)
    elif tnef.looks_like_tnef(head) and depth > 0:
        yield from _enclosure(tnef.read, data, bounds, path, depth)


def _wanted(head: bytes) -> bool:
    """A member worth reading: one that may hold macros."""
    return ole.is_ole(head) or archives.is_zip(head) or tnef.looks_like_tnef(head) or \
        compressed.compression(head) is not None or compressed.is_tar(head) or \
        head.startswith(SEALED_SIGNATURES) or _may_carry(head) or \
        walk.kind(head) == "archive"


def _sealed(data: bytes, kind: str, bounds: Bounds, path: str, depth: int
            ) -> Iterator[Found]:
    """A 7z or RAR archive, or another archive libmagic names: its files are not read
    (`walk._unread` reports the same to `attachment_unreadable`), so `unopened`,
    unless every file in it is encrypted; a ZIP behind it is read."""
    if walk.archive_encrypted(data, kind) is not True:
        named = {"sevenzip": "7z", "rar": "RAR"}.get(kind, "this")
        yield Found(path, unreadable=f"the files in {named} archive are not read",
                    sealed=True)
    if archives.has_directory(data):
        yield from _zip(data, bounds, path, depth)


def carrier(data: bytes) -> str | None:
    """The text carrier of a VBA project `data` is (module docstring): 'Word 2003 XML',
    'flat OPC' or 'MHTML'; None for anything else. Markers only (olevba's own, in
    `VBA_Parser.__init__`, and the ActiveMime header of `is_mso_file`), anywhere in
    the file: olevba reads these files whatever comes first."""
    if ole.is_ole(data[:8]) or archives.is_zip(data[:4]):
        return None
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        if _WORDML in data and b"binData" in data:
            return "Word 2003 XML"
        if _XMLPACKAGE in data and _VBAPROJECT_TYPE in data:
            return "flat OPC"
    if any(m in data for m in _ACTIVEMIME):
        lowered = data.lower()
        if b"mime" in lowered and b"multipart" in lowered:
            return "MHTML"
    return None


def _may_carry(head: bytes) -> bool:
    """The first bytes of a member that may be a `carrier` (read it whole to know)."""
    return _WORDML in head or _XMLPACKAGE in head or b"mime" in head.lower()


def _nest(bounds: Bounds, depth: int) -> None:
    if depth > bounds.limits.max_archive_depth:
        raise LimitExceeded(f"archives nested deeper than {bounds.limits.max_archive_depth}")


def _zip(data: bytes, bounds: Bounds, path: str, depth: int) -> Iterator[Found]:
    """Every member of a ZIP (an OOXML package too) that may hold macros; an encrypted
    member cannot be read (the encryption rules judge it)."""
    _nest(bounds, depth)
    try:
        zf = archives.open_zip(data, bounds.limits)
    except archives.BadArchive:
        return
    with zf:
        xlm = _xlm(zf, bounds, path)
        if xlm is not None:
            yield xlm
        for info in zf.infolist():
            if archives.is_dir(info) or info.flag_bits & 0x1:
                continue
            bounds.check_time()
            if not _wanted(archives.peek(zf, info, PEEK)):
                continue
            member = archives.read_member(zf, info, bounds)
            if member is not None:
                yield from _scan(member, bounds, _join(path, info.filename), depth + 1)


def _xlm(zf: zipfile.ZipFile, bounds: Bounds, path: str) -> Found | None:
    """Excel 4.0 macro sheets of an OOXML package (module docstring): None when it has
    none. A part that does not parse gives what was read before the damage."""
    parts = {info.filename.casefold(): info for info in zf.infolist()
             if not archives.is_dir(info) and not info.flag_bits & 0x1}
    sheets = {name for name in parts if "macrosheets/" in name}
    workbooks = {name for name in parts if name.endswith("workbook.xml")}
    for name in parts:
        if name == "[content_types].xml":
            for entry in _xml(zf, parts[name], _CONTENT_TYPES, bounds):
                content_type = entry.attrs.get("ContentType", "")
                part = entry.attrs.get("PartName", "").lstrip("/").casefold()
                if _MACROSHEET_TYPE.match(content_type):
                    if entry.tag == "Override":
                        sheets.add(part)
                    else:
                        ext = "." + entry.attrs.get("Extension", "").casefold()
                        sheets.update(n for n in parts if n.endswith(ext))
                elif entry.tag == "Override" and _WORKBOOK_TYPE.match(content_type):
                    workbooks.add(part)
        elif name.endswith(".rels"):
            base = posixpath.dirname(posixpath.dirname(name))
            for entry in _xml(zf, parts[name], _RELATIONSHIPS, bounds):
                if _MACROSHEET_REL.search(entry.attrs.get("Type", "")):
                    target = entry.attrs.get("Target", "").casefold()
                    sheets.add(target.lstrip("/") if target.startswith("/") else
                               posixpath.normpath(posixpath.join(base, target)))
    sheets &= parts.keys()
    if not sheets:
        return None
    autoexec: dict[str, None] = {}
    for name in sorted(workbooks & parts.keys()):
        for entry in _xml(zf, parts[name], _DEFINED_NAMES, bounds):
            defined = entry.attrs.get("name", "")
            bare = defined.removeprefix("_xlnm.").casefold()
            if bare.startswith(("auto_open", "auto_close")):
                autoexec[defined] = None
    suspicious: dict[str, None] = {}
    for name in sorted(sheets):
        for entry in _xml(zf, parts[name], _FORMULAS, bounds):
            for match in _XLM_CALL.finditer(entry.text):
                suspicious[match.group(1).upper()] = None
            if (download := _XLM_DOWNLOAD.search(entry.text)) is not None:
                suspicious[download.group(0)] = None
    return Found(path, tuple(list(autoexec)[:MAX_KEYWORDS]),
                 tuple(list(suspicious)[:MAX_KEYWORDS]))


def _xml(zf: zipfile.ZipFile, info: zipfile.ZipInfo, grammar: xmltext.Grammar,
         bounds: Bounds) -> Iterator[xmltext.Paragraph]:
    """The grammar's elements of one XML part; a binary part (an .xlsb's) or damage
    ends the part quietly. Raises LimitExceeded (and UnsafeXML) as `xmltext` does."""
    data = archives.read_member(zf, info, bounds)
    if data is None:
        return
    try:
        yield from xmltext.paragraphs(io.BytesIO(data), grammar, bounds, len(data))
    except xmltext.BadXML:
        return


def _enclosure(reader: Callable[[bytes, Bounds], Enclosure], data: bytes, bounds: Bounds,
               path: str, depth: int) -> Iterator[Found]:
    """An Outlook item or TNEF stream inside an archive: the files it carries."""
    if depth == 0:
        return  # an attachment: the view makes its files attachments of their own
    _nest(bounds, depth)
    try:
        enclosed = reader(data, bounds)
    except BadEnclosure:
        raise LimitExceeded(f"{path}: an enclosed message that cannot be read") from None
    yield from _enclosed_files(enclosed.files, bounds, path, depth)


def _enclosed_files(files: Iterable[EnclosedFile], bounds: Bounds, path: str,
                    depth: int) -> Iterator[Found]:
    for number, file in enumerate(files, 1):
        inner = _join(path, file.names[0] if file.names else f"file{number}")
        if file.message is not None:
            yield from _enclosed_files(file.message.files, bounds, inner, depth + 1)
        elif file.data:
            yield from _scan(file.data, bounds, inner, depth + 1)


def _ole(data: bytes, bounds: Bounds, path: str) -> Found | None:
    """One OLE file through olevba: None when it has no macros."""
    return _olevba(data, bounds, path, None, carries=False)


def _carrier(data: bytes, kind: str, bounds: Bounds, path: str) -> Found | None:
    """A text carrier (`carrier`) through olevba, its ActiveMime blobs charged to the
    budget first (`_inflate`). None when it has no macros and carries no project
    (a Word 2003 XML whose `binData` are pictures).

    Raises xmltext.UnsafeXML for XML with a DOCTYPE or entity declaration, and
    LimitExceeded when an ActiveMime blob inflates beyond the budget."""
    if kind != "MHTML" and (b"<!DOCTYPE" in data or b"<!ENTITY" in data):
        raise xmltext.UnsafeXML
    carries = _inflate(data, kind, bounds) or kind == "flat OPC" or \
        b"editdata.mso" in data or b'macrosPresent="yes"' in data
    return _olevba(data, bounds, path, kind, carries=carries)


def _olevba(data: bytes, bounds: Bounds, path: str, kind: str | None, *,
            carries: bool) -> Found | None:
    """One file through olevba. `kind`: the carrier it was handed as (None: OLE);
    olevba must read it as one of the carriers, and one that `carries` a project must
    give macros, or it is `unreadable`."""
    with _olevba_errors() as errors:
        try:
            parser = olevba.VBA_Parser(path or "attachment", data=data)
        except Exception as exc:  # olevba raises many kinds on hostile containers
            return Found(path, unreadable=f"olevba could not open it ({type(exc).__name__})")
        try:
            if kind is not None and parser.type not in _CARRIER_TYPES.values():
                # It fell back to reading the file as VBA source text (or SYLK).
                return Found(path, unreadable=f"olevba could not read it as {kind}")
            found = _analyse(parser, bounds, path)
        finally:
            parser.close()
    if found is None and kind is not None and carries:
        return Found(path, unreadable=f"{kind} that carries a macro project in which "
                                      "olevba found none")
    if found is not None and errors.seen and not found.unreadable:
        return Found(found.path, found.autoexec, found.suspicious,
                     f"olevba: {errors.seen[0]}")
    return found


def _inflate(data: bytes, kind: str, bounds: Bounds) -> bool:
    """Charge the budget with every ActiveMime blob of a carrier as olevba will inflate
    it (`mso_file_extract`: zlib at the offset the header names, else 0x32, else
    0x22A; olevba's last resort, a search for zlib headers, fails on Python 3), never
    inflating more than the budget left. True when the file has such a blob.

    Raises LimitExceeded when one inflates beyond the budget left."""
    blobs: dict[bytes, None] = {}
    for match in _BINDATA.finditer(data):
        blobs[_base64(match.group(1))] = None
    for match in _B64_ACTIVEMIME.finditer(data):
        blobs[_base64(match.group(0))] = None
    # Raw ones too (a part sent 8bit or binary), as views: not copied, not deduplicated.
    raw: list[bytes | memoryview] = []
    start = data.find(b"ActiveMime")
    while start >= 0:
        raw.append(memoryview(data)[start:])
        start = data.find(b"ActiveMime", start + 1)
    if kind == "MHTML":
        try:
            parts = list(email.message_from_bytes(data).walk())
        except Exception:  # olevba's own MIME reading decides
            parts = []
        for part in parts:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                blobs[payload] = None
    found = False
    for blob in [*blobs, *raw]:
        bounds.check_time()
        if bytes(blob[:10]) != b"ActiveMime":
            continue
        found = True
        offsets = [0x32, 0x22A]
        if len(blob) >= 0x20:
            offsets.insert(0, struct.unpack_from("<H", blob, 0x1E)[0] + 46)
        for offset in offsets:
            left = bounds.budget.remaining
            inflater = zlib.decompressobj()
            try:
                out = inflater.decompress(blob[offset:], left + 1)
            except zlib.error:
                continue
            if len(out) > left:
                raise LimitExceeded(f"documents expand beyond {bounds.budget.limit} bytes")
            if inflater.eof:
                bounds.charge(len(out))
                break
    return found


def _base64(text: bytes) -> bytes:
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        return b""


def _analyse(parser: olevba.VBA_Parser, bounds: Bounds, path: str) -> Found | None:
    try:
        if parser.ole_file is not None and _has_encrypted_package(parser):
            return None  # the whole package is encrypted: nothing to see (module docstring)
        if not parser.detect_macros():
            return None
        autoexec: dict[str, None] = {}
        suspicious: dict[str, None] = {}
        sources = 0
        for _name, _stream, _module, code in parser.extract_macros():
            bounds.check_time()
            if not isinstance(code, str):
                continue
            bounds.charge(len(code))
            if code.strip():
                sources += 1
            for kind, keyword, _why in olevba.VBA_Scanner(olevba.filter_vba(code)).scan():
                if kind == "AutoExec":
                    autoexec[str(keyword)] = None
                elif kind == "Suspicious":
                    suspicious[str(keyword)] = None
    except LimitExceeded:
        raise
    except Exception as exc:  # an error olevba did not catch itself
        return Found(path, unreadable=f"olevba failed ({type(exc).__name__})")
    unreadable = "" if sources else "a macro project with no source olevba could read"
    return Found(path, tuple(list(autoexec)[:MAX_KEYWORDS]),
                 tuple(list(suspicious)[:MAX_KEYWORDS]), unreadable)


def _has_encrypted_package(parser: olevba.VBA_Parser) -> bool:
    names = {"/".join(entry) for entry in parser.ole_file.listdir()}
    return {"EncryptionInfo", "EncryptedPackage"} <= names


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name
