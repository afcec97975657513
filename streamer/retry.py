"""The one retry policy of the daemon: exponential backoff with jitter and a cap, and sleep-or-stop.

Every loop that waits for something outside (an IPS company, the Kafka broker, topic creation, the
WSDL) uses :class:`Backoff` for its delays and :func:`sleep_or_stop` to wait, so that a stop request
ends every wait at once and all retries follow the same rule:

    delay(n) = min(cap, initial * multiplier ** (n - 1)) * uniform(1 - jitter, 1 + jitter), <= cap

``n`` counts consecutive failures from 1. Jitter spreads the retries of many companies (or many
instances) so that they do not hit a recovering server in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "Backoff",
    "Stopped",
    "jittered",
    "sleep_or_stop",
    "stop_shortened_wait_for",
    "until_stopped",
]

_T = TypeVar("_T")

#: A source of uniform floats in [a, b]; ``random.uniform`` unless a test pins it.
Uniform = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with multiplicative jitter and a cap."""

    initial_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0
    #: Relative spread: 0.5 draws each delay from [0.5, 1.5] x the nominal delay.
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")

    def nominal(self, failures: int) -> float:
        """The delay after ``failures`` consecutive failures, before jitter."""
        if failures < 1:
            return 0.0
        # Cap the exponent first: 2 ** 10_000 is a float overflow.
        exponent = min(failures - 1, 64)
        return min(self.max_s, self.initial_s * self.multiplier**exponent)

    def delay(self, failures: int, uniform: Uniform = random.uniform) -> float:
        """The jittered delay after ``failures`` consecutive failures, never above the cap."""
        return min(self.max_s, jittered(self.nominal(failures), self.jitter, uniform))


def jittered(seconds: float, jitter: float, uniform: Uniform = random.uniform) -> float:
    """``seconds`` spread by +/- ``jitter`` (a fraction); 0 jitter returns it unchanged."""
    if jitter <= 0 or seconds <= 0:
        return seconds
    return seconds * uniform(1.0 - jitter, 1.0 + jitter)


async def sleep_or_stop(stop: asyncio.Event, seconds: float, *, grid_s: float = 0.0) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; return True when stopped.

    With ``grid_s`` > 0 the wake-up moves later, to the next multiple of ``grid_s`` on the event
    loop's clock (by less than ``grid_s``): timer coalescing. Loops that fall due in the same
    slot then wake in one event-loop iteration instead of one process wake-up each; on a busy
    2-core machine an isolated wake-up costs far more CPU than the same work done back to back.
    """
    if stop.is_set():
        return True
    if seconds > 0:
        loop = asyncio.get_running_loop()
        when = loop.time() + seconds
        if grid_s > 0:
            when = math.ceil(when / grid_s) * grid_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(when):
                await stop.wait()
    return stop.is_set()


class Stopped(Exception):
    """A stop request ended a wait before it finished."""


async def until_stopped(stop: asyncio.Event, awaitable: Awaitable[_T]) -> _T:
    """Await ``awaitable`` unless ``stop`` is set first; then cancel it and raise :class:`Stopped`.

    For the waits whose own timeout is longer than a shutdown may take (a client connecting to a
    broker that accepts TCP but never answers waits a whole request timeout).
    """
    task = asyncio.ensure_future(awaitable)
    if stop.is_set():
        task.cancel()
    else:
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
    if task.cancelled() or not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise Stopped("stopped while waiting")
    return task.result()


async def stop_shortened_wait_for(
    awaitable: Awaitable[_T], timeout_s: float, stop: asyncio.Event | None, after_stop_s: float
) -> _T:
    """``asyncio.wait_for(awaitable, timeout_s)``, except that once ``stop`` is set the awaitable
    has at most ``after_stop_s`` left; TimeoutError when either runs out (no ``stop``: the plain
    timeout).

    For work that may take long while running (a commit to a slow broker) but must not hold a
    shutdown: a process manager's grace period is shorter than a Kafka request timeout.
    """
    if stop is None:
        return await asyncio.wait_for(awaitable, timeout_s)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s) as deadline:
        active = True  # the callback may run after the block has left (then: nothing to do)

        def shorten(_: object) -> None:
            when = loop.time() + after_stop_s
            current = deadline.when()
            if active and not deadline.expired() and (current is None or when < current):
                deadline.reschedule(when)

        watcher = asyncio.ensure_future(stop.wait())
        watcher.add_done_callback(lambda w: None if w.cancelled() else shorten(w))
        try:
            return await awaitable
        finally:
            active = False
            watcher.cancel()
