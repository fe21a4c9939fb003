"""Changes to a message a verdict asks for: the only code that alters relayed bytes.

Everything else relays the received bytes untouched. The subject tags
(`subject_tag`) and the added header fields (`headers`) work on the raw bytes,
so a relayed message differs from the received one only in its Subject field and
in the fields inserted at the top of its header block.
"""

from __future__ import annotations

from gateway.policy.verdict import Verdict
from gateway.transforms.headers import add_headers
from gateway.transforms.subject_tag import tag_subject


def apply(raw: bytes, verdict: Verdict,
          trace_headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """The message to relay: `raw` with the verdict's subject tags and added headers.

    `trace_headers` are the gateway's own fields (Authentication-Results); they go
    above the rules' fields, at the very top, as RFC 8601 5 asks of such fields.
    """
    if not verdict.subject_tags and not verdict.added_headers and not trace_headers:
        return raw
    out = raw
    # Prefix the last tag first so the tags read in rule order: "[A] [B] subject".
    for tag in reversed(verdict.subject_tags):
        out = tag_subject(out, tag)
    return add_headers(add_headers(out, verdict.added_headers), trace_headers)
