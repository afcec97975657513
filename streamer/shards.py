"""Shards: the companies split over the instances of one deployment by Kafka's group membership.

* ``shard = (murmur2(UTF-8 companyHandle) & 0x7fffffff) % kafka.shards``: Kafka's default
  (Java-compatible) partitioner applied to the company handle, so any tool can compute it.
* Every instance joins the consumer group ``kafka.group_id`` on the private shards topic, which has
  one partition per shard and carries no records. Owning partition p means owning shard p.
* Each owned shard has its own transactional producer (``<transactional_id>-shard-<p>``). Taking a
  shard over goes in a fixed order: start the producer (``init_transactions`` fences the previous
  owner and aborts its open transaction), read the shard's partition of the private checkpoint
  topic read_committed to its end, and only then poll the shard's companies.
* Handing a shard over (revoked by a rebalance, or at shutdown): its company loops finish their
  cycle and commit, within ``handover_timeout_s``; then its producer closes.
* ``ProducerFenced`` on a shard means another instance owns it now: step down from that shard,
  never re-initialise (that would fence the rightful owner). A later assignment may bring it back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.partitioner import murmur2

from streamer.kafka import FencedError, Publisher, PublishError
from streamer.restore import CompanyStates, RestoreError
from streamer.retry import Backoff, sleep_or_stop

__all__ = [
    "ShardCoordinator",
    "ShardOwner",
    "ShardPlan",
    "companies_by_shard",
    "shard_of",
]

log = structlog.get_logger("streamer.shards")

#: Between attempts to read a shard's checkpoint at takeover.
RESTORE_BACKOFF = Backoff(initial_s=1.0, max_s=30.0)
#: How long closing the group consumer may take on the way out.
LEAVE_TIMEOUT_S = 3.0


def shard_of(company_handle: str, shards: int) -> int:
    """The shard of a company: Kafka's murmur2 partitioner on its UTF-8 handle."""
    return int(murmur2(company_handle.encode()) & 0x7FFFFFFF) % shards


def companies_by_shard(handles: Iterable[str], shards: int) -> dict[int, list[str]]:
    """Shard -> its companies (in the given order); shards without companies are left out."""
    out: dict[int, list[str]] = {}
    for handle in handles:
        out.setdefault(shard_of(handle, shards), []).append(handle)
    return out


#: A company loop of a shard: it returns when the shard's stop is set (or after its cycles).
Loop = Coroutine[Any, Any, None]


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """How to run one shard (built by the service, which knows settings and clients)."""

    shard: int
    companies: Sequence[str]
    #: The shard's publisher (transactional id, checkpoint partition = shard), given its stop.
    publisher: Callable[[asyncio.Event], Publisher]
    #: Read the shard's checkpoint partition to its end (after the producer started).
    restore: Callable[[], Awaitable[CompanyStates]]
    #: The company loops of the shard, given the publisher, the restored state and the stop.
    loops: Callable[[Publisher, CompanyStates, asyncio.Event], Sequence[tuple[str, Loop]]]


@dataclass
class ShardOwner:
    """One owned shard: its producer, its restored state and its company loops."""

    plan: ShardPlan
    on_fenced: Callable[[int], None]
    on_taken: Callable[[int, float], None] = lambda shard, seconds: None
    #: The shard's commit loop died of something else than fencing (e.g. topics gone).
    on_fatal: Callable[[BaseException], None] = lambda error: None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    publisher: Publisher | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def shard(self) -> int:
        """The shard number (= partition of the shards and checkpoint topics)."""
        return self.plan.shard

    async def start(self) -> None:
        """Take the shard over: producer (fencing), checkpoint, then the company loops."""
        publisher = self.publisher = self.plan.publisher(self.stop)
        await publisher.start(self.stop)
        assert publisher.task is not None
        publisher.task.add_done_callback(self._publisher_ended)
        failures = 0
        while True:
            try:
                states = await self.plan.restore()
                break
            except RestoreError as exc:
                # The checkpoint could not be read to its end in time: the shard waits (its
                # companies are not polled against a partial state), and tries again.
                failures += 1
                log.warning("shard_restore_failed", shard=self.shard, error=str(exc))
                if await sleep_or_stop(self.stop, RESTORE_BACKOFF.delay(failures)):
                    return
        if self.stop.is_set():
            return
        for company, loop in self.plan.loops(publisher, states, self.stop):
            task = asyncio.create_task(loop, name=f"poll:{company}")
            task.add_done_callback(self._loop_ended)
            self.tasks[company] = task
        seconds = time.monotonic() - self.started_at
        log.info(
            "shard_taken_over",
            shard=self.shard,
            companies=len(self.tasks),
            jobs=sum(len(s) for s in states.values()),
            seconds=round(seconds, 3),
        )
        self.on_taken(self.shard, seconds)

    def _publisher_ended(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, FencedError) and not self.stop.is_set():
            self.on_fatal(error)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        if isinstance(task.exception(), FencedError) and not self.stop.is_set():
            self.stop.set()
            self.on_fenced(self.shard)

    def finished(self) -> bool:
        """True when every company loop of the shard has returned."""
        return bool(self.tasks) and all(t.done() for t in self.tasks.values())

    async def release(self, timeout_s: float) -> bool:
        """Hand the shard over: loops finish their cycle and commit, then the producer closes.

        Returns False when some loop did not finish within ``timeout_s`` (it is cancelled: its
        open transaction is aborted by the next owner's fencing, so nothing half-done shows).
        """
        self.stop.set()
        running = [t for t in self.tasks.values() if not t.done()]
        drained = True
        if running:
            _, late = await asyncio.wait(running, timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                drained = False
                await asyncio.gather(*late, return_exceptions=True)
        if self.publisher is not None:
            await self.publisher.stop()
        return drained


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, coordinator: ShardCoordinator) -> None:
        self._c = coordinator

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._c.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._c.assigned({tp.partition for tp in assigned})


class ShardCoordinator:
    """Joins the group, takes assigned shards over and hands revoked ones over."""

    def __init__(
        self,
        *,
        consumer_kwargs: dict[str, Any],
        shards_topic: str,
        plans: dict[int, ShardPlan],
        handover_timeout_s: float,
        on_change: Callable[[dict[int, ShardOwner]], None] = lambda owners: None,
        on_taken: Callable[[int, float], None] = lambda shard, seconds: None,
        on_step_down: Callable[[int], None] = lambda shard: None,
        on_rebalance: Callable[[], None] = lambda: None,
    ) -> None:
        self._kwargs = consumer_kwargs
        self._topic = shards_topic
        self._plans = plans
        self._handover_s = handover_timeout_s
        self._on_change = on_change
        self._on_taken = on_taken
        self._on_step_down = on_step_down
        self._on_rebalance = on_rebalance
        self.owners: dict[int, ShardOwner] = {}
        self._starting: dict[int, asyncio.Task[None]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self.rebalances = 0
        self.assignment: set[int] = set()
        # The first error that must end the process (a shard's commit loop died of it).
        self._fatal: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def start(self) -> bool:
        """Join the group (the first assignment arrives through the listener)."""
        consumer = AIOKafkaConsumer(**self._kwargs, enable_auto_commit=False)
        consumer.subscribe(topics=[self._topic], listener=_Listener(self))
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the membership alive (the shards topic carries no records) until stopped."""
        assert self._consumer is not None
        while not stop.is_set():
            if self._fatal.done():
                self._fatal.result()  # raises: the supervisor ends the run with it
            await self._consumer.getmany(timeout_ms=500)
            await asyncio.sleep(0)

    async def assigned(self, shards: set[int]) -> None:
        """Start the owners of newly assigned shards that have companies (in the background)."""
        self.rebalances += 1
        self._on_rebalance()
        self.assignment = set(shards)
        log.info("shards_assigned", shards=sorted(shards))
        for shard in sorted(shards):
            plan = self._plans.get(shard)
            if plan is None or shard in self.owners:
                continue
            owner = ShardOwner(
                plan, on_fenced=self._fenced, on_taken=self._on_taken, on_fatal=self._fatal_error
            )
            self.owners[shard] = owner
            task = asyncio.create_task(self._take(owner), name=f"take:{shard}")
            self._starting[shard] = task
        self._on_change(self.owners)

    async def _take(self, owner: ShardOwner) -> None:
        try:
            await owner.start()
        except PublishError as exc:
            log.warning("shard_takeover_stopped", shard=owner.shard, error=str(exc))
        finally:
            self._starting.pop(owner.shard, None)

    async def revoked(self, shards: set[int]) -> None:
        """Hand the revoked shards over before the rebalance completes."""
        log.info("shards_revoked", shards=sorted(shards))
        self.assignment -= shards
        await self._release([s for s in shards if s in self.owners])

    def _fatal_error(self, error: BaseException) -> None:
        if not self._fatal.done():
            self._fatal.set_exception(error)

    def _fenced(self, shard: int) -> None:
        log.error("shard_fenced", shard=shard, action="step down")
        self._on_step_down(shard)
        task = asyncio.ensure_future(self._release([shard]))
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def _release(self, shards: Sequence[int], timeout_s: float | None = None) -> bool:
        owners = [self.owners.pop(s) for s in shards if s in self.owners]
        for owner in owners:
            starting = self._starting.pop(owner.shard, None)
            if starting is not None and not starting.done():
                owner.stop.set()
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        timeout = self._handover_s if timeout_s is None else timeout_s
        results = await asyncio.gather(*(o.release(timeout) for o in owners))
        for owner, drained in zip(owners, results, strict=True):
            log.info("shard_released", shard=owner.shard, drained=drained)
        self._on_change(self.owners)
        return all(results)

    def finished(self) -> bool:
        """True when every owned shard's loops have returned (``max_cycles`` runs)."""
        return (
            bool(self.owners)
            and not self._starting
            and all(o.finished() for o in self.owners.values())
        )

    async def stop(self, timeout_s: float | None = None) -> bool:
        """Hand every shard over (drain within ``timeout_s``, default the handover timeout),
        then leave the group. False if a drain timed out. Safe to call again."""
        drained = await self._release(list(self.owners), timeout_s)
        if self._consumer is not None:
            # aiokafka does not call on_partitions_revoked on stop(): the shards were released
            # above. A static member does not leave: a restart within the session timeout gets
            # its shards back without a rebalance.
            consumer, self._consumer = self._consumer, None
            # In a task of its own, bounded: with the broker gone, aiokafka's fetcher close lets
            # its own cancellation escape and can wait a request timeout.
            closing = asyncio.ensure_future(consumer.stop())
            await asyncio.wait({closing}, timeout=LEAVE_TIMEOUT_S)
            closing.add_done_callback(lambda t: None if t.cancelled() else t.exception())
        return drained
