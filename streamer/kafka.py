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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    IllegalOperation,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.partitioner import murmur2

from streamer.encode import Record
from streamer.model import TrackedJob
from streamer.reconcile import CompanyLedger
from streamer.restore import Restored, RestoreError, restore_state
from streamer.retry import Backoff, Stopped, sleep_or_stop, stop_shortened_wait_for, until_stopped

log = structlog.get_logger("streamer.kafka")

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


@dataclass(frozen=True, slots=True)
class Rejection:
    """One record Kafka refused for what it is (its size, its content), not for its broker."""

    topic: str
    key: bytes | None
    reason: str


class RecordRejected(PublishError):
    """The batch was not committed because Kafka refused some of its records.

    The transaction was aborted for sure. The caller may publish the batch again without the
    rejected records (the publisher already committed the other batches of the group).
    """

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        names = ", ".join(
            f"{r.topic}/{(r.key or b'').decode(errors='replace')}" for r in rejections
        )
        super().__init__(f"Kafka refused {len(rejections)} record(s): {names[:300]}")
        self.rejections = tuple(rejections)


class _GroupRejected(Exception):
    """Records of some batches of a group were refused; the transaction was aborted."""

    def __init__(self, by_batch: dict[int, list[Rejection]]) -> None:
        super().__init__(f"records refused in {len(by_batch)} batch(es)")
        self.by_batch = by_batch


#: Errors that concern one record, not the broker: the other records can still be committed.
_PER_RECORD_ERRORS = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    IllegalOperation,
    InvalidTimestampError,
)


class CommitUncertain(PublishError):
    """A batch's transaction may or may not have committed (a timeout, a lost answer).

    Never treat it as failed: the publisher re-initialises the producer (which completes or aborts
    the open transaction) and re-reads the checkpoint topic; :meth:`Publisher.committed_state`
    with ``epoch`` then gives each company the state that was really committed.
    """

    def __init__(self, message: str, *, epoch: int) -> None:
        super().__init__(message)
        self.epoch = epoch


class FencedError(PublishError):
    """Another instance with the same transactional id took over; this one must stop."""


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # marks it retrieved: no "exception was never retrieved" noise


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
        checkpoint_topic: str | None = None,
        checkpoint_partition: int | None = None,
        after_failure: Callable[[], Awaitable[None]] | None = None,
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
        self._checkpoint_topic = checkpoint_topic
        # A shard's publisher writes its checkpoint records to the shard's own partition.
        self._checkpoint_partition = checkpoint_partition
        # Asked after every failed transaction (are the topics still there?); what it raises
        # ends the commit loop, and with it the shard (e.g. a topic deleted, creation off).
        self._after_failure = after_failure
        # Failed transactions so far, and the checkpoint read after the latest of them.
        self._epoch = 0
        self._resynced: tuple[int, Restored] = (0, Restored())
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[_Batch] = []
        # Batches to commit again before the queue (they shared a group with refused records),
        # and how many of the next transactions carry a single batch to find the culprit.
        self._retry: list[_Batch] = []
        self._solo = 0
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

    async def _connect_until_ready(self, *, mark_healthy: bool = True) -> None:
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
            if mark_healthy:
                self._recovered()
            return

    def _recovered(self) -> None:
        if self.last_error is not None:
            log.info("kafka_recovered")
        self._healthy.set()
        self.last_error = None

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
        if self._solo > 0:
            self._solo -= 1  # isolating a refused group: one cycle per transaction
            return [first]
        group = [first]
        count = len(first.records)
        while count < self._max_records and (self._retry or not self._queue.empty()):
            nxt = self._retry.pop(0) if self._retry else self._queue.get_nowait()
            group.append(nxt)
            count += len(nxt.records)
        return group

    async def _run(self) -> None:
        while True:
            # Batches that shared a transaction with refused records go first.
            first = self._retry.pop(0) if self._retry else await self._queue.get()
            if self._commit_interval_s > 0:
                await asyncio.sleep(self._commit_interval_s)
            # Kept until the next group: if this loop dies, the done-callback fails it.
            group = self._inflight = self._take_group(first)
            try:
                await stop_shortened_wait_for(
                    self._commit(group), self._commit_timeout_s, self._stop, STOPPING_COMMIT_S
                )
            except ProducerFenced as exc:
                raise self._fence(exc) from exc  # the done-callback fails every waiting batch
            except _GroupRejected as exc:
                self._isolate(group, exc.by_batch)
                try:
                    # After a refused record aiokafka's sequence numbers are off (the next
                    # transaction fails with OutOfOrderSequenceNumber): start a fresh producer.
                    await self._recycle_producer()
                except PublishError:
                    return  # stopped meanwhile
                self._recovered()
            except (TimeoutError, KafkaError, OSError, IllegalOperation) as exc:
                fenced = self._fencing()
                if fenced is not None:
                    # A fenced producer's next send fails with IllegalOperation ("not in
                    # transaction"): the cause is the fencing, and it means stepping down.
                    raise self._fence(fenced) from exc
                # Whether EndTxn reached the coordinator is unknown: never call it failed.
                self._epoch += 1
                self._fail(
                    group, CommitUncertain(f"transaction failed: {exc!r}", epoch=self._epoch)
                )
                self._mark_failed(f"transaction failed: {exc!r}")
                if self._after_failure is not None:
                    await self._after_failure()
                try:
                    await self._recover()
                except PublishError:
                    return  # stopped while Kafka was away

    def _fence(self, exc: BaseException) -> FencedError:
        self._fenced = FencedError(
            f"another instance with transactional id {self._txn_id!r} took over: {exc}"
        )
        log.error("kafka_fenced", transactional_id=self._txn_id)
        return self._fenced

    def _fencing(self) -> ProducerFenced | None:
        """The fencing error the producer's transaction manager ended in, if that is what
        happened (aiokafka keeps it there; later calls only say "not in transaction")."""
        manager = getattr(self._producer, "_txn_manager", None)
        if manager is None or not manager.is_fatal_error():
            return None
        waiter = manager._transaction_waiter
        if waiter.done() and not waiter.cancelled():
            error = waiter.exception()
            if isinstance(error, ProducerFenced):
                return error
        return None

    def _isolate(self, group: list[_Batch], by_batch: dict[int, list[Rejection]]) -> None:
        """Find who owns refused records without failing anyone else.

        The broker refuses a whole record batch (every record of one partition in one request),
        so the records named by the error are not necessarily the culprits. A refused group of
        several cycles is therefore committed again one cycle per transaction; only a cycle that
        is refused on its own fails, with :class:`RecordRejected` naming its refused records.
        """
        named = [
            {
                "topic": r.topic,
                "key": (r.key or b"")[:200].decode(errors="replace"),
                "error": r.reason,
            }
            for rs in by_batch.values()
            for r in rs
        ][:20]
        if len(group) > 1:
            self._retry[:0] = group
            self._solo += len(group)
            log.warning("records_rejected_in_group", records=named, batches=len(group))
            return
        batch = group[0]
        if not batch.done.done():
            batch.done.set_exception(RecordRejected(by_batch[0]))
        log.warning("records_rejected", records=named)

    async def _commit(self, group: list[_Batch]) -> None:
        producer = self._producer
        assert producer is not None
        started = time.perf_counter()
        await producer.begin_transaction()
        try:
            futures = []
            owners: list[tuple[int, Record]] = []
            refused: dict[int, list[Rejection]] = {}
            for i, batch in enumerate(group):
                for rec in batch.records:
                    try:
                        fut = await producer.send(
                            rec.topic,
                            value=rec.value,
                            key=rec.key,
                            headers=list(rec.headers),
                            partition=self._checkpoint_partition
                            if rec.topic == self._checkpoint_topic
                            else None,
                        )
                    except _PER_RECORD_ERRORS as exc:
                        refused.setdefault(i, []).append(Rejection(rec.topic, rec.key, repr(exc)))
                        continue
                    futures.append(fut)
                    owners.append((i, rec))
            results = await asyncio.gather(*futures, return_exceptions=True)
            for (i, rec), result in zip(owners, results, strict=True):
                if isinstance(result, _PER_RECORD_ERRORS):
                    refused.setdefault(i, []).append(Rejection(rec.topic, rec.key, repr(result)))
                elif isinstance(result, BaseException):
                    raise result
            if refused:
                raise _GroupRejected(refused)
            await producer.commit_transaction()
        except _GroupRejected:
            # Only a completed abort makes the refusal certain; if it fails, the outer handler
            # sees that error and treats the whole group as uncertain.
            await asyncio.wait_for(producer.abort_transaction(), 5)
            raise
        except BaseException:
            # Sends still in flight fail with the transaction; nobody awaits them any more.
            for fut in futures:
                fut.add_done_callback(_retrieve)
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
        self._fail(self._retry, exc)
        self._retry = []
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            if not batch.done.done():
                batch.done.set_exception(exc)

    async def _recover(self) -> None:
        """A fresh producer (completing or aborting the open transaction), then the checkpoint."""
        while True:
            await self._recycle_producer()
            if self._checkpoint_topic is None:
                break
            epoch = self._epoch
            try:
                # Only now is the outcome of the uncertain transaction settled and readable.
                restored = await restore_state(
                    self._kwargs,
                    self._checkpoint_topic,
                    partitions=None
                    if self._checkpoint_partition is None
                    else [self._checkpoint_partition],
                )
            except (KafkaError, OSError, RestoreError) as exc:
                self._mark_failed(f"checkpoint re-read failed: {exc!r}")
                continue
            self._resynced = (epoch, restored)
            jobs = sum(len(s) for s in restored.states.values())
            log.info("checkpoint_reread", jobs=jobs, epoch=epoch)
            break
        self._recovered()

    def committed_state(self, company: str, epoch: int) -> dict[str, TrackedJob] | None:
        """The company's committed state as re-read after failed transaction ``epoch``.

        None while no re-read covers that epoch yet (or the publisher has no checkpoint topic).
        """
        read_at, restored = self._resynced
        if self._checkpoint_topic is None or read_at < epoch:
            return None
        return dict(restored.states.get(company, {}))

    def committed_ledger(self, company: str, epoch: int) -> CompanyLedger | None:
        """The company's committed ledger as re-read after failed transaction ``epoch``.

        None when it has none; call it only once :meth:`committed_state` gave the state.
        """
        return self._resynced[1].ledgers.get(company)

    async def _recycle_producer(self) -> None:
        # After a failed transaction the producer may be in an error state it cannot leave;
        # a fresh one with the same transactional id bumps the epoch and starts clean.
        old, self._producer = self._producer, None
        if old is not None:
            with contextlib.suppress(Exception):
                await stop_shortened_wait_for(old.stop(), 10, self._stop, STOPPING_CLOSE_S)
        await self._connect_until_ready(mark_healthy=False)

    async def stop(self) -> None:
        """Stop accepting batches, fail what is still queued, close the producer."""
        self._closing = True
        task = self._task
        # Cancel until it ends: a cancellation that lands as a commit finishes can be swallowed.
        # A loop that ended on its own (fenced) was reported by its done-callback already;
        # re-raising it here would turn exit code 3 into a traceback and 1.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        self._fail_queued(PublishError("publisher stopped"))
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await stop_shortened_wait_for(
                    self._producer.stop(), 10, self._stop, STOPPING_CLOSE_S
                )
            self._producer = None
