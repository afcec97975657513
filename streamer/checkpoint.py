"""The checkpoint codec: tracked jobs and company ledgers ↔ their compacted checkpoint records.

Pure: no I/O, no clock. The checkpoint (the private compacted ``checkpoint`` topic; job records
also go to the public ``latest`` topic) holds two kinds of record:

* per tracked job, keyed by ``jobHandle``, a ``job.latest`` record (below);
* per company, keyed by :func:`ledger_key` (a NUL byte, ``ledger:`` and the company handle: XML
  text, hence a ``jobHandle``, can never hold a NUL, so the keys never meet), a
  ``streamer.ledger`` record on the private topic only: the company's
  :class:`~streamer.reconcile.CompanyLedger`, written by :func:`encode_ledger` and read back
  exactly by :func:`decode_ledger`. Its value holds the watermark and floor as ISO-8601 text and
  each remembered completion as ``[jobHandle, microseconds after the watermark]`` (``null``: not
  stamped yet), sorted by handle.

A ``job.latest`` record holds the whole tracked job plus ``company`` and round-trips exactly
through :func:`decode_checkpoint`:

* the value is written by :func:`streamer.jsontext.tracked_json`; ``lastProgressStatus`` is
  ``null`` when it equals the snapshot's status (nearly always);
* its ``ce_id`` is ``<jobHandle>:<sequence>:<digest of the value>``: a checkpoint also changes
  without a new event (a vanished job, a held-back progress change); ``ce_time`` is the latest of
  the job's times; ``ce_source`` is the job's (as its events'), ``ce_sequence`` the sequence of
  the job's last event (several checkpoints of one job can carry the same);
* reading it back refuses wrong JSON types rather than coercing them, and works at any nesting
  depth of the sub-job tree, as writing it does;
* it reads both contracts: the v2 sub-job object and the v1 ``[name, value]`` pairs, so that a
  checkpoint written before the upgrade restores.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from streamer.encode import (
    DEFAULT_CONTRACT,
    Contract,
    Record,
    TopicNames,
    cloudevent_headers,
    job_source,
)
from streamer.jsontext import compact_json, datetime_text, tracked_json
from streamer.model import (
    JobSnapshot,
    JobStatus,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    TrackedJob,
    XmlTree,
)
from streamer.reconcile import CompanyLedger

__all__ = [
    "CHECKPOINT_SOURCE",
    "LEDGER_KEY_PREFIX",
    "decode_checkpoint",
    "decode_ledger",
    "encode_checkpoint",
    "encode_ledger",
    "is_ledger_key",
    "ledger_key",
]

#: The company ``source`` of checkpoint records when the caller names none (a job's checkpoint
#: gets ``<source>/jobs/<jobHandle>``, a ledger this source itself).
CHECKPOINT_SOURCE = "ips-job-streamer"
#: What every ledger key starts with; no ``jobHandle`` can (XML text holds no NUL).
LEDGER_KEY_PREFIX = b"\x00ledger:"
_T = TypeVar("_T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_checkpoint(
    tracked: TrackedJob,
    *,
    topics: TopicNames,
    source: str = CHECKPOINT_SOURCE,
    contract: Contract = DEFAULT_CONTRACT,
) -> Record:
    """The compacted ``latest`` record of a tracked job (key ``jobHandle``; ``source``: the
    company's, as for its events)."""
    value = tracked_json(tracked).encode()
    handle = tracked.snapshot.job_handle
    times = (tracked.last_seen_at, tracked.last_progress_at, tracked.last_moved_at)
    last = max(times if tracked.vanished_at is None else (*times, tracked.vanished_at))
    digest = hashlib.blake2b(value, digest_size=8).hexdigest()
    return Record(
        topic=topics.latest,
        key=handle.encode(),
        value=value,
        headers=cloudevent_headers(
            f"{handle}:{tracked.sequence}:{digest}",
            job_source(source, handle),
            "job.latest",
            handle,
            datetime_text(last),
            tracked.sequence,
            "job.latest",
            contract=contract,
        ),
    )


def decode_checkpoint(value: bytes) -> TrackedJob:
    """Rebuild a :class:`TrackedJob` from its ``latest`` record value (exact round trip)."""
    try:
        raw = json.loads(value)
        # Memory: restoring 100k jobs; equal timestamps share one object, as in diff.
        dts: dict[str, datetime] = {}
        snapshot = _snapshot_from(raw["snapshot"], dts)
        lps = raw["lastProgressStatus"]
        return TrackedJob(
            snapshot=snapshot,
            sequence=_as(raw["sequence"], int),
            last_seen_at=_dt_from(raw["lastSeenAt"], dts),
            last_progress_status=snapshot.status if lps is None else _status_from(lps, dts),
            last_progress_at=_dt_from(raw["lastProgressAt"], dts),
            last_moved_at=_dt_from(raw["lastMovedAt"], dts),
            stalled=_as(raw["stalled"], bool),
            vanished_at=_opt_dt_from(raw["vanishedAt"], dts),
            log_attempts=_as(raw["logAttempts"], int),
            vanished_after_gap=_as(raw.get("vanishedAfterGap", False), bool),
        )
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise ValueError(f"malformed checkpoint record: {exc!r}") from exc


def ledger_key(company: str) -> bytes:
    """The checkpoint key of a company's ledger."""
    return LEDGER_KEY_PREFIX + company.encode()


def is_ledger_key(key: bytes) -> bool:
    """Whether a checkpoint record's key is a company ledger's (else it is a ``jobHandle``)."""
    return key.startswith(LEDGER_KEY_PREFIX)


def encode_ledger(
    company: str,
    ledger: CompanyLedger,
    *,
    topics: TopicNames,
    source: str = CHECKPOINT_SOURCE,
    contract: Contract = DEFAULT_CONTRACT,
) -> Record:
    """The private checkpoint record of a company's ledger (key :func:`ledger_key`)."""
    watermark = ledger.watermark
    entries = [
        [handle, None if at is None else _micros(at - watermark)]
        for handle, at in sorted(ledger.reported.items())
    ]
    value = compact_json(
        {
            "company": company,
            "watermark": datetime_text(watermark),
            "floor": datetime_text(ledger.floor),
            "reported": entries,
        }
    ).encode()
    digest = hashlib.blake2b(value, digest_size=8).hexdigest()
    text = datetime_text(watermark)
    return Record(
        topic=topics.checkpoint,
        key=ledger_key(company),
        value=value,
        headers=cloudevent_headers(
            f"{company}:ledger:{digest}",
            source,
            "streamer.ledger",
            company,
            text,
            max(0, _micros(watermark - _EPOCH)),
            "streamer.ledger",
            contract=contract,
        ),
    )


def decode_ledger(value: bytes) -> tuple[str, CompanyLedger]:
    """Rebuild ``(company, ledger)`` from a ledger record value (exact round trip)."""
    try:
        raw = json.loads(value)
        dts: dict[str, datetime] = {}
        watermark = _dt_from(raw["watermark"], dts)
        reported: dict[str, datetime | None] = {}
        for entry in _as(raw["reported"], list):
            handle, offset = _as(entry, list)
            reported[_as(handle, str)] = (
                None if offset is None else watermark + timedelta(microseconds=_as(offset, int))
            )
        ledger = CompanyLedger(watermark, _dt_from(raw["floor"], dts), reported)
        return _as(raw["company"], str), ledger
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"malformed ledger record: {exc!r}") from exc


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# --------------------------------------------------------------------------------------------
# JSON values → model values
# --------------------------------------------------------------------------------------------


def _dt_from(raw: object, cache: dict[str, datetime]) -> datetime:
    if not isinstance(raw, str):
        raise TypeError(f"expected an ISO-8601 string, got {raw!r}")
    parsed = cache.get(raw)
    if parsed is None:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            raise ValueError(f"datetime without offset: {raw!r}")
        cache[raw] = parsed
    return parsed


def _opt_dt_from(raw: object, cache: dict[str, datetime]) -> datetime | None:
    return None if raw is None else _dt_from(raw, cache)


def _as(raw: object, kind: type[_T]) -> _T:
    """``raw`` if it is a ``kind`` (``True`` is no ``int`` here), else ``TypeError``."""
    if not isinstance(raw, kind) or (kind is int and isinstance(raw, bool)):
        raise TypeError(f"expected {kind.__name__}, got {raw!r}")
    return raw


def _opt_str(raw: object) -> str | None:
    return None if raw is None else _as(raw, str)


def _float(raw: object) -> float:
    if raw is None:
        return math.nan  # written for a non-finite value (see streamer.jsontext)
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError(f"expected a number, got {raw!r}")
    return float(raw)


def _item_from(raw: dict[str, Any], dts: dict[str, datetime]) -> TaskItemProgress:
    return TaskItemProgress(
        item_name=_as(raw["itemName"], str),
        progress=_float(raw["progress"]),
        progress_message=_as(raw["progressMessage"], str),
        last_progress_update=_dt_from(raw["lastProgressUpdate"], dts),
    )


def _task_from(raw: dict[str, Any], dts: dict[str, datetime]) -> TaskProgress:
    return TaskProgress(
        task_type=_as(raw["taskType"], str),
        task_state=_as(raw["taskState"], str),
        num_processed=_as(raw["numProcessed"], int),
        num_processing=_as(raw["numProcessing"], int),
        num_pending=_as(raw["numPending"], int),
        progress=_float(raw["progress"]),
        progress_message=_as(raw["progressMessage"], str),
        last_progress_update=_dt_from(raw["lastProgressUpdate"], dts),
        items=tuple(_item_from(i, dts) for i in raw["items"]),
    )


def _status_from(raw: dict[str, Any], dts: dict[str, datetime]) -> JobStatus:
    return JobStatus(
        state=_as(raw["state"], str),
        progress=_as(raw["progress"], int),
        progress_message=_as(raw["progressMessage"], str),
        last_progress_update=_dt_from(raw["lastProgressUpdate"], dts),
        total_size=_as(raw["totalSize"], int),
        task_progress=tuple(_task_from(t, dts) for t in raw["taskProgress"]),
    )


def _tree_from(raw: Any) -> XmlTree:
    """A sub-job tree from its v2 object, or from the v1 ``[name, value]`` pairs."""
    return _walk_tree(raw, _members if isinstance(raw, dict) else _pairs)


def _members(node: Any) -> Iterator[tuple[str, Any]]:
    """Contract v2: an object's members as (name, value) pairs, an array member as one pair per
    item."""
    for name, value in _as(node, dict).items():
        if isinstance(value, list):
            if len(value) < 2:
                raise ValueError(f"sub-job field {name!r}: an array holds 2 or more values")
            for item in value:
                if not isinstance(item, str | dict):  # an array is never nested in an array
                    raise TypeError(f"sub-job field {name!r}: unexpected array item {item!r}")
                yield name, item
        else:
            yield name, value


def _pairs(node: Any) -> Iterator[tuple[str, Any]]:
    """Contract v1: a node's ``[name, value]`` pairs."""
    for name, value in node:
        yield _as(name, str), value


def _walk_tree(raw: Any, children: Callable[[Any], Iterator[tuple[str, Any]]]) -> XmlTree:
    # An explicit stack instead of recursion, like the writer's: any depth that was written can
    # be read back. Each open node: its (name, value) children still to read, the pairs already
    # rebuilt, and its own name in its parent; a value that is not a string is a nested node.
    top: list[tuple[str, str | XmlTree]] = []
    stack: list[tuple[Iterator[tuple[str, Any]], list[tuple[str, str | XmlTree]], str]] = [
        (children(raw), top, "")
    ]
    while stack:
        members, built, _ = stack[-1]
        for name, value in members:
            if isinstance(value, str):
                built.append((name, value))
            else:  # a nested node: read it first, this node's iterator waits where it is
                stack.append((children(value), [], name))
                break
        else:
            _, _, own_name = stack.pop()
            if stack:
                stack[-1][1].append((own_name, tuple(built)))
    return tuple(top)


def _snapshot_from(raw: dict[str, Any], dts: dict[str, datetime]) -> JobSnapshot:
    sub = raw["subJob"]
    return JobSnapshot(
        company_handle=_as(raw["companyHandle"], str),
        job_handle=_as(raw["jobHandle"], str),
        name=_as(raw["name"], str),
        original_name=_as(raw["originalName"], str),
        type=_as(raw["type"], str),
        submit_user_email=_as(raw["submitUserEmail"], str),
        locale=_opt_str(raw["locale"]),
        description=_opt_str(raw["description"]),
        server_name=_as(raw["serverName"], str),
        start_date=_dt_from(raw["startDate"], dts),
        trigger_time=_opt_dt_from(raw["triggerTime"], dts),
        status=_status_from(raw["status"], dts),
        sub_job=None
        if sub is None
        else SubJob(element=_as(sub["element"], str), fields=_tree_from(sub["fields"])),
        truncated=_as(raw.get("truncated", False), bool),
    )
