"""Keep every job's records within Kafka's record limit by cutting long fields, deterministically.

Pure: no I/O, no clock. A job's largest record is its checkpoint (``job.latest``), which carries
the snapshot and the last published status; ``job.observed`` carries the snapshot, the others a
status. So a job fits when ``snapshot + status + RECORD_OVERHEAD`` bytes are within the limit.

A job that does not fit is cut step by step, each step only if the previous did not suffice:

1. progress messages (job, tasks, task items) to :data:`MESSAGE_CHARS` characters;
2. task items to the first :data:`ITEMS_PER_TASK` of each task;
3. tasks to the first :data:`TASKS` of the job;
4. the sub-job's fields (its element name stays);
5. the definition's text fields (name, description, ...) to :data:`MESSAGE_CHARS`;
6. every task.

The result is flagged ``truncated``. The same input always gives the same output, so a job that
stays oversized does not look changed on every poll, and a restart diffs it like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from streamer.jsontext import snapshot_json, status_json
from streamer.model import JobSnapshot, JobStatus, SubJob, TaskItemProgress, TaskProgress

__all__ = [
    "ITEMS_PER_TASK",
    "MESSAGE_CHARS",
    "RECORD_OVERHEAD",
    "TASKS",
    "fit",
    "job_record_bytes",
]

#: Bytes a job record carries besides snapshot and status (other fields, key, CloudEvents headers).
RECORD_OVERHEAD = 4096
MESSAGE_CHARS = 1024
ITEMS_PER_TASK = 100
TASKS = 100


def job_record_bytes(job: JobSnapshot) -> int:
    """An upper bound of the size of the largest record that carries ``job``."""
    snapshot, status = snapshot_json(job), status_json(job.status)
    return len(snapshot.encode()) + len(status.encode()) + RECORD_OVERHEAD


def fit(job: JobSnapshot, max_bytes: int) -> JobSnapshot:
    """``job`` itself when its records fit ``max_bytes``, else a cut copy flagged truncated."""
    if _quick_fits(job, max_bytes) or job_record_bytes(job) <= max_bytes:
        return job
    for step in _STEPS:
        job = step(job)
        if job_record_bytes(job) <= max_bytes:
            break
    return replace(job, truncated=True)


def _quick_fits(job: JobSnapshot, max_bytes: int) -> bool:
    # A UTF-8 character is at most 4 bytes and JSON escapes at most 6 per character: a job
    # whose texts are short is within the limit without writing it out.
    status = job.status
    if job.sub_job is not None and job.sub_job.fields:
        return False
    texts = len(status.progress_message) + sum(
        len(t.progress_message) + len(t.task_type) + len(t.task_state) + 300 + _items_chars(t)
        for t in status.task_progress
    )
    definition = sum(
        len(v or "")
        for v in (
            job.company_handle,
            job.job_handle,
            job.name,
            job.original_name,
            job.type,
            job.submit_user_email,
            job.locale,
            job.description,
            job.server_name,
        )
    )
    return 6 * (2 * texts + definition) + 1024 + RECORD_OVERHEAD <= max_bytes


def _items_chars(task: TaskProgress) -> int:
    return sum(len(i.item_name) + len(i.progress_message) + 100 for i in task.items)


def _cut(text: str) -> str:
    if len(text) <= MESSAGE_CHARS:
        return text
    return f"{text[:MESSAGE_CHARS]}... [{len(text) - MESSAGE_CHARS} characters cut]"


def _opt_cut(text: str | None) -> str | None:
    return None if text is None else _cut(text)


def _with_tasks(job: JobSnapshot, tasks: tuple[TaskProgress, ...]) -> JobSnapshot:
    return replace(job, status=replace(job.status, task_progress=tasks))


def _cut_messages(job: JobSnapshot) -> JobSnapshot:
    def item(i: TaskItemProgress) -> TaskItemProgress:
        return replace(i, progress_message=_cut(i.progress_message))

    def task(t: TaskProgress) -> TaskProgress:
        return replace(
            t, progress_message=_cut(t.progress_message), items=tuple(map(item, t.items))
        )

    status: JobStatus = job.status
    return replace(
        job,
        status=replace(
            status,
            progress_message=_cut(status.progress_message),
            task_progress=tuple(map(task, status.task_progress)),
        ),
    )


def _cut_items(job: JobSnapshot) -> JobSnapshot:
    tasks = tuple(replace(t, items=t.items[:ITEMS_PER_TASK]) for t in job.status.task_progress)
    return _with_tasks(job, tasks)


def _cut_tasks(job: JobSnapshot) -> JobSnapshot:
    return _with_tasks(job, job.status.task_progress[:TASKS])


def _drop_sub_job_fields(job: JobSnapshot) -> JobSnapshot:
    sub = job.sub_job
    return job if sub is None else replace(job, sub_job=SubJob(sub.element))


def _cut_definition(job: JobSnapshot) -> JobSnapshot:
    return replace(
        job,
        name=_cut(job.name),
        original_name=_cut(job.original_name),
        type=_cut(job.type),
        submit_user_email=_cut(job.submit_user_email),
        locale=_opt_cut(job.locale),
        description=_opt_cut(job.description),
        server_name=_cut(job.server_name),
    )


def _drop_tasks(job: JobSnapshot) -> JobSnapshot:
    return _with_tasks(job, ())


_STEPS: tuple[Callable[[JobSnapshot], JobSnapshot], ...] = (
    _cut_messages,
    _cut_items,
    _cut_tasks,
    _drop_sub_job_fields,
    _cut_definition,
    _drop_tasks,
)
