"""End-to-end benchmark: one streamer process, 1,000 companies x 10 jobs, polled every 5 s.

Three processes on the same machine, as in production but all local:

* the IPS simulator (1,000 companies, 10 jobs each, real SOAP over HTTP) in its own process;
  ``--load quiet`` (the default): jobs that never move, every reply the previous one byte for
  byte (issue #13's steady cycle: nothing changed); ``--load busy``: nearly every job changes
  between two polls (progress every 2 s, jobs finishing every 20-120 s);
* a real Kafka broker (``streamer.localkafka``; or ``$KAFKA_BOOTSTRAP_SERVERS`` when set);
* ``streamer run`` with a generated TOML config (the defaults except ports and names).

After a warm-up (every company ran two cycles, from ``/status``) the run is observed for
``--seconds`` (60 by default): cycles per company (``/status``), cycles behind schedule and
failed polls (``/metrics``), poll-to-commit p50 / p99 (interpolated in the
``streamer_poll_to_commit_seconds`` histogram, whose bounds include the targets), the streamer's
CPU time per committed cycle (``/proc/<pid>/stat``) and its RSS.

Then the floor loop (``bench/floor.py``) runs against the same simulator for as long: the same
I/O per cycle with no product logic. Its CPU per cycle is printed beside the streamer's.

Last (unless ``--observe-only``), on the same broker and in this process, the publish path is
compared with a plain aiokafka transactional producer: the same encoded records (three busy
cycles of every company) committed through ``streamer.kafka.Publisher`` and through a bare
``AIOKafkaProducer`` with the same settings, alternately, three times each.

Targets: issue #13, with the quiet load: no cycle behind schedule, p99 poll-to-commit under
100 ms, a steady company cycle at most 1.0 ms of streamer CPU and at most 1.5x the floor loop's
CPU per cycle; issue #5: the publish path at least 70% of the plain producer's rate.

    .venv/bin/python bench/end_to_end.py [--seconds 60] [--companies 1000] [--jobs 10]
        [--load quiet|busy] [--jitter 0.1] [--reconcile-interval 60] [--observe-only]
        [--no-floor] [--floor-loop auto|asyncio] [--profile PATH] [--logs DIR]
        [--streamer-toml TEXT] [--json PATH]

``--reconcile-interval`` sets ``completion.reconcile_interval_s`` (0 turns reconciliation with
the job log off); ``--profile PATH`` samples the streamer with py-spy during the window and
writes the top of the profile to PATH (``pip install py-spy``); ``--logs DIR`` keeps both
processes' logs; ``--streamer-toml`` adds keys to the config's ``[log]`` table or new tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import profile
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
from streamer import localkafka

USER, PASSWORD = "bench@example.com", "bench-password"
SERVICE_PATH = "/scene7/services/IpsApiService"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_P99_MS = 100.0
TARGET_CYCLE_MS = 1.0
TARGET_FLOOR_RATIO = 1.5
TARGET_PUBLISH_SHARE = 0.70


def _opt(argv: Sequence[str], name: str, default: str) -> str:
    return argv[list(argv).index(name) + 1] if name in argv else default


# ------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------


#: A quiet company: its jobs run for weeks without publishing progress, so every reply of a
#: company is byte for byte the previous one (the steady cycle of issue #13: nothing changed).
QUIET: dict[str, Any] = {
    "new_duration_s": (0.0, 0.0),
    "waiting_duration_s": (0.0, 0.0),
    "running_duration_s": (1e7, 2e7),
    "progress_step_s": 1e7,
    "stall_probability": 0.0,
    "fail_probability": 0.0,
}


def serve_simulator(port: int, companies: int, jobs: int, quiet: int = 1) -> None:
    """Simulator process: the bulk load (warm companies, built on first poll), until killed.

    ``quiet``: every job stays as it is (:data:`QUIET`); else busy jobs (progress every 2 s,
    jobs finishing every 20-120 s, so nearly every job changes between two polls).
    """
    from streamer.logs import configure
    from streamer.simulator import SimulatorConfig, serve

    configure("warning", "json")
    overrides = QUIET if quiet else {}
    config = SimulatorConfig.bulk(companies, jobs, seed=11, users={USER: PASSWORD}, **overrides)
    asyncio.run(serve(config, "127.0.0.1", port))


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def write_streamer_config(
    path: Path, *, endpoint: str, bootstrap: str, companies: Sequence[str], http_port: int,
    interval_s: float, jitter: float, prefix: str, reconcile_s: float = 60.0, extra: str = "",
    kafka_extra: str = "",
) -> None:  # fmt: skip
    """The streamer's TOML: the defaults, except ports, names, the poll jitter and the
    reconciliation interval."""
    entries = "\n".join(f'[[companies]]\nhandle = "{c}"\n' for c in companies)
    path.write_text(
        f"""
[ips]
endpoint = "{endpoint}"
user = "{USER}"
password = "{PASSWORD}"

[poll]
interval_s = {interval_s}
jitter = {jitter}

[completion]
reconcile_interval_s = {reconcile_s}

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
transactional_id = "{prefix}-streamer"
{kafka_extra}

[http]
port = {http_port}

[log]
format = "json"
{extra}
{entries}
"""
    )


@contextlib.contextmanager
def broker(tmp: Path) -> Iterator[str]:
    """``$KAFKA_BOOTSTRAP_SERVERS``, or a local broker started (and stopped) here."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    state = tmp / "kafka"
    started = localkafka.start(state)
    try:
        yield started.bootstrap
    finally:
        localkafka.stop(state)


@contextlib.contextmanager
def process(args: list[str], log: Path, what: str, port: int | None = None) -> Iterator[Any]:
    """A child process logging to ``log``; SIGTERM (then SIGKILL) on exit."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        if port is not None:
            localkafka.wait_port(port, proc, what, timeout_s=60)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ------------------------------------------------------------------------------------------
# Observing the streamer
# ------------------------------------------------------------------------------------------


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as ``{"name{labels}": value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def status_cycles(port: int) -> dict[str, int]:
    """Cycles run so far per company, from ``/status``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as resp:
        doc = json.loads(resp.read())
    return {c["handle"]: c["cycles"] for c in doc["companies"]}


def histogram_window(
    before: dict[str, float], after: dict[str, float], name: str
) -> list[tuple[float, float]]:
    """``(le, cumulative count)`` of a histogram's observations between two scrapes."""
    buckets = []
    for key, value in after.items():
        m = re.fullmatch(name + r'_bucket\{le="([^"]+)"\}', key)
        if m:
            buckets.append((float(m.group(1)), value - before.get(key, 0.0)))
    return sorted(buckets)


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Quantile ``q`` by linear interpolation within its bucket (as Prometheus does)."""
    total = buckets[-1][1] if buckets else 0.0
    lo_le, lo_count = 0.0, 0.0
    for le, count in buckets:
        if total and count >= q * total:
            if le == float("inf"):
                return lo_le
            return lo_le + (le - lo_le) * (q * total - lo_count) / max(count - lo_count, 1e-9)
        lo_le, lo_count = le, count
    return float("nan")


def share_within(buckets: list[tuple[float, float]], bound_s: float) -> float:
    """Share of the observations at most ``bound_s`` (a bucket bound)."""
    total = buckets[-1][1] if buckets else 0.0
    within = next((count for le, count in buckets if abs(le - bound_s) < 1e-9), float("nan"))
    return within / total if total else float("nan")


def run_floor(
    argv: Sequence[str], endpoint: str, bootstrap: str, n_companies: int, seconds: float
) -> dict[str, Any]:
    """``bench/floor.py`` against the running simulator; its figures."""
    interval = _opt(argv, "--interval", "5")
    args = [sys.executable, str(ROOT / "bench" / "floor.py"), "--endpoint", endpoint]
    args += ["--bootstrap", bootstrap, "--companies", str(n_companies), "--interval", interval]
    args += ["--jitter", _opt(argv, "--jitter", "0.1"), "--seconds", str(seconds)]
    args += ["--warmup", str(max(10.0, 3 * float(interval))), "--user", USER]
    args += ["--password", PASSWORD, "--loop", _opt(argv, "--floor-loop", "auto")]
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def observe(
    argv: Sequence[str], tmp: Path, bootstrap: str, figures: dict[str, Any]
) -> list[Target]:
    """Run simulator + streamer, warm up, observe a window; then the floor loop on the same
    simulator for as long; print the figures."""
    seconds = float(_opt(argv, "--seconds", "60"))
    n_companies = int(_opt(argv, "--companies", "1000"))
    n_jobs = int(_opt(argv, "--jobs", "10"))
    jitter = float(_opt(argv, "--jitter", "0.1"))
    reconcile_s = float(_opt(argv, "--reconcile-interval", "60"))
    interval = float(_opt(argv, "--interval", "5"))
    load = _opt(argv, "--load", "quiet")
    profile_to = Path(_opt(argv, "--profile", "")).resolve() if "--profile" in argv else None
    sim_port, http_port = localkafka.free_port(), localkafka.free_port()
    companies = [f"c|{1001 + i}" for i in range(n_companies)]
    config = tmp / "streamer.toml"
    prefix = f"bench{os.getpid()}"
    endpoint = f"http://127.0.0.1:{sim_port}{SERVICE_PATH}"
    write_streamer_config(
        config, endpoint=endpoint, bootstrap=bootstrap,
        companies=companies, http_port=http_port, interval_s=interval, jitter=jitter,
        prefix=prefix, reconcile_s=reconcile_s, extra=_opt(argv, "--streamer-toml", ""),
    )  # fmt: skip
    sim_args = [sys.executable, __file__, "--serve-simulator", str(sim_port)]
    sim_args += [str(n_companies), str(n_jobs), "1" if load == "quiet" else "0"]
    log = tmp / "streamer.log"
    run_args = [sys.executable, "-m", "streamer.cli", "run", "--config", str(config)]
    print(
        f"simulator: {n_companies:,} companies x {n_jobs} {load} jobs; streamer: poll every "
        f"{interval:g} s, jitter {jitter:g}, reconcile every {reconcile_s:g} s "
        f"(0: off), broker {bootstrap}"
    )
    floor: dict[str, Any] | None = None
    with process(sim_args, tmp / "simulator.log", "simulator", sim_port) as sim:
        with process(run_args, log, "streamer", http_port) as streamer:
            started = time.monotonic()
            while True:
                if streamer.poll() is not None:
                    raise RuntimeError(f"streamer exited with {streamer.returncode}; see {log}")
                if time.monotonic() - started > 180:
                    raise RuntimeError("warm-up: not every company ran two cycles in 180 s")
                time.sleep(2.0)
                seen = status_cycles(http_port)
                if min((seen.get(c, 0) for c in companies), default=0) >= 2:
                    break
            warm_s = time.monotonic() - started
            print(f"warm-up: every company ran two cycles after {warm_s:.1f} s")
            s0, m0 = status_cycles(http_port), scrape(http_port)
            cpu0, sim_cpu0 = proc_cpu_s(streamer.pid), proc_cpu_s(sim.pid)
            t0 = time.monotonic()
            raw = tmp / "profile.raw"
            spy = profile.record(streamer.pid, seconds, raw) if profile_to else None
            time.sleep(seconds)
            cpu1, sim_cpu1 = proc_cpu_s(streamer.pid), proc_cpu_s(sim.pid)
            elapsed = time.monotonic() - t0
            s1, m1 = status_cycles(http_port), scrape(http_port)
            rss_kb, hwm_kb = proc_kb(streamer.pid, "VmRSS"), proc_kb(streamer.pid, "VmHWM")
            if spy is not None and profile_to is not None:
                _, err = spy.communicate(timeout=120)
                if spy.returncode != 0 or not raw.exists():
                    print(
                        f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-500:]}"
                    )
                else:
                    title = (
                        f"py-spy profile of `streamer run`: {n_companies:,} companies x {n_jobs}"
                        f" {load} jobs at {interval:g} s, {seconds:g} s window"
                    )
                    profile_to.write_text(profile.summarize(raw, 40, title) + "\n")
                    print(f"profile written to {profile_to}")
        if "--no-floor" not in argv:
            print(f"floor loop: same simulator, {seconds:g} s window ...")
            floor = run_floor(argv, endpoint, bootstrap, n_companies, seconds)
    if "--logs" in argv:  # keep the logs of both processes for a look afterwards
        keep = Path(_opt(argv, "--logs", "")).resolve()
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("streamer.log", "simulator.log"):
            shutil.copyfile(tmp / name, keep / name)

    def delta(key: str) -> float:
        return m1.get(key, 0.0) - m0.get(key, 0.0)

    late = delta("streamer_cycles_behind_schedule_total")
    failed = delta('streamer_polls_total{result="failed"}')
    n = int(delta('streamer_polls_total{result="ok"}'))
    passes = {
        r: delta(f'streamer_reconcile_passes_total{{result="{r}"}}')
        for r in ("complete", "partial", "failed")
    }
    counts = [s1.get(c, 0) - s0.get(c, 0) for c in companies]
    p2c = histogram_window(m0, m1, "streamer_poll_to_commit_seconds")
    polls = histogram_window(m0, m1, "streamer_poll_latency_seconds")
    txns = histogram_window(m0, m1, "streamer_commit_latency_seconds")
    txn_p99 = histogram_quantile(txns, 0.99) * 1000
    p50, p99 = histogram_quantile(p2c, 0.50) * 1000, histogram_quantile(p2c, 0.99) * 1000
    within = share_within(p2c, TARGET_P99_MS / 1000)
    cpu = cpu1 - cpu0
    cpu_ms = cpu / n * 1000 if n else float("nan")
    expected = elapsed / interval
    records = delta("streamer_records_total")
    rows = [
        ["window", f"{elapsed:.1f} s", f"after {warm_s:.0f} s of warm-up"],
        ["company cycles committed", f"{n:,}", f"{n / elapsed:,.1f} per second"],
        [
            "cycles per company",
            f"min {min(counts)}, median {statistics.median(counts):g}, max {max(counts)}",
            f"{expected:.1f} expected at {interval:g} s (/status)",
        ],
        ["cycles behind schedule (metric)", f"{late:.0f}", "streamer_cycles_behind_schedule"],
        ["failed polls (metric)", f"{failed:.0f}", ""],
        [
            "poll-to-commit p50 / p99",
            f"{p50:.1f} / {p99:.1f} ms",
            f"streamer_poll_to_commit_seconds, interpolated; {within:.2%} <= "
            f"{TARGET_P99_MS:.0f} ms",
        ],
        [
            "  of which getActiveJobs p50 / p99",
            f"{histogram_quantile(polls, 0.5) * 1000:.1f} / "
            f"{histogram_quantile(polls, 0.99) * 1000:.1f} ms",
            "HTTP round trip + decode",
        ],
        [
            "  Kafka transactions p50 / p99",
            f"{histogram_quantile(txns, 0.5) * 1000:.1f} / {txn_p99:.1f} ms",
            f"{delta('streamer_commits_total'):,.0f} transactions (a cycle with records waits "
            "for one)",
        ],
        ["records committed", f"{records:,.0f}", f"{records / max(n, 1):.2f} per cycle"],
        [
            "streamer CPU",
            f"{cpu:.1f} s = {cpu / elapsed:.0%} of one core",
            f"{cpu_ms:.2f} ms per company cycle",
        ],
        [
            "reconciliation passes (metric)",
            " / ".join(f"{passes[r]:.0f}" for r in ("complete", "partial", "failed")),
            f"complete / partial / failed, every {reconcile_s:g} s per company (0: off)",
        ],
        ["simulator CPU", f"{sim_cpu1 - sim_cpu0:.1f} s", "(separate process)"],
        ["streamer RSS / peak", f"{rss_kb / 1024:.0f} / {hwm_kb / 1024:.0f} MB", "VmRSS / VmHWM"],
    ]
    if floor is not None:
        rows.append(
            [
                "floor loop CPU",
                f"{floor['cpu_s']:.1f} s for {floor['cycles']:,} cycles",
                f"{floor['cpu_ms_per_cycle']:.2f} ms per cycle ({floor['loop']}; bench/floor.py)",
            ]
        )
    table(["end to end", "measured", "note"], rows)
    figures["end_to_end"] = {
        "load": load,
        "window_s": elapsed,
        "cycles": n,
        "cycles_per_company_min": min(counts),
        "cycles_behind_schedule": late,
        "failed_polls": failed,
        "poll_to_commit_p50_ms": p50,
        "poll_to_commit_p99_ms": p99,
        "share_within_target": within,
        "cpu_s": cpu,
        "cpu_ms_per_cycle": cpu_ms,
        "records_per_cycle": records / max(n, 1),
        "rss_mb": rss_kb / 1024,
        "reconcile_interval_s": reconcile_s,
        "reconcile_passes": passes,
        "floor": floor,
    }
    on_schedule = late == 0 and min(counts) >= int(expected) - 1 and failed == 0
    shape = f"{n_companies:,} x {n_jobs} {load} jobs at {interval:g} s"
    targets = [
        Target(
            f"end to end: {shape}, on schedule",
            "no cycle behind schedule",
            f"{late:.0f} behind; cycles/company min {min(counts)} of {expected:.1f}",
            on_schedule,
        ),
        Target(
            f"end to end: {shape}, poll-to-commit p99",
            f"< {TARGET_P99_MS:.0f} ms",
            f"{p99:.1f} ms (p50 {p50:.1f} ms; {within:.2%} within)",
            within >= 0.99,
            f"{1 - p99 / TARGET_P99_MS:+.0%} headroom",
            bound=(
                f"the cycles that commit records ({records / max(n, 1):.2f} records per cycle: "
                f"heartbeats, ledgers, events) wait for their shard's Kafka transaction, p99 "
                f"{txn_p99:.0f} ms here, with the broker on the same cores"
            ),
        ),
    ]
    floor_ms = floor["cpu_ms_per_cycle"] if floor is not None else None
    floor_text = f"floor loop {floor_ms:.2f} ms/cycle" if floor_ms else ""
    bound = (
        "the event loop's own work (uvloop: epoll, timers, callbacks) and socket writes and "
        "reads (HTTP to IPS, Kafka requests); bench/profiles/e2e-1000x10-quiet-4-wake-grid.txt "
        "(--profile PATH makes a new one)"
    )
    if load == "quiet":
        targets.append(
            Target(
                "steady company cycle (10 jobs, nothing changed): streamer CPU",
                f"<= {TARGET_CYCLE_MS:.1f} ms",
                f"{cpu_ms:.2f} ms",
                cpu_ms <= TARGET_CYCLE_MS,
                f"{1 - cpu_ms / TARGET_CYCLE_MS:+.0%} headroom",
                floor=floor_text,
                bound=bound,
            )
        )
    if floor_ms:
        ratio = cpu_ms / floor_ms
        targets.append(
            Target(
                f"company cycle CPU vs the floor loop ({load})",
                f"<= {TARGET_FLOOR_RATIO:.1f}x floor",
                f"{ratio:.2f}x ({cpu_ms:.2f} vs {floor_ms:.2f} ms)",
                ratio <= TARGET_FLOOR_RATIO,
                f"{1 - ratio / TARGET_FLOOR_RATIO:+.0%} headroom",
                floor=floor_text,
                bound=bound,
            )
        )
    return targets


# ------------------------------------------------------------------------------------------
# Publish path vs a plain transactional producer
# ------------------------------------------------------------------------------------------


def cycle_batches(n_companies: int, n_jobs: int, n_cycles: int = 3) -> list[list[Any]]:
    """Encoded record batches of ``n_cycles`` cycles of every company, as the poller builds them."""
    from streamer.cycle import cycle_records, settle
    from streamer.diff import DiffSettings, diff
    from streamer.encode import TopicNames
    from streamer.ips import ActiveJobsCache, decode_active_jobs
    from streamer.model import Heartbeat, Snapshot, TrackedJob
    from streamer.simulator.soap import NS_2014

    sim = CompanyReplies(n_companies, n_jobs, seed=11)
    topics = TopicNames.with_prefix(f"benchpub{os.getpid()}")
    settings = DiffSettings(poll_interval_s=5.0, stall_after_s=900.0)
    batches: list[list[Any]] = []
    for company in sim.companies:
        cache = ActiveJobsCache()
        state: dict[str, TrackedJob] = {}
        prev = None
        source = f"http://ips.example/companies/{company}"
        for k in range(n_cycles):
            now = EPOCH + timedelta(seconds=600 + 5 * k)
            jobs = decode_active_jobs(sim.reply(company, 600 + 5 * k), NS_2014, cache)
            result = diff(state, Snapshot(company, jobs), now, settings, prev)
            # As if each job log lookup found nothing yet, like bench/cycle.py.
            settled = settle(result, dict.fromkeys(result.pending_completion), now, settings)
            hb = Heartbeat(company, now, True, 0.01, len(jobs), now)
            batches.append(cycle_records(settled, source=source, topics=topics, heartbeat=hb))
            state, prev = settled.state, now
    return batches


async def _publisher_run(kwargs: dict[str, Any], txn: str, batches: list[list[Any]]) -> float:
    from streamer.kafka import Publisher

    publisher = Publisher(kwargs, txn)
    await publisher.start()
    try:
        started = time.perf_counter()
        await asyncio.gather(*(publisher.publish(b) for b in batches))
        return time.perf_counter() - started
    finally:
        await publisher.stop()


async def _plain_run(kwargs: dict[str, Any], txn: str, batches: list[list[Any]]) -> float:
    from streamer.kafka import Publisher

    # The very producer the Publisher would build (same settings), driven directly, with
    # transactions of the size of the Publisher's group commits (max_batch_records).
    producer = Publisher(kwargs, txn)._new_producer()
    await producer.start()
    try:
        records = [r for batch in batches for r in batch]
        per_txn = 20_000
        started = time.perf_counter()
        for i in range(0, len(records), per_txn):
            await producer.begin_transaction()
            futures = [
                await producer.send(r.topic, value=r.value, key=r.key, headers=list(r.headers))
                for r in records[i : i + per_txn]
            ]
            await asyncio.gather(*futures)
            await producer.commit_transaction()
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _compare(bootstrap: str, batches: list[list[Any]], rounds: int) -> dict[str, list[float]]:
    from streamer.encode import TopicNames
    from streamer.topics import ensure_topics

    kwargs: dict[str, Any] = {"bootstrap_servers": bootstrap}
    await ensure_topics(kwargs, TopicNames.with_prefix(f"benchpub{os.getpid()}"), 3, 1)
    n = sum(len(b) for b in batches)
    rates: dict[str, list[float]] = {"publisher": [], "plain": []}
    for i in range(rounds):
        for name, run in (("publisher", _publisher_run), ("plain", _plain_run)):
            seconds = await run(kwargs, f"benchpub{os.getpid()}-{name}-{i}", batches)
            rates[name].append(n / seconds)
    return rates


def publish_comparison(
    argv: Sequence[str], bootstrap: str, figures: dict[str, Any]
) -> list[Target]:
    """Publisher vs plain transactional producer on identical records; print the rates."""
    n_companies = int(_opt(argv, "--companies", "1000"))
    n_jobs = int(_opt(argv, "--jobs", "10"))
    batches = cycle_batches(n_companies, n_jobs)
    n = sum(len(b) for b in batches)
    print(f"\npublish path: {len(batches):,} cycle batches, {n:,} records, same broker")
    rates = asyncio.run(_compare(bootstrap, batches, rounds=3))
    pub, plain = statistics.median(rates["publisher"]), statistics.median(rates["plain"])
    rows = [
        [name, " / ".join(f"{r:,.0f}" for r in values), f"{statistics.median(values):,.0f}"]
        for name, values in (
            ("streamer.kafka.Publisher (group commit)", rates["publisher"]),
            ("plain AIOKafkaProducer, transactional", rates["plain"]),
        )
    ]
    table(["publish path", "records/s per round", "median"], rows)
    share = pub / plain
    figures["publish"] = {"records": n, "publisher_rps": pub, "plain_rps": plain, "rounds": rates}
    return [
        Target(
            "publish path vs plain transactional producer",
            f">= {TARGET_PUBLISH_SHARE:.0%} of its rate",
            f"{share:.0%} ({pub:,.0f} vs {plain:,.0f} records/s)",
            share >= TARGET_PUBLISH_SHARE,
            f"{share / TARGET_PUBLISH_SHARE - 1:+.0%}",
        )
    ]


def main(argv: list[str]) -> list[Target]:
    """Run the benchmark, print its figures, return its targets."""
    print_machine("end to end: simulator + streamer + Kafka broker on this machine")
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp_name:
        tmp = Path(tmp_name)
        with broker(tmp) as bootstrap:
            targets = observe(argv, tmp, bootstrap, figures)
            if "--observe-only" not in argv:
                targets += publish_comparison(argv, bootstrap, figures)
    print_targets(targets)
    write_results(json_arg(argv), targets, figures)
    return targets


if __name__ == "__main__":
    if "--serve-simulator" in sys.argv:
        i = sys.argv.index("--serve-simulator")
        serve_simulator(*(int(x) for x in sys.argv[i + 1 : i + 5]))
    else:
        main(sys.argv[1:])
