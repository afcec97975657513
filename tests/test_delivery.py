"""The delivery promise against a real broker: crashes, broker outages, IPS faults, fencing."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer import localkafka
from streamer.simulator import FAULT_MODES as SIMULATOR_FAULT_MODES
from tests.chaos import run_chaos
from tests.harness import (
    free_port,
    log_count,
    log_has,
    log_records,
    running_stack,
    sim_control,
    start_streamer,
    stop_process,
    wait_until,
    write_config,
)
from tests.verify import compare

pytestmark = pytest.mark.kafka


def test_kill_9_at_random_points_loses_and_duplicates_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """SIGKILL at random points, restarted each time: every polled transition exactly once."""
    result = run_chaos(kafka_bootstrap, tmp_path, kills=5, seed=11, max_jobs=18, speedup=10)
    assert result.exit_code == 0
    assert result.report.ok, result.report
    # Not vacuous: the streamer was up long enough to deliver a real workload.
    assert result.report.delivered >= 15, result.summary()
    # What was lost can only be what no committed poll saw (killed between poll and commit).
    # Each kill can lose at most what its last poll alone showed (a few jobs' states); a slow
    # machine widens the poll-to-commit window, so the bound is per kill, not exact.
    assert len(result.report.uncommitted) <= 4 * result.kills, result.summary()
    restores = [r for r in log_records(tmp_path / "streamer.log") if r["event"] == "state_restored"]
    assert len(restores) >= 3  # a kill during start-up can come before the restore
    assert any(r["jobs"] > 0 for r in restores[1:]), "no kill happened after a commit"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Path]:
    """A broker of this test's own, so stopping it does not disturb other tests."""
    state = tmp_path / "kafka"
    localkafka.start(state)
    try:
        yield state
    finally:
        localkafka.stop(state)


def test_broker_stopped_and_restarted_mid_run(own_broker: Path, tmp_path: Path) -> None:
    """Kafka down mid-run: polling pauses, resumes when it is back; nothing lost or duplicated."""
    broker = localkafka.running(own_broker)
    assert broker is not None
    companies = ("c|1001", "c|1002")
    with running_stack(
        tmp_path,
        broker.bootstrap,
        companies=companies,
        sim_args=(
            "--jobs-per-company=3",
            "--speedup=20",
            "--max-jobs=14",
            "--seed=5",
            "--stall-probability=0",
        ),
        interval_s=0.3,
        sections={"kafka": {"request_timeout_s": 3}},
    ) as stack:
        log = stack.log
        wait_until(lambda: log_count(log, "company_cycle") >= 4, 60, what="a few commits")
        outages = log_count(log, "kafka_unavailable")
        localkafka.stop(own_broker)
        wait_until(lambda: log_count(log, "kafka_unavailable") > outages, 60, what="outage seen")
        cycles_while_down = log_count(log, "company_cycle")
        time.sleep(7)
        # No cycle commits while the broker is down.
        assert log_count(log, "company_cycle") == cycles_while_down
        localkafka.restart(own_broker)
        stack.wait_workload_done(14, 120)
        stack.wait_nothing_tracked()
        stack.streamer.proc.send_signal(signal.SIGTERM)
        assert stack.streamer.proc.wait(60) == 0
        gt = stack.ground_truth()
    events = [r["event"] for r in log_records(log)]
    assert "kafka_unavailable" in events
    assert "kafka_recovered" in events
    report = compare(gt, stack.events(), stack.heartbeats())
    assert report.ok, report
    assert report.delivered >= 10
    # The outage hid states from the stream; the streamer said so where it mattered.
    assert not report.missing


# Every mode the simulator can inject, so a new one is covered without editing this test.
FAULT_MODES = tuple(sorted(SIMULATOR_FAULT_MODES))


def test_failed_polls_never_produce_events(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Every IPS fault kind, half of all polls: no invented or lost event, failures logged."""
    companies = tuple(f"c|{2001 + i}" for i in range(len(FAULT_MODES)))
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=companies,
        sim_args=(
            "--jobs-per-company=2",
            "--speedup=25",
            "--max-jobs=48",
            "--seed=3",
            "--stall-probability=0",
        ),
        interval_s=0.3,
        sections={"ips": {"timeout_s": 1.0}, "completion": {"log_max_attempts": 3}},
        start=False,
    ) as stack:
        for company, mode in zip(companies, FAULT_MODES, strict=True):
            rule: dict[str, object] = {
                "company": company,
                "mode": mode,
                "error_rate": 0.5,
                "operation": "getActiveJobs",  # polls fail; job-log lookups are another matter
            }
            if mode == "timeout":
                rule["timeout_s"] = 2.0
            if mode == "vanish_before_log":
                # 250 simulated s = 10 s at speedup 25: far beyond the 3 look-ups (about a
                # second), so every job of this company ends "unknown", however slow the cycles.
                rule = {"company": company, "mode": mode, "log_delay_s": 250}
            sim_control(stack.sim, "/_sim/faults", rule)
        proc = stack.start(until=None).proc
        stack.wait_workload_done(48, 150)
        sim_control(stack.sim, "/_sim/faults", method="DELETE")
        stack.wait_nothing_tracked()  # clean polls: the last vanished jobs complete
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        gt = stack.ground_truth()
    report = compare(gt, stack.events(), stack.heartbeats())
    assert report.ok, report
    log = stack.log
    failed_kinds = Counter(r.get("kind") for r in log_records(log) if r["event"] == "poll_failed")
    for kind in ("timeout", "http_5xx", "malformed", "namespace", "connection"):
        assert failed_kinds[kind] > 0, failed_kinds
    events = {r["event"] for r in log_records(log)}
    assert "ips_authentication_failed" in events
    assert failed_kinds["fault_authorization"] > 0
    assert failed_kinds["fault_ipsapi"] > 0
    sim_faults = Counter(r.get("fault") for r in gt if r["kind"] == "poll" and not r["ok"])
    assert sum(sim_faults.values()) >= 50
    completed = [e for e in stack.events() if e.type == "job.completed"]
    delayed_company = companies[FAULT_MODES.index("vanish_before_log")]
    delayed = {e.value["outcome"] for e in completed if e.value["companyHandle"] == delayed_company}
    assert "unknown" in delayed  # a job log that appears too late gives an honest "unknown"


def test_instance_of_another_group_with_same_transactional_id_fences_the_first(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Same transactional id, another group: the first steps down from its shard; no duplicates."""
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=["c|1001"],
        sim_args=("--jobs-per-company=3", "--speedup=20", "--seed=9", "--stall-probability=0"),
        name="a",
        interval_s=0.3,
    ) as stack:
        first, first_log = stack.streamer.proc, stack.log
        second_cfg = write_config(
            tmp_path / "b.toml",
            endpoint=stack.sim.endpoint,
            bootstrap=kafka_bootstrap,
            prefix=stack.prefix,
            companies=["c|1001"],
            interval_s=0.3,
            sections={"kafka": {"group_id": stack.prefix + "-other-deployment"}},
        )
        second_log = tmp_path / "b.log"
        second = start_streamer(second_cfg, second_log)
        try:
            wait_until(lambda: log_has(first_log, "shard_fenced"), 60, what="first fenced")
            cycles = log_count(first_log, "company_cycle")
            wait_until(lambda: log_count(second_log, "company_cycle") >= 5, 60)
            assert log_count(first_log, "company_cycle") == cycles  # it stepped down
            assert first.poll() is None  # stepping down is not dying
            assert second.poll() is None
        finally:
            stop_process(second)
        gt = stack.ground_truth()
    report = compare(gt, stack.events())
    # The fenced instance's last uncommitted poll may be visible only in the ground truth;
    # nothing may be duplicated or invented.
    assert not report.duplicated, report
    assert not report.extra, report
    assert not report.out_of_order, report


def test_sigterm_while_kafka_is_unreachable_exits_promptly(tmp_path: Path) -> None:
    """With Kafka never reachable the daemon waits for it, and SIGTERM still ends it cleanly."""
    with running_stack(
        tmp_path,
        f"127.0.0.1:{free_port()}",  # nothing listens there
        companies=["c|1001"],
        sim_args=("--jobs-per-company=1",),
        prefix="nokafka",
        sections={"kafka": {"create_topics": False, "request_timeout_s": 2}},
        until=None,  # its HTTP port opens only once Kafka answered
    ) as stack:
        proc = stack.streamer.proc
        wait_until(lambda: log_has(stack.log, "kafka_unavailable"), 30)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert time.monotonic() - started < 10
