"""The delivery promise against a real broker: crashes, broker outages, IPS faults, fencing."""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer import localkafka
from streamer.simulator import FAULT_MODES as SIMULATOR_FAULT_MODES
from streamer.simulator import read_ground_truth
from tests.chaos import run_chaos, sim_state
from tests.harness import (
    delivered_events,
    free_port,
    heartbeats,
    log_records,
    sim_control,
    simulator,
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
    prefix = f"outage{uuid.uuid4().hex[:6]}"
    companies = ("c|1001", "c|1002")
    with simulator(
        tmp_path, "--company", companies[0], "--company", companies[1], "--jobs-per-company",
        "3", "--speedup", "20", "--max-jobs", "14", "--seed", "5", "--stall-probability", "0",
    ) as sim:  # fmt: skip
        config = write_config(
            tmp_path / "streamer.toml",
            endpoint=sim.endpoint,
            bootstrap=broker.bootstrap,
            prefix=prefix,
            companies=companies,
            interval_s=0.3,
            sections={"kafka": {"request_timeout_s": 3}},
        )
        log = tmp_path / "streamer.log"
        proc = start_streamer(config, log)
        wait_until(lambda: any(r["event"] == "company_cycle" for r in log_records(log)), 60)
        time.sleep(1.5)
        localkafka.stop(own_broker)
        time.sleep(3)
        cycles_while_down = sum(1 for r in log_records(log) if r["event"] == "company_cycle")
        time.sleep(7)
        # No cycle commits while the broker is down.
        assert sum(1 for r in log_records(log) if r["event"] == "company_cycle") == (
            cycles_while_down
        )
        localkafka.restart(own_broker)
        wait_until(
            lambda: sim_state(sim)["active_jobs"] == 0 and sim_state(sim)["submitted_jobs"] == 14,
            120,
            interval_s=0.5,
        )
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        gt = read_ground_truth(sim.ground_truth)
    events = [r["event"] for r in log_records(log)]
    assert "kafka_unavailable" in events
    assert "kafka_recovered" in events
    report = compare(
        gt, delivered_events(broker.bootstrap, prefix), heartbeats(broker.bootstrap, prefix)
    )
    assert report.ok, report
    assert report.delivered >= 10
    # The outage hid states from the stream; the streamer said so where it mattered.
    assert not report.missing


# Every mode the simulator can inject, so a new one is covered without editing this test.
FAULT_MODES = tuple(sorted(SIMULATOR_FAULT_MODES))


def test_failed_polls_never_produce_events(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Every IPS fault kind, half of all polls: no invented or lost event, failures logged."""
    prefix = f"faults{uuid.uuid4().hex[:6]}"
    companies = tuple(f"c|{2001 + i}" for i in range(len(FAULT_MODES)))
    args = [a for c in companies for a in ("--company", c)]
    with simulator(
        tmp_path, *args, "--jobs-per-company", "2", "--speedup", "25", "--max-jobs", "48",
        "--seed", "3", "--stall-probability", "0",
    ) as sim:  # fmt: skip
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
                rule = {"company": company, "mode": mode, "log_delay_s": 20}
            sim_control(sim, "/_sim/faults", rule)
        config = write_config(
            tmp_path / "streamer.toml",
            endpoint=sim.endpoint,
            bootstrap=kafka_bootstrap,
            prefix=prefix,
            companies=companies,
            interval_s=0.3,
            sections={"ips": {"timeout_s": 1.0}, "completion": {"log_max_attempts": 3}},
        )
        log = tmp_path / "streamer.log"
        proc = start_streamer(config, log)
        wait_until(
            lambda: sim_state(sim)["submitted_jobs"] == 48 and sim_state(sim)["active_jobs"] == 0,
            150,
            interval_s=0.5,
        )
        sim_control(sim, "/_sim/faults", method="DELETE")
        time.sleep(4)  # clean polls: the last vanished jobs complete
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        gt = read_ground_truth(sim.ground_truth)
    report = compare(
        gt, delivered_events(kafka_bootstrap, prefix), heartbeats(kafka_bootstrap, prefix)
    )
    assert report.ok, report
    failed_kinds = Counter(r.get("kind") for r in log_records(log) if r["event"] == "poll_failed")
    for kind in ("timeout", "http_5xx", "malformed", "namespace", "connection"):
        assert failed_kinds[kind] > 0, failed_kinds
    events = {r["event"] for r in log_records(log)}
    assert "ips_authentication_failed" in events
    assert failed_kinds["fault_authorization"] > 0
    assert failed_kinds["fault_ipsapi"] > 0
    sim_faults = Counter(r.get("fault") for r in gt if r["kind"] == "poll" and not r["ok"])
    assert sum(sim_faults.values()) >= 50
    completed = [e for e in delivered_events(kafka_bootstrap, prefix) if e.type == "job.completed"]
    delayed_company = companies[FAULT_MODES.index("vanish_before_log")]
    delayed = {e.value["outcome"] for e in completed if e.value["companyHandle"] == delayed_company}
    assert "unknown" in delayed  # a job log that appears too late gives an honest "unknown"


def test_second_instance_with_same_transactional_id_fences_the_first(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Two instances, one transactional id: the first is fenced and exits 3; no duplicates."""
    prefix = f"fence{uuid.uuid4().hex[:6]}"
    with simulator(
        tmp_path, "--company", "c|1001", "--jobs-per-company", "3", "--speedup", "20",
        "--seed", "9", "--stall-probability", "0",
    ) as sim:  # fmt: skip
        first_cfg = write_config(
            tmp_path / "a.toml",
            endpoint=sim.endpoint,
            bootstrap=kafka_bootstrap,
            prefix=prefix,
            companies=["c|1001"],
            interval_s=0.3,
        )
        second_cfg = write_config(
            tmp_path / "b.toml",
            endpoint=sim.endpoint,
            bootstrap=kafka_bootstrap,
            prefix=prefix,
            companies=["c|1001"],
            interval_s=0.3,
        )
        first_log, second_log = tmp_path / "a.log", tmp_path / "b.log"
        first = start_streamer(first_cfg, first_log)
        wait_until(lambda: any(r["event"] == "company_cycle" for r in log_records(first_log)), 60)
        second = start_streamer(second_cfg, second_log)
        assert first.wait(60) == 3
        wait_until(
            lambda: sum(r["event"] == "company_cycle" for r in log_records(second_log)) >= 5, 60
        )
        assert second.poll() is None
        stop_process(second)
        gt = read_ground_truth(sim.ground_truth)
    text = first_log.read_text()
    assert "transactional id" in text
    assert "kafka.transactional_id" in text
    report = compare(gt, delivered_events(kafka_bootstrap, prefix))
    # The fenced instance's last uncommitted poll may be visible only in the ground truth;
    # nothing may be duplicated or invented.
    assert not report.duplicated, report
    assert not report.extra, report
    assert not report.out_of_order, report


def test_sigterm_while_kafka_is_unreachable_exits_promptly(tmp_path: Path) -> None:
    """With Kafka never reachable the daemon waits for it, and SIGTERM still ends it cleanly."""
    with simulator(tmp_path, "--company", "c|1001", "--jobs-per-company", "1") as sim:
        config = write_config(
            tmp_path / "streamer.toml",
            endpoint=sim.endpoint,
            bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens there
            prefix="nokafka",
            companies=["c|1001"],
            sections={"kafka": {"create_topics": False, "request_timeout_s": 2}},
        )
        log = tmp_path / "streamer.log"
        proc = start_streamer(config, log)
        wait_until(lambda: "kafka_unavailable" in log.read_text(), 30)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert time.monotonic() - started < 10
