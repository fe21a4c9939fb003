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
Nothing else is handed to oletools: olevba reads any text as VBA source, so a text
attachment would "have macros". Word 2003 XML, flat OPC and MHTML carriers, RTF
objects and OpenDocument Basic are not read (`MacroState` says nothing of them).

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
  read is never taken for no macro (fail closed); the shipped rules refuse it inbound.

An encrypted document (the whole OOXML package encrypted: `EncryptionInfo` +
`EncryptedPackage`) has no macros to see without the password; like its text, they
are unknown, and it is judged by the encryption rules, not as unreadable.

Bounds: every ZIP member and tar member is read through `archives`/`compressed`
(bomb checks, the expansion budget), the source code olevba decompresses is charged
to the same budget, and `check_time()` runs between files and modules; a bound met
raises `LimitExceeded` (the message is not inspectable). olevba itself runs inside
the inspection process, which is killed at `limits.inspection_timeout`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from oletools import olevba

from gateway.message.documents import archives, compressed, msg, ole, tnef
from gateway.message.documents.bounds import Bounds, LimitExceeded
from gateway.message.documents.enclosure import BadEnclosure, EnclosedFile, Enclosure

Level = Literal["present", "autoexec", "suspicious", "unreadable"]
LEVELS: tuple[Level, ...] = ("present", "autoexec", "suspicious", "unreadable")
PEEK = 4096
# Keywords kept per level and file: evidence, not a cap on what is judged.
MAX_KEYWORDS = 20



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
    could not be read (`unreadable`, our own words; '' when it was)."""

    path: str
    autoexec: tuple[str, ...] = ()
    suspicious: tuple[str, ...] = ()
    unreadable: str = ""

    @property
    def levels(self) -> tuple[Level, ...]:
        out: list[Level] = ["present"]
        if self.autoexec:
            out.append("autoexec")
        if self.suspicious:
            out.append("suspicious")
        if self.unreadable:
            out.append("unreadable")
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
    elif archives.is_zip(head) or archives.has_directory(data):
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
        compressed.compression(head) is not None or compressed.is_tar(head)


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
        for info in zf.infolist():
            if archives.is_dir(info) or info.flag_bits & 0x1:
                continue
            bounds.check_time()
            if not _wanted(archives.peek(zf, info, PEEK)):
                continue
            member = archives.read_member(zf, info, bounds)
            if member is not None:
                yield from _scan(member, bounds, _join(path, info.filename), depth + 1)


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
    with _olevba_errors() as errors:
        try:
            parser = olevba.VBA_Parser(path or "attachment", data=data)
        except Exception as exc:  # olevba raises many kinds on hostile containers
            return Found(path, unreadable=f"olevba could not open it ({type(exc).__name__})")
        try:
            found = _analyse(parser, bounds, path)
        finally:
            parser.close()
    if found is not None and errors.seen and not found.unreadable:
        return Found(found.path, found.autoexec, found.suspicious,
                     f"olevba: {errors.seen[0]}")
    return found


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
