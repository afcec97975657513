"""Against a real broker: jobs shorter than the poll interval all get exactly one job.completed."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from streamer.encode import load_schema
from tests.chaos import RECONCILE, wait_reconciled
from tests.harness import log_records, running_stack
from tests.verify import compare

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
JOBS = 40


def test_jobs_shorter_than_the_poll_interval_are_each_completed_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Most jobs live a fraction of a poll interval; every one gets one job.completed."""
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=(
            "--jobs-per-company=3",
            "--speedup=5",
            f"--max-jobs={JOBS}",
            "--seed=21",
            "--stall-probability=0",
            # 0.2-1.5 simulated seconds at 5x: 0.04-0.3 s, all below the 0.6 s interval.
            "--short-job-share=0.8",
        ),
        interval_s=0.6,
        sections={"completion": dict(RECONCILE)},
    ) as stack:
        stack.wait_workload_done(JOBS, 180)
        stack.wait_nothing_tracked()
        wait_reconciled(stack)
        stack.streamer.proc.send_signal(signal.SIGTERM)
        assert stack.streamer.proc.wait(60) == 0
        gt = stack.ground_truth()
    events = stack.events()
    report = compare(gt, events, stack.heartbeats(), every_job=True)
    assert report.ok, report
    assert report.jobs == JOBS
    assert report.completions == JOBS
    # Not vacuous: many jobs were seen by no poll, and reconciliation reported them.
    assert report.unseen_jobs >= 10, report.summary()
    assert report.reconciled >= report.unseen_jobs
    check = Draft202012Validator(load_schema("job.completed"))
    reconciled = [e for e in events if e.type == "job.completed" and e.value["reconciled"]]
    for ev in reconciled:
        check.validate(ev.value)
        assert (ev.value["observed"], ev.value["lastStatus"], ev.value["sequence"]) == (
            False,
            None,
            1,
        )
        assert ev.value["startedAt"] is not None
        assert ev.value["endedAt"] is not None
    passes = [r for r in log_records(stack.log) if r["event"] == "reconcile_failed"]
    assert passes == []
