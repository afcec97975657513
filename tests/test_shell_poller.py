"""The company loop in-process, on fakes and a manual clock: retries, notifications, state, gaps."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest
import structlog

from streamer.encode import short_type
from streamer.ips import AuthenticationFault, IpsReplyError, IpsTransportError
from streamer.kafka import FencedError, PublishError
from streamer.model import JobLog
from streamer.poller import PollSettings
from tests.shell_fakes import TOPICS, ScriptedIps, rig, sample
from tests.test_diff import COMPANY, T0, job, snap

TIMEOUT = IpsTransportError("timed out", kind="timeout")


def final_log(handle: str) -> JobLog:
    """A finished, successful job log of ``handle``."""
    return JobLog(
        COMPANY, handle, handle, handle, "JobLog", T0, T0, 1, 0, 0, 0, 0, 1, 1, 0, 0, False
    )


async def test_backoff_doubles_per_failure_up_to_the_cap() -> None:
    """Consecutive failed polls wait 1, 2, 4, 8 ... s (jitter pinned) and never above the cap."""
    r = rig(ScriptedIps(TIMEOUT), poll=PollSettings(interval_s=5.0, backoff_max_s=10.0))
    delays = [await r.poller.cycle() for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert sample(r.metrics, "streamer_poll_failures_total", kind="timeout") == 5


async def test_authentication_fault_waits_the_long_backoff() -> None:
    """An authentication fault backs off auth_backoff_s and says so once in a notification."""
    fault = AuthenticationFault(10001, "bad password")
    r = rig(ScriptedIps(fault), poll=PollSettings(interval_s=5.0, auth_backoff_s=600.0))
    assert [await r.poller.cycle() for _ in range(2)] == [600.0, 600.0]
    kinds = [v["kind"] for v in r.sink.values(TOPICS.notifications)]
    assert kinds == ["authentication_failing"]
    assert r.status.state == "auth_failed"


async def test_degraded_after_n_failures_then_recovered_once() -> None:
    """company_unreachable after failures_before_degraded failures, company_recovered on success."""
    r = rig(ScriptedIps(TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT, snap(job()), snap(job())))
    for _ in range(6):
        await r.poller.cycle()
    kinds = [v["kind"] for v in r.sink.values(TOPICS.notifications)]
    assert kinds == ["company_unreachable", "company_recovered"]
    beats = [v["ok"] for v in r.sink.values(TOPICS.heartbeat)]
    assert beats == [False, False, False, False, True, True]


async def test_failed_publish_keeps_state_and_flags_the_next_change() -> None:
    """A cycle Kafka did not commit leaves state as it was; the next change may have skipped."""
    r = rig(ScriptedIps(snap(job(state="Scheduled")), snap(job(state="Running"))))
    await r.poller.cycle()
    before = dict(r.poller.state)
    r.sink.fail = PublishError("broker away")
    assert await r.poller.cycle() is None
    assert r.poller.state == before
    assert r.poller.gap
    r.sink.fail = None
    await r.poller.cycle()
    changes = [v for v in r.sink.values(TOPICS.state) if v["type"].endswith("state_changed")]
    assert [(c["from"], c["to"], c["mayHaveSkipped"]) for c in changes] == [
        ("Scheduled", "Running", True)
    ]


async def test_one_quick_failed_poll_flags_may_have_skipped() -> None:
    """A failed poll retried after ~1 s (well inside 1.5 intervals) still flags the next change."""
    r = rig(ScriptedIps(snap(job(state="Scheduled")), TIMEOUT, snap(job(state="Running"))))
    await r.poller.cycle()
    r.clock.advance(5.0)
    await r.poller.cycle()
    r.clock.advance(1.0)
    await r.poller.cycle()
    changes = [v for v in r.sink.values(TOPICS.state) if v["type"].endswith("state_changed")]
    assert [c["mayHaveSkipped"] for c in changes] == [True]


async def test_steady_cycles_do_not_flag_may_have_skipped() -> None:
    """Without a failure or a late cycle, a state change is not flagged."""
    r = rig(ScriptedIps(snap(job(state="Scheduled")), snap(job(state="Running"))))
    await r.poller.cycle()
    r.clock.advance(5.0)
    await r.poller.cycle()
    changes = [v for v in r.sink.values(TOPICS.state) if v["type"].endswith("state_changed")]
    assert [c["mayHaveSkipped"] for c in changes] == [False]


async def test_fencing_leaves_the_cycle() -> None:
    """FencedError from the sink is not a company failure: it ends the loop for the supervisor."""
    r = rig(ScriptedIps(snap(job())))
    r.sink.fail = FencedError("another instance took over")
    with pytest.raises(FencedError):
        await r.poller.cycle()


@pytest.mark.parametrize(
    "error", [RecursionError("too deep"), ValueError("bad log"), KeyError("x"), MemoryError()]
)
async def test_unexpected_error_is_this_company_failed_poll(error: BaseException) -> None:
    """An error escaping a cycle is counted as internal_error and retried; the loop goes on."""
    r = rig(ScriptedIps(error, snap(job())))
    delay = await r.poller.cycle()
    assert delay == 1.0
    assert sample(r.metrics, "streamer_poll_failures_total", kind="internal_error") == 1
    assert r.status.last_error_kind == "internal_error"
    assert await r.poller.cycle() is None
    assert [short_type(v["type"]) for v in r.sink.values(TOPICS.state)] == ["job.observed"]


async def test_a_job_log_of_another_job_is_no_outcome() -> None:
    """A job log naming another job is not taken: no completion from it, the attempt counts."""
    r = rig(ScriptedIps(snap(job("j|1")), snap()))
    r.ips.logs["j|1"] = final_log("j|2")
    await r.poller.cycle()
    await r.poller.cycle()
    assert "j|1" in r.poller.state
    assert r.poller.state["j|1"].log_attempts == 1
    r.ips.logs["j|1"] = final_log("j|1")
    await r.poller.cycle()
    done = [v for v in r.sink.values(TOPICS.state) if short_type(v["type"]) == "job.completed"]
    assert [d["outcome"] for d in done] == ["succeeded"]


async def test_job_log_transport_error_spends_no_attempt() -> None:
    """A job log lookup that got no answer is retried next cycle without counting an attempt."""
    r = rig(ScriptedIps(snap(job("j|1")), snap()))
    r.ips.logs["j|1"] = TIMEOUT
    await r.poller.cycle()
    for _ in range(3):
        await r.poller.cycle()
    assert r.poller.state["j|1"].log_attempts == 0
    assert r.ips.log_lookups == ["j|1"] * 3


async def test_run_spreads_first_poll_and_jitters_every_interval() -> None:
    """run() waits a spread first, then the jittered interval after each successful cycle."""
    r = rig(ScriptedIps(snap(job())), poll=PollSettings(interval_s=4.0, jitter=0.25))
    await r.poller.run(max_cycles=3)
    # uniform is pinned to the middle: spread = 2.0, jittered interval = 4.0 each time.
    assert r.clock.sleeps == [2.0, 4.0, 4.0]
    assert r.status.cycles == 3


async def test_run_retries_after_the_backoff_delay() -> None:
    """After a failed poll, run() sleeps the backoff delay, not the interval."""
    r = rig(ScriptedIps(IpsReplyError("bad", kind="malformed"), snap(job())))
    await r.poller.run(max_cycles=3)
    assert r.clock.sleeps == [2.5, 1.0, 5.0]


async def test_heartbeats_follow_their_cadence_while_nothing_changes() -> None:
    """A quiet company heartbeats on its first cycle, then every heartbeat_every_s; the cycles
    between commit nothing at all (no Kafka transaction)."""
    poll = PollSettings(interval_s=5.0, heartbeat_every_s=30.0)
    r = rig(ScriptedIps(snap(job())), poll=poll)
    for _ in range(13):  # polls at 0, 5, ... 60 s
        assert await r.poller.cycle() is None
        r.clock.advance(5.0)
    beats = r.sink.values(TOPICS.heartbeat)
    polled = [datetime.fromisoformat(b["polledAt"]) for b in beats]
    assert polled == [T0 + timedelta(seconds=s) for s in (0, 30, 60)]
    assert len(r.sink.batches) == 3  # the first cycle's also holds the job's first records
    assert r.status.state == "ok"
    assert sample(r.metrics, "streamer_polls_total", result="ok") == 13


async def test_quiet_cycles_without_a_transaction_do_not_flag_the_next_change() -> None:
    """Cycles that commit nothing (no change, no heartbeat due) still count as committed
    observations: the change after them is not marked mayHaveSkipped."""
    waiting = snap(job(state="WaitingCoordinator"))
    replies = ScriptedIps(waiting, waiting, waiting, snap(job(state="Running")))
    r = rig(replies, poll=PollSettings(interval_s=5.0, heartbeat_every_s=3600.0))
    for _ in range(4):
        await r.poller.cycle()
        r.clock.advance(5.0)
    assert len(r.sink.batches) == 2  # the first cycle and the change; none in between
    (changed,) = [v for v in r.sink.values(TOPICS.state) if v["type"].endswith("job.state_changed")]
    assert (changed["from"], changed["to"]) == ("WaitingCoordinator", "Running")
    assert changed["mayHaveSkipped"] is False


async def test_a_changed_outcome_or_a_failure_heartbeats_at_once() -> None:
    """Another active job count, a failed poll and the recovery after it each publish a
    heartbeat in their own cycle, whatever the cadence."""
    two = snap(job(), job("j|2"))
    replies = ScriptedIps(snap(job()), snap(job()), two, two, TIMEOUT, TIMEOUT, two, two)
    r = rig(replies, poll=PollSettings(interval_s=5.0, heartbeat_every_s=3600.0))
    for _ in range(8):
        await r.poller.cycle()
        r.clock.advance(5.0)
    beats = [(b["ok"], b["activeJobs"], b["error"]) for b in r.sink.values(TOPICS.heartbeat)]
    assert beats == [
        (True, 1, None),  # first cycle
        (True, 2, None),  # a second job listed
        (False, 2, "timeout"),  # every failed poll
        (False, 2, "timeout"),
        (True, 2, None),  # polling succeeds again
    ]


async def test_a_heartbeat_that_did_not_commit_is_published_again() -> None:
    """Only a committed heartbeat counts: after a failed commit the next cycle publishes one."""
    poll = PollSettings(interval_s=5.0, heartbeat_every_s=3600.0)
    r = rig(ScriptedIps(snap(job())), poll=poll)
    r.sink.fail = PublishError("broker away")
    await r.poller.cycle()
    r.sink.fail = None
    r.clock.advance(5.0)
    await r.poller.cycle()
    r.clock.advance(5.0)
    await r.poller.cycle()
    assert len(r.sink.values(TOPICS.heartbeat)) == 1


async def test_cycles_log_at_debug_with_a_summary_per_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With cycle lines at debug, a company logs company_summary at info: with its first
    committed cycle, then once per summary_every_s, counting the cycles and failures between."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        poll = PollSettings(interval_s=5.0, cycle_lines=False, summary_every_s=60.0)
        replies = [snap(job())] * 5 + [TIMEOUT] + [snap(job())] * 20
        r = rig(ScriptedIps(*replies), poll=poll)
        for _ in range(26):  # 25 committed cycles and 1 failed poll, 5 s apart: 125 s
            await r.poller.cycle()
            r.clock.advance(5.0)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert not [x for x in lines if x["event"] == "company_cycle"]
    summaries = [x for x in lines if x["event"] == "company_summary"]
    assert [(x["cycles"], x["failed_polls"], x["level"]) for x in summaries] == [
        (1, 0, "info"),  # the first committed cycle
        (11, 1, "info"),  # 60 s later: 11 committed cycles and the failed poll
        (12, 0, "info"),
    ]
