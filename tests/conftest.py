"""Shared fixtures: one real Kafka broker per test session, unique topic prefixes per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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
