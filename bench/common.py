"""Shared helpers of the benchmarks: machine facts, timing, realistic replies, targets, tables.

Every benchmark prints the machine it ran on first (cores, CPU, load average, versions), because
figures from a shared two-core box mean little without it. Times are taken twice: wall clock
(``perf_counter``) and the CPU time of the measuring thread (``thread_time``). On a quiet machine
they agree; when other processes compete for the cores, the CPU time is the steadier figure, and
the verdicts on speed ratios use it (both are printed).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Simulated time zero of every generated reply: fixed, so that runs are comparable.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------
# Machine
# ------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """Facts about this machine and the library versions the figures depend on."""
    from lxml import etree

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    libxml2 = ".".join(map(str, etree.LIBXML_VERSION))
    return {
        "cores": f"{os.cpu_count()} logical ({usable} usable by this process)",
        "cpu": _cpu_model(),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "load average": f"{load} (1, 5, 15 min)",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "lxml": f"{_version('lxml')} (libxml2 {libxml2})",
        "zeep": _version("zeep"),
        "aiokafka": _version("aiokafka"),
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "orjson": _version("orjson"),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def print_machine(title: str) -> None:
    """Print a benchmark's title and the machine facts."""
    print(f"\n=== {title} ===")
    for key, value in machine_info().items():
        print(f"  {key:13s} {value}")
    print()


# ------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Wall and thread-CPU seconds of repeated runs of one operation."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        """Record one run."""
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def wall_median(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        """Median thread-CPU seconds."""
        return statistics.median(self.cpu)


def _c_heap_settler() -> Callable[[], None]:
    """A function that makes glibc's malloc do the work it defers from earlier frees.

    Freed small chunks (an lxml tree's nodes: about a million for 10,000 jobs) wait in
    glibc's fast bins until a later large request consolidates them, and that request pays:
    about 40 ms in whatever runs after a bare lxml parse of 10,000 jobs. One untimed request
    of that kind (4 KiB: above the thread cache, below the mmap threshold) does it without
    returning memory to the system (``malloc_trim`` would, and the next run would pay the page
    faults instead). A no-op where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        malloc, free = libc.malloc, libc.free
        libc.gnu_get_libc_version  # noqa: B018  # glibc only
    except (OSError, AttributeError):
        return lambda: None
    malloc.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    free.argtypes = [ctypes.c_void_p]
    return lambda: free(malloc(4096))


#: See :func:`_c_heap_settler`.
settle_c_heap = _c_heap_settler()


def run_once(fn: Callable[[], Any], samples: Samples) -> Any:
    """Run ``fn`` once, adding its wall and CPU time to ``samples``; return its result."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = fn()
    samples.add(time.perf_counter() - wall, time.thread_time() - cpu)
    return result


def interleaved(
    ops: dict[str, Callable[[], Any]],
    rounds: dict[str, int],
    warmup: int = 1,
    before: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, Samples]:
    """Time several operations round-robin (so drift in machine load hits all alike).

    ``rounds[name]`` runs of each operation after ``warmup`` untimed ones. Before each run,
    untimed: ``before[name]`` when given, a full garbage collection and the C heap's deferred
    work (:func:`settle_c_heap`), so that no run pays for the garbage of the previous one; the
    collector stays on while it runs, as in service.
    """
    prepare = before or {}
    for name, fn in ops.items():
        for _ in range(warmup):
            if name in prepare:
                prepare[name]()
            fn()
    out = {name: Samples() for name in ops}
    for i in range(max(rounds.values())):
        for name, fn in ops.items():
            if i < rounds[name]:
                if name in prepare:
                    prepare[name]()
                gc.collect()  # nobody pays for the garbage of the previous operation
                settle_c_heap()
                run_once(fn, out[name])
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    k = (len(data) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def ms(seconds: float) -> str:
    """Seconds as milliseconds text."""
    return f"{seconds * 1000:,.1f} ms"


# ------------------------------------------------------------------------------------------
# Realistic replies: rendered by the simulator, exactly what it serves over HTTP
# ------------------------------------------------------------------------------------------


class CompanyReplies:
    """Successive ``getActiveJobs`` replies of simulated companies at chosen simulated times."""

    def __init__(self, companies: int, jobs_per_company: int, **overrides: Any) -> None:
        from streamer.simulator import SimulatorConfig
        from streamer.simulator.state import Simulator

        config = SimulatorConfig.bulk(companies, jobs_per_company, start_time=EPOCH, **overrides)
        self.config = config
        self.sim = Simulator(config)

    @property
    def companies(self) -> tuple[str, ...]:
        """The company handles."""
        return self.config.companies

    def reply(self, company: str, t: float) -> bytes:
        """The reply the simulator sends for ``company`` at simulated second ``t``."""
        from streamer.simulator import render
        from streamer.simulator.soap import NS_2014

        state = self.sim.world.advance(company, t)
        assert state is not None, company
        items = [
            render.active_job_xml(j, state.now, self.sim.dates, True) for j in state.active.values()
        ]
        return render.active_jobs_reply(NS_2014, items)


#: A 10,000-job company in which about 10% of the jobs move between two polls 5 s apart:
#: progress published every 50 running seconds, jobs running 1,000-3,000 s (few vanish).
STEADY_10_PERCENT: dict[str, Any] = {
    "progress_step_s": 50.0,
    "running_duration_s": (1000.0, 3000.0),
}


# ------------------------------------------------------------------------------------------
# Targets and tables
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One target of the performance issues (#5, #13) and how this run measured against it."""

    name: str
    goal: str
    measured: str
    passed: bool
    margin: str = ""
    #: The reference the goal is relative to, as measured in the same run (bare parse, floor).
    floor: str = ""
    #: For a miss: what bounds the figure, and where the profile that shows it is.
    bound: str = ""


def print_targets(targets: Sequence[Target]) -> None:
    """Print targets as a table with PASS/MISS, then what bounds each missed one."""
    rows = [
        [t.name, t.goal, t.measured, "PASS" if t.passed else "MISS", t.margin, t.floor]
        for t in targets
    ]
    table(["target", "goal", "measured", "verdict", "margin", "floor (same run)"], rows)
    for t in targets:
        if not t.passed and t.bound:
            print(f"MISS {t.name}: bounded by {t.bound}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain-text table with left-aligned text columns and right-aligned numbers."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(row):
            numeric = cell[:1].isdigit() or (cell[:1] in "-+" and cell[1:2].isdigit())
            out.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print()


def write_results(path: str | None, targets: Sequence[Target], figures: dict[str, Any]) -> None:
    """Write targets and figures as JSON for ``run_all.py`` (when it passed ``--json``)."""
    if path:
        Path(path).write_text(
            json.dumps({"targets": [asdict(t) for t in targets], "figures": figures}, indent=2)
        )


def json_arg(argv: Sequence[str]) -> str | None:
    """The value of a ``--json PATH`` option, if given."""
    args = list(argv)
    if "--json" in args:
        return args[args.index("--json") + 1]
    return None


def flush() -> None:
    """Flush stdout (output interleaves with subprocesses)."""
    sys.stdout.flush()
