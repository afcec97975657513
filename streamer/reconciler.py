"""One company's reconciliation with the job log: when a pass is due, what it lists, how it fails.

The shell around :mod:`streamer.reconcile` (pure rules) for one company loop: in the first cycle,
after any gap and then every ``interval_s``, a pass lists the job log (``getJobLogs``) for the
company's window; the completions it finds go into the same cycle's records, with the company's
ledger, through :meth:`CompanyReconciler.step`. A pass that fails is reported (log, metric,
notification after ``failures_before_degraded`` failures in a row) and retried after a backoff;
the cycle itself commits as usual. A pass is bounded in requests and in time: what is left waits
for the next cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog

from streamer.cycle import Settled
from streamer.encode import Record
from streamer.filters import JobFilter
from streamer.ips import IpsError, JobLogListing
from streamer.metrics import Metrics
from streamer.model import JobCompleted
from streamer.reconcile import (
    CompanyLedger,
    LedgerStep,
    Page,
    ReconcileSettings,
    Window,
    WindowTooFull,
    latest_log_time,
    ledger_step,
    listed,
    start,
    window,
)
from streamer.retry import Backoff, Uniform, jittered
from streamer.status import CompanyStatus

log = structlog.get_logger("streamer.reconciler")

#: The failure kind of pages the rules refuse (a bug): the pass is lost, the cycle is not.
INTERNAL_ERROR = "internal_error"


class JobLogLister(Protocol):
    """What a reconciler asks of IPS."""

    async def list_job_logs(
        self,
        company_handle: str,
        *,
        start: datetime | None,
        end: datetime | None,
        num_rows: int,
    ) -> JobLogListing:
        """``getJobLogs`` for a window of end dates."""


#: Spread of the time between two full passes, as a fraction of ``interval_s``.
_PASS_JITTER = 0.25


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """When and how far a company's job log is reconciled (see :mod:`streamer.reconcile`)."""

    #: Seconds between two passes (a gap brings the next one forward).
    interval_s: float = 60.0
    rules: ReconcileSettings = field(default_factory=ReconcileSettings)
    #: Requests one pass may make; a longer pass goes on in the next cycle.
    max_requests: int = 32
    #: Seconds one pass may hold its cycle; a longer pass goes on in the next cycle.
    max_pass_s: float = 5.0


@dataclass(slots=True)
class _Pass:
    """What a reconciliation pass got, for :func:`streamer.reconcile.ledger_step`."""

    #: The ledger its window was computed from (the company's, or its first one).
    base: CompanyLedger | None
    #: The complete pages, in order; None when no pass ran.
    pages: list[Page] | None = None
    #: The latest IPS clock reading its replies showed; None without one.
    reading: datetime | None = None
    #: ``(kind, message)`` when it failed (its pages so far still count).
    failure: tuple[str, str] | None = None
    #: True when it listed its whole window (not cut short by a budget).
    complete: bool = False
    ran: bool = False
    #: The windows a pass cut short did not list: the next pass goes on with them.
    todo: list[Window] = field(default_factory=list)


class CompanyReconciler:
    """When a company's next pass is due, and the pass itself (see the module docstring)."""

    def __init__(
        self,
        *,
        handle: str,
        client: JobLogLister,
        log_lookups: asyncio.Semaphore,
        policy: ReconcilePolicy,
        backoff: Backoff,
        failures_before_degraded: int,
        metrics: Metrics,
        status: CompanyStatus,
        monotonic: Callable[[], float],
        uniform: Uniform,
        notify: Callable[[str, str, datetime], Record],
        job_filter: JobFilter | None = None,
    ) -> None:
        self.handle = handle
        self._filter = job_filter or JobFilter()
        self._client = client
        self._log_sem = log_lookups
        self._policy = policy
        self._backoff = backoff
        self._failures_before_degraded = failures_before_degraded
        self._metrics = metrics
        self._status = status
        self._monotonic = monotonic
        self._uniform = uniform
        self._notify = notify
        # The latest IPS clock reading, when the next pass is due (monotonic; the first cycle
        # runs one), failed passes in a row, and the windows the last committed pass left.
        self._ips_now: datetime | None = None
        self._due = 0.0
        self._failures = 0
        self._degraded = False
        self._todo: list[Window] = []

    async def step(
        self, settled: Settled, now: datetime, ledger: CompanyLedger | None
    ) -> tuple[LedgerStep | None, list[Record], list[Window] | None]:
        """The cycle's ledger step: its completions remembered, and a pass's when one is due.

        Returns the step (None when reconciliation is off), the notifications to commit, and
        the windows the pass left to list (None when no pass ran).
        """
        policy = self._policy
        completions = [e for e in settled.events if isinstance(e, JobCompleted)]
        done = _Pass(ledger)
        if self._monotonic() >= self._due:
            done = await self._pass(policy, ledger)
        try:
            step = ledger_step(
                done.base, completions, reading=done.reading, pages=done.pages,
                company=self.handle, tracked=settled.state, now=now, settings=policy.rules,
            )  # fmt: skip
        except ValueError as exc:
            # Pages that do not fit the ledger (a bug): the pass is lost, the cycle is not.
            log.exception("reconcile_pages_refused", company=self.handle, error=str(exc))
            done = _Pass(done.base, ran=True, failure=(INTERNAL_ERROR, str(exc)))
            step = ledger_step(
                ledger, completions, reading=None, pages=None,
                company=self.handle, tracked=settled.state, now=now, settings=policy.rules,
            )  # fmt: skip
        if not done.ran:
            return step, [], None
        if done.failure is not None:
            # The next pass starts from the watermark again.
            return step, self._failed(*done.failure, done.pages, now), []
        return step, self._succeeded(policy, done.complete, now), done.todo

    async def _pass(self, policy: ReconcilePolicy, ledger: CompanyLedger | None) -> _Pass:
        """List the job log for the company's window (see :class:`_Pass`).

        The window comes from the latest IPS clock reading known; without one, or when that
        reading shows nothing new, a one-row request reads IPS's clock first. A full reply is
        split; the pass stops at its request or time budget with the pages it has.
        """
        rules = policy.rules
        pages: list[Page] = []
        done = _Pass(ledger, pages=pages, ran=True)
        requests = 0
        todo = done.todo = list(self._todo) if ledger is not None else []
        try:
            async with asyncio.timeout(policy.max_pass_s):
                known = self._ips_now
                if not todo:
                    whole = None if known is None else self._window(done, known, rules)
                    if whole is None:
                        at = None if done.base is None else done.base.watermark
                        known = done.reading = self._read_clock(await self._list_logs(at, at, 1))
                        requests += 1
                        if known is None:
                            done.failure = ("no_ips_time", "IPS replies carry no Date or dates")
                            return done
                        whole = self._window(done, known, rules)
                    todo.extend(() if whole is None else (whole,))
                while todo and requests < policy.max_requests:
                    head = todo[0]  # popped once answered: a pass cut short keeps it to list
                    listing = await self._list_logs(head.start, head.end, rules.max_rows)
                    requests += 1
                    done.reading = self._read_clock(listing) or done.reading
                    got = listed(head, listing.logs, rules.max_rows)
                    del todo[0]
                    if isinstance(got, Page):
                        # Logs of filtered job types are never reconciled (streamer.filters).
                        pages.append(Page(got.window, self._filter.logs(got.logs)))
                    else:
                        todo[:0] = got
                done.complete = not todo
        except TimeoutError:
            if not pages:
                done.failure = ("timeout", f"no complete page within {policy.max_pass_s:g}s")
        except WindowTooFull as exc:
            done.failure = ("window_too_full", str(exc))
        except IpsError as exc:
            done.failure = (getattr(exc, "kind", type(exc).__name__), str(exc))
        if done.failure is not None and not pages:
            done.pages = None  # nothing was listed: the ledger only remembers the completions
        return done

    @staticmethod
    def _window(done: _Pass, known: datetime, rules: ReconcileSettings) -> Window | None:
        """The window to list by IPS time ``known``; a company's first ledger starts there."""
        if done.base is None:
            done.base = start(known, rules)
        return window(done.base, known, rules)

    async def _list_logs(
        self, start_at: datetime | None, end_at: datetime | None, rows: int
    ) -> JobLogListing:
        async with self._log_sem:
            return await self._client.list_job_logs(
                self.handle, start=start_at, end=end_at, num_rows=rows
            )

    def _read_clock(self, listing: JobLogListing) -> datetime | None:
        """IPS's clock as a reply shows it (its Date, its logs' dates), after what was known.

        None when the reply shows no time; the latest reading is remembered.
        """
        shown = [t for t in (listing.server_time, latest_log_time(listing.logs)) if t is not None]
        if not shown:
            return None
        reading = max(shown) if self._ips_now is None else max(*shown, self._ips_now)
        self._ips_now = reading
        return reading

    def _failed(
        self, kind: str, message: str, pages: list[Page] | None, at: datetime
    ) -> list[Record]:
        self._failures += 1
        n = self._failures
        delay = self._backoff.delay(n, self._uniform)
        self._due = self._monotonic() + delay
        self._metrics.reconcile_passes.labels("failed").inc()
        self._metrics.reconcile_failures.labels(kind).inc()
        self._status.reconcile_error = f"{kind}: {message}"[:500]
        log.warning(
            "reconcile_failed",
            company=self.handle,
            kind=kind,
            error=message[:500],
            pages=len(pages or ()),
            failures=n,
            retry_in_s=round(delay, 2),
        )
        if n >= self._failures_before_degraded and not self._degraded:
            self._degraded = True
            what = f"job logs cannot be read ({kind}): {message}"[:1000]
            return [self._notify("reconcile_failing", what, at)]
        return []

    def _succeeded(self, policy: ReconcilePolicy, complete: bool, at: datetime) -> list[Record]:
        self._failures = 0
        self._status.reconcile_error = None
        self._metrics.reconcile_passes.labels("complete" if complete else "partial").inc()
        # A pass cut short by its budget goes on in the next cycle. The next full pass is
        # spread by +/- a quarter of the interval: companies that started together (a start,
        # a shard takeover) would otherwise all list their job logs in the same seconds of
        # every interval, a burst of getJobLogs that delays those cycles' commits.
        interval = jittered(policy.interval_s, _PASS_JITTER, self._uniform)
        self._due = self._monotonic() + (interval if complete else 0.0)
        if self._degraded:
            self._degraded = False
            return [self._notify("reconcile_recovered", "job logs are read again", at)]
        return []

    def soon(self) -> None:
        """After a gap the next cycle runs a pass, unless passes are backing off after failures."""
        if self._failures == 0:
            self._due = 0.0

    def reset(self) -> None:
        """The ledger was re-read (an uncertain commit): forget a cut-short pass, pass soon."""
        self._todo = []
        self.soon()

    def advance(self, step: LedgerStep | None, todo: list[Window] | None) -> None:
        """The cycle committed: remember what its pass left to list."""
        if todo is not None:
            self._todo = todo
        if step is not None and step.events:
            self._metrics.reconciled_jobs.inc(len(step.events))
