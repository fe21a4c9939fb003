"""Who the message says it is from: defects of the From (and Sender) header a rule can use.

The reader sees the From display name, the gateway's address checks see the
addr-spec; every way the two can be made to disagree is a kind here
(`KINDS`, validated when rules load):

- from_missing: no From header at all;
- multiple_from_headers: more than one From header (programs differ on which
  one they show, which one DMARC checks);
- from_unparsable: the From value is not a valid address list (an unclosed
  `<`, a mailbox without a domain, stray text beside the address...);
- multiple_from_addresses: more than one address in From (RFC 5322 allows it
  with a Sender; no official mail needs it);
- display_name_address: the display name (RFC 2047-decoded, folded) holds an
  address different from the real one: `"ceo@anm.gov.my" <x@evil.example>`;
- sender_domain_differs: a Sender header whose domain is not the From domain.

Values are parsed from the raw, unfolded header with the stdlib's RFC 5322
parser (`email.policy.default`), which reports defects rather than guessing.
"""

from __future__ import annotations

import email.errors
import email.policy
import re
from dataclasses import dataclass

from gateway.message.text import fold

KINDS = ("from_missing", "multiple_from_headers", "from_unparsable",
         "multiple_from_addresses", "display_name_address", "sender_domain_differs")

_ADDRESS_IN_TEXT = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Defects that mean the value is not what it seems; an obsolete but harmless form
# (`Ali b. Abu <ali@...>`, a period in the phrase) is not one.
_SERIOUS = (email.errors.InvalidHeaderDefect, email.errors.HeaderMissingRequiredValue,
            email.errors.NonPrintableDefect)


@dataclass(frozen=True)
class Mailbox:
    display_name: str
    address: str  # addr-spec, domain lower-cased; '' when there is none


@dataclass(frozen=True)
class Identity:
    kinds: tuple[str, ...]
    mailboxes: tuple[Mailbox, ...]  # of every From header, in order
    display_addresses: tuple[str, ...]  # addresses found in display names, differing


def _norm(address: str) -> str:
    local, at, domain = address.strip().rpartition("@")
    return f"{local}@{domain.rstrip('.').lower()}" if at else address.strip()


def parse_mailboxes(value: str) -> tuple[tuple[Mailbox, ...], bool]:
    """(mailboxes, clean) of one raw From/Sender value; clean is False on a parse defect."""
    try:
        header = email.policy.default.header_factory("From", value)
        addresses = header.addresses
        defects = header.defects
    except Exception:  # the parser gives up on some hostile values
        return (), False
    boxes = tuple(Mailbox(str(a.display_name or ""), _norm(str(a.addr_spec or "")))
                  for a in addresses)
    clean = not any(isinstance(d, _SERIOUS) for d in defects) and all(
        "@" in b.address and not b.address.endswith("@") and not b.address.startswith("@")
        for b in boxes)
    return boxes, clean and bool(boxes)


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def examine(from_values: tuple[str, ...], sender_values: tuple[str, ...],
            from_addresses: tuple[str, ...]) -> Identity:
    """The identity facts of a header block. `from_values`/`sender_values`: raw,
    unfolded values; `from_addresses`: the view's lenient reading of From (what the
    domain checks use), so a value the two parsers read differently counts twice."""
    kinds: set[str] = set()
    if not from_values:
        kinds.add("from_missing")
    if len(from_values) > 1:
        kinds.add("multiple_from_headers")
    boxes: list[Mailbox] = []
    for value in from_values:
        found, clean = parse_mailboxes(value)
        if not clean:
            kinds.add("from_unparsable")
        if len(found) > 1:
            kinds.add("multiple_from_addresses")
        boxes.extend(found)
    real = {b.address.lower() for b in boxes if b.address} | {a.lower() for a in from_addresses}
    if len(real) > 1:
        kinds.add("multiple_from_addresses")
    shown: list[str] = []
    for box in boxes:
        for m in _ADDRESS_IN_TEXT.finditer(fold(box.display_name)):
            address = _norm(m.group(0))
            if address.lower() != box.address.lower() and address not in shown:
                shown.append(address)
    if shown:
        kinds.add("display_name_address")
    if sender_values and boxes:
        senders = [b for v in sender_values for b in parse_mailboxes(v)[0] if b.address]
        from_domains = {_domain(b.address) for b in boxes if b.address}
        if any(_domain(s.address) not in from_domains for s in senders):
            kinds.add("sender_domain_differs")
    return Identity(kinds=tuple(k for k in KINDS if k in kinds), mailboxes=tuple(boxes),
                    display_addresses=tuple(shown))
