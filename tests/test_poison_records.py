"""Records Kafka refuses never stall the stream: other companies commit, the job is named."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streamer.encode import TopicNames
from streamer.kafka import Publisher
from streamer.topics import ensure_topics
from tests.harness import read_topics
from tests.shell_fakes import ScriptedIps, rig
from tests.test_diff import job, snap


@pytest.mark.kafka
async def test_refused_record_fails_alone_and_becomes_a_dead_letter(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A batch the broker refuses (limit lowered to 20 KB at run time) fails alone, named."""
    kwargs = {"bootstrap_servers": kafka_bootstrap}
    topics = TopicNames.with_prefix(topic_prefix)
    await ensure_topics(kwargs, topics, 1, 1)
    publisher = Publisher(
        kwargs,
        f"{topic_prefix}-txn",
        commit_interval_s=0.5,  # both companies' cycles land in one group commit
        checkpoint_topic=topics.latest,
    )
    stop = asyncio.Event()
    await publisher.start(stop)
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        # Behind the streamer's back the state topic now refuses records above 20 KB.
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.state, {"max.message.bytes": "20000"})]
        )
    finally:
        await admin.close()
    try:
        wide = job("j|wide")
        wide = replace(wide, status=replace(wide.status, progress_message="w" * 900))
        wide = replace(wide, description="d" * 60_000)  # 60 KB: fits 1 MB, not 20 KB
        a = rig(ScriptedIps(snap(wide, job("j|a1"))), publisher=publisher, topics=topics,
                company="c|a")  # fmt: skip
        b = rig(ScriptedIps(snap(job("j|b1"))), publisher=publisher, topics=topics,
                company="c|b")  # fmt: skip
        results = await asyncio.wait_for(asyncio.gather(a.poller.cycle(), b.poller.cycle()), 120)
        assert all(r is None for r in results), results
        # Under load a retried transaction may end uncertain: the next cycles settle it.
        for r, want in ((a, {"j|wide", "j|a1"}), (b, {"j|b1"})):
            for _ in range(5):
                if set(r.poller.state) == want:
                    break
                await asyncio.wait_for(publisher.wait_healthy(), 60)
                await asyncio.wait_for(r.poller.cycle(), 120)
            assert set(r.poller.state) == want
    finally:
        stop.set()
        await publisher.stop()
    raw = await read_topics(kafka_bootstrap, [topics.state, topics.notifications])
    observed = sorted(
        k.decode() for t, k, v, _ in raw if t == topics.state and k is not None and v is not None
    )
    # The other company's cycle, which shared the refused transaction, is committed whole.
    assert observed == ["j|b1"]
    dead = [json.loads(v) for t, _, v, _ in raw if t == topics.notifications and v is not None]
    # The broker refuses the whole record batch of a partition: every state record of that
    # cycle is named (over-inclusive within the company, never beyond it).
    assert sorted((d["kind"], d["jobHandle"], d["topic"]) for d in dead) == [
        ("record_rejected", "j|a1", topics.state),
        ("record_rejected", "j|wide", topics.state),
    ]
    assert all("MessageSizeTooLarge" in d["message"] for d in dead)
