"""Kafka down, as an operator sees it: /status and /readyz name Kafka while commits hang, and
SIGTERM ends the daemon within compose's 10 s grace, mid-run and at start-up.

A commit to a broker that went away does not fail at once: it hangs for the commit timeout (twice
the 15 s request timeout by default), and closing a producer with unsent records waits as long.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer import localkafka
from tests.harness import (
    Simulator,
    free_port,
    log_has,
    running_streamer,
    simulator,
    start_streamer,
    stop_process,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
#: Compose's grace period is 10 s; leave a second for the interpreter's own exit.
SIGTERM_BOUND_S = 9.0


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[localkafka.Broker]:
    """A broker of this test's own, so stopping it does not disturb other tests."""
    state = tmp_path / "kafka"
    broker = localkafka.start(state)
    try:
        yield broker
    finally:
        localkafka.stop(state)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """A simulator with two busy companies."""
    with simulator(
        tmp_path, "--company", COMPANIES[0], "--company", COMPANIES[1],
        "--jobs-per-company", "2", "--speedup", "20",
    ) as running:  # fmt: skip
        yield running


def test_status_names_kafka_while_commits_hang_and_sigterm_exits_within_grace(
    own_broker: localkafka.Broker, sim: Simulator, tmp_path: Path
) -> None:
    """Broker stopped mid-run (default 15 s request timeout, so commits hang for 30 s): /status
    says kafka.ok false and /readyz gives Kafka as the first reason well before the commit
    timeout; SIGTERM then exits 0 within 9 s."""
    prefix = f"outage{uuid.uuid4().hex[:6]}"
    config = write_config(
        tmp_path / "streamer.toml",
        endpoint=sim.endpoint,
        bootstrap=own_broker.bootstrap,
        prefix=prefix,
        companies=COMPANIES,
        interval_s=0.3,
    )
    with running_streamer(config, tmp_path / "streamer.log") as streamer:
        assert streamer.status()["kafka"]["ok"] is True
        localkafka.stop(own_broker.state_dir)
        stopped = time.monotonic()

        def kafka_not_ok() -> dict[str, object] | None:
            kafka: dict[str, object] = streamer.status()["kafka"]
            return kafka if kafka["ok"] is False else None

        kafka = wait_until(kafka_not_ok, 60, interval_s=0.5, what="kafka.ok false")
        # The commit timeout is 30 s; the pending commit alone must have given it away.
        assert time.monotonic() - stopped < 25, kafka
        assert "no commit completed for" in str(kafka["lastError"])
        code, body = streamer.get("/readyz")
        assert code == 503
        reasons = body.splitlines()[1:]
        assert reasons[0].startswith("- kafka: "), body
        for company in COMPANIES:
            assert any(r.startswith(f"- company {company}: ") for r in reasons), body
        assert "no successful poll yet" not in body  # they had successful polls
        signalled = time.monotonic()
        streamer.proc.send_signal(signal.SIGTERM)
        rc = streamer.proc.wait(60)
        took = time.monotonic() - signalled
    assert rc == 0
    assert took < SIGTERM_BOUND_S, f"SIGTERM took {took:.1f}s with Kafka down"


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """An address that accepts TCP connections and never answers (a hung broker)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"127.0.0.1:{server.getsockname()[1]}"


def test_sigterm_at_start_up_while_the_broker_never_answers_exits_within_grace(
    silent_broker: str, tmp_path: Path
) -> None:
    """Start-up against a broker that never answers (each attempt waits the 15 s request
    timeout): SIGTERM in the middle of an attempt exits 0 within 9 s."""
    config = write_config(
        tmp_path / "streamer.toml",
        endpoint=f"http://127.0.0.1:{free_port()}/scene7/services/IpsApiService",
        bootstrap=silent_broker,
        prefix="silent",
        companies=["c|1001"],
    )
    log = tmp_path / "streamer.log"
    proc = start_streamer(config, log)
    try:
        wait_until(lambda: log_has(log, "kafka_unavailable"), 60, what="kafka_unavailable")
        time.sleep(3)  # past the retry delay (at most 1.5 s): inside the next, hanging attempt
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        took = time.monotonic() - signalled
    finally:
        stop_process(proc)
    assert rc == 0
    assert took < SIGTERM_BOUND_S, f"SIGTERM took {took:.1f}s at start-up"
    unavailable = [json.loads(line) for line in log.read_text().splitlines() if "kafka_un" in line]
    assert unavailable[0]["level"] == "warning"
