"""The delivery oracle's completions check: every ground-truth job, seen or not, once."""

from __future__ import annotations

from typing import Any

from tests.verify import Delivered, compare

T = "2026-11-28T12:00:0{}.000Z"


def transition(handle: str, to: str, second: int) -> dict[str, Any]:
    """A ground-truth state change of ``handle``."""
    return {"kind": "transition", "t": T.format(second), "company": "c|1", "jobHandle": handle,
            "from": None, "to": to}  # fmt: skip


def joblog(handle: str, second: int, outcome: str = "succeeded") -> dict[str, Any]:
    """A ground-truth job log of ``handle``."""
    return {"kind": "joblog", "t": T.format(second), "company": "c|1", "jobHandle": handle,
            "outcome": outcome}  # fmt: skip


def poll(second: int, *jobs: tuple[str, str]) -> dict[str, Any]:
    """A successful ground-truth poll that listed ``jobs`` as (handle, state)."""
    return {"kind": "poll", "t": T.format(second), "wall": T.format(second), "company": "c|1",
            "ok": True, "jobs": [list(j) for j in jobs]}  # fmt: skip


def event(handle: str, seq: int, kind: str, **value: Any) -> Delivered:
    """A delivered job event."""
    headers = {"ce_type": kind, "ce_id": f"{handle}:{seq}", "ce_subject": handle,
               "ce_sequence": f"{seq:020d}"}  # fmt: skip
    return Delivered("t.jobs.state", handle, headers, {"jobHandle": handle, **value})


def completed(handle: str, seq: int = 1, *, reconciled: bool = True) -> Delivered:
    """A delivered job.completed (reconciled: the job was never observed)."""
    return event(handle, seq, "job.completed", outcome="succeeded", reconciled=reconciled,
                 observed=not reconciled, mayHaveSkipped=reconciled)  # fmt: skip


#: j|seen: listed by polls, then gone; j|unseen: lived between two polls.
TRUTH = [
    transition("j|seen", "New", 0),
    poll(1, ("j|seen", "New")),
    transition("j|unseen", "New", 2),
    transition("j|unseen", "gone", 3),
    joblog("j|unseen", 3),
    transition("j|seen", "gone", 4),
    joblog("j|seen", 4),
    poll(5),
]
SEEN = [
    event("j|seen", 1, "job.observed", snapshot={"status": {"state": "New"}}),
    completed("j|seen", 2, reconciled=False),
]


def test_unseen_job_completed_by_reconciliation_is_counted_not_extra() -> None:
    """A reconciled completion of a job no poll saw is no transition and no extra."""
    report = compare(TRUTH, [*SEEN, completed("j|unseen")], every_job=True)
    assert report.ok, report
    assert (report.jobs, report.unseen_jobs, report.completions, report.reconciled) == (2, 1, 2, 1)
    assert report.expected == report.delivered == 2  # New and gone of j|seen


def test_missing_completion_is_reported_only_once_the_workload_is_over() -> None:
    """A finished job without job.completed is missing with every_job, not before."""
    assert compare(TRUTH, SEEN).ok
    report = compare(TRUTH, SEEN, every_job=True)
    assert report.completion_missing == ["j|unseen"]
    assert not report.ok


def test_second_completion_is_duplicated() -> None:
    """A reconciled completion next to the vanish path's one is a duplicate."""
    report = compare(TRUTH, [*SEEN, completed("j|seen", 3)], every_job=True)
    assert [d.split(":")[0] for d in report.completion_duplicated] == ["j|seen"]
    assert not report.ok


def test_completion_of_a_job_that_never_finished_or_with_a_wrong_flag_is_extra() -> None:
    """job.completed for a running job, or observed false for an observed one, is extra."""
    truth = [*TRUTH, transition("j|running", "New", 6)]
    report = compare(truth, [*SEEN, completed("j|unseen"), completed("j|running")])
    assert report.completion_extra == ["j|running:1: the job never finished"]
    flagged = [*SEEN[:1], completed("j|seen", 2), completed("j|unseen")]
    report = compare(TRUTH, flagged)
    assert report.completion_extra == ["j|seen:2: observed false, but it was"]


def test_reconciled_completion_with_another_outcome_is_wrong() -> None:
    """A reconciled completion carries the job log's outcome, or it is a wrong outcome."""
    bad = event("j|unseen", 1, "job.completed", outcome="failed", reconciled=True, observed=False)
    report = compare(TRUTH, [*SEEN, bad])
    assert report.wrong_outcome
