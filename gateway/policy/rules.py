"""Rule files -> one frozen, validated RuleSet.

Reads `rules/*.yaml` in file-name order. Every problem is reported as
`FILE:LINE: message` and the whole set is refused: unknown keys, unknown
conditions, bad sizes and regexes (via each check's parameter schema), dangling
`@lists`, duplicate ids, and reject/tempfail rules without a matching reply.

Conditions keep the order they are written in: the keys of a `when:` mapping
become an AllOf in document order, so the engine evaluates them in that order.

`plan_changes` (the RuleSet's `change_plan`, decided once at load) reads the rules
statically for the proxy's cut-through: which rules can change the header block of a
relayed message (`tag`, `add_header`, and through a `sender_auth` condition the
gateway's Authentication-Results field), and whether the conditions that decide those
changes read only the envelope and the header block (each check's `needs`). When one
needs the body, the proxy stores and forwards every message instead.

Exceptions stay narrow: a rule's own `except:` and the top-level `exceptions:` entries
(`RuleException`: id, the rule ids it exempts, `when`, `reason`, `expires`) are only
ever consulted for the rules they belong to or name, after that rule's `when` held;
naming a rule id that no file defines is a load error. Their conditions count for the
change plan as if written after the rule's `when` (`planned_condition`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from gateway.config import DEFAULT_TIMEZONE
from gateway.message.subject_prefix import HEBAHAN_DEFANG, tag_pattern
from gateway.message.text import fold
from gateway.policy.checks import REGISTRY
from gateway.policy.checks.base import Check
from gateway.policy.verdict import Reply
from gateway.problems import LoadError, Problem
from gateway.yamlsource import Located, PathKey, load_file

Action = Literal["reject", "tempfail", "accept", "tag", "add_header", "defang"]
TERMINAL: frozenset[str] = frozenset({"reject", "tempfail", "accept"})
ACTIONS: frozenset[str] = TERMINAL | {"tag", "add_header", "defang"}
RULE_KEYS = frozenset({"id", "description", "reference", "direction", "mode", "when",
                       "action", "reply", "tag", "header", "incident", "except",
                       "defang"})
EXCEPTION_KEYS = frozenset({"id", "rules", "when", "reason", "expires"})
# The gateway's local date, for exceptions' `expires`, unless the config names a zone.
COMBINATORS = frozenset({"any", "all", "not"})
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext


@dataclass(frozen=True)
class Leaf:
    check: Check[Any]
    value: Any


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Leaf | AllOf | AnyOf | Not
# A condition that never holds: "any of no conditions".
NEVER = AnyOf(())


def _only_list_refs(value: Any) -> bool:
    """Whether a rule value consists of `@list` references only."""
    if isinstance(value, str):
        return value.startswith("@")
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, str) and v.startswith("@") for v in value)


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    reference: str
    direction: Literal["inbound", "outbound", "both"]
    mode: Literal["enforce", "monitor"]
    when: Condition
    action: Action
    reply: Reply | None
    tag: str | None
    header: tuple[str, str] | None
    file: str
    line: int
    # `incident: true`: an enforced refusal by this rule is a security incident the
    # configured contacts hear of (config `incidents:`, gateway.observe.incidents).
    incident: bool = False
    # `except:`: when it holds (after `when` held) the rule does not apply.
    except_when: Condition | None = None
    # `action: defang`: (tag, replacement) for the tag quoted after a reply or forward
    # prefix (gateway.message.subject_prefix), `defang: {tag: ..., with: ...}`.
    defang: tuple[str, str] | None = None

    def applies_to(self, direction: str) -> bool:
        return self.direction in ("both", direction)


@dataclass(frozen=True)
class RuleException:
    """A top-level `exceptions:` entry: the named rules do not apply while `when` holds,
    up to and including the day `expires` (the gateway's local date)."""

    id: str
    rules: tuple[str, ...]
    when: Condition
    reason: str
    expires: date
    file: str
    line: int

    def applies_on(self, day: date) -> bool:
        return day <= self.expires


def local_today(timezone: str | None = None) -> date:
    """Today's date in `timezone` (an IANA name; default DEFAULT_TIMEZONE, zoneinfo)."""
    return datetime.now(ZoneInfo(timezone or DEFAULT_TIMEZONE)).date()


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    lists: Mapping[str, tuple[str, ...]]
    files: tuple[str, ...]
    version: str
    agency_domains: tuple[str, ...] = field(default=())
    exceptions: tuple[RuleException, ...] = field(default=())
    # IANA zone of the gateway's local date (config `timezone`), for `expires`.
    timezone: str = DEFAULT_TIMEZONE

    def today(self) -> date:
        """The gateway's local date, on which exceptions' `expires` are judged."""
        return local_today(self.timezone)

    def exceptions_for(self, rule_id: str) -> tuple[RuleException, ...]:
        """The top-level exceptions naming `rule_id`, in load order (expired ones too)."""
        return self._exceptions_by_rule.get(rule_id, ())

    @cached_property
    def _exceptions_by_rule(self) -> dict[str, tuple[RuleException, ...]]:
        named: dict[str, list[RuleException]] = {}
        for exc in self.exceptions:
            for rule_id in exc.rules:
                named.setdefault(rule_id, []).append(exc)
        return {k: tuple(v) for k, v in named.items()}

    def leaves(self) -> Iterator[tuple[Rule, Leaf]]:
        for rule in self.rules:
            yield from ((rule, leaf) for leaf in _leaves(rule.when))

    # Cached: load_rules computes it once; the rules never change within a set.
    @cached_property
    def change_plan(self) -> ChangePlan:
        """What can change a relayed message's header block, and what decides it."""
        return plan_changes(self.rules, self.exceptions)

    def largest_allowed_size(self) -> int | None:
        """The largest message any enforced size rule lets through, encoded on the wire.

        An attachment limit is on decoded bytes, so the message carrying a file of
        exactly the limit is about 4/3 larger in base64 plus line breaks; allow that
        and 1 MiB of headers and text. None when no enforced rule limits size.
        """
        largest: int | None = None
        for rule in self.rules:
            allowed = rule_allowed_size(rule)
            if allowed is not None:
                largest = allowed if largest is None else max(largest, allowed)
        return largest


def rule_allowed_size(rule: Rule) -> int | None:
    """The largest message (encoded, bytes) an enforced refusing size rule lets
    through, None for any other rule (see `RuleSet.largest_allowed_size`)."""
    if rule.mode != "enforce" or rule.action not in ("reject", "tempfail"):
        return None
    largest: int | None = None
    for leaf in _leaves(rule.when):
        if leaf.check.name == "message_size_over":
            allowed = int(leaf.value)
        elif leaf.check.name == "attachment_size_over":
            allowed = (int(leaf.value) + 2) // 3 * 4 * 78 // 76 + 1024 * 1024
        else:
            continue
        largest = allowed if largest is None else max(largest, allowed)
    return largest


def _leaves(cond: Condition) -> Iterator[Leaf]:
    """The leaves in the order the engine may evaluate them (written order)."""
    if isinstance(cond, Leaf):
        yield cond
    elif isinstance(cond, AllOf | AnyOf):
        for item in cond.items:
            yield from _leaves(item)
    else:
        yield from _leaves(cond.item)


# The check whose evaluation, not its outcome, changes a relayed message: reading the
# sender's authentication makes the gateway add its Authentication-Results field.
AUTH_CHECK = "sender_auth"
CHANGE_ACTIONS: frozenset[str] = frozenset({"tag", "add_header", "defang"})


@dataclass(frozen=True)
class ChangePlan:
    """The header changes a rule set can make, read statically (see `plan_changes`).

    `rules` are those the header phase evaluates, in rule order: enforced `tag` and
    `add_header` rules; enforced `accept` rules that come before one of those or before
    a `sender_auth` condition (an accept ends evaluation, so it decides whether they
    run); and every rule with a `sender_auth` condition, monitor mode and refusals too,
    since reaching that condition is what adds Authentication-Results. Refusals are
    otherwise left out: when one holds the message is not relayed, so its header
    changes do not matter. `blockers` say why the header block alone cannot decide
    (empty when it can): each names the rule, where it is, and what it reads.
    """

    rules: tuple[Rule, ...]
    blockers: tuple[str, ...]
    exceptions: tuple[RuleException, ...] = ()

    @property
    def header_decides(self) -> bool:
        return not self.blockers

    def reads_auth(self, direction: str) -> bool:
        """Whether deciding the header changes may look up sender authentication (DNS)."""
        return any(rule.applies_to(direction) and any(
            leaf.check.name == AUTH_CHECK
            for leaf in _leaves(planned_condition(rule, self.exceptions)))
            for rule in self.rules)


def planned_condition(rule: Rule, exceptions: tuple[RuleException, ...] = ()) -> Condition:
    """Every condition the engine may evaluate for `rule`, in its order: `when`, then
    the rule's `except:`, then each exception naming it (expired ones too: the plan is
    made once, at load). Only for reading which checks are reached, not for evaluating."""
    extra = [rule.except_when] if rule.except_when is not None else []
    extra += [exc.when for exc in exceptions if rule.id in exc.rules]
    return AllOf((rule.when, *extra)) if extra else rule.when


def _body_leaf(cond: Condition) -> Leaf | None:
    """The first condition that reads more than the envelope and the header block."""
    return next((leaf for leaf in _leaves(cond) if leaf.check.needs == "message"), None)


def _body_before_auth(cond: Condition) -> Leaf | None:
    """A body-reading condition evaluated before a `sender_auth` one, if any: whether
    that sender_auth is reached (and Authentication-Results added) depends on the body.
    Any earlier leaf may decide it (all: stops at the first false, any: at the first
    true), so every leaf written before it must read the header block at most."""
    body: Leaf | None = None
    for leaf in _leaves(cond):
        if leaf.check.name == AUTH_CHECK and body is not None:
            return body
        if body is None and leaf.check.needs == "message":
            body = leaf
    return None


def plan_changes(rules: tuple[Rule, ...], exceptions: tuple[RuleException, ...] = ()
                 ) -> ChangePlan:
    """Which rules decide the header changes of an accepted message, and whether they
    decide from the envelope and header block alone (each check's `needs`).

    Exact for an accepted message: its evaluation reached every rule up to the end or
    to the enforced `accept` that ended it, and no refusal held. So the tags and fields
    it carries are those of the change rules reached whose conditions held, and its
    Authentication-Results exists when some rule reached reached a `sender_auth`
    condition. Directions are ignored here (conservative); the engine filters them.
    A rule's `except:` and the exceptions naming it decide whether it applies and may
    reach `sender_auth` too: they are read as conditions after its `when`.
    """
    selected: list[Rule] = []
    blockers: list[str] = []
    change_follows = False  # walking backwards: a change or sender_auth comes later
    for rule in reversed(rules):
        where = f"rule {rule.id} ({rule.file}:{rule.line})"
        enforced = rule.mode == "enforce"
        cond = planned_condition(rule, exceptions)
        has_auth = any(leaf.check.name == AUTH_CHECK for leaf in _leaves(cond))
        chosen = False
        if enforced and rule.action in CHANGE_ACTIONS:
            body = _body_leaf(cond)
            if body is not None:
                blockers.append(f"{where}: action {rule.action} depends on "
                                f"{body.check.name}, which reads the message body")
            chosen = True
        elif enforced and rule.action == "accept" and change_follows:
            body = _body_leaf(cond)
            if body is not None:
                blockers.append(f"{where}: action accept, before a rule that changes the "
                                f"header, depends on {body.check.name}, which reads the "
                                "message body")
            chosen = True
        if has_auth:
            body = _body_before_auth(cond)
            if body is not None:
                blockers.append(f"{where}: whether its {AUTH_CHECK} condition is reached "
                                "(and Authentication-Results added) depends on "
                                f"{body.check.name}, which reads the message body")
            chosen = True
        if chosen:
            selected.append(rule)
        change_follows = change_follows or (enforced and rule.action in CHANGE_ACTIONS) \
            or has_auth
    return ChangePlan(tuple(reversed(selected)), tuple(reversed(blockers)), exceptions)


class _Builder:
    def __init__(self, lists: Mapping[str, tuple[str, ...]]) -> None:
        self.lists = lists
        self.problems: list[Problem] = []

    def fail(self, doc: Located, path: PathKey, message: str) -> None:
        self.problems.append(doc.problem(path, message))

    # -- conditions ---------------------------------------------------------------
    def condition(self, doc: Located, path: PathKey, raw: Any) -> Condition | None:
        if not isinstance(raw, dict) or not raw:
            self.fail(doc, path, "a condition must be a non-empty mapping, e.g. "
                                 "{classification: [RAHSIA]}")
            return None
        items: list[Condition] = []
        for key, value in raw.items():
            item = self.one(doc, (*path, key), str(key), value)
            if item is not None:
                items.append(item)
        if len(items) != len(raw):
            return None
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def one(self, doc: Located, path: PathKey, key: str, value: Any) -> Condition | None:
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                self.fail(doc, path, f"{key}: expects a non-empty list of conditions")
                return None
            subs = [self.condition(doc, (*path, i), v) for i, v in enumerate(value)]
            if any(s is None for s in subs):
                return None
            done = tuple(s for s in subs if s is not None)
            return AnyOf(done) if key == "any" else AllOf(done)
        if key == "not":
            sub = self.condition(doc, path, value)
            return None if sub is None else Not(sub)
        check = REGISTRY.get(key)
        if check is None:
            known = ", ".join(sorted(REGISTRY) + sorted(COMBINATORS))
            self.fail(doc, path, f"unknown condition {key!r} (known: {known})")
            return None
        if check.takes_list:
            only_refs = _only_list_refs(value)
            value = self.expand_lists(doc, path, value)
            if value is None:
                return None
            if only_refs and value == []:
                # Lists from the config may be empty (no hebahan_relays registered): a
                # condition over nothing never holds, rather than failing the load.
                return NEVER
        try:
            return Leaf(check, check.validate(value))
        except ValidationError as exc:
            for err in exc.errors():
                msg = err["msg"].removeprefix("Value error, ")
                where = "".join(f"[{p}]" for p in err["loc"])
                self.fail(doc, (*path, *err["loc"]), f"{key}{where}: {msg}")
            return None
        except (ValueError, TypeError, re.error) as exc:
            self.fail(doc, path, f"{key}: {exc}")
            return None

    def expand_lists(self, doc: Located, path: PathKey, value: Any) -> Any:
        def ref(name: str, at: PathKey) -> list[str] | None:
            found = self.lists.get(name[1:])
            if found is None:
                known = ", ".join("@" + n for n in sorted(self.lists))
                self.fail(doc, at, f"unknown list {name!r} (defined: {known})")
                return None
            return list(found)

        if isinstance(value, str) and value.startswith("@"):
            return ref(value, path)
        if isinstance(value, list):
            out: list[Any] = []
            ok = True
            for i, item in enumerate(value):
                if isinstance(item, str) and item.startswith("@"):
                    got = ref(item, (*path, i))
                    ok = ok and got is not None
                    out.extend(got or [])
                else:
                    out.append(item)
            return out if ok else None
        return value

    # -- rules --------------------------------------------------------------------
    def reply(self, doc: Located, path: PathKey, raw: Any, action: str) -> Reply | None:
        if not isinstance(raw, dict):
            self.fail(doc, path, "reply must be a mapping {code, enhanced, text}")
            return None
        unknown = set(raw) - {"code", "enhanced", "text"}
        for key in sorted(unknown):
            self.fail(doc, (*path, key), f"reply: unknown key {key!r}")
        code, enhanced, text = raw.get("code"), raw.get("enhanced"), raw.get("text")
        want = "5" if action == "reject" else "4"
        ok = not unknown
        if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599 \
                or str(code)[0] != want:
            self.fail(doc, (*path, "code"),
                      f"reply.code must be a {want}xx code for action {action}, got {code!r}")
            ok = False
        m = _ENHANCED.match(str(enhanced)) if isinstance(enhanced, str) else None
        if m is None or m.group(1) != want:
            self.fail(doc, (*path, "enhanced"),
                      f"reply.enhanced must be an RFC 3463 code {want}.X.Y, got {enhanced!r}")
            ok = False
        lines: list[str] = []
        if isinstance(text, str):
            lines = [text]
        elif isinstance(text, list) and all(isinstance(t, str) for t in text):
            lines = list(text)
        elif isinstance(text, dict) and set(text) <= {"ms", "en"} and text and \
                all(isinstance(t, str) for t in text.values()):
            # Malay first, then English (PPPA: Bahasa Melayu is the official language).
            lines = [text[k] for k in ("ms", "en") if k in text]
        else:
            self.fail(doc, (*path, "text"),
                      "reply.text must be a string, a list of strings or {ms: ..., en: ...}")
            ok = False
        clean = [" ".join(line.split()) for line in lines]
        if any(not line.isprintable() or not line for line in clean):
            self.fail(doc, (*path, "text"), "reply.text lines must be non-empty printable text")
            ok = False
        if not ok:
            return None
        assert isinstance(code, int) and isinstance(enhanced, str)
        return Reply(code, enhanced, tuple(clean))

    def rule(self, doc: Located, path: PathKey, raw: Any) -> Rule | None:
        if not isinstance(raw, dict):
            self.fail(doc, path, "a rule must be a mapping")
            return None
        before = len(self.problems)
        for key in sorted(set(raw) - RULE_KEYS):
            self.fail(doc, (*path, key), f"unknown rule key {key!r} "
                                         f"(known: {', '.join(sorted(RULE_KEYS))})")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _ID.match(rule_id):
            self.fail(doc, (*path, "id"), f"rule id must be lower-case letters, digits, "
                                          f"'.', '_' or '-', got {rule_id!r}")
        for key in ("description", "reference"):
            if key in raw and not isinstance(raw[key], str):
                self.fail(doc, (*path, key), f"{key} must be a string")
        direction = raw.get("direction", "both")
        if direction not in ("inbound", "outbound", "both"):
            self.fail(doc, (*path, "direction"),
                      f"direction must be inbound, outbound or both, got {direction!r}")
        mode = raw.get("mode", "enforce")
        if mode not in ("enforce", "monitor"):
            self.fail(doc, (*path, "mode"), f"mode must be enforce or monitor, got {mode!r}")
        action = raw.get("action")
        if action not in ACTIONS:
            self.fail(doc, (*path, "action"),
                      f"action must be one of {', '.join(sorted(ACTIONS))}, got {action!r}")
        when: Condition | None = None
        if "when" not in raw:
            self.fail(doc, path, "rule has no 'when' conditions")
        else:
            when = self.condition(doc, (*path, "when"), raw["when"])
        except_when: Condition | None = None
        if "except" in raw:
            except_when = self.condition(doc, (*path, "except"), raw["except"])
        reply: Reply | None = None
        if action in ("reject", "tempfail"):
            if "reply" not in raw:
                self.fail(doc, path, f"action {action} needs a reply "
                                     f"{{code, enhanced, text}} with a "
                                     f"{'5' if action == 'reject' else '4'}xx code")
            else:
                reply = self.reply(doc, (*path, "reply"), raw["reply"], action)
        elif "reply" in raw:
            self.fail(doc, (*path, "reply"), f"action {action} sends no reply; remove 'reply'")
        tag = raw.get("tag")
        if action == "tag":
            if not isinstance(tag, str) or not tag.strip() or not tag.isprintable():
                self.fail(doc, (*path, "tag"), "action tag needs 'tag: <text>' "
                                               "(printable, one line)")
        elif "tag" in raw:
            self.fail(doc, (*path, "tag"), "'tag' only goes with action: tag")
        header: tuple[str, str] | None = None
        if action == "add_header":
            h = raw.get("header")
            if (not isinstance(h, dict) or set(h) != {"name", "value"}
                    or not isinstance(h["name"], str) or not _HEADER_NAME.match(h["name"])
                    or not isinstance(h["value"], str) or not h["value"].isprintable()):
                self.fail(doc, (*path, "header"), "action add_header needs "
                          "'header: {name: X-Name, value: text}' (one printable line)")
            else:
                header = (h["name"], h["value"])
        elif "header" in raw:
            self.fail(doc, (*path, "header"), "'header' only goes with action: add_header")
        defang = self.defang(doc, path, raw, action)
        incident = raw.get("incident", False)
        if not isinstance(incident, bool):
            self.fail(doc, (*path, "incident"), f"incident must be true or false, "
                                                f"got {incident!r}")
        elif incident and action != "reject":
            self.fail(doc, (*path, "incident"), "incident: true only goes with action: "
                                                "reject (a refusal is what is reported)")
        if len(self.problems) != before or when is None:
            return None
        return Rule(id=str(rule_id), description=str(raw.get("description", "")),
                    reference=str(raw.get("reference", "")), direction=direction,
                    mode=mode, when=when, action=cast(Action, action), reply=reply,
                    tag=tag.strip() if isinstance(tag, str) else None, header=header,
                    file=doc.file, line=doc.line(path), incident=incident is True,
                    except_when=except_when, defang=defang)

    def defang(self, doc: Located, path: PathKey, raw: dict[str, Any], action: Any
               ) -> tuple[str, str] | None:
        """`defang: {tag: TEXT, with: TEXT | "@list"}` of an `action: defang` rule: the
        tag quoted after a reply or forward prefix and the text that replaces it (a
        `@list` of one item: the config's `hebahan_defang`). The replacement must not
        read as the tag itself."""
        if action != "defang":
            if "defang" in raw:
                self.fail(doc, (*path, "defang"), "'defang' only goes with action: defang")
            return None
        d = raw.get("defang")
        at = (*path, "defang")
        usage = ("action defang needs 'defang: {tag: \"[HEBAHAN JANM]\", with: "
                 "\"[HEBAHAN JANM - TIDAK DISAHKAN]\"}' (printable, one line each)")
        if not isinstance(d, dict) or set(d) != {"tag", "with"}:
            self.fail(doc, at, usage)
            return None
        tag, with_ = d["tag"], d["with"]
        if isinstance(with_, str) and with_.startswith("@"):
            found = self.lists.get(with_[1:])
            if found is None or len(found) != 1:
                self.fail(doc, (*at, "with"), f"{with_!r} must name a list of exactly one "
                                              "text (such as @hebahan_defang)")
                return None
            with_ = found[0]
        if not all(isinstance(v, str) and v.strip() and v.isprintable() for v in (tag, with_)):
            self.fail(doc, at, usage)
            return None
        pattern = tag_pattern(tag)
        if pattern.search(fold(with_)) is not None:
            self.fail(doc, (*at, "with"), f"the replacement {with_!r} still reads as the tag "
                                          f"{tag!r}: officers would see it as verified")
            return None
        return tag.strip(), with_.strip()

    def exception(self, doc: Located, path: PathKey, raw: Any,
                  rule_ids: Collection[str]) -> RuleException | None:
        """One `exceptions:` entry; `rule_ids` are every rule id the files define."""
        if not isinstance(raw, dict):
            self.fail(doc, path, "an exception must be a mapping {id, rules, when, reason, "
                                 "expires}")
            return None
        before = len(self.problems)
        for key in sorted(set(raw) - EXCEPTION_KEYS):
            self.fail(doc, (*path, key), f"unknown exception key {key!r} "
                                         f"(known: {', '.join(sorted(EXCEPTION_KEYS))})")
        exc_id = raw.get("id")
        if not isinstance(exc_id, str) or not _ID.match(exc_id):
            self.fail(doc, (*path, "id"), f"exception id must be lower-case letters, digits, "
                                          f"'.', '_' or '-', got {exc_id!r}")
        names = raw.get("rules")
        if not isinstance(names, list) or not names:
            self.fail(doc, (*path, "rules"), "an exception needs 'rules: [RULE_ID, ...]', "
                                             "the rules it exempts (never all of them)")
            names = []
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in rule_ids:
                self.fail(doc, (*path, "rules", i), f"unknown rule id {name!r} in rules: "
                                                    "(an exception names rules defined in "
                                                    "the rule files)")
        when: Condition | None = None
        if "when" not in raw:
            self.fail(doc, path, "exception has no 'when' conditions")
        else:
            when = self.condition(doc, (*path, "when"), raw["when"])
        reason = raw.get("reason")
        if not isinstance(reason, str) or not reason.strip() or not reason.isprintable():
            self.fail(doc, (*path, "reason"), "an exception needs 'reason: <text>' "
                                              "(why, and who approved it)")
        expires = raw.get("expires")
        day: date | None = None
        if isinstance(expires, date) and not isinstance(expires, datetime):
            day = expires
        elif isinstance(expires, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", expires):
            with contextlib.suppress(ValueError):  # e.g. 2025-02-30: reported below
                day = date.fromisoformat(expires)
        if day is None:
            self.fail(doc, (*path, "expires"), f"an exception needs 'expires: YYYY-MM-DD', "
                                               f"the last day it applies, got {expires!r}")
        if len(self.problems) != before or when is None or day is None:
            return None
        return RuleException(id=str(exc_id), rules=tuple(str(n) for n in names), when=when,
                             reason=" ".join(str(reason).split()), expires=day,
                             file=doc.file, line=doc.line(path))


def builtin_lists(agency_domains: tuple[str, ...], hebahan_senders: tuple[str, ...],
                  relay_networks: tuple[str, ...], hebahan_relays: tuple[str, ...] = (),
                  hebahan_defang: str = HEBAHAN_DEFANG) -> dict[str, tuple[str, ...]]:
    """Lists every rule file can use, taken from the config (`@hebahan_defang`: the one
    text a quoted, unverified [HEBAHAN JANM] becomes)."""
    return {"agency_domains": agency_domains, "hebahan_senders": hebahan_senders,
            "relay_networks": relay_networks, "hebahan_relays": hebahan_relays,
            "hebahan_defang": (hebahan_defang,)}


def load_rules(rules_dir: Path, builtins: Mapping[str, tuple[str, ...]],
               timezone: str | None = None) -> RuleSet:
    """Load every `*.yaml` in `rules_dir` (file-name order) into one RuleSet.

    `timezone`: the IANA zone of the gateway's local date for exceptions' `expires`
    (default DEFAULT_TIMEZONE). Raises LoadError with every problem found."""
    problems: list[Problem] = []
    if not rules_dir.is_dir():
        raise LoadError([Problem(str(rules_dir), 1, "rules_dir is not a directory")])
    files = sorted(p for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    docs: list[Located] = []
    for path in files:
        try:
            docs.append(load_file(path))
        except LoadError as exc:
            problems.extend(exc.problems)
    lists: dict[str, tuple[str, ...]] = dict(builtins)
    list_origin: dict[str, str] = {name: "the config" for name in builtins}
    for doc in docs:
        if doc.data is None:
            continue
        if not isinstance(doc.data, dict):
            problems.append(doc.problem((), "a rule file must be a mapping with "
                                            "'lists', 'rules' and/or 'exceptions'"))
            continue
        for key in sorted(set(doc.data) - {"lists", "rules", "exceptions"}):
            problems.append(doc.problem((key,), f"unknown top-level key {key!r} "
                                                "(known: exceptions, lists, rules)"))
        raw_lists = doc.data.get("lists", {}) or {}
        if not isinstance(raw_lists, dict):
            problems.append(doc.problem(("lists",), "lists must be a mapping of name: [items]"))
            continue
        for name, items in raw_lists.items():
            at = ("lists", name)
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                problems.append(doc.problem(at, f"bad list name {name!r}"))
            elif name in lists:
                problems.append(doc.problem(at, f"list {name!r} is already defined in "
                                                f"{list_origin[name]}"))
            elif not isinstance(items, list) or not all(
                    isinstance(i, str | int) and not isinstance(i, bool) for i in items):
                problems.append(doc.problem(at, f"list {name!r} must be a list of strings"))
            elif any(str(i).startswith("@") for i in items):
                problems.append(doc.problem(at, f"list {name!r}: lists cannot refer to lists"))
            else:
                lists[name] = tuple(str(i) for i in items)
                list_origin[name] = doc.file
    builder = _Builder(lists)
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    declared: set[str] = set()
    for doc in docs:
        if not isinstance(doc.data, dict):
            continue
        raw_rules = doc.data.get("rules", []) or []
        if not isinstance(raw_rules, list):
            problems.append(doc.problem(("rules",), "rules must be a list"))
            continue
        for i, raw in enumerate(raw_rules):
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                declared.add(raw["id"])  # a rule with other problems is still named
            rule = builder.rule(doc, ("rules", i), raw)
            if rule is None:
                continue
            if rule.id in seen:
                first = seen[rule.id]
                builder.fail(doc, ("rules", i, "id"), f"duplicate rule id {rule.id!r} "
                                                      f"(first at {first.file}:{first.line})")
                continue
            seen[rule.id] = rule
            rules.append(rule)
    exceptions: list[RuleException] = []
    exception_ids: dict[str, RuleException] = {}
    for doc in docs:
        if not isinstance(doc.data, dict):
            continue
        raw_exceptions = doc.data.get("exceptions", []) or []
        if not isinstance(raw_exceptions, list):
            problems.append(doc.problem(("exceptions",), "exceptions must be a list"))
            continue
        for i, raw in enumerate(raw_exceptions):
            entry = builder.exception(doc, ("exceptions", i), raw, declared)
            if entry is None:
                continue
            if entry.id in exception_ids:
                first_entry = exception_ids[entry.id]
                builder.fail(doc, ("exceptions", i, "id"),
                             f"duplicate exception id {entry.id!r} "
                             f"(first at {first_entry.file}:{first_entry.line})")
                continue
            exception_ids[entry.id] = entry
            exceptions.append(entry)
    problems.extend(builder.problems)
    if problems:
        raise LoadError(problems)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    ruleset = RuleSet(rules=tuple(rules), lists=lists, files=tuple(str(f) for f in files),
                      version=digest.hexdigest()[:12],
                      agency_domains=tuple(builtins.get("agency_domains", ())),
                      exceptions=tuple(exceptions), timezone=timezone or DEFAULT_TIMEZONE)
    _ = ruleset.change_plan  # decided here, at load, not by the first message
    return ruleset
