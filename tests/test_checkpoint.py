"""The checkpoint codec: TrackedJob → job.latest record → TrackedJob, exactly, at any tree depth;
CompanyLedger → streamer.ledger record → CompanyLedger, exactly, under a key no job can have."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.checkpoint import (
    decode_checkpoint,
    decode_ledger,
    encode_checkpoint,
    encode_ledger,
    is_ledger_key,
    ledger_key,
)
from streamer.encode import SCHEMA_IDS
from streamer.model import TrackedJob
from streamer.reconcile import CompanyLedger
from tests.strategies import aware_datetimes, handles, texts, tracked_jobs
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
    assert headers(record)["ce_source"] == SOURCE
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
def test_malformed_sub_job_tree_is_refused(fields: object) -> None:
    """A sub-job tree that is not [name, text-or-tree] pairs, at any level, is refused."""
    good = encode_checkpoint(TrackedJob(JOB, 4, T0, STATUS, T0, T0), topics=TOPICS).value
    assert good is not None
    raw = json.loads(good)
    raw["snapshot"]["subJob"]["fields"] = fields
    with pytest.raises(ValueError, match="malformed checkpoint"):
        decode_checkpoint(json.dumps(raw).encode())


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
    assert (h["ce_type"], h["ce_subject"]) == ("streamer.ledger", company)
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
