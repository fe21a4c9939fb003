"""The parsed, read-only view of one message that every check reads.

Built from the raw bytes alone; every part is computed lazily on first use and
cached, so a rule set that never asks for attachments never decodes one. Header
checks read the raw header block and never parse MIME; the compat32 parse and
the bounded walk (`mime.walk`) happen only when a body, an attachment or a
marking is asked for. The view never changes the message: transforms work on
the raw bytes.

It never raises on hostile MIME: parser defects are recorded in `defects`, the
named structure defects a rule can use in `structure_defects`
(gateway.message.defects), a part that cannot be decoded gives an attachment
with `encrypted=None` ("could not inspect"). The bounds are `limits`
(`InspectionLimits`: header bytes, parts, depth, expansion bytes, archive
entries/depth/ratio); `budget` counts the decoded bytes spent, and code that
unpacks (archives) charges it. When the message is beyond a bound the view is
`complete=False`; checks that need the whole structure call `require_complete()`,
which raises `NotInspectable`, and the pipeline answers 451 4.3.0 unless a rule
on `inspection_incomplete` decided first: a message that cannot be inspected is
never relayed unseen.

Sender identity (From/Sender defects) is `identity` (gateway.message.identity).
"""

from __future__ import annotations

import email.message
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from gateway.message import (
    containers,
    documents,
    encryption,
    filetypes,
    forwarding,
    identity,
    mime,
    prescan,
    textscan,
)
from gateway.message import defects as defect_kinds
from gateway.message import headers as hdr
from gateway.message import links as links_mod
from gateway.message import markings as markings_mod
from gateway.message.documents import macros as macros_mod
from gateway.message.documents import walk
from gateway.message.documents.enclosure import BadEnclosure, Enclosure
from gateway.message.documents.walk import enclosure_pieces
from gateway.message.labels import LabelMap
from gateway.message.limits import DEFAULT_LIMITS, ExpansionBudget, InspectionLimits
from gateway.message.text import decode_bytes, html_to_text, html_to_texts

# Categories whose content may hold documents (ZIP, OOXML, ODF, RTF, PDF, legacy Office,
# Outlook items); the rest (pictures, programs, text) are read otherwise.
_DOCUMENT_CATEGORIES = frozenset({"archive", "office", "pdf", "other"})


class NotInspectable(Exception):
    """The message is beyond the inspection bounds; the only safe answer is 451 4.3.0."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Attachment:
    """One attachment as the policy sees it (decoded size, real type, encryption).

    Read-only; each fact is computed on first use. The content is decoded once
    (`payloads`, the view's `mime.Decoded`): size, type, encryption, documents, text
    and the files of an Outlook item all read that one buffer. The parse tree holds
    payloads as spans of the raw message, so the buffer is the attachment's only
    copy besides the message itself.
    """

    def __init__(self, leaf: mime.Leaf, *, in_encrypted: bool = False,
                 limits: InspectionLimits = DEFAULT_LIMITS,
                 budget: ExpansionBudget | None = None,
                 bounds: documents.Bounds | None = None,
                 payloads: mime.Decoded | None = None) -> None:
        self._leaf = leaf
        self._payloads = payloads if payloads is not None else mime.Decoded()
        self._in_encrypted = in_encrypted
        self.index = leaf.index
        self.declared_type = leaf.content_type
        self.nested = leaf.nested
        # A message/* part, or one sniffed as a message (an attached .eml of any
        # declared type): its subject, headers and parts are read as a forwarded message.
        self.is_message = leaf.message or leaf.content_type.startswith("message/")
        # A file inside an Outlook item or TNEF attachment: where it stood
        # (`winmail.dat/AUTOEXEC.BAT`) and the index of that attachment.
        self.container: int | None = None
        self.container_path = ""
        # Set by the view for an Outlook item or TNEF attachment: its files.
        self.enclosed: tuple[Attachment, ...] | None = None
        # What unpacking this attachment (archives, documents) is bounded by.
        self.limits = limits
        self.budget = budget if budget is not None else ExpansionBudget(
            limits.max_expansion_bytes)
        self._bounds = bounds

    def __repr__(self) -> str:
        return f"Attachment(index={self.index}, declared_type={self.declared_type!r})"

    @cached_property
    def filename(self) -> str:
        return mime.filename(self._leaf.part)

    @cached_property
    def filenames(self) -> tuple[str, ...]:
        """Every name variant the part carries (`filename` first); see mime.filenames.

        Every one counts for markings, name rules and the executable test: a
        client may show any of them."""
        return mime.filenames(self._leaf.part)

    @property
    def wire_span(self) -> tuple[object, int, int] | None:
        """(buffer, start, end) of the content as sent, in the buffer it was parsed
        from (the message's raw bytes, or a decoded enclosing part); None if unknown."""
        return mime.wire_span(self._leaf.part)

    def data(self) -> bytes:
        """The decoded content (b'' when it cannot be decoded), decoded once."""
        data, _clean = self._payloads.get(self._leaf.part)
        return data or b""

    @cached_property
    def _facts(self) -> tuple[int, str, str, encryption.Protection]:
        data, clean = self._payloads.get(self._leaf.part)
        if data is None:
            return 0, "application/octet-stream", "other", encryption.UNKNOWN
        detected = filetypes.detect(data)
        # The most dangerous reading wins: one name variant ending .exe makes a text
        # file a program, whatever the other variants say.
        categories = [filetypes.category(detected, name, data)
                      for name in (self.filenames or ("",))]
        category = "executable" if "executable" in categories else categories[0]
        state = encryption.attachment_protection(data, detected, self.limits) if clean \
            else encryption.UNKNOWN
        if state.encrypted is False and self._in_encrypted and category == "other":
            # Inside multipart/encrypted, bytes no reader recognises are the ciphertext
            # (binary OpenPGP). A document, text or picture that reads in the clear is
            # plain whatever wraps it: clients that do not know PGP/MIME show it.
            state = encryption.Protection(True, None)
        return len(data), detected, category, state

    @cached_property
    def size(self) -> int:
        """Decoded bytes."""
        if "_facts" in self.__dict__:
            return self._facts[0]
        data, _clean = self._payloads.get(self._leaf.part)
        return len(data) if data is not None else 0

    @property
    def detected_type(self) -> str:
        """libmagic MIME type of the content."""
        return self._facts[1]

    @property
    def category(self) -> str:
        """executable | archive | office | pdf | image | text | other"""
        return self._facts[2]

    @property
    def path(self) -> str:
        """Where the attachment stands, for evidence: its name, or for a file inside an
        Outlook item or TNEF attachment `winmail.dat/NAME`."""
        return f"{self.container_path}/{self.filename}" if self.container_path \
            else self.filename

    @property
    def encrypted(self) -> bool | None:
        """True / False, or None: could not inspect.

        An Outlook item or TNEF attachment is encrypted when it carries files and every
        one is (a transport wrapper around encrypted attachments, MARKINGS.md
        "Encrypted"); its own text is read for markings like a message's."""
        if self.enclosed is not None:
            states = [a.encrypted for a in self.enclosed]
            if states and all(state is True for state in states):
                return True
            return None if None in states else False
        return self._facts[3].encrypted

    @property
    def encryption_scheme(self) -> str | None:
        """`aes`, `zipcrypto`, `rc4`, `xor`, `pdf-rc4`, `pdf-aes`... when encrypted
        (None when not, or when the scheme cannot be told): encryption.Protection.
        An encrypted Outlook item or TNEF attachment: its files' one scheme, or None."""
        if self.enclosed is not None:
            schemes = {a.encryption_scheme for a in self.enclosed}
            return schemes.pop() if self.encrypted and len(schemes) == 1 else None
        return self._facts[3].scheme

    @cached_property
    def container_kind(self) -> containers.Kind | None:
        """`msg` or `tnef` when this attachment is an Outlook item or TNEF stream."""
        if self.detected_type not in containers.CANDIDATE_TYPES:
            return None
        return containers.kind(self.data())

    @cached_property
    def enclosure(self) -> Enclosure | None:
        """The message an Outlook item or TNEF attachment holds (None for other files).
        Raises BadEnclosure or documents.LimitExceeded."""
        found = self.container_kind
        if found is None:
            return None
        return containers.read(self.data(), found, self._document_bounds())

    def _document_bounds(self) -> documents.Bounds:
        return self._bounds or documents.Bounds(self.limits, self.budget,
                                                seconds=self.limits.max_seconds)

    @cached_property
    def claimed_categories(self) -> tuple[str, ...]:
        """The categories the declared type and the names' extensions claim."""
        return filetypes.claimed_categories(self.declared_type, self.filenames)

    @property
    def type_mismatch(self) -> bool:
        """The declared type or an extension claims another category than the content's
        (a PE named laporan.pdf). Empty content claims nothing."""
        if self.size == 0:
            return False
        return filetypes.mismatch(self.claimed_categories, self.category)

    @cached_property
    def document_pieces(self) -> tuple[documents.Piece, ...]:
        """The text pieces of the documents in this attachment (gateway.message.documents),
        read once. () for programs, and for text attachments (read by `text()`) and
        pictures unless their content is a document all the same (a PDF behind a
        picture or a page of text: `walk.kind_of`), or, among the files of an Outlook
        item or TNEF stream, a message saved as a file.

        Raises documents.LimitExceeded when they are beyond the inspection bounds
        (nothing is cached then: every caller sees the same failure)."""
        if self.is_message or self.category == "executable":
            return ()
        # A message saved as a file among the files of an Outlook item or TNEF stream
        # (the MIME walk reads those of the message itself): read as a message.
        saved = self.container is not None and self.category == "text" and \
            mime.looks_like_message(self.data()[:65536], named=any(
                n.casefold().endswith(".eml") for n in self.filenames))
        if self.category not in _DOCUMENT_CATEGORIES and not saved and \
                walk.kind_of(self.data()) not in walk.DOCUMENT_KINDS:
            # libmagic names the first bytes; readers accept more. A PDF after a picture
            # or a page of text (`%PDF-` within the first KB opens in every viewer), a
            # ZIP after a prefix: the content is read by what it is, not by its label.
            return ()
        bounds = self._document_bounds()
        if self.enclosed is not None and self.enclosure is not None:
            # Its files are attachments of their own: only its own text is read here.
            return tuple(enclosure_pieces(self.enclosure, bounds, "", 0, files=False))
        return tuple(documents.pieces(self.data(), bounds, text=saved))

    @cached_property
    def macros(self) -> macros_mod.MacroState:
        """Office macros in this attachment and the files inside it (archives, OOXML
        packages): gateway.message.documents.macros. No macros for programs, text and
        pictures (but for a text carrier of a VBA project: `macros.carrier`), a
        forwarded message (its attachments are attachments), or an Outlook
        item or TNEF attachment (its files are attachments of their own).

        Raises documents.LimitExceeded when reading it goes beyond the inspection
        bounds (nothing is cached then: every caller sees the same failure)."""
        if self.is_message or self.category == "executable" or self.container_kind:
            return macros_mod.NONE
        if walk.kind_of(self.data()) not in walk.DOCUMENT_KINDS and \
                macros_mod.carrier(self.data()) is None:
            return macros_mod.NONE  # a text carrier (Word 2003 XML, MHTML) is read
        return macros_mod.scan(self.data(), self._document_bounds())

    @property
    def unreadable(self) -> tuple[str, ...]:
        """Where this attachment has no text a reader could vouch for: `image` for a
        picture, `page3` for an image-only page...; () when everything was readable.
        Raises documents.LimitExceeded like `document_pieces`."""
        if self.category == "image":
            return ("image",)
        return tuple(dict.fromkeys(
            f"{p.path}:{p.location}" if p.path else p.location
            for p in self.document_pieces if p.rule == "unreadable"))

    def text(self) -> str:
        """The content as text (HTML rendered), for text attachments."""
        data = self.data()
        params = mime.params(self._leaf.part)
        text = decode_bytes(data, params.get("charset"))
        if self.detected_type == "text/html" or self.declared_type == "text/html":
            text, _hrefs = html_to_text(text)
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "filenames": list(self.filenames),
                "size": self.size, "declared_type": self.declared_type,
                "detected_type": self.detected_type, "category": self.category,
                "type_mismatch": self.type_mismatch, "encrypted": self.encrypted,
                "encryption_scheme": self.encryption_scheme,
                **({"container": self.container, "path": self.path}
                   if self.container is not None else {})}


@dataclass(frozen=True)
class TextPart:
    where: str  # e.g. "body", "body:html", "forwarded:1:body"
    text: str
    index: int = 0  # position among the message's text body parts
    content_type: str = "text/plain"
    nested: int = 0  # levels of message/rfc822 around this part
    hrefs: tuple[str, ...] = ()  # link targets of an HTML part
    # An HTML part's text as typed where CSS shows some in capitals (`text` is as
    # shown): where a password is read (gateway.message.unlock). None: as `text`.
    typed: str | None = None
    # What the marking scan and the link search find in `text`, when it was scanned
    # while the message arrived (gateway.message.textscan); None: search `text`.
    scanned: textscan.Scanned | None = None


@dataclass(frozen=True)
class Forwarded:
    """A message/rfc822 (or other message/*) part: the enclosed message's header block."""

    index: int
    nested: int
    filename: str  # name= / filename= of the enclosing part, '' if none
    _message: email.message.Message

    @property
    def subject(self) -> str:
        values = self.header_values("Subject")
        return values[0] if values else ""

    def header_values(self, name: str) -> tuple[str, ...]:
        return tuple(hdr.decode_str(v) for v in mime.iter_header(self._message, name))


class MessageView:
    def __init__(self, raw: bytes, *, classification_headers: tuple[str, ...] = (
            "X-Classification", "X-Pengelasan"), limits: InspectionLimits | None = None,
            max_parts: int | None = None, max_depth: int | None = None,
            label_map: Mapping[str, str] | None = None,
            prescanned: prescan.Known | None = None) -> None:
        """`limits`: the bounds (default: the shipped ones); `max_parts`/`max_depth`
        override those two; `label_map`: the config's Purview label GUIDs or names ->
        marking levels (`gateway.message.labels.LabelMap`); `prescanned`: what was
        read of `raw` while it arrived (gateway.message.prescan), answers unchanged."""
        limits = limits or DEFAULT_LIMITS
        if max_parts is not None:
            limits = replace(limits, max_parts=max_parts)
        if max_depth is not None:
            limits = replace(limits, max_depth=max_depth)
        self.raw = raw
        self.classification_headers = classification_headers
        self.label_map = LabelMap(label_map)
        self.limits = limits
        self.max_parts = limits.max_parts
        self.max_depth = limits.max_depth
        self.budget = ExpansionBudget(limits.max_expansion_bytes)
        self._late_incomplete: str | None = None  # a limit met while reading documents
        # Every part's content decoded once for the whole inspection (mime.Decoded).
        self._payloads = mime.Decoded(prescanned)
        self._counted = prescanned.counted if prescanned is not None else None
        self._prescanned = prescanned

    @property
    def decoded_on_arrival(self) -> int:
        """Parts whose decoded bytes came from the prescan (so far)."""
        return self._prescanned.used if self._prescanned is not None else 0

    @property
    def scanned_on_arrival(self) -> int:
        """Text bodies whose marking lines and links came from the prescan (so far)."""
        return self._prescanned.scanned if self._prescanned is not None else 0

    @property
    def size(self) -> int:
        return len(self.raw)

    def release_payloads(self) -> None:
        """Forget the decoded attachment bytes: for when the verdict is made and the
        view is kept only for the relay and the log. A fact asked for afterwards
        decodes again; none changes."""
        self._payloads.release()

    # -- headers (no MIME parse) ----------------------------------------------------

    @cached_property
    def header_block(self) -> bytes:
        end = hdr.header_end(self.raw)
        return self.raw[:end]

    def header_values(self, name: str) -> tuple[str, ...]:
        """Decoded (RFC 2047) values of every header with this name, in order."""
        return tuple(hdr.decode(v) for v in hdr.raw_values(self.header_block, name))

    def raw_header_values(self, name: str) -> tuple[str, ...]:
        """Unfolded but not RFC 2047-decoded values (what address parsing needs)."""
        return tuple(hdr.unfold(v) for v in hdr.raw_values(self.header_block, name))

    @cached_property
    def subject(self) -> str:
        values = self.header_values("Subject")
        return values[0] if values else ""

    @cached_property
    def secret_values(self) -> tuple[str, ...]:
        """The password candidates of a message that carries an encrypted attachment
        (gateway.message.unlock.candidates): what no log, reply or output may show,
        wherever the text repeats them (gateway.message.passwords.mask). () for other
        messages, and when the candidates cannot be read (a bound met): then only
        the labelled form is masked."""
        from gateway.message import unlock  # here: unlock reads views

        try:
            if not any(a.encrypted is True for a in self.attachments):
                return ()
            return tuple(s.candidate.password for s in unlock.candidates(self))
        except Exception:
            return ()

    @cached_property
    def message_id(self) -> str:
        values = self.header_values("Message-ID")
        return values[0].strip() if values else ""

    @cached_property
    def from_addresses(self) -> tuple[str, ...]:
        return hdr.addresses(self.raw_header_values("From"))

    @cached_property
    def from_header(self) -> str:
        values = self.header_values("From")
        return values[0] if values else ""

    @cached_property
    def identity(self) -> identity.Identity:
        """From/Sender defects: several From headers or addresses, an address in the
        display name... (gateway.message.identity)."""
        return identity.examine(self.raw_header_values("From"),
                                self.raw_header_values("Sender"), self.from_addresses)

    @cached_property
    def auto_forwarded(self) -> tuple[str, ...]:
        """Names of the headers showing automatic forwarding (see message.forwarding)."""
        return forwarding.evidence(self.header_values)

    # -- structure (compat32 parse, bounded walk) -----------------------------------

    @cached_property
    def structure(self) -> mime.Structure:
        limit = self.limits.max_header_bytes
        if len(self.header_block) > limit:
            return mime.Structure(root=None, incomplete=f"a header block over {limit} bytes",
                                  kinds=("header_too_large",))
        root, problem, kind = mime.parse_bounded(self.raw, self.limits.max_parts,
                                                counted=self._counted)
        found = mime.walk(root, problem, limits=self.limits, kind=kind,
                          payloads=self._payloads)
        self.budget.charge(found.expansion)
        return found

    @property
    def message(self) -> email.message.Message | None:
        """The compat32 parse tree (None if the message could not be parsed)."""
        return self.structure.root

    @property
    def complete(self) -> bool:
        return self.incomplete_reason is None

    @property
    def incomplete_reason(self) -> str | None:
        """Why the view is beyond its limits (our own words, no message text), or None.

        The attachments are listed first: the files of an Outlook item or TNEF
        attachment are attachments too, and reading them may meet a bound or a part
        that cannot be read. A check that asks `require_complete()` and then reads
        `attachments` must never see a partial list."""
        reason = self.structure.incomplete
        if reason is None:
            _ = self.attachments
        reason = reason or self._late_incomplete
        if reason is None and self.budget.exhausted:
            reason = f"decoded content over {self.budget.limit} bytes"
        return reason

    @cached_property
    def _payload_kinds(self) -> frozenset[str]:
        # Only bad base64 needs the payloads read; compat32 reports it on decoding only.
        # The one decode every reader shares says whether the base64 was damaged
        # (transfer.decode_base64: clean is exactly not defects.bad_base64), so the
        # payload is not read a second time for it. Parts a program made (uuencoded
        # files: bytes) and a header spelled other than plain `base64` are not judged,
        # as before.
        for leaf in (*self.structure.bodies, *self.structure.attachments):
            part = leaf.part
            if part.is_multipart() or not mime.payload_is_text(part):
                continue
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if cte == "base64" and not self._payloads.clean(part):
                return frozenset({"bad_base64"})
        return frozenset()

    @property
    def structure_defects(self) -> tuple[str, ...]:
        """Structure defect kinds found (gateway.message.defects.KINDS), in that order."""
        kinds = set(self.structure.kinds) | self._payload_kinds
        if self.budget.exhausted:
            kinds.add("expansion_too_large")
        return defect_kinds.ordered(kinds)

    @property
    def defects(self) -> tuple[str, ...]:
        return self.structure.defects

    def require_complete(self) -> None:
        """Raise NotInspectable unless the whole message was inspected within bounds.

        Every way of going incomplete counts: the MIME walk, a limit met later while
        reading documents, and the expansion budget. Checking only the walk let a
        zip bomb inside a document pass the classification check as unmarked."""
        reason = self.incomplete_reason
        if reason is not None:
            raise NotInspectable(reason)

    @cached_property
    def encrypted_message(self) -> bool:
        """The whole message is S/MIME enveloped-data, PGP/MIME, or inline PGP.

        Inline PGP counts only when every text body is nothing but armoured PGP blocks
        and every attachment is itself encrypted: attachments beside an inline-PGP
        body travel in the clear and must still be judged one by one."""
        root = self.structure.root
        if root is None:
            return False
        ctype = mime.content_type(root)
        payload: bytes | None = None
        if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
            payload, _clean = self._payloads.get(root)
        bodies = tuple(p.text for p in self.text_parts if not p.nested)
        if encryption.message_encrypted(ctype, mime.params(root), payload):
            if ctype != "multipart/encrypted":
                return True
            # PGP/MIME (RFC 3156) holds a control part and the ciphertext, nothing a
            # reader sees in the clear: a text body or a readable attachment put inside
            # a multipart/encrypted wrapper is shown as it is by clients without PGP.
            return (not bodies or encryption.inline_pgp(bodies)) and all(
                a.encrypted is True for a in self.attachments)
        return encryption.inline_pgp(bodies) and all(
            a.encrypted is True for a in self.attachments)

    @cached_property
    def text_parts(self) -> tuple[TextPart, ...]:
        """Every text body (plain, and HTML rendered to text), forwarded ones included."""
        out: list[TextPart] = []
        for leaf in self.structure.bodies:
            # Decoded once (the walk may have, looking for uuencoded files); the text is
            # what is kept, not the bytes.
            data, _clean = self._payloads.take(leaf.part)
            text = decode_bytes(data or b"", mime.params(leaf.part).get("charset"))
            hrefs: tuple[str, ...] = ()
            typed: str | None = None
            where = "body"
            if leaf.content_type == "text/html":
                text, typed, hrefs = html_to_texts(text)
                where = "body:html"
            if leaf.nested:
                where = f"forwarded:{leaf.nested}:{where}"
            scanned = self._prescanned.text(leaf.part) if self._prescanned is not None \
                and leaf.content_type == "text/plain" else None
            out.append(TextPart(where=where, text=text, index=leaf.index,
                                content_type=leaf.content_type, nested=leaf.nested,
                                hrefs=hrefs, typed=typed, scanned=scanned))
        return tuple(out)

    @cached_property
    def attachments(self) -> tuple[Attachment, ...]:
        enc = self.structure.encrypted_parts
        found = [Attachment(leaf, in_encrypted=leaf.index in enc, limits=self.limits,
                            budget=self.budget, bounds=self.document_bounds,
                            payloads=self._payloads)
                 for leaf in self.structure.attachments]
        try:
            self._add_enclosed(found)
        except (BadEnclosure, documents.LimitExceeded) as exc:
            self._late_incomplete = f"an enclosed message: {exc}"
        return tuple(found)

    def _add_enclosed(self, found: list[Attachment]) -> None:
        """Append the files of every Outlook item or TNEF attachment as attachments of
        their own (gateway.message.containers), recursively, within the bounds.

        Raises BadEnclosure (a container that cannot be read: its files are unknown)
        or documents.LimitExceeded; what was appended before stays."""
        bounds = self.document_bounds
        queue = list(found)
        while queue:
            att = queue.pop(0)
            if att.container_kind is None:
                continue
            enclosure = att.enclosure
            assert enclosure is not None
            depth = att.path.count("/") + 1
            children: list[Attachment] = []
            for file in containers.files(enclosure, att.path, bounds, depth):
                if len(found) >= self.limits.max_parts:
                    raise documents.LimitExceeded(
                        f"more than {self.limits.max_parts} attachments")
                leaf = mime.Leaf("attachment", len(found), containers.mime_part(file.file),
                                 file.file.declared_type, att.nested + 1)
                child = Attachment(leaf, in_encrypted=att._in_encrypted, limits=self.limits,
                                   budget=self.budget, bounds=bounds,
                                   payloads=self._payloads)
                child.container = att.index
                child.container_path = file.path.rpartition("/")[0]
                # A file, whatever type the container declares: no MIME walk reads it as
                # a forwarded message, so its text is read here (`document_pieces`).
                child.is_message = False
                found.append(child)
                children.append(child)
            att.enclosed = tuple(children)
            queue.extend(children)

    @cached_property
    def document_bounds(self) -> documents.Bounds:
        """What reading all of this message's documents may spend (one deadline)."""
        return documents.Bounds(self.limits, self.budget, seconds=self.limits.max_seconds)

    @cached_property
    def forwarded(self) -> tuple[Forwarded, ...]:
        return tuple(Forwarded(e.index, e.nested, e.filename, e.message)
                     for e in self.structure.enclosed)

    @cached_property
    def links(self) -> tuple[links_mod.Link, ...]:
        parts = self.text_parts
        hrefs = tuple(h for p in parts for h in p.hrefs)
        return links_mod.extract(tuple(p.text for p in parts), hrefs,
                                 tuple(None if p.scanned is None else p.scanned.urls
                                       for p in parts))

    @cached_property
    def link_hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(link.host for link in self.links))

    # -- markings -------------------------------------------------------------------

    @cached_property
    def markings(self) -> markings_mod.Markings:
        """Every classification marking found, with where (see MARKINGS.md).

        When reading the documents meets a limit (a ZIP bomb...), the view becomes
        incomplete (`require_complete()` raises from then on, so the classification
        check fails closed) and the markings are those of the subject, headers and
        bodies only: enough for the log to withhold a RAHSIA subject, never a verdict.
        """
        try:
            return markings_mod.detect(self)
        except NotInspectable as exc:
            self._late_incomplete = exc.reason
        # Bounded as `detect` bounds evidence: a RAHSIA line after fifty TERHAD ones is
        # kept (cutting the list at fifty lost it, and with it the log's withholding).
        return markings_mod.detect(self, attachments=False)

    @property
    def classification(self) -> str | None:
        """The highest marking found (RAHSIA BESAR > RAHSIA > SULIT > TERHAD), or None."""
        return self.markings.highest
