"""The checkpoint codec: TrackedJob → job.latest record → TrackedJob, exactly, at any tree depth;
CompanyLedger → streamer.ledger record → CompanyLedger, exactly, under a key no job can have;
checkpoints written by the v1 daemon restore after the upgrade to contract v2."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from streamer.checkpoint import (
    decode_checkpoint,
    decode_ledger,
    encode_checkpoint,
    encode_ledger,
    is_ledger_key,
    ledger_key,
)
from streamer.encode import SCHEMA_IDS, TopicNames, job_source, load_schema
from streamer.model import JobSnapshot, JobStatus, SubJob, TrackedJob, XmlTree
from streamer.reconcile import CompanyLedger
from streamer.restore import Restored, restore_state
from streamer.topics import ensure_topics
from tests.ips_strategies import GeneratedJob, active_jobs
from tests.strategies import any_xml_trees, aware_datetimes, handles, texts, tracked_jobs
from tests.test_encode import (
    JOB,
    SOURCE,
    STATUS,
    T0,
    TOPICS,
    check_cloudevent,
    headers,
    validator,
)
from tests.test_encode_json import deep_job, deep_tree, reference_checkpoint, with_deep_stack


@settings(max_examples=200)
@given(tracked_jobs)
def test_checkpoint_round_trip(tracked: TrackedJob) -> None:
    """Any TrackedJob survives encode_checkpoint → decode_checkpoint exactly, schema-valid."""
    record = encode_checkpoint(tracked, topics=TOPICS)
    assert record.topic == "ips.jobs.latest"
    value = check_cloudevent(record, "job.latest", tracked.snapshot.job_handle, tracked.sequence)
    assert value["company"] == tracked.snapshot.company_handle
    assert record.value is not None
    assert decode_checkpoint(record.value) == tracked


def test_checkpoint_restore_shares_the_published_status() -> None:
    """When the published status equals the snapshot's, the restored record holds one object."""
    tracked = TrackedJob(JOB, 4, T0, STATUS, T0, T0)
    record = encode_checkpoint(tracked, topics=TOPICS, source=SOURCE)
    assert headers(record)["ce_source"] == job_source(SOURCE, "j|1") == SOURCE + "/jobs/j%7C1"
    assert record.value is not None
    restored = decode_checkpoint(record.value)
    assert restored == tracked
    assert restored.last_progress_status is restored.snapshot.status
    assert restored.last_seen_at is restored.last_moved_at


def test_checkpoint_ids_differ_when_the_record_does() -> None:
    """Two checkpoints of one sequence (e.g. vanished later) get different ce_ids."""
    tracked = TrackedJob(JOB, 4, T0, STATUS, T0, T0)
    vanished = replace(tracked, vanished_at=T0 + timedelta(seconds=5))
    first, second = (
        headers(encode_checkpoint(t, topics=TOPICS))["ce_id"] for t in (tracked, vanished)
    )
    assert first.startswith("j|1:4:")
    assert first != second
    assert headers(encode_checkpoint(vanished, topics=TOPICS))["ce_time"].startswith(
        "2026-11-28T12:00:05"
    )


@pytest.mark.parametrize(
    "value",
    [b"[]", b"{}", b"not json", b'{"snapshot": 1}'],
)
def test_malformed_checkpoint_is_a_value_error(value: bytes) -> None:
    """A checkpoint that cannot be read raises ValueError, whatever is wrong with it."""
    with pytest.raises(ValueError, match="malformed checkpoint"):
        decode_checkpoint(value)


def test_checkpoint_with_wrong_types_is_refused() -> None:
    """Wrong JSON types (a string sequence, a numeric handle) are refused, not coerced."""
    good = encode_checkpoint(TrackedJob(JOB, 4, T0, STATUS, T0, T0), topics=TOPICS).value
    assert good is not None
    for path, bad in ((("sequence",), "4"), (("snapshot", "jobHandle"), 7), (("stalled",), 0)):
        raw = json.loads(good)
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = bad
        with pytest.raises(ValueError, match="malformed checkpoint"):
            decode_checkpoint(json.dumps(raw).encode())


@pytest.mark.parametrize(
    "fields",
    [[["a", 5]], [[1, "x"]], [["a"]], [["a", "x", "y"]], "ab", [["a", [["b", [["c", 7]]]]]]],
)
def test_malformed_v1_sub_job_tree_is_refused(fields: object) -> None:
    """A v1 sub-job tree that is not [name, text-or-tree] pairs, at any level, is refused."""
    good = encode_checkpoint(TrackedJob(JOB, 4, T0, STATUS, T0, T0), topics=TOPICS).value
    assert good is not None
    raw = json.loads(good)
    raw["snapshot"]["subJob"]["fields"] = fields
    with pytest.raises(ValueError, match="malformed checkpoint"):
        decode_checkpoint(json.dumps(raw).encode())


@pytest.mark.parametrize(
    "fields",
    [
        {"a": 5},
        {"a": None},
        {"a": ["x"]},
        {"a": []},
        {"a": [["x", "y"], "z"]},
        {"a": ["x", 7]},
        {"a": {"b": {"c": 7}}},
        {"a": [{"b": True}, "x"]},
    ],
)
def test_malformed_sub_job_object_is_refused(fields: object) -> None:
    """A v2 sub-job object whose members are not text, objects or arrays of 2+ of those, at
    any level, is refused."""
    good = encode_checkpoint(TrackedJob(JOB, 4, T0, STATUS, T0, T0), topics=TOPICS).value
    assert good is not None
    raw = json.loads(good)
    raw["snapshot"]["subJob"]["fields"] = fields
    with pytest.raises(ValueError, match="malformed checkpoint"):
        decode_checkpoint(json.dumps(raw).encode())


@settings(max_examples=100)
@given(active_jobs())
def test_sub_jobs_of_schema_valid_replies_round_trip(generated: GeneratedJob) -> None:
    """Every sub-job the IPS decoder makes of a schema-valid reply survives the checkpoint."""
    job = generated.expected
    tracked = TrackedJob(job, 2, T0, job.status, T0, T0)
    record = encode_checkpoint(tracked, topics=TOPICS)
    assert record.value is not None
    assert decode_checkpoint(record.value) == tracked


def _grouped(tree: XmlTree) -> XmlTree:
    groups: dict[str, list[str | XmlTree]] = {}
    for name, value in tree:
        groups.setdefault(name, []).append(value if isinstance(value, str) else _grouped(value))
    return tuple((name, value) for name, values in groups.items() for value in values)


@given(any_xml_trees)
def test_interleaved_names_come_back_grouped_and_stable(tree: XmlTree) -> None:
    """A tree that interleaves a name with others (no IPS schema allows it) restores with each
    name's occurrences next to its first one, and writes the same bytes again."""
    job = replace(JOB, sub_job=SubJob("exportJob", tree))
    record = encode_checkpoint(TrackedJob(job, 4, T0, STATUS, T0, T0), topics=TOPICS)
    assert record.value is not None
    restored = decode_checkpoint(record.value)
    assert restored.snapshot.sub_job == SubJob("exportJob", _grouped(tree))
    assert encode_checkpoint(restored, topics=TOPICS).value == record.value


# -- checkpoints of the v1 daemon (contract v1) --------------------------------------------

#: A job.latest value as the v1 daemon wrote it (sub-job as [name, value] pairs), by hand.
V1_VALUE = (
    b'{"company":"c|1","snapshot":{"companyHandle":"c|1","jobHandle":"j|1","name":"upload_1",'
    b'"originalName":"upload","type":"UrlUpload","submitUserEmail":"ops@example.com",'
    b'"locale":"en-US","description":null,"serverName":"saastex_100_52",'
    b'"startDate":"2026-11-28T12:00:00.123000+00:00","triggerTime":null,'
    b'"status":{"state":"Running","progress":40,"progressMessage":"Uploading 4 of 10 files",'
    b'"lastProgressUpdate":"2026-11-28T12:00:00.123000+00:00","totalSize":2048,'
    b'"taskProgress":[]},"subJob":{"element":"uploadUrlsJob","fields":[["urlArray",[["items",'
    b'[["sourceUrl","http://x/a.jpg"],["destPath","a"]]],["items",[["sourceUrl","http://x/b.jpg"'
    b'],["destPath","b"]]]]],["emailSetting","All"]]}},"sequence":4,'
    b'"lastSeenAt":"2026-11-28T12:00:05.000000+00:00","lastProgressStatus":null,'
    b'"lastProgressAt":"2026-11-28T12:00:00.123000+00:00",'
    b'"lastMovedAt":"2026-11-28T12:00:00.123000+00:00","stalled":false,"vanishedAt":null,'
    b'"logAttempts":0,"vanishedAfterGap":false}'
)
#: The headers the v1 daemon gave it.
V1_HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"j|1:4:0123456789abcdef"),
    ("ce_source", b"ips-job-streamer"),
    ("ce_type", b"job.latest"),
    ("ce_subject", b"j|1"),
    ("ce_time", b"2026-11-28T12:00:05.000000+00:00"),
    ("ce_sequence", b"00000000000000000004"),
    ("ce_dataschema", b"https://ips-job-streamer.dev/schemas/job.latest.v1.json"),
    ("content-type", b"application/json"),
]


def v1_tracked() -> TrackedJob:
    """The tracked job V1_VALUE stands for."""
    t0 = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)
    status = JobStatus("Running", 40, "Uploading 4 of 10 files", t0, 2048, ())
    items = tuple(
        ("items", (("sourceUrl", f"http://x/{n}.jpg"), ("destPath", n))) for n in ("a", "b")
    )
    job = JobSnapshot(
        "c|1", "j|1", "upload_1", "upload", "UrlUpload", "ops@example.com", "en-US", None,
        "saastex_100_52", t0, None, status,
        SubJob("uploadUrlsJob", (("urlArray", items), ("emailSetting", "All"))),
    )  # fmt: skip
    return TrackedJob(job, 4, t0 + timedelta(microseconds=4_877_000), status, t0, t0)


def test_v1_checkpoint_value_restores() -> None:
    """A job.latest value of the v1 daemon (a v1-schema-valid value) reads back as the tracked
    job it stands for; written again it is the v2 form, which reads back the same."""
    Draft202012Validator(load_schema("job.latest", version=1)).validate(json.loads(V1_VALUE))
    restored = decode_checkpoint(V1_VALUE)
    assert restored == v1_tracked()
    v2 = encode_checkpoint(restored, topics=TOPICS).value
    assert v2 is not None
    assert json.loads(v2)["snapshot"]["subJob"]["fields"] == {
        "urlArray": {
            "items": [
                {"sourceUrl": "http://x/a.jpg", "destPath": "a"},
                {"sourceUrl": "http://x/b.jpg", "destPath": "b"},
            ]
        },
        "emailSetting": "All",
    }
    validator("job.latest").validate(json.loads(v2))
    assert decode_checkpoint(v2) == restored


@pytest.mark.kafka
def test_v1_checkpoint_topic_restores_after_upgrade(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """On the real broker: a checkpoint topic holding v1 records (a v1 job.latest, then a v2
    one of another job) restores both jobs, as the upgraded daemon's start-up reads it."""
    topics = TopicNames.with_prefix(topic_prefix)
    kw = {"bootstrap_servers": kafka_bootstrap}
    v2_job = TrackedJob(replace(JOB, job_handle="j|2"), 3, T0, STATUS, T0, T0)
    v2 = encode_checkpoint(v2_job, topics=topics)

    async def scenario() -> Restored:
        await ensure_topics(kw, topics, 1, 1, 1)
        producer = AIOKafkaProducer(**kw)
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.checkpoint, V1_VALUE, key=b"j|1", headers=V1_HEADERS, partition=0
            )
            await producer.send_and_wait(
                topics.checkpoint, v2.value, key=v2.key, headers=list(v2.headers), partition=0
            )
        finally:
            await producer.stop()
        return await restore_state(kw, topics.checkpoint, timeout_s=60)

    restored = asyncio.run(scenario())
    assert restored.states == {"c|1": {"j|1": v1_tracked(), "j|2": v2_job}}


# -- deep sub-job trees (issue 9) ------------------------------------------------------------


@pytest.mark.parametrize("depth", [256, 400])
def test_round_trip_at_the_ips_depth_limit(depth: int) -> None:
    """A tree as deep as the IPS decoder allows (256) round-trips, written as json.dumps would."""
    job = deep_job(deep_tree(depth))
    tracked = TrackedJob(job, 3, T0, job.status, T0, T0)
    record = encode_checkpoint(tracked, topics=TOPICS)
    assert record.value == reference_checkpoint(tracked)
    assert decode_checkpoint(record.value) == tracked


def test_writer_handles_5000_deep_and_reader_refuses_cleanly() -> None:
    """A 5,000-deep tree is written like json.dumps would; reading it back is a ValueError.

    The IPS decoder rejects trees deeper than 256, so no such checkpoint is ever written; the
    restore skips a record it cannot read instead of stopping.
    """
    job = deep_job(deep_tree(5000))
    tracked = TrackedJob(job, 3, T0, job.status, T0, T0)
    record = encode_checkpoint(tracked, topics=TOPICS)
    assert record.value is not None
    assert with_deep_stack(lambda: reference_checkpoint(tracked)) == record.value
    with pytest.raises(ValueError, match="checkpoint"):
        decode_checkpoint(record.value)


# -- company ledgers (issue 11) --------------------------------------------------------------


@st.composite
def ledgers(draw: st.DrawFn) -> CompanyLedger:
    """Any ledger: floor at or below the watermark, entries anywhere in time or unstamped."""
    watermark = draw(aware_datetimes)
    floor = watermark - draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
    offsets = st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=400))
    reported = draw(
        st.dictionaries(texts, st.none() | offsets.map(lambda d: watermark + d), max_size=20)
    )
    return CompanyLedger(watermark, floor, reported)


@settings(max_examples=200)
@given(handles, ledgers())
def test_ledger_round_trip(company: str, ledger: CompanyLedger) -> None:
    """Any ledger survives encode_ledger → decode_ledger exactly, schema-valid, one record."""
    record = encode_ledger(company, ledger, topics=TOPICS)
    assert record.topic == TOPICS.checkpoint
    assert record.key == ledger_key(company)
    assert is_ledger_key(record.key)
    assert record.value is not None
    validator("streamer.ledger").validate(json.loads(record.value))
    h = headers(record)
    assert (h["ce_type"], h["ce_subject"]) == ("dev.ips-job-streamer.streamer.ledger", company)
    assert h["ce_dataschema"] == SCHEMA_IDS["streamer.ledger"]
    assert datetime.fromisoformat(h["ce_time"]) == ledger.watermark
    assert decode_ledger(record.value) == (company, ledger)


@given(texts)
def test_no_job_handle_can_be_a_ledger_key(handle: str) -> None:
    """A jobHandle (XML text: never a NUL) is never taken for a ledger key."""
    assert not is_ledger_key(handle.replace("\x00", "").encode())


def test_ledger_ids_differ_when_the_ledger_does() -> None:
    """Two ledgers of one company get distinct ce_ids (a ledger changes without a new time)."""
    one = CompanyLedger(T0, T0, {"j|1": T0})
    two = CompanyLedger(T0, T0, {"j|1": T0, "j|2": None})
    ids = {headers(encode_ledger("c|1", led, topics=TOPICS))["ce_id"] for led in (one, two)}
    assert len(ids) == 2


@pytest.mark.parametrize(
    "value",
    [
        b"[]",
        b"{}",
        b"not json",
        b'{"company": "c", "watermark": "2026-11-28T12:00:00", "floor": "x", "reported": []}',
        b'{"company": "c", "watermark": "2026-11-28T12:00:00+00:00",'
        b' "floor": "2026-11-28T12:00:01+00:00", "reported": []}',
        b'{"company": "c", "watermark": "2026-11-28T12:00:00+00:00",'
        b' "floor": "2026-11-28T12:00:00+00:00", "reported": [["j", 1.5]]}',
        b'{"company": "c", "watermark": "2026-11-28T12:00:00+00:00",'
        b' "floor": "2026-11-28T12:00:00+00:00", "reported": [["j"]]}',
        b'{"company": 7, "watermark": "2026-11-28T12:00:00+00:00",'
        b' "floor": "2026-11-28T12:00:00+00:00", "reported": []}',
    ],
)
def test_malformed_ledger_is_a_value_error(value: bytes) -> None:
    """A ledger that cannot be read (naive time, floor above watermark, bad entry) is refused."""
    with pytest.raises(ValueError, match="malformed ledger"):
        decode_ledger(value)
