"""The supervisor and the publisher's failure path, in-process: nothing waits forever."""

from __future__ import annotations

import asyncio

import pytest

from streamer.encode import Record
from streamer.kafka import Publisher, PublishError
from streamer.supervisor import Ending, Failure, Supervisor


async def forever() -> None:
    """A service that runs until cancelled."""
    await asyncio.Event().wait()


async def test_finished_when_every_worker_returned() -> None:
    """Workers that return end the run as FINISHED; close() cancels the services."""
    sup = Supervisor(asyncio.Event())
    svc = sup.service("svc", forever())
    sup.worker("w1", asyncio.sleep(0))
    sup.worker("w2", asyncio.sleep(0.01))
    assert await sup.run(drain_timeout_s=30) is Ending.FINISHED
    assert sup.failure is None
    await sup.close()
    assert svc.cancelled()


async def test_a_worker_that_raises_fails_the_run_and_calls_back() -> None:
    """The first exception ends the run as FAILED, names the task, and reaches on_failure."""
    sup = Supervisor(asyncio.Event())
    seen: list[Failure] = []
    sup.on_failure = seen.append

    async def boom() -> None:
        raise RuntimeError("bug")

    other = sup.worker("steady", forever())
    sup.worker("poll:c|1", boom())
    assert await sup.run(drain_timeout_s=30) is Ending.FAILED
    assert sup.failure is not None
    assert sup.failure.task == "poll:c|1"
    assert isinstance(sup.failure.error, RuntimeError)
    assert seen == [sup.failure]
    await sup.close()
    assert other.cancelled()


async def test_a_service_that_returns_early_is_a_failure() -> None:
    """A service ending before any stop request is a failure, even without an exception."""
    sup = Supervisor(asyncio.Event())
    sup.worker("w", forever())
    sup.service("http", asyncio.sleep(0))
    assert await sup.run(drain_timeout_s=30) is Ending.FAILED
    assert sup.failure is not None
    assert sup.failure.task == "http"
    await sup.close()


async def test_a_service_that_returns_after_stop_is_not_a_failure() -> None:
    """Once a stop was requested, a service returning is part of the shutdown."""
    stop = asyncio.Event()
    sup = Supervisor(stop)
    stop.set()
    sup.service("publisher", asyncio.sleep(0))
    sup.worker("w", asyncio.sleep(0.01))
    assert await sup.run(drain_timeout_s=30) is Ending.FINISHED
    await sup.close()


async def test_stop_drains_workers_that_finish() -> None:
    """A stop request waits for workers to finish their cycle and return."""
    stop = asyncio.Event()
    sup = Supervisor(stop)

    async def loop() -> None:
        await stop.wait()
        await asyncio.sleep(0.01)  # the cycle it finishes before returning

    sup.worker("w", loop())
    asyncio.get_running_loop().call_later(0.05, stop.set)
    assert await sup.run(drain_timeout_s=30) is Ending.FINISHED


async def test_stop_with_a_stuck_worker_times_out() -> None:
    """A worker that ignores the stop is reported as DRAIN_TIMEOUT and cancelled by close()."""
    stop = asyncio.Event()
    sup = Supervisor(stop)
    stuck = sup.worker("w", forever())
    stop.set()
    assert await sup.run(drain_timeout_s=0.05) is Ending.DRAIN_TIMEOUT
    await sup.close()
    assert stuck.cancelled()


class _BrokenPublisher(Publisher):
    """A publisher whose commit loop dies on its first batch (a bug nobody expected)."""

    async def _connect_until_ready(self, *, mark_healthy: bool = True) -> None:
        self._healthy.set()

    async def _commit(self, group: object) -> None:
        raise RuntimeError("unexpected")


async def test_publisher_loop_death_fails_every_waiting_batch() -> None:
    """If the commit loop dies, every caller waiting in publish() gets PublishError at once."""
    pub = _BrokenPublisher({}, "txn")
    await pub.start()
    record = Record("t", b"k", b"{}", ())
    results = await asyncio.wait_for(
        asyncio.gather(*(pub.publish([record]) for _ in range(3)), return_exceptions=True), 30
    )
    assert all(isinstance(r, PublishError) for r in results), results
    assert pub.task is not None
    assert pub.task.done()
    assert not pub.healthy
    with pytest.raises(PublishError):
        await pub.publish([record])
    with pytest.raises(PublishError):
        await pub.wait_healthy()
