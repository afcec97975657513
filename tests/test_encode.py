"""Records on the wire: topics, keys, JSON values, CloudEvents headers and JSON Schemas
(contract v2; the v1 schemas stay shipped for the records written before it).

The checkpoint codec has its own tests in test_checkpoint.py, the JSON writer in
test_encode_json.py.
"""

from __future__ import annotations

import functools
import json
import math
import urllib.parse
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streamer.checkpoint import decode_checkpoint, encode_checkpoint, encode_ledger
from streamer.diff import DiffSettings, diff
from streamer.encode import (
    DEFAULT_CONTRACT,
    EVENT_TYPE_PREFIX,
    SCHEMA_IDS,
    Contract,
    Record,
    TopicNames,
    decode_event_value,
    encode_event,
    encode_heartbeat,
    encode_notification,
    encode_tombstone,
    full_type,
    job_source,
    load_schema,
    schema_files,
    schema_text,
    short_type,
)
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
    Outcome,
    OutcomeCounts,
    Snapshot,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    TrackedJob,
    event_type,
)
from streamer.reconcile import CompanyLedger
from tests.strategies import heartbeats, histories, job_events, texts
from tests.test_encode_json import deep_job, deep_tree

T0 = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)
SOURCE = "https://s7sps1apissl.scene7.com/scene7/services/IpsApiService/companies/c%7C1"
#: The source of job j|1's records: one ordered sequence per job.
JOB_SOURCE = SOURCE + "/jobs/j%7C1"
TOPICS = TopicNames()
CE_HEADERS = (
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_subject",
    "ce_time",
    "ce_sequence",
    "ce_dataschema",
    "content-type",
)

STATUS = JobStatus(
    state="Running",
    progress=40,
    progress_message="Optimizing files",
    last_progress_update=T0,
    total_size=2048,
    task_progress=(
        TaskProgress(
            "com.scene7.upload.UploadAsyncTaskMonitor",
            "Processing",
            3,
            1,
            6,
            0.4,
            "",
            T0,
            (TaskItemProgress("a.jpg", 1.0, "done", T0),),
        ),
    ),
)
JOB = JobSnapshot(
    company_handle="c|1",
    job_handle="j|1",
    name="upload_2026-11-28-12:00:00.000",
    original_name="upload",
    type="UrlUpload",
    submit_user_email="ops@example.com",
    locale="en-US",
    description=None,
    server_name="saastex_100_52",
    start_date=T0,
    trigger_time=None,
    status=STATUS,
    sub_job=SubJob(
        "uploadUrlsJob",
        (("urlArray", (("items", (("sourceUrl", "http://x/a.jpg"), ("destPath", "a"))),)),),
    ),
)


@functools.cache
def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(
        load_schema(kind), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def headers(record: Record) -> dict[str, str]:
    names = [name for name, _ in record.headers]
    assert len(names) == len(set(names)), "a header is repeated"
    return {name: value.decode() for name, value in record.headers}


def check_cloudevent(record: Record, kind: str, subject: str, sequence: int) -> dict[str, Any]:
    """Assert the CloudEvents binary-mode headers and schema validity; return the value."""
    assert record.value is not None
    value = decode_event_value(record.value)
    validator(kind).validate(value)
    h = headers(record)
    assert tuple(h) == CE_HEADERS
    assert h["ce_specversion"] == "1.0"
    assert h["ce_type"] == value.get("type", full_type(kind))
    assert h["ce_type"].startswith(EVENT_TYPE_PREFIX)
    assert short_type(h["ce_type"]).startswith(kind)
    assert h["ce_subject"] == subject
    assert record.key == subject.encode()
    assert len(h["ce_sequence"]) == 20
    assert int(h["ce_sequence"]) == sequence
    assert h["ce_dataschema"] == SCHEMA_IDS[kind] == DEFAULT_CONTRACT.dataschema(kind)
    assert h["content-type"] == "application/json"
    assert datetime.fromisoformat(h["ce_time"]).tzinfo is not None
    if "eventId" in value:
        assert h["ce_id"] == value["eventId"]
    return value


# -- job events ------------------------------------------------------------------------------


def test_state_changed_record() -> None:
    """job.state_changed: state topic, key jobHandle, compact camelCase JSON, CE headers."""
    event = JobStateChanged("c|1", "j|1", 7, T0, "New", "Running", STATUS, True)
    record = encode_event(event, source=SOURCE, topics=TOPICS)
    assert record.topic == "ips.jobs.state"
    assert record.key == b"j|1"
    assert record.value is not None
    assert b" " not in record.value.replace(b"Optimizing files", b"")
    assert decode_event_value(record.value) == {
        "eventId": "j|1:7",
        "type": "dev.ips-job-streamer.job.state_changed",
        "companyHandle": "c|1",
        "jobHandle": "j|1",
        "sequence": 7,
        "observedAt": "2026-11-28T12:00:00.123000+00:00",
        "from": "New",
        "to": "Running",
        "mayHaveSkipped": True,
        "status": {
            "state": "Running",
            "progress": 40,
            "progressMessage": "Optimizing files",
            "lastProgressUpdate": "2026-11-28T12:00:00.123000+00:00",
            "totalSize": 2048,
            "taskProgress": [
                {
                    "taskType": "com.scene7.upload.UploadAsyncTaskMonitor",
                    "taskState": "Processing",
                    "numProcessed": 3,
                    "numProcessing": 1,
                    "numPending": 6,
                    "progress": 0.4,
                    "progressMessage": "",
                    "lastProgressUpdate": "2026-11-28T12:00:00.123000+00:00",
                    "items": [
                        {
                            "itemName": "a.jpg",
                            "progress": 1.0,
                            "progressMessage": "done",
                            "lastProgressUpdate": "2026-11-28T12:00:00.123000+00:00",
                        }
                    ],
                }
            ],
        },
    }
    assert dict(record.headers) == {
        "ce_specversion": b"1.0",
        "ce_id": b"j|1:7",
        "ce_source": JOB_SOURCE.encode(),
        "ce_type": b"dev.ips-job-streamer.job.state_changed",
        "ce_subject": b"j|1",
        "ce_time": b"2026-11-28T12:00:00.123000+00:00",
        "ce_sequence": b"00000000000000000007",
        "ce_dataschema": b"https://ips-job-streamer.dev/schemas/job.state_changed.v2.json",
        "content-type": b"application/json",
    }


def test_observed_carries_the_full_snapshot() -> None:
    """job.observed carries every ActiveJob field; the sub-job tree becomes an object."""
    record = encode_event(JobObserved("c|1", "j|1", 1, T0, JOB, True), source=SOURCE, topics=TOPICS)
    value = check_cloudevent(record, "job.observed", "j|1", 1)
    assert value["seenAfterStart"] is True
    snapshot = value["snapshot"]
    assert snapshot["serverName"] == "saastex_100_52"
    assert (snapshot["description"], snapshot["triggerTime"]) == (None, None)
    assert snapshot["subJob"] == {
        "element": "uploadUrlsJob",
        "fields": {"urlArray": {"items": {"sourceUrl": "http://x/a.jpg", "destPath": "a"}}},
    }


def test_sub_job_repeated_fields_become_arrays() -> None:
    """A sub-job field that occurs several times is one array member, in document order; nested
    elements are objects at any level, an empty one {}."""
    items = tuple(("items", (("sourceUrl", f"http://x/{n}.jpg"),)) for n in "ab")
    tree = (("urlArray", items), ("emailSetting", "All"), ("note", "1"), ("note", "2"), ("e", ()))
    job = replace(JOB, sub_job=SubJob("uploadUrlsJob", tree))
    record = encode_event(JobObserved("c|1", "j|1", 1, T0, job), source=SOURCE, topics=TOPICS)
    value = check_cloudevent(record, "job.observed", "j|1", 1)
    assert value["snapshot"]["subJob"]["fields"] == {
        "urlArray": {"items": [{"sourceUrl": "http://x/a.jpg"}, {"sourceUrl": "http://x/b.jpg"}]},
        "emailSetting": "All",
        "note": ["1", "2"],
        "e": {},
    }
    assert list(value["snapshot"]["subJob"]["fields"]) == ["urlArray", "emailSetting", "note", "e"]


def test_progress_goes_to_the_progress_topic() -> None:
    """job.progress is the only job event on the progress topic; it carries rate and ETA."""
    event = JobProgress("c|1", "j|1", 3, T0, STATUS, rate=0.5, eta=T0 + timedelta(seconds=120))
    record = encode_event(event, source=SOURCE, topics=TopicNames.with_prefix("acme"))
    assert record.topic == "acme.jobs.progress"
    value = check_cloudevent(record, "job.progress", "j|1", 3)
    assert (value["rate"], value["eta"]) == (0.5, "2026-11-28T12:02:00.123000+00:00")


def test_completed_value() -> None:
    """job.completed carries outcome, counts, log type, end time, attempts and last status."""
    event = JobCompleted(
        "c|1",
        "j|1",
        9,
        T0,
        Outcome.COMPLETED_WITH_WARNINGS,
        STATUS,
        OutcomeCounts(file_success=5, file_warning=1, total_file=6),
        "EndUpload",
        T0,
        2,
    )
    value = check_cloudevent(
        encode_event(event, source=SOURCE, topics=TOPICS), "job.completed", "j|1", 9
    )
    assert value["outcome"] == "completed_with_warnings"
    assert value["counts"]["fileWarning"] == 1
    assert (value["logType"], value["logAttempts"]) == ("EndUpload", 2)
    assert value["lastStatus"]["progress"] == 40


@settings(max_examples=200)
@given(job_events(), texts.filter(bool))
def test_every_event_matches_its_schema(event: JobEvent, source: str) -> None:
    """Any job event encodes to a schema-valid value with consistent CloudEvents headers."""
    record = encode_event(event, source=source, topics=TOPICS)
    kind = event_type(event)
    assert record.topic == (TOPICS.progress if kind == "job.progress" else TOPICS.state)
    value = check_cloudevent(record, kind, event.job_handle, event.sequence)
    assert value["observedAt"] == headers(record)["ce_time"]
    assert headers(record)["ce_source"] == job_source(source, event.job_handle)
    assert datetime.fromisoformat(value["observedAt"]) == event.observed_at


def test_datetimes_keep_microseconds_and_offset() -> None:
    """Datetimes are ISO-8601 with microseconds and the original offset."""
    plus2 = datetime(2026, 11, 28, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    record = encode_event(
        JobStateChanged("c|1", "j|1", 2, plus2, "New", "Running", STATUS),
        source=SOURCE,
        topics=TOPICS,
    )
    assert record.value is not None
    assert decode_event_value(record.value)["observedAt"] == "2026-11-28T14:00:00.000000+02:00"


def test_equal_instants_keep_their_own_offsets() -> None:
    """12:00Z and 14:00+02:00 are equal datetimes but each is written with its own offset."""
    plus2 = T0.astimezone(timezone(timedelta(hours=2)))
    assert plus2 == T0
    written = []
    for when in (T0, plus2, T0):
        event = JobStateChanged("c|1", "j|1", 2, when, "New", "Running", STATUS)
        record = encode_event(event, source=SOURCE, topics=TOPICS)
        written.append(headers(record)["ce_time"])
    assert written == [
        "2026-11-28T12:00:00.123000+00:00",
        "2026-11-28T14:00:00.123000+02:00",
        "2026-11-28T12:00:00.123000+00:00",
    ]


def test_naive_datetime_is_refused() -> None:
    """A naive datetime is a bug upstream and is refused rather than guessed."""
    naive = JobStateChanged("c|1", "j|1", 2, datetime(2026, 1, 1), "New", "Running", STATUS)
    with pytest.raises(ValueError, match="naive"):
        encode_event(naive, source=SOURCE, topics=TOPICS)


def test_non_finite_task_progress_becomes_null() -> None:
    """A NaN task progress (possible in xsd:double) is written as null: JSON has no NaN."""
    task = replace(STATUS.task_progress[0], progress=math.nan, items=())
    status = replace(STATUS, task_progress=(task,))
    record = encode_event(JobProgress("c|1", "j|1", 2, T0, status), source=SOURCE, topics=TOPICS)
    value = check_cloudevent(record, "job.progress", "j|1", 2)
    assert value["status"]["taskProgress"][0]["progress"] is None


# -- tombstones ------------------------------------------------------------------------------


def test_tombstone() -> None:
    """A completed job's tombstone: latest topic, its key, a null value."""
    record = encode_tombstone("j|1", topics=TOPICS)
    assert (record.topic, record.key, record.value, record.headers) == (
        "ips.jobs.latest",
        b"j|1",
        None,
        (),
    )


# -- heartbeats and notifications ------------------------------------------------------------


@settings(max_examples=200)
@given(heartbeats)
def test_heartbeat_record(hb: Heartbeat) -> None:
    """Heartbeats are keyed by company, schema-valid, with a deterministic id from company+time."""
    record = encode_heartbeat(hb, source=SOURCE, topics=TOPICS)
    assert record.topic == "ips.streamer.heartbeat"
    epoch_us = (hb.polled_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    value = check_cloudevent(record, "streamer.heartbeat", hb.company_handle, epoch_us)
    assert value["eventId"] == f"{hb.company_handle}:heartbeat:{value['polledAt']}"
    assert headers(record)["ce_source"] == SOURCE + "/heartbeat"
    assert encode_heartbeat(hb, source=SOURCE, topics=TOPICS) == record


def test_notification_record() -> None:
    """Notifications: ce_type dev.ips-job-streamer.streamer.notification.<kind>, schema-valid,
    keyed by company, sourced from the company's notifications."""
    record = encode_notification(
        "company_unreachable", "c|1", "IpsTransportError: timeout", T0, source=SOURCE, topics=TOPICS
    )
    assert record.topic == "ips.streamer.notifications"
    epoch_us = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    value = check_cloudevent(record, "streamer.notification", "c|1", epoch_us)
    assert headers(record)["ce_type"] == (
        "dev.ips-job-streamer.streamer.notification.company_unreachable"
    )
    assert value["type"] == headers(record)["ce_type"]
    assert headers(record)["ce_source"] == SOURCE + "/notifications"
    assert value["kind"] == "company_unreachable"
    assert value["eventId"] == "c|1:company_unreachable:2026-11-28T12:00:00.123000+00:00"


@pytest.mark.parametrize("kind", ["", "Company-Down", "a.b", "1st"])
def test_notification_kind_must_be_snake_case(kind: str) -> None:
    """A notification kind that would make an odd ce_type is refused."""
    with pytest.raises(ValueError, match="snake_case"):
        encode_notification(kind, "c|1", "m", T0, source=SOURCE, topics=TOPICS)


# -- every record of a real cycle ------------------------------------------------------------


@settings(max_examples=50)
@given(histories())
def test_every_record_of_a_history_is_a_valid_cloudevent(
    history: tuple[str, list[tuple[datetime, Snapshot]]],
) -> None:
    """Events and checkpoints produced by diffing a history all carry valid CloudEvents."""
    state: dict[str, TrackedJob] = {}
    prev_at = None
    for now, snapshot in history[1]:
        result = diff(state, snapshot, now, DiffSettings(stall_after_s=10), prev_at)
        for event in result.events:
            record = encode_event(event, source=SOURCE, topics=TOPICS)
            check_cloudevent(record, event_type(event), event.job_handle, event.sequence)
        for handle in result.changed:
            tracked = result.state[handle]
            record = encode_checkpoint(tracked, topics=TOPICS, source=SOURCE)
            check_cloudevent(record, "job.latest", handle, tracked.sequence)
            assert headers(record)["ce_source"] == job_source(SOURCE, handle)
            assert record.value is not None
            assert decode_checkpoint(record.value) == tracked
        state, prev_at = result.state, now


# -- topics and schemas ----------------------------------------------------------------------


def test_topic_names_with_prefix() -> None:
    """with_prefix renames every topic; the defaults are the 'ips' prefix."""
    assert TopicNames.with_prefix("ips") == TopicNames()
    assert TopicNames.with_prefix("t1").notifications == "t1.streamer.notifications"
    with pytest.raises(ValueError, match="prefix"):
        TopicNames.with_prefix("ips.")


def _closed_objects(node: object) -> list[object]:
    """The subschemas of ``node`` that forbid additional properties."""
    if isinstance(node, dict):
        own = [node] if node.get("additionalProperties") is False else []
        return own + [x for v in node.values() for x in _closed_objects(v)]
    if isinstance(node, list):
        return [x for v in node for x in _closed_objects(v)]
    return []


@pytest.mark.parametrize("kind", sorted(SCHEMA_IDS))
def test_schema_files_are_valid_and_named_by_their_id(kind: str) -> None:
    """Each v2 schema is a valid draft 2020-12 schema, its $id names the v2 file, none of its
    objects is closed to new fields, and every field is required but the documented optional."""
    schema = load_schema(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert (
        schema["$id"] == SCHEMA_IDS[kind] == f"https://ips-job-streamer.dev/schemas/{kind}.v2.json"
    )
    assert _closed_objects(schema) == []
    # Only the dead letter's reference to the record it stands for is optional.
    optional = {"topic", "jobHandle"} if kind == "streamer.notification" else set()
    assert set(schema["required"]) == set(schema["properties"]) - optional


@pytest.mark.parametrize("kind", sorted(SCHEMA_IDS))
def test_v1_schemas_stay_shipped_unchanged(kind: str) -> None:
    """The v1 schema of every type still loads (load_schema(t, version=1)), valid and strict as
    it was: records written before v2 keep resolving."""
    schema = load_schema(kind, version=1)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"https://ips-job-streamer.dev/schemas/{kind}.v1.json"
    assert schema["additionalProperties"] is False
    assert load_schema(kind) != schema


def test_every_packaged_schema_is_known() -> None:
    """The package ships exactly a v1 and a v2 file per SCHEMA_IDS entry; schema_files lists
    them and schema_text serves only listed names."""
    shipped = {p.name for p in files("streamer.schemas").iterdir() if p.name.endswith(".json")}
    assert shipped == {f"{k}.v{v}.json" for k in SCHEMA_IDS for v in (1, 2)} == set(schema_files())
    assert {sid.rsplit("/", 1)[1] for sid in SCHEMA_IDS.values()} <= shipped
    with pytest.raises(KeyError):
        load_schema("job.unknown")
    with pytest.raises(KeyError):
        load_schema("job.observed", version=3)
    for bad in (
        "../encode.py",
        "__init__.py",
        "job.observed.v2.json/..",
        "",
        "JOB.OBSERVED.V2.JSON",
    ):
        assert schema_text(bad) is None
    assert json.loads(schema_text("job.observed.v2.json") or "") == load_schema("job.observed")


def test_load_schema_takes_the_full_type_too() -> None:
    """load_schema reads a ce_type as well as a short type."""
    assert load_schema(full_type("job.completed")) == load_schema("job.completed")


def _sample_values() -> dict[str, dict[str, Any]]:
    """One encoded value of every type that has a schema."""
    status_event = JobStateChanged("c|1", "j|1", 2, T0, "New", "Running", STATUS)
    records = {
        "job.observed": encode_event(
            JobObserved("c|1", "j|1", 1, T0, JOB), source=SOURCE, topics=TOPICS
        ),
        "job.state_changed": encode_event(status_event, source=SOURCE, topics=TOPICS),
        "job.progress": encode_event(
            JobProgress("c|1", "j|1", 3, T0, STATUS, 0.5, T0), source=SOURCE, topics=TOPICS
        ),
        "job.completed": encode_event(
            JobCompleted("c|1", "j|1", 4, T0, Outcome.FAILED, STATUS, OutcomeCounts(), "x", T0, 1),
            source=SOURCE,
            topics=TOPICS,
        ),
        "job.stalled": encode_event(
            JobStalled("c|1", "j|1", 5, T0, STATUS, 900.0), source=SOURCE, topics=TOPICS
        ),
        "job.recovered": encode_event(
            JobRecovered("c|1", "j|1", 6, T0, STATUS, 901.5), source=SOURCE, topics=TOPICS
        ),
        "job.latest": encode_checkpoint(TrackedJob(JOB, 4, T0, STATUS, T0, T0), topics=TOPICS),
        "streamer.heartbeat": encode_heartbeat(
            Heartbeat("c|1", T0, True, 0.1, 3, T0), source=SOURCE, topics=TOPICS
        ),
        "streamer.notification": encode_notification(
            "company_unreachable", "c|1", "m", T0, source=SOURCE, topics=TOPICS
        ),
        "streamer.ledger": encode_ledger("c|1", CompanyLedger(T0, T0, {"j|1": T0}), topics=TOPICS),
    }
    return {kind: json.loads(r.value or b"null") for kind, r in records.items()}


def _with_extra_fields(node: object) -> object:
    """``node`` with a field no schema knows added to every object in it, nested ones too (but
    a sub-job's fields, whose members are the job definition's elements)."""
    if isinstance(node, dict):
        sub_job = "element" in node
        return {
            **{
                k: v if sub_job and k == "fields" else _with_extra_fields(v)
                for k, v in node.items()
            },
            "addedInV2_1": {"x": [1]},
        }
    if isinstance(node, list):
        return [_with_extra_fields(v) for v in node]
    return node


@pytest.mark.parametrize("kind", sorted(SCHEMA_IDS))
def test_v2_schemas_accept_added_fields(kind: str) -> None:
    """Additive evolution: a value with a new field in every object still validates against v2
    (a consumer validating with v2.0 keeps working on v2.x); v1 refused it."""
    value = _sample_values()[kind]
    check = validator(kind)
    assert check.is_valid(value)
    extended = _with_extra_fields(value)
    assert check.is_valid(extended), list(check.iter_errors(extended))[:1]
    if kind != "streamer.ledger":  # its v1 schema has no other object to close than the top
        assert not Draft202012Validator(load_schema(kind, version=1)).is_valid(extended)


def test_schemas_reject_missing_fields_and_wrong_types() -> None:
    """Open to new fields, the v2 schemas still require every field and check its type."""
    record = encode_event(JobObserved("c|1", "j|1", 1, T0, JOB), source=SOURCE, topics=TOPICS)
    assert record.value is not None
    value: dict[str, Any] = decode_event_value(record.value)
    check = validator("job.observed")
    assert check.is_valid(value)
    assert check.is_valid({**value, "extra": 1})
    assert not check.is_valid({k: v for k, v in value.items() if k != "seenAfterStart"})
    assert not check.is_valid({**value, "observedAt": "2026-11-28T12:00:00"})
    assert not check.is_valid({**value, "type": "job.observed"})  # the v1 type
    assert not check.is_valid({**value, "snapshot": {**value["snapshot"], "jobHandle": 5}})
    sub = value["snapshot"]["subJob"]
    for fields in ([["a", "b"]], {"a": 5}, {"a": ["only one"]}, {"a": [["x"], "y"]}):
        bad = {**value, "snapshot": {**value["snapshot"], "subJob": {**sub, "fields": fields}}}
        assert not check.is_valid(bad), fields
    v1 = Draft202012Validator(load_schema("job.observed", version=1))
    assert not v1.is_valid({**value, "extra": 1})


def test_contract_names_the_schema_url() -> None:
    """ce_dataschema is the contract's base URL plus the v2 file name, for every record kind."""
    contract = Contract("http://schemas.example.com:8000/ips/")
    event = JobStateChanged("c|1", "j|1", 7, T0, "New", "Running", STATUS)
    hb = Heartbeat("c|1", T0, True, 0.1, 3, T0)
    records = {
        "job.state_changed": encode_event(event, source=SOURCE, topics=TOPICS, contract=contract),
        "streamer.heartbeat": encode_heartbeat(hb, source=SOURCE, topics=TOPICS, contract=contract),
        "streamer.notification": encode_notification(
            "company_recovered", "c|1", "m", T0, source=SOURCE, topics=TOPICS, contract=contract
        ),
        "job.latest": encode_checkpoint(
            TrackedJob(JOB, 4, T0, STATUS, T0, T0), topics=TOPICS, contract=contract
        ),
    }
    for kind, record in records.items():
        assert (
            headers(record)["ce_dataschema"]
            == f"http://schemas.example.com:8000/ips/{kind}.v2.json"
        )
    with pytest.raises(ValueError, match="end with"):
        Contract("http://schemas.example.com/ips")


@given(texts.filter(bool))
def test_job_source_percent_encodes_the_handle(handle: str) -> None:
    """A job's source is its company's plus /jobs/ and the handle percent-encoded (no '/' or
    '|' left), so every job has its own source and its sequence is scoped to it."""
    src = job_source(SOURCE, handle)
    assert src.startswith(SOURCE + "/jobs/")
    tail = src[len(SOURCE) + len("/jobs/") :]
    assert "/" not in tail
    assert "|" not in tail
    assert urllib.parse.unquote(tail) == handle


def test_decode_event_value_wants_an_object() -> None:
    """decode_event_value refuses JSON that is not an object."""
    with pytest.raises(ValueError, match="not a JSON object"):
        decode_event_value(b"[1]")


def test_decode_event_value_reads_the_deepest_allowed_tree() -> None:
    """A job.observed value with a 256-deep sub-job tree (the decoder's limit) reads back."""
    event = JobObserved("c|1", "j|1", 1, T0, deep_job(deep_tree(256)))
    record = encode_event(event, source=SOURCE, topics=TOPICS)
    assert record.value is not None
    value: dict[str, Any] = decode_event_value(record.value)
    fields, depth = value["snapshot"]["subJob"]["fields"], 0
    while "before" in fields:
        fields, depth = fields["child"], depth + 1
    assert (depth, fields) == (256, {"leaf": "x-end"})


@given(st.sampled_from(sorted(SCHEMA_IDS)))
def test_load_schema_returns_a_fresh_copy(kind: str) -> None:
    """Mutating a loaded schema does not affect the next load."""
    load_schema(kind)["title"] = "changed"
    assert load_schema(kind)["title"] == kind


def test_memoised_partitioner_matches_aiokafka_default() -> None:
    """The memoised partitioner maps every key exactly like aiokafka's murmur2 default."""
    from aiokafka.partitioner import DefaultPartitioner

    from streamer.kafka import partition_for

    default = DefaultPartitioner()
    for n in (1, 3, 7, 12):
        parts = list(range(n))
        for i in range(300):
            key = f"j|{i % 17}||{i:x}_2026-11-28-13:31:29.{i:03d}|{i * 7919}".encode()
            assert partition_for(key, parts, parts) == default(key, parts, parts)
            assert partition_for(key, parts, parts) == default(key, parts, parts)  # cached
