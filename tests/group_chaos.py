"""Kill and restart random instances of a sharded deployment, then verify delivery.

Shared by ``tests/test_shard_group.py`` (a few kills) and ``bench/group_chaos.py`` (20 or more).
Every instance has the same configuration but its own static member id; a killed instance is
restarted with the same id after a random pause, so its shards either come straight back (a
restart within the session timeout) or move to a survivor and back.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.harness import (
    Streamer,
    config_http_port,
    running_stack,
    start_streamer,
    stop_process,
    wait_until,
    write_config,
)
from tests.verify import Report, compare

COMPANIES = tuple(f"c|{4001 + i}" for i in range(6))
SHARDS = 8
SESSION_S = 6


@dataclass
class GroupChaosResult:
    """What a group chaos run did and what the verifier found."""

    instances: int
    kills: int
    report: Report
    exit_codes: list[int]
    seconds: float


def run_group_chaos(
    bootstrap: str,
    tmp: Path,
    *,
    instances: int = 3,
    kills: int,
    seed: int = 1,
    max_jobs: int = 36,
    speedup: float = 10.0,
    log: Callable[[str], None] = lambda _: None,
) -> GroupChaosResult:
    """Run a bounded workload on ``instances`` instances, SIGKILL one at random ``kills`` times."""
    rng = random.Random(seed)
    started = time.monotonic()
    with running_stack(
        tmp,
        bootstrap,
        companies=COMPANIES,
        sim_args=(
            "--jobs-per-company=2",
            f"--speedup={speedup}",
            f"--max-jobs={max_jobs}",
            f"--seed={seed}",
            "--stall-probability=0",
        ),
        interval_s=0.4,
        sections={"completion": {"log_max_attempts": 3}},
        start=False,
    ) as stack:
        configs = [
            write_config(
                tmp / f"g{i}.toml",
                endpoint=stack.sim.endpoint,
                bootstrap=bootstrap,
                prefix=stack.prefix,
                companies=COMPANIES,
                interval_s=0.4,
                sections={
                    "kafka": {
                        "shards": SHARDS,
                        "group_instance_id": f"g{i}",
                        "session_timeout_s": SESSION_S,
                    },
                    "completion": {"log_max_attempts": 3},
                },
            )
            for i in range(instances)
        ]

        def start(i: int) -> Streamer:
            proc = start_streamer(configs[i], tmp / f"g{i}.log")
            return Streamer(proc, configs[i], tmp / f"g{i}.log", config_http_port(configs[i]))

        running = [start(i) for i in range(instances)]
        try:
            for n in range(kills):
                time.sleep(rng.uniform(0.5, 3.0))
                i = rng.randrange(instances)
                running[i].proc.send_signal(signal.SIGKILL)
                running[i].proc.wait()
                pause = rng.uniform(0.0, 2.0 * SESSION_S)
                log(f"kill {n + 1}/{kills}: instance g{i}, restart after {pause:.1f}s")
                time.sleep(pause)
                running[i] = start(i)
            stack.wait_workload_done(max_jobs, 300)

            def nothing_tracked() -> bool:
                try:
                    docs = [s.status() for s in running]
                except OSError:
                    return False
                owned = [c for d in docs for c in d["companies"]]
                return sorted(c["handle"] for c in owned) == sorted(COMPANIES) and all(
                    c["trackedJobs"] == 0 for c in owned
                )

            wait_until(nothing_tracked, 180, what="every company owned, every completion out")
            for s in running:
                s.proc.send_signal(signal.SIGTERM)
            exit_codes = [s.proc.wait(60) for s in running]
        finally:
            for s in running:
                stop_process(s.proc)
        ground_truth = stack.ground_truth()
    report = compare(ground_truth, stack.events(), stack.heartbeats())
    return GroupChaosResult(instances, kills, report, exit_codes, time.monotonic() - started)
