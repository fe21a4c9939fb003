"""Links in message bodies: http, https and ftp URLs and the hosts they point to.

URLs are taken from the text (plain and rendered HTML) and from HTML `href`
targets, which may differ from the text shown. Bare `www.` names count as http
links because every mail client turns them into one. The host is what a browser
would connect to: userinfo (`https://anm.gov.my@evil.example/`) is skipped,
percent-escapes are undone, case and a trailing dot are folded, IDNs become
their ASCII form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from gateway.addresses import normalise_domain

_URL = re.compile(r"""(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>"'`{}|\\^\[\]]+""")
_SCHEME = re.compile(r"(?i)^(?:https?|ftp)://")
_TRAILING = ".,;:!?)'\"»”’"
MAX_LINKS = 10000  # links kept with their URL; beyond it, one per further host


@dataclass(frozen=True)
class Link:
    url: str
    host: str


def host_of(url: str) -> str:
    """The host a URL points to ('' when there is none or it cannot be parsed)."""
    if not _SCHEME.match(url):
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # bad IPv6 literal and the like
        return ""
    host = unquote(host).strip()
    return normalise_domain(host) if host else ""


# "www." in every case: literal finds run at memchr speed, a pattern tries each position.
_WWW = tuple(a + b + c + "." for a in "wW" for b in "wW" for c in "wW")


def _may_have_www(text: str) -> bool:
    """Whether "www." in some case may occur: each of the eight ends in "w." or "W.",
    so two searches stand for eight on a text that has neither (10 MB of prose:
    about 50 ms less)."""
    return "w." in text or "W." in text


def _all(text: str, needle: str) -> list[int]:
    found = []
    at = text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + len(needle))
    return found


def _candidates_reference(text: str) -> list[str]:
    """`_candidates` by the pattern alone: what the fast path must equal."""
    return [m.group(0).rstrip(_TRAILING) for m in _URL.finditer(text)]


def _candidates(text: str) -> list[str]:
    """The URLs `_URL.finditer` finds in `text`, in order, trailing punctuation off.

    finditer tries the pattern at every position of the text: on 10 MB of text
    that was 1.5 s. Every match holds "://" a scheme's length after its start, or
    starts at "www." (any case), so the pattern is tried only there, in order,
    past the end of the previous match, as finditer goes: the same matches."""
    schemes = _all(text, "://")
    starts = [at - back for at in schemes for back in (3, 4, 5) if at >= back]
    if _may_have_www(text):
        for www in _WWW:
            if www in text:
                starts += _all(text, www)
    starts.sort()
    out: list[str] = []
    end = 0
    for start in starts:
        if start < end:
            continue
        found = _URL.match(text, start)
        if found is not None:
            out.append(found.group(0).rstrip(_TRAILING))
            end = found.end()
    return out


def candidates(text: str) -> list[str]:
    """The URLs in `text`, in order, as `extract` takes them from it (duplicates
    included). No URL spans a line feed: the candidates of a text cut after line
    feeds are those of its pieces, in turn (gateway.message.textscan)."""
    # No search of its own first: `_candidates` finds no start as cheaply.
    return _candidates(text)


def extract(texts: tuple[str, ...], hrefs: tuple[str, ...],
            found: tuple[tuple[str, ...] | None, ...] = ()) -> tuple[Link, ...]:
    """Every distinct link in the texts and href targets, in order of appearance.
    `found`: for each text, its distinct `candidates` in order if already known
    (searched while the message arrived), else None."""
    seen: set[str] = set()
    out: list[Link] = []
    urls = [h for h in hrefs if _URL.match(h.strip())]
    for i, text in enumerate(texts):
        known = found[i] if i < len(found) else None
        urls.extend(candidates(text) if known is None else known)
    hosts: set[str] = set()
    for url in urls:
        if url in seen:
            continue
        seen.add(url)
        host = host_of(url)
        # Past MAX_LINKS only a link to a host not seen yet is kept: the list stays
        # bounded, and every host is still there for the rules (none silently dropped).
        if host and (len(out) < MAX_LINKS or host not in hosts):
            out.append(Link(url, host))
            hosts.add(host)
    return tuple(out)
