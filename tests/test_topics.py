"""Topics of the contract: pre-created ones are checked at start, a deleted one is noticed.

The evaluation is pure and tested on plain values; describing, creating, deleting and refusing to
start run against the real broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from streamer.encode import TopicNames
from streamer.topics import (
    Severity,
    TopicFinding,
    TopicGuard,
    TopicsMissing,
    TopicState,
    check_topics,
    ensure_topics,
    evaluate,
    topic_specs,
)
from tests.harness import free_port, run_cli, write_config

TOPICS = TopicNames.with_prefix("ips")


def states(
    latest_config: Mapping[str, str], partitions: Mapping[str, int] | None = None
) -> dict[str, TopicState]:
    """Every contract topic with 3 partitions (or ``partitions``), the checkpoint with a config;
    the private per-shard topics as the streamer creates them (one shard, compacted)."""
    counts = partitions or {}

    def config(name: str) -> Mapping[str, str]:
        if name == TOPICS.latest:
            return latest_config
        return {"cleanup.policy": "compact"} if name == TOPICS.checkpoint else {}

    return {
        s.name: TopicState(s.name, counts.get(s.name, s.partitions or 3), config(s.name))
        for s in topic_specs(TOPICS)
    }


def test_compacted_checkpoint_and_matching_partitions_give_no_findings() -> None:
    """Topics as the streamer creates them pass without a finding."""
    assert evaluate(states({"cleanup.policy": "compact"}), TOPICS, 3) == ()


def test_checkpoint_without_compaction_is_an_error_naming_topic_and_setting() -> None:
    """cleanup.policy=delete on the checkpoint topic refuses to start."""
    (finding,) = evaluate(states({"cleanup.policy": "delete"}), TOPICS, 3)
    assert finding.severity is Severity.ERROR
    assert (finding.topic, finding.setting) == (TOPICS.latest, "cleanup.policy")
    assert finding.message.startswith(f"topic {TOPICS.latest}: cleanup.policy=delete, ")
    assert "cleanup.policy=compact" in finding.message


def test_checkpoint_without_any_policy_counts_as_delete() -> None:
    """A topic without an explicit cleanup.policy has Kafka's default, delete: an error."""
    (finding,) = evaluate(states({}), TOPICS, 3)
    assert (finding.severity, finding.setting) == (Severity.ERROR, "cleanup.policy")


def test_compact_delete_with_finite_retention_warns_per_limit() -> None:
    """compact,delete with a finite retention deletes checkpoint records: a warning per limit."""
    found = evaluate(
        states({"cleanup.policy": "compact,delete", "retention.ms": "604800000"}), TOPICS, 3
    )
    assert [(f.severity, f.setting) for f in found] == [(Severity.WARNING, "retention.ms")]
    assert "retention.ms=604800000" in found[0].message
    unlimited = {"cleanup.policy": "compact,delete", "retention.ms": "-1", "retention.bytes": "-1"}
    assert evaluate(states(unlimited), TOPICS, 3) == ()
    by_size = {"cleanup.policy": "compact,delete", "retention.ms": "-1", "retention.bytes": "1000"}
    assert [f.setting for f in evaluate(states(by_size), TOPICS, 3)] == ["retention.bytes"]


def test_job_topic_partition_count_differing_from_config_warns_with_both_numbers() -> None:
    """A job topic with another partition count than kafka.partitions is a warning naming both."""
    found = evaluate(
        states({"cleanup.policy": "compact"}, {TOPICS.state: 1, TOPICS.heartbeat: 7}), TOPICS, 3
    )
    assert found == (
        TopicFinding(
            Severity.WARNING,
            TOPICS.state,
            "partitions",
            f"topic {TOPICS.state}: 1 partitions, but kafka.partitions is 3: job keys land on "
            "other partitions than the config says",
        ),
    )


def test_private_topics_must_match_the_shard_count_and_compact() -> None:
    """Per-shard topics with another partition count than kafka.shards refuse to start, and so
    does a private checkpoint topic without compaction."""
    found = evaluate(
        {
            **states({"cleanup.policy": "compact"}),
            TOPICS.checkpoint: TopicState(TOPICS.checkpoint, 4, {"cleanup.policy": "delete"}),
            TOPICS.shards: TopicState(TOPICS.shards, 4, {}),
        },
        TOPICS,
        3,
        shards=8,
    )
    assert [(f.severity, f.topic, f.setting) for f in found] == [
        (Severity.ERROR, TOPICS.checkpoint, "cleanup.policy"),
        (Severity.ERROR, TOPICS.checkpoint, "partitions"),
        (Severity.ERROR, TOPICS.shards, "partitions"),
    ]
    assert "kafka.shards is 8" in found[-1].message


def test_missing_topics_are_not_judged() -> None:
    """Only existing topics are evaluated; missing ones are reported by check_topics."""
    assert evaluate({}, TOPICS, 3) == ()


# --------------------------------------------------------------------------------------------
# Against the real broker
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client of the session broker."""
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def wait_listed(admin: AIOKafkaAdminClient, name: str, present: bool) -> None:
    """Wait (generously) until ``name`` is listed, or no longer listed."""
    deadline = time.monotonic() + 30
    while (name in await admin.list_topics()) != present:
        assert time.monotonic() < deadline, f"{name} listed={not present} after 30s"
        await asyncio.sleep(0.2)


@pytest.mark.kafka
async def test_check_topics_reports_what_the_broker_has(
    admin: AIOKafkaAdminClient, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Pre-created wrong topics are described: an error for the checkpoint, a partition warning."""
    topics = TopicNames.with_prefix(topic_prefix)
    await admin.create_topics(
        [
            NewTopic(topics.latest, 3, 1, topic_configs={"cleanup.policy": "delete"}),
            NewTopic(topics.state, 1, 1),
        ]
    )
    checked = await check_topics({"bootstrap_servers": kafka_bootstrap}, topics, 3)
    assert [(f.severity, f.topic, f.setting) for f in checked.findings] == [
        (Severity.ERROR, topics.latest, "cleanup.policy"),
        (Severity.WARNING, topics.state, "partitions"),
    ]
    assert checked.missing == (
        topics.progress,
        topics.heartbeat,
        topics.notifications,
        topics.checkpoint,
        topics.shards,
    )


@pytest.mark.kafka
async def test_topics_the_streamer_creates_pass_its_own_check(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """ensure_topics then check_topics: nothing missing, no finding."""
    kw = {"bootstrap_servers": kafka_bootstrap}
    topics = TopicNames.with_prefix(topic_prefix)
    assert len(await ensure_topics(kw, topics, 2, 1)) == 7
    assert await ensure_topics(kw, topics, 2, 1) == []
    checked = await check_topics(kw, topics, 2)
    assert (checked.findings, checked.missing) == ((), ())


@pytest.mark.kafka
async def test_ensure_topics_raises_when_the_broker_refuses_to_create(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A replication factor the cluster cannot have is an error, not silently no topics."""
    with pytest.raises(KafkaError, match="cannot create topic"):
        await ensure_topics(
            {"bootstrap_servers": kafka_bootstrap}, TopicNames.with_prefix(topic_prefix), 1, 3
        )


@pytest.mark.kafka
def test_run_refuses_to_start_on_a_checkpoint_topic_without_compaction(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """`streamer run` exits 2 with one stderr line naming the topic and cleanup.policy."""
    topics = TopicNames.with_prefix(topic_prefix)

    async def precreate() -> None:
        client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await client.start()
        try:
            await client.create_topics(
                [NewTopic(topics.latest, 3, 1, topic_configs={"cleanup.policy": "delete"})]
            )
        finally:
            await client.close()

    asyncio.run(precreate())
    config = write_config(
        tmp_path / "streamer.toml",
        endpoint=f"http://127.0.0.1:{free_port()}/scene7/services/IpsApiService",
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        companies=["c|1001"],
    )
    result = run_cli("run", "--config", str(config))
    assert result.returncode == 2, result.stderr[-3000:]
    refusals = [line for line in result.stderr.splitlines() if line.startswith("streamer: ")]
    assert refusals == [
        f"streamer: refusing to start: topic {topics.latest}: cleanup.policy=delete, but the "
        "checkpoint topic needs cleanup.policy=compact (else job records are deleted and a "
        "restart forgets those jobs)"
    ]


@pytest.mark.kafka
def test_run_refuses_to_start_without_topics_it_may_not_create(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """With kafka.create_topics off and no topics, `streamer run` exits 2 naming them."""
    config = write_config(
        tmp_path / "streamer.toml",
        endpoint=f"http://127.0.0.1:{free_port()}/scene7/services/IpsApiService",
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        companies=["c|1001"],
        sections={"kafka": {"create_topics": False}},
    )
    result = run_cli("run", "--config", str(config))
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"streamer: refusing to start: kafka topics missing: {topic_prefix}.jobs.state, " in (
        result.stderr
    )
    assert "kafka.create_topics is off" in result.stderr


def guard(bootstrap: str, topics: TopicNames, create: bool) -> TopicGuard:
    """A guard over ``topics`` with 2 partitions."""
    return TopicGuard(
        {"bootstrap_servers": bootstrap},
        topics,
        partitions=2,
        replication_factor=1,
        create_topics=create,
    )


@pytest.mark.kafka
async def test_guard_recreates_a_deleted_topic(
    admin: AIOKafkaAdminClient, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A checkpoint topic deleted while running comes back, compacted, and is logged."""
    topics = TopicNames.with_prefix(topic_prefix)
    kw = {"bootstrap_servers": kafka_bootstrap}
    await ensure_topics(kw, topics, 2, 1)
    await admin.delete_topics([topics.latest])
    await wait_listed(admin, topics.latest, present=False)
    with structlog.testing.capture_logs() as logs:
        await guard(kafka_bootstrap, topics, create=True).after_failure()
    assert [(e["event"], e["topics"]) for e in logs] == [("topic_recreated", [topics.latest])]
    await wait_listed(admin, topics.latest, present=True)
    checked = await check_topics(kw, topics, 2)
    assert (checked.findings, checked.missing) == ((), ())


@pytest.mark.kafka
async def test_guard_raises_naming_the_topic_when_it_may_not_create(
    admin: AIOKafkaAdminClient, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """With kafka.create_topics off, a deleted topic raises TopicsMissing naming it."""
    topics = TopicNames.with_prefix(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, topics, 2, 1)
    await admin.delete_topics([topics.state])
    await wait_listed(admin, topics.state, present=False)
    with pytest.raises(TopicsMissing) as raised:
        await guard(kafka_bootstrap, topics, create=False).after_failure()
    assert raised.value.names == (topics.state,)
    assert f"kafka topics missing: {topics.state};" in str(raised.value)
    assert "kafka.create_topics is off" in str(raised.value)
    assert topics.state not in await admin.list_topics()


@pytest.mark.kafka
async def test_guard_with_all_topics_present_does_nothing(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """No topic missing: no log line, nothing raised, even with create_topics off."""
    topics = TopicNames.with_prefix(topic_prefix)
    await ensure_topics({"bootstrap_servers": kafka_bootstrap}, topics, 2, 1)
    with structlog.testing.capture_logs() as logs:
        await guard(kafka_bootstrap, topics, create=False).after_failure()
    assert logs == []


async def test_guard_returns_quietly_when_the_broker_cannot_be_asked() -> None:
    """An unreachable broker is an outage for the publisher to wait out, not a missing topic."""
    topics = TopicNames.with_prefix("nobroker")
    await guard(f"127.0.0.1:{free_port()}", topics, create=False).after_failure()
