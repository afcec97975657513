"""jsontext.py writes JSON text directly; it must be byte-for-byte what encoding the dicts gives."""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.checkpoint import encode_checkpoint
from streamer.encode import TopicNames, encode_event, full_type
from streamer.model import (
    JobCompleted,
    JobEvent,
    JobObserved,
    JobProgress,
    JobRecovered,
    JobSnapshot,
    JobStalled,
    JobStateChanged,
    JobStatus,
    LogMessage,
    LogMessages,
    Outcome,
    OutcomeCounts,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    TrackedJob,
    XmlTree,
    event_type,
)
from tests.strategies import any_xml_trees, job_events, tracked_jobs

TOPICS = TopicNames()
SOURCE = "https://ips.example.com/companies/c%7C1"
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

# ------------------------------------------------------------------------------------------
# The reference: the values as plain dicts, encoded by the stdlib encoder
# ------------------------------------------------------------------------------------------


def _dt(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    text = value.isoformat()
    return text if value.microsecond else f"{text[:19]}.000000{text[19:]}"


def _opt_dt(value: datetime | None) -> str | None:
    return None if value is None else _dt(value)


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


def _tree(tree: XmlTree) -> dict[str, Any]:
    """Contract v2: one member per name (first occurrence order), repeated names as arrays."""
    out: dict[str, Any] = {}
    for name, value in tree:
        item = value if isinstance(value, str) else _tree(value)
        if name not in out:
            out[name] = item
        elif isinstance(out[name], list):  # items are str or dict: a list is a repeated name
            out[name].append(item)
        else:
            out[name] = [out[name], item]
    return out


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
        **({"truncated": True} if job.truncated else {}),
    }


def _counts(c: OutcomeCounts) -> dict[str, int]:
    return {
        "fileSuccess": c.file_success,
        "fileError": c.file_error,
        "fileWarning": c.file_warning,
        "fileDuplicate": c.file_duplicate,
        "fileUpdate": c.file_update,
        "totalFile": c.total_file,
        "transferSuccess": c.transfer_success,
        "transferError": c.transfer_error,
        "transferWarning": c.transfer_warning,
    }


def reference_checkpoint(t: TrackedJob) -> bytes:
    """The checkpoint value as the dict-based encoder wrote it."""
    published = t.last_progress_status
    value = {
        "company": t.snapshot.company_handle,
        "snapshot": _snapshot(t.snapshot),
        "sequence": t.sequence,
        "lastSeenAt": _dt(t.last_seen_at),
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
    return _JSON.encode(value).encode()


def reference_event(e: JobEvent) -> bytes:
    """The event value as the dict-based encoder wrote it."""
    out: dict[str, Any] = {
        "eventId": e.event_id,
        "type": full_type(event_type(e)),
        "companyHandle": e.company_handle,
        "jobHandle": e.job_handle,
        "sequence": e.sequence,
        "observedAt": _dt(e.observed_at),
    }
    if isinstance(e, JobObserved):
        out |= {"snapshot": _snapshot(e.snapshot), "seenAfterStart": e.seen_after_start}
    elif isinstance(e, JobStateChanged):
        out |= {"from": e.from_state, "to": e.to_state, "status": _status(e.status)}
        out["mayHaveSkipped"] = e.may_have_skipped
    elif isinstance(e, JobProgress):
        out |= {"status": _status(e.status), "rate": e.rate, "eta": _opt_dt(e.eta)}
    elif isinstance(e, JobCompleted):
        out["outcome"] = e.outcome.value
        out["counts"] = None if e.counts is None else _counts(e.counts)
        out["logType"] = e.log_type
        out["startedAt"] = _opt_dt(e.started_at)
        out["endedAt"] = _opt_dt(e.ended_at)
        out["logAttempts"] = e.log_attempts
        out["lastStatus"] = None if e.last_status is None else _status(e.last_status)
        out["mayHaveSkipped"] = e.may_have_skipped
        out["reconciled"] = e.reconciled
        out["observed"] = e.observed
        out |= {
            "jobName": e.job_name,
            "originalName": e.original_name,
            "jobType": e.job_type,
            "submitUserEmail": e.submit_user_email,
            "durationS": e.duration_s,
            "logMessages": _log_messages(e.log_messages),
        }
    else:
        out |= {"status": _status(e.status), "stalledForS": e.stalled_for_s}
        if isinstance(e, JobStalled):
            out |= {
                "jobName": e.job_name,
                "originalName": e.original_name,
                "jobType": e.job_type,
                "submitUserEmail": e.submit_user_email,
            }
    return _JSON.encode(out).encode()


def _log_messages(m: LogMessages | None) -> dict[str, Any] | None:
    if m is None:
        return None

    def one(x: LogMessage) -> dict[str, Any]:
        return {
            "message": x.message,
            "logType": x.log_type,
            "assetName": x.asset_name,
            "assetType": x.asset_type,
            "at": _opt_dt(x.at),
        }

    return {
        "errors": [one(x) for x in m.errors],
        "warnings": [one(x) for x in m.warnings],
        "errorTotal": m.error_total,
        "warningTotal": m.warning_total,
    }


def outcome(fn: Any) -> Any:
    """The result of ``fn()``, or the type of the exception it raised."""
    try:
        return fn()
    except (ValueError, UnicodeError) as exc:
        return type(exc)


# ------------------------------------------------------------------------------------------
# Equality
# ------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(job_events())
def test_event_text_equals_dict_encoding(event: JobEvent) -> None:
    """Every generated event is written exactly as its dict would be encoded."""
    assert encode_event(event, source=SOURCE, topics=TOPICS).value == reference_event(event)


@settings(max_examples=300, deadline=None)
@given(tracked_jobs)
def test_checkpoint_text_equals_dict_encoding(tracked: TrackedJob) -> None:
    """Every generated checkpoint is written exactly as its dict would be encoded."""
    assert encode_checkpoint(tracked, topics=TOPICS).value == reference_checkpoint(tracked)


AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(any_xml_trees)
def test_any_sub_job_tree_text_equals_dict_encoding(tree: XmlTree) -> None:
    """Any sub-job tree, a name repeated anywhere, is written as its object would be encoded."""
    event = JobObserved("c", "j", 1, AT, deep_job(tree))
    assert encode_event(event, source=SOURCE, topics=TOPICS).value == reference_event(event)


ODD_TEXTS = [
    'quote " backslash \\ slash /',
    "tab\tnew\nline\x01\x1f",
    "é ü 漢字 🎉",
    "\u2028\u2029",
    "",
]


def _status_with(
    text: str, progress: float = 0.5, item_progress: float = 0.25, task_progress: float = 0.5
) -> JobStatus:
    item = TaskItemProgress(text, item_progress, text, AT)
    task = TaskProgress(text, text, 1, 2, 3, task_progress, text, AT, (item,))
    return JobStatus(text, 7, text, AT, 2**40, (task,))


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_escaping_matches(text: str) -> None:
    """Quotes, backslashes, control characters and non-ASCII text are escaped identically."""
    job = JobSnapshot(
        text, text, text, text, text, text, text, text, text, AT, None, _status_with(text),
        SubJob("exportJob", (("a", text), ("b", (("c", text),)))),
    )  # fmt: skip
    tracked = TrackedJob(job, 3, AT, job.status, AT, AT)
    assert encode_checkpoint(tracked, topics=TOPICS).value == reference_checkpoint(tracked)
    event = JobObserved(text, text, 1, AT, job)
    assert encode_event(event, source=SOURCE, topics=TOPICS).value == reference_event(event)


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.0, 1e16, 1.5e-7, 123456789.125, 1 / 3, math.nan, math.inf, -math.inf]
)
def test_numbers_match(value: float) -> None:
    """Floats (and non-finite task progress, written null) match the stdlib encoder."""
    status = _status_with("x", item_progress=value, task_progress=value)
    job = JobProgress("c", "j", 2, AT, status, rate=value if math.isfinite(value) else None)
    assert encode_event(job, source=SOURCE, topics=TOPICS).value == reference_event(job)
    stalled = JobStalled("c", "j", 3, AT, status, stalled_for_s=value)
    assert outcome(lambda: encode_event(stalled, source=SOURCE, topics=TOPICS).value) == outcome(
        lambda: reference_event(stalled)
    )


def test_int_in_a_float_field_is_written_as_an_int() -> None:
    """A progress given as an int (typed float) is written as the encoder writes an int."""
    status = _status_with("x", item_progress=1, task_progress=0)
    event = JobRecovered("c", "j", 4, AT, status, stalled_for_s=12)
    assert encode_event(event, source=SOURCE, topics=TOPICS).value == reference_event(event)


def test_offsets_and_optional_fields() -> None:
    """Other UTC offsets, absent optional values and a held-back progress status match."""
    pdt = timezone(timedelta(hours=-7))
    at = datetime(2026, 3, 1, 9, 30, 15, 120, tzinfo=pdt)
    status = _status_with("s")
    job = JobSnapshot("c", "j", "n", "o", "t", "u", None, None, "s", at, None, status, None)
    older = JobStatus("Running", 1, "", at, 0, ())
    tracked = TrackedJob(job, 9, at, older, at, at, True, at, 2, True)
    assert encode_checkpoint(tracked, topics=TOPICS).value == reference_checkpoint(tracked)
    done = JobCompleted(
        "c", "j", 10, at, outcome=Outcome.COMPLETED_WITH_WARNINGS, last_status=status, counts=None
    )
    assert encode_event(done, source=SOURCE, topics=TOPICS).value == reference_event(done)


def test_lone_surrogate_fails_the_same_way() -> None:
    """Text that is not valid Unicode fails to encode in both, as before."""
    status = _status_with("\ud800")
    event = JobStalled("c", "j", 3, AT, status, stalled_for_s=1.0)
    assert outcome(lambda: encode_event(event, source=SOURCE, topics=TOPICS)) == outcome(
        lambda: reference_event(event)
    )


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_rate(rate: float) -> None:
    """Any float rate is written like the stdlib encoder writes it, or refused like it."""
    event = JobProgress("c", "j", 2, AT, _status_with("x"), rate=rate)
    assert outcome(lambda: encode_event(event, source=SOURCE, topics=TOPICS).value) == outcome(
        lambda: reference_event(event)
    )


# ------------------------------------------------------------------------------------------
# Deep sub-job trees (issue 9)
# ------------------------------------------------------------------------------------------

_R = TypeVar("_R")


def deep_tree(depth: int, tag: str = "x") -> XmlTree:
    """A tree ``depth`` levels deep: each level a leaf, the next level, another leaf."""
    tree: XmlTree = (("leaf", f"{tag}-end"),)
    for level in reversed(range(depth)):
        tree = (("before", f"{tag}{level}"), ("child", tree), ("after", '\u00e9"'))
    return tree


def deep_tree_json(depth: int, tag: str = "x") -> str:
    """The JSON text of ``deep_tree(depth, tag)``, spelled out without any JSON encoder."""
    opens = "".join(f'{{"before":"{tag}{level}","child":' for level in range(depth))
    closes = ',"after":"\u00e9\\""}' * depth
    return f'{opens}{{"leaf":"{tag}-end"}}{closes}'


def deep_job(tree: XmlTree) -> JobSnapshot:
    """A job whose sub-job element holds ``tree``."""
    status = JobStatus("Running", 5, "m", AT, 0, ())
    return JobSnapshot(
        "c", "j", "n", "o", "t", "u", None, None, "s", AT, None, status, SubJob("exportJob", tree)
    )


def with_deep_stack(fn: Callable[[], _R]) -> _R:
    """``fn()`` in a thread with a large stack and recursion limit: the stdlib reference
    (json.dumps, tuple ==) recurses per level, and only the code under test must not."""
    result: list[_R] = []
    limit = sys.getrecursionlimit()
    old_size = threading.stack_size(512 * 1024 * 1024)
    sys.setrecursionlimit(100_000)
    try:
        worker = threading.Thread(target=lambda: result.append(fn()))
        worker.start()
        worker.join()
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(old_size)
    assert result, "the reference raised in its thread"
    return result[0]


def test_deep_tree_helper_spells_json() -> None:
    """The spelled-out text of a deep tree is what json.dumps writes for it (helper check)."""
    assert deep_tree_json(3) == _JSON.encode(_tree(deep_tree(3)))
    assert deep_tree_json(0) == _JSON.encode(_tree(deep_tree(0)))


@pytest.mark.parametrize("depth", [1, 256, 400])
def test_deep_tree_matches_dict_encoding(depth: int) -> None:
    """Up to the depths json.dumps itself manages (256 is the IPS decoder's limit), same bytes."""
    job = deep_job(deep_tree(depth))
    tracked = TrackedJob(job, 3, AT, job.status, AT, AT)
    assert encode_checkpoint(tracked, topics=TOPICS).value == reference_checkpoint(tracked)
    event = JobObserved("c", "j", 1, AT, job)
    assert encode_event(event, source=SOURCE, topics=TOPICS).value == reference_event(event)


def test_tree_5000_deep_is_written_without_recursion() -> None:
    """A 5,000-deep tree is written at the default recursion limit, exactly as json.dumps would."""
    job = deep_job(deep_tree(5000))
    event = JobObserved("c", "j", 1, AT, job)
    value = encode_event(event, source=SOURCE, topics=TOPICS).value
    assert value is not None
    assert deep_tree_json(5000).encode() in value
    assert value == with_deep_stack(lambda: reference_event(event))
    tracked = TrackedJob(job, 3, AT, job.status, AT, AT)
    written = encode_checkpoint(tracked, topics=TOPICS).value
    assert written == with_deep_stack(lambda: reference_checkpoint(tracked))


def test_equal_deep_trees_that_are_distinct_objects() -> None:
    """Equal but distinct deep trees (after a restore, say) are written alike, without comparing
    them (tuple == recurses)."""
    first, second = deep_tree(5000, "t"), deep_tree(5000, "t")
    assert first is not second
    texts = [
        encode_event(JobObserved("c", "j", 1, AT, deep_job(tree)), source=SOURCE, topics=TOPICS)
        for tree in (first, second, first)
    ]
    assert texts[0] == texts[1] == texts[2]
