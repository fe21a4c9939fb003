"""`attachment_unreadable: true|false`: an attachment holds a document with no text to read.

A picture, or a PDF whose pages are images only (a scanned document), has no text
the gateway can search for a marking (MARKINGS.md, "Where a marking counts" 4): it
can vouch for neither its being marked nor its being plain. `true` holds when at
least one attachment, or a document inside one (an archive member, a file inside
an Outlook item), has such a part; the evidence names the attachment and where
(`image`, `page2`, `scan.zip/p1.pdf:page1`). `false` is the exact opposite.

The documents are read within the inspection bounds first (the same reading the
marking search does, done once): beyond a bound the message is not inspectable
and the check raises NotInspectable, like every content check.
"""

from __future__ import annotations

from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag

MAX_LISTED = 10


@check("attachment_unreadable", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    view = ctx.view
    _ = view.markings  # reads every document once; a bound met makes the view incomplete
    view.require_complete()
    found = [(a, a.unreadable) for a in view.attachments]
    unreadable = [(a, where) for a, where in found if where]
    if want and unreadable:
        # `at` may hold member names: a key the log drops for RAHSIA mail.
        return {"unreadable": [{"index": a.index, "name": a.filename, "at": list(where)}
                               for a, where in unreadable[:MAX_LISTED]]}
    if not want and not unreadable:
        return {"attachments": len(found)}
    return None
