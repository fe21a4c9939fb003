"""Does a password written in the message open one of its encrypted attachments?

PPPA Bil. 3 Tahun 2025, Lampiran A 3.2.2(a)(ii)(d); Garis Panduan Emel Kelantan 5.3:
the password of an encrypted attachment travels by another channel. `trial(view)`
gathers the password candidates (`gateway.message.passwords`) of the subject, every
text body (forwarded messages' too), the forwarded messages' subjects, text
attachments, the text of plain documents and the attachments' file names, and tries
each on each encrypted attachment, in memory:

- ZIP, ZipCrypto and WinZip AES (pyzipper): the smallest encrypted entry is read to
  its end, so the CRC-32 (ZipCrypto) or HMAC-SHA1 (AES) confirms the password; the
  one or two check bytes alone would let 1 in 256 wrong passwords through;
- PDF (pypdf `PdfReader.decrypt`): the user or the owner password;
- Office (msoffcrypto-tool `OfficeFile.load_key`): OOXML agile and standard encryption
  with `verify_password=True`, Word/Excel/PowerPoint 97-2003 RC4, RC4 CryptoAPI and
  Excel XOR obfuscation, whose `load_key` checks the password verifier.

Not tried (listed as `untried` with the reason, never taken for "no password"):
7z and RAR (no library here decrypts them within our bounds: py7zr's key derivation
is 2^19 SHA-256 rounds in Python per candidate), OpenDocument, OpenPGP, S/MIME, a
ZIP whose entries use a compression method the library cannot read, anything whose
format the libraries reject.

Bounds (never a silent cap): at most `MAX_CANDIDATES` distinct candidates per message;
more raises `TooManyCandidates`, and the message is not inspectable (the check raises
`NotInspectable`: 451 4.3.0, logged). Time and decoded bytes are the message's
`documents.Bounds` (one deadline, one budget): `check_time()` before every try,
`charge()` for every byte a ZIP entry decrypts to; beyond either, `LimitExceeded`.

The password itself is never returned, logged or written: `Opened` holds where it was
found, not what it was. An exception a library raises on a wrong password is caught
and its text dropped (it could quote what it was given).
"""

from __future__ import annotations

import io
import logging
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import msoffcrypto  # type: ignore[import-untyped]
import pypdf
import pyzipper  # type: ignore[import-untyped]
from msoffcrypto.format.ooxml import OOXMLFile  # type: ignore[import-untyped]

from gateway.message import passwords
from gateway.message.documents import Bounds, LimitExceeded, archives, ole, pdf
from gateway.message.documents import odf as odf_mod
from gateway.message.passwords import Candidate

# msoffcrypto logs derived keys and verifiers at DEBUG: never let them reach a handler.
logging.getLogger("msoffcrypto").setLevel(logging.WARNING)

MAX_CANDIDATES = 20
_CHUNK = 64 * 1024


class TooManyCandidates(Exception):
    """More than MAX_CANDIDATES distinct password candidates: not all could be tried."""

    def __init__(self, found: int) -> None:
        super().__init__(f"more than {MAX_CANDIDATES} password candidates ({found})")
        self.reason = str(self)
        self.found = found


@dataclass(frozen=True)
class Opened:
    """An encrypted attachment a candidate opened, and where the candidate stood
    (`Candidate.where`: `subject`, `body`, `forwarded:1:body`, `attachment`...;
    `found_name` is the attachment the text came from when it was one)."""

    index: int
    name: str
    scheme: str | None
    where: str
    found_name: str


@dataclass(frozen=True)
class Untried:
    index: int
    name: str
    scheme: str | None
    reason: str  # `7z`, `rar`, `opendocument`, `pgp`, `smime`, `zip-method`, `unsupported`


class Trial(NamedTuple):
    opened: tuple[Opened, ...]
    untried: tuple[Untried, ...]
    candidates: int  # distinct candidates found (each tried on every tried attachment)
    encrypted: int  # encrypted attachments seen


class _Source(NamedTuple):
    candidate: Candidate
    name: str  # the attachment the text came from, "" otherwise


def candidates(view: Any) -> list[_Source]:
    """Every distinct candidate of the message (module docstring), first place first.
    `view`: a MessageView. Raises LimitExceeded from reading a plain document."""
    found: dict[str, _Source] = {}

    def add(text: str, where: str, name: str = "") -> None:
        for c in passwords.find(text, where):
            found.setdefault(c.password, _Source(c, name))

    add(view.subject, "subject")
    for fwd in view.forwarded:
        add(fwd.subject, f"forwarded:{fwd.nested}:subject")
    for part in view.text_parts:
        add(part.text, part.where)
        if part.typed is not None:  # `Kata laluan: abc123` in a block shown in capitals
            add(part.typed, part.where)
    for att in view.attachments:
        for name in att.filenames:
            # `kata laluan abc123.txt`: the name without its extension too.
            for text in dict.fromkeys((name.rsplit(".", 1)[0], name)):
                add(text, "attachment_name", att.path)
        if att.is_message or att.encrypted is True:
            continue
        if att.category == "text":
            add(att.text(), "attachment", att.path)
        for piece in att.document_pieces:
            if piece.rule in ("lines", "label"):
                add(piece.text, "attachment", att.path)
    return list(found.values())


def _kind(data: bytes) -> str | None:
    if archives.is_zip(data):
        return "zip"
    if pdf.looks_like_pdf(data):
        return "pdf"
    if ole.is_ole(data):
        return "office"
    return None


def _why_not(scheme: str | None, data: bytes) -> str:
    if data.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if data.startswith(b"Rar!"):
        return "rar"
    return scheme if scheme in ("pgp", "smime") else "unsupported"


class _Unsupported(Exception):
    """The library cannot say whether any password opens this file."""


def _encodings(password: str) -> list[bytes]:
    """UTF-8 (7-Zip, WinZip AES, Windows 10's own) and, when it can be, the DOS code
    page older ZipCrypto tools use (APPNOTE.TXT 4.4.4: names and passwords in CP437)."""
    out = [password.encode("utf-8")]
    try:
        legacy = password.encode("cp437")
    except UnicodeEncodeError:
        return out
    return out if legacy in out else [*out, legacy]


def _zip_opener(data: bytes, bounds: Bounds) -> Any:
    try:
        zf = pyzipper.AESZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception:  # pyzipper raises what zipfile does, and more, on damage
        raise _Unsupported("zip") from None
    archives.check_directory(data, infos, bounds.limits)
    if odf_mod.is_odf({i.filename for i in infos}):
        raise _Unsupported("opendocument")
    entries = [i for i in infos if not archives.is_dir(i) and i.flag_bits & 0x1]
    if not entries:
        raise _Unsupported("unsupported")
    entry = min(entries, key=lambda i: i.file_size)

    def opens(password: str) -> bool:
        for encoded in _encodings(password):
            try:
                with zf.open(entry, pwd=encoded) as member:
                    while chunk := member.read(_CHUNK):
                        bounds.charge(len(chunk))
                        bounds.check_time()
                return True
            except (LimitExceeded, _Unsupported):
                raise
            except NotImplementedError:
                raise _Unsupported("zip-method") from None
            except (RuntimeError, zipfile.BadZipFile, zlib.error, EOFError, ValueError,
                    OSError):
                continue  # a bad password: check byte(s), CRC or HMAC
        return False

    return opens


def _pdf_opener(data: bytes, bounds: Bounds) -> Any:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if not reader.is_encrypted:
            raise _Unsupported("unsupported")
    except _Unsupported:
        raise
    except Exception:  # pypdf raises many types on damaged files
        raise _Unsupported("unsupported") from None

    def opens(password: str) -> bool:
        try:
            return bool(reader.decrypt(password) != pypdf.PasswordType.NOT_DECRYPTED)
        except NotImplementedError:  # a security handler pypdf does not know
            raise _Unsupported("unsupported") from None
        except Exception:  # never quote what pypdf says: it may hold the candidate
            return False

    return opens


def _office_opener(data: bytes, bounds: Bounds) -> Any:
    try:
        msoffcrypto.OfficeFile(io.BytesIO(data))
    except Exception:  # msoffcrypto raises FileFormatError and others on what it rejects
        raise _Unsupported("unsupported") from None

    def opens(password: str) -> bool:
        try:
            office = msoffcrypto.OfficeFile(io.BytesIO(data))
            if isinstance(office, OOXMLFile):
                office.load_key(password=password, verify_password=True)
            else:
                office.load_key(password=password)
        except NotImplementedError:
            raise _Unsupported("unsupported") from None
        except Exception:  # InvalidKeyError and the like: a wrong password
            return False
        return True

    return opens


_OPENERS = {"zip": _zip_opener, "pdf": _pdf_opener, "office": _office_opener}


def trial(view: Any, bounds: Bounds) -> Trial:
    """Try every candidate on every encrypted attachment (module docstring).

    `view`: a complete MessageView (the caller has called `require_complete()`).
    Returns the attachments opened and the ones not tried. Raises TooManyCandidates,
    LimitExceeded (time or bytes; also from reading plain documents)."""
    encrypted = [a for a in view.attachments if a.encrypted is True and a.enclosed is None]
    if not encrypted:
        return Trial((), (), 0, 0)
    found = candidates(view)
    if len(found) > MAX_CANDIDATES:
        raise TooManyCandidates(len(found))
    opened: list[Opened] = []
    untried: list[Untried] = []
    for att in encrypted:
        data = att.data()
        kind = _kind(data)
        scheme = att.encryption_scheme
        if kind is None:
            untried.append(Untried(att.index, att.path, scheme, _why_not(scheme, data)))
            continue
        if not found:
            continue
        try:
            opens = _OPENERS[kind](data, bounds)
            for source in found:
                bounds.check_time()
                if opens(source.candidate.password):
                    opened.append(Opened(att.index, att.path, scheme,
                                         source.candidate.where, source.name))
                    break
        except _Unsupported as exc:
            untried.append(Untried(att.index, att.path, scheme, str(exc)))
    return Trial(tuple(opened), tuple(untried), len(found), len(encrypted))
