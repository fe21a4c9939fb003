"""Classification markings (MARKINGS.md): where a marking counts and which is highest.

PLACEHOLDER being replaced in issue 2 work: subject only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.message.view import MessageView

LEVELS = ("TERHAD", "SULIT", "RAHSIA", "RAHSIA BESAR")  # lowest first


@dataclass(frozen=True)
class Found:
    marking: str
    where: dict[str, Any]


@dataclass(frozen=True)
class Markings:
    found: tuple[Found, ...] = field(default=())

    @property
    def highest(self) -> str | None:
        if not self.found:
            return None
        return max((f.marking for f in self.found), key=LEVELS.index)


def detect(view: MessageView) -> Markings:
    m = re.search(r"\[(RAHSIA BESAR|RAHSIA|SULIT|TERHAD)\]", view.subject)
    return Markings((Found(m.group(1), {"in": "subject"}),) if m else ())
