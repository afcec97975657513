"""The model of ``streamer tail``: records decoded and merged in event-time order, the view's state.

Pure: no I/O, no clock (times come in with the events). :mod:`streamer.tail_screen` renders a
:class:`TailState`; :mod:`streamer.tail` feeds it from Kafka. Event types are handled by their
short name (``job.completed``): a contract v2 ``ce_type`` (``dev.ips-job-streamer.job.completed``)
and a v1 one (records written before the upgrade) read alike.
"""

from __future__ import annotations

import contextlib
import heapq
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from streamer.encode import short_type

_OUTCOME_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "completed_with_errors": "red",
    "completed_with_warnings": "yellow",
    "unknown": "magenta",
}
_OUTCOME_TEXT = {
    "succeeded": "done: succeeded",
    "failed": "done: FAILED",
    "completed_with_errors": "done: with errors",
    "completed_with_warnings": "done: with warnings",
    "unknown": "done: outcome unknown",
}
#: Event types shown in the recent-changes pane (progress only moves the bars).
_CHANGE_TYPES = frozenset(
    ("job.observed", "job.state_changed", "job.completed", "job.stalled", "job.recovered")
)
#: How many recent changes are kept (more than any terminal shows).
RECENT_KEPT = 200
#: Seconds between retries while the broker is unreachable or the topics do not exist yet.
RETRY_S = 5.0
#: Seconds without any record (heartbeats included) after which the live view says so: well
#: above the default heartbeat cadence (heartbeat.every_s, 30 s) of a quiet company.
QUIET_S = 75.0
_EPOCH = datetime.fromtimestamp(0, UTC)


# --------------------------------------------------------------------------------------------
# Records -> events, in order
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded record of a public topic."""

    topic: str
    #: The short event type (``job.completed``), whichever contract version wrote the record.
    type: str
    value: Mapping[str, Any] | None
    #: When it happened: ``observedAt`` of a job event, ``polledAt`` of a heartbeat, ``at`` of a
    #: notification; the record's timestamp otherwise.
    at: datetime
    #: The job's sequence number (0 for records without one): orders a job's events of one cycle.
    sequence: int = 0
    subject: str = ""
    headers: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def order(self) -> tuple[datetime, int]:
        """Sort key across topics and partitions: event time, then the job's sequence."""
        return (self.at, self.sequence)


def _time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def decode_event(
    topic: str, headers: Mapping[str, bytes], value: bytes | None, timestamp_ms: int | None
) -> Event:
    """An :class:`Event` from a record's parts; a value that is not a JSON object is kept as
    ``None`` (a tombstone, or something this view cannot show)."""
    parsed: Any = None
    if value is not None:
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            parsed = json.loads(value)
    doc = parsed if isinstance(parsed, dict) else None
    ce_type = headers.get("ce_type", b"").decode(errors="replace")
    at = None
    if doc is not None:
        at = _time(doc.get("observedAt") or doc.get("polledAt") or doc.get("at"))
    if at is None:
        at = _time(headers.get("ce_time", b"").decode(errors="replace"))
    if at is None:
        at = datetime.fromtimestamp((timestamp_ms or 0) / 1000, UTC)
    seq = doc.get("sequence") if doc is not None else None
    return Event(
        topic=topic,
        type=short_type(ce_type or (str(doc.get("type", "")) if doc else "")),
        value=doc,
        at=at,
        sequence=seq if isinstance(seq, int) else 0,
        subject=headers.get("ce_subject", b"").decode(errors="replace"),
        headers=dict(headers),
    )


class Merger:
    """Merges the records of several partitions into one stream in event-time order.

    A partition's records are in order, partitions are not: a consumer may get ten minutes of the
    state topic before the first progress record of the same minutes. An event is released once
    every partition that may still deliver an earlier one has either delivered something at least
    as late (its watermark) or is caught up (nothing more to read now).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, int, Event]] = []
        self._watermark: dict[Any, datetime] = {}
        self._n = 0

    def add(self, partition: Any, events: Iterable[Event]) -> None:
        """Buffer a partition's events (in that partition's order)."""
        for e in events:
            self._n += 1  # ties keep arrival order
            heapq.heappush(self._heap, (e.at, e.sequence, self._n, e))
            mark = self._watermark.get(partition)
            self._watermark[partition] = e.at if mark is None else max(mark, e.at)

    def release(self, lagging: Iterable[Any]) -> list[Event]:
        """The buffered events no ``lagging`` partition (one with more to read) can precede."""
        marks = [self._watermark.get(p, _EPOCH) for p in lagging]
        limit = min(marks) if marks else None
        out: list[Event] = []
        while self._heap and (limit is None or self._heap[0][0] <= limit):
            out.append(heapq.heappop(self._heap)[3])
        return out

    def __len__(self) -> int:
        return len(self._heap)


# --------------------------------------------------------------------------------------------
# The view's state (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """What to show: companies, job types and event types (empty: everything)."""

    companies: frozenset[str] = frozenset()
    #: Job types (``ImageServingPublish``, ...), compared case-insensitively.
    job_types: frozenset[str] = frozenset()
    #: Event types (``job.completed``, ``streamer.notification.company_unreachable``, ...).
    event_types: frozenset[str] = frozenset()

    @classmethod
    def of(cls, companies: Iterable[str] = (), types: Iterable[str] = ()) -> Filters:
        """``--type`` values with a dot are event types (``job.completed``, or the full
        ``dev.ips-job-streamer.job.completed``); others job types."""
        types = tuple(types)
        return cls(
            frozenset(companies),
            frozenset(t.lower() for t in types if "." not in t),
            frozenset(short_type(t) for t in types if "." in t),
        )

    def event_shown(self, ce_type: str) -> bool:
        """Whether an event of this type is printed or listed (the table shows every job)."""
        return not self.event_types or any(
            ce_type == t or ce_type.startswith(t.rstrip(".") + ".") for t in self.event_types
        )


@dataclass(slots=True)
class JobRow:
    """An active job as the table shows it."""

    company: str
    name: str
    type: str
    state: str = "?"
    progress: int = 0
    message: str = ""
    stalled: bool = False
    files: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """One line of the recent-changes pane."""

    at: datetime
    company: str
    name: str
    job_type: str
    what: str
    files: str = ""
    style: str = ""
    #: The state a transition left (``what`` is the state it reached); "" for other changes.
    before: str = ""
    #: What follows the outcome of a completion when there is room: its duration and the job
    #: log's first message.
    detail: str = ""

    def what_text(self, width: int) -> str:
        """``what``, as ``before → what`` for a transition, in at most ``width`` columns: a
        long ``before`` is cut first, so the state reached always shows; a ``detail`` only
        where the columns left after ``what`` hold at least 8 of its characters."""
        if self.detail:
            room = width - len(self.what) - 3
            if room >= min(8, len(self.detail)):
                cut = self.detail if len(self.detail) <= room else f"{self.detail[: room - 1]}…"
                return f"{self.what} · {cut}"
            return self.what
        if not self.before:
            return self.what
        text = f"{self.before} → {self.what}"
        if len(text) <= width:
            return text
        keep = width - len(self.what) - 4
        return f"{self.before[:keep]}… → {self.what}" if keep >= 1 else f"→ {self.what}"


@dataclass(slots=True)
class CompanyBeat:
    """The latest heartbeat of a company."""

    ok: bool
    active_jobs: int
    error: str | None
    at: datetime


def _name_of(handle: str) -> str:
    """A job's name from its handle (``j|<company>||<unique name>|<id>``) when no snapshot
    named it."""
    parts = handle.split("|")
    return parts[3] if len(parts) >= 5 and parts[3] else handle


def _files_of(status: Mapping[str, Any] | None) -> str:
    """``processed/total files`` from the task progress of a status, "" when it has none."""
    if not status:
        return ""
    done = total = 0
    for task in status.get("taskProgress") or ():
        if isinstance(task, Mapping):
            processed = int(task.get("numProcessed") or 0)
            done += processed
            total += processed + int(task.get("numProcessing") or 0)
            total += int(task.get("numPending") or 0)
    return f"{done}/{total} files" if total else ""


def _counts_of(counts: Mapping[str, Any] | None) -> str:
    """``ok/total files`` of a completion, with errors and warnings when there are any."""
    if not counts:
        return ""
    ok = int(counts.get("fileSuccess") or 0)
    total = int(counts.get("totalFile") or 0)
    errors = int(counts.get("fileError") or 0)
    warnings = int(counts.get("fileWarning") or 0)
    if not (errors or warnings):
        return f"{ok}/{total} files"
    text = f"{ok}/{total}"
    if errors:
        text += f" {errors} err"
    if warnings:
        text += f" {warnings} warn"
    return text


def _seconds(value: object) -> str:
    try:
        s = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "?"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}min"


@dataclass
class TailState:
    """What the live view knows: active jobs, recent changes, company heartbeats."""

    filters: Filters = field(default_factory=Filters)
    jobs: dict[str, JobRow] = field(default_factory=dict)
    recent: deque[Change] = field(default_factory=lambda: deque(maxlen=RECENT_KEPT))
    companies: dict[str, CompanyBeat] = field(default_factory=dict)
    #: Jobs completed since the view started, by outcome.
    outcomes: dict[str, int] = field(default_factory=dict)
    last_event_at: datetime | None = None
    #: One line about the connection (broker unreachable, waiting for topics), or "".
    problem: str = ""

    def seed(self, value: Mapping[str, Any]) -> None:
        """Learn an active job from its ``jobs.latest`` record (the job's latest state)."""
        snap = value.get("snapshot")
        if not isinstance(snap, Mapping):
            return
        handle = str(snap.get("jobHandle", ""))
        company = str(value.get("company") or snap.get("companyHandle") or "")
        status = value.get("lastProgressStatus") or snap.get("status") or {}
        if value.get("vanishedAt") or not self._company_shown(company):
            return
        row = JobRow(
            company, str(snap.get("originalName") or _name_of(handle)), str(snap.get("type") or "?")
        )
        if not self._type_shown(row.type):
            return
        self._update(row, status)
        row.stalled = bool(value.get("stalled"))
        self.jobs[handle] = row

    def apply(self, event: Event) -> Change | None:
        """Fold an event into the view; return the change it adds to the recent pane, if any."""
        v = event.value
        if v is None:
            return None
        company = str(v.get("companyHandle", ""))
        if not self._company_shown(company):
            return None
        self.last_event_at = event.at
        ce_type = event.type
        if ce_type == "streamer.heartbeat":
            self.companies[company] = CompanyBeat(
                bool(v.get("ok")), int(v.get("activeJobs") or 0), v.get("error"), event.at
            )
            return None
        if ce_type.startswith("streamer.notification."):
            kind = str(v.get("kind") or ce_type.rsplit(".", 1)[-1])
            style = "green" if kind == "company_recovered" else "bold red"
            change = Change(
                event.at,
                company,
                str(v.get("message", "")),
                "",
                kind.replace("_", " "),
                style=style,
            )
            return self._record(change, ce_type)
        handle = str(v.get("jobHandle", event.subject))
        row = self.jobs.get(handle)
        if ce_type == "job.observed":
            snap = v.get("snapshot") or {}
            row = JobRow(
                company,
                str(snap.get("originalName") or _name_of(handle)),
                str(snap.get("type") or "?"),
            )
            if not self._type_shown(row.type):
                return None
            self._update(row, snap.get("status") or {})
            self.jobs[handle] = row
            return self._record(self._change(event, row, f"new · {row.state}"), ce_type)
        if row is None:  # first seen before this view started and not in jobs.latest
            if self.filters.job_types:
                return None
            row = JobRow(company, _name_of(handle), "?")
            if ce_type != "job.completed":
                self.jobs[handle] = row
        if ce_type in ("job.state_changed", "job.progress", "job.stalled", "job.recovered"):
            self._update(row, v.get("status") or {})
        if ce_type == "job.state_changed":
            change = self._change(event, row, str(v.get("to")))
            return self._record(replace(change, before=str(v.get("from"))), ce_type)
        if ce_type == "job.stalled":
            row.stalled = True
            return self._record(
                self._change(event, row, f"stalled {_seconds(v.get('stalledForS'))}", "yellow"),
                ce_type,
            )
        if ce_type == "job.recovered":
            row.stalled = False
            what = f"recovered after {_seconds(v.get('stalledForS'))}"
            return self._record(self._change(event, row, what, "green"), ce_type)
        if ce_type == "job.completed":
            self.jobs.pop(handle, None)
            outcome = str(v.get("outcome"))
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            change = Change(
                event.at,
                company,
                row.name if row.type != "?" else str(v.get("originalName") or row.name),
                row.type if row.type != "?" else str(v.get("jobType") or "?"),
                _OUTCOME_TEXT.get(outcome, f"done: {outcome}"),
                _counts_of(v.get("counts")),
                _OUTCOME_STYLE.get(outcome, ""),
                detail=_completion_detail(v),
            )
            return self._record(change, ce_type)
        return None

    def matches(self, event: Event) -> bool:
        """Whether the filters let ``event`` through (call before :meth:`apply`: a completion
        forgets the job and its type)."""
        if not self.filters.event_shown(event.type):
            return False
        v = event.value
        if v is None:
            return not (self.filters.companies or self.filters.job_types)
        if not self._company_shown(str(v.get("companyHandle", ""))):
            return False
        if not self.filters.job_types or not event.type.startswith("job."):
            return True
        if event.type == "job.observed":
            return self._type_shown(str((v.get("snapshot") or {}).get("type") or ""))
        row = self.jobs.get(str(v.get("jobHandle", event.subject)))
        return row is not None and self._type_shown(row.type)

    def _company_shown(self, company: str) -> bool:
        return not self.filters.companies or company in self.filters.companies

    def _type_shown(self, job_type: str) -> bool:
        return not self.filters.job_types or job_type.lower() in self.filters.job_types

    @staticmethod
    def _update(row: JobRow, status: Mapping[str, Any]) -> None:
        if not status:
            return
        row.state = str(status.get("state") or row.state)
        try:
            row.progress = max(0, min(100, int(status.get("progress") or 0)))
        except (TypeError, ValueError):
            row.progress = 0
        row.message = str(status.get("progressMessage") or "")
        row.files = _files_of(status) or row.files

    @staticmethod
    def _change(event: Event, row: JobRow, what: str, style: str = "") -> Change:
        return Change(event.at, row.company, row.name, row.type, what, row.files, style)

    def _record(self, change: Change, ce_type: str) -> Change | None:
        if not self.filters.event_shown(ce_type):
            return None
        self.recent.append(change)
        return change


def _completion_detail(value: Mapping[str, Any]) -> str:
    """``85s · <first error>``: how long a completed job ran and, when the job log said why,
    its first error (else warning) message; "" when the event says neither."""
    parts = []
    duration = value.get("durationS")
    if isinstance(duration, int | float):
        parts.append(_seconds(duration))
    messages = value.get("logMessages") or {}
    first = (messages.get("errors") or messages.get("warnings") or [None])[0]
    if isinstance(first, Mapping) and first.get("message"):
        parts.append(str(first["message"]))
    return " · ".join(parts)
