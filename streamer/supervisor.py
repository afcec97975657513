"""One owner for the daemon's long-running tasks: the first unexpected end stops them all.

Two kinds of task run under a :class:`Supervisor`:

* **workers** (the company loops) finish on their own: when asked to stop, or after ``max_cycles``.
  The supervised run is over when every worker has returned.
* **services** (the Kafka publisher, the HTTP server) run until they are cancelled. A service that
  returns or raises has died, and nothing it served can go on.

Any task that raises, and any service that returns before a stop was requested, is a *failure*:
the supervisor records the first one (name and exception), stops waiting, and the caller decides
the exit code. On the way out
:meth:`Supervisor.close` cancels whatever still runs and waits for it, so no task outlives its
owner. A stop request gives the workers ``drain_timeout_s`` to finish their cycle and commit.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

__all__ = ["Ending", "Failure", "Supervisor"]

log = structlog.get_logger("streamer.supervisor")


class Ending(enum.Enum):
    """How a supervised run ended."""

    #: Every worker returned (stopped, or ran its cycles).
    FINISHED = "finished"
    #: A task failed: see :attr:`Supervisor.failure`.
    FAILED = "failed"
    #: A stop was requested and the workers did not finish within the drain timeout.
    DRAIN_TIMEOUT = "drain_timeout"


@dataclass(frozen=True, slots=True)
class Failure:
    """The first task that failed."""

    task: str
    error: BaseException


class Supervisor:
    """Starts, watches and ends the daemon's tasks (see the module docstring)."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._workers: set[asyncio.Task[Any]] = set()
        self._services: set[asyncio.Task[Any]] = set()
        self._event = asyncio.Event()  # set on every task end: the run loop re-checks
        self._closing = False
        self.failure: Failure | None = None
        #: Called once with the first failure, before the run returns (fail pending work there).
        self.on_failure: Callable[[Failure], None] | None = None

    def worker(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a task that is expected to return by itself."""
        return self._start(name, coro, self._workers)

    def service(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a task that is expected to run until cancelled."""
        return self._start(name, coro, self._services)

    def watch(self, name: str, task: asyncio.Task[Any]) -> None:
        """Watch a service task that someone else created (its owner still cancels it)."""
        self._services.add(task)
        task.add_done_callback(lambda t: self._ended(name, t, service=True))

    def _start(
        self, name: str, coro: Coroutine[Any, Any, Any], group: set[asyncio.Task[Any]]
    ) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        group.add(task)
        service = group is self._services
        task.add_done_callback(lambda t: self._ended(name, t, service=service))
        return task

    def _ended(self, name: str, task: asyncio.Task[Any], *, service: bool) -> None:
        self._event.set()
        if self._closing:
            return
        if task.cancelled():
            error: BaseException | None = asyncio.CancelledError(f"{name} was cancelled")
        else:
            error = task.exception()
            if error is None and service and not self._stop.is_set():
                error = RuntimeError(f"{name} ended unexpectedly")
        if error is None or self.failure is not None:
            return
        self.failure = Failure(name, error)
        log.error("task_failed", task=name, error=repr(error), exc_info=error)
        if self.on_failure is not None:
            self.on_failure(self.failure)

    def _workers_running(self) -> bool:
        return any(not t.done() for t in self._workers)

    async def run(self, drain_timeout_s: float) -> Ending:
        """Wait until the workers finish, a task fails, or a stop is requested and drained."""
        stop = self._stop
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while self.failure is None and self._workers_running() and not stop.is_set():
                self._event.clear()
                changed = asyncio.ensure_future(self._event.wait())
                await asyncio.wait({changed, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            if self.failure is not None:
                return Ending.FAILED
            if not self._workers_running():
                return Ending.FINISHED
            return await self._drain(drain_timeout_s)
        finally:
            stop_wait.cancel()

    async def _drain(self, timeout_s: float) -> Ending:
        running = {t for t in self._workers if not t.done()}
        _, still = await asyncio.wait(running, timeout=timeout_s)
        if self.failure is not None:
            return Ending.FAILED
        if still:
            log.error("drain_timeout", unfinished=len(still), timeout_s=timeout_s)
            return Ending.DRAIN_TIMEOUT
        return Ending.FINISHED

    async def close(self) -> None:
        """Cancel every task that still runs and wait for all of them."""
        self._closing = True
        tasks = self._workers | self._services
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
