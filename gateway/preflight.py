"""Refuse to start broken: the paths a config names must be usable before anything binds.

A gateway whose rejection log cannot be written, whose spool or Maildir cannot
take a file, or whose rules directory holds no rule file would start, greet
clients and then fail on the first message, or worse, enforce nothing at all.
These are found when the config loads (`gateway serve` exits 2, `gateway rules
check` exits 1, a SIGHUP reload is refused) as `FILE:LINE: key: message`, the
line being that of the key in the config, the message naming the absolute path.

Nothing is created here (`rules check` has no side effects): a missing directory
is fine when it can be made, i.e. its nearest existing ancestor is a writable
directory; the service creates it when it starts. Writability is asked of the
kernel (access(2)), which also answers for read-only mounts; root passes every
permission check, so for root only a path through a file, a read-only file system
or a missing directory that cannot be made are found.

The DKIM signing key (`dkim_sign.key_file`) is read and tried here too: missing,
unreadable, readable by other users, encrypted or no private key is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.config import GatewayConfig
from gateway.problems import Problem
from gateway.transforms import dkim_sign
from gateway.yamlsource import Located

RULE_SUFFIXES = (".yaml", ".yml")


def _absolute(path: Path) -> Path:
    # Relative config paths resolve against the working directory (CONTRACT.md).
    return Path(os.path.abspath(path))


def _writable_dir(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def directory_problem(path: Path) -> str | None:
    """Why files cannot be created in directory `path` (made first if missing), or None."""
    path = _absolute(path)
    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory"
        return None if _writable_dir(path) else f"{path} is not writable"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.is_symlink() or not ancestor.is_dir():
        return f"{path} cannot be created: {ancestor} is not a directory"
    if not _writable_dir(ancestor):
        return f"{path} does not exist and cannot be created: {ancestor} is not writable"
    return None


def file_problem(path: Path) -> str | None:
    """Why `path` cannot be opened for appending (created if missing), or None."""
    path = _absolute(path)
    if path.is_dir():
        return f"{path} is a directory"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    if os.path.lexists(path):
        return f"{path} is a dangling symbolic link"
    why = directory_problem(path.parent)
    return None if why is None else f"cannot create {path}: {why}"


def rules_dir_problem(rules_dir: Path) -> str | None:
    """Why `rules_dir` gives no rules to enforce (missing, not a directory, no rule file)."""
    path = _absolute(rules_dir)
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is not a directory"
    try:
        found = any(p.suffix in RULE_SUFFIXES and p.is_file() for p in path.iterdir())
    except OSError as exc:
        return f"{path} cannot be read: {exc.strerror or exc}"
    if not found:
        return (f"no rule file (*.yaml) in {path}: the gateway would enforce nothing; "
                "copy the shipped rules/ there")
    return None


def problems(config: GatewayConfig, doc: Located | None = None,
             file: str = "config") -> list[Problem]:
    """Every path in `config` that would leave a started gateway broken."""
    def problem(key: tuple[str, ...], message: str) -> Problem:
        text = f"{'.'.join(key)}: {message}"
        return doc.problem(key, text) if doc is not None else Problem(file, 1, text)

    out: list[Problem] = []
    why = file_problem(config.rejection_log)
    if why is not None:
        out.append(problem(("rejection_log",), f"the rejection log cannot be written: {why}"))
    if config.limits.spool_dir is not None:
        why = directory_problem(config.limits.spool_dir)
        if why is not None:
            out.append(problem(("limits", "spool_dir"),
                               f"large messages cannot be spooled: {why}"))
    target = config.upstream_target
    if target.kind == "maildir":
        why = directory_problem(target.path)
        for sub in ("tmp", "new", "cur"):
            if why is None and (target.path / sub).exists():
                why = directory_problem(target.path / sub)
        if why is not None:
            out.append(problem(("upstream",), f"cannot deliver into the Maildir: {why}"))
    why = rules_dir_problem(config.rules_dir)
    if why is not None:
        out.append(problem(("rules_dir",), why))
    if config.dkim_sign is not None:
        why = dkim_key_problem(config)
        if why is not None:
            out.append(problem(("dkim_sign", "key_file"), f"cannot sign with DKIM: {why}"))
    return out


def dkim_key_problem(config: GatewayConfig) -> str | None:
    """Why `dkim_sign.key_file` cannot sign (gateway.transforms.dkim_sign.read_key and a
    test signature: missing, unreadable, mode too open, not a private key...), or None."""
    assert config.dkim_sign is not None
    try:
        dkim_sign.Signer.load(config.dkim_sign)
    except dkim_sign.KeyProblem as exc:
        return str(exc)
    return None
