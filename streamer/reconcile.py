"""Reconciliation with the job log: every finished job reported once, also those no poll saw.

Pure: no I/O, never reads the clock (IPS time and ``now`` are passed in), stdlib,
:mod:`streamer.model`, :mod:`streamer.outcome` and :mod:`streamer.completion_context` only.

A snapshot poller never sees a job that starts and ends between two committed polls, or while the
streamer is down, fenced or cut off from Kafka. IPS keeps the record: ``getJobLogs`` lists
finished jobs by a date window and ``numRows`` (no paging offset). Per company the streamer keeps
a :class:`CompanyLedger`, committed in the same Kafka transaction as the events it explains:

* ``watermark`` (IPS time): every job log that ended at or before it has been looked at;
* ``floor``: no window reaches below it (the first start minus the look-back; raised when the
  ledger is cut to its size bound);
* ``reported``: ``jobHandle`` → IPS time (or ``None``, see rule 5), for every completion the
  streamer committed (by either path) that a later window could list again.

Rules:

1. **Window** (:func:`window`): ``[max(watermark - overlap, floor), ips_now - delay]`` on the logs'
   end dates, both edges inclusive. ``ips_now`` is the latest IPS time known (the ``Date`` of
   IPS's replies, the logs' own dates), never the local clock; the delay lets IPS write late logs
   before their time is passed, the overlap looks again at what was already passed (clock skew,
   logs written later than the delay). ``None`` while the upper edge is not past the watermark.
2. **Split** (:func:`split_window`): a window whose reply holds ``numRows`` logs may have been
   cut; its two halves share their midpoint (a log ending exactly on it is listed twice and
   counted once). ``None`` when it is too narrow to split: the caller reports it.
3. **Dedupe** (:func:`reconcile`): a listed log gives a completion only if it is finished
   (``endDate``), ends inside the window it was listed for, is not tracked (a job in state is
   the normal path's: it vanishes, its log is looked up, it is completed there), is not in
   ``reported``, and was not completed earlier in the same pass.
4. **Watermark**: the pages of a pass cover, without a hole, from at or below the watermark on;
   the watermark moves to the end of the last page and never backwards. A pass cut short (an
   error, its request budget) keeps what its complete pages found; the next one may go on with
   the windows it left.
5. **Memory** (:func:`record`, :func:`stamp`, :func:`reconcile`): every completion the poller
   commits is remembered with its end time, the log's ``endDate``. A completion without a log
   (outcome ``unknown``) has no end time yet: it is remembered unstamped (``None``) and the next
   pass stamps it with that pass's IPS clock reading plus the overlap (its log, if IPS ever
   writes it, ended before the reading: readings are assumed to lag IPS's clock by less than the
   overlap). An entry is dropped once it lies below the next window's lower edge: no window can
   list it again. Above ``max_reported`` entries the oldest ones below the watermark are dropped
   and the floor rises past them: still no duplicate, at the cost of a shorter second look for
   logs written later than the delay. Unstamped entries are never dropped.
6. **Completion**: ``job.completed`` with sequence 1, ``observed`` false, ``reconciled`` true,
   ``may_have_skipped`` true, no last status, the log's outcome, counts and its own start and end
   times, one lookup (the listing); name, original name and submitter from the log (it has no
   job type), its duration. Completions are ordered by end time, then handle.
7. **Already reported** (:func:`already_reported`): a job ``getActiveJobs`` lists although the
   ledger reports it completed and the state does not track it is not observed again.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streamer import outcome
from streamer.completion_context import completed_from_log
from streamer.model import JobCompleted, JobLog, Snapshot

__all__ = [
    "CompanyLedger",
    "LedgerStep",
    "Page",
    "ReconcileSettings",
    "Reconciled",
    "Window",
    "WindowTooFull",
    "already_reported",
    "latest_log_time",
    "ledger_step",
    "listed",
    "reconcile",
    "record",
    "split_window",
    "stamp",
    "start",
    "window",
]

_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    """How a company's job log is reconciled (IPS seconds)."""

    #: How far below the watermark each window starts again.
    overlap_s: float = 120.0
    #: How far behind the latest known IPS time each window ends (logs written late).
    delay_s: float = 30.0
    #: On the first start (no ledger yet) the watermark begins this far before IPS's now.
    lookback_s: float = 0.0
    #: ``numRows`` of each request; a reply this long is split.
    max_rows: int = 1000
    #: Size bound of the remembered completions (see rule 5).
    max_reported: int = 5000

    def __post_init__(self) -> None:
        if min(self.overlap_s, self.delay_s, self.lookback_s) < 0:
            raise ValueError("overlap_s, delay_s and lookback_s must be >= 0")
        if self.max_rows < 2:
            raise ValueError("max_rows must be >= 2 (a full reply must be splittable)")
        if self.max_reported < 1:
            raise ValueError("max_reported must be >= 1")

    @property
    def overlap(self) -> timedelta:
        """``overlap_s`` as a timedelta."""
        return timedelta(seconds=self.overlap_s)

    @property
    def delay(self) -> timedelta:
        """``delay_s`` as a timedelta."""
        return timedelta(seconds=self.delay_s)


@dataclass(frozen=True, slots=True)
class CompanyLedger:
    """One company's durable memory of what was reported (see the module docstring).

    ``reported`` is never mutated: every function returns a new ledger with a new mapping.
    """

    watermark: datetime
    floor: datetime
    reported: Mapping[str, datetime | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.watermark.tzinfo is None or self.floor.tzinfo is None:
            raise ValueError("ledger times must be timezone-aware")
        if self.floor > self.watermark:
            raise ValueError("the floor of a ledger is never above its watermark")

    def next_start(self, settings: ReconcileSettings) -> datetime:
        """The lower edge of the next window: the watermark minus the overlap, not below floor."""
        return max(self.watermark - settings.overlap, self.floor)


@dataclass(frozen=True, slots=True)
class Window:
    """A window on the job logs' end dates, both edges inclusive."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window ends before it starts: {self.start} > {self.end}")

    def holds(self, when: datetime) -> bool:
        """Whether ``when`` lies inside the window (edges included)."""
        return self.start <= when <= self.end


@dataclass(frozen=True, slots=True)
class Page:
    """The logs one request listed for a window that did not come back full."""

    window: Window
    logs: tuple[JobLog, ...]


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What a pass produced: completions to publish and the ledger to commit with them."""

    events: tuple[JobCompleted, ...]
    ledger: CompanyLedger


def start(ips_now: datetime, settings: ReconcileSettings) -> CompanyLedger:
    """The ledger of a company's very first start: old history is not replayed unless asked."""
    begin = ips_now - timedelta(seconds=settings.lookback_s)
    return CompanyLedger(watermark=begin, floor=begin)


def window(ledger: CompanyLedger, ips_now: datetime, settings: ReconcileSettings) -> Window | None:
    """The window to list next, or None while IPS time has not passed the watermark (rule 1)."""
    end = ips_now - settings.delay
    if end <= ledger.watermark:
        return None
    return Window(ledger.next_start(settings), end)


def split_window(whole: Window) -> tuple[Window, Window] | None:
    """The two halves of a full window, sharing their midpoint; None below 2 ms (rule 2)."""
    half = (whole.end - whole.start) // 2
    half -= timedelta(microseconds=half.microseconds % 1000)  # whole milliseconds, as IPS's
    if half < _MS:
        return None
    mid = whole.start + half
    return Window(whole.start, mid), Window(mid, whole.end)


class WindowTooFull(ValueError):
    """A window too narrow to split still came back with ``numRows`` logs (rule 2)."""


def listed(whole: Window, logs: Sequence[JobLog], max_rows: int) -> Page | tuple[Window, Window]:
    """What one request's reply means: a page, or the two halves to list instead.

    Raises :class:`WindowTooFull` when a full reply's window cannot be split any further: more
    than ``max_rows`` logs ended within two milliseconds, and ``numRows`` must be raised.
    """
    if len(logs) < max_rows:
        return Page(whole, tuple(logs))
    halves = split_window(whole)
    if halves is None:
        raise WindowTooFull(
            f"{len(logs)} job logs ended between {whole.start.isoformat()} and "
            f"{whole.end.isoformat()}: raise completion.reconcile_max_rows"
        )
    return halves


def latest_log_time(logs: Iterable[JobLog]) -> datetime | None:
    """The latest date the logs carry: a lower bound of IPS's clock when they were listed."""
    times = [t for log in logs for t in (log.start_date, log.end_date) if t is not None]
    return max(times, default=None)


def record(ledger: CompanyLedger, completions: Iterable[JobCompleted]) -> CompanyLedger:
    """``ledger`` with the completions the poller is about to commit remembered (rule 5).

    Returns ``ledger`` itself when there is nothing to remember.
    """
    added = {e.job_handle: e.ended_at for e in completions}
    if not added:
        return ledger
    return CompanyLedger(ledger.watermark, ledger.floor, {**ledger.reported, **added})


def stamp(ledger: CompanyLedger, reading: datetime, settings: ReconcileSettings) -> CompanyLedger:
    """``ledger`` with its unstamped entries stamped ``reading + overlap`` (rule 5).

    ``reading`` must be an IPS clock reading taken after those completions were committed.
    Returns ``ledger`` itself when every entry is stamped.
    """
    if None not in ledger.reported.values():
        return ledger
    at = reading + settings.overlap
    return CompanyLedger(
        ledger.watermark,
        ledger.floor,
        {h: at if t is None else t for h, t in ledger.reported.items()},
    )


def reconcile(
    ledger: CompanyLedger,
    pages: Sequence[Page],
    *,
    company: str,
    tracked: Container[str],
    now: datetime,
    settings: ReconcileSettings,
) -> Reconciled:
    """Fold a pass's pages into completions and the next ledger (rules 3 to 6).

    ``pages`` are in the order they were listed and must cover, without a hole, from at or
    below the watermark on (a pass usually starts at ``ledger.next_start(settings)``, one cut
    short goes on where it stopped); ``tracked`` are the handles in state after this cycle's
    diff. ``now`` is the streamer's ``observedAt``.
    """
    _check_contiguous(ledger, pages)
    reported = dict(ledger.reported)
    found: dict[str, JobLog] = {}
    for page in pages:
        for log in page.logs:
            ended = log.end_date
            handle = log.job_handle
            if (
                ended is None
                or not page.window.holds(ended)
                or handle in tracked
                or handle in reported
                or handle in found
            ):
                continue
            found[handle] = log
    events = tuple(_completion(company, log, now) for log in sorted(found.values(), key=_by_end))
    for log in found.values():
        reported[log.job_handle] = _ended(log)
    watermark = max(ledger.watermark, pages[-1].window.end) if pages else ledger.watermark
    after = _bounded(watermark, ledger.floor, reported, settings)
    # The same object when nothing changed: the caller writes a ledger record only on a change.
    return Reconciled(events, ledger if after == ledger else after)


@dataclass(frozen=True, slots=True)
class LedgerStep:
    """One cycle's ledger work: the completions a pass found and the ledger to commit."""

    #: Completions the pass found (empty when no pass ran).
    events: tuple[JobCompleted, ...]
    #: The ledger to commit with the cycle; None while no IPS time was ever known.
    ledger: CompanyLedger | None


def ledger_step(
    ledger: CompanyLedger | None,
    completions: Sequence[JobCompleted],
    *,
    reading: datetime | None,
    pages: Sequence[Page] | None,
    company: str,
    tracked: Container[str],
    now: datetime,
    settings: ReconcileSettings,
) -> LedgerStep:
    """Remember the cycle's completions, then fold a pass's ``pages`` (None: no pass ran).

    ``reading`` is the IPS clock read by this cycle's pass (None without one). The pages must
    have been listed for :func:`window` of ``ledger``. Without a ledger, the company's first
    one is made (:func:`start`) at the first IPS time known, the reading or else the latest IPS
    time the cycle's completions carry, so that no completion is committed unremembered.
    """
    if ledger is None:
        anchor = reading if reading is not None else _latest_time(completions)
        if anchor is None:  # no IPS time and nothing to remember yet
            return LedgerStep((), None)
        ledger = start(anchor, settings)
    ledger = record(ledger, completions)
    if reading is not None:
        ledger = stamp(ledger, reading, settings)
    if pages is None:
        return LedgerStep((), ledger)
    done = reconcile(ledger, pages, company=company, tracked=tracked, now=now, settings=settings)
    return LedgerStep(done.events, done.ledger)


def already_reported(
    snapshot: Snapshot, state: Container[str], ledger: CompanyLedger | None
) -> tuple[Snapshot, tuple[str, ...]]:
    """``snapshot`` without the jobs the ledger reports completed and the state does not track.

    Returns the snapshot itself (and no handles) when there is nothing to leave out (rule 7).
    """
    if ledger is None or not ledger.reported:
        return snapshot, ()
    reported = ledger.reported
    dropped = tuple(
        h for h in (j.job_handle for j in snapshot.jobs) if h in reported and h not in state
    )
    if not dropped:
        return snapshot, ()
    gone = set(dropped)
    jobs = tuple(j for j in snapshot.jobs if j.job_handle not in gone)
    return Snapshot(snapshot.company_handle, jobs), dropped


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _check_contiguous(ledger: CompanyLedger, pages: Sequence[Page]) -> None:
    """Refuse pages that leave a hole: the watermark would pass logs nobody looked at.

    Up to the watermark everything was looked at already (the overlap is a second look), so
    the pages must start at or below it and follow each other without a gap.
    """
    reach = ledger.watermark
    for page in pages:
        if page.window.start > reach:
            raise ValueError(f"pages leave a hole before {page.window.start} (covered to {reach})")
        reach = max(reach, page.window.end)


def _latest_time(completions: Iterable[JobCompleted]) -> datetime | None:
    """The latest IPS time completions carry: log dates, or the last observed status's."""
    times = [
        t
        for e in completions
        for t in (
            e.ended_at,
            e.started_at,
            None if e.last_status is None else e.last_status.last_progress_update,
        )
        if t is not None
    ]
    return max(times, default=None)


def _ended(log: JobLog) -> datetime:
    if log.end_date is None:  # pragma: no cover - reconcile keeps finished logs only
        raise ValueError(f"job log of {log.job_handle!r} has not ended")
    return log.end_date


def _by_end(log: JobLog) -> tuple[datetime, str]:
    return _ended(log), log.job_handle


def _completion(company: str, log: JobLog, now: datetime) -> JobCompleted:
    """``job.completed`` of a finished job that no committed poll saw (rule 6)."""
    event = JobCompleted(
        company_handle=company,
        job_handle=log.job_handle,
        sequence=1,
        observed_at=now,
        outcome=outcome.classify(log),
        last_status=None,
        counts=outcome.counts(log),
        log_type=log.log_type,
        ended_at=log.end_date,
        log_attempts=1,
        may_have_skipped=True,
        started_at=log.start_date,
        reconciled=True,
        observed=False,
    )
    return completed_from_log(event, log)


def _bounded(
    watermark: datetime,
    floor: datetime,
    reported: dict[str, datetime | None],
    settings: ReconcileSettings,
) -> CompanyLedger:
    """The ledger without entries no window can list again, cut to its size bound (rule 5)."""
    edge = max(watermark - settings.overlap, floor)
    kept = {h: t for h, t in reported.items() if t is None or t >= edge}
    excess = len(kept) - settings.max_reported
    if excess > 0:
        # Only entries below the watermark may go: the region up to it has been listed, so
        # raising the floor past them skips nothing that was never looked at.
        below = sorted((t, h) for h, t in kept.items() if t is not None and t < watermark)
        if below:
            newest = below[:excess][-1][0]
            floor = max(floor, min(watermark, newest + _US))
            kept = {h: t for h, t in kept.items() if t is None or t >= floor}
    return CompanyLedger(watermark, floor, kept)
