"""Job log → outcome: how a job that left ``getActiveJobs`` ended.

IPS has no "status" field for finished jobs; this rule is an **inference** (``ips-api.md`` §5.4)
from the ``JobLog`` counts, the ``fatalError`` flag and the Job Log Types of the log and its
details. The first matching rule wins:

1. ``failed``: ``fatalError`` is true, or a log type is exactly ``FatalError``;
2. ``completed_with_errors``: ``fileErrorCount > 0`` or ``transferErrorCount > 0``, or a log type
   ends in ``Error`` or ``Failure`` (``UploadError``, ``IPSJobLog.gcUploadError``);
3. ``completed_with_warnings``: ``fileWarningCount > 0`` or ``transferWarningCount > 0``, or a
   log type ends in ``Warning``;
4. ``succeeded`` otherwise.

"A log type" means any of ``JobLog.detail_log_types`` and the log's own ``log_type``: the same
vocabulary, and a top-level ``FatalError`` is no less fatal than a detail one. Matching is
case-sensitive, as the constants are. A log without ``endDate`` is not finished: deciding that it is
``unknown`` after bounded retries is the caller's job (``diff.complete``), not this module's.

Pure: no I/O, no clock, stdlib and :mod:`streamer.model` only.
"""

from __future__ import annotations

from collections.abc import Iterable

from streamer.model import JobLog, Outcome, OutcomeCounts

__all__ = ["classify", "counts"]

_FATAL = "FatalError"
_ERROR_SUFFIXES = ("Error", "Failure")
_WARNING_SUFFIX = "Warning"


def _log_types(log: JobLog) -> Iterable[str]:
    """The log's own type followed by its detail types."""
    yield log.log_type
    yield from log.detail_log_types


def classify(log: JobLog) -> Outcome:
    """Classify a finished job's log into an :class:`~streamer.model.Outcome` (rules above)."""
    types = tuple(_log_types(log))
    if log.fatal_error or _FATAL in types:
        return Outcome.FAILED
    if (
        log.file_error_count > 0
        or log.transfer_error_count > 0
        or any(t.endswith(_ERROR_SUFFIXES) for t in types)
    ):
        return Outcome.COMPLETED_WITH_ERRORS
    if (
        log.file_warning_count > 0
        or log.transfer_warning_count > 0
        or any(t.endswith(_WARNING_SUFFIX) for t in types)
    ):
        return Outcome.COMPLETED_WITH_WARNINGS
    return Outcome.SUCCEEDED


def counts(log: JobLog) -> OutcomeCounts:
    """The job log counts that ``job.completed`` carries."""
    return OutcomeCounts(
        file_success=log.file_success_count,
        file_error=log.file_error_count,
        file_warning=log.file_warning_count,
        file_duplicate=log.file_duplicate_count,
        file_update=log.file_update_count,
        total_file=log.total_file_count,
        transfer_success=log.transfer_success_count,
        transfer_error=log.transfer_error_count,
        transfer_warning=log.transfer_warning_count,
    )
