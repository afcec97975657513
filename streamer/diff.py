"""The diff core: previous per-job state + a new ``getActiveJobs`` snapshot → events + next state.

Pure: no I/O, never reads the clock (``now`` is passed in), stdlib and :mod:`streamer.model` /
:mod:`streamer.outcome` only. Rules:

* **New handle** → ``job.observed`` (sequence 1, full snapshot). ``seen_after_start`` is true when
  the job is already ``Running``/``Stopping``/``Done`` or its progress is above 0.
* **State changed** → ``job.state_changed``. ``may_have_skipped`` is true when the previous
  successful poll is unknown (state restored after a restart), when the shell says a poll failed or
  was skipped since the last committed one (``gap``), or when the previous poll is older than 1.5
  poll intervals (a cycle ran late).
* **Progress fields changed** (``progress``, ``progress_message``, ``last_progress_update``,
  ``total_size``, ``task_progress``) compared with the status last published on the progress topic
  → ``job.progress``, unless coalesced (see :class:`DiffSettings`). Coalesced changes are not lost:
  the tracked snapshot is always the newest (and checkpointed), the next ``job.progress`` carries
  the newest status, and a pending change is flushed once the interval has passed.
  State changes, stalls, recoveries and completions are never coalesced.
* **Stall** (only when ``stall_after_s`` is set): a ``Running`` job that has not moved for
  ``stall_after_s`` → ``job.stalled`` once. "Moved" means its progress fields or its state changed;
  a state change restarts the stall clock, so a job that queued for an hour is not stalled the
  moment it starts running. A stalled job that moves → ``job.recovered``.
* Per job and cycle the order is: state change, recovery, progress, stall.
* **Vanished** (in state, absent from the snapshot): ``vanished_at`` is set, no event; the job is
  listed in ``pending_completion`` until :func:`complete` decides its outcome from the job log.
  ``last_seen_at`` becomes ``prev_poll_at`` (the last snapshot that did list it). A vanished job
  that reappears is tracked on as if it had never left: no completion, no invented event (a
  state change it shows on return is flagged ``may_have_skipped``).
* **Duplicate** ``jobHandle`` in one reply: the **last** one wins, as a dict built from the reply
  in order would do; IPS never sends duplicates, but the rule must be deterministic.
* Every event adds 1 to the job's sequence (1, 2, 3, ... per job); event ids are
  ``<jobHandle>:<sequence>``. Events are ordered by ``job_handle``, then per-job emission order,
  so the order of jobs in the reply does not matter.
* A snapshot with nothing new emits nothing and changes nothing: unchanged jobs keep their
  :class:`~streamer.model.TrackedJob` object (so ``last_seen_at`` is refreshed only when a job's
  record is rewritten for another reason; a checkpoint per job per poll would cost more than it
  tells). The only exceptions are time-driven: a stall, or the flush of a coalesced progress change.

Only ``status`` is published by the state/progress events. The other ``ActiveJob`` fields are the
job's definition; if IPS ever changes one (say ``serverName``), the tracked snapshot and therefore
the checkpoint record (``job.latest``) take the new value, but no job event announces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeAlias

from streamer import outcome
from streamer.model import (
    JobCompleted,
    JobEvent,
    JobLog,
    JobObserved,
    JobProgress,
    JobRecovered,
    JobSnapshot,
    JobStalled,
    JobState,
    JobStateChanged,
    JobStatus,
    Outcome,
    Snapshot,
    TrackedJob,
)

__all__ = [
    "CompanyState",
    "DiffResult",
    "DiffSettings",
    "apply",
    "complete",
    "diff",
]

#: A job first seen in one of these states has visibly started: earlier states were missed.
_STARTED_STATES: frozenset[str] = frozenset(
    {JobState.RUNNING.value, JobState.STOPPING.value, JobState.DONE.value}
)
_FULL_PROGRESS = 100


@dataclass(frozen=True, slots=True)
class DiffSettings:
    """Tuning of one company's diff. The defaults publish every change and detect no stalls."""

    #: Minimum change of ``ActiveJob.progress`` (0-100 points) before a ``job.progress`` event;
    #: a changed message, a changed task state or reaching 100 always qualifies.
    progress_min_step: int = 0
    #: Minimum seconds between two ``job.progress`` events of one job.
    progress_min_interval_s: float = 0.0
    #: Seconds without movement before a running job is stalled; ``None`` turns detection off.
    stall_after_s: float | None = None
    #: The poll interval, for ``may_have_skipped``.
    poll_interval_s: float = 5.0
    #: Job log lookups before a vanished job is completed with outcome ``unknown``.
    log_max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.progress_min_step < 0 or self.progress_min_interval_s < 0:
            raise ValueError("progress coalescing settings must be >= 0")
        if self.stall_after_s is not None and self.stall_after_s <= 0:
            raise ValueError("stall_after_s must be > 0 or None")
        if self.poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be > 0")
        if self.log_max_attempts < 1:
            raise ValueError("log_max_attempts must be >= 1")


#: One company's tracked jobs, keyed by ``jobHandle``.
CompanyState: TypeAlias = Mapping[str, TrackedJob]


@dataclass(frozen=True, slots=True)
class DiffResult:
    """What one diff produced."""

    #: Ordered by ``job_handle``, then per-job emission order.
    events: tuple[JobEvent, ...]
    #: The next state, including vanished jobs that still await completion.
    state: dict[str, TrackedJob]
    #: Sorted handles whose :class:`TrackedJob` differs from ``prev`` (each needs a checkpoint).
    changed: tuple[str, ...]
    #: Sorted handles of vanished jobs waiting for a job log lookup (newly and earlier vanished).
    pending_completion: tuple[str, ...]


def diff(
    prev: CompanyState,
    snapshot: Snapshot,
    now: datetime,
    settings: DiffSettings,
    prev_poll_at: datetime | None,
    *,
    gap: bool = False,
) -> DiffResult:
    """Diff one company's complete, successful snapshot against its previous state.

    ``gap`` is the shell's word that a poll failed, or a cycle did not commit, since the snapshot
    ``prev`` was built from: any change seen now may hide intermediate states.
    """
    # The last duplicate wins (see module docstring).
    current = {job.job_handle: job for job in snapshot.jobs}
    may_have_skipped = (
        gap
        or prev_poll_at is None
        or (now - prev_poll_at).total_seconds() > 1.5 * settings.poll_interval_s
    )
    # A job that last moved at or before this instant is due to stall.
    stall_due = (
        None if settings.stall_after_s is None else now - timedelta(seconds=settings.stall_after_s)
    )

    events: list[JobEvent] = []
    state = dict(prev)
    changed: list[str] = []
    matched = 0
    for handle, job in current.items():
        tracked = prev.get(handle)
        if tracked is None:
            state[handle] = _observe(job, now, events)
            changed.append(handle)
            continue
        matched += 1
        old = tracked.snapshot
        same = job is old or job == old  # one deep comparison; status is the first to differ
        if (
            same
            and tracked.last_progress_status is old.status  # no coalesced change held back
            and tracked.vanished_at is None
            and (
                stall_due is None
                or tracked.stalled
                or tracked.last_moved_at > stall_due
                or old.status.state != JobState.RUNNING
            )
        ):
            continue  # the common case: nothing moved and nothing is due
        new = _step(
            tracked, old if same else job, now, settings, may_have_skipped, stall_due, events
        )
        if new is not tracked:
            state[handle] = new
            changed.append(handle)

    pending: list[str] = []
    if matched < len(prev):
        for handle, tracked in prev.items():
            if handle in current:
                continue
            pending.append(handle)
            if tracked.vanished_at is None:
                # prev holds exactly the jobs of the last diffed snapshot, taken at prev_poll_at.
                last_seen = tracked.last_seen_at if prev_poll_at is None else prev_poll_at
                state[handle] = replace(
                    tracked,
                    vanished_at=now,
                    last_seen_at=last_seen,
                    vanished_after_gap=may_have_skipped,
                )
                changed.append(handle)

    # list.sort is stable: one job's events keep their emission order.
    events.sort(key=_by_handle)
    changed.sort()
    pending.sort()
    return DiffResult(tuple(events), state, tuple(changed), tuple(pending))


def complete(
    tracked: TrackedJob, log: JobLog | None, now: datetime, settings: DiffSettings
) -> tuple[JobCompleted | None, TrackedJob | None]:
    """Decide a vanished job's completion from one job log lookup.

    ``log`` is the lookup's result (``None``: not found, or the lookup failed). A log without
    ``end_date`` is not final. Returns ``(event, None)`` when the job is completed (drop it from
    state and tombstone its checkpoint), ``(None, tracked')`` to retry later with the attempt
    counted. After ``log_max_attempts`` lookups without a final log the outcome is ``unknown``,
    with the counts of the last log if there was one.
    """
    if tracked.vanished_at is None:
        raise ValueError(f"job {tracked.snapshot.job_handle!r} has not vanished")
    if log is not None and log.job_handle != tracked.snapshot.job_handle:
        raise ValueError(
            f"job log of {log.job_handle!r} given for job {tracked.snapshot.job_handle!r}"
        )
    attempts = tracked.log_attempts + 1
    job = tracked.snapshot
    if log is None or log.end_date is None:
        if attempts < settings.log_max_attempts:
            return None, replace(tracked, log_attempts=attempts)
        verdict, ended_at = Outcome.UNKNOWN, None
    else:
        verdict, ended_at = outcome.classify(log), log.end_date
    event = JobCompleted(
        company_handle=job.company_handle,
        job_handle=job.job_handle,
        sequence=tracked.sequence + 1,
        observed_at=now,
        outcome=verdict,
        last_status=job.status,
        counts=None if log is None else outcome.counts(log),
        log_type=None if log is None else log.log_type,
        ended_at=ended_at,
        log_attempts=attempts,
        may_have_skipped=tracked.vanished_after_gap,
        started_at=None if log is None else log.start_date,
    )
    return event, None


def apply(jobs: Mapping[str, JobSnapshot], events: Iterable[JobEvent]) -> dict[str, JobSnapshot]:
    """Fold events into a consumer's view of the active jobs (a new dict; ``jobs`` is untouched).

    ``job.observed`` sets the snapshot, events with a status replace its status, ``job.completed``
    removes the job. Status updates for a job the consumer never saw observed are ignored: a
    consumer that starts mid-stream learns such jobs from the ``latest`` topic.
    """
    result = dict(jobs)
    for event in events:
        handle = event.job_handle
        if isinstance(event, JobObserved):
            result[handle] = event.snapshot
        elif isinstance(event, JobCompleted):
            result.pop(handle, None)
        else:
            known = result.get(handle)
            if known is not None and known.status != event.status:
                result[handle] = replace(known, status=event.status)
    return result


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _by_handle(event: JobEvent) -> str:
    return event.job_handle


def _observe(job: JobSnapshot, now: datetime, events: list[JobEvent]) -> TrackedJob:
    """A job seen for the first time: ``job.observed`` and a fresh record."""
    status = job.status
    events.append(
        JobObserved(
            company_handle=job.company_handle,
            job_handle=job.job_handle,
            sequence=1,
            observed_at=now,
            snapshot=job,
            seen_after_start=status.state in _STARTED_STATES or status.progress > 0,
        )
    )
    return TrackedJob(
        snapshot=job,
        sequence=1,
        last_seen_at=now,
        last_progress_status=status,
        last_progress_at=now,
        last_moved_at=now,
    )


def _same_progress(a: JobStatus, b: JobStatus) -> bool:
    """Whether two statuses agree on every progress field (everything but ``state``)."""
    return a is b or (
        a.progress == b.progress
        and a.progress_message == b.progress_message
        and a.last_progress_update == b.last_progress_update
        and a.total_size == b.total_size
        and a.task_progress == b.task_progress
    )


def _worth_publishing(published: JobStatus, new: JobStatus, step: int) -> bool:
    """Whether a progress change is significant enough to pass the coalescing step."""
    if abs(new.progress - published.progress) >= step or new.progress >= _FULL_PROGRESS:
        return True
    if new.progress_message != published.progress_message:
        return True
    old_tasks, new_tasks = published.task_progress, new.task_progress
    return len(old_tasks) != len(new_tasks) or any(
        a.task_state != b.task_state for a, b in zip(old_tasks, new_tasks, strict=True)
    )


def _step(
    tracked: TrackedJob,
    job: JobSnapshot,
    now: datetime,
    settings: DiffSettings,
    may_have_skipped: bool,
    stall_due: datetime | None,
    events: list[JobEvent],
) -> TrackedJob:
    """Advance one known job (``job`` is ``tracked.snapshot`` itself when equal to it).

    Returns ``tracked`` itself when its record does not change.
    """
    old_status = tracked.snapshot.status
    status = job.status
    published = tracked.last_progress_status
    company, handle = job.company_handle, job.job_handle
    sequence = tracked.sequence
    last_moved_at = tracked.last_moved_at
    stalled = tracked.stalled

    state_moved = status.state != old_status.state
    if state_moved:
        sequence += 1
        events.append(
            JobStateChanged(
                company_handle=company,
                job_handle=handle,
                sequence=sequence,
                observed_at=now,
                from_state=old_status.state,
                to_state=status.state,
                status=status,
                # A job back from a vanished spell was not watched meanwhile, however short the gap.
                may_have_skipped=may_have_skipped or tracked.vanished_at is not None,
            )
        )
    if state_moved or not _same_progress(old_status, status):
        if stalled:
            sequence += 1
            events.append(
                JobRecovered(
                    company_handle=company,
                    job_handle=handle,
                    sequence=sequence,
                    observed_at=now,
                    status=status,
                    stalled_for_s=(now - last_moved_at).total_seconds(),
                )
            )
            stalled = False
        last_moved_at = now

    last_progress_at = tracked.last_progress_at
    if not _same_progress(published, status):
        elapsed = (now - last_progress_at).total_seconds()
        if elapsed >= settings.progress_min_interval_s and _worth_publishing(
            published, status, settings.progress_min_step
        ):
            sequence += 1
            rate, eta = _rate_eta(published.progress, status.progress, elapsed, now)
            events.append(
                JobProgress(
                    company_handle=company,
                    job_handle=handle,
                    sequence=sequence,
                    observed_at=now,
                    status=status,
                    rate=rate,
                    eta=eta,
                )
            )
            published, last_progress_at = status, now

    if (
        stall_due is not None
        and not stalled
        and status.state == JobState.RUNNING
        and last_moved_at <= stall_due
    ):
        sequence += 1
        events.append(
            JobStalled(
                company_handle=company,
                job_handle=handle,
                sequence=sequence,
                observed_at=now,
                status=status,
                stalled_for_s=(now - last_moved_at).total_seconds(),
            )
        )
        stalled = True

    if job is tracked.snapshot and tracked.vanished_at is None and sequence == tracked.sequence:
        return tracked  # e.g. a coalesced progress change still held back
    if published is not status and _same_progress(published, status):
        # Same progress fields (a state-only change): hold the current object, so the next
        # diff of this job takes the identity fast path.
        published = status
    return TrackedJob(
        snapshot=job,
        sequence=sequence,
        last_seen_at=now,
        last_progress_status=published,
        last_progress_at=last_progress_at,
        last_moved_at=last_moved_at,
        stalled=stalled,
    )


def _rate_eta(
    before: int, after: int, elapsed_s: float, now: datetime
) -> tuple[float | None, datetime | None]:
    """Progress points per second since the last progress event, and the completion it implies."""
    delta = after - before
    if delta <= 0 or elapsed_s <= 0:
        return None, None
    rate = delta / elapsed_s
    remaining = max(0, _FULL_PROGRESS - after)
    try:
        return rate, now + timedelta(seconds=remaining / rate)
    except OverflowError:  # a crawl of a point per decade: no useful estimate
        return rate, None
