"""Start-up while IPS or Kafka are away: health answers, nothing crashes, SIGTERM is clean."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.harness import (
    free_port,
    log_has,
    log_records,
    running_streamer,
    wait_until,
    write_config,
)


def test_health_answers_while_kafka_is_unreachable_at_start(tmp_path: Path) -> None:
    """/healthz is 200 and /readyz 503 naming Kafka before the broker was ever reached."""
    config = write_config(
        tmp_path / "streamer.toml",
        endpoint="http://127.0.0.1:9/scene7/services/IpsApiService",
        bootstrap=f"127.0.0.1:{free_port()}",
        prefix="nokafka",
        companies=["c|1001"],
    )
    log = tmp_path / "streamer.log"
    with running_streamer(config, log, until=None) as streamer:
        wait_until(
            lambda: streamer.get("/healthz")[0] == 200, 60, what="/healthz while Kafka is away"
        )
        code, body = streamer.get("/readyz")
        assert code == 503
        assert "kafka" in body.lower()
        streamer.proc.send_signal(signal.SIGTERM)
        assert streamer.proc.wait(60) == 0


def test_wsdl_url_down_at_start_is_retried_not_a_crash(tmp_path: Path) -> None:
    """A WSDL URL that does not answer at start is logged and retried; SIGTERM exits 0."""
    dead = f"http://127.0.0.1:{free_port()}/IpsApi.wsdl"
    config = write_config(
        tmp_path / "streamer.toml",
        endpoint="http://127.0.0.1:9/scene7/services/IpsApiService",
        bootstrap=f"127.0.0.1:{free_port()}",
        prefix="nowsdl",
        companies=["c|1001"],
        sections={"ips": {"wsdl": dead}},
    )
    log = tmp_path / "streamer.log"
    with running_streamer(config, log, until="load_wsdl_failed") as streamer:
        wait_until(
            lambda: sum(r.get("event") == "load_wsdl_failed" for r in log_records(log)) >= 2,
            60,
            what="a second WSDL attempt",
        )
        assert streamer.proc.poll() is None
        assert streamer.get("/healthz")[0] == 200
        streamer.proc.send_signal(signal.SIGTERM)
        assert streamer.proc.wait(60) == 0
    assert not log_has(log, "Traceback")
    assert "Traceback" not in log.read_text()
