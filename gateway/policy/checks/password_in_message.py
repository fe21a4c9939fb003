"""`password_in_message: true|false`: a password written in the message opens one of its
encrypted attachments.

PPPA Bil. 3 Tahun 2025, Lampiran A 3.2.2(a)(ii)(d) and Garis Panduan Emel Kelantan 5.3:
the password travels by another channel. The candidates (`gateway.message.passwords`:
`Kata laluan: X`, `Katalaluan = X`, `Password: X`, `pwd X`, `kata laluan fail ini
ialah X`, any case) come from the subject, the bodies, forwarded messages, text
attachments, plain documents and file names; each is tried on each encrypted ZIP, PDF
and Office attachment (`gateway.message.unlock`). `true` holds when one opens one;
`false` when none does (or nothing is encrypted, or no candidate was found).

Evidence names each attachment opened, its scheme and WHERE the password stood
(`in`: subject, body, body:html, forwarded:N:..., attachment, attachment_name; `name`:
that attachment; a password in a file name masked: `passwords.mask`), never the
password; and `untried`: encrypted attachments no
candidate could be tried on (7z, RAR, OpenDocument, PGP...: module `unlock`).

Bounds: more than `unlock.MAX_CANDIDATES` distinct candidates, or the message's
document deadline or byte budget met while trying, makes the message not
inspectable (NotInspectable: 451 4.3.0), never a silent "no password found".
"""

from __future__ import annotations

from typing import Any

from gateway.message import unlock
from gateway.message.documents import LimitExceeded
from gateway.message.passwords import mask
from gateway.message.view import NotInspectable
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag

MAX_LISTED = 10


def _untried(found: unlock.Trial) -> list[dict[str, Any]]:
    return [{"index": u.index, "name": mask(u.name), "scheme": u.scheme, "reason": u.reason}
            for u in found.untried[:MAX_LISTED]]


@check("password_in_message", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    view = ctx.view
    view.require_complete()
    try:
        found = unlock.trial(view, view.document_bounds)
    except (LimitExceeded, unlock.TooManyCandidates) as exc:
        raise NotInspectable(f"password candidates: {exc.reason}") from None
    if want and found.opened:
        # `name` keys are file names (a password written in one masked): the log drops
        # them for marked mail unless `log_subjects: clear`.
        return {"opened": [{"index": o.index, "name": mask(o.name), "scheme": o.scheme,
                            "found": {"in": o.where, **({"name": mask(o.found_name)}
                                                        if o.found_name else {})}}
                           for o in found.opened[:MAX_LISTED]],
                "candidates": found.candidates, "untried": _untried(found)}
    if not want and not found.opened:
        return {"encrypted": found.encrypted, "candidates": found.candidates,
                "untried": _untried(found)}
    return None
