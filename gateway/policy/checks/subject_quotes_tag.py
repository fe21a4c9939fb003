"""`subject_quotes_tag: "[TAG]"`: the subject quotes the tag after a reply or forward
prefix, in a reply or forward (`gateway.message.subject_prefix`).

`Re: [HEBAHAN JANM] Makluman` is an officer answering an announcement, not a claim to
be one. It holds only when:
- the tag follows a chain of reply/forward prefixes and nothing else, and occurs once
  (look-alike letters and invisible characters count, as for `subject_matches`);
- a reply (`Re:`, `Balas:`, `BLS:` outermost) names the message it answers: an
  In-Reply-To or References field with a value (RFC 5322 3.6.4). A reply prefix
  without one is a bare claim;
- a forward (`Fwd:`, `FW:`, `Majukan:` outermost) needs no such field: Outlook and
  Thunderbird set none when forwarding, so the prefix alone has to do. A forward
  quotes: inbound its tag is defanged, never shown as verified.
Evidence: the kind, the prefix chain as read, and whether the thread fields exist.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import PlainValidator

from gateway.message.subject_prefix import find_quoted, tag_pattern
from gateway.policy.checks.base import Context, Evidence, check


def _tag(value: Any) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise ValueError(f"expected the tag text, e.g. \"[HEBAHAN JANM]\", got {value!r}")
    return tag_pattern(value)


Tag = Annotated[re.Pattern[str], PlainValidator(_tag)]
THREAD_FIELDS = ("In-Reply-To", "References")


@check("subject_quotes_tag", Tag, needs="header")
def CHECK(tag: re.Pattern[str], ctx: Context) -> Evidence | None:
    quote = find_quoted(ctx.view.subject, tag)
    if quote is None:
        return None
    threaded = any(v.strip() for name in THREAD_FIELDS for v in ctx.view.header_values(name))
    if quote.kind == "reply" and not threaded:
        return None
    return {"subject_quotes_tag": {"kind": quote.kind, "prefix": quote.prefix[:100],
                                   "thread_fields": threaded}}
