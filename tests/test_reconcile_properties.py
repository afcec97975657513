"""Property tests: any interleaving of polls, logs, failed commits and restarts gives every
finished job exactly one committed job.completed.

A small model of IPS (jobs with start and end times, job logs that appear some time after the
end) is driven by a model of the poller built from the production pure steps (diff, settle,
already_reported, window, listed, ledger_step), with Hypothesis choosing when polls happen,
whether their cycle commits, whether a reconciliation pass runs (and how many requests it may
make), how stale the IPS clock reading is, and when the streamer restarts from what was
committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.cycle import settle
from streamer.diff import DiffSettings, diff
from streamer.model import (
    JobCompleted,
    JobEvent,
    JobLog,
    JobSnapshot,
    JobStatus,
    Snapshot,
    TrackedJob,
)
from streamer.reconcile import (
    CompanyLedger,
    Page,
    ReconcileSettings,
    Window,
    WindowTooFull,
    already_reported,
    ledger_step,
    listed,
    start,
    window,
)

COMPANY = "c|1"
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DELAY, OVERLAP = 3, 6
MAX_ROWS = 3


def at(seconds: float) -> datetime:
    """IPS time, and the streamer's clock (the model gives them no skew)."""
    return T0 + timedelta(seconds=seconds)


@dataclass(frozen=True)
class Job:
    """A job of the IPS model: listed while start <= t < end + linger (IPS may list a finished
    job a little longer), its log listed by getJobLogs from end + lag, and given by
    getJobLogDetails from end + lag + detail_lag (IPS's two views need not agree)."""

    handle: str
    start: float
    end: float
    lag: int
    linger: int = 0
    detail_lag: int = 0

    def log(self) -> JobLog:
        """Its job log."""
        return JobLog(
            COMPANY, self.handle, self.handle, self.handle, "EndUpload", at(self.start),
            at(self.end), 1, 0, 0, 0, 0, 1, 0, 0, 0, False,
        )  # fmt: skip

    def snapshot(self) -> JobSnapshot:
        """How getActiveJobs lists it (always the same: only presence matters here)."""
        status = JobStatus("Running", 0, "", at(self.start), 0)
        return JobSnapshot(
            COMPANY, self.handle, self.handle, self.handle, "UrlUpload", "u@x", None, None,
            "s1", at(self.start), None, status,
        )  # fmt: skip


@st.composite
def jobs(draw: st.DrawFn, lag_max: int = DELAY + OVERLAP) -> list[Job]:
    """Up to 12 jobs in the first 60 s, some shorter than any poll gap, lags up to lag_max.

    Job ``i`` ends ``i`` ms after a whole second, so that no more than ``MAX_ROWS`` logs ever
    end within one millisecond (the documented limit: such a window cannot be split).
    """
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=12))):
        begin = draw(st.integers(min_value=0, max_value=60))
        length = draw(st.integers(min_value=0, max_value=15))
        out.append(
            Job(
                f"j|{i}",
                begin,
                begin + length + i / 1000,
                draw(st.integers(min_value=0, max_value=lag_max)),
                draw(st.sampled_from((0, 0, 1, 3))),
                draw(st.sampled_from((0, 0, 2, 5))),
            )
        )
    return out


@dataclass(frozen=True)
class Poll:
    """One cycle: poll, diff, job-log lookups, maybe a pass, then commit or not."""

    commit: bool
    reconcile: bool
    #: Requests the pass may make before it stops (its pages so far are kept).
    budget: int
    #: How far behind IPS's now the clock reading of this pass is (a Date header, stale logs).
    clock_lag: int


@dataclass(frozen=True)
class Tick:
    """Time passes."""

    seconds: int


@dataclass(frozen=True)
class Restart:
    """kill -9 and restart: the memory is lost, the committed state and ledger are read back."""


Action = Poll | Tick | Restart

actions = st.lists(
    st.one_of(
        st.builds(
            Poll,
            commit=st.booleans() | st.just(True),
            reconcile=st.booleans(),
            budget=st.integers(min_value=1, max_value=6),
            clock_lag=st.integers(min_value=0, max_value=4),
        ),
        st.builds(Tick, st.integers(min_value=1, max_value=8)),
        st.just(Restart()),
    ),
    max_size=60,
)


@dataclass
class Streamer:
    """The poller, reduced to the pure steps it runs (I/O replaced by the IPS model)."""

    world: Sequence[Job]
    recon: ReconcileSettings
    #: Job log lookups before a vanished job is completed as unknown.
    attempts: int = 2
    t: float = 0.0
    committed: list[JobEvent] = field(default_factory=list)
    # What Kafka holds.
    kafka_state: dict[str, TrackedJob] = field(default_factory=dict)
    kafka_ledger: CompanyLedger | None = None
    # What the process holds.
    state: dict[str, TrackedJob] = field(default_factory=dict)
    ledger: CompanyLedger | None = None
    ips_now: datetime | None = None
    #: Windows the last committed pass left unlisted (it ran out of requests).
    todo: list[Window] = field(default_factory=list)
    prev_poll_at: datetime | None = None
    gap: bool = False
    #: The floor of the first ledger Kafka committed: the look-back of this streamer's history.
    first_floor: datetime | None = None
    seen_committed: set[str] = field(default_factory=set)

    @property
    def diff_settings(self) -> DiffSettings:
        """The diff's settings (only the lookup bound matters here)."""
        return DiffSettings(log_max_attempts=self.attempts)

    def listing(self, start_s: datetime, end_s: datetime) -> list[JobLog]:
        """getJobLogs: visible logs ending in the window, by start date, numRows at most."""
        logs = [
            j.log() for j in self.world if j.end + j.lag <= self.t and start_s <= at(j.end) <= end_s
        ]
        logs.sort(key=lambda g: (g.start_date, g.job_handle))
        return logs[:MAX_ROWS]

    def job_log(self, handle: str) -> JobLog | None:
        """getJobLogDetails: the log once it is visible."""
        job = next(j for j in self.world if j.handle == handle)
        return job.log() if job.end + job.lag + job.detail_lag <= self.t else None

    def run(self, action: Action) -> None:
        """Apply one action."""
        if isinstance(action, Tick):
            self.t += action.seconds
        elif isinstance(action, Restart):
            self.state, self.ledger = dict(self.kafka_state), self.kafka_ledger
            self.ips_now, self.prev_poll_at, self.gap = None, None, False
            self.todo = []
        else:
            self.poll(action)

    def poll(self, p: Poll) -> None:
        """One company cycle, as CompanyPoller._cycle runs it."""
        now = at(self.t)
        listed_jobs = tuple(
            j.snapshot() for j in self.world if j.start <= self.t < j.end + j.linger
        )
        snapshot, _ = already_reported(Snapshot(COMPANY, listed_jobs), self.state, self.ledger)
        result = diff(
            self.state, snapshot, now, self.diff_settings, self.prev_poll_at, gap=self.gap
        )
        logs = {h: self.job_log(h) for h in result.pending_completion}
        settled = settle(result, logs, now, self.diff_settings)
        completions = [e for e in settled.events if isinstance(e, JobCompleted)]
        pages: list[Page] | None = None
        left: list[Window] | None = None
        base, reading = self.ledger, None
        if p.reconcile:
            reading = at(max(0, self.t - p.clock_lag))
            if self.ips_now is not None:
                reading = max(reading, self.ips_now)
            base = self.ledger or start(reading, self.recon)
            pages, left = self.fetch(base, reading, p.budget)
            self.ips_now = reading
        step = ledger_step(
            base, completions, reading=reading, pages=pages,
            company=COMPANY, tracked=settled.state, now=now, settings=self.recon,
        )  # fmt: skip
        if not p.commit:
            self.gap = True
            return
        self.committed.extend(settled.events)
        self.committed.extend(step.events)
        self.seen_committed.update(settled.state)
        self.state = self.kafka_state = settled.state
        self.ledger = self.kafka_ledger = step.ledger
        if left is not None:
            self.todo = left
        if step.ledger is not None and self.first_floor is None:
            self.first_floor = step.ledger.floor
        self.prev_poll_at, self.gap = now, False

    def fetch(
        self, ledger: CompanyLedger, ips_now: datetime, budget: int
    ) -> tuple[list[Page], list[Window]]:
        """The pass's requests, as the poller makes them: go on with what the last committed
        pass left, else list the window; split full replies; stop at the budget.

        Returns the pages and the windows left to list.
        """
        todo = list(self.todo)
        if not todo:
            w = window(ledger, ips_now, self.recon)
            todo = [] if w is None else [w]
        pages: list[Page] = []
        while todo and budget > 0:
            budget -= 1
            head = todo.pop(0)
            try:
                got = listed(head, self.listing(head.start, head.end), MAX_ROWS)
            except WindowTooFull:
                return pages, []  # reported by the poller; the next pass starts afresh
            if isinstance(got, Page):
                pages.append(got)
            else:
                todo[:0] = got
        return pages, todo

    def settle_down(self) -> None:
        """Let every job end and its log appear, then run clean cycles until all is reported."""
        self.t = max(j.end + j.lag for j in self.world) + DELAY + 1
        for _ in range(8):
            self.poll(Poll(commit=True, reconcile=True, budget=64, clock_lag=0))
            self.t += 2


def completions(events: Sequence[JobEvent]) -> Counter[str]:
    """How many job.completed each job got."""
    return Counter(e.job_handle for e in events if isinstance(e, JobCompleted))


attempts = st.integers(min_value=1, max_value=3)


@settings(max_examples=400, deadline=None)
@given(jobs(), actions, attempts)
def test_every_finished_job_is_completed_exactly_once(
    world: list[Job], script: list[Action], tries: int
) -> None:
    """Every job (seen or not) is completed once: none missing after start, none twice."""
    recon = ReconcileSettings(overlap_s=OVERLAP, delay_s=DELAY, max_rows=MAX_ROWS)
    s = Streamer(world, recon, attempts=tries)
    # The streamer's very first start comes before the jobs (later starts are restarts).
    s.run(Poll(commit=True, reconcile=True, budget=1, clock_lag=0))
    for action in script:
        s.run(action)
    s.settle_down()
    done = completions(s.committed)
    assert not [h for h, n in done.items() if n > 1], s.committed
    assert s.first_floor is not None
    for j in world:
        # Before the first ledger's floor lies history nobody asked to replay: only jobs a
        # committed poll saw must be completed from there.
        if at(j.end) >= s.first_floor or j.handle in s.seen_committed:
            assert done[j.handle] == 1, (j, s.first_floor)
    # Reconciled completions only for jobs no committed poll saw, and flagged as such.
    for e in s.committed:
        if isinstance(e, JobCompleted) and e.reconciled:
            assert e.job_handle not in s.seen_committed
            assert (e.sequence, e.observed, e.last_status) == (1, False, None)


@settings(max_examples=300, deadline=None)
@given(jobs(lag_max=40), actions, st.integers(min_value=1, max_value=3), attempts)
def test_no_second_completion_even_with_late_logs_and_a_tiny_memory(
    world: list[Job], script: list[Action], max_reported: int, tries: int
) -> None:
    """Logs later than delay + overlap and a ledger cut to a few entries never duplicate."""
    recon = ReconcileSettings(
        overlap_s=OVERLAP, delay_s=DELAY, max_rows=MAX_ROWS, max_reported=max_reported
    )
    s = Streamer(world, recon, attempts=tries)
    for action in script:
        s.run(action)
    s.settle_down()
    assert max(completions(s.committed).values(), default=0) <= 1, s.committed


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=0, max_value=DELAY + OVERLAP),
    st.lists(st.integers(min_value=1, max_value=6), max_size=12),
    st.integers(min_value=0, max_value=4),
)
def test_a_log_written_up_to_delay_plus_overlap_late_is_found_once(
    ended: int, lag: int, gaps: list[int], clock_lag: int
) -> None:
    """A job no poll can see (it lasts no time) is found once, however late within the bound
    its log appears and whenever the passes run."""
    s = Streamer([Job("j|0", ended, ended, lag)], ReconcileSettings(OVERLAP, DELAY))
    s.run(Poll(commit=True, reconcile=True, budget=4, clock_lag=0))
    for gap in gaps:
        s.run(Tick(gap))
        s.run(Poll(commit=True, reconcile=True, budget=4, clock_lag=clock_lag))
    s.settle_down()
    assert completions(s.committed) == {"j|0": 1}
