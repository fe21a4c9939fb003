"""Antivirus through a real clamd (tests/support/clamd.py), the SHIPPED rules and config.

The whole path as the front ends run it (`gateway.pipeline.inspect`: view, engine with
the lazy clamd scan, verdict, reply), `gateway check --json` on .eml files in a real
process, and the clamd protocol module on its own. Signatures are the tests' own
(EICAR body signature, a hash signature of a test file, a body signature of a marker).
Failure modes: clamd stopped, clamd silent (timeout), clamd's ERROR reply
(StreamMaxLength), a part over max_size under each oversize policy: never a pass.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from gateway.antivirus import clamd
from gateway.config import AntivirusSettings, load_config
from gateway.envelope import Envelope
from gateway.pipeline import Inspection, inspect
from gateway.policy_state import PolicyState, load_policy_for
from gateway.problems import LoadError
from tests.support.clamd import (
    EICAR,
    EICAR_SIGNATURE,
    MARKER,
    MARKER_SIGNATURE,
    TEST_FILE,
    TEST_FILE_SIGNATURE,
    Clamd,
    SilentClamd,
)

REPO = Path(__file__).resolve().parents[2]
SENDER = "ali@anm.gov.my"
RCPT = "pegawai@jpn.gov.my"
ENV = Envelope(direction="outbound", listener="outbound", client_ip="127.0.0.1",
               helo="client.example", mail_from=SENDER, rcpt_to=(RCPT,))


@pytest.fixture(scope="module")
def av() -> Iterator[Clamd]:
    with Clamd() as daemon:
        yield daemon


def shipped(address: str | None, **settings: Any) -> PolicyState:
    """The shipped config and rules, antivirus pointed at `address` (None: no antivirus:)."""
    config = load_config(REPO / "config" / "gateway.yaml")
    antivirus = None if address is None else AntivirusSettings(clamd=address, **settings)
    return load_policy_for(config.model_copy(update={"rules_dir": REPO / config.rules_dir,
                                                     "antivirus": antivirus}))


def mail(*attachments: tuple[str, str, bytes], body: str = "Salam sejahtera.\n",
         subject: str = "Laporan") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = SENDER, RCPT, subject
    m["Message-ID"] = "<av@anm.gov.my>"
    m.set_content(body)
    for name, ctype, data in attachments:
        main, sub = ctype.split("/")
        m.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return m.as_bytes(policy=SMTP)


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return out.getvalue()


def forwarded(inner: bytes) -> bytes:
    """A message that forwards `inner` as a message/rfc822 attachment."""
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = SENDER, RCPT, "Fwd: Laporan"
    m.set_content("Sila lihat mesej yang dimajukan.\n")
    outer = m.as_bytes(policy=SMTP).decode()
    boundary = "==fwd-boundary=="
    head, _, text = outer.partition("\r\n\r\n")
    head = re.sub(r"Content-Type: [^\r\n]+", f'Content-Type: multipart/mixed; '
                  f'boundary="{boundary}"', head)
    head = re.sub(r"\r\nContent-Transfer-Encoding: [^\r\n]+", "", head)
    return (head + "\r\n\r\n" + f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n" + text
            + f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n"
            "Content-Disposition: attachment; filename=\"asal.eml\"\r\n\r\n").encode() \
        + inner + f"\r\n--{boundary}--\r\n".encode()


def odd_base64(name: str, data: bytes) -> bytes:
    """An attachment in base64 with lines of 7, 61, 3, 76... characters (all legal)."""
    encoded = base64.b64encode(data).decode()
    lines: list[str] = []
    at, widths = 0, (7, 61, 3, 76, 13, 44)
    while at < len(encoded):
        width = widths[len(lines) % len(widths)]
        lines.append(encoded[at:at + width])
        at += width
    return (f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: Data\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
            "Content-Type: text/plain\r\n\r\nLampiran.\r\n--b1\r\n"
            f'Content-Type: application/octet-stream; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n" + "\r\n".join(lines)
            + "\r\n--b1--\r\n").encode()


def scan_of(got: Inspection) -> dict[str, Any]:
    evidence: dict[str, Any] = dict(got.verdict.evidence)
    return evidence


# -- the protocol module -------------------------------------------------------------
def test_clamd_addresses() -> None:
    assert str(clamd.parse_address("unix:/run/clamav/clamd.ctl")) == \
        "unix:/run/clamav/clamd.ctl"
    assert clamd.parse_address("tcp://127.0.0.1:3310") == clamd.ClamdAddress(
        None, "127.0.0.1", 3310)
    assert clamd.parse_address("tcp://[::1]:3310").host == "::1"
    for bad in ("clamd.ctl", "unix:relative.sock", "tcp://host", "tcp://h:0", "3310"):
        with pytest.raises(ValueError, match="clamd"):
            clamd.parse_address(bad)


def test_ping_and_instream_over_tcp() -> None:
    with Clamd(tcp=True) as daemon:
        address = clamd.parse_address(daemon.address)
        assert address.host == "127.0.0.1"
        clamd.ping(address, 5)
        deadline = time.monotonic() + 10
        assert clamd.instream(address, EICAR, deadline) == EICAR_SIGNATURE
        assert clamd.instream(address, TEST_FILE, deadline) == TEST_FILE_SIGNATURE
        assert clamd.instream(address, b"x" * 200_000 + MARKER, deadline) == MARKER_SIGNATURE
        assert clamd.instream(address, TEST_FILE + b" ", deadline) is None  # hash: exact
        assert clamd.instream(address, b"", deadline) is None


def test_replies() -> None:
    assert clamd.parse_reply("stream: OK") is None
    assert clamd.parse_reply("stream: Win.Test.EICAR_HDB-1 FOUND") == "Win.Test.EICAR_HDB-1"
    with pytest.raises(clamd.ClamdError) as info:
        clamd.parse_reply("INSTREAM size limit exceeded. ERROR")
    assert info.value.kind == "error"
    with pytest.raises(clamd.ClamdError) as info:
        clamd.parse_reply("PONG")
    assert info.value.kind == "protocol"


# -- the shipped rules on real clamd -------------------------------------------------
@pytest.mark.parametrize(("case", "raw", "signature", "where"), [
    ("zip", mail(("laporan.zip", "application/zip", zipped("dalam/eicar.txt", EICAR))),
     EICAR_SIGNATURE, {"part": "attachment", "filename": "laporan.zip"}),
    ("hash", mail(("minit.bin", "application/octet-stream", TEST_FILE)),
     TEST_FILE_SIGNATURE, {"part": "attachment", "filename": "minit.bin"}),
    ("forwarded", forwarded(mail(("dalam.zip", "application/zip",
                                  zipped("m.bin", os.urandom(3000) + MARKER)))),
     MARKER_SIGNATURE, {"part": "attachment", "filename": "dalam.zip"}),
    ("odd-base64", odd_base64("data.bin", os.urandom(5000) + MARKER + os.urandom(333)),
     MARKER_SIGNATURE, {"part": "attachment", "filename": "data.bin"}),
    ("body", mail(body="Teks biasa.\n" + EICAR.decode() + "\n"),
     EICAR_SIGNATURE, {"part": "message"}),
])
def test_virus_is_rejected_with_the_signature_as_evidence(
        av: Clamd, case: str, raw: bytes, signature: str, where: dict[str, str]) -> None:
    for direction in ("outbound", "inbound"):
        env = Envelope(direction=direction, listener=direction,
                       client_ip="192.0.2.9" if direction == "inbound" else "127.0.0.1",
                       helo="client.example", mail_from=SENDER, rcpt_to=(RCPT,))
        got = inspect(shipped(av.address), raw, env)
        assert got.verdict.rule_id == "perisian-hasad-virus", (case, got.verdict.hits)
        assert got.reply is not None and (got.reply.code, got.reply.enhanced) == (554, "5.7.1")
        assert got.relay_bytes is None
        found = scan_of(got)["virus"]
        assert {f["signature"] for f in found} == {signature}
        # The forwarded message is an attachment itself, and so is the file inside it.
        assert where in [{k: f.get(k) for k in where} for f in found], found


def test_clean_mail_passes_after_one_scan_of_each_part(av: Clamd) -> None:
    raw = mail(("laporan.zip", "application/zip", zipped("a.txt", b"Laporan bersih.\n")),
               ("minit.bin", "application/octet-stream", TEST_FILE + b"\n"))
    got = inspect(shipped(av.address), raw, ENV)
    assert got.verdict.rule_id is None and got.reply is None, got.verdict.hits
    assert got.relay_bytes == raw


def test_virus_false_holds_for_a_clean_scan(av: Clamd, tmp_path: Path) -> None:
    """The evidence of a clean scan: every attachment and the message, once each."""
    policy = shipped(av.address)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10.yaml").write_text(
        "rules:\n  - id: bersih\n    when: {virus: false}\n    action: add_header\n"
        "    header: {name: X-Imbasan, value: bersih}\n")
    policy = load_policy_for(policy.config.model_copy(update={"rules_dir": rules}))
    got = inspect(policy, mail(("a.txt", "text/plain", b"a\n"), ("b.txt", "text/plain", b"b\n")),
                  ENV)
    assert got.verdict.hits[0].evidence == {"clamd": av.address, "scanned": 3}


def test_clamd_stopped_mid_test_is_a_tempfail(tmp_path: Path) -> None:
    raw = mail(("a.txt", "text/plain", b"Laporan.\n"))
    with Clamd() as daemon:
        policy = shipped(daemon.address)
        assert inspect(policy, raw, ENV).reply is None
        daemon.stop()
        got = inspect(policy, raw, ENV)
    assert got.verdict.rule_id == "perisian-hasad-imbasan-gagal", got.verdict.hits
    assert got.reply is not None and (got.reply.code, got.reply.enhanced) == (451, "4.7.0")
    assert scan_of(got)["failure"].startswith("unreachable: clamd at unix:")
    # A virus in a message while clamd is down is tempfailed too, never passed.
    bad = mail(("x.zip", "application/zip", zipped("e.txt", EICAR)))
    assert inspect(policy, bad, ENV).verdict.rule_id == "perisian-hasad-imbasan-gagal"


def test_silent_clamd_times_out_within_the_configured_time() -> None:
    with SilentClamd() as silent:
        policy = shipped(silent.address, timeout=1.5)
        started = time.monotonic()
        got = inspect(policy, mail(("a.txt", "text/plain", b"a\n")), ENV)
        took = time.monotonic() - started
        assert silent.connections == 1  # both antivirus rules read the one scan
    assert got.verdict.rule_id == "perisian-hasad-imbasan-gagal"
    assert got.reply is not None and got.reply.code == 451
    assert scan_of(got)["failure"].startswith("timeout:")
    assert scan_of(got)["failed_part"] == {"part": "attachment", "index": 0,
                                           "filename": "a.txt"}
    assert 1.4 < took < 4.0


def test_scan_is_lazy_a_message_refused_earlier_is_not_scanned() -> None:
    with SilentClamd() as silent:
        got = inspect(shipped(silent.address, timeout=1.0),
                      mail(subject="RAHSIA: Pelan"), ENV)
        assert got.verdict.rule_id == "klasifikasi-rahsia"
        assert silent.connections == 0


def test_clamd_error_reply_is_a_tempfail() -> None:
    """max_size above clamd's StreamMaxLength: clamd's own `... ERROR` reply."""
    with Clamd(tcp=True, stream_max="1M") as daemon:
        policy = shipped(daemon.address, max_size="4MB")
        got = inspect(policy, mail(("besar.bin", "application/octet-stream",
                                    os.urandom(2 * 1024 * 1024))), ENV)
    assert got.verdict.rule_id == "perisian-hasad-imbasan-gagal", got.verdict.hits
    assert scan_of(got)["failure"] == \
        "error: clamd answered 'INSTREAM size limit exceeded. ERROR'"


def test_oversize_tempfail_policy(av: Clamd) -> None:
    got = inspect(shipped(av.address, max_size="64KB", oversize="tempfail"),
                  mail(("besar.bin", "application/octet-stream", os.urandom(100_000))), ENV)
    assert got.verdict.rule_id == "perisian-hasad-imbasan-gagal"
    assert got.reply is not None and (got.reply.code, got.reply.enhanced) == (451, "4.7.0")
    assert scan_of(got)["failure"] == \
        "oversize: 100000 bytes, more than antivirus.max_size (65536 bytes)"


def test_oversize_skip_policy_logs_and_scans_the_rest(av: Clamd) -> None:
    policy = shipped(av.address, max_size="64KB", oversize="skip")
    clean = mail(("besar.bin", "application/octet-stream", os.urandom(100_000)),
                 ("kecil.txt", "text/plain", b"ok\n"))
    got = inspect(policy, clean, ENV)
    assert got.reply is None
    hit = [h for h in got.verdict.hits if h.rule_id == "perisian-hasad-tidak-diimbas"]
    assert hit and hit[0].mode == "monitor" and got.verdict.event == "monitor"
    assert hit[0].evidence["skipped"] == [
        {"part": "attachment", "index": 0, "filename": "besar.bin", "size": 100_000},
        {"part": "message", "size": len(clean)}]
    infected = mail(("besar.bin", "application/octet-stream", os.urandom(100_000)),
                    ("kecil.zip", "application/zip", zipped("e.txt", EICAR)))
    assert inspect(policy, infected, ENV).verdict.rule_id == "perisian-hasad-virus"


def test_a_message_over_max_size_is_scanned_without_its_scanned_attachments(
        av: Clamd) -> None:
    # Regression (issue 13 review): each attachment under max_size but the message over
    # it (base64 grows a third) was tempfailed on every retry though all was scanned.
    policy = shipped(av.address, max_size="64KB", oversize="tempfail")
    clean = mail(("a.bin", "application/octet-stream", os.urandom(40_000)),
                 ("b.bin", "application/octet-stream", os.urandom(40_000)))
    assert len(clean) > 64 * 1024
    got = inspect(policy, clean, ENV)
    assert got.reply is None and got.verdict.rule_id is None, got.verdict.evidence
    # What is left is still scanned: a virus in the body text is found there.
    infected = mail(("a.bin", "application/octet-stream", os.urandom(40_000)),
                    ("b.bin", "application/octet-stream", os.urandom(40_000)),
                    body=EICAR.decode() + "\n")
    got = inspect(policy, infected, ENV)
    assert got.verdict.rule_id == "perisian-hasad-virus"
    assert scan_of(got)["virus"][0]["part"] == "message"


def test_without_antivirus_config_nothing_is_scanned_and_the_rules_never_hold() -> None:
    got = inspect(shipped(None), mail(("x.zip", "application/zip", zipped("e.txt", EICAR))),
                  ENV)
    assert got.reply is None
    assert not [h for h in got.verdict.hits if h.rule_id.startswith("perisian-hasad")]


# -- the command line ----------------------------------------------------------------
def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=60)


def config_text(antivirus: str | None) -> str:
    text = (REPO / "config" / "gateway.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^antivirus:\n(?:  .*\n)*", "", text)
    return text if antivirus is None else text + f"\nantivirus: {antivirus}\n"


def test_check_json_on_eml_files(av: Clamd, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(config_text(f'{{clamd: "{av.address}", timeout: 10}}'))
    infected = tmp_path / "virus.eml"
    infected.write_bytes(mail(("laporan.zip", "application/zip", zipped("e.txt", EICAR))))
    clean = tmp_path / "bersih.eml"
    clean.write_bytes(mail(("laporan.txt", "text/plain", b"Laporan.\n")))
    proc = gateway("check", "--json", "--config", str(config), str(infected))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["action"], result["smtp_code"], result["enhanced_code"], result["rule_id"]) \
        == ("reject", 554, "5.7.1", "perisian-hasad-virus")
    evidence = result["matched"][-1]["evidence"]
    assert evidence["virus"][0]["signature"] == EICAR_SIGNATURE
    assert evidence["virus"][0]["filename"] == "laporan.zip"
    proc = gateway("check", "--json", "--config", str(config), str(clean))
    assert json.loads(proc.stdout)["action"] == "accept"
    # clamd unreachable: the check says tempfail and why.
    config.write_text(config_text(f'{{clamd: "unix:{tmp_path}/tiada.sock"}}'))
    proc = gateway("check", "--json", "--config", str(config), str(clean))
    result = json.loads(proc.stdout)
    assert (result["action"], result["smtp_code"], result["rule_id"]) == \
        ("tempfail", 451, "perisian-hasad-imbasan-gagal")
    assert result["matched"][-1]["evidence"]["failure"].startswith("unreachable:")


def test_rules_check_says_whether_mail_is_scanned(tmp_path: Path) -> None:
    proc = gateway("rules", "check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith(
        "antivirus: clamd at unix:/run/clamav/clamd.ctl (timeout 30s, max_size 26214400 "
        "bytes, oversize tempfail); rules: perisian-hasad-virus, perisian-hasad-imbasan-gagal")
    config = tmp_path / "gateway.yaml"
    config.write_text(config_text(None))
    proc = gateway("rules", "check", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1] == (
        "antivirus: NOT CONFIGURED (no antivirus: in the config): no message is scanned for "
        "viruses (rules perisian-hasad-virus, perisian-hasad-imbasan-gagal, "
        "perisian-hasad-tidak-diimbas never hold)")


@pytest.mark.parametrize(("value", "message"), [
    ('{clamd: "/run/clamav/clamd.ctl"}', "antivirus.clamd: bad clamd address"),
    ('{clamd: "unix:/x", oversize: reject}', "antivirus.oversize"),
    ('{clamd: "unix:/x", max_size: 25XB}', "antivirus.max_size"),
    ('{clamd: "unix:/x", timeout: 60}', "antivirus.timeout (60s) must be shorter than "
                                        "limits.inspection_timeout (60s)"),
    ('{clamd: "unix:/x", socket: "/y"}', "antivirus.socket: unknown key"),
])
def test_config_errors_name_the_line(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config_text(value))
    line = len(path.read_text().splitlines())
    with pytest.raises(LoadError) as info:
        load_config(path)
    problems = [str(p) for p in info.value.problems]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:{line}: "), problems
    assert message in problems[0], problems
