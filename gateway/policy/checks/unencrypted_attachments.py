"""`unencrypted_attachments: true|false`: the message carries an attachment that is not encrypted.

`true` holds when at least one attachment is not encrypted (an attachment that
could not be inspected counts as not encrypted) and the message as a whole is
not S/MIME or PGP/MIME encrypted. `false` is the exact opposite: every attachment
is encrypted, or there is none, or the whole message is encrypted.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag

MAX_LISTED = 10


@check("unencrypted_attachments", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    view = ctx.view
    view.require_complete()
    encrypted_message = view.encrypted_message
    plain = [] if encrypted_message else [a for a in view.attachments if a.encrypted is not True]
    if want and plain:
        return {"unencrypted": [
            {"index": a.index, "name": a.filename, "detected_type": a.detected_type,
             "encrypted": a.encrypted} for a in plain[:MAX_LISTED]]}
    if not want and not plain:
        return {"encrypted_message": encrypted_message, "attachments": len(view.attachments)}
    return None
