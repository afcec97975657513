"""Completion context, the pure part: who and what a job was, which job log pages to read, and
which of their messages a completion keeps (unit and property tests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.completion_context import (
    DOCUMENTED_ERROR_TYPES,
    DOCUMENTED_WARNING_TYPES,
    ContextSettings,
    attach,
    completed_from_log,
    cut,
    detail_queries,
    duration_s,
    log_kind,
    select,
)
from streamer.cycle import settle
from streamer.diff import DiffSettings, diff
from streamer.model import (
    JobCompleted,
    JobEvent,
    JobLog,
    JobLogDetail,
    JobLogDetailPage,
    JobStalled,
    LogMessage,
    LogMessages,
    Outcome,
    OutcomeCounts,
)
from tests.strategies import aware_datetimes, job_events, texts
from tests.test_diff import COMPANY, at, job, snap

SMALL = ContextSettings(max_messages=2, max_message_chars=20)
NO_COUNTS = OutcomeCounts()


def completed(
    outcome: Outcome,
    counts: OutcomeCounts | None = NO_COUNTS,
    log_type: str | None = "EndUpload",
) -> JobCompleted:
    """A completion of j|1 with that outcome, counts and log type."""
    return JobCompleted(
        COMPANY, "j|1", 3, at(9), outcome=outcome, last_status=None, counts=counts,
        log_type=log_type, started_at=at(0), ended_at=at(85),
    )  # fmt: skip


def row(
    log_type: str, message: str, seconds: float | None, asset: str | None = None
) -> JobLogDetail:
    """A detail row created at ``seconds`` after T0 (None: no dateCreated)."""
    return JobLogDetail(log_type, message, None if seconds is None else at(seconds), asset, "Image")


# -- kinds, durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("log_type", "kind"),
    [
        ("FatalError", "error"),
        ("UploadError", "error"),
        ("AssetMigrationFailure", "error"),
        ("IPSJobLog.gcUploadError", "error"),
        ("UploadWarning", "warning"),
        ("UploadSuccess", None),
        ("EndUpload", None),
        ("uploaderror", None),
    ],
)
def test_log_kind_follows_the_outcome_suffix_rules(log_type: str, kind: str | None) -> None:
    """Error/Failure/FatalError are errors, Warning warnings, case-sensitive like outcome.py."""
    assert log_kind(log_type) == kind


def test_documented_types_are_of_their_kind() -> None:
    """Every documented error type reads as an error, every warning type as a warning."""
    assert {log_kind(t) for t in DOCUMENTED_ERROR_TYPES} == {"error"}
    assert {log_kind(t) for t in DOCUMENTED_WARNING_TYPES} == {"warning"}


def test_duration_needs_both_times_in_order() -> None:
    """endedAt - startedAt in seconds; None without either or when the end is before the start."""
    assert duration_s(at(0), at(85.5)) == 85.5
    assert duration_s(at(10), at(10)) == 0.0
    assert duration_s(None, at(1)) is None
    assert duration_s(at(1), None) is None
    assert duration_s(at(2), at(1)) is None


# -- which pages ----------------------------------------------------------------------------


def test_succeeded_and_logless_completions_read_nothing() -> None:
    """No request for a success, nor for an unknown outcome without any job log."""
    assert detail_queries(completed(Outcome.SUCCEEDED), ("UploadError",), SMALL) == ()
    assert detail_queries(completed(Outcome.UNKNOWN, counts=None), (), SMALL) == ()


def test_failed_job_without_warnings_costs_one_error_page() -> None:
    """A failed job asks one page of max_messages error rows: documented and seen types."""
    (query,) = detail_queries(
        completed(Outcome.FAILED), ("BeginReoptimize", "ReoptimizeError", "FatalError"), SMALL
    )
    assert query.kind == "error"
    assert query.rows == 2
    assert set(query.log_types) == {*DOCUMENTED_ERROR_TYPES, "ReoptimizeError"}
    assert list(query.log_types) == sorted(query.log_types)


def test_warnings_only_job_asks_warnings_only() -> None:
    """completed_with_warnings: no error page (its log shows none), one warning page."""
    (query,) = detail_queries(
        completed(Outcome.COMPLETED_WITH_WARNINGS, OutcomeCounts(file_warning=4)), (), SMALL
    )
    assert query.kind == "warning"
    assert set(query.log_types) == set(DOCUMENTED_WARNING_TYPES)


@pytest.mark.parametrize(
    ("counts", "seen"),
    [
        (OutcomeCounts(file_error=1, file_warning=1), ()),
        (OutcomeCounts(transfer_error=1, transfer_warning=1), ()),
        (OutcomeCounts(), ("UploadError", "VideoPublishWarning")),
    ],
)
def test_errors_and_warnings_ask_one_page_each(
    counts: OutcomeCounts, seen: tuple[str, ...]
) -> None:
    """A log showing both (by counts or by seen types) asks an error and a warning page."""
    queries = detail_queries(completed(Outcome.COMPLETED_WITH_ERRORS, counts), seen, SMALL)
    assert [q.kind for q in queries] == ["error", "warning"]


def test_the_logs_own_type_counts_as_seen() -> None:
    """A log whose own type is an undocumented error type asks for that type too."""
    (query,) = detail_queries(
        completed(Outcome.COMPLETED_WITH_ERRORS, log_type="EndRipPdfsError"), (), SMALL
    )
    assert "EndRipPdfsError" in query.log_types


# -- selection ------------------------------------------------------------------------------


def test_first_messages_by_date_cut_with_their_assets_and_totals() -> None:
    """Per kind the first max_messages rows by date, texts cut, the page's totals."""
    errors = JobLogDetailPage(
        "j|1",
        (
            row("UploadError", "second error", 20, "b.jpg"),
            row("FatalError", "a very long fatal error message indeed", 30),
            row("UploadError", "first error", 10, "a.jpg"),
        ),
        total_rows=9,
    )
    warnings = JobLogDetailPage("j|1", (row("UploadWarning", "w", None, "c.jpg"),), 1)
    got = select({"error": errors, "warning": warnings}, SMALL)
    assert got == LogMessages(
        errors=(
            LogMessage("first error", "UploadError", "a.jpg", "Image", at(10)),
            LogMessage("second error", "UploadError", "b.jpg", "Image", at(20)),
        ),
        warnings=(LogMessage("w", "UploadWarning", "c.jpg", "Image", None),),
        error_total=9,
        warning_total=1,
    )


def test_rows_of_another_kind_are_dropped_and_totals_counted() -> None:
    """A server that ignores logTypeArray: success rows never become errors; totals are
    counted from the rows of the kind, not taken from detailTotalRows."""
    page = JobLogDetailPage(
        "j|1",
        (row("UploadSuccess", "ok", 1), row("UploadError", "bad", 2), row("UploadError", "x", 3)),
        total_rows=500,
    )
    got = select({"error": page}, ContextSettings(max_messages=1))
    assert [m.message for m in got.errors] == ["bad"]
    assert (got.error_total, got.warnings, got.warning_total) == (2, (), 0)


def test_undated_rows_come_last_in_reply_order() -> None:
    """Rows without dateCreated (2013-02-15) follow the dated ones, in the order IPS sent them."""
    page = JobLogDetailPage(
        "j|1",
        (
            row("UploadError", "u1", None),
            row("UploadError", "d", 5),
            row("UploadError", "u2", None),
        ),
    )
    got = select({"error": page}, ContextSettings(max_messages=3))
    assert [m.message for m in got.errors] == ["d", "u1", "u2"]
    assert got.error_total == 3


def test_cut_keeps_short_texts_and_marks_cut_ones() -> None:
    """A text within the limit is kept; a longer one ends in an ellipsis at exactly the limit."""
    assert cut("short", 5) == "short"
    assert cut("longer", 5) == "long…"
    assert cut("  padded  ".strip(), 20) == "padded"


def test_settings_are_validated() -> None:
    """At least one message, at least two characters."""
    with pytest.raises(ValueError, match="max_messages"):
        ContextSettings(max_messages=0)
    with pytest.raises(ValueError, match="max_message_chars"):
        ContextSettings(max_message_chars=1)


_kinds = st.sampled_from(("UploadError", "FatalError", "UploadWarning", "UploadSuccess", "X"))
_rows = st.builds(
    JobLogDetail,
    log_type=_kinds,
    message=texts,
    created_at=st.none() | aware_datetimes,
    asset_name=st.none() | st.text(max_size=40),
    asset_type=st.none() | texts,
)
_pages = st.builds(
    JobLogDetailPage,
    job_handle=st.just("j|1"),
    details=st.lists(_rows, max_size=12).map(tuple),
    total_rows=st.none() | st.integers(min_value=0, max_value=10_000),
)


@settings(max_examples=300, deadline=None)
@given(
    pages=st.dictionaries(st.sampled_from(("error", "warning")), _pages),
    n=st.integers(min_value=1, max_value=6),
    chars=st.integers(min_value=2, max_value=15),
)
def test_selection_is_bounded_of_its_kind_and_a_date_ordered_prefix(
    pages: dict[str, JobLogDetailPage], n: int, chars: int
) -> None:
    """Whatever the pages: at most n messages per kind, each text at most `chars` long, only
    rows of that kind, the earliest ones by date, totals at least what was kept."""
    cfg = ContextSettings(max_messages=n, max_message_chars=chars)
    got = select(pages, cfg)  # type: ignore[arg-type]
    assert got == select(pages, cfg)  # type: ignore[arg-type]  # deterministic
    for kind, kept, total in (
        ("error", got.errors, got.error_total),
        ("warning", got.warnings, got.warning_total),
    ):
        page = pages.get(kind)
        rows = [] if page is None else [d for d in page.details if log_kind(d.log_type) == kind]
        assert len(kept) == min(n, len(rows))
        assert total >= len(kept)
        if page is None:
            assert total == 0
        for m in kept:
            assert log_kind(m.log_type) == kind
            assert len(m.message) <= chars
            assert m.asset_name is None or len(m.asset_name) <= chars
        dated = sorted(d.created_at for d in rows if d.created_at is not None)
        assert [m.at for m in kept if m.at is not None] == dated[: len(kept)][
            : len([m for m in kept if m.at is not None])
        ]
        if len(kept) > len(dated):
            assert all(m.at is None for m in kept[len(dated) :])


@given(text=st.text(max_size=50), limit=st.integers(min_value=2, max_value=60))
def test_cut_is_a_bounded_prefix(text: str, limit: int) -> None:
    """cut() never exceeds the limit, keeps short texts whole and cut ones as a prefix."""
    out = cut(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    else:
        assert out.endswith("…")
        assert text.startswith(out[:-1])


@settings(max_examples=200, deadline=None)
@given(events=st.lists(job_events(), max_size=6), data=st.data())
def test_attach_changes_only_the_messages_of_named_completions(
    events: list[JobEvent], data: st.DataObject
) -> None:
    """attach() keeps order, ids and every other field; a None answer keeps logMessages null."""
    handles = sorted({e.job_handle for e in events})
    answer = LogMessages(errors=(LogMessage("m", "UploadError"),), error_total=1)
    messages = {h: data.draw(st.sampled_from((None, answer))) for h in handles}
    out = attach(events, messages)
    assert [e.event_id for e in out] == [e.event_id for e in events]
    for before, after in zip(events, out, strict=True):
        if isinstance(before, JobCompleted) and messages[before.job_handle] is not None:
            assert after == replace(before, log_messages=answer)
        else:
            assert after == before


# -- who and what ---------------------------------------------------------------------------


def test_settled_completion_and_stall_carry_the_tracked_jobs_identity() -> None:
    """settle() names completed and stalled jobs from their tracked snapshot, with duration."""
    cfg = DiffSettings(stall_after_s=60, log_max_attempts=3)
    first = diff({}, snap(job("j|1"), job("j|2", progress=10)), at(0), cfg, None)
    second = diff(first.state, snap(job("j|2", progress=10)), at(90), cfg, at(0))
    log = JobLog(
        COMPANY, "j|1", "renamed-in-log", "j|1", "EndUpload", at(1), at(86),
        1, 2, 0, 0, 0, 3, 0, 0, 0, True,
    )  # fmt: skip
    settled = settle(second, {"j|1": log}, at(90), cfg)
    stalled, done = settled.events
    assert isinstance(stalled, JobStalled)
    assert isinstance(done, JobCompleted)
    expected = job("j|1")
    assert (done.job_name, done.original_name, done.job_type, done.submit_user_email) == (
        expected.name,
        "j|1",
        "UrlUpload",
        "ops@example.com",
    )
    assert done.duration_s == 85.0
    assert done.outcome is Outcome.FAILED
    assert done.log_messages is None  # the shell attaches them
    assert (stalled.job_name, stalled.job_type, stalled.submit_user_email) == (
        job("j|2").name,
        "UrlUpload",
        "ops@example.com",
    )


def test_a_never_observed_completion_is_named_from_its_log() -> None:
    """Name, original name and submitter from the JobLog; no type (a JobLog has none)."""
    log = JobLog(
        COMPANY, "j|7", "nightly_2026", "nightly", "EndUpload", at(0), at(30),
        0, 0, 0, 0, 0, 0, 0, 0, 0, False, submit_user_email="ops@example.com",
    )  # fmt: skip
    event = completed_from_log(completed(Outcome.SUCCEEDED), log)
    assert (event.job_name, event.original_name, event.job_type) == (
        "nightly_2026",
        "nightly",
        None,
    )
    assert event.submit_user_email == "ops@example.com"
    assert event.duration_s == 85.0  # from the event's own log times
    assert event.ended_at - event.started_at == timedelta(seconds=85)  # type: ignore[operator]
    assert isinstance(event.observed_at, datetime)
