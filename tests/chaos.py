"""The kill/restart workload: SIGKILL the streamer at random points, restart it, verify delivery.

Shared by ``tests/test_delivery.py`` (a few kills) and ``bench/chaos.py`` (20 or more).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.harness import Stack, TomlValue, running_stack, wait_until
from tests.verify import Report, compare

COMPANIES = ("c|1001", "c|1002", "c|1003")

#: Reconciliation tuned for a simulator running ten or twenty times faster than the wall clock:
#: a pass every second, windows 2 IPS seconds behind IPS's clock, a minute of overlap, and the
#: first start looking an hour back so that jobs that ended before it are reported too.
RECONCILE: Mapping[str, TomlValue] = {
    "reconcile_interval_s": 1.0,
    "reconcile_delay_s": 2.0,
    "reconcile_overlap_s": 60.0,
    "lookback_s": 3600.0,
}


def _time(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def wait_reconciled(stack: Stack, timeout_s: float = 60) -> None:
    """Wait until the last streamer reconciled every company past its last job's end.

    A job that ended later than its company's committed watermark may still be reported by a
    later pass; once every watermark passed the last end, every completion is committed.
    """
    truth = stack.ground_truth()
    last: dict[str, datetime] = {}
    for rec in truth:
        if rec.get("kind") == "transition" and rec.get("to") == "gone":
            t = _time(rec["t"])
            last[rec["company"]] = max(t, last.get(rec["company"], t))

    def caught_up() -> bool:
        companies: Sequence[Mapping[str, Any]] = stack.streamer.status()["companies"]
        to = {c["handle"]: c.get("reconciledTo") for c in companies}
        return all(to.get(c) and _time(str(to[c])) >= t for c, t in last.items())

    wait_until(caught_up, timeout_s, interval_s=0.5, what="every company reconciled")


def report_lines(r: Report) -> list[str]:
    """The verifier's counts and its first findings, as the chaos commands print them."""
    lines = [
        f"ground-truth transitions:       {r.expected}",
        f"delivered:                      {r.delivered}",
        f"missing:                        {len(r.missing)}",
        f"duplicated:                     {len(r.duplicated)}",
        f"extra:                          {len(r.extra)}",
        f"wrong outcome:                  {len(r.wrong_outcome)}",
        f"flagged as possibly skipped:    {len(r.skipped_flagged)}",
        f"seen only by uncommitted polls: {len(r.uncommitted)}",
        f"ground-truth jobs finished:     {r.jobs}  (no committed poll saw {r.unseen_jobs})",
        f"job.completed delivered:        {r.completions}  ({r.reconciled} reconciled)",
        f"completions missing:            {len(r.completion_missing)}",
        f"completions duplicated:         {len(r.completion_duplicated)}",
        f"completions extra:              {len(r.completion_extra)}",
    ]
    for name in (
        "missing",
        "duplicated",
        "extra",
        "wrong_outcome",
        "out_of_order",
        "completion_missing",
        "completion_duplicated",
        "completion_extra",
    ):
        lines.extend(f"  {name}: {item}" for item in getattr(r, name)[:10])
    return lines


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
    short_job_share: float = 0.3,
    log: Callable[[str], None] = lambda _: None,
) -> ChaosResult:
    """Run a bounded workload while killing the streamer ``kills`` times; verify the topics.

    ``short_job_share`` of the jobs live less than a poll interval: no poll may see them, and
    only the reconciliation with the job log can report them.
    """
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
            f"--short-job-share={short_job_share}",
        ),
        interval_s=0.3,
        sections={"completion": {"log_max_attempts": 3, **RECONCILE}},
        start=False,
    ) as stack:
        for n in range(kills):
            # Even kills count from the process start, so some land during start-up and
            # restore; odd ones from its first cycle, so that however slow the machine starts
            # the streamer, kills also land mid-cycle and between cycles, with work done.
            until = "company_cycle" if n % 2 else None
            proc = stack.start(until=until, timeout_s=120).proc
            alive = rng.uniform(min_alive_s, max_alive_s)
            time.sleep(alive)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            since = "its first cycle" if until else "start"
            log(f"kill {n + 1}/{kills} {alive:.2f}s after {since}")
        # A last, clean run: until the workload is finished and every completion was published.
        proc = stack.start(until=None).proc
        stack.wait_workload_done(max_jobs, 180)
        stack.wait_nothing_tracked()
        wait_reconciled(stack)
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(60)
        ground_truth = stack.ground_truth()
    report = compare(ground_truth, stack.events(), stack.heartbeats(), every_job=True)
    return ChaosResult(kills, report, exit_code, time.monotonic() - started)
