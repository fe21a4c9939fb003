"""Changes to a message a verdict asks for: the only code that alters relayed bytes.

Everything else relays the received bytes untouched. The subject tags
(`subject_tag`), the added header fields (`headers`) and the removal of forged
Authentication-Results fields (`authres_strip`, RFC 8601 5) work on the raw bytes,
so a relayed message differs from the received one only in its Subject field, in
the fields inserted at the top of its header block, and in the Authentication-Results
fields that claimed the gateway's own authserv-id. `dkim_sign` makes the
DKIM-Signature of `dkim_sign:` over the result (the pipeline adds it last).
"""

from __future__ import annotations

from gateway.policy.verdict import Verdict
from gateway.transforms.authres_strip import strip_forged
from gateway.transforms.headers import add_headers
from gateway.transforms.subject_tag import defang_subject, tag_subject


def apply(raw: bytes, verdict: Verdict,
          trace_headers: tuple[tuple[str, str], ...] = (), *, authserv_id: str = ""
          ) -> bytes:
    """The message to relay: `raw` with the verdict's subject defangs and tags and its
    added headers.

    `trace_headers` are the gateway's own fields (Authentication-Results); they go
    above the rules' fields, at the very top, as RFC 8601 5 asks of such fields.
    `authserv_id` is the gateway's own: Authentication-Results fields that arrived
    claiming it are forgeries and are removed first (RFC 8601 5), whatever the
    verdict; '' removes nothing. `raw` itself is returned when nothing changes.
    """
    out = strip_forged(raw, authserv_id)
    if not (verdict.subject_tags or verdict.subject_defangs or verdict.added_headers
            or trace_headers):
        return out
    # A quoted, unverified tag defanged first (`Re: [HEBAHAN JANM - TIDAK DISAHKAN]`).
    for tag, replacement in verdict.subject_defangs:
        out = defang_subject(out, tag, replacement)
    # Prefix the last tag first so the tags read in rule order: "[A] [B] subject".
    for tag in reversed(verdict.subject_tags):
        out = tag_subject(out, tag)
    return add_headers(add_headers(out, verdict.added_headers), trace_headers)
