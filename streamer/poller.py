"""One company's poll loop: poll, diff, look up job logs, settle, reconcile, publish atomically,
then advance.

The loop's state only advances after Kafka committed the cycle's records. A failed poll produces no
diff and no completion; a failed commit leaves the state where it was, and the next cycle diffs the
next snapshot against the last committed state, so the net change is still published (flagged as
possibly skipping states: every failed or uncommitted cycle since the last commit sets the gap).

A company loop never ends because of one bad cycle: an error that escapes a cycle (a bug, a reply
nobody foresaw) is logged with the company, counted as a failed poll of kind ``internal_error``,
and retried with the same backoff as any other failure, so other companies never notice.

Reconciliation (:mod:`streamer.reconciler`, on unless the poller is given no policy) adds the
completions the job log shows and no poll saw to the same cycle's records, with the company's
ledger. Completions other than ``succeeded`` then get the first error and warning messages of
their job log (:mod:`streamer.log_details`); a look-up that fails leaves them null.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

import structlog

from streamer.checkpoint import encode_ledger
from streamer.completion_context import attach
from streamer.cycle import Settled, cycle_records, heartbeat_due, owned, settle
from streamer.diff import DiffSettings, diff
from streamer.encode import (
    DEFAULT_CONTRACT,
    Contract,
    Record,
    TopicNames,
    encode_heartbeat,
    encode_notification,
    encode_tombstone,
)
from streamer.filters import JobFilter, publishable, screen
from streamer.ips import AuthenticationFault, IpsError, IpsTransportError, JobSource
from streamer.kafka import CommitUncertain, FencedError, PublishError, RecordRejected
from streamer.log_details import LogDetails, LogDetailsPolicy
from streamer.metrics import Metrics
from streamer.model import (
    Heartbeat,
    JobLog,
    Snapshot,
    TrackedJob,
    event_type,
)
from streamer.privacy import EmailPolicy, redact_state
from streamer.reconcile import CompanyLedger, LedgerStep, Window, already_reported
from streamer.reconciler import CompanyReconciler, ReconcilePolicy
from streamer.record_guard import RecordGuard
from streamer.retry import Backoff, Uniform, jittered, sleep_or_stop
from streamer.status import CompanyStatus

log = structlog.get_logger("streamer.poller")

#: The failure kind of an error that escaped a cycle (not an IPS answer: a bug or a surprise).
INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class PollSettings:
    """Timing and retry policy of a company loop."""

    interval_s: float
    #: Relative spread of every cycle's interval (0.1: each wait is 0.9-1.1 x interval).
    jitter: float = 0.1
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    auth_backoff_s: float = 600.0
    failures_before_degraded: int = 3
    heartbeat: bool = True
    #: Seconds between the heartbeats of a company whose poll outcome (ok, error, active jobs)
    #: does not change; a change or a failed poll publishes one at once. 0: every cycle.
    heartbeat_every_s: float = 0.0
    #: Log every committed cycle (``company_cycle``) at info; False: at debug.
    cycle_lines: bool = True
    #: Seconds between a company's ``company_summary`` lines at info (0: none).
    summary_every_s: float = 0.0
    #: Records above this are never sent: jobs are cut to fit (see streamer.limits).
    max_record_bytes: int = 1_000_000
    #: Seconds: the loop's wake-ups between cycles fall on multiples of this on the event
    #: loop's clock (0: exact), so that companies due in the same slot wake together (see
    #: :func:`streamer.retry.sleep_or_stop`).
    wake_grid_s: float = 0.0

    @property
    def backoff(self) -> Backoff:
        """The retry policy after failed polls."""
        return Backoff(initial_s=self.backoff_initial_s, max_s=self.backoff_max_s)


class BatchSink(Protocol):
    """Where a poller commits its cycles (the Kafka publisher, or a fake in tests)."""

    @property
    def healthy(self) -> bool:
        """True while batches can be committed."""

    async def wait_healthy(self) -> None:
        """Return once batches can be committed again."""

    async def publish(self, records: Sequence[Record]) -> None:
        """Commit ``records`` atomically; raise :class:`PublishError` if not committed."""

    def committed_state(self, company: str, epoch: int) -> dict[str, TrackedJob] | None:
        """The company's committed state once re-read after an uncertain commit ``epoch``."""

    def committed_ledger(self, company: str, epoch: int) -> CompanyLedger | None:
        """The company's committed ledger, re-read with :meth:`committed_state`."""


@dataclass(slots=True)
class _Summary:
    """A company's cycles since its last ``company_summary`` line (monotonic ``since``)."""

    since: float
    cycles: int = 0
    failed: int = 0
    events: int = 0
    records: int = 0
    max_ms: float = 0.0
    #: False until the first line: the first committed cycle is reported at once.
    logged: bool = False


def company_source(endpoint: str, company_handle: str) -> str:
    """CloudEvents ``source``: the IPS endpoint plus the (percent-encoded) company handle."""
    return f"{endpoint.rstrip('/')}/companies/{urllib.parse.quote(company_handle, safe='')}"


class CompanyPoller:
    """Polls one company until stopped or ``max_cycles`` cycles ran."""

    def __init__(
        self,
        *,
        handle: str,
        client: JobSource,
        publisher: BatchSink,
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
        monotonic: Callable[[], float] = time.monotonic,
        uniform: Uniform = random.uniform,
        sleep: Callable[[float], Awaitable[bool]] | None = None,
        reconcile: ReconcilePolicy | None = None,
        ledger: CompanyLedger | None = None,
        contract: Contract = DEFAULT_CONTRACT,
        job_filter: JobFilter | None = None,
        privacy: EmailPolicy | None = None,
        log_details: LogDetailsPolicy | None = None,
    ) -> None:
        self.handle = handle
        self._client = client
        self._publisher = publisher
        # [filter] and [privacy]: the client already redacts its replies; restored state is
        # redacted here, and the checkpoint records that held the old value are rewritten.
        self._filter = job_filter or JobFilter()
        self._privacy = privacy or EmailPolicy()
        self.state, self._rewrite = redact_state(self._privacy, state)
        self._poll = poll
        self._backoff = poll.backoff
        self._diff = diff_settings
        self._topics = topics
        self._source = source
        self._contract = contract
        self._metrics = metrics
        self._status = status
        self._clock = clock
        self._stop = stop
        self._log_sem = log_lookups
        self._poll_sem = polls
        self._monotonic = monotonic
        self._uniform = uniform
        self._sleep: Callable[[float], Awaitable[bool]] = sleep or (
            lambda seconds: sleep_or_stop(stop, seconds, grid_s=poll.wake_grid_s)
        )
        # None after a restore: the first diff flags its changes as possibly skipping states.
        self._prev_poll_at: datetime | None = None
        # A poll failed, or a cycle did not commit, since the last committed cycle.
        self._gap = False
        self._records = RecordGuard(
            handle=handle,
            limit=poll.max_record_bytes,
            metrics=metrics,
            source=source,
            topics=topics,
            contract=contract,
        )
        # What the next company_summary line reports (see _summarize).
        self._summary = _Summary(monotonic())
        # The last heartbeat committed (None: none yet, the next cycle publishes one).
        self._last_heartbeat: Heartbeat | None = None
        # Set after an uncertain commit: the state must be re-read before the next diff.
        self._resync_epoch: int | None = None
        self._degraded = False
        self._status.tracked_jobs = len(state)
        # Reconciliation: the committed ledger, and the reconciler (None: reconciliation off).
        self.ledger = ledger
        self._reconciler = (
            None
            if reconcile is None
            else CompanyReconciler(
                handle=handle,
                client=client,
                log_lookups=log_lookups,
                policy=reconcile,
                backoff=self._backoff,
                failures_before_degraded=poll.failures_before_degraded,
                metrics=metrics,
                status=status,
                monotonic=monotonic,
                uniform=uniform,
                notify=self._notification,
                job_filter=self._filter,
            )
        )
        self._status.reconciled_to = None if ledger is None else ledger.watermark
        # The messages of completions' job logs (default policy unless one is given).
        self._details = LogDetails(
            handle=handle,
            client=client,
            log_lookups=log_lookups,
            policy=log_details or LogDetailsPolicy(),
            metrics=metrics,
            stop=stop,
        )

    @property
    def gap(self) -> bool:
        """True when the next diff may have missed states (a failed or uncommitted cycle)."""
        return self._gap or self._prev_poll_at is None

    async def run(self, max_cycles: int | None = None) -> None:
        """Cycle at the company's (jittered) interval until stopped or ``max_cycles`` ran."""
        cycles = 0
        interval = self._poll.interval_s
        # Spread companies over the whole interval so 1,000 of them do not poll in a burst.
        stopped = await self._sleep(self._uniform(0, interval))
        next_due = self._monotonic()
        while not stopped and not self._stop.is_set():
            if not self._publisher.healthy and not await self._wait_for_kafka():
                break
            delay = await self.cycle()
            cycles += 1
            self._status.cycles = cycles
            if max_cycles is not None and cycles >= max_cycles:
                break
            now = self._monotonic()
            if delay is not None:
                next_due = now + delay
            else:
                next_due += jittered(interval, self._poll.jitter, self._uniform)
                if now > next_due + interval:
                    # A whole cycle was skipped: the next diff may have missed states.
                    self._metrics.cycles_late.inc()
                    self._gap = True
                    next_due = now
            stopped = await self._sleep(max(0.0, next_due - self._monotonic()))
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

    async def cycle(self) -> float | None:
        """Run one cycle; return a backoff delay after a failure, None on success.

        Only :class:`FencedError` (this instance must stop) and cancellation leave this method;
        any other error is this company's failed cycle.
        """
        started_wall = self._clock()
        started = time.perf_counter()
        try:
            return await self._cycle(started_wall, started)
        except (FencedError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("company_cycle_error", company=self.handle, error=repr(exc))
            return await self._poll_failed(
                exc, INTERNAL_ERROR, started_wall, time.perf_counter() - started
            )

    async def _cycle(self, started_wall: datetime, started: float) -> float | None:
        """poll -> diff -> job-log look-ups -> settle -> records -> publish -> advance."""
        if self._resync_epoch is not None and not self._resync():
            return self._backoff.delay(1, self._uniform)  # the re-read is not there yet
        self._status.last_poll_at = started_wall
        try:
            async with self._poll_sem:
                snapshot = await self._client.get_active_jobs(self.handle)
        except IpsError as exc:
            kind = getattr(exc, "kind", type(exc).__name__)
            return await self._poll_failed(exc, kind, started_wall, time.perf_counter() - started)
        latency = time.perf_counter() - started
        self._metrics.poll_latency.observe(latency)
        listed_jobs = len(snapshot.jobs)
        # Jobs of filtered types are invisible from here on (see streamer.filters).
        screened = screen(self._filter, self._owned(snapshot), self.state)
        streamed_jobs = len(screened.snapshot.jobs)
        snapshot = self._unreported(self._records.fit(screened.snapshot))
        now = self._clock()
        result = diff(screened.state, snapshot, now, self._diff, self._prev_poll_at, gap=self._gap)
        logs = await self._look_up(result.pending_completion)
        settled = self._publishable(settle(result, logs, now, self._diff))
        step, notes, todo = (
            (None, [], None)
            if self._reconciler is None
            else await self._reconciler.step(settled, now, self.ledger)
        )
        if step is not None and step.events:
            settled = replace(settled, events=settled.events + step.events)
        messages = await self._details.messages(settled.events, logs)
        if messages:
            settled = replace(settled, events=attach(settled.events, messages))
        heartbeat = self._heartbeat(Heartbeat(self.handle, now, True, latency, streamed_jobs, now))
        records = cycle_records(
            settled,
            source=self._source,
            topics=self._topics,
            heartbeat=heartbeat,
            contract=self._contract,
        )
        records.extend(self._forget(screened.forgotten))
        ledger = self.ledger if step is None else step.ledger
        if ledger is not None and ledger is not self.ledger:
            records.append(
                encode_ledger(self.handle, ledger, topics=self._topics, contract=self._contract)
            )
        records.extend(notes)
        if self._degraded:
            records.append(self._notification("company_recovered", "polling succeeds again", now))
        if not await self._publish(records):
            return None  # state kept; the loop waits for Kafka before polling again
        committed = time.perf_counter()
        if heartbeat is not None:
            self._last_heartbeat = heartbeat
        self._advance(settled.state, now)
        self._advance_ledger(ledger, step, todo)
        self._metrics.poll_to_commit.observe(committed - started)
        if settled.events:
            by_type = self._metrics.events_by_type
            for e in settled.events:
                kind = event_type(e)
                (by_type.get(kind) or self._metrics.events.labels(kind)).inc()
        self._metrics.polls_ok.inc()
        st = self._status
        recovered = st.consecutive_failures > 0
        st.last_success_at = now
        st.active_jobs = streamed_jobs
        st.consecutive_failures = 0
        st.last_error = st.last_error_kind = None
        st.state = "ok"
        poll_to_commit_ms = round((committed - started) * 1000, 1)
        self._summarize(len(settled.events), len(records), poll_to_commit_ms, listed_jobs)
        (log.info if self._poll.cycle_lines else log.debug)(
            "company_cycle",
            company=self.handle,
            jobs=listed_jobs,
            filtered_out=screened.filtered_out or None,
            forgotten=len(screened.forgotten) or None,
            events=len(settled.events),
            completed=len(settled.completed),
            reconciled=len(step.events) if step is not None and step.events else None,
            pending_completion=len(settled.pending),
            records=len(records),
            poll_ms=round(latency * 1000, 1),
            commit_ms=round((committed - started - latency) * 1000, 1),
            recovered=recovered or None,
        )
        return None

    def _publishable(self, settled: Settled) -> Settled:
        """The events ``[filter]`` publishes (renumbered) and the checkpoints to rewrite."""
        events, state = publishable(self._filter, settled.events, settled.state)
        changed = settled.changed
        if self._rewrite:
            # Checkpoint records written before the privacy policy changed: rewrite them once.
            changed = tuple(sorted({*changed, *(h for h in self._rewrite if h in state)}))
        if events is settled.events and state is settled.state and changed is settled.changed:
            return settled
        return replace(settled, events=events, state=state, changed=changed)

    def _forget(self, handles: Sequence[str]) -> list[Record]:
        """Tombstones of tracked jobs whose type is now filtered out (public and private)."""
        if handles:
            log.info("filtered_jobs_forgotten", company=self.handle, jobs=len(handles))
        latest = [encode_tombstone(h, topics=self._topics) for h in handles]
        return latest + [replace(r, topic=self._topics.checkpoint) for r in latest]

    def _summarize(self, events: int, records: int, poll_to_commit_ms: float, jobs: int) -> None:
        """Count a committed cycle; log ``company_summary`` every ``summary_every_s``."""
        every = self._poll.summary_every_s
        if every <= 0:
            return
        sm = self._summary
        sm.cycles += 1
        sm.events += events
        sm.records += records
        sm.max_ms = max(sm.max_ms, poll_to_commit_ms)
        now = self._monotonic()
        if sm.logged and now - sm.since < every:
            return
        log.info(
            "company_summary",
            company=self.handle,
            seconds=round(now - sm.since, 1),
            cycles=sm.cycles,
            failed_polls=sm.failed,
            events=sm.events,
            records=sm.records,
            max_poll_to_commit_ms=sm.max_ms,
            jobs=jobs,
        )
        self._summary = _Summary(now, logged=True)

    def _unreported(self, snapshot: Snapshot) -> Snapshot:
        """Leave out listed jobs the ledger already reports completed (never observed again)."""
        kept, dropped = already_reported(snapshot, self.state, self.ledger)
        if dropped:
            log.warning(
                "completed_job_listed_again",
                company=self.handle,
                jobs=len(dropped),
                first=dropped[0][:200],
            )
        return kept

    def _owned(self, listed: Snapshot) -> Snapshot:
        snapshot = owned(listed, self.handle)
        if snapshot is not listed:
            log.warning(
                "jobs_of_another_company",
                company=self.handle,
                others=sorted({j.company_handle for j in listed.jobs} - {self.handle})[:5],
            )
        return snapshot

    def _resync(self) -> bool:
        """Continue from what Kafka really committed after an uncertain commit (False: not yet)."""
        assert self._resync_epoch is not None
        state = self._publisher.committed_state(self.handle, self._resync_epoch)
        if state is None:
            return False
        log.info(
            "company_state_reread",
            company=self.handle,
            jobs=len(state),
            changed=state != self.state or None,
        )
        self.state, self._rewrite = redact_state(self._privacy, state)
        self._status.tracked_jobs = len(state)
        # The ledger was committed in the same transactions as the state: re-read it too.
        self.ledger = self._publisher.committed_ledger(self.handle, self._resync_epoch)
        self._status.reconciled_to = None if self.ledger is None else self.ledger.watermark
        # Which snapshot the committed state came from is not known: diff as after a restore.
        self._prev_poll_at = None
        self._resync_epoch = None
        if self._reconciler is not None:
            self._reconciler.reset()
        return True

    def _advance_ledger(
        self, ledger: CompanyLedger | None, step: LedgerStep | None, todo: list[Window] | None
    ) -> None:
        """The cycle committed: its ledger is the company's (and what its pass left to list)."""
        self.ledger = ledger
        if ledger is not None:
            self._status.reconciled_to = ledger.watermark
        if self._reconciler is not None:
            self._reconciler.advance(step, todo)

    def _reconcile_soon(self) -> None:
        if self._reconciler is not None:
            self._reconciler.soon()

    def _advance(self, state: dict[str, TrackedJob], now: datetime) -> None:
        """The cycle committed: its state is the new base of the next diff."""
        self.state = state
        self._rewrite = ()
        self._prev_poll_at = now
        self._gap = False
        self._degraded = False
        self._status.tracked_jobs = len(state)

    # ---- job logs of vanished jobs ------------------------------------------------------------

    async def _look_up(self, handles: Sequence[str]) -> dict[str, JobLog | None]:
        """Each vanished job's log, once; a handle left out was not answered (transport error)."""
        answers = await asyncio.gather(*(self._job_log(h) for h in handles))
        return {h: log_ for h, (answered, log_) in zip(handles, answers, strict=True) if answered}

    async def _job_log(self, job_handle: str) -> tuple[bool, JobLog | None]:
        try:
            async with self._log_sem:
                job_log = await self._client.get_job_log(self.handle, job_handle)
        except IpsTransportError as exc:
            # Not an answer: try again next cycle without spending one of the bounded attempts.
            self._metrics.job_log_lookups.labels("error").inc()
            log.warning(
                "job_log_lookup_failed", company=self.handle, job=job_handle, error=str(exc)
            )
            return False, None
        except IpsError as exc:
            self._metrics.job_log_lookups.labels("fault").inc()
            log.warning("job_log_lookup_fault", company=self.handle, job=job_handle, error=str(exc))
            return True, None
        self._metrics.job_log_lookups.labels("found" if job_log else "absent").inc()
        return True, job_log

    async def _poll_failed(self, exc: Exception, kind: str, at: datetime, latency: float) -> float:
        self._summary.failed += 1
        self._gap = True
        self._reconcile_soon()
        st = self._status
        st.consecutive_failures += 1
        st.last_error = str(exc)
        st.last_error_kind = kind
        self._metrics.polls_failed.inc()
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
            delay = self._backoff.delay(n, self._uniform)
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
        heartbeat = self._heartbeat(
            Heartbeat(self.handle, at, False, latency, st.active_jobs, st.last_success_at, kind)
        )
        if heartbeat is not None:
            records.append(
                encode_heartbeat(
                    heartbeat, source=self._source, topics=self._topics, contract=self._contract
                )
            )
        if records and await self._publish(records) and heartbeat is not None:
            self._last_heartbeat = heartbeat
        return delay

    def _heartbeat(self, beat: Heartbeat) -> Heartbeat | None:
        """``beat`` if this cycle publishes a heartbeat (see :func:`heartbeat_due`), else None."""
        poll = self._poll
        if poll.heartbeat and heartbeat_due(self._last_heartbeat, beat, poll.heartbeat_every_s):
            return beat
        return None

    def _notification(self, kind: str, message: str, at: datetime) -> Record:
        return encode_notification(
            kind,
            self.handle,
            message,
            at,
            source=self._source,
            topics=self._topics,
            contract=self._contract,
        )

    async def _publish(self, records: Sequence[Record]) -> bool:
        """Commit the cycle; records Kafka refuses go to the dead letter, the rest is committed.

        A cycle without records (nothing changed, no heartbeat due) commits nothing: no Kafka
        transaction, as if an empty one had committed.
        """
        if not records:
            return True
        records = self._records.within_limit(records, self._clock())
        for attempt in (1, 2):
            try:
                await self._publisher.publish(records)
            except FencedError:
                raise
            except RecordRejected as exc:
                if attempt == 1:
                    records = self._records.dead_letters(records, exc.rejections, self._clock())
                    continue
                return self._publish_failed(exc)
            except PublishError as exc:
                return self._publish_failed(exc)
            return True
        return False  # pragma: no cover - the loop always returns

    def _publish_failed(self, exc: PublishError) -> bool:
        self._gap = True
        self._reconcile_soon()
        if isinstance(exc, CommitUncertain):
            self._resync_epoch = exc.epoch
        self._status.state = "waiting_for_kafka"
        self._metrics.commit_failures.inc()
        log.warning("publish_failed", company=self.handle, error=str(exc))
        return False
