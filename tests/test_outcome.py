"""Job log → outcome classification (an inference, ips-api.md §5.4)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.model import JobLog, Outcome, OutcomeCounts
from streamer.outcome import classify, counts
from tests.strategies import job_logs

END = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

CLEAN = JobLog(
    company_handle="c|1",
    job_handle="j|1",
    job_name="upload_2026-11-28-12:00:00.000",
    original_job_name="upload",
    log_type="EndUpload",
    start_date=END,
    end_date=END,
    file_success_count=10,
    file_error_count=0,
    file_warning_count=0,
    file_duplicate_count=0,
    file_update_count=0,
    total_file_count=10,
    transfer_success_count=10,
    transfer_error_count=0,
    transfer_warning_count=0,
    fatal_error=False,
    detail_log_types=("BeginUpload", "FileBegin", "UploadSuccess", "EndUpload"),
)


def test_clean_log_succeeded() -> None:
    """A log without errors, warnings or fatal flag is a success."""
    assert classify(CLEAN) is Outcome.SUCCEEDED


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"fatal_error": True}, Outcome.FAILED),
        ({"detail_log_types": ("BeginUpload", "FatalError")}, Outcome.FAILED),
        ({"log_type": "FatalError"}, Outcome.FAILED),
        ({"file_error_count": 1}, Outcome.COMPLETED_WITH_ERRORS),
        ({"transfer_error_count": 2}, Outcome.COMPLETED_WITH_ERRORS),
        ({"detail_log_types": ("UploadError",)}, Outcome.COMPLETED_WITH_ERRORS),
        ({"detail_log_types": ("IPSJobLog.gcUploadError",)}, Outcome.COMPLETED_WITH_ERRORS),
        ({"detail_log_types": ("PublishFailure",)}, Outcome.COMPLETED_WITH_ERRORS),
        ({"file_warning_count": 1}, Outcome.COMPLETED_WITH_WARNINGS),
        ({"transfer_warning_count": 1}, Outcome.COMPLETED_WITH_WARNINGS),
        ({"detail_log_types": ("IPSJobLog.gcUploadWarning",)}, Outcome.COMPLETED_WITH_WARNINGS),
        ({"detail_log_types": ("uploaderror", "Warnings")}, Outcome.SUCCEEDED),
    ],
)
def test_each_rule(change: dict[str, object], expected: Outcome) -> None:
    """Each single signal maps to its outcome; matching is case-sensitive and by suffix."""
    assert classify(replace(CLEAN, **change)) is expected  # type: ignore[arg-type]


def test_fatal_detail_wins_over_counts() -> None:
    """A FatalError detail fails the job even when fatalError is false and errors are counted."""
    log = replace(CLEAN, fatal_error=False, file_error_count=3, detail_log_types=("FatalError",))
    assert classify(log) is Outcome.FAILED


def test_errors_win_over_warnings() -> None:
    """Errors and warnings together are completed_with_errors."""
    log = replace(CLEAN, file_warning_count=4, detail_log_types=("UploadError",))
    assert classify(log) is Outcome.COMPLETED_WITH_ERRORS


def test_counts_copies_every_count() -> None:
    """counts() carries each of the nine job log counts to its own field."""
    log = replace(
        CLEAN,
        file_success_count=1,
        file_error_count=2,
        file_warning_count=3,
        file_duplicate_count=4,
        file_update_count=5,
        total_file_count=6,
        transfer_success_count=7,
        transfer_error_count=8,
        transfer_warning_count=9,
    )
    assert counts(log) == OutcomeCounts(1, 2, 3, 4, 5, 6, 7, 8, 9)


@settings(max_examples=200)
@given(job_logs())
def test_classification_precedence(log: JobLog) -> None:
    """Any log gets exactly the outcome of the first matching rule: fatal, errors, warnings."""
    types = (log.log_type, *log.detail_log_types)
    if log.fatal_error or "FatalError" in types:
        expected = Outcome.FAILED
    elif (
        log.file_error_count
        or log.transfer_error_count
        or any(t.endswith(("Error", "Failure")) for t in types)
    ):
        expected = Outcome.COMPLETED_WITH_ERRORS
    elif (
        log.file_warning_count
        or log.transfer_warning_count
        or any(t.endswith("Warning") for t in types)
    ):
        expected = Outcome.COMPLETED_WITH_WARNINGS
    else:
        expected = Outcome.SUCCEEDED
    assert classify(log) is expected


@given(job_logs(), st.booleans())
def test_classify_ignores_end_date(log: JobLog, drop_end: bool) -> None:
    """Whether the log is final is the caller's business: end_date never changes the outcome."""
    other = replace(log, end_date=None if drop_end else END)
    assert classify(other) is classify(log)
