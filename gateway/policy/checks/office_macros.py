"""`office_macros: LEVEL` or `[LEVEL, ...]`: an attachment holds Office macros of these levels.

The levels (gateway.message.documents.macros, by olevba's analysis):
`present` (a VBA project or Excel 4.0 macros), `autoexec` (a routine runs by itself:
AutoOpen, Workbook_Open...), `suspicious` (Shell, CreateObject, obfuscation...),
`unreadable` (macros oletools could not read: never taken for none). The condition
holds when one file, an attachment or a file inside one (an archive member, the
`vbaProject.bin` of an OOXML package), holds EVERY listed level at once:
`office_macros: present` is any macro, `office_macros: autoexec` a macro that runs by
itself, `office_macros: [autoexec, suspicious]` one that runs by itself and calls
what malware calls.

Evidence: each matching attachment by name, where inside it, its levels and the
keywords olevba found (`autoexec: [AutoOpen]`, `suspicious: [Shell]`).

The documents are read within the inspection bounds: beyond one the message is not
inspectable and the check raises NotInspectable, like every content check.
"""

from __future__ import annotations

from typing import Any

from gateway.message.documents import LimitExceeded
from gateway.message.view import NotInspectable
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import MacroLevels

MAX_LISTED = 10


@check("office_macros", MacroLevels)
def CHECK(levels: frozenset[str], ctx: Context) -> Evidence | None:
    view = ctx.view
    view.require_complete()
    hits: list[dict[str, Any]] = []
    for attachment in view.attachments:
        try:
            state = attachment.macros
        except LimitExceeded as exc:
            raise NotInspectable(f"{attachment.path}: {exc.reason}") from None
        for found in state.matching(levels):
            # `at` may hold member names: a key the log drops for RAHSIA mail.
            hits.append({"index": attachment.index, "name": attachment.path,
                         "at": found.path, "levels": list(found.levels),
                         "autoexec": list(found.autoexec),
                         "suspicious": list(found.suspicious),
                         **({"unreadable": found.unreadable} if found.unreadable else {})})
    if not hits:
        return None
    return {"office_macros": hits[:MAX_LISTED], "files": len(hits)}
