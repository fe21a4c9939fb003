"""Config `event_loop`: which event loop the gateway runs on (gateway.eventloop)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import eventloop
from gateway.config import load_config
from gateway.problems import LoadError

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
listeners:
  - {name: outbound, listen: "127.0.0.1:0", direction: outbound}
upstream: "maildir:mail"
agency_domains: [anm.gov.my]
"""

uvloop = pytest.importorskip("uvloop")


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG + f"rules_dir: {REPO / 'rules'}\n" + extra, encoding="utf-8")
    return path


def test_default_is_auto_and_values_are_checked(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path)).event_loop == "auto"
    for choice in ("auto", "asyncio", "uvloop"):
        assert load_config(_config(tmp_path, f"event_loop: {choice}\n")).event_loop == choice
    with pytest.raises(LoadError) as info:
        load_config(_config(tmp_path, "event_loop: libuv\n"))
    [problem] = info.value.problems
    assert problem.line == 6
    assert problem.message == "event_loop: must be auto, asyncio or uvloop (got 'libuv')"


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", uvloop.Loop),
    ("uvloop", uvloop.Loop),
    ("asyncio", asyncio.SelectorEventLoop),
])
def test_the_key_selects_the_loop(choice: eventloop.EventLoopChoice, expected: type) -> None:
    loop_type = eventloop.run(_loop_type(), choice)
    assert issubclass(loop_type, expected)
    if choice == "asyncio":
        assert not issubclass(loop_type, uvloop.Loop)


def test_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` fails
    assert eventloop.loop_factory("auto") is asyncio.new_event_loop
    assert eventloop.loop_factory("asyncio") is asyncio.new_event_loop
    with pytest.raises(eventloop.EventLoopUnavailable, match="pip install uvloop"):
        eventloop.loop_factory("uvloop")


def test_serve_refuses_uvloop_when_it_is_missing(tmp_path: Path) -> None:
    config = _config(tmp_path, "event_loop: uvloop\n")
    code = ("import sys; sys.modules['uvloop'] = None; from gateway.cli import main; "
            f"sys.exit(main(['serve', '--config', {str(config)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "event_loop: uvloop, but the uvloop package cannot be imported" in proc.stderr


@pytest.mark.parametrize("choice", ["auto", "asyncio", "uvloop"])
def test_name_for_the_log(choice: eventloop.EventLoopChoice) -> None:
    async def named() -> str:
        return eventloop.name(asyncio.get_running_loop())

    assert eventloop.run(named(), choice) == ("asyncio" if choice == "asyncio" else "uvloop")
