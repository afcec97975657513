"""Memory benchmark: resident memory per tracked job with 100,000 jobs tracked.

The IPS simulator renders one reply per company (1,000 companies x 100 jobs by default, or
``--shape 10x10000``) into a temporary folder. A fresh Python process then does what the streamer
does on its first poll of every company: decode the reply (through the company's reply cache, as
``IpsClient`` does) and diff it against empty state, keeping the resulting ``TrackedJob`` state
and the cache. RSS (``VmRSS``) is read before and after, once the process has warmed up
(modules imported, one small company decoded and discarded); the difference per tracked job is
the figure. The same run without the reply caches shows what the caches themselves cost.

Target (issue #5): at most 2 KB of RSS per tracked job at 100,000 jobs.

    .venv/bin/python bench/memory.py [--shape 1000x100] [--json PATH]
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    EPOCH,
    ROOT,
    CompanyReplies,
    Target,
    json_arg,
    print_machine,
    print_targets,
    table,
    write_results,
)

TARGET_BYTES = 2048


def _status_kb(field: str) -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def child(folder: Path, with_cache: bool) -> dict[str, float]:
    """In a fresh process: track every company's jobs; return memory figures."""
    from streamer.diff import DiffSettings, diff
    from streamer.ips import ActiveJobsCache, decode_active_jobs
    from streamer.model import Snapshot, TrackedJob
    from streamer.simulator.soap import NS_2014

    files = sorted(folder.iterdir())
    now = EPOCH + timedelta(minutes=10)
    settings = DiffSettings(poll_interval_s=5.0, stall_after_s=900.0)
    # Warm-up (imports, lazily built tables), then a clean baseline.
    warm = decode_active_jobs(files[0].read_bytes(), NS_2014, ActiveJobsCache())
    diff({}, Snapshot("warm-up", warm), now, settings, None)
    del warm
    gc.collect()
    before = _status_kb("VmRSS")
    states: dict[str, dict[str, TrackedJob]] = {}
    caches: dict[str, ActiveJobsCache] = {}
    for path in files:
        company = path.name
        cache = ActiveJobsCache() if with_cache else None
        jobs = decode_active_jobs(path.read_bytes(), NS_2014, cache)
        states[company] = diff({}, Snapshot(company, jobs), now, settings, None).state
        if cache is not None:
            caches[company] = cache
    gc.collect()
    after = _status_kb("VmRSS")
    tracked = sum(len(s) for s in states.values())
    return {
        "tracked_jobs": tracked,
        "companies": len(states),
        "rss_before_kb": before,
        "rss_after_kb": after,
        "rss_peak_kb": _status_kb("VmHWM"),
        "bytes_per_job": (after - before) * 1024 / tracked,
        "cache_entries": sum(len(c) for c in caches.values()),
    }


def run_child(folder: Path, with_cache: bool) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter and return its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), "1" if with_cache else "0"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> list[Target]:
    """Run the benchmark, print its figures, return its targets."""
    shape = argv[argv.index("--shape") + 1] if "--shape" in argv else "1000x100"
    companies, jobs = (int(x) for x in shape.split("x"))
    print_machine(f"memory: RSS per tracked job, {companies:,} companies x {jobs:,} jobs")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        sim = CompanyReplies(companies, jobs, seed=3)
        total = 0
        for i, company in enumerate(sim.companies):
            body = sim.reply(company, 600.0)
            total += len(body)
            (folder / f"{i:06d}").write_bytes(body)
        print(f"{companies:,} replies rendered by the simulator, {total / 1e6:,.0f} MB in all\n")
        with_cache = run_child(folder, True)
        without = run_child(folder, False)
    rows = []
    for label, r in (("state + reply caches (as run)", with_cache), ("state only", without)):
        rows.append(
            [
                label,
                f"{int(r['tracked_jobs']):,}",
                f"{r['rss_before_kb'] / 1024:,.1f}",
                f"{r['rss_after_kb'] / 1024:,.1f}",
                f"{r['rss_peak_kb'] / 1024:,.1f}",
                f"{r['bytes_per_job']:,.0f}",
            ]
        )
    table(["process", "tracked jobs", "RSS before MB", "RSS after MB", "peak MB", "B/job"], rows)
    per_job = with_cache["bytes_per_job"]
    targets = [
        Target(
            f"memory: RSS per tracked job ({int(with_cache['tracked_jobs']):,} jobs)",
            f"<= {TARGET_BYTES:,} B",
            f"{per_job:,.0f} B (state only {without['bytes_per_job']:,.0f} B)",
            per_job <= TARGET_BYTES,
            f"{1 - per_job / TARGET_BYTES:+.0%} headroom",
        )
    ]
    print_targets(targets)
    write_results(json_arg(argv), targets, {"with_cache": with_cache, "state_only": without})
    return targets


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        print(json.dumps(child(Path(sys.argv[i + 1]), sys.argv[i + 2] == "1")))
    else:
        main(sys.argv[1:])
