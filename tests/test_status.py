"""Kafka health and readiness reasons in /status and /readyz, on plain values and a manual clock.

A broker that goes away does not fail a commit at once: the commit hangs until its timeout. The
status must say Kafka is not ok meanwhile, and readiness must blame Kafka, not the companies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from streamer.encode import Record
from streamer.model import TrackedJob
from streamer.reconcile import CompanyLedger
from streamer.status import COMMIT_STALL_S, CommitWatch, CompanyStatus, ServiceStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def service(*companies: CompanyStatus) -> ServiceStatus:
    """A running service with Kafka reported ok and the given companies."""
    status = ServiceStatus(started_at=T0, ready_factor=3.0, kafka_ok=True)
    status.companies = {c.handle: c for c in companies}
    return status


def test_a_commit_pending_past_the_limit_makes_kafka_not_ok() -> None:
    """kafka.ok turns false once a cycle waits longer than COMMIT_STALL_S with no commit since."""
    company = CompanyStatus("c|1", 1.0, last_success_at=at(10), state="ok")
    status = service(company)
    status.last_commit_at = at(10)
    company.committing_since = at(11)
    assert status.kafka_health(at(11 + COMMIT_STALL_S)) == (True, None)
    ok, problem = status.kafka_health(at(11 + COMMIT_STALL_S + 2))
    assert not ok
    assert problem == (
        f"no commit completed for 7s while cycles wait for one (limit {COMMIT_STALL_S:.0f}s)"
    )
    doc = status.as_json(at(11 + COMMIT_STALL_S + 2))
    assert doc["kafka"] == {
        "ok": False,
        "lastCommitAt": at(10).isoformat(),
        "lastError": problem,
    }
    company.committing_since = None
    assert status.kafka_health(at(100)) == (True, None)


def test_a_batch_queued_behind_completing_commits_leaves_kafka_ok() -> None:
    """Under load a cycle may wait long while other commits complete: Kafka is still ok."""
    company = CompanyStatus("c|1", 1.0, last_success_at=at(10), state="ok")
    status = service(company)
    company.committing_since = at(11)
    status.last_commit_at = at(11 + 3 * COMMIT_STALL_S)
    assert status.kafka_health(at(11 + 3 * COMMIT_STALL_S + 1)) == (True, None)


def test_readiness_blames_kafka_first_and_says_why_companies_are_stale() -> None:
    """While commits hang: the first reason is Kafka's; a company's reason says it waits for
    Kafka, not 'no successful poll yet' (it had successful polls)."""
    company = CompanyStatus("c|1", 1.0, last_success_at=at(10), state="ok")
    company.committing_since = at(11)
    ready, reasons = service(company).readiness(at(30))
    assert not ready
    assert reasons == [
        f"kafka: no commit completed for 19s while cycles wait for one "
        f"(limit {COMMIT_STALL_S:.0f}s)",
        "company c|1: no successful poll for 20s (limit 3s): its polls wait for Kafka to commit",
    ]


def test_reported_kafka_failure_is_the_reason_and_companies_wait_for_it() -> None:
    """After the publisher reported a failure, its message is the Kafka reason."""
    company = CompanyStatus("c|1", 1.0, last_success_at=at(10), state="waiting_for_kafka")
    status = service(company)
    status.kafka_ok = False
    status.last_commit_error = "kafka connect failed: KafkaConnectionError()"
    ready, reasons = status.readiness(at(30))
    assert not ready
    assert reasons[0] == "kafka: kafka connect failed: KafkaConnectionError()"
    assert reasons[1].endswith(": its polls wait for Kafka to commit")
    assert status.as_json(at(30))["kafka"]["ok"] is False  # type: ignore[index]


def test_company_reasons_keep_ips_errors_and_first_poll_grace() -> None:
    """An IPS error stays the company's reason; a company never polled says so."""
    failing = CompanyStatus("c|1", 1.0, last_success_at=at(1), last_error="HTTP 503")
    never = CompanyStatus("c|2", 1.0)
    _, reasons = service(failing, never).readiness(at(30))
    assert reasons == [
        "company c|1: no successful poll for 29s (limit 3s): HTTP 503",
        "company c|2: no successful poll for 30s (limit 3s): no successful poll yet",
    ]


class Sink:
    """A publisher whose commits complete when the test says so."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.healthy = True

    async def wait_healthy(self) -> None:
        """Always healthy."""

    async def publish(self, records: Sequence[Record]) -> None:
        """Commit once released."""
        await self.release.wait()

    def committed_state(self, company: str, epoch: int) -> dict[str, TrackedJob] | None:
        """No re-read in these tests."""
        return None

    def committed_ledger(self, company: str, epoch: int) -> CompanyLedger | None:
        """No re-read in these tests."""
        return None


async def test_commit_watch_marks_the_company_while_its_commit_is_pending() -> None:
    """committing_since is set while publish waits and cleared when it returns (or fails)."""
    company = CompanyStatus("c|1", 1.0)
    sink = Sink()
    watch = CommitWatch(sink, company, lambda: at(5))
    assert watch.healthy
    publishing = asyncio.create_task(watch.publish([]))
    await asyncio.sleep(0)
    assert company.committing_since == at(5)
    sink.release.set()
    await publishing
    assert company.committing_since is None
    sink.release.clear()
    failing = asyncio.create_task(watch.publish([]))
    await asyncio.sleep(0)
    failing.cancel()
    await asyncio.gather(failing, return_exceptions=True)
    assert company.committing_since is None
