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


def _candidates(text: str) -> list[str]:
    return [m.group(0).rstrip(_TRAILING) for m in _URL.finditer(text)]


def extract(texts: tuple[str, ...], hrefs: tuple[str, ...]) -> tuple[Link, ...]:
    """Every distinct link in the texts and href targets, in order of appearance."""
    seen: set[str] = set()
    out: list[Link] = []
    urls = [h for h in hrefs if _URL.match(h.strip())]
    for text in texts:
        if "://" in text or "www." in text.lower():
            urls.extend(_candidates(text))
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
