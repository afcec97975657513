"""Properties of the diff core over random polling histories (Hypothesis)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.cycle import settle
from streamer.diff import DiffResult, DiffSettings, apply, diff
from streamer.model import (
    JobCompleted,
    JobEvent,
    JobObserved,
    JobSnapshot,
    JobStateChanged,
    Snapshot,
    TrackedJob,
)
from tests.strategies import histories

History = tuple[str, list[tuple[datetime, Snapshot]]]
IMMEDIATE = DiffSettings(log_max_attempts=1)
any_settings = st.builds(
    DiffSettings,
    progress_min_step=st.integers(min_value=0, max_value=60),
    progress_min_interval_s=st.sampled_from((0.0, 5.0, 20.0)),
    stall_after_s=st.none() | st.sampled_from((1.0, 15.0)),
    poll_interval_s=st.sampled_from((1.0, 5.0)),
    log_max_attempts=st.integers(min_value=1, max_value=3),
)


def replay(
    history: History, config: DiffSettings, *, completing: bool
) -> list[tuple[DiffResult, list[JobEvent], dict[str, TrackedJob]]]:
    """Run the history; with ``completing``, look up (absent) job logs for pending jobs.

    Yields per step the diff result, all events of the cycle (diff + completions) and the state
    after completions, as the poller would commit them.
    """
    state: dict[str, TrackedJob] = {}
    prev_at: datetime | None = None
    out = []
    for now, snapshot in history[1]:
        result = diff(state, snapshot, now, config, prev_at)
        if completing:
            settled = settle(result, dict.fromkeys(result.pending_completion), now, config)
            events, state = list(settled.events), settled.state
        else:
            events, state = list(result.events), dict(result.state)
        out.append((result, events, state))
        prev_at = now
    return out


def jobs_of(snapshot: Snapshot) -> dict[str, JobSnapshot]:
    return {j.job_handle: j for j in snapshot.jobs}


@settings(max_examples=200)
@given(histories())
def test_replaying_events_reaches_each_snapshot(history: History) -> None:
    """Folding every emitted event (completions included) gives exactly each new snapshot's jobs."""
    view: dict[str, JobSnapshot] = {}
    for (_, snapshot), (_, events, state) in zip(
        history[1], replay(history, IMMEDIATE, completing=True), strict=True
    ):
        view = apply(view, events)
        assert view == jobs_of(snapshot)
        assert {h: t.snapshot for h, t in state.items()} == view


@settings(max_examples=200)
@given(histories(), st.integers(min_value=1, max_value=10_000))
def test_same_snapshot_again_emits_nothing(history: History, later_ms: int) -> None:
    """Diffing a snapshot against the state it produced emits nothing and changes nothing."""
    prev_at = None
    state: dict[str, TrackedJob] = {}
    for now, snapshot in history[1]:
        state = diff(state, snapshot, now, DiffSettings(), prev_at).state
        prev_at = now
        again = diff(state, snapshot, now + timedelta(milliseconds=later_ms), DiffSettings(), now)
        assert again.events == ()
        assert again.changed == ()
        assert all(again.state[h] is state[h] for h in state)


@settings(max_examples=200)
@given(histories(), any_settings, st.randoms(use_true_random=False))
def test_reply_order_does_not_matter(
    history: History, config: DiffSettings, rnd: random.Random
) -> None:
    """Shuffling the jobs of every reply gives identical events, state and change lists."""
    state: dict[str, TrackedJob] = {}
    prev_at = None
    for now, snapshot in history[1]:
        jobs = list(snapshot.jobs)
        rnd.shuffle(jobs)
        shuffled = diff(state, Snapshot(snapshot.company_handle, tuple(jobs)), now, config, prev_at)
        result = diff(state, snapshot, now, config, prev_at)
        assert shuffled == result
        state, prev_at = result.state, now


@settings(max_examples=200)
@given(histories(), any_settings)
def test_sequences_count_up_by_one_per_job(history: History, config: DiffSettings) -> None:
    """Per job, event sequences run 1, 2, 3, ... and the record holds the last one."""
    seen: dict[str, list[int]] = defaultdict(list)
    for result, events, _ in replay(history, config, completing=False):
        for event in events:
            seen[event.job_handle].append(event.sequence)
            assert event.event_id == f"{event.job_handle}:{event.sequence}"
        assert [e.job_handle for e in events] == sorted(e.job_handle for e in events)
        for handle, tracked in result.state.items():
            assert tracked.sequence == len(seen[handle])
    for sequences in seen.values():
        assert sequences == list(range(1, len(sequences) + 1))


@settings(max_examples=200)
@given(histories(), any_settings)
def test_sequences_restart_only_after_completion(history: History, config: DiffSettings) -> None:
    """With completions, each job lifetime runs observed #1 ... completed #n without gaps."""
    last: dict[str, int] = {}
    for _, events, _ in replay(history, config, completing=True):
        for event in events:
            if isinstance(event, JobObserved):
                assert event.job_handle not in last
            assert event.sequence == last.get(event.job_handle, 0) + 1
            last[event.job_handle] = event.sequence
            if isinstance(event, JobCompleted):
                del last[event.job_handle]


@settings(max_examples=200)
@given(histories(), any_settings)
def test_coalescing_never_drops_state_changes(history: History, config: DiffSettings) -> None:
    """Whatever the coalescing and stall settings, the state changes are those of the defaults."""

    def transitions(c: DiffSettings) -> list[tuple[str, str, str]]:
        return [
            (e.job_handle, e.from_state, e.to_state)
            for _, events, _ in replay(history, c, completing=False)
            for e in events
            if isinstance(e, JobStateChanged)
        ]

    assert transitions(config) == transitions(DiffSettings(poll_interval_s=config.poll_interval_s))


@settings(max_examples=200)
@given(histories(), any_settings)
def test_record_always_holds_the_newest_snapshot(history: History, config: DiffSettings) -> None:
    """Coalesced or not, every present job's record holds its snapshot from the latest reply."""
    for (_, snapshot), (result, _, _) in zip(
        history[1], replay(history, config, completing=False), strict=True
    ):
        for handle, job in jobs_of(snapshot).items():
            assert result.state[handle].snapshot == job
            assert result.state[handle].vanished_at is None
        absent = set(result.state) - set(jobs_of(snapshot))
        assert set(result.pending_completion) == absent
