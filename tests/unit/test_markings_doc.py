"""docs/markings.md is executable: every row of its example tables is checked here.

A table whose header is `| where | text | marking |` (optionally `| at |`) is an
example table; each row builds a message as the `where` column says and checks the
highest marking (and the `at`, when given). A row this test cannot read fails it, so
the page cannot hold an example that is not checked.
"""

from __future__ import annotations

import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.message.view import MessageView

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "markings.md"
CASES = REPO / "tests" / "corpus" / "cases"
HEADER = re.compile(r"^\|\s*where\s*\|\s*text\s*\|\s*marking\s*\|(\s*at\s*\|)?\s*$")
LEVELS = {"RAHSIA BESAR", "RAHSIA", "SULIT", "TERHAD"}


def _cells(line: str) -> list[str]:
    # `\|` inside a cell is a literal bar (Markdown table escaping).
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def _code(cell: str) -> str:
    m = re.fullmatch(r"`(.*)`", cell)
    assert m, f"text must be in backticks: {cell!r}"
    return m.group(1)


def rows() -> list[tuple[int, list[str]]]:
    found: list[tuple[int, list[str]]] = []
    lines = DOC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if HEADER.match(lines[i]):
            i += 2  # the header and the |---| line
            while i < len(lines) and lines[i].startswith("|"):
                found.append((i + 1, _cells(lines[i])))
                i += 1
        i += 1
    return found


ROWS = rows()


def build(where: str, text: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Pegawai <pegawai@anm.gov.my>"
    msg["To"] = "penerima@example.org"
    subject = "Makluman"
    body = "Salam sejahtera.\n\nSila ambil maklum.\n"
    if where == "subject":
        subject = text
    elif where == "body line":
        body = f"Salam sejahtera.\n\n{text}\n\nSekian, terima kasih.\n"
    msg["Subject"] = "Makluman" if where == "subject" else subject
    msg.set_content(body)
    if where == "file name":
        msg.add_attachment(b"Isi biasa.\n", maintype="text", subtype="plain", filename=text)
    elif where == "forwarded subject":
        inner = EmailMessage()
        inner["From"] = "pegawai@anm.gov.my"
        inner["Subject"] = text
        inner.set_content("Isi mesej asal.\n")
        msg.add_attachment(inner)
    elif where == "document":
        path = CASES / text
        msg.add_attachment(path.read_bytes(), maintype="application",
                           subtype="octet-stream", filename=path.name)
    raw = msg.as_bytes(policy=email.policy.SMTP)
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if where == "subject":
        # As written, so that an RFC 2047 example reaches the decoder as it is.
        head = re.sub(rb"(?m)^Subject: .*$", b"Subject: " + text.encode("utf-8"), head)
    elif where == "header":
        head += b"\r\n" + text.encode("utf-8")
    return head + sep + rest


def test_the_doc_has_examples() -> None:
    kinds = {cells[0] for _n, cells in ROWS}
    assert {"subject", "body line", "header", "file name", "forwarded subject",
            "document"} <= kinds
    assert len(ROWS) >= 30


@pytest.mark.parametrize(("lineno", "cells"), ROWS,
                         ids=[f"markings.md:{n}" for n, _c in ROWS])
def test_example(lineno: int, cells: list[str]) -> None:
    assert len(cells) in (3, 4), f"markings.md:{lineno}: {cells}"
    where, text, marking = cells[0], _code(cells[1]), cells[2]
    assert marking == "none" or marking in LEVELS, f"markings.md:{lineno}: {marking!r}"
    view = MessageView(build(where, text))
    expected = None if marking == "none" else marking
    assert view.classification == expected, (lineno, view.markings.found)
    if len(cells) == 4 and cells[3]:
        at = _code(cells[3])
        assert at in {str(f.where.get("at")) for f in view.markings.found}, \
            (lineno, view.markings.found)
