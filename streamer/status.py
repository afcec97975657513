"""Live, read-only view of the service for the HTTP endpoints: per company and for Kafka.

The service owns and mutates these objects; ``web.py`` only reads them. Time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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

    def readiness(self, now: datetime) -> tuple[bool, list[str]]:
        """Ready only while Kafka commits succeed and every company polled OK recently.

        "Recently" is ``ready_factor`` x the company's poll interval; a company that never
        succeeded gets the same grace from service start.
        """
        reasons: list[str] = []
        if self.stopping:
            reasons.append("shutting down")
        if not self.kafka_ok:
            reasons.append(f"kafka: {self.last_commit_error or 'not connected'}")
        for c in self.companies.values():
            limit = self.ready_factor * c.interval_s
            since = c.last_success_at or self.started_at
            age = (now - since).total_seconds()
            if age > limit:
                what = c.last_error or "no successful poll yet"
                reasons.append(
                    f"company {c.handle}: no successful poll for {age:.0f}s "
                    f"(limit {limit:.0f}s): {what}"
                )
        return (not reasons, reasons)

    def as_json(self, now: datetime) -> dict[str, object]:
        """The ``/status`` document (no secrets live here)."""
        ready, reasons = self.readiness(now)

        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "now": now.isoformat(),
            "startedAt": self.started_at.isoformat(),
            "ready": ready,
            "reasons": reasons,
            "kafka": {
                "ok": self.kafka_ok,
                "lastCommitAt": iso(self.last_commit_at),
                "lastError": self.last_commit_error,
            },
            "restoredJobs": self.restored_jobs,
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
                }
                for c in self.companies.values()
            ],
        }
