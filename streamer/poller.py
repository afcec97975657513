"""One company's poll loop: poll, diff, look up job logs, publish atomically, then advance state.

The loop's state only advances after Kafka committed the cycle's records. A failed poll produces no
diff and no completion; a failed commit leaves the state where it was, and the next cycle diffs the
next snapshot against the last committed state, so the net change is still published.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from streamer.checkpoint import encode_checkpoint
from streamer.diff import DiffSettings, complete, diff
from streamer.encode import (
    Record,
    TopicNames,
    encode_event,
    encode_heartbeat,
    encode_notification,
    encode_tombstone,
)
from streamer.ips import AuthenticationFault, IpsClient, IpsError, IpsTransportError
from streamer.kafka import FencedError, Publisher, PublishError
from streamer.metrics import Metrics
from streamer.model import Heartbeat, JobEvent, TrackedJob, event_type
from streamer.status import CompanyStatus

log = structlog.get_logger("streamer.poller")


@dataclass(frozen=True, slots=True)
class PollSettings:
    """Timing and retry policy of a company loop."""

    interval_s: float
    jitter: float = 0.1
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    auth_backoff_s: float = 600.0
    failures_before_degraded: int = 3
    heartbeat: bool = True


def company_source(endpoint: str, company_handle: str) -> str:
    """CloudEvents ``source``: the IPS endpoint plus the (percent-encoded) company handle."""
    return f"{endpoint.rstrip('/')}/companies/{urllib.parse.quote(company_handle, safe='')}"


class CompanyPoller:
    """Polls one company until stopped or ``max_cycles`` cycles ran."""

    def __init__(
        self,
        *,
        handle: str,
        client: IpsClient,
        publisher: Publisher,
        state: dict[str, TrackedJob],
        poll: PollSettings,
        diff_settings: DiffSettings,
        topics: TopicNames,
        source: str,
        metrics: Metrics,
        status: CompanyStatus,
        clock: Callable[[], datetime],
        stop: asyncio.Event,
        log_lookups: asyncio.Semaphore,
        polls: asyncio.Semaphore,
    ) -> None:
        self.handle = handle
        self._client = client
        self._publisher = publisher
        self.state = state
        self._poll = poll
        self._diff = diff_settings
        self._topics = topics
        self._source = source
        self._metrics = metrics
        self._status = status
        self._clock = clock
        self._stop = stop
        self._log_sem = log_lookups
        self._poll_sem = polls
        # None after a restore: the first diff flags its changes as possibly skipping states.
        self._prev_poll_at: datetime | None = None
        self._degraded = False
        self._status.tracked_jobs = len(state)

    async def run(self, max_cycles: int | None = None) -> None:
        """Cycle at the company's interval until the stop event is set."""
        cycles = 0
        interval = self._poll.interval_s
        # Spread companies over the whole interval so 1,000 of them do not poll in a burst.
        await self._sleep(random.uniform(0, interval))
        next_due = time.monotonic()
        while not self._stop.is_set():
            if not self._publisher.healthy and not await self._wait_for_kafka():
                break
            delay = await self.cycle()
            cycles += 1
            self._status.cycles = cycles
            if max_cycles is not None and cycles >= max_cycles:
                break
            now = time.monotonic()
            if delay is not None:
                next_due = now + delay
            else:
                next_due += interval
                if now > next_due + interval:
                    self._metrics.cycles_late.inc()
                    next_due = now
            await self._sleep(max(0.0, next_due - time.monotonic()))
        self._status.state = "stopped"

    async def _wait_for_kafka(self) -> bool:
        """Backpressure: no polling while Kafka is away. False if stopped meanwhile."""
        self._status.state = "waiting_for_kafka"
        healthy = asyncio.ensure_future(self._publisher.wait_healthy())
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({healthy, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not healthy.done():
                healthy.cancel()
        if healthy.done() and not healthy.cancelled():
            healthy.result()  # raises FencedError when another instance took over
            return True
        return False

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def cycle(self) -> float | None:
        """Run one cycle; return a backoff delay after a failure, None on success."""
        started_wall = self._clock()
        started = time.perf_counter()
        self._status.last_poll_at = started_wall
        try:
            async with self._poll_sem:
                snapshot = await self._client.get_active_jobs(self.handle)
        except IpsError as exc:
            return await self._poll_failed(exc, started_wall, time.perf_counter() - started)
        latency = time.perf_counter() - started
        self._metrics.poll_latency.observe(latency)
        now = self._clock()
        result = diff(self.state, snapshot, now, self._diff, self._prev_poll_at)
        next_state = result.state
        events: list[JobEvent] = list(result.events)
        changed = set(result.changed)
        tombstones: list[str] = []
        for handle, (event, tracked) in zip(
            result.pending_completion,
            await asyncio.gather(
                *(self._complete(next_state[h], now) for h in result.pending_completion)
            ),
            strict=True,
        ):
            if event is not None:
                events.append(event)
            if tracked is None:
                del next_state[handle]
                tombstones.append(handle)
                changed.discard(handle)
            elif tracked is not next_state[handle]:
                next_state[handle] = tracked
                changed.add(handle)
        records: list[Record] = [
            encode_event(e, source=self._source, topics=self._topics) for e in events
        ]
        records.extend(
            encode_checkpoint(next_state[h], topics=self._topics) for h in sorted(changed)
        )
        records.extend(encode_tombstone(h, topics=self._topics) for h in tombstones)
        recovered = self._status.consecutive_failures > 0
        if self._degraded:
            records.append(self._notification("company_recovered", "polling succeeds again", now))
        if self._poll.heartbeat:
            records.append(
                encode_heartbeat(
                    Heartbeat(self.handle, now, True, latency, len(snapshot.jobs), now),
                    source=self._source,
                    topics=self._topics,
                )
            )
        if not await self._publish(records):
            return None  # state kept; the loop waits for Kafka before polling again
        committed = time.perf_counter()
        self._metrics.poll_to_commit.observe(committed - started)
        self.state = next_state
        self._prev_poll_at = now
        self._degraded = False
        for e in events:
            self._metrics.events.labels(event_type(e)).inc()
        self._metrics.polls.labels("ok").inc()
        st = self._status
        st.last_success_at = now
        st.active_jobs = len(snapshot.jobs)
        st.tracked_jobs = len(next_state)
        st.consecutive_failures = 0
        st.last_error = st.last_error_kind = None
        st.state = "ok"
        log.info(
            "company_cycle",
            company=self.handle,
            jobs=len(snapshot.jobs),
            events=len(events),
            completed=len(tombstones),
            pending_completion=len(result.pending_completion) - len(tombstones),
            records=len(records),
            poll_ms=round(latency * 1000, 1),
            commit_ms=round((committed - started - latency) * 1000, 1),
            recovered=recovered or None,
        )
        return None

    async def _complete(
        self, tracked: TrackedJob, now: datetime
    ) -> tuple[JobEvent | None, TrackedJob | None]:
        """Look the vanished job's log up once; decide its completion (pure rule in diff)."""
        job_log = None
        try:
            async with self._log_sem:
                job_log = await self._client.get_job_log(self.handle, tracked.snapshot.job_handle)
            self._metrics.job_log_lookups.labels("found" if job_log else "absent").inc()
        except IpsTransportError as exc:
            # Not an answer: try again next cycle without spending one of the bounded attempts.
            self._metrics.job_log_lookups.labels("error").inc()
            log.warning(
                "job_log_lookup_failed",
                company=self.handle,
                job=tracked.snapshot.job_handle,
                error=str(exc),
            )
            return None, tracked
        except IpsError as exc:
            self._metrics.job_log_lookups.labels("fault").inc()
            log.warning(
                "job_log_lookup_fault",
                company=self.handle,
                job=tracked.snapshot.job_handle,
                error=str(exc),
            )
        return complete(tracked, job_log, now, self._diff)

    async def _poll_failed(self, exc: IpsError, at: datetime, latency: float) -> float:
        kind = getattr(exc, "kind", type(exc).__name__)
        st = self._status
        st.consecutive_failures += 1
        st.last_error = str(exc)
        st.last_error_kind = kind
        self._metrics.polls.labels("failed").inc()
        self._metrics.poll_failures.labels(kind).inc()
        records: list[Record] = []
        auth = isinstance(exc, AuthenticationFault)
        if auth:
            st.state = "auth_failed"
            delay = self._poll.auth_backoff_s
            log.error(
                "ips_authentication_failed",
                company=self.handle,
                error=str(exc),
                retry_in_s=delay,
            )
        else:
            st.state = "failing"
            n = st.consecutive_failures
            base = min(self._poll.backoff_max_s, self._poll.backoff_initial_s * 2 ** (n - 1))
            delay = min(base * random.uniform(0.5, 1.5), self._poll.backoff_max_s)
            log.warning(
                "poll_failed",
                company=self.handle,
                kind=kind,
                error=str(exc),
                failures=n,
                retry_in_s=round(delay, 2),
            )
        if (auth or st.consecutive_failures >= self._poll.failures_before_degraded) and not (
            self._degraded
        ):
            self._degraded = True
            what = "authentication_failing" if auth else "company_unreachable"
            records.append(self._notification(what, f"{kind}: {exc}", at))
        if self._poll.heartbeat:
            records.append(
                encode_heartbeat(
                    Heartbeat(
                        self.handle, at, False, latency, st.active_jobs, st.last_success_at, kind
                    ),
                    source=self._source,
                    topics=self._topics,
                )
            )
        if records:
            await self._publish(records)
        return delay

    def _notification(self, kind: str, message: str, at: datetime) -> Record:
        return encode_notification(
            kind, self.handle, message, at, source=self._source, topics=self._topics
        )

    async def _publish(self, records: Sequence[Record]) -> bool:
        try:
            await self._publisher.publish(records)
        except FencedError:
            raise
        except PublishError as exc:
            self._status.state = "waiting_for_kafka"
            self._metrics.commit_failures.inc()
            log.warning("publish_failed", company=self.handle, error=str(exc))
            return False
        return True
