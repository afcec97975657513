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
_UTC_CACHE: dict[datetime, str] = {}
_TREE_CACHE: dict[XmlTree, str] = {}
_TREE_CACHE_SIZE = 4096
_STATUS_CACHE: dict[int, tuple[JobStatus, str]] = {}
_STATUS_CACHE_SIZE = 4096
#: The string encoder the stdlib JSON encoder itself uses with ``ensure_ascii=False``.
_str: Callable[[str], str] = json.encoder.encode_basestring
_float_repr = float.__repr__
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
    event_id = event.event_id
    handle = event.job_handle
    value = (
        f'{{"eventId":{_str(event_id)}'
        f',"type":{_str(kind)}'
        f',"companyHandle":{_str(event.company_handle)}'
        f',"jobHandle":{_str(handle)}'
        f',"sequence":{event.sequence}'
        f',"observedAt":"{observed_at}"'
        f"{_EVENT_FIELDS[type(event)](event)}}}"
    )
    return Record(
        topic=topics.progress if isinstance(event, JobProgress) else topics.state,
        key=handle.encode(),
        value=value.encode(),
        headers=_headers(
            event_id, source, kind, handle, observed_at, event.sequence, _SCHEMA_HEADERS[kind]
        ),
    )


def encode_checkpoint(
    tracked: TrackedJob, *, topics: TopicNames, source: str = CHECKPOINT_SOURCE
) -> Record:
    """The compacted ``latest`` record of a tracked job (key ``jobHandle``)."""
    value = _tracked(tracked).encode()
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
# Values → JSON text
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
    # with other offsets (or a DST fold) compare equal but print differently; in UTC (nearly
    # every value) neither changes the text, and the value alone is the key.
    if value.tzinfo is UTC:
        text = _UTC_CACHE.get(value)
        if text is None:
            text = _dt_text(value)
            if len(_UTC_CACHE) >= _DT_CACHE_SIZE:
                _UTC_CACHE.clear()
            _UTC_CACHE[value] = text
        return text
    key = (value, value.tzinfo, value.fold)
    text = _DT_CACHE.get(key)
    if text is None:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every datetime must be timezone-aware")
        text = _dt_text(value)
        if len(_DT_CACHE) >= _DT_CACHE_SIZE:
            _DT_CACHE.clear()
        _DT_CACHE[key] = text
    return text


def _dt_text(value: datetime) -> str:
    text = value.isoformat()  # twice as fast as isoformat(timespec=...): keyword parsing
    if not value.microsecond:
        text = f"{text[:19]}.000000{text[19:]}"  # one fixed width
    return text


def _opt_dt(value: datetime | None) -> str | None:
    return None if value is None else _dt(value)


def _epoch_us(value: datetime) -> int:
    delta = value - _EPOCH
    return max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


# The job values are written as JSON text directly, field by field, in exactly the form
# ``_JSON.encode`` gives the equivalent dicts (tests compare both on generated values): strings
# through the stdlib's own string encoder, ints (the model's int fields hold ints, never bools)
# and finite floats by their ``repr``, datetimes (ASCII digits and punctuation only) in quotes.
# That is three times faster than building dicts and encoding them, which matters when a cycle
# of a 10,000-job company writes 2,000 records.


def _float_json(value: float) -> str:
    """A float as the stdlib encoder writes it; NaN and infinities are refused like it."""
    if type(value) is not float:
        return _JSON.encode(value)  # an int, for example: written as the encoder would
    if not math.isfinite(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return _float_repr(value)


def _num_json(value: float) -> str:
    """A task progress value: non-finite ones become ``null`` (JSON has no NaN)."""
    return _float_json(value) if math.isfinite(value) else "null"


def _opt_float_json(value: float | None) -> str:
    return "null" if value is None else _float_json(value)


def _opt_str_json(value: str | None) -> str:
    return "null" if value is None else _str(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _opt_time(value: datetime | None) -> str:
    return "null" if value is None else f'"{_dt(value)}"'


def _item(item: TaskItemProgress) -> str:
    return (
        f'{{"itemName":{_str(item.item_name)}'
        f',"progress":{_num_json(item.progress)}'
        f',"progressMessage":{_str(item.progress_message)}'
        f',"lastProgressUpdate":"{_dt(item.last_progress_update)}"}}'
    )


def _task(task: TaskProgress) -> str:
    return (
        f'{{"taskType":{_str(task.task_type)}'
        f',"taskState":{_str(task.task_state)}'
        f',"numProcessed":{task.num_processed}'
        f',"numProcessing":{task.num_processing}'
        f',"numPending":{task.num_pending}'
        f',"progress":{_num_json(task.progress)}'
        f',"progressMessage":{_str(task.progress_message)}'
        f',"lastProgressUpdate":"{_dt(task.last_progress_update)}"'
        f',"items":[{",".join([_item(i) for i in task.items])}]}}'
    )


def _status(status: JobStatus) -> str:
    # A changed job's status is written twice per cycle (its event and its checkpoint): the
    # same object both times, so its text is remembered by identity for a while.
    hit = _STATUS_CACHE.get(id(status))
    if hit is not None and hit[0] is status:
        return hit[1]
    text = _status_text(status)
    if len(_STATUS_CACHE) >= _STATUS_CACHE_SIZE:
        _STATUS_CACHE.clear()
    _STATUS_CACHE[id(status)] = (status, text)  # holds the status: its id stays its own
    return text


def _status_text(status: JobStatus) -> str:
    return (
        f'{{"state":{_str(status.state)}'
        f',"progress":{status.progress}'
        f',"progressMessage":{_str(status.progress_message)}'
        f',"lastProgressUpdate":"{_dt(status.last_progress_update)}"'
        f',"totalSize":{status.total_size}'
        f',"taskProgress":[{",".join([_task(t) for t in status.task_progress])}]}}'
    )


def _tree(tree: XmlTree) -> str:
    # Sub-job trees repeat across jobs (the decoder shares equal ones): memoised by value.
    text = _TREE_CACHE.get(tree)
    if text is None:
        pairs = [
            f"[{_str(name)},{_str(value) if isinstance(value, str) else _tree(value)}]"
            for name, value in tree
        ]
        text = f"[{','.join(pairs)}]"
        if len(_TREE_CACHE) >= _TREE_CACHE_SIZE:
            _TREE_CACHE.clear()
        _TREE_CACHE[tree] = text
    return text


def _sub_job(sub: SubJob | None) -> str:
    if sub is None:
        return "null"
    return f'{{"element":{_str(sub.element)},"fields":{_tree(sub.fields)}}}'


def _snapshot(job: JobSnapshot) -> str:
    return (
        f'{{"companyHandle":{_str(job.company_handle)}'
        f',"jobHandle":{_str(job.job_handle)}'
        f',"name":{_str(job.name)}'
        f',"originalName":{_str(job.original_name)}'
        f',"type":{_str(job.type)}'
        f',"submitUserEmail":{_str(job.submit_user_email)}'
        f',"locale":{_opt_str_json(job.locale)}'
        f',"description":{_opt_str_json(job.description)}'
        f',"serverName":{_str(job.server_name)}'
        f',"startDate":"{_dt(job.start_date)}"'
        f',"triggerTime":{_opt_time(job.trigger_time)}'
        f',"status":{_status(job.status)}'
        f',"subJob":{_sub_job(job.sub_job)}}}'
    )


def _counts(counts: OutcomeCounts | None) -> str:
    if counts is None:
        return "null"
    return (
        f'{{"fileSuccess":{counts.file_success}'
        f',"fileError":{counts.file_error}'
        f',"fileWarning":{counts.file_warning}'
        f',"fileDuplicate":{counts.file_duplicate}'
        f',"fileUpdate":{counts.file_update}'
        f',"totalFile":{counts.total_file}'
        f',"transferSuccess":{counts.transfer_success}'
        f',"transferError":{counts.transfer_error}'
        f',"transferWarning":{counts.transfer_warning}}}'
    )


def _tracked(t: TrackedJob) -> str:
    published = t.last_progress_status
    snapshot = t.snapshot
    # null: the same as snapshot.status (nearly always; saves a third of the record)
    same = published is snapshot.status or published == snapshot.status
    return (
        f'{{"company":{_str(snapshot.company_handle)}'
        f',"snapshot":{_snapshot(snapshot)}'
        f',"sequence":{t.sequence}'
        f',"lastSeenAt":"{_dt(t.last_seen_at)}"'
        f',"lastProgressStatus":{"null" if same else _status(published)}'
        f',"lastProgressAt":"{_dt(t.last_progress_at)}"'
        f',"lastMovedAt":"{_dt(t.last_moved_at)}"'
        f',"stalled":{_bool(t.stalled)}'
        f',"vanishedAt":{_opt_time(t.vanished_at)}'
        f',"logAttempts":{t.log_attempts}'
        f',"vanishedAfterGap":{_bool(t.vanished_after_gap)}}}'
    )


def _observed(e: JobObserved) -> str:
    return f',"snapshot":{_snapshot(e.snapshot)},"seenAfterStart":{_bool(e.seen_after_start)}'


def _state_changed(e: JobStateChanged) -> str:
    return (
        f',"from":{_str(e.from_state)}'
        f',"to":{_str(e.to_state)}'
        f',"status":{_status(e.status)}'
        f',"mayHaveSkipped":{_bool(e.may_have_skipped)}'
    )


def _progress(e: JobProgress) -> str:
    return (
        f',"status":{_status(e.status)},"rate":{_opt_float_json(e.rate)},"eta":{_opt_time(e.eta)}'
    )


def _completed(e: JobCompleted) -> str:
    return (
        f',"outcome":{_str(e.outcome.value)}'
        f',"counts":{_counts(e.counts)}'
        f',"logType":{_opt_str_json(e.log_type)}'
        f',"endedAt":{_opt_time(e.ended_at)}'
        f',"logAttempts":{e.log_attempts}'
        f',"lastStatus":{_status(e.last_status)}'
        f',"mayHaveSkipped":{_bool(e.may_have_skipped)}'
    )


def _stall(e: JobStalled | JobRecovered) -> str:
    return f',"status":{_status(e.status)},"stalledForS":{_float_json(e.stalled_for_s)}'


_EVENT_FIELDS: dict[type[Any], Callable[[Any], str]] = {
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
