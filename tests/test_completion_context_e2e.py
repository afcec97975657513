"""Against a real broker: a failed job's job.completed tells who, what, how long and why, and a
job log that cannot be read costs the completion its messages, never the completion itself."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from streamer.encode import load_schema
from tests.chaos import RECONCILE, wait_reconciled
from tests.harness import log_records, running_stack, sim_control
from tests.verify import Delivered, compare

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
JOBS = 20
SIM_ARGS = (
    "--jobs-per-company=3",
    "--speedup=25",
    f"--max-jobs={JOBS}",
    "--seed=5",
    "--stall-probability=0",
    "--fail-probability=0.5",
)
FATAL = re.compile(r"^Fatal error while processing (asset_\d{4}\.\w+): lost connection")


def completions(events: list[Delivered]) -> list[Delivered]:
    """The job.completed events."""
    return [e for e in events if e.type == "job.completed"]


def identities(events: list[Delivered]) -> dict[str, tuple[str, str, str, str]]:
    """Per job, (name, originalName, type, submitUserEmail) of its job.observed snapshot."""
    return {
        e.value["jobHandle"]: (
            e.value["snapshot"]["name"],
            e.value["snapshot"]["originalName"],
            e.value["snapshot"]["type"],
            e.value["snapshot"]["submitUserEmail"],
        )
        for e in events
        if e.type == "job.observed"
    }


def test_failed_job_completion_names_the_job_and_its_first_error(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Every job completes once; a failed one carries its observed name and type, its
    duration and the job log's first error with its asset; every completion fits the schema."""
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=SIM_ARGS,
        sections={"completion": dict(RECONCILE)},
    ) as stack:
        stack.wait_workload_done(JOBS, 180)
        stack.wait_nothing_tracked()
        wait_reconciled(stack)
        stack.streamer.proc.send_signal(signal.SIGTERM)
        assert stack.streamer.proc.wait(60) == 0
        gt = stack.ground_truth()
    events = stack.events()
    report = compare(gt, events, every_job=True)
    assert report.ok, report
    known = identities(events)
    check = Draft202012Validator(load_schema("job.completed"))
    failed = [e.value for e in completions(events) if e.value["outcome"] == "failed"]
    assert len(failed) >= 3, report.summary()
    for done in completions(events):
        check.validate(done.value)
    for value in failed:
        handle = value["jobHandle"]
        if handle in known:  # observed: identity from its last observation
            assert (
                value["jobName"],
                value["originalName"],
                value["jobType"],
                value["submitUserEmail"],
            ) == known[handle]
        assert value["jobName"]
        assert (value["durationS"] or 0) > 0
        messages = value["logMessages"]
        assert messages is not None, value
        (first,) = messages["errors"]  # the simulator's failed jobs have one error: the fatal
        match = FATAL.match(first["message"])
        assert match, first
        assert (first["logType"], first["assetName"]) == ("FatalError", match.group(1))
        assert first["at"] is not None
        assert messages["errorTotal"] == 1
    unsuccessful = [
        e.value
        for e in completions(events)
        if e.value["outcome"] in ("completed_with_errors", "completed_with_warnings")
    ]
    for value in unsuccessful:
        messages = value["logMessages"]
        assert messages is not None
        kept = messages["errors"] or messages["warnings"]
        assert kept
        assert all(m["assetName"] and m["assetName"] in m["message"] for m in kept)
        assert len(messages["errors"]) <= 5
        assert len(messages["warnings"]) <= 5
    assert all(
        e.value["logMessages"] is None
        for e in completions(events)
        if e.value["outcome"] == "succeeded"
    )


def test_details_faults_still_give_exactly_one_completion_per_job(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Half of all getJobLogDetails requests fault: every job still completes exactly once with
    the right outcome; completions whose messages could not be read carry logMessages null."""
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=SIM_ARGS,
        # Outcome look-ups fault too: enough attempts that no outcome ends up unknown.
        sections={"completion": {"log_max_attempts": 40, **RECONCILE}},
        start=False,
    ) as stack:
        sim_control(
            stack.sim,
            "/_sim/faults",
            {"mode": "ipsapi_fault", "error_rate": 0.5, "operation": "getJobLogDetails"},
        )
        proc = stack.start(until=None).proc
        stack.wait_workload_done(JOBS, 180)
        stack.wait_nothing_tracked(120)
        wait_reconciled(stack)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        gt = stack.ground_truth()
    events = stack.events()
    report = compare(gt, events, every_job=True)
    assert report.ok, report
    assert report.completions == JOBS
    lost = [
        e.value
        for e in completions(events)
        if e.value["outcome"] != "succeeded" and e.value["logMessages"] is None
    ]
    read = [e.value for e in completions(events) if e.value["logMessages"] is not None]
    assert lost, "with half the requests faulting some messages must be lost"
    assert read, "and some read"
    assert all(v["jobName"] and v["durationS"] is not None for v in lost)
    failures = [r for r in log_records(stack.log) if r["event"] == "log_messages_lookup_failed"]
    assert len(failures) >= len(lost)
    assert {r["result"] for r in failures} == {"fault"}
