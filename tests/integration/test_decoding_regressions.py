"""Each decoding fault of issue 10 (items 3, 4, 7, 8) through the front ends as they run.

The corpus (tests/corpus/cases/mime/decoding/, made by make_decoding_cases.py) proves
the verdicts through `gateway.pipeline.inspect`; the front ends since read messages
their own way (the byte-level MIME parse, decoded parts handed over from the spool,
worker processes). So every case goes here, inbound under the shipped rules, through
the SMTP proxy, through the milter behind a real Postfix, and through `gateway check`,
and must get the verdict its sidecar names: base64 past mid-part padding (the
`VHVhbi9QdWFuLAo=` body), an encoding named `Base64 `, quoted-printable soft breaks
with blanks, uuencode, ISO-2022-JP and UTF-7 subjects and bodies, the innocent
ISO-2022-JP file name, an .eml sent as octet-stream, message/partial. And the 9.9 MB
body whose last line is RAHSIA is refused through the proxy.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .postfix_support import Postfix, available, milter_gateway_behind_postfix
from .support import (
    FakeUpstream,
    GatewayFactory,
    GatewayHandle,
    in_thread,
    transaction,
    write_config,
)
from .test_milter_postfix import delivered, through

REPO = Path(__file__).resolve().parents[2]
DECODING = REPO / "tests" / "corpus" / "cases" / "mime" / "decoding"
SENDER, RCPT = "luar@example.org", "pegawai@anm.gov.my"  # the corpus's inbound envelope


def _cases() -> list[tuple[str, bytes, str, str | None]]:
    """(name, message, outcome, rule) of every decoding case with an inbound verdict."""
    found = []
    for sidecar in sorted(DECODING.glob("*.eml.expect.yaml")):
        expect: dict[str, Any] = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
        if "outcome_inbound" not in expect:
            continue
        eml = sidecar.with_name(sidecar.name.removesuffix(".expect.yaml"))
        raw = eml.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        found.append((eml.name, raw, expect["outcome_inbound"], expect.get("rule_inbound")))
    return found


CASES = _cases()


def test_the_cases_are_there() -> None:
    names = {name for name, *_ in CASES}
    assert len(CASES) >= 20
    assert {"base64-padding-mid-body.eml", "iso-2022-jp-filename-variants.eml",
            "message-partial.eml", "utf-7-subject.eml", "uuencoded-in-body.eml"} <= names


def _judge(name: str, code: int, text: str, outcome: str, rule: str | None) -> None:
    expected = {"accept": 2, "reject": 5, "tempfail": 4}[outcome]
    assert code // 100 == expected, (name, code, text)
    if rule is not None:
        assert f"rule={rule} ref=" in text, (name, text)


def _shipped_rules(tmp_path: Path) -> None:
    shutil.copytree(REPO / "rules", tmp_path / "rules", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("examples"))


async def test_each_decoding_case_through_the_proxy(
        tmp_path: Path, make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    _shipped_rules(tmp_path)
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []")
    accepted = 0
    for name, raw, outcome, rule in CASES:
        code, text = await in_thread(functools.partial(
            transaction, gw.inbound, raw, mail_from=SENDER, rcpts=(RCPT,)))
        _judge(name, code, text.decode(errors="replace"), outcome, rule)
        accepted += outcome == "accept"
    assert len(upstream.messages) == accepted


async def test_a_marking_on_the_last_line_of_a_large_body_through_the_proxy(
        tmp_path: Path, make_gateway: GatewayFactory, upstream: FakeUpstream) -> None:
    """Issue 10 item 8: the scan stopped after 8 Mi characters and relayed this."""
    _shipped_rules(tmp_path)
    gw = await make_gateway(upstream=f"smtp://127.0.0.1:{upstream.port}", rules="rules: []",
                            limits={"inspection_timeout": 30.0})
    line = b"Laporan kemajuan projek bagi suku tahun ketiga tahun semasa.\r\n"
    body = line * (9_900_000 // len(line)) + b"RAHSIA\r\n"
    raw = (f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: Laporan suku tahun\r\n"
           "Message-ID: <besar@example.org>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode() + body
    assert len(raw) > 9_800_000
    code, text = await in_thread(lambda: transaction(gw.inbound, raw, mail_from=SENDER,
                                                     rcpts=(RCPT,)))
    _judge("large body", code, text.decode(), "reject", "klasifikasi-rahsia")
    assert upstream.messages == []


@pytest.fixture
async def postfix_milter(tmp_path: Path, upstream: FakeUpstream
                         ) -> AsyncIterator[tuple[GatewayHandle, Postfix]]:
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    path = write_config(tmp_path, upstream=f"maildir:{tmp_path / 'mail'}", rules="rules: []",
                        relay_networks=["127.0.0.5/32"])
    _shipped_rules(tmp_path)
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["listeners"] = [{"name": "milter", "listen": "127.0.0.1:0",
                            "direction": "inbound", "mode": "milter"}]
    path.write_text(yaml.safe_dump(config))
    async with milter_gateway_behind_postfix(path, upstream.port) as (gw, postfix):
        yield gw, postfix


async def test_each_decoding_case_through_the_milter_behind_postfix(
        postfix_milter: tuple[GatewayHandle, Postfix], upstream: FakeUpstream) -> None:
    gw, postfix = postfix_milter
    accepted = 0
    for name, raw, outcome, rule in CASES:
        code, text = await through(postfix, raw, SENDER, [RCPT])
        _judge(name, code, text, outcome, rule)
        if outcome == "accept":
            accepted += 1
            await delivered(upstream, accepted, postfix)
        else:
            assert gw.records()[-1]["rule_id"] == rule, name
    assert len(upstream.messages) == accepted


@pytest.fixture(scope="module")
def no_antivirus_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped config without its antivirus block (no clamd here)."""
    config = yaml.safe_load((REPO / "config" / "gateway.yaml").read_text(encoding="utf-8"))
    config.pop("antivirus", None)
    config["rules_dir"] = str(REPO / config["rules_dir"])
    path = tmp_path_factory.mktemp("config") / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "raw", "outcome", "rule"), CASES,
                         ids=[name for name, *_ in CASES])
def test_each_decoding_case_through_gateway_check(
        tmp_path: Path, no_antivirus_config: Path, name: str, raw: bytes, outcome: str,
        rule: str | None) -> None:
    path = tmp_path / name
    path.write_bytes(raw)
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--json", "--config",
         str(no_antivirus_config), "--direction", "inbound", "--mail-from", SENDER,
         "--rcpt", RCPT, str(path)],
        capture_output=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60)
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["action"] == outcome, (name, verdict)
    assert verdict["rule_id"] == rule, (name, verdict)
