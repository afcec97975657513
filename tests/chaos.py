"""The kill/restart workload: SIGKILL the streamer at random points, restart it, verify delivery.

Shared by ``tests/test_delivery.py`` (a few kills) and ``bench/chaos.py`` (20 or more).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.harness import running_stack
from tests.verify import Report, compare

COMPANIES = ("c|1001", "c|1002", "c|1003")


@dataclass
class ChaosResult:
    """What a chaos run did and what the verifier found."""

    kills: int
    report: Report
    exit_code: int
    seconds: float

    def summary(self) -> str:
        """The printed result line."""
        return f"kills: {self.kills}, {self.report.summary()}"


def run_chaos(
    bootstrap: str,
    tmp: Path,
    *,
    kills: int,
    seed: int = 1,
    max_jobs: int = 30,
    speedup: float = 20.0,
    min_alive_s: float = 0.3,
    max_alive_s: float = 2.5,
    log: Callable[[str], None] = lambda _: None,
) -> ChaosResult:
    """Run a bounded workload while killing the streamer ``kills`` times; verify the topics."""
    rng = random.Random(seed)
    started = time.monotonic()
    with running_stack(
        tmp,
        bootstrap,
        companies=COMPANIES,
        sim_args=(
            "--jobs-per-company=3",
            f"--speedup={speedup}",
            f"--max-jobs={max_jobs}",
            f"--seed={seed}",
            "--stall-probability=0",
        ),
        interval_s=0.3,
        sections={"completion": {"log_max_attempts": 3}},
        start=False,
    ) as stack:
        for n in range(kills):
            proc = stack.start(until=None).proc
            alive = rng.uniform(min_alive_s, max_alive_s)
            time.sleep(alive)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log(f"kill {n + 1}/{kills} after {alive:.2f}s")
        # A last, clean run: until the workload is finished and every completion was published.
        proc = stack.start(until=None).proc
        stack.wait_workload_done(max_jobs, 180)
        stack.wait_nothing_tracked()
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(60)
        ground_truth = stack.ground_truth()
    report = compare(ground_truth, stack.events(), stack.heartbeats())
    return ChaosResult(kills, report, exit_code, time.monotonic() - started)
