"""Job events, heartbeats and notifications → Kafka records: topics, keys, CloudEvents headers.

Pure: no I/O besides reading the packaged JSON Schemas on request, no clock. The JSON values are
written by :mod:`streamer.jsontext` (compact UTF-8, camelCase keys, ISO-8601 datetimes with
microseconds and offset); checkpoint records are built by :mod:`streamer.checkpoint` with the
headers made here. Rules:

* Headers follow CloudEvents 1.0 **binary content mode** for Kafka: ``ce_specversion``, ``ce_id``,
  ``ce_source``, ``ce_type``, ``ce_subject``, ``ce_time``, ``ce_sequence`` (zero-padded to 20
  digits so that it sorts as text), ``ce_dataschema`` and ``content-type``. Binary mode is the one
  in which a null value can be a compaction tombstone.
* Contract v2: ``ce_type`` (and the value's ``type``) is the short type (``job.completed``, the
  name :func:`streamer.model.event_type` and the metrics use) under :data:`EVENT_TYPE_PREFIX`;
  ``ce_dataschema`` is :attr:`Contract.schema_base_url` plus the schema file name
  (``job.completed.v2.json``): the base is configuration, handed in as a :class:`Contract`.
* ``ce_source`` scopes ``ce_sequence`` (the CloudEvents sequence extension: one ordered sequence
  per source). The caller gives the company's source (``<endpoint>/companies/<company>``); a job's
  events get ``<company source>/jobs/<percent-encoded jobHandle>`` and the job's own sequence
  (1, 2, ...), heartbeats ``<company source>/heartbeat`` and notifications
  ``<company source>/notifications``, both with the event time in microseconds since the epoch.
* Job events are keyed by ``jobHandle``: ``job.progress`` goes to the progress topic, every other
  job event to the state topic. Ids are ``<jobHandle>:<sequence>``, so a cycle regenerated after a
  crash before commit carries the same ids.
* Tombstones carry no headers: they are deletion markers, not events.
* Heartbeats and notifications are keyed by company handle; their ``ce_id`` is built from the
  company, the kind and the time.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamer.jsontext import compact_json, datetime_text, event_json
from streamer.model import Heartbeat, JobEvent, JobProgress, event_type

__all__ = [
    "DEFAULT_CONTRACT",
    "EVENT_TYPE_PREFIX",
    "SCHEMA_IDS",
    "SCHEMA_ID_BASE",
    "SCHEMA_VERSION",
    "Contract",
    "Record",
    "TopicNames",
    "cloudevent_headers",
    "decode_event_value",
    "encode_event",
    "encode_heartbeat",
    "encode_notification",
    "encode_tombstone",
    "full_type",
    "job_source",
    "load_schema",
    "schema_file",
    "schema_files",
    "schema_text",
    "short_type",
]

#: What every ``ce_type`` (and value ``type``) starts with: the project's domain, reversed.
EVENT_TYPE_PREFIX = "dev.ips-job-streamer."
#: The contract version the streamer produces (its schema files are ``<type>.v2.json``).
SCHEMA_VERSION = 2
#: Where the schemas' ``$id`` live: their identity, not necessarily where they are served.
SCHEMA_ID_BASE = "https://ips-job-streamer.dev/schemas/"
#: The short type of every value that has a JSON Schema (``streamer.notification`` covers every
#: ``streamer.notification.<kind>``; ``streamer.ledger`` is the private checkpoint's).
_SHORT_TYPES = (
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
#: ``$id`` of each value type's current (v2) JSON Schema, by short type.
SCHEMA_IDS: dict[str, str] = {
    name: f"{SCHEMA_ID_BASE}{name}.v{SCHEMA_VERSION}.json" for name in _SHORT_TYPES
}

_SPECVERSION = ("ce_specversion", b"1.0")
_CONTENT_TYPE = ("content-type", b"application/json")
_KIND = re.compile(r"[a-z][a-z0-9_]*")
_SCHEMA_FILE = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+\.v[0-9]+\.json")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Contract:
    """What the records say about their contract besides topics and sources.

    ``schema_base_url``: the URL under which the schema files are published, ending in ``/``;
    ``ce_dataschema`` is it plus the file name. The daemon's default is its own ``/schemas/``
    endpoint (:mod:`streamer.service` builds it); here the default is :data:`SCHEMA_ID_BASE`.
    """

    schema_base_url: str = SCHEMA_ID_BASE

    def __post_init__(self) -> None:
        if not self.schema_base_url.endswith("/"):
            raise ValueError(f"schema base URL must end with '/': {self.schema_base_url!r}")

    def dataschema(self, short: str) -> str:
        """The ``ce_dataschema`` of a short type's current schema."""
        return self.schema_base_url + schema_file(short)


#: The contract of records built without one (tests, tools): schemas named by their ``$id``.
DEFAULT_CONTRACT = Contract()


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


def full_type(short: str) -> str:
    """The ``ce_type`` of a short type (``job.completed``): prefixed with the project domain."""
    return EVENT_TYPE_PREFIX + short


def short_type(ce_type: str) -> str:
    """The short type of a ``ce_type``, v2 (prefixed) or v1 (already short)."""
    return ce_type[len(EVENT_TYPE_PREFIX) :] if ce_type.startswith(EVENT_TYPE_PREFIX) else ce_type


def job_source(company_source: str, job_handle: str) -> str:
    """A job's ``ce_source``: its company's source, ``/jobs/`` and the percent-encoded handle."""
    return f"{company_source}/jobs/{urllib.parse.quote(job_handle, safe='')}"


def schema_file(short: str, version: int = SCHEMA_VERSION) -> str:
    """The file name of a short type's schema: ``job.completed.v2.json``."""
    if short not in SCHEMA_IDS:
        raise KeyError(f"no JSON Schema for type {short!r}")
    return f"{short}.v{version}.json"


def load_schema(event_type: str, version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The packaged JSON Schema (a fresh dict) of a short type such as ``job.observed``;
    ``version=1`` gives the v1 schema (what records written before contract v2 follow)."""
    text = schema_text(schema_file(short_type(event_type), version))
    if text is None:
        raise KeyError(f"no v{version} JSON Schema for type {event_type!r}")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def schema_files() -> tuple[str, ...]:
    """The file names of every packaged schema, every version, sorted."""
    folder = importlib.resources.files("streamer.schemas")
    return tuple(sorted(p.name for p in folder.iterdir() if _SCHEMA_FILE.fullmatch(p.name)))


@functools.cache
def schema_text(name: str) -> str | None:
    """The text of a packaged schema file (a name from :func:`schema_files`), else None."""
    if name not in schema_files():  # only listed names: no path reaches the file system
        return None
    return importlib.resources.files("streamer.schemas").joinpath(name).read_text("utf-8")


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def encode_event(
    event: JobEvent,
    *,
    source: str,
    topics: TopicNames,
    contract: Contract = DEFAULT_CONTRACT,
) -> Record:
    """A job event as a record on the state or progress topic (``source``: the company's)."""
    kind = event_type(event)
    observed_at = datetime_text(event.observed_at)
    handle = event.job_handle
    return Record(
        topic=topics.progress if isinstance(event, JobProgress) else topics.state,
        key=handle.encode(),
        value=event_json(event, _FULL_TYPES[kind], observed_at).encode(),
        headers=cloudevent_headers(
            event.event_id,
            job_source(source, handle),
            kind,
            handle,
            observed_at,
            event.sequence,
            kind,
            contract=contract,
        ),
    )


def encode_tombstone(job_handle: str, *, topics: TopicNames) -> Record:
    """The tombstone that removes a completed job from the compacted ``latest`` topic."""
    return Record(topic=topics.latest, key=job_handle.encode(), value=None, headers=())


def encode_heartbeat(
    hb: Heartbeat,
    *,
    source: str,
    topics: TopicNames,
    contract: Contract = DEFAULT_CONTRACT,
) -> Record:
    """A per-company heartbeat record (key: company handle; ``source``: the company's)."""
    polled_at = datetime_text(hb.polled_at)
    event_id = f"{hb.company_handle}:heartbeat:{polled_at}"
    value = {
        "eventId": event_id,
        "type": _FULL_TYPES["streamer.heartbeat"],
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
            f"{source}/heartbeat",
            "streamer.heartbeat",
            hb.company_handle,
            polled_at,
            _epoch_us(hb.polled_at),
            "streamer.heartbeat",
            contract=contract,
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
    contract: Contract = DEFAULT_CONTRACT,
) -> Record:
    """An operational notification (``kind`` is snake_case, e.g. ``company_unreachable``;
    ``source``: the company's).

    ``job`` is ``(topic, jobHandle)`` of the record a ``record_rejected`` dead letter stands for;
    it is part of the event id, so several dead letters of one cycle keep distinct ids.
    """
    if not _KIND.fullmatch(kind):
        raise ValueError(f"notification kind must be snake_case: {kind!r}")
    at_iso = datetime_text(at)
    short = f"streamer.notification.{kind}"
    event_id = f"{company_handle}:{kind}:{at_iso}"
    value = {
        "eventId": event_id,
        "type": full_type(short),
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
            f"{source}/notifications",
            short,
            company_handle,
            at_iso,
            _epoch_us(at),
            "streamer.notification",
            contract=contract,
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
    short: str,
    subject: str,
    time_iso: str,
    sequence: int,
    schema: str,
    *,
    contract: Contract = DEFAULT_CONTRACT,
) -> tuple[tuple[str, bytes], ...]:
    """The CloudEvents binary-mode headers of a record: ``short`` is its short type (``ce_type``
    gets :data:`EVENT_TYPE_PREFIX`), ``schema`` the :data:`SCHEMA_IDS` key of its value."""
    return (
        _SPECVERSION,
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", _type_header(short)),
        ("ce_subject", subject.encode()),
        ("ce_time", time_iso.encode()),
        ("ce_sequence", b"%020d" % sequence),
        _dataschema_header(contract.schema_base_url, schema),
        _CONTENT_TYPE,
    )


#: The ``ce_type`` of every short type without a variable part (notifications have one).
_FULL_TYPES = {name: full_type(name) for name in _SHORT_TYPES}


@functools.lru_cache(maxsize=256)
def _type_header(short: str) -> bytes:
    return full_type(short).encode()


@functools.lru_cache(maxsize=64)
def _dataschema_header(base: str, schema: str) -> tuple[str, bytes]:
    return ("ce_dataschema", f"{base}{schema_file(schema)}".encode())


def _epoch_us(value: datetime) -> int:
    delta = value - _EPOCH
    return max(0, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
