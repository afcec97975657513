"""Completion context: who and what a finished or stalled job was, and what its job log said.

Pure: no I/O, no clock, stdlib and :mod:`streamer.model` only. The shell (the poller) makes the
``getJobLogDetails`` requests this module asks for (:func:`detail_queries`) and hands their pages
back to :func:`select`; everything that decides what an event carries lives here.

Rules:

1. **Who and what** (:func:`completed_with_job`, :func:`stalled_with_job`,
   :func:`completed_from_log`): name, original name, type and submitter come from the job's
   tracked snapshot, its last committed observation (restored from the checkpoint after a
   restart). A completion found in the job log listing (never observed) takes name, original
   name and submitter from its ``JobLog``; a ``JobLog`` has no job type, so ``jobType`` is null.
2. **Duration** (:func:`duration_s`): ``endedAt - startedAt`` of the job log in seconds; null
   unless both are known and the end is not before the start.
3. **Which completions get messages** (:func:`detail_queries`): those whose outcome is not
   ``succeeded`` and that have a job log (an ``unknown`` outcome without one has nothing to read).
   At most one request per kind, each asking one page of ``max_messages`` rows, filtered by
   ``logTypeArray`` and sorted by date:

   * errors, when the job failed or its log shows errors (counts, or error log types);
   * warnings, when its log shows warnings (counts, or warning log types).

   So a failed job without warnings, a job with errors only and a job with warnings only cost one
   small request each; only a log with both costs two. The types asked for are the documented
   error (warning) Job Log Types plus those the job's own log showed (:func:`log_kind`).
4. **Selection** (:func:`select`): per kind, the rows of that kind (rows of another kind are
   dropped: a server that ignores the filter must not turn a success row into an error), ordered
   by ``dateCreated`` (rows without a date last, reply order otherwise), the first
   ``max_messages`` kept; message, asset name and asset type cut to ``max_message_chars`` (an
   ellipsis marks a cut; log types, IPS constants, are kept whole up to 200 characters).
   The total of a kind is the page's ``detailTotalRows`` when every row of the page was of that
   kind (the filter was honoured), else the rows of that kind the page held; never fewer than
   the rows kept. A kind not asked for has no messages and total 0.
5. **Failure** (:func:`attach`): a completion whose look-up failed is published with
   ``logMessages`` null: never held back, never dropped. Its id (``<jobHandle>:<sequence>``)
   does not depend on the look-up, so a cycle regenerated after a crash keeps its ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, TypeAlias

from streamer.model import (
    JobCompleted,
    JobEvent,
    JobLog,
    JobLogDetail,
    JobLogDetailPage,
    JobSnapshot,
    JobStalled,
    LogMessage,
    LogMessages,
    Outcome,
)

__all__ = [
    "DOCUMENTED_ERROR_TYPES",
    "DOCUMENTED_WARNING_TYPES",
    "ContextSettings",
    "DetailQuery",
    "Kind",
    "attach",
    "completed_from_log",
    "completed_with_job",
    "cut",
    "detail_queries",
    "duration_s",
    "log_kind",
    "select",
    "stalled_with_job",
]

Kind: TypeAlias = Literal["error", "warning"]

#: Error and failure Job Log Types the IPS documentation lists (``r-job-log-types.md``); the
#: types a job's own log shows are asked for as well.
DOCUMENTED_ERROR_TYPES: tuple[str, ...] = (
    "AssetMigrationFailure",
    "FatalError",
    "GetFailure",
    "ImageRenderingPublishCleanupFailure",
    "ImageRenderingPublishError",
    "ImageServingPublishCleanupFailure",
    "ImageServingPublishError",
    "MarkForPublishFailure",
    "MetadataFailure",
    "PdfRipError",
    "PublishToCmError",
    "ServerDirectoryPublishError",
    "UploadError",
    "VideoPublishError",
)
#: Warning Job Log Types the IPS documentation lists.
DOCUMENTED_WARNING_TYPES: tuple[str, ...] = (
    "ImageServingPublishWarning",
    "ServerDirectoryPublishWarning",
    "UploadWarning",
    "VideoPublishWarning",
)

_ELLIPSIS = "…"
#: Longest log type kept: types are IPS constants (a few dozen characters), kept whole; the bound
#: is for hostile replies only, so that a completion always fits its record.
_TYPE_CHARS = 200


@dataclass(frozen=True, slots=True)
class ContextSettings:
    """How much of a job log a completion carries (``[completion]``)."""

    #: Messages kept per kind (errors, warnings); also the page size of each request.
    max_messages: int = 5
    #: Longest text kept of a message (and of an asset name or type).
    max_message_chars: int = 300

    def __post_init__(self) -> None:
        if self.max_messages < 1:
            raise ValueError("max_messages must be >= 1")
        if self.max_message_chars < 2:
            raise ValueError("max_message_chars must be >= 2")


@dataclass(frozen=True, slots=True)
class DetailQuery:
    """One ``getJobLogDetails`` request: a page of ``rows`` rows of the given log types."""

    kind: Kind
    log_types: tuple[str, ...]
    rows: int


def log_kind(log_type: str) -> Kind | None:
    """``"error"``, ``"warning"`` or None: the same suffix rules :mod:`streamer.outcome` uses."""
    if log_type == "FatalError" or log_type.endswith(("Error", "Failure")):
        return "error"
    if log_type.endswith("Warning"):
        return "warning"
    return None


def duration_s(started_at: datetime | None, ended_at: datetime | None) -> float | None:
    """``ended_at - started_at`` in seconds; None unless both are known and in order (rule 2)."""
    if started_at is None or ended_at is None or ended_at < started_at:
        return None
    return (ended_at - started_at).total_seconds()


def completed_with_job(event: JobCompleted, job: JobSnapshot) -> JobCompleted:
    """``event`` with the job's name, type and submitter from its snapshot, and its duration."""
    return replace(
        event,
        job_name=job.name,
        original_name=job.original_name,
        job_type=job.type,
        submit_user_email=job.submit_user_email,
        duration_s=duration_s(event.started_at, event.ended_at),
    )


def stalled_with_job(event: JobStalled, job: JobSnapshot) -> JobStalled:
    """``event`` with the job's name, type and submitter from its snapshot."""
    return replace(
        event,
        job_name=job.name,
        original_name=job.original_name,
        job_type=job.type,
        submit_user_email=job.submit_user_email,
    )


def completed_from_log(event: JobCompleted, log: JobLog) -> JobCompleted:
    """``event`` (never observed) with name and submitter from its job log, and its duration."""
    return replace(
        event,
        job_name=log.job_name,
        original_name=log.original_job_name,
        job_type=None,
        submit_user_email=log.submit_user_email,
        duration_s=duration_s(event.started_at, event.ended_at),
    )


def detail_queries(
    event: JobCompleted, seen_types: Iterable[str], settings: ContextSettings
) -> tuple[DetailQuery, ...]:
    """The requests that read ``event``'s messages (rule 3); empty when none are wanted.

    ``seen_types`` are the log types the job's log already showed (its detail rows from the
    outcome look-up; none for a completion found in the listing).
    """
    counts = event.counts
    if event.outcome is Outcome.SUCCEEDED or counts is None:
        return ()
    seen = {*seen_types, *(() if event.log_type is None else (event.log_type,))}
    kinds = {t: log_kind(t) for t in seen}
    errors = (
        event.outcome is Outcome.FAILED
        or counts.file_error > 0
        or counts.transfer_error > 0
        or "error" in kinds.values()
    )
    warnings = counts.file_warning > 0 or counts.transfer_warning > 0 or "warning" in kinds.values()
    wanted: list[tuple[Kind, tuple[str, ...]]] = []
    if errors:
        wanted.append(("error", DOCUMENTED_ERROR_TYPES))
    if warnings:
        wanted.append(("warning", DOCUMENTED_WARNING_TYPES))
    return tuple(
        DetailQuery(
            kind,
            tuple(sorted({*documented, *(t for t, k in kinds.items() if k == kind)})),
            settings.max_messages,
        )
        for kind, documented in wanted
    )


def cut(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters long; a cut one ends in an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + _ELLIPSIS


def select(pages: Mapping[Kind, JobLogDetailPage], settings: ContextSettings) -> LogMessages:
    """The messages a completion carries, from the pages its queries read (rule 4)."""
    errors, error_total = _kept(pages.get("error"), "error", settings)
    warnings, warning_total = _kept(pages.get("warning"), "warning", settings)
    return LogMessages(errors, warnings, error_total, warning_total)


def attach(
    events: Sequence[JobEvent], messages: Mapping[str, LogMessages | None]
) -> tuple[JobEvent, ...]:
    """``events`` with each completion named in ``messages`` carrying its messages (rule 5).

    A completion mapped to None (its look-up failed) or not named keeps ``logMessages`` null.
    """
    if not messages:
        return tuple(events)
    return tuple(
        replace(e, log_messages=messages[e.job_handle])
        if isinstance(e, JobCompleted) and messages.get(e.job_handle) is not None
        else e
        for e in events
    )


def _by_date(rows: Sequence[JobLogDetail]) -> list[JobLogDetail]:
    """Rows by ``dateCreated`` (stable: reply order among equal dates), undated rows last."""
    dated = sorted((d.created_at, i) for i, d in enumerate(rows) if d.created_at is not None)
    return [rows[i] for _, i in dated] + [d for d in rows if d.created_at is None]


def _kept(
    page: JobLogDetailPage | None, kind: Kind, settings: ContextSettings
) -> tuple[tuple[LogMessage, ...], int]:
    if page is None:
        return (), 0
    rows = [d for d in page.details if log_kind(d.log_type) == kind]
    ordered = _by_date(rows)
    n = settings.max_message_chars
    kept = tuple(
        LogMessage(
            message=cut(d.message.strip(), n),
            log_type=cut(d.log_type, _TYPE_CHARS),
            asset_name=None if d.asset_name is None else cut(d.asset_name, n),
            asset_type=None if d.asset_type is None else cut(d.asset_type, n),
            at=d.created_at,
        )
        for d in ordered[: settings.max_messages]
    )
    honoured = len(rows) == len(page.details)
    total = page.total_rows if honoured and page.total_rows is not None else len(rows)
    return kept, max(total, len(kept))
