"""``streamer tail``: read the topics back and show them to a person.

Two views: a live screen (active jobs per company with progress bars, and a pane of recent
changes that is always visible) on a terminal, and one readable line per event otherwise (or with
``--lines``). It is an ordinary ``read_committed`` consumer of the public topics, so it shows what
consumers see; the private topics (``<prefix>.streamer.checkpoint``, ``<prefix>.streamer.shards``)
are never read. Decoding and state live in :mod:`streamer.tail_state`, the screen in
:mod:`streamer.tail_screen`; this module is the consumer loop that feeds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from rich.console import Console
from rich.live import Live

from streamer.encode import TopicNames
from streamer.kafka_access import KafkaAuthenticationFailed, probe
from streamer.tail_screen import (
    describe,
    render_screen,
)
from streamer.tail_state import (
    QUIET_S,
    RETRY_S,
    Filters,
    Merger,
    TailState,
    decode_event,
)

# --------------------------------------------------------------------------------------------
# The consumer loop
# --------------------------------------------------------------------------------------------


def _bootstrap_of(client_kwargs: Mapping[str, Any]) -> str:
    servers = client_kwargs.get("bootstrap_servers", "localhost:9092")
    return servers if isinstance(servers, str) else ",".join(servers)


def _consumer(client_kwargs: Mapping[str, Any], *topics: str, earliest: bool) -> AIOKafkaConsumer:
    """A ``read_committed`` consumer without a group: it gets every partition of ``topics``
    and starts at their beginning (``earliest``) or end."""
    return AIOKafkaConsumer(
        *topics,
        **client_kwargs,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if earliest else "latest",
        enable_auto_commit=False,
    )


async def wait_for_topics(
    client_kwargs: Mapping[str, Any], names: Sequence[str], say: Callable[[str], None]
) -> None:
    """Return once the broker answers and every topic in ``names`` exists.

    Until then it says why it waits, once per reason (not once per retry), and retries every
    :data:`RETRY_S` seconds.
    """
    where = _bootstrap_of(client_kwargs)
    said = ""

    def once(line: str) -> None:
        nonlocal said
        if line != said:
            said = line
            say(line)

    while True:
        consumer: AIOKafkaConsumer | None = None
        try:
            await probe(client_kwargs)
            consumer = _consumer(client_kwargs, earliest=False)
            await consumer.start()
            missing = sorted(set(names) - set(await consumer.topics()))
            if not missing:
                return
            once(
                f"tail: waiting for topic(s) {', '.join(missing)} on {where} "
                f"(the streamer creates them when it starts); checking every {RETRY_S:g} s"
            )
        except KafkaAuthenticationFailed as exc:
            once(f"tail: Kafka at {where} refused the login: {exc}; retrying every {RETRY_S:g} s")
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            once(f"tail: Kafka at {where} is unreachable ({reason}); retrying every {RETRY_S:g} s")
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        await asyncio.sleep(RETRY_S)


async def _seed(client_kwargs: Mapping[str, Any], topic: str, state: TailState) -> None:
    """Read the compacted ``jobs.latest`` topic to its end: the jobs active right now, with
    their names and types (the events of a job seen before the view started do not carry them).
    """
    consumer = _consumer(client_kwargs, topic, earliest=True)
    await consumer.start()
    latest: dict[bytes, Mapping[str, Any] | None] = {}
    try:
        ends: dict[TopicPartition, int] | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    if rec.key is None:
                        continue
                    try:
                        doc = json.loads(rec.value) if rec.value is not None else None
                    except ValueError:
                        doc = None
                    latest[rec.key] = doc if isinstance(doc, dict) else None
            tps = list(consumer.assignment())
            if not tps:
                continue
            if ends is None:
                ends = await consumer.end_offsets(tps)
            if all([await consumer.position(tp) >= ends.get(tp, 0) for tp in tps]):
                break
    finally:
        await consumer.stop()
    for doc in latest.values():
        if doc is not None:
            state.seed(doc)


async def _lagging(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    """Assigned partitions with committed records still to read."""
    out = []
    for tp in consumer.assignment():
        lso = consumer.last_stable_offset(tp)
        if lso is None or await consumer.position(tp) < lso:
            out.append(tp)
    return out


async def tail(
    client_kwargs: Mapping[str, Any],
    topics: TopicNames,
    *,
    lines: bool,
    from_beginning: bool,
    heartbeats: bool = False,
    max_records: int | None = None,
    filters: Filters | None = None,
    console: Console | None = None,
) -> None:
    """Consume the public event topics until cancelled (or ``max_records`` were shown)."""
    filters = filters or Filters()
    names = [topics.state, topics.progress, topics.notifications]
    if heartbeats or not lines:
        names.append(topics.heartbeat)
    console = console or Console()
    state = TailState(filters)

    def say(line: str) -> None:
        print(line, file=sys.stderr if lines else sys.stdout, flush=True)

    await wait_for_topics(client_kwargs, [*names, topics.latest], say)
    if not lines and not from_beginning:
        await _seed(client_kwargs, topics.latest, state)
    # Named topics only: the private ones (checkpoint, shards) are never read.
    consumer = _consumer(client_kwargs, *names, earliest=from_beginning)
    await consumer.start()
    live: Live | None = None
    try:
        if not lines:
            live = Live(console=console, screen=True, auto_refresh=False, vertical_overflow="crop")
            live.start()
            live.update(render_screen(state, *console.size), refresh=True)
        await _consume(consumer, state, live, lines, heartbeats, max_records)
    finally:
        if live is not None:
            live.stop()
        await consumer.stop()


async def _consume(
    consumer: AIOKafkaConsumer,
    state: TailState,
    live: Live | None,
    lines: bool,
    heartbeats: bool,
    max_records: int | None,
) -> None:
    merger = Merger()
    shown = 0
    last_data = time.monotonic()
    while max_records is None or shown < max_records:
        batch = await consumer.getmany(timeout_ms=500)
        now = time.monotonic()
        for tp, records in batch.items():
            if records:
                last_data = now
            merger.add(
                tp, (decode_event(tp.topic, dict(r.headers), r.value, r.timestamp) for r in records)
            )
        # A partition quiet for a while holds nothing back: its offsets may be unknown yet.
        lagging = await _lagging(consumer) if now - last_data < 2 else []
        for event in merger.release(lagging):
            shown_here = state.matches(event)
            state.apply(event)
            if not shown_here or (lines and event.type == "streamer.heartbeat" and not heartbeats):
                continue
            if lines:
                print(describe(event.topic, event.headers, event.value), flush=True)
            shown += 1
            if max_records is not None and shown >= max_records:
                return
        if live is not None:
            quiet = now - last_data
            # Heartbeats arrive at least every heartbeat.every_s: silence means the streamer or
            # Kafka is down.
            state.problem = f"no records for {quiet:.0f} s" if quiet > QUIET_S else ""
            width, height = live.console.size
            live.update(render_screen(state, width, height), refresh=True)


def run_tail(client_kwargs: Mapping[str, Any], topics: TopicNames, **kw: Any) -> None:
    """Blocking wrapper; Ctrl-C ends it quietly."""
    if not kw.get("lines") and not sys.stdout.isatty():
        kw["lines"] = True
    # aiokafka logs every failed reconnect and every unknown topic: the view says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(client_kwargs, topics, **kw))
