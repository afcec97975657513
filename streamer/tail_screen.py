"""The screen of ``streamer tail``: a :class:`~streamer.tail_state.TailState` as rich renderables.

Pure: fits 80x24 and grows with the terminal; the recent-changes pane is always visible.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from streamer.encode import short_type
from streamer.tail_state import (
    Change,
    JobRow,
    TailState,
)

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
    what_w = min(40, max((len(c.what_text(99)) for c in changes), default=10))
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
    ce_type = short_type(headers.get("ce_type", b"?").decode())
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
        if isinstance(value.get("durationS"), int | float):
            detail += f" duration={value['durationS']:.0f}s"
        errors = (value.get("logMessages") or {}).get("errors") or []
        if errors and isinstance(errors[0], Mapping):
            detail += f" first_error={errors[0].get('message')!r}"
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
