"""`gateway rules diff` names what changed by what it is: a changed header is shown as a
header change, under "headers", even when the message is also tagged (the same way) by
both rule sets; a changed tag under "tags". Real rule files and a real .eml."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.cli import main

TAG = """\
  - id: tag-mesyuarat
    description: "Tanda mesyuarat"
    reference: "test"
    direction: both
    when: {subject_matches: '(?i)mesyuarat'}
    action: tag
    tag: "[MESYUARAT]"
"""


def header_rule(value: str) -> str:
    return f"""\
  - id: pengepala-semakan
    description: "Pengepala semakan"
    reference: "test"
    direction: both
    when: {{subject_matches: '(?i)mesyuarat'}}
    action: add_header
    header: {{name: X-Semakan, value: "{value}"}}
"""


def setup(tmp_path: Path, live: str, proposed: str) -> list[str]:
    for name, text in (("live", live), ("new", proposed)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "10.yaml").write_text("rules:\n" + text, encoding="utf-8")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        'listeners:\n  - {name: out, listen: "127.0.0.1:0", direction: outbound}\n'
        f'upstream: "maildir:{tmp_path / "mail"}"\nagency_domains: [anm.gov.my]\n'
        f"rules_dir: {tmp_path / 'live'}\nrejection_log: {tmp_path / 'r.jsonl'}\n",
        encoding="utf-8")
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@anm.gov.my", "b@anm.gov.my", "Jemputan mesyuarat"
    m["Message-ID"] = "<m@test>"
    m.set_content("Salam.\n")
    (tmp_path / "m.eml").write_bytes(m.as_bytes())
    return ["rules", "diff", "--config", str(config), "--against", str(tmp_path / "new"),
            "--direction", "outbound", str(tmp_path / "m.eml")]


def test_changed_header_on_a_tagged_message_is_labelled_a_header_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = setup(tmp_path, TAG + header_rule("lama"), TAG + header_rule("baharu"))
    assert main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("[outbound]: accept/- -> accept/- headers [('X-Semakan', 'lama')] "
                           "-> [('X-Semakan', 'baharu')] (changed by: pengepala-semakan)"), out
    assert "tags" not in out[0]
    assert out[-1] == "1 messages, 1 changed (1 verdicts: header 1), 0 unreadable"


def test_new_tag_on_a_message_with_a_header_is_labelled_a_tag_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = setup(tmp_path, header_rule("sama"), TAG + header_rule("sama"))
    assert main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert "accept/- -> accept/- tags [] -> ['[MESYUARAT]'] (changed by: tag-mesyuarat)" \
        in out[0], out
    assert "headers" not in out[0] and "X-Semakan" not in out[0]
