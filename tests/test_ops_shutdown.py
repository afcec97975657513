"""SIGTERM drains `streamer run`: the cycle in flight finishes and commits, then exit 0; a second
signal while draining forces exit 130; a drain longer than its bound exits 4.

To make "a cycle in flight" certain, the simulator delays every answer (a latency-only fault rule),
so the streamer spends nearly all its time inside a poll when the signal arrives.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import (
    Simulator,
    log_records,
    running_streamer,
    sim_control,
    simulator,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

COMPANY = "c|1001"
#: Every simulator answer takes this long under ``slow_ips``: the time checks below compare with
#: it, so it is seconds, not a fraction of one (CI shares two cores with a JVM broker).
LATENCY_S = 4.0
#: Long enough for a poll in flight plus its job log lookups under ``slow_ips``, and a commit.
DRAIN_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """A simulator with one busy company."""
    tmp = tmp_path_factory.mktemp("ops-shutdown")
    with simulator(tmp, "--company", COMPANY, "--jobs-per-company", "3", "--speedup", "20") as s:
        yield s


@pytest.fixture
def slow_ips(sim: Simulator) -> Iterator[float]:
    """Every simulator answer is delayed LATENCY_S while the test runs (the delay is yielded)."""
    sim_control(sim, "/_sim/faults", {"latency_s": LATENCY_S})
    try:
        yield LATENCY_S
    finally:
        sim_control(sim, "/_sim/faults", method="DELETE")


def config_for(sim: Simulator, bootstrap: str, tmp: Path, drain_timeout_s: float) -> Path:
    """A one-company config with its own topics and transactional id."""
    prefix = f"opsstop{uuid.uuid4().hex[:8]}"
    return write_config(
        tmp / "streamer.toml",
        endpoint=sim.endpoint,
        bootstrap=bootstrap,
        prefix=prefix,
        companies=[COMPANY],
        interval_s=0.3,
        transactional_id=f"{prefix}-{uuid.uuid4().hex[:6]}",
        sections={"shutdown": {"drain_timeout_s": drain_timeout_s}},
    )


def events(log: Path) -> list[str]:
    """The structlog event names the streamer logged, in order."""
    return [str(r.get("event")) for r in log_records(log)]


def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, float]:
    """Wait for the process; return its exit code and how long that took."""
    started = time.monotonic()
    rc = proc.wait(timeout_s)
    return rc, time.monotonic() - started


def test_sigterm_drains_and_exits_zero(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """SIGTERM on a running streamer: exit 0 well within the drain bound, `drained` logged."""
    config = config_for(sim, kafka_bootstrap, tmp_path, DRAIN_TIMEOUT_S)
    log = tmp_path / "streamer.log"
    with running_streamer(config, log) as streamer:
        streamer.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(streamer.proc, DRAIN_TIMEOUT_S + 10)
    assert rc == 0, log.read_text()[-3000:]
    assert took < DRAIN_TIMEOUT_S / 2
    names = events(log)
    assert names.index("shutdown_requested") < names.index("drained")
    assert "drain_timeout" not in names


def test_sigterm_finishes_the_cycle_in_flight_before_exit(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path, slow_ips: float
) -> None:
    """SIGTERM during a slow poll: the poll's cycle still commits (logged after the signal)."""
    config = config_for(sim, kafka_bootstrap, tmp_path, DRAIN_TIMEOUT_S)
    log = tmp_path / "streamer.log"
    with running_streamer(config, log) as streamer:
        time.sleep(0.5)  # the next poll is now waiting for the slow answer
        streamer.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(streamer.proc, DRAIN_TIMEOUT_S + 10)
    assert rc == 0, log.read_text()[-3000:]
    assert took < DRAIN_TIMEOUT_S
    names = events(log)
    after = names[names.index("shutdown_requested") :]
    assert "company_cycle" in after  # the cycle in flight completed and committed ...
    assert after.index("company_cycle") < after.index("drained")  # ... before the drain ended


def test_second_signal_while_draining_forces_exit_130(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path, slow_ips: float
) -> None:
    """A second SIGTERM while the first one's drain waits for a slow poll exits 130 at once."""
    config = config_for(sim, kafka_bootstrap, tmp_path, DRAIN_TIMEOUT_S)
    log = tmp_path / "streamer.log"
    with running_streamer(config, log) as streamer:
        time.sleep(0.5)
        streamer.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "shutdown_requested" in events(log), 5, what="first signal seen")
        streamer.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(streamer.proc, 10)
    assert rc == 130, log.read_text()[-3000:]
    assert took < slow_ips  # it did not wait for the poll in flight
    names = events(log)
    assert "forced_exit" in names
    assert "drained" not in names


def test_drain_longer_than_its_bound_exits_4(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path, slow_ips: float
) -> None:
    """A poll in flight longer than shutdown.drain_timeout_s: exit 4 after about that bound."""
    bound = 0.5
    config = config_for(sim, kafka_bootstrap, tmp_path, bound)
    log = tmp_path / "streamer.log"
    with running_streamer(config, log) as streamer:
        time.sleep(0.3)
        streamer.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(streamer.proc, 15)
    assert rc == 4, log.read_text()[-3000:]
    assert bound <= took < slow_ips + 3
    assert "drain_timeout" in events(log)
