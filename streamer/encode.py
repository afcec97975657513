"""Job events, heartbeats and notifications → Kafka records: topics, keys, CloudEvents headers.

Pure: no I/O besides reading the packaged JSON Schemas on request, no clock. The JSON values are
written by :mod:`streamer.jsontext` (compact UTF-8, camelCase keys, ISO-8601 datetimes with
microseconds and offset); checkpoint records are built by :mod:`streamer.checkpoint` with the
headers made here. Rules:

* Headers follow CloudEvents 1.0 **binary content mode** for Kafka: ``ce_specversion``, ``ce_id``,
  ``ce_source``, ``ce_type``, ``ce_subject``, ``ce_time``, ``ce_sequence`` (zero-padded to 20
  digits so that it sorts as text), ``ce_dataschema`` (the ``$id`` of the value's JSON Schema) and
  ``content-type``. Binary mode is the one in which a null value can be a compaction tombstone.
* Job events are keyed by ``jobHandle``: ``job.progress`` goes to the progress topic, every other
  job event to the state topic. Ids are ``<jobHandle>:<sequence>``, so a cycle regenerated after a
  crash before commit carries the same ids.
* Tombstones carry no headers: they are deletion markers, not events.
* Heartbeats and notifications are keyed by company handle; their ``ce_id`` is built from the
  company, the kind and the time, their ``ce_sequence`` is the time in microseconds since the epoch.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamer.jsontext import compact_json, datetime_text, event_json
from streamer.model import Heartbeat, JobEvent, JobProgress, event_type

__all__ = [
    "SCHEMA_IDS",
    "Record",
    "TopicNames",
    "cloudevent_headers",
    "decode_event_value",
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
        "streamer.ledger",
    )
}

_SPECVERSION = ("ce_specversion", b"1.0")
_CONTENT_TYPE = ("content-type", b"application/json")
_SCHEMA_HEADERS = {name: ("ce_dataschema", sid.encode()) for name, sid in SCHEMA_IDS.items()}
_KIND = re.compile(r"[a-z][a-z0-9_]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Kafka topic names (defaults use the prefix ``ips``)."""

    state: str = "ips.jobs.state"
    progress: str = "ips.jobs.progress"
    latest: str = "ips.jobs.latest"
    heartbeat: str = "ips.streamer.heartbeat"
    notifications: str = "ips.streamer.notifications"
    #: Private: the streamer's own checkpoint, compacted, one partition per shard.
    checkpoint: str = "ips.streamer.checkpoint"
    #: Private: carries no records; its partitions are the shards the instances' group shares.
    shards: str = "ips.streamer.shards"

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
            checkpoint=f"{prefix}.streamer.checkpoint",
            shards=f"{prefix}.streamer.shards",
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
    observed_at = datetime_text(event.observed_at)
    handle = event.job_handle
    return Record(
        topic=topics.progress if isinstance(event, JobProgress) else topics.state,
        key=handle.encode(),
        value=event_json(event, kind, observed_at).encode(),
        headers=cloudevent_headers(
            event.event_id, source, kind, handle, observed_at, event.sequence, kind
        ),
    )


def encode_tombstone(job_handle: str, *, topics: TopicNames) -> Record:
    """The tombstone that removes a completed job from the compacted ``latest`` topic."""
    return Record(topic=topics.latest, key=job_handle.encode(), value=None, headers=())


def encode_heartbeat(hb: Heartbeat, *, source: str, topics: TopicNames) -> Record:
    """A per-company heartbeat record (key: company handle)."""
    polled_at = datetime_text(hb.polled_at)
    event_id = f"{hb.company_handle}:heartbeat:{polled_at}"
    value = {
        "eventId": event_id,
        "type": "streamer.heartbeat",
        "companyHandle": hb.company_handle,
        "polledAt": polled_at,
        "ok": hb.ok,
        "latencyS": hb.latency_s,
        "activeJobs": hb.active_jobs,
        "lastSuccessAt": None if hb.last_success_at is None else datetime_text(hb.last_success_at),
        "error": hb.error,
    }
    return Record(
        topic=topics.heartbeat,
        key=hb.company_handle.encode(),
        value=compact_json(value).encode(),
        headers=cloudevent_headers(
            event_id,
            source,
            "streamer.heartbeat",
            hb.company_handle,
            polled_at,
            _epoch_us(hb.polled_at),
            "streamer.heartbeat",
        ),
    )


def encode_notification(
    kind: str,
    company_handle: str,
    message: str,
    at: datetime,
    *,
    source: str,
    topics: TopicNames,
    job: tuple[str, str] | None = None,
) -> Record:
    """An operational notification (``kind`` is snake_case, e.g. ``company_unreachable``).

    ``job`` is ``(topic, jobHandle)`` of the record a ``record_rejected`` dead letter stands for;
    it is part of the event id, so several dead letters of one cycle keep distinct ids.
    """
    if not _KIND.fullmatch(kind):
        raise ValueError(f"notification kind must be snake_case: {kind!r}")
    at_iso = datetime_text(at)
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
    if job is not None:
        event_id = value["eventId"] = f"{event_id}:{job[0]}:{job[1]}"
        value["topic"], value["jobHandle"] = job
    return Record(
        topic=topics.notifications,
        key=company_handle.encode(),
        value=compact_json(value).encode(),
        headers=cloudevent_headers(
            event_id,
            source,
            ce_type,
            company_handle,
            at_iso,
            _epoch_us(at),
            "streamer.notification",
        ),
    )


def decode_event_value(value: bytes) -> dict[str, object]:
    """Parse a record value (for consumers and tests)."""
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError("record value is not a JSON object")
    return parsed


def cloudevent_headers(
    ce_id: str,
    source: str,
    ce_type: str,
    subject: str,
    time_iso: str,
    sequence: int,
    schema: str,
) -> tuple[tuple[str, bytes], ...]:
    """The CloudEvents binary-mode headers of a record; ``schema`` is a :data:`SCHEMA_IDS` key."""
    return (
        _SPECVERSION,
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", time_iso.encode()),
        ("ce_sequence", b"%020d" % sequence),
        _SCHEMA_HEADERS[schema],
        _CONTENT_TYPE,
    )


def _epoch_us(value: datetime) -> int:
    delta = value - _EPOCH
    return max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
