"""Events and checkpoints → Kafka records: topics, keys, JSON values, CloudEvents headers.

Pure: no I/O besides reading the packaged JSON Schemas on request, no clock, stdlib and
:mod:`streamer.model` only. Rules:

* Values are compact UTF-8 JSON with camelCase keys; every datetime is ISO-8601 with microseconds
  and its UTC offset (``2026-11-28T12:00:00.123000+00:00``); naive datetimes are refused.
  Non-finite task progress values (a ``NaN`` ``xsd:double``) become ``null``: JSON has no NaN.
* Headers follow CloudEvents 1.0 **binary content mode** for Kafka: ``ce_specversion``, ``ce_id``,
  ``ce_source``, ``ce_type``, ``ce_subject``, ``ce_time``, ``ce_sequence`` (zero-padded to 20
  digits so that it sorts as text), ``ce_dataschema`` (the ``$id`` of the value's JSON Schema) and
  ``content-type``. Binary mode is the one in which a null value can be a compaction tombstone.
* Job events are keyed by ``jobHandle``: ``job.progress`` goes to the progress topic, every other
  job event to the state topic. Ids are ``<jobHandle>:<sequence>``, so a cycle regenerated after a
  crash before commit carries the same ids.
* The checkpoint (``job.latest``, compacted, keyed by ``jobHandle``) holds the whole
  :class:`~streamer.model.TrackedJob` plus ``company`` and round-trips exactly through
  :func:`decode_checkpoint`; ``lastProgressStatus`` is ``null`` when it equals the snapshot's
  status (nearly always). Its ``ce_id`` is ``<jobHandle>:<sequence>:<digest of the value>``:
  a checkpoint also changes without a new event (a vanished job, a held-back progress change).
  Tombstones carry no headers: they are deletion markers, not events.
* Heartbeats and notifications are keyed by company handle; their ``ce_id`` is built from the
  company, the kind and the time, their ``ce_sequence`` is the time in microseconds since the epoch.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

from streamer.model import (
    Heartbeat,
    JobCompleted,
    JobEvent,
    JobObserved,
    JobProgress,
    JobRecovered,
    JobSnapshot,
    JobStalled,
    JobStateChanged,
    JobStatus,
    OutcomeCounts,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    TrackedJob,
    XmlTree,
    event_type,
)

__all__ = [
    "CHECKPOINT_SOURCE",
    "SCHEMA_IDS",
    "Record",
    "TopicNames",
    "decode_checkpoint",
    "decode_event_value",
    "encode_checkpoint",
    "encode_event",
    "encode_heartbeat",
    "encode_notification",
    "encode_tombstone",
    "load_schema",
]

_SCHEMA_BASE = "https://ips-job-streamer.dev/schemas/"
#: ``$id`` (= ``ce_dataschema``) of each value type's JSON Schema, by CloudEvents type.
SCHEMA_IDS: dict[str, str] = {
    name: f"{_SCHEMA_BASE}{name}.v1.json"
    for name in (
        "job.observed",
        "job.state_changed",
        "job.progress",
        "job.completed",
        "job.stalled",
        "job.recovered",
        "job.latest",
        "streamer.heartbeat",
        "streamer.notification",
    )
}
#: ``ce_source`` of checkpoint records when the caller names none.
CHECKPOINT_SOURCE = "ips-job-streamer"

_SPECVERSION = ("ce_specversion", b"1.0")
_CONTENT_TYPE = ("content-type", b"application/json")
_SCHEMA_HEADERS = {name: ("ce_dataschema", sid.encode()) for name, sid in SCHEMA_IDS.items()}
# One encoder object: json.dumps with options would build a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_KIND = re.compile(r"[a-z][a-z0-9_]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DT_CACHE: dict[tuple[datetime, tzinfo | None, int], str] = {}
_DT_CACHE_SIZE = 8192
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Kafka topic names (defaults use the prefix ``ips``)."""

    state: str = "ips.jobs.state"
    progress: str = "ips.jobs.progress"
    latest: str = "ips.jobs.latest"
    heartbeat: str = "ips.streamer.heartbeat"
    notifications: str = "ips.streamer.notifications"

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        """The default names under another prefix (``acme`` → ``acme.jobs.state``, ...)."""
        if not prefix or prefix.endswith("."):
            raise ValueError(f"topic prefix must be non-empty without a trailing dot: {prefix!r}")
        return cls(
            state=f"{prefix}.jobs.state",
            progress=f"{prefix}.jobs.progress",
            latest=f"{prefix}.jobs.latest",
            heartbeat=f"{prefix}.streamer.heartbeat",
            notifications=f"{prefix}.streamer.notifications",
        )


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record to produce; ``value`` ``None`` is a tombstone."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def load_schema(event_type: str) -> dict[str, Any]:
    """The packaged JSON Schema (a fresh dict) of a CloudEvents type such as ``job.observed``."""
    if event_type not in SCHEMA_IDS:
        raise KeyError(f"no JSON Schema for type {event_type!r}")
    loaded: dict[str, Any] = json.loads(_schema_text(event_type))
    return loaded


@functools.cache
def _schema_text(event_type: str) -> str:
    name = SCHEMA_IDS[event_type].rsplit("/", 1)[1]
    return importlib.resources.files("streamer.schemas").joinpath(name).read_text("utf-8")


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def encode_event(event: JobEvent, *, source: str, topics: TopicNames) -> Record:
    """A job event as a record on the state or progress topic."""
    kind = event_type(event)
    observed_at = _dt(event.observed_at)
    value: dict[str, Any] = {
        "eventId": event.event_id,
        "type": kind,
        "companyHandle": event.company_handle,
        "jobHandle": event.job_handle,
        "sequence": event.sequence,
        "observedAt": observed_at,
    }
    _EVENT_FIELDS[type(event)](event, value)
    handle = event.job_handle
    return Record(
        topic=topics.progress if isinstance(event, JobProgress) else topics.state,
        key=handle.encode(),
        value=_JSON.encode(value).encode(),
        headers=_headers(
            event.event_id, source, kind, handle, observed_at, event.sequence, _SCHEMA_HEADERS[kind]
        ),
    )


def encode_checkpoint(
    tracked: TrackedJob, *, topics: TopicNames, source: str = CHECKPOINT_SOURCE
) -> Record:
    """The compacted ``latest`` record of a tracked job (key ``jobHandle``)."""
    value = _JSON.encode(_tracked(tracked)).encode()
    handle = tracked.snapshot.job_handle
    times = (tracked.last_seen_at, tracked.last_progress_at, tracked.last_moved_at)
    last = max(times if tracked.vanished_at is None else (*times, tracked.vanished_at))
    digest = hashlib.blake2b(value, digest_size=8).hexdigest()
    return Record(
        topic=topics.latest,
        key=handle.encode(),
        value=value,
        headers=_headers(
            f"{handle}:{tracked.sequence}:{digest}",
            source,
            "job.latest",
            handle,
            _dt(last),
            tracked.sequence,
            _SCHEMA_HEADERS["job.latest"],
        ),
    )


def encode_tombstone(job_handle: str, *, topics: TopicNames) -> Record:
    """The tombstone that removes a completed job from the compacted ``latest`` topic."""
    return Record(topic=topics.latest, key=job_handle.encode(), value=None, headers=())


def encode_heartbeat(hb: Heartbeat, *, source: str, topics: TopicNames) -> Record:
    """A per-company heartbeat record (key: company handle)."""
    polled_at = _dt(hb.polled_at)
    event_id = f"{hb.company_handle}:heartbeat:{polled_at}"
    value = {
        "eventId": event_id,
        "type": "streamer.heartbeat",
        "companyHandle": hb.company_handle,
        "polledAt": polled_at,
        "ok": hb.ok,
        "latencyS": hb.latency_s,
        "activeJobs": hb.active_jobs,
        "lastSuccessAt": _opt_dt(hb.last_success_at),
        "error": hb.error,
    }
    return Record(
        topic=topics.heartbeat,
        key=hb.company_handle.encode(),
        value=_JSON.encode(value).encode(),
        headers=_headers(
            event_id,
            source,
            "streamer.heartbeat",
            hb.company_handle,
            polled_at,
            _epoch_us(hb.polled_at),
            _SCHEMA_HEADERS["streamer.heartbeat"],
        ),
    )


def encode_notification(
    kind: str, company_handle: str, message: str, at: datetime, *, source: str, topics: TopicNames
) -> Record:
    """An operational notification (``kind`` is snake_case, e.g. ``company_unreachable``)."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"notification kind must be snake_case: {kind!r}")
    at_iso = _dt(at)
    ce_type = f"streamer.notification.{kind}"
    event_id = f"{company_handle}:{kind}:{at_iso}"
    value = {
        "eventId": event_id,
        "type": ce_type,
        "kind": kind,
        "companyHandle": company_handle,
        "message": message,
        "at": at_iso,
    }
    return Record(
        topic=topics.notifications,
        key=company_handle.encode(),
        value=_JSON.encode(value).encode(),
        headers=_headers(
            event_id,
            source,
            ce_type,
            company_handle,
            at_iso,
            _epoch_us(at),
            _SCHEMA_HEADERS["streamer.notification"],
        ),
    )


def decode_event_value(value: bytes) -> dict[str, object]:
    """Parse a record value (for consumers and tests)."""
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError("record value is not a JSON object")
    return parsed


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
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"malformed checkpoint record: {exc!r}") from exc


# --------------------------------------------------------------------------------------------
# Values → JSON-ready dicts (built directly: dataclasses.asdict deep-copies and is slow)
# --------------------------------------------------------------------------------------------


def _headers(
    ce_id: str,
    source: str,
    ce_type: str,
    subject: str,
    time_iso: str,
    sequence: int,
    schema: tuple[str, bytes],
) -> tuple[tuple[str, bytes], ...]:
    return (
        _SPECVERSION,
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", time_iso.encode()),
        ("ce_sequence", b"%020d" % sequence),
        schema,
        _CONTENT_TYPE,
    )


def _dt(value: datetime) -> str:
    # Memoised: a cycle's events share `now`, and a job's timestamps repeat across its records;
    # formatting costs ten times a lookup. fold and tzinfo are in the key because equal instants
    # with other offsets (or a DST fold) compare equal but print differently.
    key = (value, value.tzinfo, value.fold)
    text = _DT_CACHE.get(key)
    if text is None:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every datetime must be timezone-aware")
        text = value.isoformat()  # twice as fast as isoformat(timespec=...): keyword parsing
        if not value.microsecond:
            text = f"{text[:19]}.000000{text[19:]}"  # one fixed width
        if len(_DT_CACHE) >= _DT_CACHE_SIZE:
            _DT_CACHE.clear()
        _DT_CACHE[key] = text
    return text


def _opt_dt(value: datetime | None) -> str | None:
    return None if value is None else _dt(value)


def _epoch_us(value: datetime) -> int:
    delta = value - _EPOCH
    return max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _item(item: TaskItemProgress) -> dict[str, Any]:
    return {
        "itemName": item.item_name,
        "progress": _num(item.progress),
        "progressMessage": item.progress_message,
        "lastProgressUpdate": _dt(item.last_progress_update),
    }


def _task(task: TaskProgress) -> dict[str, Any]:
    return {
        "taskType": task.task_type,
        "taskState": task.task_state,
        "numProcessed": task.num_processed,
        "numProcessing": task.num_processing,
        "numPending": task.num_pending,
        "progress": _num(task.progress),
        "progressMessage": task.progress_message,
        "lastProgressUpdate": _dt(task.last_progress_update),
        "items": [_item(i) for i in task.items],
    }


def _status(status: JobStatus) -> dict[str, Any]:
    return {
        "state": status.state,
        "progress": status.progress,
        "progressMessage": status.progress_message,
        "lastProgressUpdate": _dt(status.last_progress_update),
        "totalSize": status.total_size,
        "taskProgress": [_task(t) for t in status.task_progress],
    }


def _tree(tree: XmlTree) -> list[Any]:
    return [[name, value if isinstance(value, str) else _tree(value)] for name, value in tree]


def _snapshot(job: JobSnapshot) -> dict[str, Any]:
    sub = job.sub_job
    return {
        "companyHandle": job.company_handle,
        "jobHandle": job.job_handle,
        "name": job.name,
        "originalName": job.original_name,
        "type": job.type,
        "submitUserEmail": job.submit_user_email,
        "locale": job.locale,
        "description": job.description,
        "serverName": job.server_name,
        "startDate": _dt(job.start_date),
        "triggerTime": _opt_dt(job.trigger_time),
        "status": _status(job.status),
        "subJob": None if sub is None else {"element": sub.element, "fields": _tree(sub.fields)},
    }


def _counts(counts: OutcomeCounts) -> dict[str, int]:
    return {
        "fileSuccess": counts.file_success,
        "fileError": counts.file_error,
        "fileWarning": counts.file_warning,
        "fileDuplicate": counts.file_duplicate,
        "fileUpdate": counts.file_update,
        "totalFile": counts.total_file,
        "transferSuccess": counts.transfer_success,
        "transferError": counts.transfer_error,
        "transferWarning": counts.transfer_warning,
    }


def _tracked(t: TrackedJob) -> dict[str, Any]:
    published = t.last_progress_status
    return {
        "company": t.snapshot.company_handle,
        "snapshot": _snapshot(t.snapshot),
        "sequence": t.sequence,
        "lastSeenAt": _dt(t.last_seen_at),
        # null: the same as snapshot.status (nearly always; saves a third of the record)
        "lastProgressStatus": None
        if published is t.snapshot.status or published == t.snapshot.status
        else _status(published),
        "lastProgressAt": _dt(t.last_progress_at),
        "lastMovedAt": _dt(t.last_moved_at),
        "stalled": t.stalled,
        "vanishedAt": _opt_dt(t.vanished_at),
        "logAttempts": t.log_attempts,
        "vanishedAfterGap": t.vanished_after_gap,
    }


def _observed(e: JobObserved, out: dict[str, Any]) -> None:
    out["snapshot"] = _snapshot(e.snapshot)
    out["seenAfterStart"] = e.seen_after_start


def _state_changed(e: JobStateChanged, out: dict[str, Any]) -> None:
    out["from"] = e.from_state
    out["to"] = e.to_state
    out["status"] = _status(e.status)
    out["mayHaveSkipped"] = e.may_have_skipped


def _progress(e: JobProgress, out: dict[str, Any]) -> None:
    out["status"] = _status(e.status)
    out["rate"] = e.rate
    out["eta"] = _opt_dt(e.eta)


def _completed(e: JobCompleted, out: dict[str, Any]) -> None:
    out["outcome"] = e.outcome.value
    out["counts"] = None if e.counts is None else _counts(e.counts)
    out["logType"] = e.log_type
    out["endedAt"] = _opt_dt(e.ended_at)
    out["logAttempts"] = e.log_attempts
    out["lastStatus"] = _status(e.last_status)
    out["mayHaveSkipped"] = e.may_have_skipped


def _stall(e: JobStalled | JobRecovered, out: dict[str, Any]) -> None:
    out["status"] = _status(e.status)
    out["stalledForS"] = e.stalled_for_s


_EVENT_FIELDS: dict[type[Any], Callable[[Any, dict[str, Any]], None]] = {
    JobObserved: _observed,
    JobStateChanged: _state_changed,
    JobProgress: _progress,
    JobCompleted: _completed,
    JobStalled: _stall,
    JobRecovered: _stall,
}


# --------------------------------------------------------------------------------------------
# JSON → values (checkpoint restore)
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
        return math.nan  # written for a non-finite value (see module docstring)
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


def _tree_from(raw: list[Any]) -> XmlTree:
    tree: list[tuple[str, str | XmlTree]] = []
    for name, value in raw:
        tree.append((_as(name, str), value if isinstance(value, str) else _tree_from(value)))
    return tuple(tree)


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
    )
