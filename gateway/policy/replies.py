"""The one place a decision becomes SMTP reply text (proxy and milter alike).

Rule replies are the rule's own lines (Malay, then English) followed by a line
naming the rule and the log reference. A refusal whose checks name attachments
(`unencrypted_attachments` evidence) also names them, and says what to do when
the attachment is a forwarded message. The gateway's own refusals are built here
too, from `gateway.policy.builtin` (their ids, references and bilingual text), so
their wording is consistent and never carries internals (no exception text, no
paths, no upstream host names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.message.passwords import mask
from gateway.policy import builtin
from gateway.policy.verdict import Reply, Verdict
from gateway.sizes import format_size

# No names from a RAHSIA message leave the gateway, not even towards its sender.
_CLASSIFIED = frozenset({"RAHSIA", "RAHSIA BESAR"})
# An SMTP reply line is at most 512 octets (RFC 5321 4.5.3.1.5): a few short names.
_MAX_NAMED = 3
_MAX_NAME = 60
_FORWARDED_TYPE = "message/rfc822"


def _clean(line: str) -> str:
    # A reply line must never carry CR/LF (reply injection) or control characters.
    return "".join(ch if ch.isprintable() else " " for ch in line).strip()


def render(reply: Reply) -> str:
    """Multi-line SMTP reply, every line repeating the code and enhanced code."""
    lines = [_clean(line) for line in reply.lines] or [""]
    out = []
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append(f"{reply.code}{sep}{reply.enhanced} {line}".rstrip())
    return "\r\n".join(out)


def for_verdict(verdict: Verdict, ref: str) -> Reply | None:
    """The reply for a reject/tempfail verdict, tagged with rule id and ref."""
    if verdict.reply is None:
        return None
    tail = f"rule={verdict.rule_id} ref={ref}" if verdict.rule_id else f"ref={ref}"
    named = () if verdict.classification in _CLASSIFIED else _attachment_lines(verdict.evidence)
    return Reply(verdict.reply.code, verdict.reply.enhanced,
                 (*verdict.reply.lines, *named, tail))


def _shown_name(name: object) -> str:
    # Reply text goes to clients that may not speak SMTPUTF8, and through milters
    # to MTAs that refuse 8-bit reply text: ASCII only, short.
    # A password written in a file name is never shown (passwords.mask).
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in mask(str(name or ""))).strip()
    return text if len(text) <= _MAX_NAME else text[:_MAX_NAME - 3] + "..."


def _attachment_lines(evidence: Mapping[str, Any]) -> tuple[str, ...]:
    """Malay and English lines naming the attachments a check listed, if it listed any.

    Keyed on the evidence the check gives (a list of attachments with `name` and
    `detected_type`), not on rule ids, so every rule on that check names them. A
    forwarded message (message/rfc822) has no document name of its own to show the
    sender, so it is called what it is, with the way to send its content instead.
    """
    listed = evidence.get("unencrypted")
    if not isinstance(listed, Sequence) or isinstance(listed, str) or not listed:
        return ()
    items = [a for a in listed if isinstance(a, Mapping)]
    forwarded = [a for a in items if a.get("detected_type") == _FORWARDED_TYPE]
    files = [_shown_name(a.get("name")) for a in items if a not in forwarded]
    files = [f for f in files if f]
    ms: list[str] = []
    en: list[str] = []
    if files:
        shown = ", ".join(files[:_MAX_NAMED]) + (", ..." if len(files) > _MAX_NAMED else "")
        ms.append(f"Lampiran tidak disulitkan: {shown}.")
        en.append(f"Unencrypted attachment(s): {shown}.")
    if forwarded:
        names = [n for n in (_shown_name(a.get("name")) for a in forwarded) if n]
        which = f" ({', '.join(names[:_MAX_NAMED])})" if names else ""
        ms.append(f"Mesej yang dimajukan{which} tidak disulitkan: lampirkan dokumennya "
                  "sendiri dalam bentuk disulitkan, bukan mesej yang dimajukan.")
        en.append(f"The forwarded message{which} is not encrypted: attach the document "
                  "itself, encrypted, instead of forwarding the message.")
    return (*ms, *en)


def accepted(detail: str = "") -> Reply:
    return Reply(250, "2.0.0", (f"OK {detail}".strip(),))


def size_exceeded(limit: int, ref: str) -> Reply:
    return builtin.SIZE.reply(ref, size=format_size(limit))


def header_too_large(limit: int, ref: str) -> Reply:
    return builtin.HEADER_TOO_LARGE.reply(ref, limit=format_size(limit))


def relay_denied(ref: str) -> Reply:
    return builtin.RELAY_ACCESS.reply(ref)


def sender_not_agency(ref: str) -> Reply:
    return builtin.RELAY_SENDER.reply(ref)


def bad_address(ref: str) -> Reply:
    return builtin.RELAY_ADDRESS.reply(ref)


def too_many_recipients(limit: int) -> Reply:
    return builtin.TOO_MANY_RECIPIENTS.reply(limit=limit)


def internal_error(ref: str) -> Reply:
    return builtin.INTERNAL_ERROR.reply(ref)


def not_inspectable(ref: str) -> Reply:
    return builtin.NOT_INSPECTABLE.reply(ref)


def busy(ref: str) -> Reply:
    # 4.3.2 (RFC 3463: system not accepting network messages): the gateway has no
    # inspection process or memory for the message now; nothing is wrong with it.
    return builtin.BUSY.reply(ref)


def upstream_unavailable(ref: str) -> Reply:
    return builtin.UPSTREAM_UNAVAILABLE.reply(ref)


def upstream_tls_failed(ref: str) -> Reply:
    # 4.7.5 (RFC 3463: cryptographic failure): the message waits rather than travel
    # unencrypted when TLS to the next hop is required or was started.
    return builtin.UPSTREAM_TLS.reply(ref)


def shutting_down() -> Reply:
    return builtin.SHUTTING_DOWN.reply()


def bare_newline(ref: str) -> Reply:
    # RFC 5321 2.3.8: CR and LF only together as CRLF; a next hop may read a bare one
    # as a line end (SMTP smuggling). 5.6.x: a problem with the content (RFC 3463 3.7).
    return builtin.BARE_NEWLINE.reply(ref)


def tls_required() -> Reply:
    return builtin.TLS_REQUIRED.reply()


def command_too_long() -> Reply:
    return builtin.COMMAND_TOO_LONG.reply()


def too_many_connections() -> Reply:
    return builtin.TOO_MANY_CONNECTIONS.reply()


def too_many_commands() -> Reply:
    return builtin.TOO_MANY_COMMANDS.reply()


def too_many_bad_commands() -> Reply:
    return builtin.TOO_MANY_BAD_COMMANDS.reply()


def idle_timeout() -> Reply:
    return builtin.IDLE_TIMEOUT.reply()


def data_too_slow() -> Reply:
    # 4.4.2 (RFC 3463: bad connection): as for an idle client, the session ends.
    return builtin.DATA_TOO_SLOW.reply()
