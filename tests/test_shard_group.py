"""Several instances share the companies through Kafka's group membership (real processes)."""

from __future__ import annotations

import calendar
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    Stack,
    Streamer,
    config_http_port,
    log_has,
    log_records,
    running_stack,
    start_streamer,
    stop_process,
    wait_started,
    wait_until,
    write_config,
)
from tests.verify import compare

pytestmark = pytest.mark.kafka

SHARDS = 8
COMPANIES = [f"c|{3001 + i}" for i in range(6)]
SESSION_S = 6  # the broker's minimum: shards of a dead instance move after this
SIM_ARGS = ("--jobs-per-company=2", "--speedup=10", "--seed=5", "--stall-probability=0")


def kafka_section(instance: str) -> dict[str, Any]:
    """The [kafka] keys of one instance of the test deployment."""
    return {"shards": SHARDS, "group_instance_id": instance, "session_timeout_s": SESSION_S}


def instance(stack: Stack, tmp: Path, name: str) -> Streamer:
    """Start another instance of the deployment (same prefix, group and transactional id)."""
    config = write_config(
        tmp / f"{name}.toml",
        endpoint=stack.sim.endpoint,
        bootstrap=stack.bootstrap,
        prefix=stack.prefix,
        companies=COMPANIES,
        interval_s=0.4,
        sections={"kafka": kafka_section(name)},
    )
    log = tmp / f"{name}.log"
    proc = start_streamer(config, log)
    return wait_started(Streamer(proc, config, log, config_http_port(config)), "service_started")


def owned(streamers: list[Streamer]) -> dict[str, set[str]]:
    """Instance log name -> the companies its /status lists (it polls exactly those)."""
    out: dict[str, set[str]] = {}
    for s in streamers:
        if s.proc.poll() is None:
            out[s.log.stem] = {c["handle"] for c in s.status()["companies"]}
    return out


def shared_exactly_once(streamers: list[Streamer]) -> dict[str, set[str]] | None:
    """The ownership when every company is owned by exactly one live instance, else None."""
    by_instance = owned(streamers)
    handles = [h for companies in by_instance.values() for h in companies]
    if sorted(handles) == sorted(COMPANIES) and all(by_instance.values()):
        return by_instance
    return None


def polled_after(log: Path, since: float) -> set[str]:
    """Companies whose cycles this instance committed after ``since`` (seconds since the epoch)."""
    out = set()
    for r in log_records(log):
        if r.get("event") != "company_cycle":
            continue
        stamp = calendar.timegm(time.strptime(r["timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
        if stamp >= since:
            out.add(r["company"])
    return out


def wait_all_done(stack: Stack, streamers: list[Streamer], max_jobs: int) -> None:
    """The simulator submitted and finished every job, and no live instance tracks one."""
    stack.wait_workload_done(max_jobs, 240)

    def nothing_tracked() -> bool:
        return all(
            c["trackedJobs"] == 0
            for s in streamers
            if s.proc.poll() is None
            for c in s.status()["companies"]
        )

    wait_until(nothing_tracked, 120, what="every completion committed")


@pytest.fixture
def group(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[Stack, list[Streamer]]]:
    """A simulator and the first instance (i1) of a sharded deployment; all stopped after."""
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=(*SIM_ARGS, "--max-jobs=24"),
        name="i1",
        interval_s=0.4,
        sections={"kafka": kafka_section("i1")},
    ) as stack:
        streamers = [stack.streamer]
        try:
            yield stack, streamers
        finally:
            for s in streamers:
                stop_process(s.proc)


def test_three_instances_share_and_take_over_a_killed_one(
    group: tuple[Stack, list[Streamer]], tmp_path: Path
) -> None:
    """3 instances poll each company once; kill -9 one: its companies move; nothing lost twice."""
    stack, streamers = group
    streamers += [instance(stack, tmp_path, "i2"), instance(stack, tmp_path, "i3")]
    shares = wait_until(lambda: shared_exactly_once(streamers), 90, what="companies shared")
    assert sum(1 for companies in shares.values() if companies) >= 2
    settled = time.time() + 1
    time.sleep(3)
    polled = {s.log.stem: polled_after(s.log, settled) for s in streamers}
    for a in polled:
        for b in polled:
            if a < b:
                assert not polled[a] & polled[b], (a, b, polled)
    victim = next(s for s in streamers if s.log.stem != "i1" and shares[s.log.stem])
    moved = shares[victim.log.stem]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(30)
    killed_at = time.monotonic()
    survivors = [s for s in streamers if s is not victim]
    wait_until(lambda: shared_exactly_once(survivors), 90, what="killed instance's shards moved")
    took = time.monotonic() - killed_at
    print(f"takeover of {sorted(moved)} after kill -9: {took:.1f} s (session {SESSION_S} s)")
    wait_all_done(stack, survivors, 24)
    for s in survivors:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(60) == 0
    report = compare(stack.ground_truth(), stack.events(), stack.heartbeats())
    assert report.ok, report
    assert any(log_has(s.log, "shard_taken_over") for s in survivors)


def test_zombie_is_fenced_and_publishes_nothing_visible(
    group: tuple[Stack, list[Streamer]], tmp_path: Path
) -> None:
    """SIGSTOP past the session timeout: shards move; after SIGCONT the zombie steps down."""
    stack, streamers = group
    zombie = instance(stack, tmp_path, "i2")
    streamers.append(zombie)
    shares = wait_until(lambda: shared_exactly_once(streamers), 90, what="companies shared")
    assert shares["i2"], shares
    zombie.proc.send_signal(signal.SIGSTOP)
    try:
        # Its shards move to i1 once the session times out.
        wait_until(
            lambda: {c["handle"] for c in streamers[0].status()["companies"]} == set(COMPANIES),
            90,
            what="i1 owns every company",
        )
    finally:
        zombie.proc.send_signal(signal.SIGCONT)
    wait_until(
        lambda: log_has(zombie.log, "shard_fenced") or log_has(zombie.log, "shards_revoked"),
        90,
        what="the zombie noticed",
    )
    wait_all_done(stack, streamers, 24)
    for s in streamers:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(60) == 0
    report = compare(stack.ground_truth(), stack.events(), stack.heartbeats())
    assert not report.duplicated, report
    assert not report.extra, report
    assert not report.out_of_order, report
    assert not report.missing, report


def test_scale_one_to_three_to_one_live(
    group: tuple[Stack, list[Streamer]], tmp_path: Path
) -> None:
    """1 -> 3 -> 1 instances while jobs run: every transition once, none invented."""
    stack, streamers = group
    streamers += [instance(stack, tmp_path, "i2"), instance(stack, tmp_path, "i3")]
    wait_until(lambda: shared_exactly_once(streamers), 90, what="scaled out")
    for s in streamers[1:]:
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(60) == 0
    # Static members do not leave: their shards come back to i1 after the session timeout.
    wait_until(lambda: shared_exactly_once(streamers[:1]), 90, what="scaled in")
    wait_all_done(stack, streamers[:1], 24)
    streamers[0].proc.send_signal(signal.SIGTERM)
    assert streamers[0].proc.wait(60) == 0
    report = compare(stack.ground_truth(), stack.events(), stack.heartbeats())
    assert report.ok, report


def test_status_and_metrics_show_the_shards(group: tuple[Stack, list[Streamer]]) -> None:
    """/status lists the owned shards; /metrics counts them and the takeovers."""
    stack, _ = group
    doc = stack.streamer.status()
    assert sorted(doc["shards"]["owned"])  # one instance owns every shard with companies
    code, text = stack.streamer.get("/metrics")
    assert code == 200
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples["streamer_shards_owned"] == len(doc["shards"]["owned"])
    assert samples["streamer_shard_takeover_seconds_count"] == len(doc["shards"]["owned"])
    assert samples["streamer_rebalances_total"] >= 1


def test_group_chaos_kills_lose_and_duplicate_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    """3 instances, 4 random kill -9 and restarts: 0 missing, 0 duplicated, 0 extra."""
    from tests.group_chaos import run_group_chaos

    result = run_group_chaos(kafka_bootstrap, tmp_path, kills=4, seed=7, max_jobs=18)
    assert result.report.ok, result.report
    assert result.exit_codes == [0, 0, 0]
