"""Live, read-only view of the service for the HTTP endpoints: per company and for Kafka.

The service owns and mutates these objects (a company's pending commit through
:class:`CommitWatch`); ``web.py`` only reads them. Time is passed in.

Kafka's health is not only what the publisher last reported: a commit to a broker that went away
does not fail at once, it hangs until the commit timeout (twice the request timeout). Meanwhile
the waiting cycles are the evidence: cycles waiting while no commit completed for longer than
:data:`COMMIT_STALL_S` make Kafka not ok.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from streamer.encode import Record
from streamer.model import TrackedJob
from streamer.reconcile import CompanyLedger

#: Cycles waiting while no commit completed for longer than this mean Kafka is not taking
#: commits (a healthy commit takes milliseconds; a group commit of 20,000 records about a second).
COMMIT_STALL_S = 5.0


@dataclass(slots=True)
class CompanyStatus:
    """What the streamer knows about one company's polling right now."""

    handle: str
    interval_s: float
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    consecutive_failures: int = 0
    active_jobs: int = 0
    tracked_jobs: int = 0
    cycles: int = 0
    #: starting | ok | failing | auth_failed | waiting_for_kafka | stopped
    state: str = "starting"
    #: When the commit this company waits for was handed to the publisher (None: not waiting).
    committing_since: datetime | None = None
    #: The committed reconciliation watermark (IPS time): job logs up to it were reconciled.
    reconciled_to: datetime | None = None
    #: Why the last reconciliation pass failed; None once one succeeds.
    reconcile_error: str | None = None


@dataclass(slots=True)
class ServiceStatus:
    """Service-wide status: companies, Kafka commit health, readiness rule."""

    started_at: datetime
    ready_factor: float = 3.0
    companies: dict[str, CompanyStatus] = field(default_factory=dict)
    kafka_ok: bool = False
    last_commit_at: datetime | None = None
    last_commit_error: str | None = None
    restored_jobs: int = 0
    stopping: bool = False
    #: The shards this instance owns now (their companies are the ones listed above).
    shards: list[int] = field(default_factory=list)
    commit_stall_s: float = COMMIT_STALL_S

    def kafka_health(self, now: datetime) -> tuple[bool, str | None]:
        """Whether Kafka takes commits now, and why not: the publisher's last report, or cycles
        waiting for a commit while none completed for longer than ``commit_stall_s``.

        Waiting alone is not enough: under load a batch may queue for seconds behind other
        groups while commits keep completing; then Kafka is fine and the process is busy.
        """
        if not self.kafka_ok:
            return False, self.last_commit_error or "not connected"
        pending = [c.committing_since for c in self.companies.values() if c.committing_since]
        if pending:
            waiting_since = min(pending)
            if self.last_commit_at is not None:
                waiting_since = max(waiting_since, self.last_commit_at)
            stalled = (now - waiting_since).total_seconds()
            if stalled > self.commit_stall_s:
                return False, (
                    f"no commit completed for {stalled:.0f}s while cycles wait for one "
                    f"(limit {self.commit_stall_s:.0f}s)"
                )
        return True, None

    def readiness(self, now: datetime) -> tuple[bool, list[str]]:
        """Ready only while Kafka commits succeed and every company polled OK recently.

        "Recently" is ``ready_factor`` x the company's poll interval; a company that never
        succeeded gets the same grace from service start.
        """
        reasons: list[str] = []
        if self.stopping:
            reasons.append("shutting down")
        kafka_ok, kafka_problem = self.kafka_health(now)
        if not kafka_ok:
            reasons.append(f"kafka: {kafka_problem}")
        for c in self.companies.values():
            limit = self.ready_factor * c.interval_s
            since = c.last_success_at or self.started_at
            age = (now - since).total_seconds()
            if age > limit:
                reasons.append(
                    f"company {c.handle}: no successful poll for {age:.0f}s "
                    f"(limit {limit:.0f}s): {_why_stale(c)}"
                )
        return (not reasons, reasons)

    def as_json(self, now: datetime) -> dict[str, object]:
        """The ``/status`` document (no secrets live here)."""
        ready, reasons = self.readiness(now)
        kafka_ok, kafka_problem = self.kafka_health(now)

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "now": now.isoformat(),
            "startedAt": self.started_at.isoformat(),
            "ready": ready,
            "reasons": reasons,
            "kafka": {
                "ok": kafka_ok,
                "lastCommitAt": iso(self.last_commit_at),
                "lastError": self.last_commit_error or kafka_problem,
            },
            "restoredJobs": self.restored_jobs,
            "shards": {"owned": list(self.shards)},
            "companies": [
                {
                    "handle": c.handle,
                    "state": c.state,
                    "intervalS": c.interval_s,
                    "lastPollAt": iso(c.last_poll_at),
                    "lastSuccessAt": iso(c.last_success_at),
                    "lastError": c.last_error,
                    "lastErrorKind": c.last_error_kind,
                    "consecutiveFailures": c.consecutive_failures,
                    "activeJobs": c.active_jobs,
                    "trackedJobs": c.tracked_jobs,
                    "cycles": c.cycles,
                    "reconciledTo": iso(c.reconciled_to),
                    "reconcileError": c.reconcile_error,
                }
                for c in self.companies.values()
            ],
        }


def _why_stale(c: CompanyStatus) -> str:
    """Why a company has no recent successful poll, in the words an operator needs."""
    if c.last_error:
        return c.last_error
    if c.state == "waiting_for_kafka" or c.committing_since is not None:
        return "its polls wait for Kafka to commit"
    if c.last_success_at is None:
        return "no successful poll yet"
    return f"state {c.state}"


class _Sink(Protocol):
    """The publisher as a company loop uses it (see ``streamer.poller.BatchSink``)."""

    @property
    def healthy(self) -> bool: ...

    async def wait_healthy(self) -> None: ...

    async def publish(self, records: Sequence[Record]) -> None: ...

    def committed_state(self, company: str, epoch: int) -> dict[str, TrackedJob] | None: ...

    def committed_ledger(self, company: str, epoch: int) -> CompanyLedger | None: ...


class CommitWatch:
    """One company's view of the publisher that records, in its status, since when the commit it
    waits for is pending (what :meth:`ServiceStatus.kafka_health` judges)."""

    def __init__(self, sink: _Sink, status: CompanyStatus, clock: Callable[[], datetime]) -> None:
        self._sink = sink
        self._status = status
        self._clock = clock

    @property
    def healthy(self) -> bool:
        """The publisher's own health."""
        return self._sink.healthy

    async def wait_healthy(self) -> None:
        """Return once the publisher is usable again."""
        await self._sink.wait_healthy()

    async def publish(self, records: Sequence[Record]) -> None:
        """Publish through the publisher, marking the company as waiting for that commit."""
        self._status.committing_since = self._clock()
        try:
            await self._sink.publish(records)
        finally:
            self._status.committing_since = None

    def committed_state(self, company: str, epoch: int) -> dict[str, TrackedJob] | None:
        """The publisher's re-read of what was committed after an uncertain commit."""
        return self._sink.committed_state(company, epoch)

    def committed_ledger(self, company: str, epoch: int) -> CompanyLedger | None:
        """The publisher's re-read of the company's reconciliation ledger."""
        return self._sink.committed_ledger(company, epoch)
