"""Cycle benchmark: decode + diff + encode of one 10,000-job company in steady state.

The IPS simulator renders the company's reply every 5 simulated seconds; with progress published
every 50 running seconds about 10% of the jobs change between two polls (the exact share is
printed per cycle). Each cycle does what ``CompanyPoller.cycle`` does between the HTTP reply and
the Kafka commit: decode the reply (with the company's reply cache, as ``IpsClient`` does), diff
it against the tracked state, settle vanished jobs (one job-log answer "not found", no I/O), and
encode the events, the changed checkpoints, the tombstones and the heartbeat into records.

The first cycle (cold cache, every job observed) is reported apart; the steady-state figure is the
median of the following cycles. The reference is a bare ``lxml.etree.fromstring`` of the same
reply, timed in the same run.

Target (issue #5): a steady-state cycle takes at most twice the bare parse of its reply.

    .venv/bin/python bench/cycle.py [--cycles N] [--json PATH]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree

from bench.common import (
    EPOCH,
    STEADY_10_PERCENT,
    CompanyReplies,
    Samples,
    Target,
    json_arg,
    print_machine,
    print_targets,
    run_once,
    table,
    write_results,
)
from streamer.cycle import cycle_records, settle
from streamer.diff import DiffResult, DiffSettings, diff
from streamer.encode import Record, TopicNames
from streamer.ips import ActiveJobsCache, decode_active_jobs
from streamer.model import Heartbeat, Snapshot, TrackedJob
from streamer.simulator.soap import NS_2014

COMPANY = "c|1001"
JOBS = 10_000
POLL_S = 5.0
TARGET_FACTOR = 2.0
SOURCE = "https://ips.example.com/scene7/services/IpsApiService/companies/c%7C1001"
TOPICS = TopicNames()
#: The production defaults of ``[progress]``, ``[stall]`` and ``[poll]``.
SETTINGS = DiffSettings(poll_interval_s=POLL_S, stall_after_s=900.0)
_T = TypeVar("_T")


class Company:
    """One company's streamer state, advanced cycle by cycle like ``CompanyPoller``."""

    def __init__(self, use_cache: bool = True) -> None:
        self.cache = ActiveJobsCache() if use_cache else None
        self.state: dict[str, TrackedJob] = {}
        self.prev_poll_at: datetime | None = None

    def cycle(self, body: bytes, k: int, times: dict[str, Samples]) -> dict[str, Any]:
        """Run one cycle on ``body`` (poll number ``k``); add its phase times to ``times``."""
        now = EPOCH + timedelta(seconds=1000 + k * POLL_S)

        def timed(phase: str, fn: Callable[[], _T]) -> _T:
            result: _T = run_once(fn, times.setdefault(phase, Samples()))
            return result

        wall, cpu = time.perf_counter(), time.thread_time()
        jobs = timed("decode", lambda: decode_active_jobs(body, NS_2014, self.cache))
        result = timed(
            "diff",
            lambda: diff(self.state, Snapshot(COMPANY, jobs), now, SETTINGS, self.prev_poll_at),
        )
        records, state = timed("encode", lambda: self._encode(result, now, len(jobs)))
        times.setdefault("cycle", Samples()).add(
            time.perf_counter() - wall, time.thread_time() - cpu
        )
        self.state, self.prev_poll_at = state, now
        cache = self.cache
        return {
            "jobs": len(jobs),
            "new_elements": cache.last_misses if cache is not None else len(jobs),
            "changed": len(result.changed),
            "events": len(result.events),
            "records": len(records),
        }

    def _encode(
        self, result: DiffResult, now: datetime, n: int
    ) -> tuple[list[Record], dict[str, TrackedJob]]:
        # As if each job log lookup found nothing yet: the poller's own settle and records step.
        settled = settle(result, dict.fromkeys(result.pending_completion), now, SETTINGS)
        heartbeat = Heartbeat(COMPANY, now, True, 0.05, n, now)
        records = cycle_records(settled, source=SOURCE, topics=TOPICS, heartbeat=heartbeat)
        return records, settled.state


def main(argv: list[str]) -> list[Target]:
    """Run the benchmark, print its figures, return its targets."""
    n_cycles = int(argv[argv.index("--cycles") + 1]) if "--cycles" in argv else 9
    print_machine("cycle: decode + diff + encode, 10,000 jobs, ~10% changed per poll")
    sim = CompanyReplies(1, JOBS, seed=5, **STEADY_10_PERCENT)
    print(f"rendering {n_cycles + 1} replies of the simulator, {POLL_S:g} s apart ...")
    bodies = [sim.reply(COMPANY, 1000 + k * POLL_S) for k in range(n_cycles + 1)]
    print(f"reply size {statistics.median(map(len, bodies)) / 1e6:.1f} MB\n")

    company = Company()
    first: dict[str, Samples] = {}
    company.cycle(bodies[0], 0, first)
    steady: dict[str, Samples] = {}
    parse = Samples()
    full_decode = Samples()
    rows = []
    for k, body in enumerate(bodies[1:], start=1):
        info = company.cycle(body, k, steady)
        for _ in range(2):
            run_once(partial(etree.fromstring, body), parse)
        run_once(partial(decode_active_jobs, body, NS_2014), full_decode)
        c = {phase: s.cpu[-1] for phase, s in steady.items()}
        rows.append(
            [
                k,
                f"{info['jobs']:,}",
                f"{info['new_elements']:,} ({info['new_elements'] / info['jobs']:.1%})",
                f"{info['changed']:,}",
                f"{info['events']:,}",
                f"{info['records']:,}",
                f"{c['decode'] * 1e3:.1f}",
                f"{c['diff'] * 1e3:.1f}",
                f"{c['encode'] * 1e3:.1f}",
                f"{c['cycle'] * 1e3:.1f}",
                f"{min(parse.cpu[-2:]) * 1e3:.1f}",
                f"{full_decode.cpu[-1] * 1e3:.1f}",
            ]
        )
    print("Per cycle, thread CPU milliseconds.")
    table(
        [
            "cycle",
            "jobs",
            "new job elements",
            "changed jobs",
            "events",
            "records",
            "decode",
            "diff",
            "encode",
            "cycle",
            "bare parse",
            "full decode",
        ],
        rows,
    )
    cyc, fd = steady["cycle"], full_decode
    factor = cyc.cpu_median / parse.cpu_median
    factor_wall = cyc.wall_median / parse.wall_median
    summary = [
        ["first cycle (cold cache, all observed)", f"{first['cycle'].cpu[0] * 1e3:,.1f}", "", ""],
        [
            "steady cycle (median)",
            f"{cyc.cpu_median * 1e3:,.1f}",
            f"{cyc.wall_median * 1e3:,.1f}",
            f"{factor:.2f}x",
        ],
        ["  decode (with reply cache)", f"{steady['decode'].cpu_median * 1e3:,.1f}", "", ""],
        ["  diff", f"{steady['diff'].cpu_median * 1e3:,.1f}", "", ""],
        ["  encode", f"{steady['encode'].cpu_median * 1e3:,.1f}", "", ""],
        [
            "bare lxml parse of the reply (median)",
            f"{parse.cpu_median * 1e3:,.1f}",
            f"{parse.wall_median * 1e3:,.1f}",
            "1.00x",
        ],
        [
            "full decode without cache (median)",
            f"{fd.cpu_median * 1e3:,.1f}",
            f"{fd.wall_median * 1e3:,.1f}",
            f"{fd.cpu_median / parse.cpu_median:.2f}x",
        ],
    ]
    table(["", "CPU ms", "wall ms", "vs bare parse (CPU)"], summary)
    targets = [
        Target(
            "cycle: steady state, 10,000 jobs, ~10% changed",
            f"<= {TARGET_FACTOR:.0f}x bare lxml parse",
            f"{factor:.2f}x (CPU), {factor_wall:.2f}x (wall)",
            factor <= TARGET_FACTOR,
            f"{1 - factor / TARGET_FACTOR:+.0%} headroom",
            floor=f"bare parse {parse.cpu_median * 1e3:.1f} ms",
            bound="decode of the changed jobs and encode of their records",
        )
    ]
    print_targets(targets)
    figures = {
        "cycle_cpu_s": cyc.cpu_median,
        "cycle_wall_s": cyc.wall_median,
        "parse_cpu_s": parse.cpu_median,
        "parse_wall_s": parse.wall_median,
        "decode_cpu_s": steady["decode"].cpu_median,
        "diff_cpu_s": steady["diff"].cpu_median,
        "encode_cpu_s": steady["encode"].cpu_median,
        "full_decode_cpu_s": fd.cpu_median,
        "first_cycle_cpu_s": first["cycle"].cpu[0],
    }
    write_results(json_arg(argv), targets, figures)
    return targets


if __name__ == "__main__":
    main(sys.argv[1:])
