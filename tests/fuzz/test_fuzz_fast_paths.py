"""The fast paths give the reference paths' answers, on the whole corpus and on fuzz input.

Fast: the byte-level MIME parse (`mime.parse_bounded`), each part decoded once
(`mime.Decoded`) with bad_base64 from that decode, the marking scan that judges
only candidate lines (`markings.in_text`). Reference: the stdlib feedparser
(`mime.parse_reference`), every part decoded where it is read and bad_base64 by
its own pass (`defects.bad_base64`), every line folded and judged
(`markings.in_text_reference`), links by their pattern tried everywhere
(`links._candidates_reference`). Demanded equal: the compat32 trees (headers,
defects, payloads, preamble, epilogue, serialisation), the views (subject, text
parts, attachments' names, sizes, types, encryption, markings with their `at`,
structure defects, completeness) and the verdicts under the shipped rules.

Corpus: every case of tests/corpus/cases/** (an .eml as it is, any other file as
the one attachment of a message, as tests/unit/test_corpus.py wraps it) and every
.eml under tests/corpus. Fuzz: the mutated and token-soup messages of
test_fuzz_view, MIME trees built to reach the byte-level parse's corners
(boundaries that are prefixes of each other, the same boundary nested, digests,
enclosed messages, missing or doubled delimiters, blanks after them, a CR alone,
preambles and epilogues), and texts built from the marking evasions (full-width,
look-alike and small-capital letters, zero-width characters, spaced letters,
labels in any case, every line break str.splitlines knows).
"""

from __future__ import annotations

import contextlib
import email.generator
import email.message
import email.policy
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.envelope import Envelope
from gateway.message import defects, links, markings, mime, transfer, view
from gateway.message.documents import LimitExceeded
from gateway.message.limits import InspectionLimits
from gateway.message.text import fold
from gateway.message.view import MessageView, NotInspectable
from gateway.pipeline import inspect
from gateway.policy_state import PolicyState, load_policy_for
from tests.support.corpus import message_of

from .settings import FUZZ
from .test_fuzz_view import TIGHT, mutated, structured

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "tests" / "corpus" / "cases"
CASES = sorted(p.with_name(p.name.removesuffix(".expect.yaml"))
               for p in CASES_DIR.rglob("*.expect.yaml"))
EMLS = sorted(set((REPO / "tests" / "corpus").rglob("*.eml")) - set(CASES))
# The cheap targets (a parse, a text scan) run more examples than the view targets.
MORE = settings(FUZZ, max_examples=FUZZ.max_examples * 5)
ENVELOPES = (
    Envelope(direction="inbound", listener="inbound", client_ip="127.0.0.1",
             helo="client.example", mail_from="luar@example.org",
             rcpt_to=("pegawai@anm.gov.my",)),
    Envelope(direction="outbound", listener="outbound", client_ip="127.0.0.1",
             helo="client.example", mail_from="pegawai@anm.gov.my",
             rcpt_to=("penerima@example.org",)),
)


# -- the reference paths ----------------------------------------------------------------

class _EveryTime(mime.Decoded):
    """No cache: every reader decodes the part itself, as before `mime.Decoded`."""

    def get(self, part: email.message.Message) -> tuple[bytes | None, bool]:
        return mime.decoded_payload(part)

    def take(self, part: email.message.Message) -> tuple[bytes | None, bool]:
        return mime.decoded_payload(part)

    def clean(self, part: email.message.Message) -> bool:
        return mime.decoded_payload(part)[1]


def _payload_kinds_by_own_pass(self: MessageView) -> frozenset[str]:
    """bad_base64 as it was found before: a pass of its own over each payload."""
    for leaf in (*self.structure.bodies, *self.structure.attachments):
        part = leaf.part
        if part.is_multipart():
            continue
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        payload = part.get_payload()
        if cte == "base64" and isinstance(payload, str) and defects.bad_base64(payload):
            return frozenset({"bad_base64"})
    return frozenset()


_REFERENCE_KINDS: cached_property[frozenset[str]] = cached_property(_payload_kinds_by_own_pass)
_REFERENCE_KINDS.__set_name__(MessageView, "_payload_kinds")


def _parse_reference(raw: bytes, max_parts: int = mime.MAX_PARTS, *,
                     counted: tuple[int, frozenset[bytes]] | None = None
                     ) -> tuple[email.message.Message | None, str | None, str | None]:
    return mime.parse_reference(raw, max_parts)  # counts for itself


@contextlib.contextmanager
def reference() -> Iterator[None]:
    """Every fast path swapped for its reference, for the views made inside."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mime, "parse_bounded", _parse_reference)
        mp.setattr(mime, "Decoded", _EveryTime)
        mp.setattr(markings, "in_text", markings.in_text_reference)
        mp.setattr(links, "_candidates", links._candidates_reference)
        mp.setattr(view.MessageView, "_payload_kinds", _REFERENCE_KINDS)
        yield


# -- what is compared ------------------------------------------------------------------

def tree(root: email.message.Message | None) -> list[Any]:
    """Everything a compat32 tree holds, and its serialisations."""
    out: list[Any] = []
    if root is None:
        return out
    stack: list[tuple[str, email.message.Message]] = [("0", root)]
    while stack:
        path, m = stack.pop()
        out.append((path, list(m.raw_items()), m.get_unixfrom(), m.get_default_type(),
                    [(type(d).__name__, str(d)) for d in m.defects], m.preamble, m.epilogue,
                    m.is_multipart()))
        if m.is_multipart():
            payload = m.get_payload()
            assert isinstance(payload, list)
            stack.extend((f"{path}.{i}", c) for i, c in reversed(list(enumerate(payload))))
        else:
            out.append((path, getattr(m, "_payload", None)))
    for serialise in (root.as_bytes, root.as_string):
        try:
            out.append(serialise())
        except Exception as exc:  # the generator chokes on some trees: alike, or not
            out.append(type(exc).__name__)
    return out


def _get(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except NotInspectable as exc:
        return ("NotInspectable", exc.reason)
    except LimitExceeded as exc:  # what Attachment.unreadable raises beyond a bound
        return ("LimitExceeded", exc.reason)


def facts(v: MessageView) -> list[Any]:
    """What the rules can read of a view, in one fixed order."""
    got: list[Any] = [v.subject, _get(lambda: v.structure_defects), v.defects,
                      _get(lambda: v.structure.parts)]
    got.append(_get(lambda: [(p.where, p.text, p.index, p.content_type, p.nested, p.hrefs)
                             for p in v.text_parts]))
    got.append(_get(lambda: [(f.index, f.nested, f.filename, f.subject,
                              f.header_values("X-Classification")) for f in v.forwarded]))
    got.append(_get(lambda: [(m.marking, m.where) for m in v.markings.found]))
    got.append(_get(lambda: v.classification))
    with contextlib.suppress(NotInspectable):
        for att in v.attachments:
            got.append(_get(att.as_dict))
            got.append(_get(att.data))
            got.append(_get(att.text))
            got.append(_get(lambda: att.unreadable))  # noqa: B023 (called at once)
    got.append(_get(lambda: v.encrypted_message))
    got.append(_get(lambda: [(link.url, link.host) for link in v.links]))
    got.append(_get(lambda: (v.complete, v.incomplete_reason, v.structure_defects)))
    return got


class _NotRandom:
    """The generator makes up a boundary where a multipart's is empty, at random:
    the same one every time here, so that two serialisations compare."""

    @staticmethod
    def randrange(_stop: int) -> int:
        return 0


@pytest.fixture(autouse=True)
def _same_made_up_boundaries() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(email.generator, "random", _NotRandom)
        yield


def same_parse(raw: bytes, max_parts: int = 5000) -> None:
    fast = mime.parse_bounded(raw, max_parts)
    ref = mime.parse_reference(raw, max_parts)
    assert fast[1:] == ref[1:]
    assert tree(fast[0]) == tree(ref[0])


def same_view(raw: bytes, limits: InspectionLimits | None = None) -> None:
    fast = facts(MessageView(raw, limits=limits))
    with reference():
        ref = facts(MessageView(raw, limits=limits))
    assert fast == ref


# -- the corpus ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def policy() -> PolicyState:
    config = load_config(REPO / "config" / "gateway.yaml")
    # Without clamd: the antivirus rules are tests/unit/test_antivirus.py's.
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": None}))


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 100 and len(EMLS) >= 20


@pytest.mark.parametrize("path", CASES + EMLS,
                         ids=[str(p.relative_to(REPO / "tests" / "corpus"))
                              for p in CASES + EMLS])
def test_corpus_fast_paths_match_the_references(policy: PolicyState, path: Path) -> None:
    raw = message_of(path)
    same_parse(raw)
    limits = policy.config.limits.inspection()
    same_view(raw, limits)
    for envelope in ENVELOPES:
        fast = inspect(policy, raw, envelope, ref="sama")
        with reference():
            ref = inspect(policy, raw, envelope, ref="sama")
        assert (fast.verdict, fast.reply, fast.relay_bytes) == (
            ref.verdict, ref.reply, ref.relay_bytes)


# -- MIME built to reach the byte-level parse's corners -----------------------------------

BOUNDARIES = ("b", "b-", "b--x", "=_b", "b c", "b\t", "")
LINE_ENDS = ("\r\n", "\n")


@st.composite
def mime_message(draw: st.DrawFn, depth: int = 0) -> str:
    """A message or part as text, with the oddities the byte-level parse must match."""
    eol = draw(st.sampled_from(LINE_ENDS))
    headers: list[str] = []
    if draw(st.booleans()):
        headers.append("From: a@example.org")
    kind = draw(st.sampled_from(["leaf", "leaf", "multipart", "message", "digest", "none"])
                if depth < 3 else st.just("leaf"))
    body: str
    if kind in ("multipart", "digest"):
        boundary = draw(st.sampled_from(BOUNDARIES))
        subtype = "digest" if kind == "digest" else draw(
            st.sampled_from(["mixed", "alternative", "related"]))
        quoted = draw(st.booleans())
        param = f'"{boundary}"' if quoted or not boundary.strip() else boundary
        headers.append(f"Content-Type: multipart/{subtype}; boundary={param}")
        if draw(st.integers(0, 9)) == 0:
            headers.append("Content-Transfer-Encoding: base64")
        parts = draw(st.lists(mime_message(depth + 1), min_size=0, max_size=3))
        blanks = draw(st.sampled_from(["", "", " ", "\t ", "--"]))
        out = draw(st.sampled_from(["", "", "preamble" + eol, eol, "x" + eol + eol]))
        for part in parts:
            out += f"--{boundary}{draw(st.sampled_from(['', '', ' ', '  ']))}{eol}{part}{eol}"
            if draw(st.integers(0, 12)) == 0:
                out += f"--{boundary}{eol}"  # a delimiter twice
        ending = draw(st.sampled_from(["close", "close", "close", "none", "bare"]))
        if ending == "close":
            out += f"--{boundary}--{blanks if blanks != '--' else ''}"
            out += draw(st.sampled_from([eol, "", eol + "epilogue" + eol, eol + eol]))
        elif ending == "bare":
            out += f"--{boundary}"
        body = out
    elif kind == "message":
        headers.append("Content-Type: message/rfc822")
        body = draw(mime_message(depth + 1))
    else:
        if kind == "leaf":
            ctype = draw(st.sampled_from(["text/plain", "text/html", "application/pdf",
                                          "application/octet-stream", "text/plain"]))
            headers.append(f"Content-Type: {ctype}")
            if draw(st.booleans()):
                headers.append('Content-Disposition: attachment; filename="SULIT.txt"')
        cte = draw(st.sampled_from(["", "", "base64", "quoted-printable", "Base64 "]))
        if cte:
            headers.append(f"Content-Transfer-Encoding: {cte}")
        lines = draw(st.lists(st.sampled_from(
            ["SULIT", "Klasifikasi: Rahsia", "U1VMSVQK", "AA==AA==", "x=3D", "=", "",
             "From here", "--b", "--b--", "begin 644 a.txt", "#0V%T", "`", "end",
             "teks biasa", "S U L I T", "\x00", "caf\xe9"]), max_size=6))
        body = eol.join(lines)
    if draw(st.integers(0, 15)) == 0:
        headers.append("not a header line")
    bare = not headers and draw(st.booleans())
    block = eol if bare else eol.join(headers) + eol + eol
    text = block + body
    if draw(st.integers(0, 15)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + "\r" + text[at:]  # a CR alone
    return text


def mime_bytes() -> st.SearchStrategy[bytes]:
    return mime_message().map(lambda text: text.encode("utf-8", errors="surrogateescape"))


@MORE
@given(st.one_of(mime_bytes(), mutated(), structured()))
def test_fuzz_byte_level_parse_is_the_feedparser(raw: bytes) -> None:
    same_parse(raw)
    same_parse(raw, 3)


@FUZZ
@given(st.one_of(mime_bytes(), mutated(), structured()))
def test_fuzz_views_match_the_references(raw: bytes) -> None:
    same_view(raw)
    same_view(raw, TIGHT)


@MORE
@given(st.one_of(mime_bytes(), structured(), st.binary(max_size=2000)),
       st.integers(0, 12))
def test_fuzz_delimiter_bound_is_the_count(raw: bytes, limit: int) -> None:
    assert mime.too_many_delimiters(raw, limit) == (mime.count_delimiters(raw, limit) > limit)


# -- decoding ---------------------------------------------------------------------------

BASE64ISH = st.lists(st.sampled_from([b"QUFB", b"QQ", b"Q", b"=", b"==", b"\r\n", b" ", b"!",
                                      b"\xff", b"AA==", b"/+9z", b"-"]), max_size=30).map(
    b"".join)


@MORE
@given(st.one_of(BASE64ISH, st.binary(max_size=300)))
def test_fuzz_one_base64_decode_says_whether_it_was_damaged(data: bytes) -> None:
    decoded, clean = transfer.decode_base64(data)
    assert clean is not transfer.base64_damaged(data)
    assert clean is not defects.bad_base64(data.decode("ascii", errors="surrogateescape"))
    assert transfer.decode(memoryview(data), "base64") == (decoded, clean)
    for encoding in ("7bit", "quoted-printable", "x-uuencode", "x-unknown"):
        assert transfer.decode(memoryview(data), encoding) == transfer.decode(data, encoding)


# -- the marking scan -------------------------------------------------------------------

PIECES = (*"SULITERHADBsulitterhadbesarlIl ::-=*_>|.()[]\t",
          "\r", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "\x85",
          "\u2028", "\u2029", "\u00a0", "\u3000", "\u200b", "\u00ad", "\u0301", "\ufeff",
          "Ｓ", "Ｕ", "Ｌ", "Ｉ", "Ｔ", "ѕ", "Ѕ", "І", "і", "Т", "А", "Е", "Н", "Р", "ı",
          "İ", "ſ", "ʀ", "ᴀ", "ꜱ", "ɪ", "ᴛ", "“", "”", "–", "—", "【", "】", "ﬅ", "ℌ", "Ⓢ",
          "𝐒", "²", "Klasifikasi", "Pengelasan Keselamatan", "Classification", ": ",
          "SULIT", "RAHSIA BESAR", "TERHAD", "sulit", "Rahsia", "maklumat", "e\u0301")
EVASIONS = st.lists(st.sampled_from(PIECES), max_size=120).map("".join)


@MORE
@given(st.one_of(EVASIONS, st.text(max_size=300)))
def test_fuzz_marking_scan_is_the_full_scan(text: str) -> None:
    expected = list(markings.in_text_reference(text))
    assert list(markings.in_text(text)) == expected
    # Cut into slices at every line feed, or each slice folded whole, or no text short
    # enough to judge line by line: folding a line, a run of lines or a slice at a
    # time changes nothing, nor does searching a short text.
    for name, value in (("_SLICE", 1), ("_SPARSE", 0), ("_SHORT", 0)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(markings, name, value)
            assert list(markings.in_text(text)) == expected
    # The guard of the document-header rules never refuses what a rule would take.
    if expected or markings.in_line(fold(text)) is not None:
        assert markings._may_hold(fold(text))
    if markings.in_label(text):
        assert markings._may_hold(fold(text))


# -- links --------------------------------------------------------------------------------

URL_PIECES = ("http://", "https://", "ftp://", "HTTP://", "httpſ://", "hTTpS://", "www.",
              "WWW.", "wWw.", "wwww.", "://", ":/", "ftp", "x", "a.b", " ", "\n", "<", '"',
              "é", "İ", "K", "/jalan", ")", ".", "w", "W", "_", "-")


@MORE
@given(st.lists(st.sampled_from(URL_PIECES), max_size=40).map("".join))
def test_fuzz_link_search_is_the_pattern_everywhere(text: str) -> None:
    assert links._candidates(text) == links._candidates_reference(text)
    # What `extract` tries the search on: every text the pattern finds a link in.
    if links._candidates_reference(text):
        assert "://" in text or links._may_have_www(text)
