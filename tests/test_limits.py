"""Jobs too large for one Kafka record are cut deterministically, flagged, and still published."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from streamer.encode import short_type
from streamer.limits import ITEMS_PER_TASK, MESSAGE_CHARS, fit, job_record_bytes
from streamer.model import JobStatus, SubJob, TaskItemProgress, TaskProgress
from tests.shell_fakes import TOPICS, ScriptedIps, rig, sample
from tests.test_diff import T0, job, snap

LIMIT = 1_000_000


def huge_message_job(chars: int = 2_000_000) -> object:
    """A job whose progress message alone is larger than a record may be."""
    j = job("j|big")
    return replace(j, status=replace(j.status, progress_message="x" * chars))


def many_items_job(items: int = 50_000) -> object:
    """A job with one task of ``items`` task items."""
    item = TaskItemProgress("image.jpg", 0.5, "uploading", T0)
    task = TaskProgress("UploadTask", "Processing", 1, 1, 1, 0.5, "", T0, (item,) * items)
    j = job("j|items")
    return replace(j, status=replace(j.status, task_progress=(task,)))


def test_a_small_job_is_returned_as_is() -> None:
    """A job within the limit is the very same object, not flagged."""
    j = job()
    assert fit(j, LIMIT) is j
    assert not j.truncated


def test_a_2mb_progress_message_is_cut_and_flagged() -> None:
    """A 2 MB progressMessage is cut to MESSAGE_CHARS plus a note; the job fits and is flagged."""
    big = huge_message_job()
    out = fit(big, LIMIT)  # type: ignore[arg-type]
    assert out.truncated
    assert job_record_bytes(out) <= LIMIT
    assert out.status.progress_message.startswith("x" * MESSAGE_CHARS)
    assert out.status.progress_message.endswith("[1998976 characters cut]")
    assert out.job_handle == "j|big"


def test_50000_task_items_are_cut_to_the_first_ones() -> None:
    """50,000 task items are cut to the first ITEMS_PER_TASK, in order."""
    out = fit(many_items_job(), LIMIT)  # type: ignore[arg-type]
    assert out.truncated
    assert job_record_bytes(out) <= LIMIT
    assert len(out.status.task_progress[0].items) == ITEMS_PER_TASK


def test_a_huge_sub_job_tree_loses_its_fields_not_its_element() -> None:
    """A sub-job tree too large for a record is dropped; the element name stays."""
    fields = tuple((f"f{i}", "v" * 100) for i in range(20_000))
    j = replace(job(), sub_job=SubJob("imageServingPublishJob", fields))
    out = fit(j, LIMIT)
    assert out.truncated
    assert out.sub_job == SubJob("imageServingPublishJob")


def test_cutting_is_deterministic() -> None:
    """The same oversized job is always cut to an equal job (no change seen on every poll)."""
    assert fit(huge_message_job(), LIMIT) == fit(huge_message_job(), LIMIT)  # type: ignore[arg-type]


async def test_poller_publishes_an_oversized_job_cut_once() -> None:
    """The poller publishes a cut job.observed within the limit and nothing new next poll."""
    big = huge_message_job()
    r = rig(ScriptedIps(snap(big, job("j|1"))))  # type: ignore[arg-type]
    await r.poller.cycle()
    await r.poller.cycle()
    observed = [v for v in r.sink.values(TOPICS.state) if short_type(v["type"]) == "job.observed"]
    assert sorted(v["jobHandle"] for v in observed) == ["j|1", "j|big"]
    cut = next(v for v in observed if v["jobHandle"] == "j|big")
    assert cut["snapshot"]["truncated"] is True
    assert all(len(r_.value or b"") <= LIMIT for batch in r.sink.batches for r_ in batch)
    assert sample(r.metrics, "streamer_jobs_truncated_total") == 1


async def test_a_record_over_the_limit_becomes_a_dead_letter() -> None:
    """A record that is still too large is never sent: a record_rejected notification names it."""
    from streamer.poller import PollSettings

    long_handle = "j|" + "h" * 40_000  # the key itself cannot be cut
    r = rig(
        ScriptedIps(snap(job(long_handle))),
        poll=PollSettings(interval_s=5.0, max_record_bytes=20_000),
    )
    assert await r.poller.cycle() is None
    notes = r.sink.values(TOPICS.notifications)
    assert {n["kind"] for n in notes} == {"record_rejected"}
    assert {n["jobHandle"] for n in notes} == {long_handle[:1000]}
    assert all(len(r_.value or b"") <= 20_000 for b in r.sink.batches for r_ in b)
    assert sample(r.metrics, "streamer_records_rejected_total", reason="too_large") >= 1


def test_statuses_unrelated_to_size_are_untouched() -> None:
    """Cutting keeps the state, progress and dates of the job."""
    big = huge_message_job()
    out = fit(big, LIMIT)  # type: ignore[arg-type]
    assert isinstance(out.status, JobStatus)
    assert (out.status.state, out.status.progress, out.start_date) == (
        big.status.state,  # type: ignore[attr-defined]
        big.status.progress,  # type: ignore[attr-defined]
        datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )


async def test_cut_job_and_dead_letter_validate_against_the_schemas() -> None:
    """A truncated job.observed and a record_rejected notification are valid contract events."""
    from jsonschema import Draft202012Validator

    from streamer.encode import load_schema
    from streamer.poller import PollSettings

    r = rig(ScriptedIps(snap(huge_message_job())))  # type: ignore[arg-type]
    await r.poller.cycle()
    values = r.sink.values(TOPICS.state)
    observed = next(v for v in values if short_type(v["type"]) == "job.observed")
    Draft202012Validator(load_schema("job.observed")).validate(observed)
    d = rig(
        ScriptedIps(snap(job("j|" + "h" * 40_000))),
        poll=PollSettings(interval_s=5.0, max_record_bytes=20_000),
    )
    await d.poller.cycle()
    for note in d.sink.values(TOPICS.notifications):
        Draft202012Validator(load_schema("streamer.notification")).validate(note)
