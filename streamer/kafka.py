"""Kafka adapter: checkpoint restore and the transactional group-commit publisher.

Topic setup and checks live in :mod:`streamer.topics`.

The delivery promise rests here:

* a company cycle's records (events, checkpoint records, tombstones, heartbeat) are handed to
  :meth:`Publisher.publish` as one batch and are committed in one Kafka transaction, never split;
* several batches that are waiting at the same time share one transaction (group commit), because a
  transactional producer runs one transaction at a time and a commit costs milliseconds;
* ``publish`` returns only once the transaction committed; if it raises, nothing of the batch is
  visible to ``read_committed`` consumers and the caller must keep its previous state;
* the producer uses one ``transactional_id`` per instance: a second instance with the same id
  fences the first, which then fails with :class:`FencedError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.partitioner import murmur2

from streamer.encode import Record, decode_checkpoint
from streamer.model import TrackedJob
from streamer.retry import Backoff, Stopped, sleep_or_stop, stop_shortened_wait_for, until_stopped

log = structlog.get_logger("streamer.kafka")

CompanyStates = dict[str, dict[str, TrackedJob]]

#: How long to wait between attempts to reach the broker.
KAFKA_BACKOFF = Backoff(initial_s=1.0, max_s=15.0)
#: Once a stop is requested, how long a pending commit, an abort and a producer close may still
#: take: compose gives 10 s after SIGTERM, and a commit Kafka does not take loses nothing (the
#: state is kept; a restart diffs against the last committed checkpoint).
STOPPING_COMMIT_S = 2.0
STOPPING_ABORT_S = 1.0
STOPPING_CLOSE_S = 2.0


class PublishError(Exception):
    """A batch was not committed; nothing of it is visible to read_committed consumers."""


class FencedError(PublishError):
    """Another instance with the same transactional id took over; this one must stop."""


async def restore_state(
    client_kwargs: Mapping[str, Any], topic: str, timeout_s: float = 60.0
) -> CompanyStates:
    """Read the compacted checkpoint topic to its end (read_committed) into per-company state.

    Must run after the transactional producer started: ``init_transactions`` aborts a transaction
    that a crashed predecessor left open, and only then does the last stable offset reach the end.
    """
    consumer = AIOKafkaConsumer(
        **client_kwargs,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    by_handle: dict[str, TrackedJob] = {}
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise PublishError(f"checkpoint restore did not reach the end of {topic}")
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    key = rec.key.decode() if rec.key is not None else None
                    if key is None:
                        continue
                    if rec.value is None:
                        by_handle.pop(key, None)
                    else:
                        by_handle[key] = decode_checkpoint(rec.value)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    states: CompanyStates = {}
    for handle, tracked in by_handle.items():
        states.setdefault(tracked.snapshot.company_handle, {})[handle] = tracked
    return states


@functools.lru_cache(maxsize=1 << 18)
def _murmur2_index(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's (Java-compatible murmur2) default partitioner, memoised per key.

    Job handles repeat every cycle, and the pure-Python murmur2 costs ~15 us per record; the
    mapping is the same as the default's, so Java and Python consumers still agree.
    """
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_murmur2_index(key, len(all_partitions))]


@dataclass(slots=True)
class _Batch:
    records: Sequence[Record]
    done: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class CommitStats:
    """What one committed transaction carried; passed to the ``on_commit`` callback."""

    batches: int
    records: int
    seconds: float


class Publisher:
    """Transactional, idempotent producer with group commit. One per process."""

    def __init__(
        self,
        client_kwargs: Mapping[str, Any],
        transactional_id: str,
        *,
        max_batch_records: int = 20_000,
        commit_interval_s: float = 0.0,
        backoff: Backoff = KAFKA_BACKOFF,
        commit_timeout_s: float = 30.0,
        on_commit: Callable[[CommitStats], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._kwargs = dict(client_kwargs)
        self._txn_id = transactional_id
        self._max_records = max_batch_records
        self._commit_interval_s = commit_interval_s
        self._backoff = backoff
        self._commit_timeout_s = commit_timeout_s
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self._producer: AIOKafkaProducer | None = None
        self._healthy = asyncio.Event()
        self._fenced: FencedError | None = None
        self._dead: PublishError | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[_Batch] = []
        self._closing = False
        self._stop: asyncio.Event | None = None
        self.last_error: str | None = None

    @property
    def healthy(self) -> bool:
        """True while the producer is connected and its last transaction committed."""
        return self._healthy.is_set()

    @property
    def fenced(self) -> FencedError | None:
        """Set once another instance with our transactional id fenced us."""
        return self._fenced

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self._kwargs,
            transactional_id=self._txn_id,
            partitioner=partition_for,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
        )

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The commit loop, for a supervisor to watch (it must never end while in use)."""
        return self._task

    async def start(self, stop: asyncio.Event | None = None) -> None:
        """Start the producer (fencing any predecessor with our id) and the commit loop.

        Waits for Kafka as long as it takes, unless ``stop`` is set meanwhile (PublishError).
        Should the commit loop ever die, every waiting batch fails at once (no caller is left
        blocked in :meth:`publish`) and later calls fail too.
        """
        self._stop = stop if stop is not None else asyncio.Event()
        await self._connect_until_ready()
        self._task = asyncio.create_task(self._run(), name="kafka-publisher")
        self._task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, FencedError):
            error: PublishError = exc
        else:
            error = PublishError(f"the Kafka publisher stopped: {exc!r}" if exc else "stopped")
            self._dead = error
        self._healthy.clear()
        self._fail(self._inflight, error)
        self._inflight = []
        self._fail_queued(error)

    async def _connect_until_ready(self) -> None:
        assert self._stop is not None
        failures = 0
        while True:
            producer = self._new_producer()
            try:
                await until_stopped(self._stop, producer.start())
            except Stopped as exc:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), STOPPING_CLOSE_S)
                raise PublishError("stopped while waiting for Kafka") from exc
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                self._mark_failed(f"kafka connect failed: {exc!r}")
                failures += 1
                if await sleep_or_stop(self._stop, self._backoff.delay(failures)):
                    raise PublishError("stopped while waiting for Kafka") from exc
                continue
            self._producer = producer
            if self.last_error is not None:
                log.info("kafka_recovered")
            self._healthy.set()
            self.last_error = None
            return

    def _mark_failed(self, message: str) -> None:
        self._healthy.clear()
        self.last_error = message
        log.warning("kafka_unavailable", error=message)
        if self._on_failure is not None:
            self._on_failure(message)

    async def wait_healthy(self) -> None:
        """Return once the producer is usable again (polling pauses meanwhile)."""
        if self._fenced is not None:
            raise self._fenced
        if self._dead is not None:
            raise self._dead
        await self._healthy.wait()

    async def publish(self, records: Sequence[Record]) -> None:
        """Commit ``records`` atomically (possibly with other batches); raise if not committed."""
        if self._fenced is not None:
            raise self._fenced
        if self._dead is not None:
            raise self._dead
        if self._closing:
            raise PublishError("publisher is closing")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Batch(records, done))
        await done

    def _take_group(self, first: _Batch) -> list[_Batch]:
        group = [first]
        count = len(first.records)
        while count < self._max_records and not self._queue.empty():
            nxt = self._queue.get_nowait()
            group.append(nxt)
            count += len(nxt.records)
        return group

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if self._commit_interval_s > 0:
                await asyncio.sleep(self._commit_interval_s)
            # Kept until the next group: if this loop dies, the done-callback fails it.
            group = self._inflight = self._take_group(first)
            try:
                await stop_shortened_wait_for(
                    self._commit(group), self._commit_timeout_s, self._stop, STOPPING_COMMIT_S
                )
            except ProducerFenced as exc:
                self._fenced = FencedError(
                    f"another instance with transactional id {self._txn_id!r} took over: {exc}"
                )
                log.error("kafka_fenced", transactional_id=self._txn_id)
                raise self._fenced from exc  # the done-callback fails every waiting batch
            except (TimeoutError, KafkaError, OSError) as exc:
                self._fail(group, PublishError(f"transaction failed: {exc!r}"))
                self._mark_failed(f"transaction failed: {exc!r}")
                try:
                    await self._recycle_producer()
                except PublishError:
                    return  # stopped while Kafka was away

    async def _commit(self, group: list[_Batch]) -> None:
        producer = self._producer
        assert producer is not None
        started = time.perf_counter()
        await producer.begin_transaction()
        try:
            futures = []
            for batch in group:
                for rec in batch.records:
                    futures.append(
                        await producer.send(
                            rec.topic, value=rec.value, key=rec.key, headers=list(rec.headers)
                        )
                    )
            await asyncio.gather(*futures)
            await producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(Exception):
                await stop_shortened_wait_for(
                    producer.abort_transaction(), 5, self._stop, STOPPING_ABORT_S
                )
            raise
        elapsed = time.perf_counter() - started
        n_records = sum(len(b.records) for b in group)
        for batch in group:
            if not batch.done.done():
                batch.done.set_result(None)
        self._healthy.set()
        self.last_error = None
        if self._on_commit is not None:
            self._on_commit(CommitStats(len(group), n_records, elapsed))

    @staticmethod
    def _fail(group: list[_Batch], exc: Exception) -> None:
        for batch in group:
            if not batch.done.done():
                batch.done.set_exception(exc)

    def _fail_queued(self, exc: Exception) -> None:
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            if not batch.done.done():
                batch.done.set_exception(exc)

    async def _recycle_producer(self) -> None:
        # After a failed transaction the producer may be in an error state it cannot leave;
        # a fresh one with the same transactional id bumps the epoch and starts clean.
        old, self._producer = self._producer, None
        if old is not None:
            with contextlib.suppress(Exception):
                await stop_shortened_wait_for(old.stop(), 10, self._stop, STOPPING_CLOSE_S)
        await self._connect_until_ready()

    async def stop(self) -> None:
        """Stop accepting batches, fail what is still queued, close the producer."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            # A loop that ended on its own (fenced) was reported by its done-callback and the
            # supervisor already; re-raising it here turned exit code 3 into a traceback and 1.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._fail_queued(PublishError("publisher stopped"))
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await stop_shortened_wait_for(
                    self._producer.stop(), 10, self._stop, STOPPING_CLOSE_S
                )
            self._producer = None
