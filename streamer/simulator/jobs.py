"""Simulated jobs and job logs as values, and what IPS would show of them at a given time.

Pure functions of a job's plan and a time: :func:`job_view` (the moving ``ActiveJob`` fields) and
:func:`log_details` (the ``JobLogDetail`` rows of a written log).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from streamer.model import JobState, Outcome
from streamer.simulator.catalog import JobKind, TaskSpec, file_name

NEW = JobState.NEW.value
WAITING = JobState.WAITING_COORDINATOR.value
RUNNING = JobState.RUNNING.value
GONE = "gone"


@dataclass(frozen=True, slots=True)
class Transition:
    """A job changed state at ``t`` (``from_state`` ``None`` = submitted; ``to_state`` gone)."""

    t: float
    company: str
    job_handle: str
    from_state: str | None
    to_state: str
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class LogWritten:
    """A job's log became visible at ``t``."""

    t: float
    company: str
    job_handle: str
    outcome: Outcome


Fact = Transition | LogWritten


@dataclass(frozen=True, slots=True)
class LogCounts:
    """The counters of a ``JobLog``."""

    success: int = 0
    error: int = 0
    warning: int = 0
    duplicate: int = 0
    update: int = 0
    total: int = 0
    transfer_success: int = 0
    transfer_error: int = 0
    transfer_warning: int = 0
    fatal: bool = False


def classify(counts: LogCounts) -> Outcome:
    """The outcome a job log's counters imply (the rule of ``ips-api.md`` section 5.4)."""
    if counts.fatal:
        return Outcome.FAILED
    if counts.error or counts.transfer_error:
        return Outcome.COMPLETED_WITH_ERRORS
    if counts.warning or counts.transfer_warning:
        return Outcome.COMPLETED_WITH_WARNINGS
    return Outcome.SUCCEEDED


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """A task of a job: runs while the job's progress fraction is within ``[start, end)``."""

    spec: TaskSpec
    start: float
    end: float
    concurrency: int


@dataclass(slots=True, eq=False)
class SimJob:
    """One submitted job: its fixed definition, its plan and its current state."""

    company: str
    handle: str
    name: str
    original_name: str
    kind: JobKind
    sub_job: str
    user_email: str
    locale: str | None
    description: str | None
    server_name: str
    total_size: int
    files: int
    submitted_at: float
    waiting_at: float
    running_at: float
    #: Running time to reach 100 %.
    duration: float
    #: Running time at which the job stops (``duration`` unless it fails part way).
    end_running: float
    #: Time a failed job stays listed after its fatal error.
    linger: float
    outcome: Outcome
    counts: LogCounts
    tasks: tuple[TaskPlan, ...]
    #: Progress publishing step (running seconds).
    step: float
    #: Sorted, disjoint ``(start, length)`` intervals of frozen progress; length may be ``inf``.
    stalls: list[tuple[float, float]] = field(default_factory=list)
    gone_at: float = math.inf
    state: str = NEW
    #: Render caches owned by :mod:`streamer.simulator.soap` (static text, last dynamic text).
    xml_static: tuple[str, str, str] | None = None
    xml_key: tuple[str, int] | None = None
    xml_dynamic: tuple[str, str] = ("", "")

    def running_time(self, t: float) -> float:
        """Running time accumulated at ``t`` (time since ``Running`` minus stalls)."""
        frozen = sum(min(t, s + n) - s for s, n in self.stalls if s < t)
        return max(0.0, t - self.running_at - frozen)

    def time_at_running(self, e: float) -> float:
        """The earliest time at which running time ``e`` is reached (``inf`` if never)."""
        t = self.running_at + e
        for s, n in self.stalls:
            if s >= t:
                break
            t += n
        return t

    def published_running(self, t: float) -> tuple[int, float]:
        """``(step, running time)`` of the last published progress step at ``t``.

        Step ``-1`` marks the end point (a failed job after its fatal error).
        """
        e = min(self.running_time(t), self.end_running)
        if e >= self.end_running:
            return -1, self.end_running
        k = int(e // self.step)
        return k, k * self.step


@dataclass(frozen=True, slots=True)
class SimJobLog:
    """A written job log (``JobLog``); details are derived from it on demand."""

    company: str
    job_handle: str
    job_name: str
    original_name: str
    user_email: str
    kind: JobKind
    description: str
    start: float
    end: float
    counts: LogCounts
    outcome: Outcome
    files: int


def stall_union(stalls: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sort stall intervals and merge overlapping ones."""
    merged: list[tuple[float, float]] = []
    for s, n in sorted(stalls):
        if merged and s <= merged[-1][0] + merged[-1][1]:
            ps, pn = merged[-1]
            merged[-1] = (ps, max(ps + pn, s + n) - ps)
        else:
            merged.append((s, n))
    return merged


@dataclass(frozen=True, slots=True)
class ItemView:
    """A ``TaskItemProgress`` as shown at some time."""

    name: str
    progress: float
    message: str
    last_update: float


@dataclass(frozen=True, slots=True)
class TaskView:
    """A ``TaskProgress`` as shown at some time."""

    task_type: str
    state: str
    processed: int
    processing: int
    pending: int
    progress: float
    message: str
    last_update: float
    items: tuple[ItemView, ...] = ()


@dataclass(frozen=True, slots=True)
class JobView:
    """The moving ``ActiveJob`` fields as shown at some time."""

    state: str
    progress: int
    message: str
    last_update: float
    tasks: tuple[TaskView, ...] = ()


def view_key(job: SimJob, t: float) -> tuple[str, int]:
    """A key that changes exactly when :func:`job_view` would show something different."""
    if job.state != RUNNING:
        return job.state, 0
    return RUNNING, job.published_running(t)[0]


def job_view(job: SimJob, t: float) -> JobView:
    """What ``getActiveJobs`` shows of ``job`` at time ``t`` (``job`` advanced to ``t``)."""
    if job.state == NEW:
        return JobView(NEW, 0, "", job.submitted_at)
    if job.state != RUNNING:
        return JobView(job.state, 0, "Waiting for coordinator", job.waiting_at)
    step, e = job.published_running(t)
    fraction = e / job.duration
    failed = step == -1 and job.outcome is Outcome.FAILED
    last = job.time_at_running(e)
    tasks = tuple(_task_view(job, plan, fraction, last, failed) for plan in job.tasks)
    progress = min(100, int(100 * fraction))
    message = f"Running ({progress}%)"
    for task in tasks:
        if task.state in ("Processing", "Failed"):
            message = task.message if task.state == "Processing" else "Job failed: fatal error"
            break
    return JobView(RUNNING, progress, message, last, tasks)


def _task_view(job: SimJob, plan: TaskPlan, f: float, last: float, failed: bool) -> TaskView:
    n, spec = job.files, plan.spec
    if f >= plan.end:
        done_at = job.time_at_running(plan.end * job.duration)
        return TaskView(spec.task_type, "Done", n, 0, 0, 1.0, "Done", done_at)
    if f < plan.start:
        return TaskView(spec.task_type, "New", 0, 0, n, 0.0, "", job.running_at)
    local = min(1.0, (f - plan.start) / (plan.end - plan.start))
    done = min(n, int(n * local))
    if failed:
        return TaskView(
            spec.task_type, "Failed", done, 0, n - done, round(local, 4), "Fatal error", last
        )
    processing = min(plan.concurrency, n - done)
    items: tuple[ItemView, ...] = ()
    if spec.with_items:
        within = n * local - done
        items = tuple(
            ItemView(
                file_name(job.kind, done + i),
                round(max(0.0, within - 0.3 * i), 4),
                "Processing",
                last,
            )
            for i in range(processing)
        )
    return TaskView(
        spec.task_type,
        "Processing",
        done,
        processing,
        n - done - processing,
        round(local, 4),
        f"{spec.verb} {done} of {n} files",
        last,
        items,
    )


@dataclass(frozen=True, slots=True)
class DetailRow:
    """One ``JobLogDetail`` row."""

    log_type: str
    message: str
    t: float
    asset_name: str | None = None
    asset_type: str | None = None


#: What a file's row says, by outcome; a job's rows pick among them per file (deterministic).
_MESSAGES: dict[str, tuple[str, ...]] = {
    "Success": ("{name}: processed",),
    "Error": (
        "Unable to process {name}: unsupported or corrupt file",
        "Failed to generate the pyramid TIFF for {name}: image data truncated",
        "{name}: file not found at the source location",
    ),
    "Warning": (
        "{name}: no embedded color profile, sRGB assumed",
        "{name}: image larger than 100 megapixels, downsampled",
        "{name}: replaced an existing asset of the same name",
    ),
}


def log_details(log: SimJobLog) -> list[DetailRow]:
    """The detail rows of a job log, in date order (deterministic per job).

    Each file has a row of the documented Job Log Types ``<kind>Success``, ``<kind>Error`` or
    ``<kind>Warning`` (``UploadError``, ``ImageServingPublishWarning``, ...) naming its asset; a
    failed job has a ``FatalError`` row naming the asset it was processing, just before its end.
    """
    c, kind = log.counts, log.kind
    rng = random.Random(log.job_handle)
    statuses = ["Success"] * c.success + ["Error"] * c.error + ["Warning"] * c.warning
    rng.shuffle(statuses)
    span = max(log.end - log.start, 0.001)
    rows = [DetailRow(f"Begin{kind.log_kind}", f"Job {log.original_name} started", log.start)]
    for i, status in enumerate(statuses):
        name = file_name(kind, i)
        t = log.start + span * (i + 1) / (len(statuses) + 2)
        text = rng.choice(_MESSAGES[status]).format(name=name)
        rows.append(DetailRow(f"{kind.log_kind}{status}", text, t, name, kind.asset_type))
    if c.fatal:
        name = file_name(kind, len(statuses))
        rows.append(
            DetailRow(
                "FatalError",
                f"Fatal error while processing {name}: lost connection to the image server",
                log.end - span / (len(statuses) + 2) / 2,
                name,
                kind.asset_type,
            )
        )
    rows.append(
        DetailRow(
            f"End{kind.log_kind}",
            f"Job ended: {c.success} succeeded, {c.error} errors, {c.warning} warnings",
            log.end,
        )
    )
    return rows
