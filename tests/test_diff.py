"""The diff core by example: one rule per test, read top to bottom as its specification."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from streamer.diff import DiffResult, DiffSettings, apply, complete, diff
from streamer.model import (
    JobCompleted,
    JobLog,
    JobObserved,
    JobProgress,
    JobRecovered,
    JobSnapshot,
    JobStalled,
    JobStateChanged,
    JobStatus,
    Outcome,
    OutcomeCounts,
    Snapshot,
    TaskProgress,
    TrackedJob,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
COMPANY = "c|acme"
DEFAULT = DiffSettings()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def task(state: str = "Processing") -> TaskProgress:
    return TaskProgress("UploadAsyncTaskMonitor", state, 1, 1, 1, 0.5, "", T0)


def job(
    handle: str = "j|1",
    state: str = "Running",
    progress: int = 0,
    message: str = "",
    tasks: tuple[TaskProgress, ...] = (),
    server: str = "srv_1",
) -> JobSnapshot:
    return JobSnapshot(
        company_handle=COMPANY,
        job_handle=handle,
        name=f"{handle}_2026-11-28-12:00:00.000",
        original_name=handle,
        type="UrlUpload",
        submit_user_email="ops@example.com",
        locale="en-US",
        description=None,
        server_name=server,
        start_date=T0,
        trigger_time=T0,
        status=JobStatus(state, progress, message, T0, 1024, tasks),
    )


def snap(*jobs: JobSnapshot) -> Snapshot:
    return Snapshot(COMPANY, jobs)


def run(steps: list[tuple[float, Snapshot]], settings: DiffSettings = DEFAULT) -> list[DiffResult]:
    """Diff successive snapshots taken at the given seconds after T0, starting from nothing."""
    state: dict[str, TrackedJob] = {}
    prev_at: datetime | None = None
    results = []
    for seconds, snapshot in steps:
        result = diff(state, snapshot, at(seconds), settings, prev_at)
        results.append(result)
        state, prev_at = result.state, at(seconds)
    return results


# -- new jobs --------------------------------------------------------------------------------


def test_new_job_is_observed_with_sequence_one() -> None:
    """A handle seen for the first time emits job.observed #1 with the full snapshot."""
    j = job(state="New")
    result = diff({}, snap(j), T0, DEFAULT, None)
    assert result.events == (
        JobObserved(COMPANY, "j|1", 1, T0, snapshot=j, seen_after_start=False),
    )
    assert result.events[0].event_id == "j|1:1"
    assert result.changed == ("j|1",)
    assert result.pending_completion == ()
    assert result.state["j|1"] == TrackedJob(j, 1, T0, j.status, T0, T0)


@pytest.mark.parametrize(
    ("state", "progress", "expected"),
    [
        ("New", 0, False),
        ("WaitingClient", 0, False),
        ("Running", 0, True),
        ("Stopping", 0, True),
        ("Done", 0, True),
        ("New", 5, True),
    ],
)
def test_seen_after_start(state: str, progress: int, expected: bool) -> None:
    """seen_after_start flags jobs first seen Running/Stopping/Done or with progress above 0."""
    (event,) = diff({}, snap(job(state=state, progress=progress)), T0, DEFAULT, None).events
    assert isinstance(event, JobObserved)
    assert event.seen_after_start is expected


# -- state changes ---------------------------------------------------------------------------


def test_state_change() -> None:
    """A changed state emits job.state_changed #2 with from, to and the new status."""
    second = job(state="Running")
    _, result = run([(0, snap(job(state="New"))), (5, snap(second))])
    assert result.events == (
        JobStateChanged(COMPANY, "j|1", 2, at(5), "New", "Running", second.status, False),
    )


@pytest.mark.parametrize(("gap", "skipped"), [(5, False), (7.5, False), (7.6, True), (60, True)])
def test_may_have_skipped_after_a_gap(gap: float, skipped: bool) -> None:
    """may_have_skipped is set when the previous poll is older than 1.5 poll intervals."""
    _, result = run([(0, snap(job(state="New"))), (gap, snap(job(state="Done")))])
    (event,) = result.events
    assert isinstance(event, JobStateChanged)
    assert event.may_have_skipped is skipped


def test_restored_state_flags_may_have_skipped() -> None:
    """With restored state (prev_poll_at None) every state change may have skipped states."""
    (first,) = run([(0, snap(job(state="New")))])
    result = diff(first.state, snap(job(state="Done")), at(5), DEFAULT, None)
    (event,) = result.events
    assert isinstance(event, JobStateChanged)
    assert event.may_have_skipped


# -- progress --------------------------------------------------------------------------------


def test_progress_with_rate_and_eta() -> None:
    """job.progress carries the new status, points/second since the last one, and an ETA."""
    _, result = run([(0, snap(job(progress=10))), (10, snap(job(progress=30)))])
    (event,) = result.events
    assert event == JobProgress(
        COMPANY, "j|1", 2, at(10), job(progress=30).status, rate=2.0, eta=at(10 + 35)
    )


def test_progress_going_back_has_no_rate() -> None:
    """No rate or ETA is invented when progress did not increase."""
    _, result = run([(0, snap(job(progress=30))), (10, snap(job(progress=20, message="retry")))])
    (event,) = result.events
    assert isinstance(event, JobProgress)
    assert (event.rate, event.eta) == (None, None)


@pytest.mark.parametrize(
    "moved",
    [
        job(message="Optimizing files"),
        job(tasks=(task(),)),
        replace(job(), status=replace(job().status, total_size=2048)),
        replace(job(), status=replace(job().status, last_progress_update=at(1))),
    ],
)
def test_every_progress_field_counts(moved: JobSnapshot) -> None:
    """Message, task progress, total size and lastProgressUpdate are progress fields too."""
    _, result = run([(0, snap(job())), (5, snap(moved))])
    assert [type(e) for e in result.events] == [JobProgress]


def test_state_change_comes_before_progress() -> None:
    """A state and a progress change in one cycle: state_changed #2, then progress #3."""
    _, result = run([(0, snap(job(state="New"))), (5, snap(job(state="Running", progress=40)))])
    assert [(type(e), e.sequence) for e in result.events] == [
        (JobStateChanged, 2),
        (JobProgress, 3),
    ]


def test_unchanged_job_keeps_its_objects() -> None:
    """An equal snapshot emits nothing, changes nothing and keeps the TrackedJob object."""
    first, second = run([(0, snap(job())), (5, snap(job()))])
    assert second.events == ()
    assert second.changed == second.pending_completion == ()
    assert second.state["j|1"] is first.state["j|1"]


def test_equal_status_reuses_the_tracked_snapshot() -> None:
    """A changed job whose new reply object equals the old one keeps the object in memory."""
    first = run([(0, snap(job(progress=10)))])[0]
    kept = first.state["j|1"].snapshot
    both = diff(first.state, snap(job(progress=10), job("j|2")), at(5), DEFAULT, T0)
    assert both.state["j|1"].snapshot is kept


def test_definition_change_is_checkpointed_silently() -> None:
    """A changed non-status field updates the record (a checkpoint) but emits no job event."""
    _, result = run([(0, snap(job())), (5, snap(job(server="srv_2")))])
    assert result.events == ()
    assert result.changed == ("j|1",)
    assert result.state["j|1"].snapshot.server_name == "srv_2"


# -- coalescing ------------------------------------------------------------------------------


def test_small_steps_are_coalesced_but_state_changes_kept() -> None:
    """With a 10-point step, small moves wait; every state change is still published."""
    settings = DiffSettings(progress_min_step=10)
    results = run(
        [
            (0, snap(job(progress=0))),
            (5, snap(job(progress=3))),
            (10, snap(job(state="Stopping", progress=6))),
            (15, snap(job(state="Running", progress=12))),
        ],
        settings,
    )
    kinds = [[type(e).__name__ for e in r.events] for r in results]
    assert kinds == [["JobObserved"], [], ["JobStateChanged"], ["JobStateChanged", "JobProgress"]]
    # Held-back moves are not lost: the record holds the newest snapshot and is checkpointed.
    assert results[1].changed == ("j|1",)
    assert results[1].state["j|1"].snapshot.status.progress == 3
    progress = results[3].events[1]
    assert isinstance(progress, JobProgress)
    assert progress.status.progress == 12
    assert progress.rate == pytest.approx(12 / 15)


@pytest.mark.parametrize(
    "significant",
    [
        job(progress=1, message="Optimizing files"),
        job(progress=1, tasks=(task(),)),
        job(progress=100),
    ],
)
def test_message_task_state_and_completion_bypass_the_step(significant: JobSnapshot) -> None:
    """A new message, a new task state or reaching 100 is published whatever the step."""
    settings = DiffSettings(progress_min_step=50)
    _, result = run(
        [
            (0, snap(job(progress=95 if significant.status.progress == 100 else 0))),
            (5, snap(significant)),
        ],
        settings,
    )
    assert [type(e) for e in result.events] == [JobProgress]


def test_min_interval_holds_back_then_flushes_newest() -> None:
    """Within the minimum interval progress waits; once it passed, the newest status goes out."""
    settings = DiffSettings(progress_min_interval_s=30)
    results = run(
        [
            (0, snap(job(progress=0))),
            (10, snap(job(progress=20))),
            (20, snap(job(progress=40))),
            (30, snap(job(progress=40))),
            (35, snap(job(progress=40))),
            (50, snap(job(progress=60))),
            (60, snap(job(progress=60))),
        ],
        settings,
    )
    assert [len(r.events) for r in results] == [1, 0, 0, 1, 0, 0, 1]
    flushed = results[3].events[0]
    assert isinstance(flushed, JobProgress)
    assert (flushed.status.progress, flushed.sequence) == (40, 2)
    assert results[4].changed == ()
    # The interval runs from the last published progress (at 30), not from the observation.
    latest = results[6].events[0]
    assert isinstance(latest, JobProgress)
    assert latest.rate == pytest.approx(20 / 30)


# -- stalls ----------------------------------------------------------------------------------


def test_stall_then_recovery() -> None:
    """A running job still for stall_after_s stalls once; when it moves: recovered, progress."""
    settings = DiffSettings(stall_after_s=60)
    results = run(
        [
            (0, snap(job(progress=10))),
            (30, snap(job(progress=10))),
            (60, snap(job(progress=10))),
            (90, snap(job(progress=10))),
            (120, snap(job(progress=20))),
        ],
        settings,
    )
    assert [len(r.events) for r in results] == [1, 0, 1, 0, 2]
    stalled = results[2].events[0]
    assert stalled == JobStalled(COMPANY, "j|1", 2, at(60), job(progress=10).status, 60.0)
    assert results[2].state["j|1"].stalled
    recovered, progress = results[4].events
    assert recovered == JobRecovered(COMPANY, "j|1", 3, at(120), job(progress=20).status, 120.0)
    assert isinstance(progress, JobProgress)
    assert progress.sequence == 4
    assert not results[4].state["j|1"].stalled


@pytest.mark.parametrize(
    ("settings", "state"),
    [(DiffSettings(), "Running"), (DiffSettings(stall_after_s=60), "WaitingCoordinator")],
)
def test_no_stall_when_off_or_not_running(settings: DiffSettings, state: str) -> None:
    """Stall detection is off by default and only ever applies to Running jobs."""
    results = run([(0, snap(job(state=state))), (600, snap(job(state=state)))], settings)
    assert results[1].events == ()


def test_state_change_restarts_the_stall_clock() -> None:
    """A job that queued for an hour is not stalled the moment it starts running."""
    settings = DiffSettings(stall_after_s=60)
    results = run([(0, snap(job(state="New"))), (3600, snap(job())), (3630, snap(job()))], settings)
    assert [type(e) for e in results[1].events] == [JobStateChanged]
    assert results[2].events == ()


# -- vanished jobs ---------------------------------------------------------------------------


def test_vanished_job_waits_for_completion() -> None:
    """A job missing from the reply emits nothing yet: it is marked vanished and pending."""
    *_, gone, still_gone = run([(0, snap(job())), (5, snap(job())), (10, snap()), (15, snap())])
    assert gone.events == ()
    assert gone.changed == gone.pending_completion == ("j|1",)
    tracked = gone.state["j|1"]
    # Last seen in the previous successful poll, though its record was last written at 0.
    assert (tracked.vanished_at, tracked.last_seen_at) == (at(10), at(5))
    assert still_gone.pending_completion == ("j|1",)
    assert still_gone.changed == ()
    assert still_gone.state["j|1"] is tracked


def test_vanished_then_reappearing_emits_nothing() -> None:
    """A vanished job that comes back is tracked on: no completion, no invented event."""
    results = run([(0, snap(job())), (5, snap()), (10, snap(job()))])
    back = results[2]
    assert back.events == ()
    assert back.pending_completion == ()
    assert back.changed == ("j|1",)
    assert back.state["j|1"].vanished_at is None
    assert back.state["j|1"].sequence == 1


def test_reappearing_changed_job_reports_only_the_change() -> None:
    """A job back with a new state gets job.state_changed #2, flagged: it was not watched."""
    results = run([(0, snap(job())), (5, snap()), (10, snap(job(state="Stopping")))])
    (event,) = results[2].events
    assert isinstance(event, JobStateChanged)
    assert (event.sequence, event.may_have_skipped) == (2, True)


# -- determinism -----------------------------------------------------------------------------


def test_events_are_ordered_by_job_handle() -> None:
    """Events come sorted by job handle, whatever the reply order."""
    result = diff({}, snap(job("b"), job("c"), job("a")), T0, DEFAULT, None)
    assert [e.job_handle for e in result.events] == ["a", "b", "c"]
    assert result.changed == ("a", "b", "c")


def test_duplicate_handle_keeps_the_last() -> None:
    """When a reply lists a handle twice, the last entry wins."""
    result = diff({}, snap(job(progress=1), job(progress=2)), T0, DEFAULT, None)
    (event,) = result.events
    assert isinstance(event, JobObserved)
    assert event.snapshot.status.progress == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"progress_min_step": -1},
        {"progress_min_interval_s": -1.0},
        {"stall_after_s": 0.0},
        {"poll_interval_s": 0.0},
        {"log_max_attempts": 0},
    ],
)
def test_settings_are_validated(bad: dict[str, float]) -> None:
    """Nonsensical settings are refused when built, not discovered while diffing."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        DiffSettings(**bad)  # type: ignore[arg-type]


# -- completion ------------------------------------------------------------------------------


def vanished() -> TrackedJob:
    return run([(0, snap(job(progress=80))), (5, snap())])[1].state["j|1"]


def log(**changes: object) -> JobLog:
    base = JobLog(
        COMPANY, "j|1", "j|1_x", "j|1", "EndUpload", T0, at(3), 8, 0, 0, 1, 0, 9, 8, 0, 0, False, ()
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("the_log", "expected"),
    [
        (log(), Outcome.SUCCEEDED),
        (log(fatal_error=True), Outcome.FAILED),
        (log(file_error_count=2), Outcome.COMPLETED_WITH_ERRORS),
        (log(file_warning_count=1), Outcome.COMPLETED_WITH_WARNINGS),
    ],
)
def test_completion_with_each_outcome(the_log: JobLog, expected: Outcome) -> None:
    """A final job log completes the job: outcome, counts, log type, start/end times, attempts."""
    event, tracked = complete(vanished(), the_log, at(6), DEFAULT)
    assert tracked is None
    assert event == JobCompleted(
        COMPANY,
        "j|1",
        2,
        at(6),
        outcome=expected,
        last_status=job(progress=80).status,
        counts=OutcomeCounts(8, the_log.file_error_count, the_log.file_warning_count, 1, 0, 9, 8),
        log_type="EndUpload",
        ended_at=at(3),
        log_attempts=1,
        started_at=T0,
    )


def test_missing_log_retries_then_unknown() -> None:
    """Without a final log the job waits; after log_max_attempts lookups it ends 'unknown'."""
    settings = DiffSettings(log_max_attempts=3)
    tracked: TrackedJob | None = vanished()
    for attempt in (1, 2):
        assert tracked is not None
        event, tracked = complete(tracked, None, at(5 + attempt), settings)
        assert event is None
        assert tracked is not None
        assert tracked.log_attempts == attempt
    assert tracked is not None
    unfinished = log(end_date=None, file_warning_count=1)
    event, gone = complete(tracked, unfinished, at(9), settings)
    assert gone is None
    assert isinstance(event, JobCompleted)
    assert (event.outcome, event.log_attempts, event.ended_at) == (Outcome.UNKNOWN, 3, None)
    assert event.counts is not None
    assert event.counts.file_warning == 1


def test_complete_refuses_a_job_still_active_or_a_foreign_log() -> None:
    """complete() is only for vanished jobs, and only with that job's log."""
    active = run([(0, snap(job()))])[0].state["j|1"]
    with pytest.raises(ValueError, match="not vanished"):
        complete(active, None, at(1), DEFAULT)
    with pytest.raises(ValueError, match="job log of"):
        complete(vanished(), log(job_handle="j|2"), at(6), DEFAULT)


# -- the consumer's fold ---------------------------------------------------------------------


def test_apply_folds_a_job_lifetime() -> None:
    """apply() adds observed jobs, updates their status and removes completed ones."""
    results = run([(0, snap(job(state="New"))), (5, snap(job(progress=50))), (10, snap())])
    event, _ = complete(results[2].state["j|1"], log(), at(10), DEFAULT)
    assert event is not None
    view: dict[str, JobSnapshot] = {}
    view = apply(view, results[0].events)
    assert view == {"j|1": job(state="New")}
    view = apply(view, results[1].events)
    assert view == {"j|1": job(progress=50)}
    assert apply(view, [event]) == {}
    assert view == {"j|1": job(progress=50)}  # the input mapping is left alone


def test_apply_ignores_updates_of_unknown_jobs() -> None:
    """A consumer that started mid-stream skips status updates of jobs it never saw."""
    _, result = run([(0, snap(job(state="New"))), (5, snap(job()))])
    assert apply({}, result.events) == {}


@pytest.mark.parametrize(
    ("prev_poll_at", "skipped"), [(None, True), (at(5), False), (at(-30), True)]
)
def test_completion_after_a_gap_may_have_skipped(
    prev_poll_at: datetime | None, skipped: bool
) -> None:
    """A vanish noticed after a restart or a long gap flags job.completed may_have_skipped."""
    (first,) = run([(0, snap(job(state="Running")))])
    result = diff(first.state, snap(), at(10), DEFAULT, prev_poll_at)
    tracked = result.state["j|1"]
    assert tracked.vanished_after_gap is skipped
    event, _ = complete(tracked, None, at(10), replace(DEFAULT, log_max_attempts=1))
    assert event is not None
    assert event.may_have_skipped is skipped
