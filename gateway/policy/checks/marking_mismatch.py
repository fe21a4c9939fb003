"""`marking_mismatch: true|false`: a marking written lower than another the message carries.

A downgrade, or a marking an officer forgot to raise, shows as two markings that
disagree (MARKINGS.md; docs/markings.md "Marked lower than the content"):

- `text_below_attachment`: the highest marking of the message's own text (its subject,
  its bodies, the configured classification headers such as `X-Classification`) is
  lower than the highest marking inside its attachments (documents, file names,
  forwarded messages, their labels). A message whose text is not marked at all is
  not a mismatch: it has no marking to be lower.
- `label_below_text`: a Microsoft Purview sensitivity label (`gateway.message.labels`)
  is lower than the text it labels: the message's `msip_labels` label lower than its
  subject or body marking, or a document's label (custom properties, LabelInfo.xml)
  lower than a marking in that same document.

The highest marking still decides every other rule (`classification`); this
condition only says that the markings disagree. Evidence: each mismatch with its
`kind` and the two sides, `{"marking": LEVEL, "at": [places]}` (`at` names files:
a key the log drops for RAHSIA mail).
"""

from __future__ import annotations

from typing import Any

from gateway.message.markings import LEVELS, Found
from gateway.policy.checks.base import Context, Evidence, check
from gateway.policy.checks.params import Flag

MAX_AT = 5  # places listed per side


def _is_label(f: Found) -> bool:
    return "label" in f.where or f.where.get("header") == "msip_labels"


def _own_text(f: Found) -> bool:
    """The message's own subject, bodies and classification headers (not its label)."""
    place = f.where.get("in")
    if place == "subject":
        return True
    if place == "body":
        return not f.where.get("nested")
    return place == "header" and not _is_label(f)


def _inside_attachment(f: Found) -> bool:
    place = f.where.get("in")
    return place in ("attachment", "forwarded") or (place == "body" and
                                                    bool(f.where.get("nested")))


def _highest(found: list[Found]) -> str | None:
    return max((f.marking for f in found), key=LEVELS.index) if found else None


def _side(found: list[Found], marking: str) -> dict[str, Any]:
    at = [str(f.where.get("at", "")) for f in found if f.marking == marking]
    return {"marking": marking, "at": list(dict.fromkeys(at))[:MAX_AT]}


def _below(kind: str, lower: list[Found], higher: list[Found]) -> dict[str, Any] | None:
    low, high = _highest(lower), _highest(higher)
    if low is None or high is None or LEVELS.index(low) >= LEVELS.index(high):
        return None
    return {"kind": kind, "lower": _side(lower, low), "higher": _side(higher, high)}


def mismatches(found: tuple[Found, ...]) -> list[dict[str, Any]]:
    """Every mismatch among the markings of one message (module docstring)."""
    out: list[dict[str, Any]] = []
    own = [f for f in found if _own_text(f)]
    inside = [f for f in found if _inside_attachment(f)]
    found_text = _below("text_below_attachment", own, inside)
    if found_text is not None:
        out.append(found_text)
    message_label = [f for f in found if f.where.get("in") == "header" and _is_label(f)]
    found_label = _below("label_below_text", message_label, own)
    if found_label is not None:
        out.append(found_label)
    # A document's label against that document's own markings (same attachment and
    # archive member): a document labelled TERHAD with a RAHSIA footer.
    documents: dict[tuple[Any, Any], list[Found]] = {}
    for f in found:
        if f.where.get("in") == "attachment":
            documents.setdefault((f.where.get("index"), f.where.get("member", "")),
                                 []).append(f)
    for in_document in documents.values():
        labelled = [f for f in in_document if _is_label(f)]
        if labelled:
            text = [f for f in in_document if not _is_label(f)]
            found_doc = _below("label_below_text", labelled, text)
            if found_doc is not None:
                out.append(found_doc)
    return out


@check("marking_mismatch", Flag)
def CHECK(want: bool, ctx: Context) -> Evidence | None:
    view = ctx.view
    view.require_complete()
    found = view.markings.found
    view.require_complete()  # reading the documents may meet a limit (view.markings)
    listed = mismatches(found)
    if want and listed:
        return {"marking_mismatch": listed}
    if not want and not listed:
        return {"marking_mismatch": []}
    return None
