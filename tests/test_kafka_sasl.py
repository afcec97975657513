"""Kafka with SASL (PLAIN and SCRAM-SHA-512) on a broker of its own: the password never reaches a
log line, even at debug level where aiokafka prints its requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer.logs import MASK
from tests.conftest import SaslBroker
from tests.harness import (
    Simulator,
    run_cli,
    simulator,
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
