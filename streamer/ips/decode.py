"""Fast, strict mapping of IPS replies (raw bytes) to :mod:`streamer.model` values.

This is the hot path of every poll: a busy company can have ten thousand active jobs, and zeep's
generic object mapping is far too slow for that. A ``getActiveJobs`` reply takes one of two
paths, with one result:

* the *text* path (:mod:`streamer.ips.text_decode`) reads the job elements out of the reply
  text with the schema spelled out as regular expressions, and answers only when it can prove
  its answer is the tree walk's (a full decode of 10,000 jobs in about 3.5x a bare lxml parse);
* the *tree* walk, here: :mod:`streamer.ips.envelope` parses the reply and hands over the
  checked array element; its rows are walked once, each element's children matched against the
  schema sequence once per distinct shape (:mod:`streamer.ips.schema`). It decides whenever the
  text path does not, and it raises every error.

It is as strict as zeep's strict mode about everything it maps: a missing required element, an
element out of order or unexpected, a body in another namespace, a bad value, a truncated or
unparseable document all raise :class:`~streamer.ips.errors.IpsReplyError`. A partial answer must
never look like a shorter job list (every missing job would look completed). Where it is looser
or decides on its own, see :mod:`streamer.ips.values` (sub-job trees, non-finite progress).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxml import etree

from streamer.ips import envelope
from streamer.ips.array_cut import job_array
from streamer.ips.errors import IpsReplyError
from streamer.ips.schema import ABSENT, Names, names
from streamer.ips.text_decode import decode_scanned
from streamer.ips.values import MAX_SUB_JOB_DEPTH
from streamer.ips.values import boolean as _bool
from streamer.ips.values import dt as _dt
from streamer.ips.values import gc_paused as _gc_paused
from streamer.ips.values import intern as _intern
from streamer.ips.values import new_job_snapshot as _new_job_snapshot
from streamer.ips.values import new_job_status as _new_job_status
from streamer.ips.values import new_task_item_progress as _new_task_item_progress
from streamer.ips.values import new_task_progress as _new_task_progress
from streamer.ips.values import opt as _opt
from streamer.ips.values import opt_dt as _opt_dt
from streamer.ips.values import progress as _progress
from streamer.ips.values import sub_job as _sub_job
from streamer.model import (
    JobLog,
    JobLogDetail,
    JobLogDetailPage,
    JobSnapshot,
    SubJob,
    TaskItemProgress,
    TaskProgress,
)

__all__ = [
    "MAX_SUB_JOB_DEPTH",
    "decode_active_jobs",
    "decode_job_logs",
    "decode_job_rows",
    "decode_log_details",
    "job_array",
]

if TYPE_CHECKING:
    from streamer.ips.reply_cache import ActiveJobsCache

# ------------------------------------------------------------------------------------------
# getActiveJobs. The three mappers are the hot loop (once per job/task/item): children listed
# once, their tag tuple matched against the schema (cached per shape), texts read once.
# ------------------------------------------------------------------------------------------


def decode_active_jobs(
    body: bytes, namespace: str, cache: ActiveJobsCache | None = None
) -> tuple[JobSnapshot, ...]:
    """Decode a ``getActiveJobs`` reply in body ``namespace`` into job snapshots, in reply order.

    With a per-company ``cache`` (:class:`~streamer.ips.reply_cache.ActiveJobsCache`), job
    elements whose bytes did not change since an earlier reply are not parsed again: the earlier
    :class:`JobSnapshot` objects are returned. The result (or the error) is the same either way.
    """
    if cache is not None:
        return cache.decode(body, namespace)
    scanned = decode_scanned(body, namespace)
    if scanned is not None:
        return scanned
    return decode_job_rows(job_array(body, namespace), namespace)


def decode_job_rows(array: etree._Element, namespace: str) -> tuple[JobSnapshot, ...]:
    """Decode the ``items`` of a checked ``jobArray`` (see :func:`job_array`), in order."""
    nm = names(namespace)
    rows = envelope.items(array, nm.items)
    jobs: list[JobSnapshot] = []
    append = jobs.append
    try:
        with _gc_paused():
            for row in rows:
                append(_active_job(row, nm))
    except (ValueError, TypeError) as exc:
        raise IpsReplyError(f"ActiveJob #{len(jobs)}: invalid value: {exc}", kind="schema") from exc
    return tuple(jobs)


def _active_job(row: etree._Element, nm: Names) -> JobSnapshot:
    ch = list(row)
    tags: tuple[Any, ...] = tuple([c.tag for c in ch])  # str after parsing
    layout = nm.active_job.layout(tags)
    texts: list[Any] = [c.text for c in ch]  # lxml: an empty element's text is None
    texts.append(ABSENT)  # what a leaf that is not there (index -1) reads
    # Locals are named after the schema elements (in schema order): the mapping reads off.
    (
        companyHandle, jobHandle, name, originalName, type_, state, submitUserEmail, locale,
        description, serverName, startDate, triggerTime, totalSize, progress, progressMessage,
        lastProgressUpdate,
    ) = layout.leaf_texts(texts)  # fmt: skip
    tasks_at = layout.nested["taskProgressArray"]
    task_rows = ch[tasks_at]
    tasks = (
        tuple([_task(x, nm) for x in envelope.items(task_rows, nm.items)]) if len(task_rows) else ()
    )
    sub_job: SubJob | None = None
    extra = len(ch) - tasks_at - 1  # the sub-job slots are the last of the sequence
    if extra:
        if extra > 1:
            raise IpsReplyError("ActiveJob: more than one sub-job element", kind="schema")
        sub_job = _sub_job(ch[-1], nm, nm.sub_jobs[tags[-1]])
    # Handles and names are unique per job; the other texts repeat and are interned.
    return _new_job_snapshot(
        company_handle=_intern(companyHandle or ""),
        job_handle=jobHandle or "",
        name=name or "",
        original_name=originalName or "",
        type=_intern(type_ or ""),
        submit_user_email=_intern(submitUserEmail or ""),
        locale=_opt(locale),
        description=None if description is ABSENT else description,
        server_name=_intern(serverName or ""),
        start_date=_dt(startDate),
        trigger_time=_opt_dt(triggerTime),
        status=_new_job_status(
            state=_intern(state or ""),
            progress=int(progress),  # None -> TypeError, reported
            progress_message=_intern(progressMessage or ""),
            last_progress_update=_dt(lastProgressUpdate),
            total_size=int(totalSize),
            task_progress=tasks,
        ),
        sub_job=sub_job,
    )


def _task(row: etree._Element, nm: Names) -> TaskProgress:
    ch = list(row)
    tags: tuple[Any, ...] = tuple([c.tag for c in ch])  # str after parsing
    seq = nm.task
    if tags != seq.tags:  # every TaskProgress element is required: one valid shape
        seq.layout(tags)  # raises the schema error
    texts: list[Any] = [c.text for c in ch]
    (
        taskType, taskState, numProcessed, numProcessing, numPending, progress, progressMessage,
        lastProgressUpdate, _,
    ) = texts  # fmt: skip
    item_rows = ch[8]  # taskItemProgressArray, the last of the one valid shape
    items = (
        tuple([_task_item(i, nm) for i in envelope.items(item_rows, nm.items)])
        if len(item_rows)
        else ()
    )
    return _new_task_progress(
        task_type=_intern(taskType or ""),
        task_state=_intern(taskState or ""),
        num_processed=int(numProcessed),
        num_processing=int(numProcessing),
        num_pending=int(numPending),
        progress=_progress(progress),
        progress_message=_intern(progressMessage or ""),
        last_progress_update=_dt(lastProgressUpdate),
        items=items,
    )


def _task_item(row: etree._Element, nm: Names) -> TaskItemProgress:
    ch = list(row)
    tags: tuple[Any, ...] = tuple([c.tag for c in ch])  # str after parsing
    seq = nm.task_item
    if tags != seq.tags:  # every TaskItemProgress element is required: one valid shape
        seq.layout(tags)  # raises the schema error
    texts: list[Any] = [c.text for c in ch]
    itemName, progress, progressMessage, lastProgressUpdate = texts
    return _new_task_item_progress(
        item_name=_intern(itemName or ""),
        progress=_progress(progress),
        progress_message=_intern(progressMessage or ""),
        last_progress_update=_dt(lastProgressUpdate),
    )


# ------------------------------------------------------------------------------------------
# getJobLogDetails / getJobLogs
# ------------------------------------------------------------------------------------------


def decode_job_logs(
    body: bytes, namespace: str, *, operation: str | None = None
) -> tuple[JobLog, ...]:
    """Decode a ``getJobLogDetails`` (or ``getJobLogs``) reply into job logs, in reply order.

    ``operation`` pins the expected return element; by default either operation's is accepted.
    """
    nm = names(namespace)
    expected = nm.job_log_returns if operation is None else (f"{nm.prefix}{operation}Return",)
    rows = envelope.items(envelope.return_array(body, expected, nm.job_log_array), nm.items)
    logs: list[JobLog] = []
    try:
        with _gc_paused():
            for row in rows:
                logs.append(_job_log(row, nm))
    except (ValueError, TypeError) as exc:
        raise IpsReplyError(f"JobLog #{len(logs)}: invalid value: {exc}", kind="schema") from exc
    return tuple(logs)


def _job_log(row: etree._Element, nm: Names) -> JobLog:
    ch = list(row)
    layout = nm.job_log.layout(envelope.tags(ch))
    texts: list[Any] = [c.text for c in ch]
    texts.append(ABSENT)  # what a leaf that is not there (index -1) reads
    (
        companyHandle, jobHandle, jobName, originalJobName, submitUserEmail, logType, _jobSubType,
        startDate, endDate, _description, fileSuccessCount, fileErrorCount, fileWarningCount,
        fileDuplicateCount, fileUpdateCount, totalFileCount, transferSuccessCount,
        transferErrorCount, transferWarningCount, fatalError, detailTotalRows,
    ) = layout.leaf_texts(texts)  # fmt: skip
    details_at = layout.nested["detailArray"]
    detail_types = [] if details_at < 0 else _detail_log_types(ch[details_at], nm)
    if detailTotalRows is not ABSENT:
        int(detailTotalRows)  # validated, not kept
    return JobLog(
        company_handle=companyHandle or "",
        job_handle=jobHandle or "",
        job_name=jobName or "",
        original_job_name=originalJobName or "",
        log_type=logType or "",
        start_date=_opt_dt(startDate),
        end_date=_opt_dt(endDate),
        file_success_count=int(fileSuccessCount),
        file_error_count=int(fileErrorCount),
        file_warning_count=int(fileWarningCount),
        file_duplicate_count=int(fileDuplicateCount),
        file_update_count=int(fileUpdateCount),
        total_file_count=int(totalFileCount),
        transfer_success_count=int(transferSuccessCount),
        transfer_error_count=int(transferErrorCount),
        transfer_warning_count=int(transferWarningCount),
        fatal_error=_bool(fatalError),
        detail_log_types=tuple(detail_types),
        submit_user_email=_intern(submitUserEmail) if submitUserEmail else "",
    )


def _detail_log_types(array: etree._Element, nm: Names) -> list[str]:
    """The ``logType`` of each ``JobLogDetail`` of a ``detailArray``; dates validated."""
    out: list[str] = []
    for detail in envelope.items(array, nm.items):
        ch = list(detail)
        layout = nm.detail.layout(envelope.tags(ch))
        texts: list[Any] = [c.text for c in ch]
        texts.append(ABSENT)
        _message, logType, dateCreated, *_asset = layout.leaf_texts(texts)
        if dateCreated is not ABSENT:
            _dt(dateCreated)  # validated, not kept
        aux_at = layout.nested["auxArray"]
        if aux_at >= 0:
            for aux in envelope.items(ch[aux_at], nm.items):
                ach = list(aux)
                aux_texts: list[Any] = [c.text for c in ach]
                aux_texts.append(ABSENT)
                _aux_message, _aux_type, auxDateCreated = nm.aux.layout(
                    envelope.tags(ach)
                ).leaf_texts(aux_texts)
                if auxDateCreated is not ABSENT:
                    _dt(auxDateCreated)  # validated, not kept
        out.append(logType or "")
    return out


def decode_log_details(
    body: bytes, namespace: str, *, job_handle: str, max_rows: int
) -> JobLogDetailPage | None:
    """Decode a ``getJobLogDetails`` reply into the detail page of ``job_handle``'s log.

    None when the reply holds no log of that job (logs of other jobs are never read as its own).
    At most ``max_rows`` detail rows are kept, in reply order, whatever page size the server
    used; ``total_rows`` is the log's ``detailTotalRows``. Validation is as strict as for
    :func:`decode_job_logs`.
    """
    nm = names(namespace)
    expected = (f"{nm.prefix}getJobLogDetailsReturn",)
    rows = envelope.items(envelope.return_array(body, expected, nm.job_log_array), nm.items)
    try:
        for row in rows:
            ch = list(row)
            layout = nm.job_log.layout(envelope.tags(ch))
            texts: list[Any] = [c.text for c in ch]
            texts.append(ABSENT)
            leaves = layout.leaf_texts(texts)
            if (leaves[1] or "") != job_handle:
                continue
            _job_log(row, nm)  # the whole log validated, as any other
            total = leaves[-1]
            at = layout.nested["detailArray"]
            details = () if at < 0 else _details(ch[at], nm, max_rows)
            return JobLogDetailPage(
                job_handle=job_handle,
                details=details,
                total_rows=None if total is ABSENT else int(total),
            )
    except (ValueError, TypeError) as exc:
        raise IpsReplyError(f"JobLog details: invalid value: {exc}", kind="schema") from exc
    return None


def _details(array: etree._Element, nm: Names, max_rows: int) -> tuple[JobLogDetail, ...]:
    """The first ``max_rows`` ``JobLogDetail`` rows of a ``detailArray``."""
    out: list[JobLogDetail] = []
    for detail in envelope.items(array, nm.items):
        if len(out) >= max_rows:
            break
        ch = list(detail)
        layout = nm.detail.layout(envelope.tags(ch))
        texts: list[Any] = [c.text for c in ch]
        texts.append(ABSENT)
        message, log_type, created, asset_name, asset_type, _handle = layout.leaf_texts(texts)
        out.append(
            JobLogDetail(
                log_type=log_type or "",
                message=message or "",
                created_at=_opt_dt(created),
                asset_name=_opt(asset_name),
                asset_type=_opt(asset_type),
            )
        )
    return tuple(out)
