"""The ``[filter]`` rules (streamer.filters): job types, job logs, states, progress; pure and
over random polling histories."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.cycle import settle
from streamer.diff import DiffSettings, diff
from streamer.filters import (
    DOCUMENTED_JOB_TYPES,
    JobFilter,
    describe,
    log_job_types,
    publishable,
    screen,
)
from streamer.model import (
    JobCompleted,
    JobEvent,
    JobLog,
    JobObserved,
    JobProgress,
    JobStateChanged,
    Snapshot,
    TrackedJob,
)
from streamer.simulator.catalog import KINDS, UNDOCUMENTED_KINDS
from tests.strategies import STATES, histories
from tests.test_diff import COMPANY, T0, at, job, snap

History = tuple[str, list[tuple[datetime, Snapshot]]]
IMMEDIATE = DiffSettings(log_max_attempts=1, stall_after_s=15.0)
TYPES = ("UrlUpload", "ImageServingPublish", "VideoPublish", "Odd")
type_sets = st.frozensets(st.sampled_from(TYPES), max_size=3)
type_filters = st.builds(JobFilter, job_types=type_sets, exclude_job_types=type_sets)
event_filters = st.builds(
    JobFilter, states=st.frozensets(st.sampled_from(STATES), max_size=4), progress=st.booleans()
)


def log_of(handle: str, log_type: str) -> JobLog:
    """A finished job log of ``handle`` with ``log_type``."""
    return JobLog(
        COMPANY, handle, handle, handle, log_type, T0, T0, 1, 0, 0, 0, 0, 1, 1, 0, 0, False
    )


def run(
    steps: list[tuple[datetime, Snapshot]], flt: JobFilter, config: DiffSettings = IMMEDIATE
) -> tuple[list[tuple[JobEvent, ...]], dict[str, TrackedJob]]:
    """Cycle through ``steps`` as the poller does: screen, diff, settle (no log found), filter."""
    state: dict[str, TrackedJob] = {}
    prev: datetime | None = None
    published = []
    for now, snapshot in steps:
        screened = screen(flt, snapshot, state)
        result = diff(screened.state, screened.snapshot, now, config, prev)
        settled = settle(result, dict.fromkeys(result.pending_completion), now, config)
        events, state = publishable(flt, settled.events, settled.state)
        published.append(events)
        prev = now
    return published, state


def unnumbered(events: tuple[JobEvent, ...]) -> list[JobEvent]:
    """Events with their sequence blanked, to compare runs that number differently."""
    return [replace(e, sequence=0) for e in events]


def typed(history: History, types: list[str]) -> list[tuple[datetime, Snapshot]]:
    """The history's steps with each job handle given one of ``types`` for its whole life."""
    handles = sorted({j.job_handle for _, s in history[1] for j in s.jobs})
    kind = {h: types[i % len(types)] for i, h in enumerate(handles)}
    return [
        (now, replace(s, jobs=tuple(replace(j, type=kind[j.job_handle]) for j in s.jobs)))
        for now, s in history[1]
    ]


# -- job types ---------------------------------------------------------------------------------


def test_default_filter_streams_everything_and_copies_nothing() -> None:
    """The default filter keeps every job, log and event, and hands back the same objects."""
    flt = JobFilter()
    snapshot, state = snap(job("j|1"), job("j|2")), dict[str, TrackedJob]()
    screened = screen(flt, snapshot, state)
    assert screened.snapshot is snapshot
    assert screened.state is state
    assert not screened.forgotten
    assert flt.streams_log(log_of("j|1", "EndSomethingNobodyKnows"))
    events = diff({}, snapshot, T0, IMMEDIATE, None)
    assert publishable(flt, events.events, events.state) == (events.events, events.state)
    assert publishable(flt, events.events, events.state)[1] is events.state


def test_exclude_wins_over_job_types() -> None:
    """A type in both lists is not streamed; an empty job_types means every type."""
    both = JobFilter(job_types=frozenset({"UrlUpload", "VideoPublish"}),
                     exclude_job_types=frozenset({"VideoPublish"}))  # fmt: skip
    assert both.streams_type("UrlUpload")
    assert not both.streams_type("VideoPublish")
    assert not both.streams_type("ImageServingPublish")
    only_exclude = JobFilter(exclude_job_types=frozenset({"UrlUpload"}))
    assert only_exclude.streams_type("AnythingElse")
    assert not only_exclude.streams_type("UrlUpload")


def test_screen_takes_filtered_jobs_out_and_forgets_tracked_ones() -> None:
    """Jobs of filtered types leave the snapshot; tracked ones leave the state, sorted."""
    flt = JobFilter(exclude_job_types=frozenset({"VideoPublish"}))
    video = replace(job("j|2"), type="VideoPublish")
    tracked = diff(
        {}, snap(job("j|1"), video, replace(video, job_handle="j|0")), T0, IMMEDIATE, None
    )
    screened = screen(flt, snap(job("j|1"), video), tracked.state)
    assert [j.job_handle for j in screened.snapshot.jobs] == ["j|1"]
    assert set(screened.state) == {"j|1"}
    assert screened.forgotten == ("j|0", "j|2")
    assert screened.filtered_out == 1


def test_log_kinds_map_to_the_types_that_write_them() -> None:
    """Begin/End kinds map to job types; Upload is shared; unknown kinds map to nothing."""
    assert log_job_types("EndImageServingPublish") == frozenset({"ImageServingPublish"})
    assert log_job_types("BeginUpload") == frozenset({"UrlUpload", "UploadFromServerDirectory"})
    assert log_job_types("EndReoptimize") == frozenset({"ImageOptimization"})
    assert log_job_types("EndReprocess") is None
    assert log_job_types("FatalError") is None
    assert log_job_types("End") is None


def test_a_log_kind_shared_with_a_filtered_type_is_not_reconciled() -> None:
    """EndUpload may be a filtered UrlUpload's: not reconciled; a publish log still is."""
    flt = JobFilter(exclude_job_types=frozenset({"UrlUpload"}))
    assert not flt.streams_log(log_of("j|1", "EndUpload"))
    assert flt.streams_log(log_of("j|2", "EndImageServingPublish"))
    both = JobFilter(job_types=frozenset({"UrlUpload", "UploadFromServerDirectory"}))
    assert both.streams_log(log_of("j|1", "EndUpload"))
    assert not both.streams_log(log_of("j|2", "EndVideoPublish"))


def test_an_unknown_log_kind_is_not_reconciled_under_a_type_filter() -> None:
    """A kind nobody maps could belong to any type: only the unfiltered stream reconciles it."""
    log = log_of("j|1", "EndReprocess")
    assert not JobFilter(exclude_job_types=frozenset({"UrlUpload"})).streams_log(log)
    assert not JobFilter(job_types=frozenset({"Reprocess"})).streams_log(log)
    assert JobFilter(states=frozenset({"Done"})).streams_log(log)
    assert JobFilter().logs((log,)) == (log,)
    assert JobFilter(job_types=frozenset({"UrlUpload"})).logs((log,)) == ()


@given(
    filters=st.builds(
        JobFilter,
        job_types=st.frozensets(st.sampled_from((*DOCUMENTED_JOB_TYPES, "ReprocessAssets"))),
        exclude_job_types=st.frozensets(
            st.sampled_from((*DOCUMENTED_JOB_TYPES, "AssetExport", "CustomMaintenance"))
        ),
    )
)
def test_no_job_log_of_a_filtered_type_is_ever_reconciled(filters: JobFilter) -> None:
    """For every job kind the simulator runs: a type not streamed never has its log reconciled."""
    for kind in KINDS + UNDOCUMENTED_KINDS:
        if not filters.streams_type(kind.type):
            for prefix in ("Begin", "End"):
                assert not filters.streams_log(log_of("j|1", prefix + kind.log_kind)), kind


@settings(max_examples=150, deadline=None)
@given(history=histories(), flt=type_filters)
def test_a_filtered_type_is_as_if_the_job_never_existed(history: History, flt: JobFilter) -> None:
    """Screening a history gives the events and state of the history without those jobs."""
    steps = typed(history, list(TYPES))
    without = [
        (now, replace(s, jobs=tuple(j for j in s.jobs if flt.streams_type(j.type))))
        for now, s in steps
    ]
    screened_events, screened_state = run(steps, flt)
    assert (screened_events, screened_state) == run(without, JobFilter())
    for events in screened_events:
        assert all(flt.streams_type(e.snapshot.type) for e in events if isinstance(e, JobObserved))


def test_a_type_filtered_after_a_restart_is_forgotten_without_a_completion() -> None:
    """A tracked job whose type is now filtered out is dropped silently (no job.completed)."""
    tracked = diff({}, snap(job("j|1"), job("j|2")), T0, IMMEDIATE, None).state
    flt = JobFilter(exclude_job_types=frozenset({"UrlUpload"}))
    screened = screen(flt, Snapshot(COMPANY, ()), tracked)
    assert screened.forgotten == ("j|1", "j|2")
    assert screened.state == {}
    result = diff(screened.state, screened.snapshot, at(5), IMMEDIATE, T0)
    assert result.events == ()
    assert result.pending_completion == ()


# -- states and progress -----------------------------------------------------------------------


def test_states_filter_publishes_only_listed_targets_with_gap_free_sequences() -> None:
    """states=[Done]: observed(New) and ->Running dropped, ->Done published as #1, completion #2."""
    flt = JobFilter(states=frozenset({"Done"}))
    steps = [
        (at(0), snap(job(state="New"))),
        (at(5), snap(job(state="Running"))),
        (at(10), snap(job(state="Done"))),
        (at(15), snap()),
    ]
    published, state = run(steps, flt, DiffSettings(log_max_attempts=1))
    flat = [e for events in published for e in events]
    assert [(type(e).__name__, e.sequence) for e in flat] == [
        ("JobStateChanged", 1),
        ("JobCompleted", 2),
    ]
    assert isinstance(flat[0], JobStateChanged)
    assert flat[0].to_state == "Done"
    assert state == {}


def test_states_filter_keeps_the_job_tracked_with_the_published_sequence() -> None:
    """A job whose events are all filtered is still tracked; its sequence counts published ones."""
    flt = JobFilter(states=frozenset({"Done"}), progress=False)
    steps = [(at(0), snap(job(state="New"))), (at(5), snap(job(state="Running", progress=40)))]
    published, state = run(steps, flt)
    assert published == [(), ()]
    assert state["j|1"].sequence == 0
    assert state["j|1"].snapshot.status.progress == 40


def test_observed_is_published_when_first_seen_in_a_listed_state() -> None:
    """job.observed goes by the state the job was first seen in."""
    flt = JobFilter(states=frozenset({"Running"}))
    published, _ = run([(at(0), snap(job("j|1", state="New"), job("j|2", state="Running")))], flt)
    assert [(e.job_handle, type(e).__name__) for e in published[0]] == [("j|2", "JobObserved")]


def test_progress_false_drops_every_progress_event_and_nothing_else() -> None:
    """progress=false: no job.progress; state changes and completions still published."""
    flt = JobFilter(progress=False)
    steps = [
        (at(0), snap(job(state="Running", progress=10))),
        (at(5), snap(job(state="Running", progress=50))),
        (at(10), snap(job(state="Done", progress=100))),
        (at(15), snap()),
    ]
    published, _ = run(steps, flt)
    flat = [e for events in published for e in events]
    assert not any(isinstance(e, JobProgress) for e in flat)
    assert [type(e).__name__ for e in flat] == ["JobObserved", "JobStateChanged", "JobCompleted"]
    assert [e.sequence for e in flat] == [1, 2, 3]


@settings(max_examples=200, deadline=None)
@given(history=histories(), flt=event_filters)
def test_event_filter_is_the_unfiltered_stream_minus_dropped_events_renumbered(
    history: History, flt: JobFilter
) -> None:
    """Same events as unfiltered minus those filtered; per job 1, 2, 3, ... with no hole; the
    tracked sequence is the last one published."""
    filtered, state = run(history[1], flt)
    unfiltered, _ = run(history[1], JobFilter())
    for got, full in zip(filtered, unfiltered, strict=True):
        assert unnumbered(got) == unnumbered(tuple(e for e in full if flt.streams_event(e)))
    last: dict[str, int] = defaultdict(int)
    for events in filtered:
        for e in events:
            assert e.sequence == last[e.job_handle] + 1, e
            last[e.job_handle] = 0 if isinstance(e, JobCompleted) else e.sequence
    for handle, tracked in state.items():
        assert tracked.sequence == last[handle]


def test_describe_names_what_is_streamed_and_flags_unknown_names() -> None:
    """The check line lists types, states and progress; undocumented names are flagged."""
    assert describe(JobFilter()) == "job types all; state events all; job.progress on"
    line = describe(
        JobFilter(
            job_types=frozenset({"UrlUpload", "Reprocess"}),
            exclude_job_types=frozenset({"VideoPublish"}),
            states=frozenset({"Done", "Paused"}),
            progress=False,
        )
    )
    assert line == (
        "job types only Reprocess (not a documented IPS job type), UrlUpload except VideoPublish;"
        " state events only Done, Paused (not a documented IPS state); job.progress off"
    )
