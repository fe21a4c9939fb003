"""`gateway serve` as a real process: start, serve, SIGHUP reload (bad and good), SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

from .support import SIZE_RULE, FakeUpstream, client, in_thread, message, write_config

BLOCK_OTHER = SIZE_RULE.replace("blocked.anm.gov.my", "other.anm.gov.my")
BROKEN = SIZE_RULE.replace("sender_domain:", "sender_domian:")


class Process:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def wait_for_line(self, pattern: str, after: int = 0, timeout: float = 5.0
                            ) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for line in self.lines[after:]:
                m = rx.search(line)
                if m:
                    return m
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.lines))


def mail_from(addr: tuple[str, int], sender: str) -> int:
    s = client(addr)
    try:
        s.mail(sender)
        s.rcpt("b@example.com")
        return s.data(message(sender=sender))[0]
    finally:
        s.close()


async def test_serve_reload_and_stop(tmp_path: Path, upstream: FakeUpstream) -> None:
    config = write_config(tmp_path, upstream=f"smtp://127.0.0.1:{upstream.port}")
    rule_file = tmp_path / "rules" / "10-test.yaml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(config),
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path)
    p = Process(proc)
    try:
        m = await p.wait_for_line(r"listener outbound \(outbound\) listening on "
                                  r"127\.0\.0\.1:(\d+)")
        addr = ("127.0.0.1", int(m.group(1)))
        assert await in_thread(lambda: mail_from(addr, "a@anm.gov.my")) == 250
        assert await in_thread(lambda: mail_from(addr, "x@blocked.anm.gov.my")) == 550

        rule_file.write_text(BROKEN)
        mark = len(p.lines)
        proc.send_signal(signal.SIGHUP)
        await p.wait_for_line(re.escape(str(rule_file)) + r":\d+: .*sender_domian", mark)
        # The old rules stay in force.
        assert await in_thread(lambda: mail_from(addr, "x@blocked.anm.gov.my")) == 550

        rule_file.write_text(BLOCK_OTHER)
        mark = len(p.lines)
        proc.send_signal(signal.SIGHUP)
        await p.wait_for_line(r"policy reloaded", mark)
        assert await in_thread(lambda: mail_from(addr, "x@blocked.anm.gov.my")) == 250
        assert await in_thread(lambda: mail_from(addr, "y@other.anm.gov.my")) == 550

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(p._reader, 5)
    assert len(upstream.messages) == 2


async def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, upstream="maildir:mail", rules=BROKEN)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--config", str(config),
        stderr=asyncio.subprocess.PIPE, cwd=tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 2
    assert re.search(r"10-test\.yaml:\d+: .*sender_domian", err.decode())

