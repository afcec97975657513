"""Kafka with SASL (PLAIN and SCRAM-SHA-512) on a broker of its own: the password never reaches a
log line, even at debug level where aiokafka prints its requests, and a refused login is named as
an authentication failure (in `streamer check` and at `streamer run` start-up), not as a broker
that is down.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.kafka_access import KafkaAuthenticationFailed, probe
from streamer.logs import MASK
from tests.conftest import SaslBroker
from tests.harness import (
    Simulator,
    log_records,
    run_cli,
    simulator,
    start_streamer,
    stop_process,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.kafka

COMPANY = "c|1001"
MECHANISMS = ("PLAIN", "SCRAM-SHA-512")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """A simulator with one company."""
    tmp = tmp_path_factory.mktemp("kafka-sasl-sim")
    with simulator(tmp, "--company", COMPANY, "--jobs-per-company", "2", "--speedup", "20") as s:
        yield s


def sasl_config(
    tmp: Path,
    sim: Simulator,
    broker: SaslBroker,
    mechanism: str,
    *,
    password: str | None = None,
    level: str = "info",
) -> Path:
    """A one-company config that reaches ``broker`` with ``mechanism`` (its right password unless
    ``password`` is given)."""
    user, right = broker.users[mechanism]
    prefix = f"sasl{uuid.uuid4().hex[:8]}"
    return write_config(
        tmp / f"{prefix}.toml",
        endpoint=sim.endpoint,
        bootstrap=broker.bootstrap,
        prefix=prefix,
        companies=[COMPANY],
        interval_s=0.3,
        sections={
            "kafka": {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mechanism,
                "sasl_username": user,
                "sasl_password": password or right,
                "request_timeout_s": 5,
            },
            "poll": {"auth_backoff_s": 600},
            "log": {"level": level},
        },
    )


def client_kwargs(broker: SaslBroker, mechanism: str, password: str) -> dict[str, object]:
    """aiokafka client arguments for ``broker`` with ``mechanism``."""
    return {
        "bootstrap_servers": broker.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": broker.users[mechanism][0],
        "sasl_plain_password": password,
        "request_timeout_ms": 10_000,
    }


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_probe_tells_a_refused_login_from_an_accepted_one(
    sasl_broker: SaslBroker, mechanism: str
) -> None:
    """The right password connects; a wrong one raises KafkaAuthenticationFailed naming the user."""
    user, password = sasl_broker.users[mechanism]
    await probe(client_kwargs(sasl_broker, mechanism, password))
    wrong = f"Wr{uuid.uuid4().hex}"
    with pytest.raises(KafkaAuthenticationFailed) as raised:
        await probe(client_kwargs(sasl_broker, mechanism, wrong))
    assert str(raised.value) == (
        f"authentication failed (sasl_mechanism={mechanism}, sasl_username={user})"
    )
    assert wrong not in str(raised.value) + raised.value.detail


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_debug_log_of_a_working_run_never_shows_the_sasl_password(
    sasl_broker: SaslBroker, sim: Simulator, tmp_path: Path, mechanism: str
) -> None:
    """`streamer run --max-cycles 2` at log level debug: aiokafka's request lines are there,
    the SASL password is not (PLAIN sends it inside a request aiokafka logs)."""
    user, password = sasl_broker.users[mechanism]
    config = sasl_config(tmp_path, sim, sasl_broker, mechanism, level="debug")
    result = run_cli("run", "--config", str(config), "--max-cycles", "2", timeout_s=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert '"company_cycle"' in output  # the run really published through the SASL listener
    assert "DEBUG aiokafka.conn Request to " in output  # aiokafka's request lines were written
    if mechanism == "PLAIN":  # the handshake request is logged, with the password masked
        assert f"\\x00{user}\\x00{MASK}')" in output
    assert password not in output


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_check_names_a_refused_kafka_login(
    sasl_broker: SaslBroker, sim: Simulator, tmp_path: Path, mechanism: str
) -> None:
    """A wrong SASL password: one line 'authentication failed (...)', exit 1, no password."""
    user, _ = sasl_broker.users[mechanism]
    wrong = f"Wr{uuid.uuid4().hex}"
    config = sasl_config(tmp_path, sim, sasl_broker, mechanism, password=wrong)
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"ips {COMPANY}: ok" in result.stdout
    assert (
        f"kafka {sasl_broker.bootstrap}: FAILED: authentication failed "
        f"(sasl_mechanism={mechanism}, sasl_username={user})"
    ) in result.stdout.splitlines()
    assert wrong not in result.stdout + result.stderr


def test_check_passes_with_the_right_sasl_password(
    sasl_broker: SaslBroker, sim: Simulator, tmp_path: Path
) -> None:
    """The same check with the right SCRAM password reaches the broker: exit 0."""
    config = sasl_config(tmp_path, sim, sasl_broker, "SCRAM-SHA-512")
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"kafka {sasl_broker.bootstrap}: ok" in result.stdout


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_run_logs_a_refused_kafka_login_as_authentication_failure(
    sasl_broker: SaslBroker, sim: Simulator, tmp_path: Path, mechanism: str
) -> None:
    """`streamer run` with a wrong SASL password logs kafka_authentication_failed (an error with
    the long backoff), never kafka_unavailable; SIGTERM still ends it cleanly."""
    user, _ = sasl_broker.users[mechanism]
    wrong = f"Wr{uuid.uuid4().hex}"
    config = sasl_config(tmp_path, sim, sasl_broker, mechanism, password=wrong)
    log = tmp_path / "streamer.log"
    proc = start_streamer(config, log)
    try:
        failure = wait_until(
            lambda: next(
                (r for r in log_records(log) if r["event"] == "kafka_authentication_failed"), None
            ),
            60,
            what="kafka_authentication_failed",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop_process(proc)
    assert failure["level"] == "error"
    assert failure["error"] == (
        f"authentication failed (sasl_mechanism={mechanism}, sasl_username={user})"
    )
    assert failure["retry_in_s"] == 600
    events = [r["event"] for r in log_records(log)]
    assert "kafka_unavailable" not in events
    assert "create_topics_failed" not in events
    assert wrong not in log.read_text()
