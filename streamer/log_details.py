"""Reading the error and warning messages of a cycle's completions: the I/O around
:mod:`streamer.completion_context`.

For each completion the pure rules ask for (:func:`~streamer.completion_context.detail_queries`),
one ``getJobLogDetails`` request per kind of message, each a single small page
(``logTypeArray``, ``recordsPerPage``); the pages go back to
:func:`~streamer.completion_context.select`. The look-ups of a cycle are bounded:

* at most ``max_lookups`` completions per cycle, the first in event order; the others publish
  ``logMessages: null`` (counted ``skipped``): a mass failure must not hold its cycle for
  thousands of requests;
* all of them within ``timeout_s``; those not answered by then publish null (``timeout``);
* none once shutdown began (``skipped``): the cycle in flight must commit within the hand-over
  bound, so a drain does not wait for messages;
* the pages of both kinds of one completion at once (one IPS round trip);
* at most as many at once as the shared job-log semaphore allows.

A look-up that fails (transport error, fault, a reply without the job's log, anything else) is
logged and counted, and its completion is published with ``logMessages: null``: never retried,
never held back, never lost. What a completion carries does not change its id, so a cycle
regenerated after a crash keeps its ids whatever the look-ups answer then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from streamer.completion_context import ContextSettings, DetailQuery, Kind, detail_queries, select
from streamer.ips import IpsError, IpsTransportError
from streamer.metrics import Metrics
from streamer.model import JobCompleted, JobEvent, JobLog, JobLogDetailPage, LogMessages

__all__ = ["DetailsSource", "LogDetails", "LogDetailsPolicy"]

log = structlog.get_logger("streamer.log_details")


@dataclass(frozen=True, slots=True)
class LogDetailsPolicy:
    """How much of a job log completions carry, and how long a cycle may spend reading it."""

    settings: ContextSettings = field(default_factory=ContextSettings)
    #: Completions per cycle whose messages are read; the others publish null. 0: none is read
    #: (no request, no metric).
    max_lookups: int = 100
    #: Seconds the look-ups of one cycle may take together.
    timeout_s: float = 10.0


class DetailsSource(Protocol):
    """What reading messages asks of IPS (the IPS client, or a fake in tests)."""

    async def get_job_log_details(
        self, company_handle: str, job_handle: str, *, log_types: Sequence[str], rows: int
    ) -> JobLogDetailPage | None:
        """One page of a job's detail rows of the given types; None without a log of the job."""


class _Failed(Exception):
    """A look-up that gave no messages, with its result label."""

    def __init__(self, result: str, error: str) -> None:
        super().__init__(error)
        self.result = result


class LogDetails:
    """Reads the messages of one company's completions (see the module docstring)."""

    def __init__(
        self,
        *,
        handle: str,
        client: DetailsSource,
        log_lookups: asyncio.Semaphore,
        policy: LogDetailsPolicy,
        metrics: Metrics,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.handle = handle
        self._stop = stop
        self._client = client
        self._sem = log_lookups
        self._policy = policy
        self._metrics = metrics

    async def messages(
        self, events: Sequence[JobEvent], logs: Mapping[str, JobLog | None]
    ) -> dict[str, LogMessages | None]:
        """The messages of each completion in ``events`` that wants some (None: not read).

        ``logs`` are the cycle's outcome look-ups by handle: the log types they showed are
        asked for too.
        """
        policy = self._policy
        if policy.max_lookups <= 0:
            return {}
        wanted: list[tuple[str, tuple[DetailQuery, ...]]] = []
        for e in events:
            if isinstance(e, JobCompleted):
                seen = logs.get(e.job_handle)
                types = seen.detail_log_types if seen is not None else ()
                queries = detail_queries(e, types, policy.settings)
                if queries:
                    wanted.append((e.job_handle, queries))
        if not wanted:
            return {}
        found: dict[str, LogMessages | None] = {h: None for h, _ in wanted}
        stopping = self._stop is not None and self._stop.is_set()
        budget = 0 if stopping else policy.max_lookups
        skipped = wanted[budget:]
        if skipped:
            self._metrics.log_message_lookups.labels("skipped").inc(len(skipped))
            log.warning(
                "log_messages_skipped",
                company=self.handle,
                jobs=len(skipped),
                first=skipped[0][0][:200],
                reason="shutdown" if stopping else "max_lookups",
                max_lookups=policy.max_lookups,
            )
        tasks = {
            handle: asyncio.ensure_future(self._read(handle, queries))
            for handle, queries in wanted[:budget]
        }
        if tasks:
            late = await self._wait(list(tasks.values()), policy.timeout_s)
            for handle, task in tasks.items():
                if task not in late:
                    found[handle] = task.result()
        return found

    async def _wait(self, tasks: list[asyncio.Future[Any]], timeout_s: float) -> set[Any]:
        """Wait for ``tasks`` until all are done, ``timeout_s`` passed or shutdown began; cancel
        (and count) the others, also when the cycle itself is cancelled. Returns those."""
        everything: asyncio.Future[Any] = asyncio.gather(*tasks)
        waiters: set[asyncio.Future[Any]] = {everything}
        stopper = None if self._stop is None else asyncio.ensure_future(self._stop.wait())
        if stopper is not None:
            waiters.add(stopper)
        try:
            await asyncio.wait(
                waiters,
                timeout=timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:  # no look-up outlives its cycle
            if stopper is not None:
                stopper.cancel()
            late = {t for t in tasks if not t.done()}
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if everything.done() and not everything.cancelled():
                everything.exception()  # retrieved: a cancelled look-up is no error here
        if late:
            # The cycle in flight must commit within the shutdown's hand-over bound: a drain
            # does not wait for messages.
            stopping = self._stop is not None and self._stop.is_set()
            result = "skipped" if stopping else "timeout"
            self._metrics.log_message_lookups.labels(result).inc(len(late))
            log.warning(
                "log_messages_timeout" if result == "timeout" else "log_messages_skipped",
                company=self.handle,
                jobs=len(late),
                reason="shutdown" if stopping else "timeout",
                timeout_s=timeout_s,
            )
        return late

    async def _read(self, handle: str, queries: tuple[DetailQuery, ...]) -> LogMessages | None:
        # The pages of both kinds at once: one IPS round trip, not two, per completion.
        got = await asyncio.gather(
            *(self._page(handle, q) for q in queries), return_exceptions=True
        )
        pages: dict[Kind, JobLogDetailPage] = {}
        try:
            for query, page in zip(queries, got, strict=True):
                if isinstance(page, BaseException):
                    raise page
                pages[query.kind] = page
        except _Failed as exc:
            self._metrics.log_message_lookups.labels(exc.result).inc()
            log.warning(
                "log_messages_lookup_failed",
                company=self.handle,
                job=handle[:200],
                result=exc.result,
                error=str(exc)[:500],
            )
            return None
        self._metrics.log_message_lookups.labels("ok").inc()
        return select(pages, self._policy.settings)

    async def _page(self, handle: str, query: DetailQuery) -> JobLogDetailPage:
        try:
            async with self._sem:
                page = await self._client.get_job_log_details(
                    self.handle, handle, log_types=query.log_types, rows=query.rows
                )
        except IpsTransportError as exc:
            raise _Failed("error", str(exc)) from exc
        except IpsError as exc:
            raise _Failed("fault", str(exc)) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a surprise must not cost the completion
            raise _Failed("error", repr(exc)) from exc
        if page is None:
            raise _Failed("absent", "the reply holds no log of the job")
        return page
