"""The checkpoint codec: TrackedJob → job.latest record → TrackedJob, exactly, at any tree depth."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings

from streamer.checkpoint import decode_checkpoint, encode_checkpoint
from streamer.model import TrackedJob
from tests.strategies import tracked_jobs
from tests.test_encode import JOB, SOURCE, STATUS, T0, TOPICS, check_cloudevent, headers
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
