"""`streamer check --config`: a readable report, exit 0 only when every company and Kafka answer."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamer.encode import TopicNames
from tests.harness import (
    Simulator,
    free_port,
    run_cli,
    sim_control,
    simulator,
    write_config,
)

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """A simulator serving both companies."""
    tmp = tmp_path_factory.mktemp("ops-check")
    with simulator(
        tmp, "--company", COMPANIES[0], "--company", COMPANIES[1], "--jobs-per-company", "2",
    ) as running:  # fmt: skip
        yield running


def check(
    tmp: Path,
    *,
    endpoint: str,
    bootstrap: str,
    prefix: str | None = None,
    password: str | None = None,
    create_topics: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Write a config for both companies and run ``streamer check`` on it."""
    config = write_config(
        tmp / f"check-{uuid.uuid4().hex[:6]}.toml",
        endpoint=endpoint,
        bootstrap=bootstrap,
        prefix=prefix or f"opschk{uuid.uuid4().hex[:8]}",
        companies=COMPANIES,
        sections={
            "ips": {"password": password} if password else {},
            "kafka": {"create_topics": create_topics},
        },
    )
    return run_cli("check", "--config", str(config))


def test_check_reports_ok_against_live_ips_and_kafka(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Every company and Kafka answer: one readable line each, `result: ok`, exit 0."""
    result = check(tmp_path, endpoint=sim.endpoint, bootstrap=kafka_bootstrap)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "configuration: ok"
    for company, line in zip(COMPANIES, lines[1:3], strict=True):
        assert re.fullmatch(rf"ips {re.escape(company)}: ok, \d+ active jobs \(\d+ ms\)", line)
    assert lines[3] == f"kafka {kafka_bootstrap}: ok"
    assert lines[4].startswith("kafka topics to be created at start: ")
    assert lines[-1] == "result: ok"
    assert result.stderr == ""


def test_check_fails_naming_each_company_while_ips_is_stopped(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """IPS answering 503: each company's line says FAILED with the kind; exit 1."""
    sim_control(sim, "/_sim/stop")
    try:
        result = check(tmp_path, endpoint=sim.endpoint, bootstrap=kafka_bootstrap)
    finally:
        sim_control(sim, "/_sim/start")
    assert result.returncode == 1
    for company in COMPANIES:
        assert f"ips {company}: FAILED (http_5xx): getActiveJobs: HTTP 503" in result.stdout
    assert f"kafka {kafka_bootstrap}: ok" in result.stdout
    assert result.stdout.splitlines()[-1] == "result: FAILED"


def test_check_fails_when_nothing_listens(kafka_bootstrap: str, tmp_path: Path) -> None:
    """No IPS server at the endpoint at all: FAILED (connection) for each company; exit 1."""
    endpoint = f"http://127.0.0.1:{free_port()}/scene7/services/IpsApiService"
    result = check(tmp_path, endpoint=endpoint, bootstrap=kafka_bootstrap)
    assert result.returncode == 1
    for company in COMPANIES:
        assert f"ips {company}: FAILED (connection)" in result.stdout


def test_check_fails_naming_companies_on_wrong_password(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A refused password: FAILED (fault_authentication) per company, without the password."""
    wrong = f"wrong-{uuid.uuid4().hex}"
    result = check(tmp_path, endpoint=sim.endpoint, bootstrap=kafka_bootstrap, password=wrong)
    assert result.returncode == 1
    for company in COMPANIES:
        assert f"ips {company}: FAILED (fault_authentication)" in result.stdout
    assert wrong not in result.stdout + result.stderr


def test_check_names_only_the_failing_company(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """One company refused by IPS: only that company's line fails; exit 1."""
    bad, good = COMPANIES
    sim_control(sim, "/_sim/faults", {"company": bad, "mode": "authz_fault"})
    try:
        result = check(tmp_path, endpoint=sim.endpoint, bootstrap=kafka_bootstrap)
    finally:
        sim_control(sim, "/_sim/faults", method="DELETE")
    assert result.returncode == 1
    assert f"ips {bad}: FAILED (fault_authorization)" in result.stdout
    assert re.search(rf"^ips {re.escape(good)}: ok, ", result.stdout, re.MULTILINE)


def test_check_fails_when_kafka_is_unreachable(sim: Simulator, tmp_path: Path) -> None:
    """No broker at the bootstrap address: the kafka line says FAILED; exit 1."""
    bootstrap = f"127.0.0.1:{free_port()}"
    result = check(tmp_path, endpoint=sim.endpoint, bootstrap=bootstrap)
    assert result.returncode == 1
    assert f"kafka {bootstrap}: FAILED" in result.stdout
    assert f"ips {COMPANIES[0]}: ok" in result.stdout


async def create_topics(bootstrap: str, names: list[str]) -> None:
    """Create topics with one partition each."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 1, 1) for n in names])
    finally:
        await admin.close()


def test_check_fails_on_a_missing_topic_when_it_may_not_create_topics(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path, topic_prefix: str
) -> None:
    """With kafka.create_topics off, check names every missing topic (notifications too)."""
    topics = TopicNames.with_prefix(topic_prefix)
    asyncio.run(create_topics(kafka_bootstrap, [topics.state, topics.progress, topics.latest]))
    result = check(
        tmp_path,
        endpoint=sim.endpoint,
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        create_topics=False,
    )
    assert result.returncode == 1
    missing = f"{topics.heartbeat}, {topics.notifications}"
    assert f"kafka topics missing and kafka.create_topics is off: {missing}" in result.stdout


async def create_wrong_topics(bootstrap: str, topics: TopicNames) -> None:
    """The checkpoint topic without compaction and the state topic with one partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(topics.latest, 3, 1, topic_configs={"cleanup.policy": "delete"}),
                NewTopic(topics.state, 1, 1),
            ]
        )
    finally:
        await admin.close()


def test_check_reports_topic_settings_that_break_the_contract(
    sim: Simulator, kafka_bootstrap: str, tmp_path: Path, topic_prefix: str
) -> None:
    """A checkpoint topic without compaction fails check; a partition mismatch is a warning."""
    topics = TopicNames.with_prefix(topic_prefix)
    asyncio.run(create_wrong_topics(kafka_bootstrap, topics))
    result = check(tmp_path, endpoint=sim.endpoint, bootstrap=kafka_bootstrap, prefix=topic_prefix)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    assert f"kafka {kafka_bootstrap}: ok" in lines
    assert (
        f"kafka topics: ERROR: topic {topics.latest}: cleanup.policy=delete, but the checkpoint "
        "topic needs cleanup.policy=compact (else job records are deleted and a restart "
        "forgets those jobs)"
    ) in lines
    assert (
        f"kafka topics: WARNING: topic {topics.state}: 1 partitions, but kafka.partitions is 3: "
        "job keys land on other partitions than the config says"
    ) in lines
    assert lines[-1] == "result: FAILED"
