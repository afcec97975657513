"""The pure cycle step: settling job-log answers into a diff, and the records of a cycle."""

from __future__ import annotations

from streamer.cycle import cycle_records, heartbeat_due, owned, settle
from streamer.diff import DiffResult, DiffSettings, diff
from streamer.encode import TopicNames
from streamer.model import Heartbeat, JobCompleted
from tests.test_diff import at, job, snap
from tests.test_shell_poller import final_log

SETTINGS = DiffSettings(log_max_attempts=3)
TOPICS = TopicNames.with_prefix("t")


def vanished() -> DiffResult:
    """A diff in which j|1 vanished and j|2 is new."""
    first = diff({}, snap(job("j|1")), at(0), SETTINGS, None)
    return diff(first.state, snap(job("j|2")), at(5), SETTINGS, at(0))


def test_unanswered_lookup_stays_pending_without_an_attempt() -> None:
    """A handle with no answer keeps its tracked job as is and stays pending."""
    result = vanished()
    settled = settle(result, {}, at(5), SETTINGS)
    assert settled.pending == ("j|1",)
    assert settled.state["j|1"].log_attempts == 0
    assert settled.completed == ()


def test_not_found_counts_an_attempt() -> None:
    """An answer of 'no log' spends one attempt and rewrites the job's checkpoint."""
    result = vanished()
    settled = settle(result, {"j|1": None}, at(5), SETTINGS)
    assert settled.state["j|1"].log_attempts == 1
    assert "j|1" in settled.changed


def test_another_jobs_log_is_not_found() -> None:
    """A log naming another job is treated as 'no log', never as this job's outcome."""
    result = vanished()
    settled = settle(result, {"j|1": final_log("j|9")}, at(5), SETTINGS)
    assert settled.completed == ()
    assert settled.state["j|1"].log_attempts == 1


def test_final_log_completes_and_tombstones() -> None:
    """A final log completes the job: event after the diff's, dropped from state and changed."""
    result = vanished()
    settled = settle(result, {"j|1": final_log("j|1")}, at(5), SETTINGS)
    assert [type(e).__name__ for e in settled.events] == ["JobObserved", "JobCompleted"]
    assert isinstance(settled.events[-1], JobCompleted)
    assert settled.completed == ("j|1",)
    assert "j|1" not in settled.state
    assert settled.changed == ("j|2",)


def test_records_come_in_commit_order() -> None:
    """Events, checkpoints and tombstones (public, then private), then the heartbeat."""
    result = vanished()
    settled = settle(result, {"j|1": final_log("j|1")}, at(5), SETTINGS)
    hb = Heartbeat("c|acme", at(5), True, 0.01, 1, at(5))
    records = cycle_records(settled, source="s", topics=TOPICS, heartbeat=hb)
    assert [(r.topic, r.key, r.value is None) for r in records] == [
        (TOPICS.state, b"j|2", False),
        (TOPICS.state, b"j|1", False),
        (TOPICS.latest, b"j|2", False),
        (TOPICS.latest, b"j|1", True),
        (TOPICS.checkpoint, b"j|2", False),
        (TOPICS.checkpoint, b"j|1", True),
        (TOPICS.heartbeat, b"c|acme", False),
    ]


def test_jobs_are_filed_under_the_polled_company() -> None:
    """A job listed with another companyHandle is attributed to the company that was polled."""
    from dataclasses import replace

    from streamer.model import Snapshot

    foreign = replace(job("j|1"), company_handle="c|other")
    listed = Snapshot("c|acme", (foreign, job("j|2")))
    mine = owned(listed, "c|acme")
    assert [j.company_handle for j in mine.jobs] == ["c|acme", "c|acme"]
    assert mine.jobs[1] is listed.jobs[1]
    same = snap(job("j|3"))
    assert owned(same, "c|acme") is same


def test_heartbeat_due_on_first_change_failure_and_cadence() -> None:
    """A heartbeat is due first, on a failure, on a changed outcome, and every every_s."""
    last = Heartbeat("c|1", at(0), True, 0.01, 3, at(0))

    def beat(t: float, ok: bool = True, jobs: int = 3, error: str | None = None) -> Heartbeat:
        return Heartbeat("c|1", at(t), ok, 0.01, jobs, at(t), error)

    assert heartbeat_due(None, beat(5), 30.0)  # the first one
    assert not heartbeat_due(last, beat(29.9), 30.0)  # nothing changed, too soon
    assert heartbeat_due(last, beat(30), 30.0)  # the cadence
    assert heartbeat_due(last, beat(5, jobs=4), 30.0)  # activeJobs changed
    assert heartbeat_due(last, beat(5, ok=False, error="timeout"), 30.0)  # a failure
    failed = beat(5, ok=False, error="timeout")
    assert heartbeat_due(failed, beat(6, ok=False, error="timeout"), 30.0)  # every failure
    assert heartbeat_due(failed, beat(10), 30.0)  # ok again
    assert heartbeat_due(last, beat(5), 0.0)  # every_s 0: every cycle
