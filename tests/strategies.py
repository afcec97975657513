"""Hypothesis strategies for the model's values, reusable by every test module.

Two families:

* general values (``job_snapshots``, ``job_logs``, ``tracked_jobs``, ``job_events``, ...) that
  cover the whole value space a decoder can produce: odd strings, every offset, sub-job trees;
* ``histories``: a company's sequence of snapshots over time, drawn from small pools so that
  unchanged jobs, repeated values and reappearing jobs are common, as in real polling.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from streamer.model import (
    SUB_JOB_ELEMENTS,
    Heartbeat,
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
    LogMessage,
    LogMessages,
    Outcome,
    OutcomeCounts,
    Snapshot,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    TrackedJob,
    XmlTree,
)

TIMEZONES = (
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-5, minutes=-30)),
    timezone(timedelta(hours=5, minutes=45)),
)
#: Every documented state plus one IPS might add: states are open-ended strings.
STATES: tuple[str, ...] = (*(s.value for s in JobState), "Paused")
TASK_STATES = ("Unknown", "New", "Processing", "Stopping", "Done", "Failed")
DETAIL_LOG_TYPES = (
    "BeginUpload",
    "EndUpload",
    "FileBegin",
    "FileProgress",
    "UploadSuccess",
    "UploadError",
    "UploadWarning",
    "PublishFailure",
    "FatalError",
    "IPSJobLog.gcUploadWarning",
    "IPSJobLog.gcUploadError",
    "DuplicateSkipped",
)

#: Any text a decoder can hand over (no lone surrogates: they cannot come out of XML).
texts = st.text(st.characters(codec="utf-8"), max_size=12)
handles = st.text("abcdefghij0123456789|_-:", min_size=1, max_size=10)
aware_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from(TIMEZONES),
)
fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
counts_ints = st.integers(min_value=0, max_value=2**31 - 1)

task_item_progress = st.builds(
    TaskItemProgress,
    item_name=texts,
    progress=fractions,
    progress_message=texts,
    last_progress_update=aware_datetimes,
)
task_progress = st.builds(
    TaskProgress,
    task_type=texts,
    task_state=st.sampled_from(TASK_STATES) | texts,
    num_processed=counts_ints,
    num_processing=counts_ints,
    num_pending=counts_ints,
    progress=fractions,
    progress_message=texts,
    last_progress_update=aware_datetimes,
    items=st.lists(task_item_progress, max_size=2).map(tuple),
)
job_statuses = st.builds(
    JobStatus,
    state=st.sampled_from(STATES) | texts,
    progress=st.integers(min_value=0, max_value=100),
    progress_message=texts,
    last_progress_update=aware_datetimes,
    total_size=counts_ints,
    task_progress=st.lists(task_progress, max_size=2).map(tuple),
)


def _tree_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(st.tuples(st.sampled_from(("items", "emailSetting", "x")) | texts, values))


def schema_ordered(tree: XmlTree) -> XmlTree:
    """``tree`` with each name's occurrences moved next to its first one, at every level: the
    order of every document valid against the IPS schemas (sequences of distinct names)."""
    groups: dict[str, list[str | XmlTree]] = {}
    for name, value in tree:
        groups.setdefault(name, []).append(
            value if isinstance(value, str) else schema_ordered(value)
        )
    return tuple((name, value) for name, values in groups.items() for value in values)


#: Any sub-job tree: nested ``(name, text-or-tree)`` tuples, repeated names anywhere.
any_xml_trees: st.SearchStrategy[XmlTree] = _tree_of(
    st.recursive(texts, lambda inner: _tree_of(inner).map(tuple), max_leaves=6)
).map(tuple)
#: Sub-job definitions as IPS sends them: repeated names allowed, a name's occurrences adjacent.
xml_trees: st.SearchStrategy[XmlTree] = any_xml_trees.map(schema_ordered)
sub_jobs = st.builds(SubJob, element=st.sampled_from(SUB_JOB_ELEMENTS), fields=xml_trees)


def job_snapshots(
    company_handle: str | None = None,
    job_handle: str | None = None,
    statuses: st.SearchStrategy[JobStatus] = job_statuses,
) -> st.SearchStrategy[JobSnapshot]:
    """Any ``JobSnapshot``, optionally with a fixed company and/or job handle."""
    return st.builds(
        JobSnapshot,
        company_handle=handles if company_handle is None else st.just(company_handle),
        job_handle=handles if job_handle is None else st.just(job_handle),
        name=texts,
        original_name=texts,
        type=st.sampled_from(("UrlUpload", "ImageServingPublish")) | texts,
        submit_user_email=texts,
        locale=st.none() | texts,
        description=st.none() | texts,
        server_name=texts,
        start_date=aware_datetimes,
        trigger_time=st.none() | aware_datetimes,
        status=statuses,
        sub_job=st.none() | sub_jobs,
        truncated=st.booleans(),
    )


@st.composite
def snapshots(draw: st.DrawFn, company_handle: str | None = None, max_jobs: int = 5) -> Snapshot:
    """A complete ``getActiveJobs`` reply with unique job handles."""
    company = draw(handles) if company_handle is None else company_handle
    job_handles = draw(st.lists(handles, max_size=max_jobs, unique=True))
    return Snapshot(company, tuple(draw(job_snapshots(company, h)) for h in job_handles))


@st.composite
def job_logs(
    draw: st.DrawFn,
    company_handle: str | None = None,
    job_handle: str | None = None,
    finished: bool | None = None,
) -> JobLog:
    """A ``JobLog``; ``finished`` forces ``end_date`` present (True) or absent (False)."""
    small = st.integers(min_value=0, max_value=3)
    end = {None: st.none() | aware_datetimes, True: aware_datetimes, False: st.none()}[finished]
    return JobLog(
        company_handle=draw(handles) if company_handle is None else company_handle,
        job_handle=draw(handles) if job_handle is None else job_handle,
        job_name=draw(texts),
        original_job_name=draw(texts),
        log_type=draw(st.sampled_from(DETAIL_LOG_TYPES) | texts),
        start_date=draw(st.none() | aware_datetimes),
        end_date=draw(end),
        file_success_count=draw(small),
        file_error_count=draw(small),
        file_warning_count=draw(small),
        file_duplicate_count=draw(small),
        file_update_count=draw(small),
        total_file_count=draw(small),
        transfer_success_count=draw(small),
        transfer_error_count=draw(small),
        transfer_warning_count=draw(small),
        fatal_error=draw(st.booleans()),
        detail_log_types=tuple(draw(st.lists(st.sampled_from(DETAIL_LOG_TYPES) | texts))),
    )


@st.composite
def _tracked_jobs(draw: st.DrawFn) -> TrackedJob:
    snapshot = draw(job_snapshots())
    # Usually the published status is the snapshot's own (nothing held back by coalescing).
    published = snapshot.status if draw(st.booleans()) else draw(job_statuses)
    return TrackedJob(
        snapshot=snapshot,
        sequence=draw(st.integers(min_value=1, max_value=2**40)),
        last_seen_at=draw(aware_datetimes),
        last_progress_status=published,
        last_progress_at=draw(aware_datetimes),
        last_moved_at=draw(aware_datetimes),
        stalled=draw(st.booleans()),
        vanished_at=draw(st.none() | aware_datetimes),
        log_attempts=draw(st.integers(min_value=0, max_value=10)),
    )


#: Any ``TrackedJob``, its published status shared with the snapshot or not.
tracked_jobs = _tracked_jobs()

outcome_counts = st.builds(OutcomeCounts, *([counts_ints] * 9))
_rates = st.floats(min_value=1e-6, max_value=1e6)
_durations = st.floats(min_value=0.0, max_value=1e7)


log_message_values = st.builds(
    LogMessage,
    message=texts,
    log_type=texts,
    asset_name=st.none() | texts,
    asset_type=st.none() | texts,
    at=st.none() | aware_datetimes,
)
#: Any ``LogMessages`` (a few of each kind, any totals).
log_messages = st.builds(
    LogMessages,
    errors=st.lists(log_message_values, max_size=3).map(tuple),
    warnings=st.lists(log_message_values, max_size=3).map(tuple),
    error_total=counts_ints,
    warning_total=counts_ints,
)


@st.composite
def job_events(draw: st.DrawFn) -> JobEvent:
    """Any job event of the closed union, with consistent company/job handles."""
    job = draw(job_snapshots())
    common: dict[str, Any] = {
        "company_handle": job.company_handle,
        "job_handle": job.job_handle,
        "sequence": draw(st.integers(min_value=1, max_value=2**40)),
        "observed_at": draw(aware_datetimes),
    }
    status = job.status
    kind = draw(st.sampled_from(("observed", "state", "progress", "completed", "stall", "recover")))
    if kind == "observed":
        return JobObserved(**common, snapshot=job, seen_after_start=draw(st.booleans()))
    if kind == "state":
        return JobStateChanged(
            **common,
            from_state=draw(st.sampled_from(STATES)),
            to_state=status.state,
            status=status,
            may_have_skipped=draw(st.booleans()),
        )
    if kind == "progress":
        rate = draw(st.none() | _rates)
        eta = None if rate is None else draw(st.none() | aware_datetimes)
        return JobProgress(**common, status=status, rate=rate, eta=eta)
    if kind == "completed":
        # A reconciled completion of a job no poll saw carries no last status.
        unseen = draw(st.booleans())
        return JobCompleted(
            **common,
            outcome=draw(st.sampled_from(Outcome)),
            last_status=None if unseen else status,
            counts=draw(st.none() | outcome_counts),
            log_type=draw(st.none() | texts),
            ended_at=draw(st.none() | aware_datetimes),
            log_attempts=draw(st.integers(min_value=1, max_value=10)),
            may_have_skipped=draw(st.booleans()),
            started_at=draw(st.none() | aware_datetimes),
            reconciled=unseen,
            observed=not unseen,
            job_name=draw(st.none() | texts),
            original_name=draw(st.none() | texts),
            job_type=draw(st.none() | texts),
            submit_user_email=draw(st.none() | texts),
            duration_s=draw(st.none() | _durations),
            log_messages=draw(st.none() | log_messages),
        )
    if kind == "stall":
        return JobStalled(
            **common,
            status=status,
            stalled_for_s=draw(_durations),
            job_name=draw(st.none() | texts),
            original_name=draw(st.none() | texts),
            job_type=draw(st.none() | texts),
            submit_user_email=draw(st.none() | texts),
        )
    return JobRecovered(**common, status=status, stalled_for_s=draw(_durations))


heartbeats = st.builds(
    Heartbeat,
    company_handle=handles,
    polled_at=aware_datetimes,
    ok=st.booleans(),
    latency_s=st.floats(min_value=0.0, max_value=600.0),
    active_jobs=st.integers(min_value=0, max_value=100_000),
    last_success_at=st.none() | aware_datetimes,
    error=st.none() | texts,
)

# --------------------------------------------------------------------------------------------
# Histories: successive snapshots of one company, from small pools so that values repeat.
# --------------------------------------------------------------------------------------------

_BASE_TIME = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
_small_tasks = st.builds(
    TaskProgress,
    task_type=st.just("com.scene7.upload.UploadAsyncTaskMonitor"),
    task_state=st.sampled_from(("Processing", "Done")),
    num_processed=st.sampled_from((0, 5)),
    num_processing=st.just(1),
    num_pending=st.just(0),
    progress=st.sampled_from((0.0, 0.5, 1.0)),
    progress_message=st.just(""),
    last_progress_update=st.just(_BASE_TIME),
)
#: Statuses from small pools: two draws are often equal or differ in one field only.
small_statuses = st.builds(
    JobStatus,
    state=st.sampled_from(("New", "Running", "Running", "Done", "Paused")),
    progress=st.sampled_from((0, 3, 10, 50, 100)),
    progress_message=st.sampled_from(("", "Optimizing files")),
    last_progress_update=st.sampled_from((_BASE_TIME, _BASE_TIME + timedelta(seconds=7))),
    total_size=st.sampled_from((0, 1024)),
    task_progress=st.lists(_small_tasks, max_size=1).map(tuple),
)


_SUB_JOBS = (
    None,
    SubJob("uploadUrlsJob", (("urlArray", (("items", (("sourceUrl", "http://x/a.jpg"),)),)),)),
)


def _definition(company: str, handle: str, sub_job: SubJob | None) -> JobSnapshot:
    return JobSnapshot(
        company_handle=company,
        job_handle=handle,
        name=f"{handle}_2026-11-28-12:00:00.000",
        original_name=handle,
        type="UrlUpload",
        submit_user_email="ops@example.com",
        locale=None,
        description=None,
        server_name="srv_1",
        start_date=_BASE_TIME,
        trigger_time=_BASE_TIME,
        status=JobStatus("New", 0, "", _BASE_TIME, 0),
        sub_job=sub_job,
    )


@st.composite
def histories(
    draw: st.DrawFn, max_jobs: int = 6, max_steps: int = 6
) -> tuple[str, list[tuple[datetime, Snapshot]]]:
    """``(company, [(poll time, snapshot), ...])``: a company's successive successful polls.

    A job's definition (everything but ``status``) is fixed for its life, as IPS keeps it; jobs
    come, go and come back; a job's status is often carried over unchanged.
    """
    company = draw(handles)
    pool = draw(st.lists(handles, min_size=1, max_size=max_jobs, unique=True))
    # Definitions are cheap and fixed: the diff only ever looks at them through equality.
    bases = {h: _definition(company, h, draw(st.sampled_from(_SUB_JOBS))) for h in pool}
    current: dict[str, JobStatus] = {}
    at = _BASE_TIME
    steps: list[tuple[datetime, Snapshot]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=max_steps))):
        at += timedelta(milliseconds=draw(st.integers(min_value=1, max_value=30_000)))
        present = draw(st.lists(st.sampled_from(pool), unique=True))
        jobs = []
        for handle in present:
            keep = handle in current and draw(st.booleans())
            status = current[handle] if keep else draw(small_statuses)
            current[handle] = status
            jobs.append(replace(bases[handle], status=status))
        steps.append((at, Snapshot(company, tuple(jobs))))
    return company, steps
