"""What-if replay: which verdicts a proposed rule set would change on saved mail.

`gateway rules diff --against NEW_RULES_DIR` loads the live policy (the config)
and a proposed one (the same config with `rules_dir` replaced), reads saved
messages (Maildir, mbox, .eml files or a directory of them) and evaluates each,
per direction, with both through the same pipeline as the proxy and `gateway
check` (sender_auth uses the configured resolver). The envelope is rebuilt from
the headers: MAIL FROM = the first From address, RCPT = the To, Cc, Bcc,
Delivered-To and X-Original-To addresses, client 127.0.0.1.

A message that cannot be read or is not a message is reported and counted,
never fatal. Output names messages by Message-ID and path only: no subject or
body text, so a classified message's content is never printed.
"""

from __future__ import annotations

import mailbox
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.envelope import Envelope
from gateway.message import headers as hdr
from gateway.message.view import MessageView
from gateway.pipeline import Inspection, inspect
from gateway.policy_state import PolicyState, load_policy, load_policy_for

RCPT_HEADERS = ("To", "Cc", "Bcc", "Delivered-To", "X-Original-To")
DIRECTIONS = ("inbound", "outbound")
_HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+[ \t]*:")


def load_pair(config_path: Path, proposed_rules: Path) -> tuple[PolicyState, PolicyState]:
    """(live, proposed); raises gateway.problems.LoadError with FILE:LINE problems."""
    live = load_policy(config_path)
    proposed = load_policy_for(live.config.model_copy(update={"rules_dir": proposed_rules}))
    # One resolver (and DNS cache) for both: the same look-up must not answer differently.
    return live, replace(proposed, resolver=live.resolver)


# -- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Saved:
    """One saved message, or why it could not be read (`raw` None)."""

    label: str  # path, or path#N inside an mbox
    raw: bytes | None
    error: str | None = None


def _read(path: Path, label: str | None = None) -> Saved:
    try:
        return Saved(label or str(path), path.read_bytes())
    except OSError as exc:
        return Saved(label or str(path), None, f"cannot read: {exc.strerror or exc}")


def _is_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(5) == b"From "
    except OSError:
        return False


def _mbox(path: Path) -> Iterator[Saved]:
    try:
        box = mailbox.mbox(path, create=False)
        keys = list(box.keys())
    except (OSError, mailbox.Error) as exc:
        yield Saved(str(path), None, f"cannot read mbox: {exc}")
        return
    for n, key in enumerate(keys, start=1):
        try:
            yield Saved(f"{path}#{n}", box.get_bytes(key))
        except (OSError, mailbox.Error, KeyError) as exc:
            yield Saved(f"{path}#{n}", None, f"cannot read: {exc}")


def saved_messages(inputs: Sequence[Path]) -> Iterator[Saved]:
    """Every message in the inputs, in a stable order (sorted file names)."""
    for path in inputs:
        if path.is_dir():
            subdirs = [path / "cur", path / "new"]
            if any(d.is_dir() for d in subdirs):  # a Maildir
                files = [f for d in subdirs if d.is_dir() for f in sorted(d.iterdir())]
            else:  # a directory of .eml files
                files = sorted(f for f in path.iterdir() if f.suffix.lower() == ".eml")
            for f in files:
                if f.name.startswith("."):
                    continue
                yield _read(f)
        elif _is_mbox(path):
            yield from _mbox(path)
        else:
            yield _read(path)


def not_a_message(raw: bytes) -> str | None:
    """Why `raw` is not worth evaluating (empty, binary, no header), or None."""
    if not raw.strip():
        return "empty"
    first = raw.lstrip(b"\r\n").split(b"\n", 1)[0]
    if not _HEADER_LINE.match(first):
        return "not a message: no header at the start"
    return None


# -- evaluation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What one policy does with one message in one direction, reduced to comparables."""

    action: str  # accept | reject | tempfail
    rule_id: str | None
    code: int | None
    reply: tuple[str, ...]  # the reply text lines: a reworded refusal is a change too
    tags: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    hits: frozenset[tuple[str, str, str]]  # (rule_id, action, mode)

    @property
    def summary(self) -> str:
        return f"{self.action}/{self.rule_id or '-'}"

    @property
    def monitored(self) -> frozenset[str]:
        return frozenset(r for r, _, m in self.hits if m == "monitor")


def decide(inspection: Inspection) -> Decision:
    v = inspection.verdict
    reply = inspection.reply
    action = "accept" if reply is None else ("tempfail" if reply.code < 500 else "reject")
    return Decision(action=action, rule_id=v.rule_id, code=reply.code if reply else None,
                    reply=(reply.enhanced, *reply.lines) if reply else (),
                    # A defang is a subject change too: "[TAG] -> [REPLACEMENT]".
                    tags=(*v.subject_tags, *(f"{t} -> {r}" for t, r in v.subject_defangs)),
                    headers=tuple(v.added_headers),
                    hits=frozenset((h.rule_id, h.action, h.mode) for h in v.hits))


@dataclass(frozen=True)
class Change:
    label: str
    message_id: str
    direction: str
    old: Decision
    new: Decision
    kind: str  # e.g. "accept->reject", "rule", "reply", "tag", "header", "monitor"
    caused_by: tuple[str, ...]

    def line(self) -> str:
        mid = f" <{self.message_id.strip('<>')}>" if self.message_id else ""
        detail = ""
        if self.kind in ("tag", "header"):
            # Each list under its own label, and only those that changed: a message that is
            # tagged the same way by both rule sets still shows its header change as one.
            if self.old.tags != self.new.tags:
                detail += f" tags {list(self.old.tags)!r} -> {list(self.new.tags)!r}"
            if self.old.headers != self.new.headers:
                detail += f" headers {list(self.old.headers)!r} -> {list(self.new.headers)!r}"
        elif self.kind == "monitor":
            detail = (f" monitored {sorted(self.old.monitored)} -> "
                      f"{sorted(self.new.monitored)}")
        return (f"{self.label}{mid} [{self.direction}]: {self.old.summary} -> "
                f"{self.new.summary}{detail} (changed by: {', '.join(self.caused_by) or '-'})")


def compare(label: str, message_id: str, direction: str, old: Decision, new: Decision
            ) -> Change | None:
    if old == new:
        return None
    if old.action != new.action:
        kind = f"{old.action}->{new.action}"
    elif old.rule_id != new.rule_id or old.code != new.code:
        kind = "rule"
    elif old.reply != new.reply:
        kind = "reply"
    elif old.tags != new.tags:
        kind = "tag"
    elif old.headers != new.headers:
        kind = "header"
    elif old.monitored != new.monitored:
        kind = "monitor"
    else:
        kind = "hits"
    # The rules that match differently; if the same rules match (a changed reply or
    # a reordering), the deciding rules are the cause.
    caused = {r for r, _, _ in old.hits ^ new.hits}
    if not caused:
        caused = {r for r in (old.rule_id, new.rule_id) if r}
    if not caused and kind in ("tag", "header"):
        # The same rules match and nothing is refused: the rules of that action changed
        # what they add (a reworded tag or header value).
        actions = ("tag", "defang") if kind == "tag" else ("add_header",)
        caused = {r for r, a, _ in old.hits | new.hits if a in actions}
    return Change(label, message_id, direction, old, new, kind, tuple(sorted(caused)))


def envelope_for(view: MessageView, direction: str) -> Envelope:
    mail_from = view.from_addresses[0] if view.from_addresses else ""
    rcpts: list[str] = []
    for name in RCPT_HEADERS:
        for addr in hdr.addresses(view.header_values(name)):
            if addr not in rcpts:
                rcpts.append(addr)
    return Envelope(direction="inbound" if direction == "inbound" else "outbound",
                    listener="rules-diff", client_ip="127.0.0.1", helo="localhost",
                    mail_from=mail_from, rcpt_to=tuple(rcpts))


@dataclass
class DiffResult:
    messages: int = 0
    evaluations: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def changed_messages(self) -> int:
        return len({c.label for c in self.changes})

    def summary_line(self) -> str:
        kinds = Counter(c.kind for c in self.changes)
        by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda x: (-x[1],
                                                                                       x[0])))
        return (f"{self.messages} messages, {self.changed_messages} changed"
                + (f" ({len(self.changes)} verdicts: {by_kind})" if self.changes else "")
                + f", {len(self.unreadable)} unreadable")


def diff_message(live: PolicyState, proposed: PolicyState, saved: Saved,
                 directions: Sequence[str]) -> list[Change]:
    """The changed verdicts of one readable message. Exceptions propagate."""
    assert saved.raw is not None
    raw = saved.raw
    view = MessageView(raw, classification_headers=live.config.classification_headers,
                       label_map=live.config.label_map)
    changes = []
    for direction in directions:
        envelope = envelope_for(view, direction)
        old = decide(inspect(live, raw, envelope, ref="rules-diff"))
        new = decide(inspect(proposed, raw, envelope, ref="rules-diff"))
        change = compare(saved.label, view.message_id, direction, old, new)
        if change is not None:
            changes.append(change)
    return changes
