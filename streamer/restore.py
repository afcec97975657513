"""Read a checkpoint topic back: per company its tracked jobs and its reconciliation ledger.

Used at a shard's takeover (its own partition of the private checkpoint topic, after the shard's
producer started) and by the publisher after an uncertain commit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from streamer.checkpoint import decode_checkpoint, decode_ledger, is_ledger_key
from streamer.model import TrackedJob
from streamer.reconcile import CompanyLedger

__all__ = ["CompanyStates", "RestoreError", "Restored", "restore_state"]

log = structlog.get_logger("streamer.restore")

CompanyStates = dict[str, dict[str, TrackedJob]]


class RestoreError(Exception):
    """The checkpoint could not be read to its end in time."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What the checkpoint topic holds: per company, its tracked jobs and its ledger."""

    states: CompanyStates = field(default_factory=dict)
    ledgers: dict[str, CompanyLedger] = field(default_factory=dict)


async def restore_state(
    client_kwargs: Mapping[str, Any],
    topic: str,
    timeout_s: float = 60.0,
    partitions: Sequence[int] | None = None,
) -> Restored:
    """Read the compacted checkpoint topic to its end (read_committed): per-company state and
    reconciliation ledgers.

    ``partitions``: only these (a shard's own partition); all when None. Must run after the
    transactional producer started: ``init_transactions`` aborts a transaction that a crashed
    predecessor left open, and only then does the last stable offset reach the end.
    """
    consumer = AIOKafkaConsumer(
        **client_kwargs,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    by_handle: dict[str, TrackedJob] = {}
    ledgers: dict[bytes, tuple[str, CompanyLedger] | None] = {}
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        wanted = sorted(parts) if partitions is None else sorted(set(partitions) & set(parts))
        tps = [TopicPartition(topic, p) for p in wanted]
        if not tps:
            return Restored()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise RestoreError(f"checkpoint restore did not reach the end of {topic}")
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    if rec.key is not None and is_ledger_key(rec.key):
                        ledgers[rec.key] = _ledger(rec.key, rec.value)
                        continue
                    key = rec.key.decode() if rec.key is not None else None
                    if key is None:
                        continue
                    if rec.value is None:
                        by_handle.pop(key, None)
                    else:
                        try:
                            by_handle[key] = decode_checkpoint(rec.value)
                        except ValueError as exc:
                            # One unreadable record must not stop every restart: that job is
                            # observed again on the next poll (flagged seenAfterStart).
                            by_handle.pop(key, None)
                            log.error("checkpoint_record_unreadable", job=key, error=str(exc)[:300])
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    states: CompanyStates = {}
    for handle, tracked in by_handle.items():
        states.setdefault(tracked.snapshot.company_handle, {})[handle] = tracked
    return Restored(states, dict(v for v in ledgers.values() if v is not None))


def _ledger(key: bytes, value: bytes | None) -> tuple[str, CompanyLedger] | None:
    """A company's ledger record, or None (a tombstone, or a record that cannot be read)."""
    if value is None:
        return None
    try:
        return decode_ledger(value)
    except ValueError as exc:
        # The company starts afresh (watermark at IPS's now): jobs that ended meanwhile and
        # no poll saw are not reported, which the log says; nothing is reported twice.
        log.error(
            "ledger_record_unreadable",
            key=key.decode(errors="replace"),
            error=str(exc)[:300],
        )
        return None
