"""The reconciliation rules one by one: windows, splits, dedupe, watermark, memory and its bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamer.model import JobCompleted, JobLog, Outcome, OutcomeCounts, Snapshot
from streamer.reconcile import (
    CompanyLedger,
    Page,
    ReconcileSettings,
    Window,
    WindowTooFull,
    already_reported,
    latest_log_time,
    ledger_step,
    listed,
    reconcile,
    record,
    split_window,
    stamp,
    start,
    window,
)
from tests.test_diff import COMPANY, job

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # the streamer's own clock: only observedAt
SETTINGS = ReconcileSettings(overlap_s=60, delay_s=10, lookback_s=0, max_rows=3)


def at(seconds: float) -> datetime:
    """IPS time ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def joblog(handle: str, ended: float | None, *, began: float = 0.0, fatal: bool = False) -> JobLog:
    """A job log of ``handle`` that began and ended at those IPS seconds (None: still running)."""
    return JobLog(
        COMPANY, handle, f"{handle}_n", handle, "EndUpload", at(began),
        None if ended is None else at(ended), 3, 0, 0, 0, 0, 3, 3, 0, 0, fatal,
    )  # fmt: skip


def ledger(watermark: float, floor: float | None = None, **reported: float) -> CompanyLedger:
    """A ledger at those IPS seconds; ``reported`` maps handles to their end seconds."""
    return CompanyLedger(
        at(watermark),
        at(watermark if floor is None else floor),
        {h.replace("_", "|"): at(t) for h, t in reported.items()},
    )


def page(start_s: float, end_s: float, *logs: JobLog) -> Page:
    """The logs listed for the window [start_s, end_s]."""
    return Page(Window(at(start_s), at(end_s)), logs)


def run(
    led: CompanyLedger, *pages: Page, tracked: frozenset[str] = frozenset()
) -> tuple[tuple[JobCompleted, ...], CompanyLedger]:
    """reconcile() with the defaults of these tests."""
    done = reconcile(led, pages, company=COMPANY, tracked=tracked, now=NOW, settings=SETTINGS)
    return done.events, done.ledger


# -- windows ---------------------------------------------------------------------------------


def test_first_start_begins_at_ips_now_minus_lookback() -> None:
    """With no ledger the watermark and floor begin at IPS's now minus the look-back."""
    assert start(at(500), SETTINGS) == CompanyLedger(at(500), at(500))
    assert start(at(500), ReconcileSettings(lookback_s=3600)) == CompanyLedger(
        at(500 - 3600), at(500 - 3600)
    )


def test_window_lags_ips_now_and_overlaps_the_watermark() -> None:
    """The window is [watermark - overlap, ips_now - delay], never below the floor."""
    assert window(ledger(1000, floor=0), at(1100), SETTINGS) == Window(at(940), at(1090))
    assert window(ledger(1000, floor=980), at(1100), SETTINGS) == Window(at(980), at(1090))


def test_no_window_until_ips_time_passes_the_watermark_by_the_delay() -> None:
    """Nothing is listed while ips_now - delay has not passed the watermark."""
    assert window(ledger(1000), at(1010), SETTINGS) is None
    assert window(ledger(1000), at(1005), SETTINGS) is None
    assert window(ledger(1000), at(1010.001), SETTINGS) == Window(at(1000), at(1000.001))


def test_split_halves_share_their_midpoint_in_whole_milliseconds() -> None:
    """A full window splits into halves that share a millisecond-aligned midpoint."""
    whole = Window(at(0), at(1.0005))
    halves = split_window(whole)
    assert halves == (Window(at(0), at(0.5)), Window(at(0.5), at(1.0005)))
    assert split_window(Window(at(0), at(0.002))) == (
        Window(at(0), at(0.001)),
        Window(at(0.001), at(0.002)),
    )
    assert split_window(Window(at(0), at(0.0019))) is None


def test_listed_returns_a_page_halves_or_refuses_a_full_narrow_window() -> None:
    """Fewer than numRows logs is a page; numRows means split; unsplittable is reported."""
    logs = [joblog(f"j|{i}", 1) for i in range(3)]
    assert listed(Window(at(0), at(2)), logs[:2], 3) == page(0, 2, *logs[:2])
    assert listed(Window(at(0), at(2)), logs, 3) == split_window(Window(at(0), at(2)))
    with pytest.raises(WindowTooFull, match="reconcile_max_rows"):
        listed(Window(at(1), at(1.001)), logs, 3)


def test_latest_log_time_is_the_latest_date_any_log_carries() -> None:
    """Start and end dates both count; no logs, no time."""
    assert latest_log_time([joblog("j|1", 5, began=2), joblog("j|2", None, began=9)]) == at(9)
    assert latest_log_time([]) is None


# -- dedupe ----------------------------------------------------------------------------------


def test_unseen_finished_job_completes_once_with_the_logs_own_times() -> None:
    """A finished job the streamer never tracked gets job.completed, flagged, sequence 1."""
    events, after = run(ledger(100), page(40, 200, joblog("j|1", 150, began=149, fatal=True)))
    assert events == (
        JobCompleted(
            COMPANY, "j|1", 1, NOW,
            outcome=Outcome.FAILED, last_status=None,
            counts=OutcomeCounts(3, 0, 0, 0, 0, 3, 3, 0, 0),
            log_type="EndUpload", ended_at=at(150), log_attempts=1, may_have_skipped=True,
            started_at=at(149), reconciled=True, observed=False,
            job_name="j|1_n", original_name="j|1", job_type=None, submit_user_email="",
            duration_s=1.0,
        ),
    )  # fmt: skip
    assert after.reported == {"j|1": at(150)}
    assert after.watermark == at(200)


def test_tracked_reported_running_and_outside_logs_give_nothing() -> None:
    """Tracked jobs (the normal path's), reported ones, unfinished and outside logs are skipped."""
    logs = (
        joblog("j|tracked", 150),
        joblog("j|reported", 150),
        joblog("j|running", None),
        joblog("j|later", 201),
        joblog("j|earlier", 39),
    )
    events, after = run(
        ledger(100, j_reported=150), page(40, 200, *logs), tracked=frozenset({"j|tracked"})
    )
    assert events == ()
    assert after.reported == {"j|reported": at(150)}


def test_log_on_a_shared_midpoint_completes_once() -> None:
    """A log ending exactly where two halves meet is listed twice and completed once."""
    edge = joblog("j|edge", 120)
    events, after = run(ledger(100), page(40, 120, edge), page(120, 200, edge))
    assert [e.job_handle for e in events] == ["j|edge"]
    assert after.watermark == at(200)


def test_log_on_the_window_edge_is_neither_lost_nor_reported_again() -> None:
    """A log ending exactly on the upper edge is reported; the next window lists it again."""
    edge = joblog("j|edge", 200)
    events, after = run(ledger(100), page(40, 200, edge))
    assert [e.job_handle for e in events] == ["j|edge"]
    zero = ReconcileSettings(overlap_s=0, delay_s=10, max_rows=3)
    nxt = window(after, at(300), zero)
    assert nxt is not None
    assert nxt.start == at(200)  # inclusive: the edge is listed again ...
    again = reconcile(
        after, [Page(nxt, (edge,))], company=COMPANY, tracked=(), now=NOW, settings=zero
    )
    assert again.events == ()  # ... and remembered
    assert again.ledger.watermark == at(290)


def test_completions_are_ordered_by_end_time_then_handle() -> None:
    """The order of completions does not depend on the order or split of the pages."""
    logs = (joblog("j|b", 150), joblog("j|c", 120), joblog("j|a", 150))
    events, _ = run(ledger(100), page(40, 130, logs[1]), page(130, 200, logs[0], logs[2]))
    assert [e.job_handle for e in events] == ["j|c", "j|a", "j|b"]


# -- watermark -------------------------------------------------------------------------------


def test_watermark_moves_to_the_last_page_and_never_back() -> None:
    """The watermark is the end of the last page; a pass without pages keeps it."""
    assert run(ledger(100), page(40, 150), page(150, 160))[1].watermark == at(160)
    assert run(ledger(100))[1].watermark == at(100)
    assert run(ledger(100), page(40, 90))[1].watermark == at(100)


def test_pages_with_a_hole_are_refused() -> None:
    """Pages that start above the watermark or leave a gap would let the watermark skip logs."""
    with pytest.raises(ValueError, match="hole"):
        run(ledger(100, floor=0), page(101, 200))
    with pytest.raises(ValueError, match="hole"):
        run(ledger(100, floor=0), page(40, 120), page(121, 200))
    # A pass that goes on where the last one stopped starts at the watermark: no hole.
    assert run(ledger(100, floor=0), page(100, 200))[1].watermark == at(200)


# -- memory ----------------------------------------------------------------------------------


def completed(handle: str, ended: datetime | None) -> JobCompleted:
    """A normal-path completion of ``handle``."""
    return JobCompleted(
        COMPANY, handle, 4, NOW, Outcome.UNKNOWN if ended is None else Outcome.SUCCEEDED,
        job().status, ended_at=ended,
    )  # fmt: skip


def test_record_remembers_normal_completions_at_their_end_unknown_ones_unstamped() -> None:
    """Completions by the vanish path are remembered at their log's end, or unstamped."""
    led = ledger(100)
    assert record(led, []) is led
    after = record(led, [completed("j|1", at(90)), completed("j|2", None)])
    assert after.reported == {"j|1": at(90), "j|2": None}


def test_stamp_gives_unstamped_entries_the_reading_plus_the_overlap() -> None:
    """A later IPS clock reading stamps unknown completions; stamped entries keep their time."""
    led = record(ledger(100), [completed("j|1", at(90)), completed("j|2", None)])
    assert stamp(led, at(300), SETTINGS).reported == {"j|1": at(90), "j|2": at(360)}
    assert stamp(ledger(100, j_1=90), at(300), SETTINGS) == ledger(100, j_1=90)


def test_unstamped_entries_are_never_forgotten() -> None:
    """An entry without a time outlives pruning and the size bound (its log may come later)."""
    small = ReconcileSettings(overlap_s=60, delay_s=10, max_rows=3, max_reported=1)
    led = record(ledger(100), [completed("j|1", None), completed("j|2", at(150))])
    done = reconcile(led, [page(40, 200)], company=COMPANY, tracked=(), now=NOW, settings=small)
    assert done.ledger.reported == {"j|1": None}
    assert done.ledger.floor == at(150) + timedelta(microseconds=1)


def test_normal_completion_in_the_same_cycle_is_not_reconciled_again() -> None:
    """A job completed by the vanish path in this cycle is left out of the listing's results."""
    step = ledger_step(
        ledger(100), [completed("j|1", at(150))],
        reading=at(210), pages=[page(40, 200, joblog("j|1", 150))],
        company=COMPANY, tracked=(), now=NOW, settings=SETTINGS,
    )  # fmt: skip
    assert step.events == ()
    assert step.ledger is not None
    assert step.ledger.reported == {"j|1": at(150)}


def test_entries_below_the_next_window_are_forgotten() -> None:
    """An entry no later window can list (below watermark - overlap) is dropped."""
    _, after = run(ledger(100, j_old=30, j_edge=140, j_new=150), page(40, 200))
    assert after.reported == {"j|edge": at(140), "j|new": at(150)}  # edge = 200 - 60 = 140


def test_size_bound_drops_the_oldest_and_raises_the_floor() -> None:
    """Above max_reported the oldest entries below the watermark go; the floor passes them."""
    small = ReconcileSettings(overlap_s=60, delay_s=10, max_rows=3, max_reported=2)
    led = ledger(100, j_a=160, j_b=170, j_c=180, j_d=250)
    done = reconcile(led, [page(40, 200)], company=COMPANY, tracked=(), now=NOW, settings=small)
    after = done.ledger
    # j|d lies above the watermark (200): never dropped; j|a and j|b are the oldest below it.
    assert after.reported == {"j|c": at(180), "j|d": at(250)}
    assert after.floor == at(170) + timedelta(microseconds=1)
    nxt = window(after, at(400), small)
    assert nxt is not None
    assert nxt.start == after.floor  # j|a and j|b can never be listed again


def test_size_bound_never_raises_the_floor_above_the_watermark() -> None:
    """Entries at or above the watermark are kept even beyond the bound (nothing skipped)."""
    small = ReconcileSettings(overlap_s=60, delay_s=10, max_rows=3, max_reported=1)
    led = ledger(100, j_a=200, j_b=220)
    done = reconcile(led, [page(40, 200)], company=COMPANY, tracked=(), now=NOW, settings=small)
    assert done.ledger.reported == {"j|a": at(200), "j|b": at(220)}
    assert done.ledger.floor == at(100)


def test_first_ledger_is_anchored_on_the_first_ips_time_known() -> None:
    """No completion is committed unremembered: without a reading its own IPS times anchor it."""
    none = ledger_step(
        None, [], reading=None, pages=None,
        company=COMPANY, tracked=(), now=NOW, settings=SETTINGS,
    )  # fmt: skip
    assert none.ledger is None
    first = ledger_step(
        None, [completed("j|1", at(90)), completed("j|2", None)], reading=None, pages=None,
        company=COMPANY, tracked=(), now=NOW, settings=SETTINGS,
    )  # fmt: skip
    # job().status was last updated at T0; j|1's log ended at 90: the latest is the anchor.
    assert first.ledger == CompanyLedger(at(90), at(90), {"j|1": at(90), "j|2": None})
    read = ledger_step(
        None, [completed("j|3", None)], reading=at(95), pages=None,
        company=COMPANY, tracked=(), now=NOW, settings=SETTINGS,
    )  # fmt: skip
    assert read.ledger == CompanyLedger(at(95), at(95), {"j|3": at(155)})


# -- listed again ----------------------------------------------------------------------------


def test_listed_job_already_reported_is_left_out_unless_tracked() -> None:
    """getActiveJobs listing a job the ledger reported completed does not observe it again."""
    snap = Snapshot(COMPANY, (job(handle="j|1"), job(handle="j|2"), job(handle="j|3")))
    led = ledger(100, j_1=90, j_2=90)
    kept, dropped = already_reported(snap, {"j|2"}, led)
    assert [j.job_handle for j in kept.jobs] == ["j|2", "j|3"]
    assert dropped == ("j|1",)
    assert already_reported(snap, (), None) == (snap, ())
    assert already_reported(snap, (), ledger(100)) == (snap, ())


# -- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"overlap_s": -1},
        {"delay_s": -0.1},
        {"lookback_s": -5},
        {"max_rows": 1},
        {"max_reported": 0},
    ],
)
def test_settings_refuse_nonsense(bad: dict[str, float]) -> None:
    """Negative times, a numRows that cannot be split, an empty memory are refused."""
    with pytest.raises(ValueError, match="must be"):
        ReconcileSettings(**bad)  # type: ignore[arg-type]


def test_ledger_and_window_refuse_impossible_values() -> None:
    """Naive times, a floor above the watermark and a reversed window are programming errors."""
    with pytest.raises(ValueError, match="timezone"):
        CompanyLedger(datetime(2026, 1, 1), at(0))
    with pytest.raises(ValueError, match="floor"):
        CompanyLedger(at(0), at(1))
    with pytest.raises(ValueError, match="before it starts"):
        Window(at(1), at(0))
