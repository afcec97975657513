"""``streamer tail``: read the topics back and show them to a person.

Two views: a live screen (active jobs per company with progress bars, and a pane of recent
changes that is always visible) on a terminal, and one readable line per event otherwise (or with
``--lines``). It is an ordinary ``read_committed`` consumer of the public topics, so it shows what
consumers see; the private topics (``<prefix>.streamer.checkpoint``, ``<prefix>.streamer.shards``)
are never read.

The module has three parts: decoding and ordering records (:class:`Event`, :class:`Merger`), the
view's state and its rendering (:class:`TailState`, :func:`render_screen`; pure, no I/O, no
clock), and the consumer loop that feeds them (:func:`tail`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamer.encode import TopicNames
from streamer.kafka_access import KafkaAuthenticationFailed, probe

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
#: Seconds without any record (heartbeats included) after which the live view says so.
QUIET_S = 30.0
_EPOCH = datetime.fromtimestamp(0, UTC)


# --------------------------------------------------------------------------------------------
# Records -> events, in order
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded record of a public topic."""

    topic: str
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
        type=ce_type or (str(doc.get("type", "")) if doc else ""),
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
        """``--type`` values with a dot are event types (``job.completed``); others job types."""
        types = tuple(types)
        return cls(
            frozenset(companies),
            frozenset(t.lower() for t in types if "." not in t),
            frozenset(t for t in types if "." in t),
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

    def what_text(self, width: int) -> str:
        """``what``, as ``before → what`` for a transition, in at most ``width`` columns: a
        long ``before`` is cut first, so the state reached always shows."""
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
                row.name,
                row.type,
                _OUTCOME_TEXT.get(outcome, f"done: {outcome}"),
                _counts_of(v.get("counts")),
                _OUTCOME_STYLE.get(outcome, ""),
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


# --------------------------------------------------------------------------------------------
# Rendering (pure)
# --------------------------------------------------------------------------------------------

#: Lines the recent-changes pane keeps even when the table could use them.
MIN_RECENT = 6
#: Terminal width from which the table also shows each job's progress message.
WIDE = 110


def _local(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")


def _bar(progress: int, width: int) -> Text:
    filled = round(progress * width / 100)
    bar = Text("━" * filled, style="green")
    bar.append("━" * (width - filled), style="grey35")
    bar.append(f" {progress:>3}%")
    return bar


def _header(state: TailState, width: int) -> Text:
    line = Text(" IPS jobs ", style="bold reverse")
    line.append(f" {len(state.jobs)} active")
    if state.outcomes:
        done = sum(state.outcomes.values())
        failed = state.outcomes.get("failed", 0)
        line.append(f" · {done} done")
        if failed:
            line.append(f" ({failed} failed)", style="bold red")
    failing = sorted(c for c, b in state.companies.items() if not b.ok)
    if state.companies:
        line.append(f" · {len(state.companies) - len(failing)}/{len(state.companies)} companies ok")
    if failing:
        line.append(" · FAILING: " + " ".join(failing), style="bold red")
    if state.problem:
        line.append(f" · {state.problem}", style="bold yellow")
    line.truncate(width, overflow="ellipsis")
    return line


def _jobs_table(state: TailState, rows: int, width: int) -> Table:
    """The active jobs, at most ``rows`` lines (one of them says how many more there are)."""
    wide = width >= WIDE
    table = Table(box=None, expand=True, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column("company", no_wrap=True, max_width=12)
    table.add_column("job", no_wrap=True, overflow="ellipsis", ratio=3)
    table.add_column("type", no_wrap=True, overflow="ellipsis", ratio=2)
    table.add_column("state", no_wrap=True, overflow="ellipsis", max_width=20)
    bar_width = max(8, min(30, (width - 60) // 2)) if not wide else 24
    table.add_column("progress", no_wrap=True, width=bar_width + 5)
    if wide:
        table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=3)

    def rank(item: tuple[str, JobRow]) -> tuple[int, str, str]:
        _, job = item
        return (0 if job.stalled else 1 if job.state == "Running" else 2, job.company, job.name)

    jobs = sorted(state.jobs.items(), key=rank)
    shown = jobs if len(jobs) <= rows else jobs[: max(0, rows - 1)]
    for _, job in shown:
        st = Text(job.state)
        if job.stalled:
            st = Text("STALLED", style="bold yellow")
        cells: list[RenderableType] = [
            job.company,
            job.name,
            job.type,
            st,
            _bar(job.progress, bar_width),
        ]
        if wide:
            cells.append(job.message)
        table.add_row(*cells)
    if len(shown) < len(jobs):
        table.add_row(Text(f"+{len(jobs) - len(shown)} more", style="dim"))
    return table


def _recent_table(changes: Sequence[Change], width: int) -> Table:
    """The recent changes, one line each: time, company, job name, job type, transition or
    outcome, file counts. The transition gets the room it needs first (up to 30 columns), then
    the name and the type share what is left."""
    company_w = min(12, max((len(c.company) for c in changes), default=6))
    files_w = min(14, max((len(c.files) for c in changes), default=0))
    what_w = min(30, max((len(c.what_text(99)) for c in changes), default=10))
    rest = width - 8 - company_w - files_w - what_w - 5
    if rest < 28:  # a narrow terminal: the transition gives way (down to 20 columns)
        what_w = max(20, what_w - (28 - rest))
        rest = width - 8 - company_w - files_w - what_w - 5
    name_w = min(40, max(4, rest * 3 // 5))
    type_w = min(26, max(3, rest - name_w))
    table = Table.grid(padding=(0, 1, 0, 0))
    for w in (8, company_w, name_w, type_w, what_w, files_w):
        table.add_column(no_wrap=True, overflow="ellipsis", width=w)
    for c in changes:
        table.add_row(
            Text(_local(c.at), style="dim"),
            c.company,
            c.name,
            c.job_type,
            Text(c.what_text(what_w), style=c.style),
            Text(c.files, style="dim"),
        )
    return table


def render_screen(state: TailState, width: int, height: int) -> RenderableType:
    """The whole screen for a terminal of ``width`` x ``height``: a header line, the active jobs
    table and the recent-changes pane (never less than :data:`MIN_RECENT` lines while there are
    changes). Every row is one line, so the screen never wraps or scrolls."""
    height = max(height, 10)
    body = height - 3  # header, the table's header row, the recent pane's title
    jobs = len(state.jobs)
    recent_min = min(max(MIN_RECENT, body * 2 // 5), body - 1)
    job_rows = max(1, min(jobs, body - recent_min))
    recent_rows = body - job_rows
    changes = list(state.recent)[-recent_rows:] if recent_rows > 0 else []
    title = Text("Recent changes", style="bold")
    title.append(" (newest last)" if changes else " (none yet)", style="dim")
    parts: list[RenderableType] = [
        _header(state, width),
        _jobs_table(state, job_rows, width),
        title,
    ]
    if changes:
        parts.append(_recent_table(changes, width))
    return Group(*parts)


# --------------------------------------------------------------------------------------------
# Lines (``--lines``, or stdout not a terminal)
# --------------------------------------------------------------------------------------------


def describe(topic: str, headers: Mapping[str, bytes], value: Mapping[str, Any] | None) -> str:
    """One readable line for a record (the line view; its shape is pinned by tests)."""
    ce_type = headers.get("ce_type", b"?").decode()
    subject = headers.get("ce_subject", b"").decode()
    if value is None:
        return f"{topic} tombstone {subject}"
    company = value.get("companyHandle", "")
    seq = headers.get("ce_sequence", b"").decode().lstrip("0") or str(value.get("sequence", "?"))
    if ce_type == "job.observed":
        snap = value.get("snapshot", {})
        status = snap.get("status", {})
        detail = f"{snap.get('type')} {snap.get('originalName')!r} state={status.get('state')}"
    elif ce_type == "job.state_changed":
        skipped = " (may have skipped states)" if value.get("mayHaveSkipped") else ""
        detail = f"{value.get('from')} -> {value.get('to')}{skipped}"
    elif ce_type == "job.progress":
        status = value.get("status", {})
        detail = f"{status.get('progress')}% {status.get('progressMessage')!r}"
    elif ce_type == "job.completed":
        detail = f"outcome={value.get('outcome')} counts={value.get('counts')}"
    elif ce_type in ("job.stalled", "job.recovered"):
        detail = f"after {value.get('stalledForS')}s"
    elif ce_type.startswith("streamer.notification."):
        return (
            f"notification {value.get('kind')} {company} at {value.get('at')}: "
            f"{value.get('message')}"
        )
    elif ce_type == "streamer.heartbeat":
        return (
            f"heartbeat {value.get('companyHandle')} ok={value.get('ok')} "
            f"jobs={value.get('activeJobs')} latency={value.get('latencyS')}"
        )
    else:
        detail = json.dumps(value)[:200]
    return f"{ce_type:<18} {company:<8} {subject} #{seq} {detail}"


# --------------------------------------------------------------------------------------------
# The consumer loop
# --------------------------------------------------------------------------------------------


def _bootstrap_of(client_kwargs: Mapping[str, Any]) -> str:
    servers = client_kwargs.get("bootstrap_servers", "localhost:9092")
    return servers if isinstance(servers, str) else ",".join(servers)


def _consumer(client_kwargs: Mapping[str, Any], *topics: str, earliest: bool) -> AIOKafkaConsumer:
    """A ``read_committed`` consumer without a group: it gets every partition of ``topics``
    and starts at their beginning (``earliest``) or end."""
    return AIOKafkaConsumer(
        *topics,
        **client_kwargs,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if earliest else "latest",
        enable_auto_commit=False,
    )


async def wait_for_topics(
    client_kwargs: Mapping[str, Any], names: Sequence[str], say: Callable[[str], None]
) -> None:
    """Return once the broker answers and every topic in ``names`` exists.

    Until then it says why it waits, once per reason (not once per retry), and retries every
    :data:`RETRY_S` seconds.
    """
    where = _bootstrap_of(client_kwargs)
    said = ""

    def once(line: str) -> None:
        nonlocal said
        if line != said:
            said = line
            say(line)

    while True:
        consumer: AIOKafkaConsumer | None = None
        try:
            await probe(client_kwargs)
            consumer = _consumer(client_kwargs, earliest=False)
            await consumer.start()
            missing = sorted(set(names) - set(await consumer.topics()))
            if not missing:
                return
            once(
                f"tail: waiting for topic(s) {', '.join(missing)} on {where} "
                f"(the streamer creates them when it starts); checking every {RETRY_S:g} s"
            )
        except KafkaAuthenticationFailed as exc:
            once(f"tail: Kafka at {where} refused the login: {exc}; retrying every {RETRY_S:g} s")
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            once(f"tail: Kafka at {where} is unreachable ({reason}); retrying every {RETRY_S:g} s")
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        await asyncio.sleep(RETRY_S)


async def _seed(client_kwargs: Mapping[str, Any], topic: str, state: TailState) -> None:
    """Read the compacted ``jobs.latest`` topic to its end: the jobs active right now, with
    their names and types (the events of a job seen before the view started do not carry them).
    """
    consumer = _consumer(client_kwargs, topic, earliest=True)
    await consumer.start()
    latest: dict[bytes, Mapping[str, Any] | None] = {}
    try:
        ends: dict[TopicPartition, int] | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    if rec.key is None:
                        continue
                    try:
                        doc = json.loads(rec.value) if rec.value is not None else None
                    except ValueError:
                        doc = None
                    latest[rec.key] = doc if isinstance(doc, dict) else None
            tps = list(consumer.assignment())
            if not tps:
                continue
            if ends is None:
                ends = await consumer.end_offsets(tps)
            if all([await consumer.position(tp) >= ends.get(tp, 0) for tp in tps]):
                break
    finally:
        await consumer.stop()
    for doc in latest.values():
        if doc is not None:
            state.seed(doc)


async def _lagging(consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    """Assigned partitions with committed records still to read."""
    out = []
    for tp in consumer.assignment():
        lso = consumer.last_stable_offset(tp)
        if lso is None or await consumer.position(tp) < lso:
            out.append(tp)
    return out


async def tail(
    client_kwargs: Mapping[str, Any],
    topics: TopicNames,
    *,
    lines: bool,
    from_beginning: bool,
    heartbeats: bool = False,
    max_records: int | None = None,
    filters: Filters | None = None,
    console: Console | None = None,
) -> None:
    """Consume the public event topics until cancelled (or ``max_records`` were shown)."""
    filters = filters or Filters()
    names = [topics.state, topics.progress, topics.notifications]
    if heartbeats or not lines:
        names.append(topics.heartbeat)
    console = console or Console()
    state = TailState(filters)

    def say(line: str) -> None:
        print(line, file=sys.stderr if lines else sys.stdout, flush=True)

    await wait_for_topics(client_kwargs, [*names, topics.latest], say)
    if not lines and not from_beginning:
        await _seed(client_kwargs, topics.latest, state)
    # Named topics only: the private ones (checkpoint, shards) are never read.
    consumer = _consumer(client_kwargs, *names, earliest=from_beginning)
    await consumer.start()
    live: Live | None = None
    try:
        if not lines:
            live = Live(console=console, screen=True, auto_refresh=False, vertical_overflow="crop")
            live.start()
            live.update(render_screen(state, *console.size), refresh=True)
        await _consume(consumer, state, live, lines, heartbeats, max_records)
    finally:
        if live is not None:
            live.stop()
        await consumer.stop()


async def _consume(
    consumer: AIOKafkaConsumer,
    state: TailState,
    live: Live | None,
    lines: bool,
    heartbeats: bool,
    max_records: int | None,
) -> None:
    merger = Merger()
    shown = 0
    last_data = time.monotonic()
    while max_records is None or shown < max_records:
        batch = await consumer.getmany(timeout_ms=500)
        now = time.monotonic()
        for tp, records in batch.items():
            if records:
                last_data = now
            merger.add(
                tp, (decode_event(tp.topic, dict(r.headers), r.value, r.timestamp) for r in records)
            )
        # A partition quiet for a while holds nothing back: its offsets may be unknown yet.
        lagging = await _lagging(consumer) if now - last_data < 2 else []
        for event in merger.release(lagging):
            shown_here = state.matches(event)
            state.apply(event)
            if not shown_here or (lines and event.type == "streamer.heartbeat" and not heartbeats):
                continue
            if lines:
                print(describe(event.topic, event.headers, event.value), flush=True)
            shown += 1
            if max_records is not None and shown >= max_records:
                return
        if live is not None:
            quiet = now - last_data
            # Heartbeats arrive every poll interval: silence means the streamer or Kafka is down.
            state.problem = f"no records for {quiet:.0f} s" if quiet > QUIET_S else ""
            width, height = live.console.size
            live.update(render_screen(state, width, height), refresh=True)


def run_tail(client_kwargs: Mapping[str, Any], topics: TopicNames, **kw: Any) -> None:
    """Blocking wrapper; Ctrl-C ends it quietly."""
    if not kw.get("lines") and not sys.stdout.isatty():
        kw["lines"] = True
    # aiokafka logs every failed reconnect and every unknown topic: the view says it once.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(client_kwargs, topics, **kw))
