"""Model values → JSON text: the record values of job events and checkpoints, written directly.

Pure: no I/O, no clock, stdlib and :mod:`streamer.model` only. The text is exactly what the
stdlib encoder (compact separators, ``ensure_ascii=False``, ``allow_nan=False``) gives for the
equivalent dicts (``tests/test_encode_json.py`` compares both on generated values):

* keys are camelCase; strings go through the stdlib's own string encoder; ints (the model's int
  fields hold ints, never bools) and finite floats are written by their ``repr``;
* every datetime is ISO-8601 with microseconds and its UTC offset
  (``2026-11-28T12:00:00.123000+00:00``); naive datetimes are refused;
* non-finite task progress values (a ``NaN`` ``xsd:double``) become ``null``: JSON has no NaN;
* a sub-job tree (:data:`~streamer.model.XmlTree`) becomes a JSON object (contract v2): one
  member per element name, in the order of first occurrence; its value is the element's text
  (leaf), an object (nested element) or, for a name that occurs several times, an array of
  those in document order. Written without recursion, so that no nesting depth exhausts the
  stack. Reading it back (:mod:`streamer.checkpoint`) gives the same tree whenever each name's
  occurrences are adjacent, as in every document valid against the IPS schemas (sequences of
  distinct names); a tree that interleaves a name with others comes back grouped.

Writing text field by field is three times faster than building dicts and encoding them, which
matters when a cycle of a 10,000-job company writes 2,000 records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

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
    OutcomeCounts,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    TrackedJob,
    XmlTree,
)

__all__ = ["compact_json", "datetime_text", "event_json", "tracked_json"]

# One encoder object: json.dumps with options would build a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DT_CACHE: dict[tuple[datetime, tzinfo | None, int], str] = {}
_DT_CACHE_SIZE = 8192
_UTC_CACHE: dict[datetime, str] = {}
_TREE_CACHE: dict[int, tuple[XmlTree, str]] = {}
_TREE_CACHE_SIZE = 4096
_STATUS_CACHE: dict[int, tuple[JobStatus, str]] = {}
_STATUS_CACHE_SIZE = 4096
#: The string encoder the stdlib JSON encoder itself uses with ``ensure_ascii=False``.
_str: Callable[[str], str] = json.encoder.encode_basestring
_float_repr = float.__repr__


def compact_json(value: object) -> str:
    """Plain values (dicts, lists, str, numbers, None) as compact JSON text, NaN refused."""
    return _JSON.encode(value)


def datetime_text(value: datetime) -> str:
    """An aware datetime as ISO-8601 text with microseconds and offset; naive ones are refused."""
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


def event_json(event: JobEvent, kind: str, observed_at: str) -> str:
    """The JSON value of a job event: the common fields, then those of its type.

    ``kind`` is ``event_type(event)`` and ``observed_at`` is ``datetime_text(event.observed_at)``,
    both of which the caller already has for the headers.
    """
    return (
        f'{{"eventId":{_str(event.event_id)}'
        f',"type":{_str(kind)}'
        f',"companyHandle":{_str(event.company_handle)}'
        f',"jobHandle":{_str(event.job_handle)}'
        f',"sequence":{event.sequence}'
        f',"observedAt":"{observed_at}"'
        f"{_EVENT_FIELDS[type(event)](event)}}}"
    )


def tracked_json(t: TrackedJob) -> str:
    """The JSON value of a tracked job (the checkpoint record), ``company`` first."""
    published = t.last_progress_status
    snapshot = t.snapshot
    # null: the same as snapshot.status (nearly always; saves a third of the record)
    same = published is snapshot.status or published == snapshot.status
    return (
        f'{{"company":{_str(snapshot.company_handle)}'
        f',"snapshot":{_snapshot(snapshot)}'
        f',"sequence":{t.sequence}'
        f',"lastSeenAt":"{datetime_text(t.last_seen_at)}"'
        f',"lastProgressStatus":{"null" if same else _status(published)}'
        f',"lastProgressAt":"{datetime_text(t.last_progress_at)}"'
        f',"lastMovedAt":"{datetime_text(t.last_moved_at)}"'
        f',"stalled":{_bool(t.stalled)}'
        f',"vanishedAt":{_opt_time(t.vanished_at)}'
        f',"logAttempts":{t.log_attempts}'
        f',"vanishedAfterGap":{_bool(t.vanished_after_gap)}}}'
    )


# --------------------------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------------------------


def snapshot_json(job: JobSnapshot) -> str:
    """A job snapshot as the JSON text every record that carries it writes."""
    return _snapshot(job)


def status_json(status: JobStatus) -> str:
    """A job status as the JSON text every record that carries it writes."""
    return _status(status)


def _dt_text(value: datetime) -> str:
    text = value.isoformat()  # twice as fast as isoformat(timespec=...): keyword parsing
    if not value.microsecond:
        text = f"{text[:19]}.000000{text[19:]}"  # one fixed width
    return text


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
    return "null" if value is None else f'"{datetime_text(value)}"'


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _item(item: TaskItemProgress) -> str:
    return (
        f'{{"itemName":{_str(item.item_name)}'
        f',"progress":{_num_json(item.progress)}'
        f',"progressMessage":{_str(item.progress_message)}'
        f',"lastProgressUpdate":"{datetime_text(item.last_progress_update)}"}}'
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
        f',"lastProgressUpdate":"{datetime_text(task.last_progress_update)}"'
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
        f',"lastProgressUpdate":"{datetime_text(status.last_progress_update)}"'
        f',"totalSize":{status.total_size}'
        f',"taskProgress":[{",".join([_task(t) for t in status.task_progress])}]}}'
    )


def _tree(tree: XmlTree) -> str:
    # Sub-job trees repeat across jobs and polls, and the IPS decoder shares equal ones, so
    # the text is remembered by identity. Not by value: comparing two equal but distinct deep
    # trees recurses in C and raises RecursionError from about 1,000 levels.
    hit = _TREE_CACHE.get(id(tree))
    if hit is not None and hit[0] is tree:
        return hit[1]
    text = _tree_text(tree)
    if len(_TREE_CACHE) >= _TREE_CACHE_SIZE:
        _TREE_CACHE.clear()
    _TREE_CACHE[id(tree)] = (tree, text)  # holds the tree: its id stays its own
    return text


def _tree_text(tree: XmlTree) -> str:
    # An explicit stack of pieces instead of recursion: a sub-job element nested a few hundred
    # levels deep must not kill the daemon (issue 9). A piece is finished text, or a nested
    # node still to be expanded into its pieces.
    parts: list[str] = []
    append = parts.append
    stack: list[str | XmlTree] = _node_pieces(tree)
    stack.reverse()
    while stack:
        piece = stack.pop()
        if isinstance(piece, str):
            append(piece)
        else:
            pieces = _node_pieces(piece)
            pieces.reverse()
            stack.extend(pieces)
    return "".join(parts)


def _node_pieces(node: XmlTree) -> list[str | XmlTree]:
    """One node as an object: its text around the nested nodes, in order."""
    groups: dict[str, list[str | XmlTree]] = {}
    for name, value in node:
        group = groups.get(name)
        if group is None:
            groups[name] = [value]
        else:
            group.append(value)
    pieces: list[str | XmlTree] = []
    text = "{"
    for n, (name, values) in enumerate(groups.items()):
        text += f",{_str(name)}:" if n else f"{_str(name)}:"
        many = len(values) > 1
        if many:
            text += "["
        for i, value in enumerate(values):
            if i:
                text += ","
            if isinstance(value, str):
                text += _str(value)
            else:
                pieces.append(text)
                pieces.append(value)
                text = ""
        if many:
            text += "]"
    pieces.append(text + "}")
    return pieces


def _sub_job(sub: SubJob | None) -> str:
    if sub is None:
        return "null"
    return f'{{"element":{_str(sub.element)},"fields":{_tree(sub.fields)}}}'


#: Written only on a cut job, so that every other record stays as it was.
_TRUNCATED = ',"truncated":true'


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
        f',"startDate":"{datetime_text(job.start_date)}"'
        f',"triggerTime":{_opt_time(job.trigger_time)}'
        f',"status":{_status(job.status)}'
        f',"subJob":{_sub_job(job.sub_job)}'
        f"{_TRUNCATED if job.truncated else ''}}}"
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


# --------------------------------------------------------------------------------------------
# The fields of each event type, after the common ones
# --------------------------------------------------------------------------------------------


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
        f',"startedAt":{_opt_time(e.started_at)}'
        f',"endedAt":{_opt_time(e.ended_at)}'
        f',"logAttempts":{e.log_attempts}'
        f',"lastStatus":{"null" if e.last_status is None else _status(e.last_status)}'
        f',"mayHaveSkipped":{_bool(e.may_have_skipped)}'
        f',"reconciled":{_bool(e.reconciled)}'
        f',"observed":{_bool(e.observed)}'
        f',"jobName":{_opt_str_json(e.job_name)}'
        f',"originalName":{_opt_str_json(e.original_name)}'
        f',"jobType":{_opt_str_json(e.job_type)}'
        f',"submitUserEmail":{_opt_str_json(e.submit_user_email)}'
        f',"durationS":{_opt_float_json(e.duration_s)}'
        f',"logMessages":{_log_messages(e.log_messages)}'
    )


def _log_message(m: LogMessage) -> str:
    return (
        f'{{"message":{_str(m.message)}'
        f',"logType":{_str(m.log_type)}'
        f',"assetName":{_opt_str_json(m.asset_name)}'
        f',"assetType":{_opt_str_json(m.asset_type)}'
        f',"at":{_opt_time(m.at)}}}'
    )


def _log_messages(messages: LogMessages | None) -> str:
    if messages is None:
        return "null"
    return (
        f'{{"errors":[{",".join([_log_message(m) for m in messages.errors])}]'
        f',"warnings":[{",".join([_log_message(m) for m in messages.warnings])}]'
        f',"errorTotal":{messages.error_total}'
        f',"warningTotal":{messages.warning_total}}}'
    )


def _stall(e: JobStalled | JobRecovered) -> str:
    return f',"status":{_status(e.status)},"stalledForS":{_float_json(e.stalled_for_s)}'


def _stalled(e: JobStalled) -> str:
    return (
        f"{_stall(e)}"
        f',"jobName":{_opt_str_json(e.job_name)}'
        f',"originalName":{_opt_str_json(e.original_name)}'
        f',"jobType":{_opt_str_json(e.job_type)}'
        f',"submitUserEmail":{_opt_str_json(e.submit_user_email)}'
    )


_EVENT_FIELDS: dict[type[Any], Callable[[Any], str]] = {
    JobObserved: _observed,
    JobStateChanged: _state_changed,
    JobProgress: _progress,
    JobCompleted: _completed,
    JobStalled: _stalled,
    JobRecovered: _stall,
}
