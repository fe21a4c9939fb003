"""How values the client chose appear in the service journal's `key=value` lines.

The journal lines (`... from=<%s> action=reject rule=... reply=550 ...`) are read by
administrators and parsed by their tools. An envelope sender is the client's to
choose: a quoted local part may hold spaces, `>`, `=` and, as aiosmtpd lets it
through, a bare CR, so written raw it could add fields (`action=relay`) to a line
about a refused message, or make journalctl show the line as "[blob data]". `value`
writes such text so that it stays one field: every control, bidi or invisible
character as a visible escape (`report.printable`, as `gateway report` shows it), and
space, `<`, `>` and `=` as `\\x20`, `\\x3c`, `\\x3e`, `\\x3d`.
"""

from __future__ import annotations

from gateway.observe.report import printable

_FIELD_BREAKERS = str.maketrans({" ": "\\x20", "<": "\\x3c", ">": "\\x3e", "=": "\\x3d"})


def value(text: str) -> str:
    """`text` as one journal field value (module docstring); plain text is unchanged."""
    return printable(text).translate(_FIELD_BREAKERS)
