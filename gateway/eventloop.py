"""The event loop the gateway runs on (config `event_loop`).

`auto` (the default) runs on uvloop, a libuv-based drop-in for asyncio's loop that
makes the SMTP conversation cheaper, when it is installed, and on asyncio's own loop
otherwise; `asyncio` always uses asyncio's loop; `uvloop` requires uvloop and the
gateway refuses to start without it. The choice applies to the single-process
gateway and to each forked worker (gateway.workers); it is read at start-up, so a
change takes effect at the next restart, not at a SIGHUP reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]

T = TypeVar("T")


class EventLoopUnavailable(RuntimeError):
    """`event_loop: uvloop` but the uvloop package cannot be imported."""


def loop_factory(choice: EventLoopChoice) -> LoopFactory:
    """What creates the gateway's event loop for `choice` (EventLoopUnavailable if none)."""
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise EventLoopUnavailable(
                f"event_loop: uvloop, but the uvloop package cannot be imported ({exc}); "
                "install it (pip install uvloop) or set event_loop: auto or asyncio"
            ) from exc
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def name(loop: asyncio.AbstractEventLoop) -> str:
    """"uvloop" or "asyncio": which implementation `loop` is, for the start-up log."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """asyncio.run(main) on the loop `choice` selects."""
    factory = loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
