"""Structure defects: the named kinds of hostile or broken MIME a rule can ask about.

Different mail programs resolve an ambiguous message differently (the first of
two Content-Type headers, or the last? which of two `boundary=` values?), so an
ambiguity is how a part is hidden from a filter and shown to the reader. The
view does not guess which reading is "right": it records the kind here and the
policy decides (`mime_defect: [kinds]`).

Kinds (`KINDS`, validated when rules load):
- duplicate_content_type, duplicate_transfer_encoding, duplicate_content_disposition:
  a part carries the header more than once;
- duplicate_subject: a header block carries Subject more than once (RFC 5322 3.6
  allows one): the filter reads the first, some mail programs show the last, so a
  forged `[HEBAHAN JANM]` would hide in the second;
- duplicate_boundary: a Content-Type with more than one `boundary=` parameter;
- missing_boundary: a multipart without a boundary, or whose boundary never occurs;
- unterminated_multipart: the closing `--boundary--` line is missing;
- malformed_header: a header line that is not one (no colon, continuation first...);
- conflicting_filenames: a part's name variants (`filename`, `filename*`, `name`,
  repeated headers) differ once one decoder has decoded them all; a name in a
  charset nobody can decode is still judged (markings, extensions) but is no
  evidence of two readings;
- bidi_in_filename: a file name holds a bidi control (U+202E RIGHT-TO-LEFT
  OVERRIDE turns `fdp.exe` into what reads as `exe.pdf`);
- bad_base64: characters outside the base64 alphabet, data after `=` padding (a
  second stream glued on) or a truncated quantum (the content is decoded as mail
  clients do, every stream of it, and inspected anyway:
  gateway.message.transfer);
- message_partial: a message/partial part (RFC 2046 5.2.2), at the top or nested:
  one fragment of a message that only the recipient's client puts together, so no
  filter ever inspects the whole;
- eight_bit_header, non_utf8_header: raw 8-bit header bytes (SMTPUTF8 is UTF-8;
  anything else is a legacy charset nobody declared);
- header_too_large, too_many_parts, too_deep, expansion_too_large, unparsable:
  the message is beyond an inspection limit (the view is then incomplete).
"""

from __future__ import annotations

import email.message
import re
from collections.abc import Iterable

from gateway.message.text import fold
from gateway.message.transfer import base64_damaged

KINDS = (
    "duplicate_content_type", "duplicate_transfer_encoding", "duplicate_content_disposition",
    "duplicate_subject", "duplicate_boundary", "missing_boundary", "unterminated_multipart",
    "malformed_header",
    "conflicting_filenames", "bidi_in_filename", "bad_base64", "message_partial",
    "eight_bit_header", "non_utf8_header", "header_too_large", "too_many_parts", "too_deep",
    "expansion_too_large", "unparsable",
)
# The kinds that mean the view stopped short of the whole message.
LIMIT_KINDS = frozenset({"header_too_large", "too_many_parts", "too_deep",
                         "expansion_too_large", "unparsable"})

# compat32 parser defects, by class name, and the kind each one is.
_PARSER_DEFECTS = {
    "NoBoundaryInMultipartDefect": "missing_boundary",
    "StartBoundaryNotFoundDefect": "missing_boundary",
    "MultipartInvariantViolationDefect": "missing_boundary",
    "CloseBoundaryNotFoundDefect": "unterminated_multipart",
    "MissingHeaderBodySeparatorDefect": "malformed_header",
    "MisplacedEnvelopeHeaderDefect": "malformed_header",
    "FirstHeaderLineIsContinuationDefect": "malformed_header",
    "InvalidBase64CharactersDefect": "bad_base64",
    "InvalidBase64PaddingDefect": "bad_base64",
    "InvalidBase64LengthDefect": "bad_base64",
}
_DUPLICATE_HEADERS = (("content-type", "duplicate_content_type"),
                      ("content-transfer-encoding", "duplicate_transfer_encoding"),
                      ("content-disposition", "duplicate_content_disposition"),
                      ("subject", "duplicate_subject"))
_BOUNDARY_PARAM = re.compile(r'(?i)(?:^|;)\s*boundary\s*(?:\*[0-9]*\*?)?\s*=')
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def header_bytes(part: email.message.Message) -> int:
    """Size of a part's header block as it was on the wire (near enough: unfolded)."""
    return sum(len(k) + len(v) + 4 for k, v in part.raw_items())


def part_kinds(part: email.message.Message) -> set[str]:
    """The kinds one part's own headers and parser defects show."""
    found: set[str] = set()
    names = [k.lower() for k, _v in part.raw_items()]
    for header, kind in _DUPLICATE_HEADERS:
        if names.count(header) > 1:
            found.add(kind)
    for key, value in part.raw_items():
        if key.lower() == "content-type" and len(_BOUNDARY_PARAM.findall(value)) > 1:
            found.add("duplicate_boundary")
        if not value.isascii():
            found.add("eight_bit_header")
            try:
                value.encode("utf-8", errors="surrogateescape").decode("utf-8")
            except UnicodeError:
                found.add("non_utf8_header")
    for defect in part.defects:
        parsed = _PARSER_DEFECTS.get(type(defect).__name__)
        if parsed is not None:
            found.add(parsed)
    return found


def fold_name(name: str) -> str:
    """A file name as names are compared: folded (see text.fold) and case-folded."""
    return fold(name).casefold().strip()


def name_kinds(names: Iterable[str], undecodable: Iterable[str] = ()) -> set[str]:
    """conflicting_filenames / bidi_in_filename for one part's name variants.

    `undecodable`: the names among them that could not be decoded without a guess
    (an unknown charset, broken bytes): checked for bidi controls, but no conflict."""
    found: set[str] = set()
    names = list(names)
    if any(BIDI.search(n) for n in names):
        found.add("bidi_in_filename")
    skip = set(undecodable)
    if len({fold_name(n) for n in names if n not in skip}) > 1:
        found.add("conflicting_filenames")
    return found


def bad_base64(payload: str) -> bool:
    """Base64 text with characters outside the alphabet, data after padding (a second
    stream glued on) or a dangling character (transfer.base64_damaged)."""
    # Anything not ASCII is junk in base64; "replace" keeps it junk without raising.
    return base64_damaged(payload.encode("utf-8", errors="replace"))


def ordered(kinds: Iterable[str]) -> tuple[str, ...]:
    """Kinds in the fixed order of KINDS (stable evidence, stable tests)."""
    have = set(kinds)
    return tuple(k for k in KINDS if k in have)
