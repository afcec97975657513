"""``streamer tail``: read the topics back and show them to a person.

Two views: a live table (active jobs per company with progress bars, and a scrolling list of state
changes and completions) on a terminal, and one readable line per event otherwise (or with
``--lines``). It is an ordinary ``read_committed`` consumer, so it shows what consumers see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from streamer.encode import TopicNames

_OUTCOME_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "completed_with_errors": "red",
    "completed_with_warnings": "yellow",
    "unknown": "magenta",
}


def describe(topic: str, headers: Mapping[str, bytes], value: dict[str, Any] | None) -> str:
    """One readable line for a record (used by the line view and by tests)."""
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


@dataclass
class _View:
    """State of the live table."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent: deque[Text] = field(default_factory=lambda: deque(maxlen=15))
    heartbeats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, ce_type: str, value: dict[str, Any]) -> None:
        handle = value.get("jobHandle", "")
        if ce_type == "job.observed":
            snap = value["snapshot"]
            self.jobs[handle] = {
                "company": value["companyHandle"],
                "type": snap.get("type"),
                "name": snap.get("originalName"),
                **snap.get("status", {}),
            }
        elif ce_type in ("job.state_changed", "job.progress", "job.stalled", "job.recovered"):
            job = self.jobs.setdefault(handle, {"company": value.get("companyHandle")})
            job.update(value.get("status", {}))
            if ce_type == "job.stalled":
                job["stalled"] = True
            if ce_type == "job.recovered":
                job["stalled"] = False
        elif ce_type == "job.completed":
            self.jobs.pop(handle, None)
        elif ce_type == "streamer.heartbeat":
            self.heartbeats[value.get("companyHandle", "")] = value
        if ce_type in ("job.state_changed", "job.completed", "job.stalled", "job.recovered"):
            line = Text(
                describe("", {"ce_type": ce_type.encode(), "ce_subject": handle.encode()}, value)
            )
            if ce_type == "job.completed":
                line.stylize(_OUTCOME_STYLE.get(str(value.get("outcome")), ""))
            self.recent.append(line)

    def render(self) -> Group:
        table = Table(title="Active IPS jobs", expand=True)
        for col in ("company", "job", "type", "state", "progress", "message"):
            table.add_column(col)
        for handle, job in sorted(self.jobs.items(), key=lambda kv: (kv[1].get("company"), kv[0])):
            progress = int(job.get("progress") or 0)
            state = str(job.get("state"))
            if job.get("stalled"):
                state += " (stalled)"
            table.add_row(
                str(job.get("company")),
                str(job.get("name") or handle)[:40],
                str(job.get("type")),
                state,
                ProgressBar(total=100, completed=progress, width=30),
                str(job.get("progressMessage") or "")[:40],
            )
        beats = Text(
            "  ".join(
                f"{c}: {'ok' if hb.get('ok') else 'FAILING'} {hb.get('activeJobs')} jobs"
                for c, hb in sorted(self.heartbeats.items())
            )
        )
        return Group(table, beats, Text("Recent changes:", style="bold"), *self.recent)


async def tail(
    client_kwargs: Mapping[str, Any],
    topics: TopicNames,
    *,
    lines: bool,
    from_beginning: bool,
    heartbeats: bool = False,
    max_records: int | None = None,
) -> None:
    """Consume the event topics until cancelled (or ``max_records`` were shown)."""
    names = [topics.state, topics.progress, topics.notifications]
    if heartbeats or not lines:
        names.append(topics.heartbeat)
    consumer = AIOKafkaConsumer(
        *names,
        **client_kwargs,
        isolation_level="read_committed",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    view = _View()
    console = Console()
    seen = 0
    live = None if lines else Live(view.render(), console=console, refresh_per_second=4)
    try:
        if live is not None:
            live.start()
        while max_records is None or seen < max_records:
            # A batch may hold more than the records still wanted: take no more than those.
            wanted = None if max_records is None else max_records - seen
            batch = await consumer.getmany(timeout_ms=500, max_records=wanted)
            for records in batch.values():
                for rec in records:
                    headers = {k: v for k, v in rec.headers}
                    value = json.loads(rec.value) if rec.value is not None else None
                    ce_type = headers.get("ce_type", b"").decode()
                    seen += 1
                    if live is None:
                        if ce_type == "streamer.heartbeat" and not heartbeats:
                            continue
                        print(describe(rec.topic, headers, value), flush=True)
                    elif value is not None:
                        view.apply(ce_type, value)
            if live is not None:
                live.update(view.render())
    finally:
        if live is not None:
            live.stop()
        await consumer.stop()


def run_tail(client_kwargs: Mapping[str, Any], topics: TopicNames, **kw: Any) -> None:
    """Blocking wrapper; Ctrl-C ends it quietly."""
    if not kw.get("lines") and not sys.stdout.isatty():
        kw["lines"] = True
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(client_kwargs, topics, **kw))
