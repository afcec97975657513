"""``streamer demo``: everything local, from nothing, in one command.

Starts a real Kafka broker (jars fetched from Maven Central once), the IPS simulator and the
streamer as child processes, then shows the events as they arrive with ``streamer tail``. One
config file drives both: the streamer reads its tables, the simulator its ``[simulator]`` table
(the workload and a scripted scenario that shows every kind of event within two minutes).
Ctrl-C stops the view, then the streamer (SIGTERM: it drains and commits), the simulator and the
broker, in that order.
"""

from __future__ import annotations

import importlib.resources
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streamer import localkafka
from streamer.encode import TopicNames
from streamer.tail import run_tail

SIM_PORT = 8089
#: The demo's config ships inside the package (not read from a checkout): ``pip install`` is enough.
DEMO_CONFIG = importlib.resources.files("streamer") / "data" / "demo.toml"


def _stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 25) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def clock_note(speedup: float) -> str | None:
    """What the screen says about the simulated IPS clock (``None``: it is the wall clock)."""
    if speedup == 1:
        return None
    return (
        f"demo: the simulated IPS runs {speedup:g}x the wall clock: its times (endedAt, "
        "lastProgressUpdate, job handles) drift from observedAt by "
        f"{abs(speedup - 1):g} s per second, and the scenario's scenes come {speedup:g}x as fast."
    )


def run_demo(*, lines: bool = False, speedup: float = 1.0) -> int:
    """Run the demo until Ctrl-C; return an exit code."""
    with importlib.resources.as_file(DEMO_CONFIG) as config:
        return _run(config, lines=lines, speedup=speedup)


def _run(config: Path, *, lines: bool, speedup: float) -> int:
    root = localkafka.ROOT
    var = root / "var" / "demo"
    var.mkdir(parents=True, exist_ok=True)
    state_dir = root / "var" / "demo-kafka"
    port = 9092 if not localkafka.port_open(9092) else localkafka.free_port()
    sim_port = SIM_PORT if not localkafka.port_open(SIM_PORT) else localkafka.free_port()
    http_port = 8000 if not localkafka.port_open(8000) else localkafka.free_port()
    print(f"demo: starting Kafka {localkafka.KAFKA_VERSION} on 127.0.0.1:{port} ...", flush=True)
    broker = localkafka.start(state_dir, port)
    sim: subprocess.Popen[bytes] | None = None
    streamer: subprocess.Popen[bytes] | None = None
    exe = [sys.executable, "-m", "streamer.cli"]
    env = {
        **os.environ,
        "STREAMER_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap,
        "STREAMER_IPS__ENDPOINT": f"http://127.0.0.1:{sim_port}/scene7/services/IpsApiService",
        "STREAMER_HTTP__PORT": str(http_port),
        "STREAMER_LOG__FORMAT": "json",
    }
    # Child processes get their own session so the terminal's Ctrl-C reaches only us; we then
    # stop them in order.
    try:
        print(f"demo: starting the IPS simulator on 127.0.0.1:{sim_port} ...", flush=True)
        sim = subprocess.Popen(
            [*exe, "simulate", "--config", str(config), "--port", str(sim_port),
             "--speedup", str(speedup), "--ground-truth", str(var / "ground-truth.jsonl")],
            stdout=subprocess.DEVNULL,
            stderr=(var / "simulator.log").open("wb"),
            start_new_session=True,
        )  # fmt: skip
        localkafka.wait_port(sim_port, sim, "demo: the simulator")
        print("demo: starting the streamer ...", flush=True)
        streamer = subprocess.Popen(
            [*exe, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(var / "streamer.log").open("wb"),
            env=env,
            start_new_session=True,
        )
        localkafka.wait_port(http_port, streamer, "demo: the streamer")
        print(
            f"demo: streamer logs in {var / 'streamer.log'}; status at "
            f"http://127.0.0.1:{http_port}/status, metrics at /metrics.\n"
            "demo: showing events as they arrive; press Ctrl-C to stop everything.\n"
            "demo: a scripted scenario starts with the first poll and shows every kind of event "
            "(outcomes, a stall, an outage, a reconciled job) within two minutes.",
            flush=True,
        )
        note = clock_note(speedup)
        if note is not None:
            print(note, flush=True)
        time.sleep(3 if note else 1)
        run_tail(
            {"bootstrap_servers": broker.bootstrap},
            TopicNames.with_prefix("ips"),
            lines=lines,
            from_beginning=True,
        )
    except RuntimeError as exc:
        print(f"{exc}; see the logs in {var}", file=sys.stderr)
        return 1
    finally:
        print("\ndemo: stopping streamer, simulator and Kafka ...", flush=True)
        _stop(streamer)
        _stop(sim)
        localkafka.stop(state_dir)
        print("demo: stopped.", flush=True)
    return 0
