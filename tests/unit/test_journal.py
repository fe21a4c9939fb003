"""Journal field values (gateway.observe.journal): what a client chose stays one field."""

from __future__ import annotations

import pytest

from gateway.observe import journal


@pytest.mark.parametrize(("raw", "shown"), [
    ("pegawai@anm.gov.my", "pegawai@anm.gov.my"),
    ("", ""),
    ('"x> action=relay"@evil.example', '"x\\x3e\\x20action\\x3drelay"@evil.example'),
    ("a\rb\x1b[2Jc", "a\\x0db\\x1b[2Jc"),
    ("\u202eexe.pdf", "\\u202eexe.pdf"),
    ("back\\slash", "back\\\\slash"),
])
def test_value(raw: str, shown: str) -> None:
    assert journal.value(raw) == shown


def test_a_value_never_adds_a_field() -> None:
    forged = '"x> rcpt=1 size=9 action=relay rule=- reply=250 2.0.0\rz"@evil.example'
    line = f"in ref=R1 client=192.0.2.1 from=<{journal.value(forged)}> action=reject"
    assert line.count(" action=") == 1 and "\r" not in line and line.count(">") == 1
