"""Microsoft Purview sensitivity labels: read where Office writes them, mapped to markings.

A sensitivity label travels as `MSIP_Label_<GUID>_<Field>=<value>` pairs (fields
`Enabled`, `SetDate`, `Method`, `Name`, `SiteId`, `ActionId`, `ContentBits`):

- in the message's `msip_labels` header (Outlook, Exchange Online), pairs separated by `;`;
- in an Office document's custom properties (`docProps/custom.xml`, OpenDocument
  `meta.xml`, RTF `\\userprops`, Outlook `.msg` named properties), one property a pair;
- in `docMetadata/LabelInfo.xml` (newer Office, [MS-OFFCRYPTO] 2.6.4:
  `<clbl:label id="{GUID}" enabled="1" method="Standard" siteId="{GUID}" removed="0"/>`),
  which carries the id only, no name: the OOXML reader writes it as the same pairs.

An enabled label is a marking when the config's `label_map` names it (`LabelMap`: by
its GUID, or by its name in any case), else when its name is a marking by itself
(`SULIT`, `Sulit - Dalaman`; `markings._label_name`), else it is unknown: no marking,
but listed (`gateway check --json`, `labels`) so an administrator can map it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.message.text import fold

# GUIDs as Purview writes them: `3de9faa6-9fe1-49b3-9a08-227a296b54a6`, in LabelInfo.xml
# in braces. Hex digits compare in any case (RFC 4122 3: case-insensitive on input).
_GUID = re.compile(r"\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                   r"[0-9A-Fa-f]{12})\}?")
_PAIR = re.compile(r"MSIP_Label_(\{?[0-9A-Za-z-]+\}?)_([A-Za-z]+)\s*=\s*([^;]*)")


def guid(text: str) -> str | None:
    """`{3DE9FAA6-...}` / `3de9faa6-...` -> `3de9faa6-...` (lower case, no braces);
    None when the text is not a GUID."""
    m = _GUID.fullmatch(text.strip())
    return m.group(1).lower() if m else None


def name_key(name: str) -> str:
    """A label name as compared: folded (NFKC, invisible characters removed), runs of
    white space as one space, case-folded. `Sulit  -  DALAMAN` -> `sulit - dalaman`."""
    return " ".join(fold(name).split()).casefold()


@dataclass(frozen=True)
class Label:
    """One sensitivity label: `id` as `guid()` gives it (or as written when it is not
    a GUID), `name` as written ('' when the source has none, as LabelInfo.xml)."""

    id: str
    name: str
    enabled: bool
    site_id: str = ""


def parse(value: str) -> list[Label]:
    """The labels of `MSIP_Label_<id>_<Field>=value;` pairs (a header value or the
    pairs of a document's properties), in order of first mention, every one of them
    (a real header names one or two; a label after fifty decoys is still a label, and
    the text is bounded by the header and document limits). A label without an
    `Enabled` pair counts as enabled: a marking is never lost for a missing field.
    Never raises."""
    fields: dict[str, dict[str, str]] = {}
    for m in _PAIR.finditer(value):
        raw_id = m.group(1)
        key = guid(raw_id) or raw_id.strip("{}").lower()
        fields.setdefault(key, {}).setdefault(m.group(2).lower(), m.group(3).strip())
    return [Label(id=key, name=f.get("name", "").strip().strip("\"'"),
                  enabled=f.get("enabled", "true").strip().lower() not in ("false", "0"),
                  site_id=f.get("siteid", ""))
            for key, f in fields.items()]


class LabelMap:
    """The config's `label_map` (label GUID or name -> marking level), for lookups.

    A key that is a GUID matches the label with that id (whatever the case of its hex
    digits or braces), never a name; any other key matches a label name compared by
    `name_key`. Values are levels already checked by the config (`LEVELS`)."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.by_id: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        for key, level in (mapping or {}).items():
            gid = guid(key)
            if gid is not None:
                self.by_id[gid] = level
            else:
                self.by_name[name_key(key)] = level

    def __bool__(self) -> bool:
        return bool(self.by_id or self.by_name)

    def marking(self, label: Label) -> str | None:
        """The level the map gives this label (its id first, then its name), or None."""
        level = self.by_id.get(label.id)
        if level is None and label.name:
            level = self.by_name.get(name_key(label.name))
        return level


def conflicts(mapping: Mapping[str, str]) -> list[str]:
    """Keys that name the same label as an earlier key with another level
    (`Sulit - Dalaman` and `SULIT - DALAMAN`; a GUID in two cases): for the config."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    out: list[str] = []
    for key, level in mapping.items():
        gid = guid(key)
        norm = ("id", gid) if gid is not None else ("name", name_key(key))
        if norm in seen and seen[norm][1] != level:
            out.append(f"{key!r} names the same label as {seen[norm][0]!r} with another "
                       f"level ({level} and {seen[norm][1]})")
        seen.setdefault(norm, (key, level))
    return out
