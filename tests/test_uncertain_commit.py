"""Uncertain commits: a transaction whose answer is lost is never retried as if it had failed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streamer.encode import TopicNames, short_type
from streamer.kafka import CommitUncertain, Publisher
from streamer.topics import ensure_topics
from tests.harness import read_topics
from tests.shell_fakes import TOPICS, ScriptedIps, rig
from tests.test_diff import job, snap


async def test_poller_continues_from_the_reread_state() -> None:
    """After CommitUncertain the next cycle diffs against the state Kafka really committed."""
    r = rig(ScriptedIps(snap(job(state="Scheduled"))))
    r.sink.fail = CommitUncertain("answer lost", epoch=1)
    await r.poller.cycle()
    assert r.poller.state == {}
    # The transaction did commit: the checkpoint re-read holds the job as observed.
    r.sink.fail = None
    r.sink.reread = {"j|1": _observed_state()}
    await r.poller.cycle()
    assert [v["type"] for v in r.sink.values(TOPICS.state)] == []
    assert set(r.poller.state) == {"j|1"}


async def test_poller_waits_for_the_reread_before_polling() -> None:
    """No poll and no diff until the publisher has re-read the checkpoint."""
    r = rig(ScriptedIps(snap(job())))
    r.sink.fail = CommitUncertain("answer lost", epoch=1)
    await r.poller.cycle()
    r.sink.fail = None
    polls = r.ips.polls
    assert await r.poller.cycle() == 1.0
    assert r.ips.polls == polls


def _observed_state() -> Any:
    """The tracked state one poll of job j|1 (Scheduled) commits."""
    from streamer.diff import DiffSettings, diff
    from tests.test_diff import at

    return diff({}, snap(job(state="Scheduled")), at(0), DiffSettings(), None).state["j|1"]


class _LateAnswer(Publisher):
    """Commits really happen, but the first commit's answer comes after the commit timeout."""

    late = 1

    def _new_producer(self) -> AIOKafkaProducer:
        producer = super()._new_producer()
        real = producer.commit_transaction

        async def commit() -> None:
            await real()  # EndTxn reached the coordinator and committed
            if self.late:
                self.late -= 1
                await asyncio.sleep(3600)  # ... but its answer never arrives in time

        producer.commit_transaction = commit
        return producer


@pytest.mark.kafka
async def test_late_commit_answer_commits_no_event_id_twice(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A commit that timed out after it committed is learnt from the checkpoint: no duplicate."""
    kwargs = {"bootstrap_servers": kafka_bootstrap}
    topics = TopicNames.with_prefix(topic_prefix)
    await ensure_topics(kwargs, topics, 1, 1)
    publisher = _LateAnswer(
        kwargs, f"{topic_prefix}-txn", commit_timeout_s=3.0, checkpoint_topic=topics.latest
    )
    stop = asyncio.Event()
    await publisher.start(stop)
    try:
        r = rig(
            ScriptedIps(
                snap(job(state="Scheduled")),
                snap(job(state="Running")),
                snap(job(state="Running", progress=50)),
            ),
            publisher=publisher,
            topics=topics,
        )
        await r.poller.cycle()  # committed, but reported uncertain
        assert r.poller.state == {}
        await asyncio.wait_for(publisher.wait_healthy(), 60)
        for _ in range(2):
            assert await r.poller.cycle() is None
    finally:
        stop.set()
        await publisher.stop()
    raw = await read_topics(kafka_bootstrap, [topics.state, topics.progress])
    ids = Counter(dict(headers)["ce_id"].decode() for _, _, _, headers in raw)
    assert ids, "nothing committed"
    assert [i for i, n in ids.items() if n > 1] == []
    types = [short_type(dict(h)["ce_type"].decode()) for _, _, _, h in raw]
    assert types.count("job.observed") == 1
    assert "job.state_changed" in types
