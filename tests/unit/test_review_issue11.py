"""Review of issue 11: relay control on the address a front end passes on, and the
config's words for the PROXY header timeout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.policy.relay_control import check_rcpt
from gateway.problems import LoadError

AGENCY = ["anm.gov.my"]


@pytest.mark.parametrize(("path", "parsed"), [
    # What aiosmtpd's parser makes of these paths, and the proxy forwarded.
    ("<=?utf-8?q?victim=40evil.example?=@anm.gov.my>", '"victim@evil.example"@anm.gov.my'),
    ("<=?utf-8?q?victim=25evil.example?=@anm.gov.my>", "victim%evil.example@anm.gov.my"),
    ("<victim@=?utf-8?q?evil.example=40anm.gov.my?=>", "victim@evil.example@anm.gov.my"),
    ("<victim@ [192.0.2.1]>", "victim@[192.0.2.1]"),
])
@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_the_address_passed_on_is_checked_for_routing(direction: str, path: str,
                                                      parsed: str) -> None:
    refusal = check_rcpt(direction=direction, recipient=parsed, path=path,
                         agency_domains=AGENCY)
    assert refusal is not None and refusal.rule_id == "relay-address"


def test_domainless_postmaster_is_accepted_inbound() -> None:
    for rcpt in ("Postmaster", "postmaster", "POSTMASTER"):
        assert check_rcpt(direction="inbound", recipient=rcpt, path=f"<{rcpt}>",
                          agency_domains=AGENCY) is None
    refusal = check_rcpt(direction="inbound", recipient="webmaster", path="<webmaster>",
                         agency_domains=AGENCY)
    assert refusal is not None and refusal.rule_id == "relay-access"


def test_proxy_protocol_timeout_message_names_the_upper_bound(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listeners:\n"
        '  - {name: inbound, listen: "127.0.0.1:2526", direction: inbound,\n'
        "     proxy_protocol: {from: [10.0.0.5], timeout: 1000}}\n"
        'upstream: "maildir:var/mail"\nagency_domains: [anm.gov.my]\n')
    with pytest.raises(LoadError) as caught:
        load_config(config)
    text = "\n".join(str(p) for p in caught.value.problems)
    assert "proxy_protocol.timeout" in text and "at most 300" in text, text


# A directory the preflight's access(2) check lets through but that cannot be made (as
# root, under /proc; on NFS with root_squash alike) stopped `gateway serve` with
# "cannot start: [Errno 2] No such file or directory: '/proc/...'": no key, no advice.
@pytest.mark.parametrize(("key", "yaml_line"), [
    ("upstream", 'upstream: "maildir:/proc/gateway-review/mail"'),
    ("rejection_log", "rejection_log: /proc/gateway-review/log/r.jsonl"),
    ("limits.spool_dir", "limits: {spool_dir: /proc/gateway-review/spool}"),
])
def test_serve_names_the_key_of_a_path_it_cannot_create(tmp_path: Path, key: str,
                                                         yaml_line: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10.yaml").write_text("rules: []\n")
    lines = {"upstream": f'upstream: "maildir:{tmp_path / "mail"}"',
             "rejection_log": f"rejection_log: {tmp_path / 'r.jsonl'}",
             "limits.spool_dir": ""}
    lines[key] = yaml_line
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listeners:\n"
        '  - {name: inbound, listen: "127.0.0.1:0", direction: inbound}\n'
        f"agency_domains: [anm.gov.my]\nrules_dir: {rules}\n" + "\n".join(lines.values())
        + "\n")
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert f"{key}:" in done.stderr and "/proc/gateway-review" in done.stderr, done.stderr
    assert "[Errno" not in done.stderr, done.stderr


def test_serve_names_the_listener_it_cannot_bind(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10.yaml").write_text("rules: []\n")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listeners:\n"
        '  - {name: masuk, listen: "192.0.2.1:2526", direction: inbound}\n'
        f'upstream: "maildir:{tmp_path / "mail"}"\nagency_domains: [anm.gov.my]\n'
        f"rules_dir: {rules}\nrejection_log: {tmp_path / 'r.jsonl'}\n")
    done = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "listeners: masuk cannot listen on 192.0.2.1:2526" in done.stderr, done.stderr
    assert "not an address of this machine" in done.stderr, done.stderr
