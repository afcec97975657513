"""The kill/restart workload: SIGKILL the streamer at random points, restart it, verify delivery.

Shared by ``tests/test_delivery.py`` (a few kills) and ``bench/chaos.py`` (20 or more).
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamer.simulator import read_ground_truth
from tests.harness import (
    Simulator,
    delivered_events,
    heartbeats,
    sim_control,
    simulator,
    start_streamer,
    write_config,
)
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


def sim_state(sim: Simulator) -> dict[str, object]:
    """The simulator's ``/_sim/state`` document."""
    state: dict[str, object] = sim_control(sim, "/_sim/state", method="GET")
    return state


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
    prefix = f"chaos{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    with simulator(
        tmp, *(a for c in COMPANIES for a in ("--company", c)), "--jobs-per-company", "3",
        "--speedup", str(speedup), "--max-jobs", str(max_jobs), "--seed", str(seed),
        "--stall-probability", "0",
    ) as sim:  # fmt: skip
        config = write_config(
            tmp / "streamer.toml",
            endpoint=sim.endpoint,
            bootstrap=bootstrap,
            prefix=prefix,
            companies=COMPANIES,
            interval_s=0.3,
            extra="[completion]\nlog_max_attempts = 3\n",
        )
        streamer_log = tmp / "streamer.log"
        for n in range(kills):
            proc = start_streamer(config, streamer_log)
            alive = rng.uniform(min_alive_s, max_alive_s)
            time.sleep(alive)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log(f"kill {n + 1}/{kills} after {alive:.2f}s")
        # A last, clean run: until the workload is finished and every completion was published.
        proc = start_streamer(config, streamer_log)
        deadline = time.monotonic() + 180
        while True:
            state = sim_state(sim)
            if state["active_jobs"] == 0 and state["submitted_jobs"] == max_jobs:
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"workload not finished within 180s: {state}")
            time.sleep(0.5)
        time.sleep(3)  # a few more cycles: the last vanished jobs get their completions
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(60)
        ground_truth = read_ground_truth(sim.ground_truth)
    report = compare(
        ground_truth, delivered_events(bootstrap, prefix), heartbeats(bootstrap, prefix)
    )
    return ChaosResult(kills, report, exit_code, time.monotonic() - started)
