"""The one retry policy: exponential backoff with jitter and a cap, and sleep-or-stop."""

from __future__ import annotations

import asyncio
import math

import pytest

from streamer.retry import (
    Backoff,
    Stopped,
    jittered,
    sleep_or_stop,
    stop_shortened_wait_for,
    until_stopped,
)


def test_nominal_delays_double_up_to_the_cap() -> None:
    """Delays double from initial_s and stop at max_s, also for huge failure counts."""
    b = Backoff(initial_s=1.0, max_s=30.0)
    assert [b.nominal(n) for n in (0, 1, 2, 3, 5, 6, 10_000)] == [0, 1, 2, 4, 16, 30, 30]


def test_jitter_spreads_within_bounds_and_never_past_the_cap() -> None:
    """A jittered delay lies in [1 - j, 1 + j] x nominal and is still capped."""
    b = Backoff(initial_s=2.0, max_s=5.0, jitter=0.5)
    assert b.delay(1, lambda lo, hi: lo) == 1.0
    assert b.delay(1, lambda lo, hi: hi) == 3.0
    assert b.delay(3, lambda lo, hi: hi) == 5.0


def test_jittered_interval_keeps_its_mean() -> None:
    """jittered() with the middle draw returns the interval itself; 0 jitter changes nothing."""
    assert jittered(5.0, 0.1, lambda lo, hi: (lo + hi) / 2) == pytest.approx(5.0)
    assert jittered(5.0, 0.0) == 5.0


@pytest.mark.parametrize(
    "kwargs", [{"initial_s": 0}, {"initial_s": 2, "max_s": 1}, {"jitter": 1.0}, {"multiplier": 0.5}]
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    """A policy that cannot back off sensibly is a ValueError at construction."""
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


async def test_sleep_or_stop_returns_early_when_stopped() -> None:
    """A stop request ends the wait at once and reports it."""
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, stop.set)
    assert await asyncio.wait_for(sleep_or_stop(stop, 3600), 30) is True


async def test_sleep_or_stop_sleeps_when_not_stopped() -> None:
    """Without a stop the wait runs out and reports False."""
    assert await sleep_or_stop(asyncio.Event(), 0.01) is False


async def test_sleep_or_stop_wakes_on_the_grid_never_before_the_time_asked() -> None:
    """With grid_s the wake-up is the first multiple of grid_s at or after the time asked."""
    loop = asyncio.get_running_loop()
    for _ in range(3):
        asked = loop.time() + 0.05
        assert await sleep_or_stop(asyncio.Event(), 0.05, grid_s=0.2) is False
        woke = loop.time()
        slot = math.ceil(asked / 0.2) * 0.2
        # Timers may fire up to the clock's resolution early (uvloop: 1 ms).
        assert woke >= slot - 0.002, (asked, slot, woke)


async def test_until_stopped_returns_the_result_or_cancels_on_stop() -> None:
    """The awaited value comes back; a stop request cancels a wait that would hang."""
    stop = asyncio.Event()
    assert await until_stopped(stop, asyncio.sleep(0, result="done")) == "done"
    hang = asyncio.ensure_future(asyncio.sleep(3600))
    asyncio.get_running_loop().call_later(0.05, stop.set)
    with pytest.raises(Stopped):
        await until_stopped(stop, hang)
    assert hang.cancelled()
    with pytest.raises(Stopped):  # already stopped: not even started
        await until_stopped(stop, asyncio.sleep(3600))


async def test_until_stopped_passes_the_awaited_error_on() -> None:
    """An error of the awaited call is raised as is, not turned into Stopped."""
    with pytest.raises(ZeroDivisionError):
        await until_stopped(asyncio.Event(), asyncio.to_thread(lambda: 1 / 0))


async def test_stop_shortens_a_long_timeout_to_the_grace() -> None:
    """A wait with an hour-long timeout ends with TimeoutError soon after the stop request."""
    stop = asyncio.Event()
    waiting = asyncio.ensure_future(stop_shortened_wait_for(asyncio.sleep(3600), 3600, stop, 0.05))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    started = asyncio.get_running_loop().time()
    stop.set()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(waiting, 30)  # the outer bound only guards the test
    assert asyncio.get_running_loop().time() - started < 30


async def test_stop_shortened_wait_for_returns_and_times_out_like_wait_for() -> None:
    """A result comes back; the plain timeout applies without a stop (or with no stop event)."""
    stop = asyncio.Event()
    assert await stop_shortened_wait_for(asyncio.sleep(0, "x"), 5, stop, 1) == "x"
    with pytest.raises(TimeoutError):
        await stop_shortened_wait_for(asyncio.sleep(3600), 0.01, stop, 60)
    with pytest.raises(TimeoutError):
        await stop_shortened_wait_for(asyncio.sleep(3600), 0.01, None, 60)
