"""Paragraph text out of an XML part, streamed and safe.

Office XML is read with expat directly, in chunks, so a part costs memory in
proportion to one paragraph, not to the document. A DOCTYPE or any entity
declaration is refused outright (Office never writes one; an attacker writes
one for entity expansion or external entities), and a part larger than the
caller's byte cap stops with `LimitExceeded` (`UnsafeXML` is one too: a
document that tries either is hostile and not inspectable). XML that merely
does not parse raises `BadXML`.

`Grammar` names, by local name (so that both transitional and strict OOXML
namespaces match), the elements that make a paragraph
and those whose character data is text. Runs (`<w:r>`) are not needed: all the
text elements inside one paragraph are joined, so a marking that Word split
over several runs (`<w:t>SU</w:t>...<w:t>LIT</w:t>`) reads whole. A paragraph
inside a paragraph (a text box in a header) is its own paragraph.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO
from xml.parsers import expat

from gateway.message.documents.bounds import Bounds, LimitExceeded

CHUNK = 64 * 1024
MAX_PARAGRAPH = 20000  # characters kept of one paragraph: markings are short


class BadXML(Exception):
    """XML that does not parse: the part is skipped, like any damaged part."""


class UnsafeXML(LimitExceeded):
    """A DOCTYPE or entity declaration: hostile, so the document is not inspectable."""

    def __init__(self) -> None:
        super().__init__("XML with a DOCTYPE or entity declaration")


@dataclass(frozen=True)
class Grammar:
    paragraphs: frozenset[str]
    texts: frozenset[str]
    tabs: frozenset[str] = field(default_factory=frozenset)
    breaks: frozenset[str] = field(default_factory=frozenset)
    # Elements whose text is never shown (deleted revisions, field codes, phonetics).
    hidden: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Paragraph:
    tag: str  # local name of the paragraph element
    text: str
    attrs: dict[str, str]


def _refuse(*_args: object) -> None:
    raise UnsafeXML


def paragraphs(stream: IO[bytes], grammar: Grammar, bounds: Bounds,
               max_bytes: int) -> Iterator[Paragraph]:
    """Every paragraph of the part, in document order (nested ones first)."""
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    parser.buffer_text = True
    stack: list[tuple[str, list[str], dict[str, str]]] = []
    done: list[Paragraph] = []
    in_text = 0
    in_hidden = 0

    def tag_of(name: str) -> str:
        return name.rsplit("}", 1)[-1]

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_text, in_hidden
        tag = tag_of(name)
        attrs = {tag_of(k): v for k, v in attrs.items()}
        if tag in grammar.hidden:
            in_hidden += 1
        if tag in grammar.paragraphs:
            stack.append((tag, [], attrs))
        if tag in grammar.texts:
            in_text += 1
        if stack and not in_hidden:
            if tag in grammar.tabs:
                stack[-1][1].append("\t")
            elif tag in grammar.breaks:
                stack[-1][1].append("\n")

    def end(name: str) -> None:
        nonlocal in_text, in_hidden
        tag = tag_of(name)
        if tag in grammar.texts:
            in_text -= 1
        if tag in grammar.hidden:
            in_hidden -= 1
        if tag in grammar.paragraphs and stack and stack[-1][0] == tag:
            ptag, pieces, attrs = stack.pop()
            done.append(Paragraph(ptag, "".join(pieces)[:MAX_PARAGRAPH], attrs))

    def chars(data: str) -> None:
        if in_text and not in_hidden and stack:
            pieces = stack[-1][1]
            if sum(map(len, pieces)) < MAX_PARAGRAPH:
                pieces.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    read = 0
    while True:
        chunk = stream.read(CHUNK)
        read += len(chunk)
        if read > max_bytes:
            raise LimitExceeded(f"XML part larger than {max_bytes} bytes")
        bounds.charge(len(chunk))
        bounds.check_time()
        try:
            parser.Parse(chunk, not chunk)
        except expat.ExpatError as e:
            raise BadXML(str(e)) from None
        yield from done
        done.clear()
        if not chunk:
            return
