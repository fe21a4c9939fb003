"""ProxySMTP's cached construction is aiosmtpd's own SMTP.__init__, attribute for attribute.

aiosmtpd builds its command, hook and AUTH tables with inspect.getmembers and dir()
on every connection; ProxySMTP finds them once per class (`smtp_proxy._tables`) and
only binds them per connection. These tests build one session each way and compare
every attribute, so an aiosmtpd change that the copy misses fails here, not in
production.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import types
from pathlib import Path
from typing import Any

import aiosmtpd
import pytest

from gateway.config import GatewayConfig
from gateway.frontends import smtp_proxy
from gateway.frontends.smtp_proxy import FAST_INIT_VERSION, ProxyContext, ProxySMTP
from gateway.observe.rejection_log import RejectionLog
from gateway.policy.rules import RuleSet
from gateway.policy_state import PolicyState


def _policy(tmp_path: Path) -> PolicyState:
    config = GatewayConfig.model_validate({
        "listeners": [{"name": "outbound", "listen": "127.0.0.1:0", "direction": "outbound"}],
        "upstream": "maildir:" + str(tmp_path / "mail"), "agency_domains": ["anm.gov.my"],
        "rejection_log": str(tmp_path / "log.jsonl")})
    return PolicyState(config, RuleSet((), {}, (), "v0"))


class _AiosmtpdInit(ProxySMTP):
    aiosmtpd_init = True


def _same(a: Any, b: Any, where: str, pair: tuple[object, object]) -> None:
    """`a` (of the cached session) is `b` (of aiosmtpd's), methods bound to their own."""
    if isinstance(a, types.MethodType):
        assert isinstance(b, types.MethodType), where
        assert a.__func__ is b.__func__, where
        # Bound to the session itself (each to its own), or to the same shared handler.
        assert (a.__self__, b.__self__) == pair or a.__self__ is b.__self__, where
        return
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]", pair)
        return
    if isinstance(a, tuple) and hasattr(a, "_fields"):  # aiosmtpd's _AuthMechAttr
        assert type(a) is type(b), where
        for name, x, y in zip(a._fields, a, b, strict=True):
            _same(x, y, f"{where}.{name}", pair)
        return
    if isinstance(a, functools.partial | asyncio.StreamReader | asyncio.Future) \
            or callable(a) or type(a).__name__ in ("ReferenceType", "ProxyContext"):
        assert type(a) is type(b), where
        return
    assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.skipif(aiosmtpd.__version__ != FAST_INIT_VERSION,
                    reason="another aiosmtpd: ProxySMTP uses aiosmtpd's own __init__")
async def test_cached_init_equals_aiosmtpd_init(tmp_path: Path) -> None:
    ctx = ProxyContext(policy=_policy(tmp_path),
                       rejection_log=RejectionLog(tmp_path / "log.jsonl"))
    listener = ctx.policy.config.listeners[0]
    fast, slow = ProxySMTP(ctx, listener), _AiosmtpdInit(ctx, listener)
    fast_vars, slow_vars = vars(fast), vars(slow)
    assert sorted(fast_vars) == sorted(slow_vars)
    for name in slow_vars:
        if name == "_smtp_methods":
            continue
        _same(fast_vars[name], slow_vars[name], name, (fast, slow))
    # The command table: the same commands, the same methods behind them.
    assert isinstance(fast._smtp_methods, smtp_proxy._Commands)
    assert sorted(fast._smtp_methods) == sorted(slow._smtp_methods)
    for command in slow._smtp_methods:
        _same(dict.__getitem__(fast._smtp_methods, command),
              dict.__getitem__(slow._smtp_methods, command), command, (fast, slow))
    assert isinstance(fast.command_size_limits, collections.defaultdict)

