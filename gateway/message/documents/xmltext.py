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

Two things only OpenDocument needs (both off unless a grammar names elements):
`spaces` elements stand for a run of spaces whose count is their `c` attribute
(`<text:s text:c="4"/>`: ODF writes every space after the first that way, and a
wide gap splits a header into segments); `context` elements are the containers a
paragraph sits in (a table cell, a slide, a page header), handed back with it
outermost first, each with its ordinal among the part's elements of that name
(the third `draw:page` is slide 3). Containers nested deeper than
`MAX_CONTEXT_DEPTH` are hostile: `LimitExceeded`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO
from xml.parsers import expat

from gateway.message.documents.bounds import Bounds, LimitExceeded

CHUNK = 64 * 1024
# Real documents nest containers (cells in frames in slides) a few levels deep; each
# paragraph carries its chain, so the depth also bounds the work per paragraph.
MAX_CONTEXT_DEPTH = 1000
# Spaces one `spaces` element stands for, at most: any gap wider than a few spaces
# reads the same (a segment break), so a hostile `c="999999999"` cannot inflate text.
MAX_SPACE_RUN = 1000


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
    # (element, attribute) pairs whose value is shown text, each its own paragraph
    # tagged with the element: VML WordArt keeps a watermark's text in
    # `<v:textpath string="RAHSIA"/>`.
    attribute_texts: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    # Elements that stand for `c` spaces (default 1), and containers to report.
    spaces: frozenset[str] = field(default_factory=frozenset)
    context: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Paragraph:
    tag: str  # local name of the paragraph element
    text: str
    attrs: dict[str, str]
    # (local name, 1-based ordinal in the part) of each open `context` element,
    # outermost first.
    context: tuple[tuple[str, int], ...] = ()


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
    # Open context elements and the snapshot paragraphs share until the chain changes.
    chain: list[tuple[str, int]] = []
    chain_now: tuple[tuple[str, int], ...] = ()
    ordinals: dict[str, int] = {}

    def tag_of(name: str) -> str:
        return name.rsplit("}", 1)[-1]

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_text, in_hidden, chain_now
        tag = tag_of(name)
        attrs = {tag_of(k): v for k, v in attrs.items()}
        if tag in grammar.context:
            if len(chain) >= MAX_CONTEXT_DEPTH:
                raise LimitExceeded(f"XML containers nested deeper than {MAX_CONTEXT_DEPTH}")
            ordinals[tag] = ordinals.get(tag, 0) + 1
            chain.append((tag, ordinals[tag]))
            chain_now = tuple(chain)
        if tag in grammar.hidden:
            in_hidden += 1
        for element, attribute in grammar.attribute_texts:
            if tag == element and attrs.get(attribute) and not in_hidden:
                done.append(Paragraph(tag, attrs[attribute], attrs))
        if tag in grammar.paragraphs:
            stack.append((tag, [], attrs))
        if tag in grammar.texts:
            in_text += 1
        if stack and not in_hidden:
            if tag in grammar.tabs:
                stack[-1][1].append("\t")
            elif tag in grammar.breaks:
                stack[-1][1].append("\n")
            elif tag in grammar.spaces:
                count = attrs.get("c", "1")
                n = int(count) if count.isdigit() and len(count) < 10 else MAX_SPACE_RUN
                n = min(n, MAX_SPACE_RUN)
                bounds.charge(n)  # markup that expands: counted like decoded bytes
                stack[-1][1].append(" " * n)

    def end(name: str) -> None:
        nonlocal in_text, in_hidden, chain_now
        tag = tag_of(name)
        if tag in grammar.texts:
            in_text -= 1
        if tag in grammar.hidden:
            in_hidden -= 1
        if tag in grammar.paragraphs and stack and stack[-1][0] == tag:
            ptag, pieces, attrs = stack.pop()
            done.append(Paragraph(ptag, "".join(pieces), attrs, chain_now))
        if tag in grammar.context and chain and chain[-1][0] == tag:
            chain.pop()
            chain_now = tuple(chain)

    def chars(data: str) -> None:
        if in_text and not in_hidden and stack:
            # Not capped: a paragraph with line breaks holds many lines, and the last
            # may be the marking. The part's byte cap and the budget bound it.
            stack[-1][1].append(data)

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
