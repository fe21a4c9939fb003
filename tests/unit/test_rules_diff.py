"""`gateway rules diff`: what-if replay of a Maildir, an mbox and .eml files built here."""

from __future__ import annotations

import mailbox
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.cli import main

LIVE_RULES = """\
lists:
  personal_domains: [gmail.com, yahoo.com]
rules:
  - id: blok-zip
    description: "Arkib zip tidak dibenarkan"
    reference: "test"
    direction: both
    when: {attachment_name_matches: '(?i)\\.zip$'}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Zip ditolak.", en: "Zip refused."}}
"""

# Adds a rule (outbound gmail senders refused), a tag and a monitor rule.
PROPOSED_EXTRA = """\
rules:
  - id: blok-gmail
    description: "Emel peribadi"
    reference: "test"
    direction: outbound
    when: {from_domain: "@personal_domains"}
    action: reject
    reply: {code: 550, enhanced: "5.7.1", text: {ms: "Peribadi.", en: "Personal."}}
  - id: tag-mesyuarat
    description: "Tanda mesyuarat"
    reference: "test"
    direction: inbound
    when: {subject_matches: '(?i)mesyuarat'}
    action: tag
    tag: "[MESYUARAT]"
"""


def message(sender: str, subject: str, *, zip_name: str | None = None,
            msgid: str = "") -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "penerima@anm.gov.my"
    m["Subject"] = subject
    m["Message-ID"] = msgid or f"<{subject.replace(' ', '-')}@test>"
    m.set_content("Salam.\n")
    if zip_name:
        m.add_attachment(b"PK\x05\x06" + b"\0" * 18, maintype="application",
                         subtype="zip", filename=zip_name)
    return m.as_bytes()


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    live = tmp_path / "rules"
    live.mkdir()
    (live / "10-live.yaml").write_text(LIVE_RULES, encoding="utf-8")
    same = tmp_path / "rules-same"
    shutil.copytree(live, same)
    proposed = tmp_path / "rules-new"
    shutil.copytree(live, proposed)
    (proposed / "20-new.yaml").write_text(PROPOSED_EXTRA, encoding="utf-8")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listeners:\n  - {name: out, listen: \"127.0.0.1:0\", direction: outbound}\n"
        "upstream: \"maildir:" + str(tmp_path / "mail") + "\"\n"
        "agency_domains: [anm.gov.my]\nrelay_networks: [127.0.0.0/8]\n"
        f"rules_dir: {live}\nrejection_log: {tmp_path / 'rej.jsonl'}\n",
        encoding="utf-8")
    maildir = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.eml").write_bytes(message("Ali <ali@gmail.com>", "laporan",
                                                    msgid="<gmail-1@test>"))
    (maildir / "cur" / "2.eml:2,S").write_bytes(message("siti@anm.gov.my", "biasa"))
    (maildir / "cur" / "3.eml:2,S").write_bytes(b"\x00\x01\x02 not mail at all\n")
    mbox_path = tmp_path / "arkib.mbox"
    box = mailbox.mbox(mbox_path)
    box.add(message("siti@anm.gov.my", "dengan zip", zip_name="data.zip"))
    box.add(message("luar@contoh.example", "Jemputan mesyuarat"))
    box.close()
    eml = tmp_path / "satu.eml"
    eml.write_bytes(message("siti@anm.gov.my", "hanya teks"))
    return {"config": config, "same": same, "proposed": proposed, "maildir": maildir,
            "mbox": mbox_path, "eml": eml, "live": live}


def run(s: dict[str, Path], against: Path, *extra: str) -> list[str]:
    return ["rules", "diff", "--config", str(s["config"]), "--against", str(against),
            *extra, str(s["maildir"]), str(s["mbox"]), str(s["eml"])]


def test_changed_verdicts_name_the_rule_and_exit_1(
        setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run(setup, setup["proposed"])) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[-1] == ("6 messages, 2 changed (2 verdicts: accept->reject 1, tag 1), "
                         "1 unreadable")
    changed = lines[:-1]
    assert len(changed) == 2, out
    gmail = next(x for x in changed if "gmail-1@test" in x)
    assert gmail.startswith(f"{setup['maildir'] / 'new' / '1.eml'} <gmail-1@test> "
                            "[outbound]: accept/- -> reject/blok-gmail")
    assert gmail.endswith("(changed by: blok-gmail)")
    tag = next(x for x in changed if f"{setup['mbox']}#2" in x)
    assert "[inbound]: accept/- -> accept/-" in tag
    assert "[MESYUARAT]" in tag and tag.endswith("(changed by: tag-mesyuarat)")
    # The corrupt message is reported by name on stderr and counted, not fatal.
    assert f"{setup['maildir'] / 'cur' / '3.eml:2,S'}: not a message" in err
    # The zip message is rejected by both rule sets: not a change.
    assert f"{setup['mbox']}#1" not in out


def test_direction_option_limits_the_evaluation(
        setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run(setup, setup["proposed"], "--direction", "inbound")) == 1
    out = capsys.readouterr().out
    assert "blok-gmail" not in out
    assert out.splitlines()[-1].startswith("6 messages, 1 changed (1 verdicts: tag 1)")


def test_identical_rules_exit_0(setup: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run(setup, setup["same"])) == 0
    out = capsys.readouterr().out
    assert out == "6 messages, 0 changed, 1 unreadable\n"


def test_removing_a_rule_is_a_change_caused_by_it(
        setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "rules-empty"
    empty.mkdir()
    (empty / "00.yaml").write_text("lists:\n  personal_domains: [gmail.com]\n",
                                   encoding="utf-8")
    assert main(run(setup, empty, "--direction", "outbound")) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if f"{setup['mbox']}#1" in x)
    assert "[outbound]: reject/blok-zip -> accept/- (changed by: blok-zip)" in line


def test_broken_proposed_rules_exit_2_with_file_and_line(
        setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    broken = setup["proposed"] / "20-new.yaml"
    text = broken.read_text(encoding="utf-8")
    line = next(i for i, x in enumerate(text.splitlines(), 1) if "subject_matches" in x)
    broken.write_text(text.replace("(?i)mesyuarat", "(?i)(mesyuarat"), encoding="utf-8")
    assert main(run(setup, setup["proposed"])) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{broken}:{line}: "), err


def test_usage_errors_exit_2(setup: dict[str, Path], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run(setup, tmp_path / "nowhere")) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["rules", "diff", "--config", str(setup["config"]), "--against",
                 str(setup["same"]), str(tmp_path / "missing.mbox")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["rules", "diff", "--config", str(setup["config"]),
                 str(setup["eml"])]) == 2  # --against is required
    assert "--against" in capsys.readouterr().err
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("listeners: []\n", encoding="utf-8")
    assert main(["rules", "diff", "--config", str(bad_config), "--against",
                 str(setup["same"]), str(setup["eml"])]) == 2
    assert capsys.readouterr().err.startswith(f"{bad_config}:")


def test_directory_of_eml_files(setup: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "a.eml").write_bytes(message("x@yahoo.com", "a", msgid="<yahoo@test>"))
    (folder / "notes.txt").write_bytes(b"not read: not an .eml\n")
    assert main(["rules", "diff", "--config", str(setup["config"]), "--against",
                 str(setup["proposed"]), str(folder)]) == 1
    out = capsys.readouterr().out
    assert "<yahoo@test> [outbound]: accept/- -> reject/blok-gmail" in out
    assert out.splitlines()[-1].startswith("1 messages, 1 changed")


def test_progress_counter_only_on_a_terminal(setup: dict[str, Path]) -> None:
    import os
    import pty
    import subprocess
    import sys

    args = [sys.executable, "-m", "gateway", *run(setup, setup["same"])]
    piped = subprocess.run(args, capture_output=True, timeout=120, check=False)
    assert piped.returncode == 0
    assert b"\r" not in piped.stderr
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=follower, timeout=120,
                              check=False)
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    assert b"\r6 messages, 0 changed" in seen
    assert proc.stdout == b"6 messages, 0 changed, 1 unreadable\n"  # stdout untouched


def test_a_reworded_reply_is_a_change(setup: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    reworded = tmp_path / "rules-reworded"
    shutil.copytree(setup["live"], reworded)
    path = reworded / "10-live.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Zip refused.", "No zip files."),
                    encoding="utf-8")
    assert main(run(setup, reworded, "--direction", "inbound")) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if f"{setup['mbox']}#1" in x)
    assert "[inbound]: reject/blok-zip -> reject/blok-zip (changed by: blok-zip)" in line
    assert out.splitlines()[-1].startswith("6 messages, 1 changed (1 verdicts: reply 1)")
