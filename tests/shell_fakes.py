"""Fakes for in-process tests of the shell: a scripted IPS, a batch sink, a manual clock.

They stand in for the parts a unit test cannot run (the network and Kafka), so that a
:class:`~streamer.poller.CompanyPoller` runs its production code cycle by cycle.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streamer.diff import DiffSettings
from streamer.encode import Record, TopicNames
from streamer.filters import JobFilter
from streamer.ips import JobLogListing
from streamer.kafka import PublishError
from streamer.log_details import LogDetailsPolicy
from streamer.metrics import Metrics
from streamer.model import JobLog, JobLogDetail, JobLogDetailPage, Snapshot, TrackedJob
from streamer.poller import BatchSink, CompanyPoller, PollSettings
from streamer.privacy import EmailPolicy
from streamer.reconcile import CompanyLedger
from streamer.reconciler import ReconcilePolicy
from streamer.status import CompanyStatus, ServiceStatus
from tests.test_diff import COMPANY, T0

TOPICS = TopicNames.with_prefix("t")


class ScriptedIps:
    """Answers ``getActiveJobs`` from a script: a Snapshot, or an exception to raise."""

    def __init__(self, *replies: Snapshot | BaseException) -> None:
        self.replies = list(replies)
        self.logs: dict[str, JobLog | BaseException | None] = {}
        self.polls = 0
        self.log_lookups: list[str] = []
        #: What getJobLogs lists (by end date), IPS's clock in its replies, or an error to raise.
        self.job_logs: list[JobLog] = []
        self.server_time: datetime | None = None
        self.listing_error: BaseException | None = None
        #: The ``(start, end, num_rows)`` of every getJobLogs request.
        self.listings: list[tuple[datetime | None, datetime | None, int | None]] = []
        #: Detail rows per job handle (served filtered and paged), or an error to raise.
        self.details: dict[str, list[JobLogDetail] | BaseException] = {}
        #: The ``(job_handle, log_types, rows)`` of every getJobLogDetails page request.
        self.detail_lookups: list[tuple[str, tuple[str, ...], int]] = []

    async def get_active_jobs(self, company_handle: str) -> Snapshot:
        """Pop the next scripted reply (the last one repeats)."""
        self.polls += 1
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def get_job_log(self, company_handle: str, job_handle: str) -> JobLog | None:
        """The scripted log of ``job_handle`` (None when there is none)."""
        self.log_lookups.append(job_handle)
        answer = self.logs.get(job_handle)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def get_job_log_details(
        self, company_handle: str, job_handle: str, *, log_types: Sequence[str], rows: int
    ) -> JobLogDetailPage | None:
        """The first ``rows`` scripted detail rows of ``job_handle`` of the given types."""
        self.detail_lookups.append((job_handle, tuple(log_types), rows))
        answer = self.details.get(job_handle)
        if isinstance(answer, BaseException):
            raise answer
        if answer is None:
            return None
        matching = [d for d in answer if d.log_type in log_types]
        return JobLogDetailPage(job_handle, tuple(matching[:rows]), len(matching))

    async def list_job_logs(
        self,
        company_handle: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        num_rows: int | None = None,
    ) -> JobLogListing:
        """``job_logs`` that ended in ``[start, end]``, by start date, ``num_rows`` at most."""
        self.listings.append((start, end, num_rows))
        if self.listing_error is not None:
            raise self.listing_error
        found = [
            g
            for g in self.job_logs
            if g.end_date is not None
            and (start is None or g.end_date >= start)
            and (end is None or g.end_date <= end)
        ]
        found.sort(key=lambda g: (g.start_date or g.end_date or T0, g.job_handle))
        return JobLogListing(tuple(found[:num_rows]), self.server_time)


@dataclass
class FakeSink:
    """Records committed batches; ``fail`` makes the next publishes raise it."""

    batches: list[list[Record]] = field(default_factory=list)
    fail: PublishError | None = None
    is_healthy: bool = True

    @property
    def healthy(self) -> bool:
        """As set by the test."""
        return self.is_healthy

    async def wait_healthy(self) -> None:
        """Healthy at once (or raise the fencing error the test set)."""
        if self.fail is not None and type(self.fail).__name__ == "FencedError":
            raise self.fail

    async def publish(self, records: Sequence[Record]) -> None:
        """Commit, or raise ``fail``."""
        if self.fail is not None:
            raise self.fail
        self.batches.append(list(records))

    #: What committed_state answers (None: no re-read yet).
    reread: dict[str, TrackedJob] | None = None
    #: What committed_ledger answers.
    reread_ledger: CompanyLedger | None = None

    def committed_state(self, company: str, epoch: int) -> dict[str, TrackedJob] | None:
        """The state the test says Kafka really committed."""
        return None if self.reread is None else dict(self.reread)

    def committed_ledger(self, company: str, epoch: int) -> CompanyLedger | None:
        """The ledger the test says Kafka really committed."""
        return self.reread_ledger

    def values(self, topic: str) -> list[dict[str, Any]]:
        """Committed JSON values of ``topic`` (tombstones left out), in commit order."""
        return [
            json.loads(r.value)
            for batch in self.batches
            for r in batch
            if r.topic == topic and r.value is not None
        ]


class ManualClock:
    """Wall and monotonic time that only move when a poller sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """The wall clock."""
        return self.wall

    def monotonic(self) -> float:
        """The monotonic clock."""
        return self.mono

    def advance(self, seconds: float) -> None:
        """Move both clocks."""
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> bool:
        """Record the wait and jump over it; never stopped."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
        return False


@dataclass
class Rig:
    """A poller wired to fakes."""

    poller: CompanyPoller
    ips: ScriptedIps
    sink: FakeSink
    publisher: BatchSink
    clock: ManualClock
    metrics: Metrics
    status: CompanyStatus
    stop: asyncio.Event


def rig(
    ips: ScriptedIps,
    *,
    state: dict[str, TrackedJob] | None = None,
    poll: PollSettings | None = None,
    diff: DiffSettings | None = None,
    publisher: BatchSink | None = None,
    topics: TopicNames = TOPICS,
    company: str = COMPANY,
    reconcile: ReconcilePolicy | None = None,
    ledger: CompanyLedger | None = None,
    job_filter: JobFilter | None = None,
    privacy: EmailPolicy | None = None,
    log_details: LogDetailsPolicy | None = None,
) -> Rig:
    """A :class:`CompanyPoller` for :data:`COMPANY` on fakes (or ``publisher``), manual clock."""
    sink, clock, stop = FakeSink(), ManualClock(), asyncio.Event()
    service = ServiceStatus(started_at=T0)
    status = CompanyStatus(company, 5.0)
    service.companies[company] = status
    metrics = Metrics(service)
    poller = CompanyPoller(
        handle=company,
        client=ips,
        publisher=publisher or sink,
        state=dict(state or {}),
        poll=poll or PollSettings(interval_s=5.0, failures_before_degraded=3),
        diff_settings=diff or DiffSettings(poll_interval_s=5.0, log_max_attempts=2),
        topics=topics,
        source="http://ips.test/companies/c%7Cacme",
        metrics=metrics,
        status=status,
        clock=clock.now,
        stop=stop,
        log_lookups=asyncio.Semaphore(4),
        polls=asyncio.Semaphore(4),
        monotonic=clock.monotonic,
        uniform=lambda a, b: (a + b) / 2,
        sleep=clock.sleep,
        reconcile=reconcile,
        ledger=ledger,
        job_filter=job_filter,
        privacy=privacy,
        log_details=log_details,
    )
    return Rig(poller, ips, sink, publisher or sink, clock, metrics, status, stop)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The current value of one metric sample (0 when absent)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
