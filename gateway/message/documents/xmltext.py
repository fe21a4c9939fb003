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
and those whose character data is text; a paragraph or text element may also be
named `namespace-uri}local` where two vocabularies share a local name (ODF's
`svg:title` alt text and `text:title` field), and matches that element only.
Runs (`<w:r>`) are not needed: all the
text elements inside one paragraph are joined, so a marking that Word split
over several runs (`<w:t>SU</w:t>...<w:t>LIT</w:t>`) reads whole. A paragraph
inside a paragraph (a text box in a header) is its own paragraph. Text formatted
to show in capitals (Word's All caps, an ODF style's `text-transform`) is read in
capitals (`Grammar.capitals`).

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

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any
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
    # Character formatting that shows text in capitals (`_Capitals`): the text is
    # read as it is shown, so `rahsia` set in All caps reads `RAHSIA`.
    capitals: _Capitals | None = None


@dataclass(frozen=True)
class _Capitals:
    """Where a document says "show this text in capitals".

    Word: a run (`runs`, `w:r`) whose properties (`w:r/w:rPr/*`) hold a `flags`
    element (`w:caps`, `w:smallCaps`) that is not switched off (`w:val` false, 0 or
    off). With `styled`, the styles count too: it is given the paragraph's style
    (`paragraph_style`, `w:p/w:pPr/w:pStyle`) and the run's (`run_style`,
    `w:r/w:rPr/w:rStyle`), either None, and returns the flags the styles turn on; a
    flag set on the run itself (direct formatting) overrides the styles, on or off
    (the caller owns the style rules: `ooxml`). OpenDocument:
    an element whose `style-name` names a style (`styles`, `style:style`) whose text
    properties (`properties`, `style:text-properties`) set `fo:text-transform`
    uppercase or `fo:font-variant` small-caps. A part defines its automatic styles
    before it uses them, so one pass learns them in time; styles of another part
    (a named style from styles.xml used in content.xml) are not followed."""

    runs: frozenset[str] = field(default_factory=frozenset)
    flags: frozenset[str] = field(default_factory=frozenset)
    styles: frozenset[str] = field(default_factory=frozenset)
    properties: frozenset[str] = field(default_factory=frozenset)
    paragraph_style: frozenset[str] = field(default_factory=frozenset)
    run_style: frozenset[str] = field(default_factory=frozenset)
    styled: Callable[[str | None, str | None], frozenset[str]] | None = None


WORD_CAPITALS = _Capitals(runs=frozenset({"r"}), flags=frozenset({"caps", "smallCaps"}),
                          paragraph_style=frozenset({"pStyle"}),
                          run_style=frozenset({"rStyle"}))
ODF_CAPITALS = _Capitals(styles=frozenset({"style"}),
                         properties=frozenset({"text-properties"}))
_OFF = frozenset({"0", "false", "off"})


@dataclass(frozen=True)
class Paragraph:
    tag: str  # the grammar's name of the paragraph element (local, or `uri}local`)
    text: str
    attrs: dict[str, str]
    # (local name, 1-based ordinal in the part) of each open `context` element,
    # outermost first.
    context: tuple[tuple[str, int], ...] = ()


def _member(names: frozenset[str], name: str, tag: str) -> str | None:
    """The entry of `names` the element matches: its namespace-qualified name
    (`uri}local`, for a grammar that must tell `svg:title` from `text:title`) or its
    local name; None when neither is there."""
    if name in names:
        return name
    return tag if tag in names else None


def _refuse(*_args: object) -> None:
    raise UnsafeXML


def _parser() -> expat.XMLParserType:
    """An expat parser that refuses a DOCTYPE and entities (`UnsafeXML`)."""
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # type: ignore[assignment]
    return parser


def _chunks(stream: IO[bytes], bounds: Bounds, max_bytes: int) -> Iterator[bytes]:
    """The part a CHUNK at a time, the last one b"" (the parser's end), each charged to
    the budget and the deadline. Raises LimitExceeded past `max_bytes`."""
    read = 0
    while True:
        chunk = stream.read(CHUNK)
        read += len(chunk)
        if read > max_bytes:
            raise LimitExceeded(f"XML part larger than {max_bytes} bytes")
        bounds.charge(len(chunk))
        bounds.check_time()
        yield chunk
        if not chunk:
            return


def elements(stream: IO[bytes], names: frozenset[str] | None, bounds: Bounds,
             max_bytes: int) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(local name, depth, attributes by local name) of every start tag whose local name
    is in `names` (None: every one), in document order; the root is depth 1. For parts
    read as settings rather than text (Word's styles). Same safety as `paragraphs`: a
    DOCTYPE or entity declaration raises `UnsafeXML`, more than `max_bytes`
    `LimitExceeded`, and XML that does not parse `BadXML` after the elements before the
    damage."""
    parser = _parser()
    found: list[tuple[str, int, dict[str, str]]] = []
    depth = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        tag = name.rsplit("}", 1)[-1]
        if names is None or tag in names:
            found.append((tag, depth, {k.rsplit("}", 1)[-1]: v for k, v in attrs.items()}))

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    for chunk in _chunks(stream, bounds, max_bytes):
        try:
            parser.Parse(chunk, not chunk)
        except expat.ExpatError as e:
            yield from found
            raise BadXML(str(e)) from None
        yield from found
        found.clear()


def paragraphs(stream: IO[bytes], grammar: Grammar, bounds: Bounds,
               max_bytes: int) -> Iterator[Paragraph]:
    """Every paragraph of the part, in document order (nested ones first)."""
    parser = _parser()
    parser.buffer_text = True
    stack: list[tuple[str, list[str], dict[str, str]]] = []
    done: list[Paragraph] = []
    in_text = 0
    in_hidden = 0
    # Open context elements and the snapshot paragraphs share until the chain changes.
    chain: list[tuple[str, int]] = []
    chain_now: tuple[tuple[str, int], ...] = ()
    ordinals: dict[str, int] = {}
    caps = grammar.capitals
    # With `caps`: the element depth; the open runs ([depth, {flag: on}, run style]);
    # the open paragraphs' styles ([depth, style]); the depths of open elements whose
    # style shows capitals; the styles known to; the style being defined. Kept apart
    # so that an element costs a counter, not a stack entry.
    depth = 0
    runs: list[list[Any]] = []
    para_styles: list[list[Any]] = []
    scopes: list[int] = []
    caps_styles: set[str] = set()
    defining: list[str] = []

    def tag_of(name: str) -> str:
        return name.rsplit("}", 1)[-1]

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_text, in_hidden, chain_now, depth
        tag = tag_of(name)
        para = _member(grammar.paragraphs, name, tag)
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
        if para is not None:
            stack.append((para, [], attrs))
        if _member(grammar.texts, name, tag) is not None:
            in_text += 1
        if caps is not None:
            depth += 1
            if caps_styles and attrs.get("style-name") in caps_styles:
                scopes.append(depth)
            if para is not None and caps.styled is not None:
                para_styles.append([depth, None])
            if tag in caps.runs:
                runs.append([depth, {}, None])
            elif tag in caps.flags and runs and depth == runs[-1][0] + 2:
                # `w:r/w:rPr/w:caps`: the run's own; deeper ones are an old revision's
                # (`w:rPrChange`). The first of each wins (the revision comes last).
                runs[-1][1].setdefault(
                    tag, attrs.get("val", "true").strip().lower() not in _OFF)
            elif tag in caps.run_style and runs and depth == runs[-1][0] + 2:
                if runs[-1][2] is None:
                    runs[-1][2] = attrs.get("val", "")
            elif tag in caps.paragraph_style and para_styles and \
                    depth == para_styles[-1][0] + 2:
                if para_styles[-1][1] is None:
                    para_styles[-1][1] = attrs.get("val", "")
            elif tag in caps.styles:
                defining.append(attrs.get("name", ""))
            elif tag in caps.properties and defining and (
                    attrs.get("text-transform") == "uppercase"
                    or attrs.get("font-variant") == "small-caps"):
                caps_styles.add(defining[-1])
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
        nonlocal in_text, in_hidden, chain_now, depth
        tag = tag_of(name)
        if caps is not None:
            if runs and runs[-1][0] == depth:
                runs.pop()
            if para_styles and para_styles[-1][0] == depth:
                para_styles.pop()
            if scopes and scopes[-1] == depth:
                scopes.pop()
            if tag in caps.styles and defining:
                defining.pop()
            depth -= 1
        para = _member(grammar.paragraphs, name, tag)
        if _member(grammar.texts, name, tag) is not None:
            in_text -= 1
        if tag in grammar.hidden:
            in_hidden -= 1
        if para is not None and stack and stack[-1][0] == para:
            ptag, pieces, attrs = stack.pop()
            done.append(Paragraph(ptag, "".join(pieces), attrs, chain_now))
        if tag in grammar.context and chain and chain[-1][0] == tag:
            chain.pop()
            chain_now = tuple(chain)

    def run_in_capitals() -> bool:
        if not runs or caps is None:
            return False
        _depth, direct, run_style = runs[-1]
        if caps.styled is None:
            return any(direct.values())
        styled = caps.styled(para_styles[-1][1] if para_styles else None, run_style)
        return any(direct.get(flag, flag in styled) for flag in caps.flags)

    def chars(data: str) -> None:
        if in_text and not in_hidden and stack:
            # Not capped: a paragraph with line breaks holds many lines, and the last
            # may be the marking. The part's byte cap and the budget bound it.
            shown = bool(scopes) or run_in_capitals()
            stack[-1][1].append(data.upper() if shown else data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    for chunk in _chunks(stream, bounds, max_bytes):
        try:
            parser.Parse(chunk, not chunk)
        except expat.ExpatError as e:
            # What was read before the damage still counts: the paragraphs finished in
            # this chunk, and those still open (a part cut short), innermost first.
            yield from done
            done.clear()
            for ptag, pieces, attrs in reversed(stack):
                if pieces:
                    yield Paragraph(ptag, "".join(pieces), attrs, chain_now)
            raise BadXML(str(e)) from None
        yield from done
        done.clear()
