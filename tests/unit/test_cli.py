"""The command line as an administrator runs it: `python -m gateway ...` in a real process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK_KEYS = {"action", "smtp_code", "enhanced_code", "text", "rule_id", "classification",
              "matched", "subject", "attachments"}


# `check` runs on the shipped config without its antivirus: block (no clamd here; the
# antivirus rules through `check` are tests/unit/test_antivirus.py's).
NO_ANTIVIRUS: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def _no_antivirus_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("config") / "gateway.yaml"
    text = (REPO / "config" / "gateway.yaml").read_text(encoding="utf-8")
    path.write_text(re.sub(r"(?m)^antivirus:\n(?:  .*\n)*", "", text), encoding="utf-8")
    NO_ANTIVIRUS[:] = [path]


def gateway(*args: str, stdin: bytes | None = None, cwd: Path = REPO
            ) -> subprocess.CompletedProcess[str]:
    if args[:1] == ("check",) and "--config" not in args and NO_ANTIVIRUS:
        args = ("check", "--config", str(NO_ANTIVIRUS[0]), *args[1:])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "gateway", *args], input=stdin,
                          capture_output=True, cwd=cwd, env=env, timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"))


def message(subject: str, *, sender: str = "ali@anm.gov.my", to: str = "pegawai@jpn.gov.my",
            body: str = "Salam sejahtera.\n", attachment: tuple[str, bytes] | None = None
            ) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = "<t1@anm.gov.my>"
    m.set_content(body)
    if attachment is not None:
        name, data = attachment
        m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m.as_bytes()


def check_json(tmp_path: Path, raw: bytes, *args: str) -> dict[str, object]:
    path = tmp_path / "m.eml"
    path.write_bytes(raw)
    proc = gateway("check", "--json", *args, str(path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == CHECK_KEYS
    assert isinstance(result, dict)
    return result


def test_rules_check_accepts_the_shipped_rules() -> None:
    proc = gateway("rules", "check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: ")
    assert proc.stderr == ""


def test_rules_check_reports_file_and_line_for_a_broken_copy(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))
    broken = rules / "40-hebahan.yaml"
    text = broken.read_text(encoding="utf-8")
    lines = text.splitlines()
    regex_line = next(i for i, x in enumerate(lines, 1) if "subject_matches:" in x)
    broken.write_text(text.replace("subject_matches: '(?i)", "subject_matches: '(?i)(", 1),
                      encoding="utf-8")
    (rules / "60-extra.yaml").write_text(
        "rules:\n  - id: x\n    when: {message_size_over: 1MB}\n    action: reject\n",
        encoding="utf-8")
    config = tmp_path / "gateway.yaml"
    config.write_text((REPO / "config" / "gateway.yaml").read_text(encoding="utf-8")
                      .replace("rules_dir: rules", f"rules_dir: {rules}"), encoding="utf-8")
    proc = gateway("rules", "check", "--config", str(config))
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"{broken}:{regex_line}: ")
    assert err[1].startswith(f"{rules / '60-extra.yaml'}:2: ")


def test_rules_check_reports_config_problems(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text((REPO / "config" / "gateway.yaml").read_text(encoding="utf-8")
                      + "\nlisten_port: 25\n", encoding="utf-8")
    proc = gateway("rules", "check", "--config", str(config))
    assert proc.returncode == 1
    n = len(config.read_text(encoding="utf-8").splitlines())
    assert proc.stderr == f"{config}:{n}: listen_port: unknown key, did you mean listeners?\n"


def test_check_and_serve_refuse_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("listeners: []\nupstream: nowhere\n", encoding="utf-8")
    msg = tmp_path / "m.eml"
    msg.write_bytes(message("x"))
    for args in (("check", "--config", str(config), str(msg)),
                 ("serve", "--config", str(config))):
        proc = gateway(*args)
        assert proc.returncode == 2, args
        assert proc.stderr.startswith(f"{config}:"), proc.stderr
        assert proc.stdout == ""


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert gateway("check", "--direction", "sideways", "x.eml").returncode == 2
    assert gateway("frobnicate").returncode == 2
    assert gateway().returncode == 2
    assert gateway("check", str(tmp_path / "missing.eml")).returncode == 2


def test_check_json_plain_official_mail_is_accepted(tmp_path: Path) -> None:
    r = check_json(tmp_path, message("Mesyuarat Jawatankuasa ICT Bil. 2/2025"))
    assert r["action"] == "accept"
    assert r["smtp_code"] == 250
    assert r["rule_id"] is None
    assert r["classification"] is None
    assert r["matched"] == []
    assert r["subject"] == "Mesyuarat Jawatankuasa ICT Bil. 2/2025"
    assert r["attachments"] == []


def test_check_json_rahsia_is_rejected_without_its_subject(tmp_path: Path) -> None:
    r = check_json(tmp_path, message("[RAHSIA] Pelan Operasi"))
    assert r["action"] == "reject"
    assert (r["smtp_code"], r["enhanced_code"]) == (550, "5.7.1")
    assert r["rule_id"] == "klasifikasi-rahsia"
    assert r["classification"] == "RAHSIA"
    assert r["subject"] is None
    text = r["text"]
    assert isinstance(text, str)
    assert text.startswith("550-5.7.1 Maklumat bertaraf RAHSIA")
    assert "rule=klasifikasi-rahsia ref=" in text.splitlines()[-1]
    assert "Pelan Operasi" not in json.dumps(r)
    matched = r["matched"]
    assert isinstance(matched, list)
    assert matched[0]["rule_id"] == "klasifikasi-rahsia"
    assert set(matched[0]) == {"rule_id", "action", "mode", "evidence"}


def test_check_json_hebahan_subject_is_tagged(tmp_path: Path) -> None:
    raw = message("Mesyuarat Agung", sender="hebahan@anm.gov.my")
    r = check_json(tmp_path, raw)
    assert r["action"] == "accept"
    assert r["subject"] == "[HEBAHAN JANM] Mesyuarat Agung"
    matched = r["matched"]
    assert isinstance(matched, list)
    assert [(m["rule_id"], m["action"]) for m in matched] == [("hebahan-tag", "tag")]


def test_check_json_attachment_fields(tmp_path: Path) -> None:
    data = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    r = check_json(tmp_path, message("Laporan", attachment=("laporan.pdf", data)))
    assert r["attachments"] == [{"filename": "laporan.pdf", "size": len(data),
                                 "detected_type": "application/pdf", "encrypted": False,
                                 "encryption_scheme": None, "unreadable": [],
                                 "macros": {"levels": [], "files": []}}]


def test_check_json_reports_the_encryption_scheme(tmp_path: Path) -> None:
    data = (REPO / "tests" / "corpus" / "fixtures" / "office" /
            "example_password.docx").read_bytes()
    r = check_json(tmp_path, message("Laporan", attachment=("laporan.docx", data)))
    assert [(a["encrypted"], a["encryption_scheme"])
            for a in r["attachments"]] == [(True, "aes")]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("case", "expected"), [
    ("office/odf/Berkata-laluan-lama.odt", [(True, "blowfish")]),
    ("office/legacy/Minit-berkata-laluan.doc", [(True, "rc4")]),
    ("office/legacy/xor_password_123456789012345.xls", [(True, "xor")]),
    ("pdf/Kata-laluan-RC4.pdf", [(True, "pdf-rc4")]),
    ("outlook/Lama-berkata-laluan-winmail.dat", [(True, None), (True, "rc4"), (True, "xor")]),
])
def test_check_json_reports_the_scheme_of_every_format(
        tmp_path: Path, case: str, expected: list[tuple[bool, str | None]]) -> None:
    # Issue 10 item 2: ODF, legacy Office, PDF, and the files inside a TNEF stream.
    path = REPO / "tests" / "corpus" / "cases" / case
    r = check_json(tmp_path, message("Dokumen", attachment=(path.name, path.read_bytes())))
    assert [(a["encrypted"], a["encryption_scheme"])
            for a in r["attachments"]] == expected  # type: ignore[attr-defined]


def test_check_json_reports_the_macro_state(tmp_path: Path) -> None:
    data = (REPO / "tests" / "corpus" / "cases" / "macros" / "Laporan.docx").read_bytes()
    proc = gateway("check", "--json", "--direction", "inbound", "--mail-from",
                   "luar@example.org", "--rcpt", "pegawai@anm.gov.my", "-",
                   stdin=message("Laporan", attachment=("laporan.docx", data)))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["rule_id"] == "makro-autoexec-mencurigakan"
    [attachment] = r["attachments"]
    assert attachment["macros"]["levels"] == ["present", "autoexec", "suspicious"]
    [found] = attachment["macros"]["files"]
    assert found["path"] == "word/vbaProject.bin"
    assert found["autoexec"] == ["AutoOpen"] and "Shell" in found["suspicious"]


def test_check_envelope_options_and_stdin(tmp_path: Path) -> None:
    raw = message("Mesyuarat", sender="ali@anm.gov.my")
    proc = gateway("check", "--json", "--mail-from", "ali@gmail.com", "-", stdin=raw)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["rule_id"] == "pengirim-emel-peribadi"
    # Inbound, the sender rules do not apply.
    proc = gateway("check", "--json", "--direction", "inbound", "--mail-from", "ali@gmail.com",
                   "--rcpt", "ali@anm.gov.my", "--client-ip", "192.0.2.7", "-", stdin=raw)
    assert json.loads(proc.stdout)["action"] == "accept"


def test_check_human_summary(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(message("Mesyuarat", sender="ali@yahoo.com"))
    proc = gateway("check", str(path))
    assert proc.returncode == 0
    assert proc.stdout.startswith("verdict: REJECT 550 5.7.1 (rule pengirim-emel-peribadi)")
    assert "Alamat e-mel persendirian" in proc.stdout


@pytest.mark.parametrize("argv", [["--help"], ["check", "--help"], ["rules", "check", "--help"]])
def test_help_exits_0(argv: list[str]) -> None:
    proc = gateway(*argv)
    assert proc.returncode == 0
    assert "usage: gateway" in proc.stdout
