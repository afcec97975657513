"""Shared fixtures: one real Kafka broker per test session (and a SASL one for the tests that ask
for it), unique topic prefixes per test."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamer import localkafka

SHARED_IPSAPI = Path(__file__).resolve().parents[1].parent / "shared" / "ipsapi"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running broker: ``$KAFKA_BOOTSTRAP_SERVERS`` if set, else one started for the session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    state = tmp_path_factory.mktemp("kafka")
    broker = localkafka.start(state)
    try:
        yield broker.bootstrap
    finally:
        localkafka.stop(state)


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test uses, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class SaslBroker:
    """A broker whose client listener demands SASL (PLAIN and SCRAM-SHA-512)."""

    bootstrap: str  # the SASL_PLAINTEXT listener
    plaintext_bootstrap: str  # the inter-broker listener, for test set-up without credentials
    #: ``mechanism -> (user, password)`` the broker accepts.
    users: Mapping[str, tuple[str, str]]


@pytest.fixture(scope="session")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    """A second local broker with a SASL_PLAINTEXT listener (PLAIN and SCRAM-SHA-512 users).

    localkafka's broker properties, with the listeners overridden (a later key wins in a Java
    properties file); the SCRAM user is written into the storage at format time, as KRaft needs.
    """
    # Distinctive, so that a leak is found by a substring search, and different per run.
    users = {
        "PLAIN": ("plainuser", f"Pl{uuid.uuid4().hex}Xq"),
        "SCRAM-SHA-512": ("scramuser", f"Sc{uuid.uuid4().hex}Wv"),
    }
    state = tmp_path_factory.mktemp("kafka-sasl")
    libs = localkafka.fetch()
    sasl_port, plain_port, controller_port = (localkafka.free_port() for _ in range(3))
    data, logs = state / "data", state / "logs"
    data.mkdir()
    logs.mkdir()
    plain_user, plain_password = users["PLAIN"]
    overrides = [
        f"listeners=PLAINTEXT://127.0.0.1:{plain_port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
        f"CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain_port},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config="
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{plain_user}="{plain_password}";',
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    ]
    props = state / "server.properties"
    props.write_text(
        localkafka._properties(plain_port, controller_port, data) + "\n".join(overrides) + "\n"
    )
    (state / "log4j.properties").write_text(localkafka.LOG4J)
    jvm = localkafka._jvm(state, libs, "512m")
    scram_user, scram_password = users["SCRAM-SHA-512"]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
         "-c", str(props), "--add-scram",
         f"SCRAM-SHA-512=[name={scram_user},password={scram_password}]"],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    localkafka._launch(state, jvm, props, sasl_port, 90.0)
    try:
        yield SaslBroker(f"127.0.0.1:{sasl_port}", f"127.0.0.1:{plain_port}", users)
    finally:
        localkafka.stop(state)
