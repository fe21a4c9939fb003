"""The `gateway` command line: serve, check, rules check/diff, report (CONTRACT.md), log find,
tls dev-cert.

Exit status: 0 on success (for `check`, whatever the verdict); 1 when `rules
check` finds problems; 2 on a usage or config error. Config and rule problems are
printed one per line as `FILE:LINE: message` on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import antivirus
from gateway.envelope import Envelope
from gateway.message import headers as hdr
from gateway.message.documents import LimitExceeded
from gateway.message.passwords import mask as mask_passwords
from gateway.message.passwords import mask_evidence
from gateway.message.view import Attachment, MessageView
from gateway.observe import report
from gateway.observe.incidents import incident_rule
from gateway.observe.incidents import status as incidents_status
from gateway.observe.rejection_log import redact
from gateway.pipeline import inspect
from gateway.policy import lint, replies
from gateway.policy_state import PolicyState, load_policy
from gateway.problems import LoadError

DEFAULT_CONFIG = Path("config/gateway.yaml")
# A classified message's text never leaves the gateway, not even on a terminal.
_CLASSIFIED = frozenset({"RAHSIA", "RAHSIA BESAR"})


def _print_problems(exc: LoadError) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)


# -- serve ---------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        load_policy(args.config)  # refuse a bad config before binding any socket
    except LoadError as exc:
        _print_problems(exc)
        return 2
    from gateway.service import serve

    return serve(args.config)


# -- check ---------------------------------------------------------------------------
def _read_message(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def _attachments(view: MessageView) -> list[dict[str, Any]]:
    # A password written in a file name is not printed (passwords.mask).
    return [{"filename": mask_passwords(a.filename, view.secret_values), "size": a.size,
             "detected_type": a.detected_type,
             "encrypted": a.encrypted, "encryption_scheme": a.encryption_scheme,
             "unreadable": _unreadable(a), "macros": _macros(a)}
            for a in view.attachments]


def _macros(attachment: Attachment) -> dict[str, object] | None:
    """The attachment's Office macros (documents.macros.MacroState.as_dict: `levels`
    [] for none, and per file its levels and keywords); None when its documents are
    beyond the inspection bounds."""
    try:
        return attachment.macros.as_dict()
    except LimitExceeded:
        return None


def _unreadable(attachment: Attachment) -> list[str] | None:
    """Where the attachment has no text to read ([] when none); None when its documents
    are beyond the inspection bounds (the verdict already says so)."""
    try:
        return list(attachment.unreadable)
    except LimitExceeded:
        return None


def check_result(policy: PolicyState, raw: bytes, *, direction: str, mail_from: str | None,
                 rcpt: Sequence[str], client_ip: str, helo: str = "localhost"
                 ) -> dict[str, Any]:
    """The contract's `check --json` object for one message.

    Besides the contract's keys, `auth` (present only when a rule evaluated them)
    holds the SPF/DMARC results: the only network I/O of `check`, DNS through the
    config's `dns:`; `labels` and `unknown_labels` (present only when the message
    carries a Purview sensitivity label): every label met, `{id, name, enabled, at,
    marking, by}`, and those enabled that are no marking.
    """
    received = MessageView(raw, classification_headers=policy.config.classification_headers,
                           label_map=policy.config.label_map)
    if mail_from is None:
        mail_from = received.from_addresses[0] if received.from_addresses else ""
    mail_from = "" if mail_from.strip() in ("", "<>") else mail_from.strip().strip("<>")
    if not rcpt:
        rcpt = hdr.addresses(received.header_values("To") + received.header_values("Cc"))
    envelope = Envelope(direction="inbound" if direction == "inbound" else "outbound",
                        listener="check", client_ip=client_ip, helo=helo,
                        mail_from=mail_from, rcpt_to=tuple(r.strip().strip("<>") for r in rcpt))
    try:
        inspection = inspect(policy, raw, envelope)
    except Exception as exc:  # fail closed, as the proxy does: the message is tempfailed
        print(f"gateway check: the message could not be inspected: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        reply = replies.not_inspectable("check")
        return {"action": "tempfail", "smtp_code": reply.code, "enhanced_code": reply.enhanced,
                "text": replies.render(reply), "rule_id": None, "classification": None,
                "matched": [], "subject": None, "attachments": []}
    verdict, view = inspection.verdict, inspection.view
    classification = verdict.classification or view.classification
    secret = classification in _CLASSIFIED
    if inspection.reply is None:
        action = "accept"
        reply = replies.accepted()
        relayed = inspection.relay_bytes if inspection.relay_bytes is not None else raw
        subject: str | None = MessageView(relayed).subject
    else:
        reply = inspection.reply
        action = "tempfail" if reply.code < 500 else "reject"
        subject = view.subject
    secrets = view.secret_values
    matched = [{"rule_id": h.rule_id, "action": h.action, "mode": h.mode,
                "evidence": redact(dict(h.evidence)) if secret
                else mask_evidence(dict(h.evidence), secrets)}
               for h in verdict.hits]
    result: dict[str, Any] = {
        "action": action, "smtp_code": reply.code, "enhanced_code": reply.enhanced,
        "text": replies.render(reply), "rule_id": verdict.rule_id,
        "classification": classification, "matched": matched,
        # A password written in the subject is not printed (passwords.mask).
        "subject": None if secret or subject is None else mask_passwords(subject, secrets),
        "attachments": _attachments(view)}
    # Purview sensitivity labels met (gateway.message.labels), mapped or not, present
    # only when the message has one: an enabled label that is no marking (not in
    # `label_map`, its name no marking) is in `unknown_labels` too, for the administrator
    # to map. Names and places withheld for RAHSIA mail.
    labels = [seen.as_dict() for seen in view.markings.labels]
    if labels:
        if secret:
            labels = [redact(label) for label in labels]
        result["labels"] = labels
        result["unknown_labels"] = [label for label in labels
                                    if label["enabled"] and label["marking"] is None]
    if verdict.auth is not None:
        result["auth"] = dict(verdict.auth)
    incidents = policy.config.incidents
    if incidents is not None and incident_rule(policy.rules, verdict) is not None:
        # A refusal by an `incident: true` rule: the gateway would tell these contacts
        # (present only with `incidents:` in the config, as CONTRACT.md's keys stay).
        result["incident"] = {"rule_id": verdict.rule_id, "to": list(incidents.to)}
    if verdict.exemptions:
        # Rules that would have applied but for an exception (id and reason, or except:).
        result["exceptions"] = [e.as_dict() for e in verdict.exemptions]
    return result


def _human(result: dict[str, Any]) -> str:
    lines = [f"verdict: {result['action'].upper()} {result['smtp_code']} "
             f"{result['enhanced_code']}"
             + (f" (rule {result['rule_id']})" if result["rule_id"] else "")]
    lines += ["  " + line for line in result["text"].splitlines()]
    lines.append(f"classification: {result['classification'] or '-'}")
    subject = result["subject"]
    lines.append("subject: " + ("(not shown: classified)" if subject is None
                                and result["classification"] in _CLASSIFIED
                                else repr(subject)))
    auth = result.get("auth")
    if auth:
        dkim = " ".join(f"dkim={d['result']} ({d['domain'] or '-'})"
                        for d in auth.get("dkim") or ()) or "dkim=none"
        lines.append(f"sender authentication: spf={auth['spf']} ({auth['spf_domain'] or '-'}) "
                     f"{dkim} dmarc={auth['dmarc']} ({auth['from_domain'] or '-'})")
    for label in result.get("unknown_labels") or ():
        lines.append(f"unknown sensitivity label (not in label_map): {label['id']}"
                     + (f" {label['name']!r}" if label.get("name") else ""))
    if result["matched"]:
        lines.append("matched:")
        for hit in result["matched"]:
            evidence = json.dumps(hit["evidence"], ensure_ascii=False, default=str)
            lines.append(f"  - {hit['rule_id']} ({hit['action']}, {hit['mode']}) {evidence}")
    else:
        lines.append("matched: none")
    incident = result.get("incident")
    if incident:
        lines.append(f"incident: {incident['rule_id']}, told to {', '.join(incident['to'])}")
    for exempt in result.get("exceptions", ()):
        why = ("its own except:" if exempt["exception_id"] is None else
               f"exception {exempt['exception_id']} until {exempt['expires']}: "
               f"{exempt['reason']}")
        lines.append(f"exempted: {exempt['rule_id']} ({why})")
    if result["attachments"]:
        lines.append("attachments:")
        for a in result["attachments"]:
            enc = {True: "encrypted", False: "not encrypted", None: "not inspectable"}[
                a["encrypted"]]
            if a["encryption_scheme"]:
                enc += f" ({a['encryption_scheme']})"
            macros = a.get("macros")
            if macros and macros["levels"]:
                enc += " macros: " + "+".join(macros["levels"])
            lines.append(f"  - {a['filename']!r} {a['size']} bytes {a['detected_type']} {enc}")
    return "\n".join(lines)


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.config)
    except LoadError as exc:
        _print_problems(exc)
        return 2
    try:
        raw = _read_message(args.file)
    except OSError as exc:
        print(f"gateway check: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    result = check_result(policy, raw, direction=args.direction, mail_from=args.mail_from,
                          rcpt=args.rcpt or (), client_ip=args.client_ip, helo=args.helo)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        print(_human(result))
    return 0


# -- rules check ---------------------------------------------------------------------
def _cmd_rules_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.config)
    except LoadError as exc:
        _print_problems(exc)
        return 1
    rules = policy.rules
    modes = {m: sum(1 for r in rules.rules if r.mode == m) for m in ("enforce", "monitor")}
    print(f"OK: {len(rules.rules)} rules ({modes['enforce']} enforce, {modes['monitor']} "
          f"monitor) from {len(rules.files)} files in {policy.config.rules_dir}, "
          f"version {rules.version}")
    print(antivirus.status(policy.config, rules)[1])
    print(incidents_status(policy.config, rules))
    # Valid, but perhaps not what was meant: allowlist accepts, exceptions expiring.
    for warning in lint.warnings(rules, rules.today(), max_message_size_set=(
            policy.config.limits.max_message_size is not None)):
        print(warning, file=sys.stderr)
    return 0


# -- rules diff ----------------------------------------------------------------------
def _cmd_rules_diff(args: argparse.Namespace) -> int:
    from gateway.policy import diff

    if not args.against.is_dir():
        print(f"gateway rules diff: {args.against}: not a directory", file=sys.stderr)
        return 2
    missing = [p for p in args.inputs if not p.exists()]
    if missing:
        for p in missing:
            print(f"gateway rules diff: {p}: no such file or directory", file=sys.stderr)
        return 2
    try:
        live, proposed = diff.load_pair(args.config, args.against)
    except LoadError as exc:
        _print_problems(exc)
        return 2
    directions = diff.DIRECTIONS if args.direction == "both" else (args.direction,)
    progress = sys.stderr.isatty()
    result = diff.DiffResult()
    for saved in diff.saved_messages(args.inputs):
        result.messages += 1
        if progress:
            print(f"\r{result.messages} messages, {result.changed_messages} changed",
                  end="", file=sys.stderr, flush=True)
        problem = saved.error if saved.raw is None else diff.not_a_message(saved.raw)
        if problem is None and saved.raw is not None:
            try:
                changes = diff.diff_message(live, proposed, saved, directions)
            except Exception as exc:  # the proxy would tempfail it with either rule set
                problem = f"could not be inspected: {type(exc).__name__}"
            else:
                result.evaluations += len(directions)
                result.changes.extend(changes)
                for change in changes:
                    if progress:
                        print("\r\033[K", end="", file=sys.stderr)
                    print(change.line(), flush=True)
        if problem is not None:
            result.unreadable.append((saved.label, problem))
            if progress:
                print("\r\033[K", end="", file=sys.stderr)
            print(f"gateway rules diff: {saved.label}: {problem}", file=sys.stderr)
    if progress:
        print("\r\033[K", end="", file=sys.stderr)
    print(result.summary_line())
    return 1 if result.changes else 0


# -- report --------------------------------------------------------------------------
def _cmd_report(args: argparse.Namespace) -> int:
    from gateway.config import DEFAULT_TIMEZONE, time_zone

    # The config gives the time zone and each rule's description and clause; without
    # one (a copy of the logs on an auditor's machine) rules are shown by id only.
    zone, rules = DEFAULT_TIMEZONE, None
    if args.config is not None or DEFAULT_CONFIG.is_file():
        try:
            zone, rules = report.read_rules(args.config or DEFAULT_CONFIG)
        except LoadError as exc:
            _print_problems(exc)
            return 2
    else:
        print(f"warning: no {DEFAULT_CONFIG} (give --config): rules shown by id only, "
              f"times in {DEFAULT_TIMEZONE}", file=sys.stderr)
    try:
        tz = time_zone(args.timezone or zone)
        since = report.parse_when(args.since, tz=tz) if args.since else None
        until = report.parse_when(args.until, end=True, tz=tz) if args.until else None
    except ValueError as exc:
        print(f"gateway report: {exc}", file=sys.stderr)
        return 2
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                       and not os.environ.get("NO_COLOR"))
    fmt = args.format or ("json" if args.json else None)
    html_out = args.html
    if fmt == "html" and html_out is None:
        html_out = "-"

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    summary = report.summarise([Path(p) for p in args.logs], top=args.top, since=since,
                               until=until, on_warning=warn, tz=tz)
    if html_out is not None:
        page = report.to_html(summary, rules)
        if html_out == "-":
            sys.stdout.write(page)
        else:
            try:
                Path(html_out).write_text(page, encoding="utf-8")
            except OSError as exc:
                print(f"gateway report: cannot write {html_out}: {exc.strerror or exc}",
                      file=sys.stderr)
                return 2
            # One line instead of the table (on stderr when stdout carries the JSON).
            print(f"report written to / laporan ditulis ke: {report.printable(html_out)}",
                  file=sys.stderr if fmt in ("json", "table") else sys.stdout)
    if fmt == "json":
        print(json.dumps(report.to_dict(summary, rules), ensure_ascii=False, indent=2))
    elif fmt == "table" or (fmt is None and html_out is None):
        print(report.to_text(summary, rules, color=color))
    return 0


# -- log find ------------------------------------------------------------------------
def _cmd_log_find(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.observe.log_find import default_logs, find
    from gateway.observe.log_privacy import LogKeyError, LogPrivacy, read_key

    if args.subject is None and args.message_id is None:
        print("gateway log find: give --subject TEXT and/or --message-id ID", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except LoadError as exc:
        _print_problems(exc)
        return 2
    try:
        key = read_key(config.log_key_path)
    except LogKeyError as exc:
        print(f"gateway log find: log_key_file: {exc}", file=sys.stderr)
        return 2

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    paths = [Path(p) for p in args.log] if args.log else default_logs(config.rejection_log)
    found = 0
    for record in find(paths, LogPrivacy(key=key), subject=args.subject,
                       message_id=args.message_id, warn=warn):
        found += 1
        print(json.dumps(record, ensure_ascii=False))
    print(f"{found} record(s) found", file=sys.stderr)
    return 0 if found else 1


# -- tls dev-cert ----------------------------------------------------------------------
def _cmd_tls_dev_cert(args: argparse.Namespace) -> int:
    from gateway.tls import ExistingFiles, generate_dev_cert

    # Looked up only here: getfqdn can wait on DNS, which no other command should.
    hostname: str = args.hostname or socket.getfqdn()
    try:
        made = generate_dev_cert(args.out_dir, hostname, args.days, force=args.force)
    except ExistingFiles as exc:
        print(f"gateway tls dev-cert: {exc} already exist(s); use --force to replace",
              file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"gateway tls dev-cert: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    print(f"# self-signed certificate for {hostname}, valid {args.days} days "
          "(development and testing only)")
    print("# add to the config file:")
    print("tls:")
    print(f"  cert: {made.cert}")
    print(f"  key: {made.key}")
    return 0


# -- parser --------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="E-mail policy gateway for Malaysian government agencies.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                       help=f"config file (default: {DEFAULT_CONFIG})")

    serve = sub.add_parser("serve", help="run the SMTP proxy until SIGTERM/SIGINT "
                                         "(SIGHUP reloads the rules)")
    config_arg(serve)
    serve.set_defaults(func=_cmd_serve)

    check = sub.add_parser("check", help="evaluate one message file against the rules")
    config_arg(check)
    check.add_argument("--direction", choices=("inbound", "outbound"), default="outbound",
                       help="which listener's rules apply (default: outbound)")
    check.add_argument("--mail-from", metavar="ADDR", default=None,
                       help="envelope sender (default: the From header's address; "
                            "'<>' for the null sender)")
    check.add_argument("--rcpt", metavar="ADDR", action="append",
                       help="envelope recipient, repeatable (default: To and Cc addresses)")
    check.add_argument("--client-ip", metavar="IP", default="127.0.0.1",
                       help="connecting client's address (default: 127.0.0.1)")
    check.add_argument("--helo", metavar="NAME", default="localhost",
                       help="client's HELO/EHLO name, the SPF identity for the null "
                            "sender (default: localhost)")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.add_argument("file", metavar="FILE", help="message file, '-' for stdin")
    check.set_defaults(func=_cmd_check)

    rules = sub.add_parser("rules", help="rule set commands")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    rules_check = rules_sub.add_parser("check", help="validate the config and every rule file")
    config_arg(rules_check)
    rules_check.set_defaults(func=_cmd_rules_check)
    rules_diff = rules_sub.add_parser(
        "diff", help="what-if replay: verdicts on saved mail that a proposed rule set "
                     "would change (exit 1 if any, 0 if none, 2 on errors)")
    config_arg(rules_diff)
    rules_diff.add_argument("--against", type=Path, required=True, metavar="NEW_RULES_DIR",
                            help="the proposed rules directory (replaces the config's "
                                 "rules_dir)")
    rules_diff.add_argument("--direction", choices=("inbound", "outbound", "both"),
                            default="both", help="which rules apply (default: both, each "
                                                 "message evaluated once per direction)")
    rules_diff.add_argument("inputs", metavar="MAILDIR_OR_MBOX_OR_EML", nargs="+", type=Path,
                            help="Maildirs (cur/, new/), mbox files, .eml files or "
                                 "directories of .eml files")
    rules_diff.set_defaults(func=_cmd_rules_diff)
    rules.set_defaults(func=None, subparser=rules)

    summary = sub.add_parser("report", help="summarise rejection logs (rotated and .gz too)")
    summary.add_argument("--format", choices=("table", "json", "html"), default=None,
                         help="table (default, for a terminal), json, or html (a "
                              "self-contained page on stdout unless --html OUT is given)")
    summary.add_argument("--json", action="store_true", help="same as --format json")
    summary.add_argument("--html", metavar="OUT", default=None,
                         help="write the HTML page to OUT ('-' for stdout) instead of "
                              "printing the table")
    summary.add_argument("--config", type=Path, default=None,
                         help=f"config file whose timezone and rules the report uses "
                              f"(default: {DEFAULT_CONFIG} if present)")
    summary.add_argument("--timezone", metavar="ZONE", default=None,
                         help="IANA time zone for times and days, e.g. UTC (default: the "
                              "config's timezone, else Asia/Kuala_Lumpur)")
    summary.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                         help="colour each event in the table (auto: when stdout is a "
                              "terminal and NO_COLOR is unset)")
    summary.add_argument("--since", metavar="WHEN", default=None,
                         help="only records at or after WHEN: YYYY-MM-DD or an RFC 3339 "
                              "time (in the report's time zone unless it has an offset)")
    summary.add_argument("--until", metavar="WHEN", default=None,
                         help="only records at or before WHEN; a date includes that whole day")
    summary.add_argument("--top", type=int, default=10, metavar="N",
                         help="how many sender domains to list (default: 10)")
    summary.add_argument("logs", metavar="LOG", nargs="+", help="rejection log files")
    summary.set_defaults(func=_cmd_report)

    logs = sub.add_parser("log", help="rejection log commands")
    logs_sub = logs.add_subparsers(dest="log_command", metavar="SUBCOMMAND")
    log_find = logs_sub.add_parser(
        "find", help="print the records of a message by subject and/or Message-ID, also "
                     "where the log keeps only their keyed hash (exit 1 if none)")
    config_arg(log_find)
    log_find.add_argument("--subject", metavar="TEXT", default=None,
                          help="the subject as the user sees it (case and spacing ignored)")
    log_find.add_argument("--message-id", metavar="ID", default=None,
                          help="the Message-ID, with or without <>")
    log_find.add_argument("--log", metavar="PATH", action="append",
                          help="a log file to search, repeatable (default: the config's "
                               "rejection_log and its rotated copies)")
    log_find.set_defaults(func=_cmd_log_find)
    logs.set_defaults(func=None, subparser=logs)

    tls = sub.add_parser("tls", help="TLS commands")
    tls_sub = tls.add_subparsers(dest="tls_command", metavar="SUBCOMMAND")
    dev_cert = tls_sub.add_parser(
        "dev-cert", help="write a self-signed certificate and key for STARTTLS (testing only)")
    dev_cert.add_argument("--out-dir", type=Path, default=Path("config/tls"), metavar="DIR",
                          help="where gateway.crt and gateway.key go (default: config/tls)")
    dev_cert.add_argument("--hostname", default=None, metavar="NAME",
                          help="DNS name or IP address the certificate is for "
                               "(default: this machine's name)")
    dev_cert.add_argument("--days", type=int, default=365, metavar="N",
                          help="validity in days (default: 365)")
    dev_cert.add_argument("--force", action="store_true", help="replace existing files")
    dev_cert.set_defaults(func=_cmd_tls_dev_cert)
    tls.set_defaults(func=None, subparser=tls)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on usage errors, 0 after --help
        return exc.code if isinstance(exc.code, int) else 2
    func = getattr(args, "func", None)
    if func is None:
        (getattr(args, "subparser", None) or parser).print_help(sys.stderr)
        return 2
    result: int = func(args)
    return result
