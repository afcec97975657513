"""`streamer tail`: the live view as a pure function of decoded events (80x24 and larger), the
merge of partitions in event-time order, the filters, and the command against a closed port, a
broker without the topics yet, and a SASL broker reached through `--config`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from rich.console import Console

from streamer.encode import EVENT_TYPE_PREFIX, TopicNames
from streamer.localkafka import free_port
from streamer.tail_screen import MIN_RECENT, describe, render_screen
from streamer.tail_state import Event, Filters, Merger, TailState, decode_event
from streamer.topics import ensure_topics
from tests.conftest import SaslBroker
from tests.harness import wait_until, write_config

T0 = datetime(2026, 11, 28, 13, 31, 0, tzinfo=UTC)
TYPES = ("ImageServingPublish", "UrlUpload", "UploadFromServerDirectory", "VideoPublish")


def status(state: str, done: int, total: int) -> dict[str, Any]:
    """A job status with one task of ``total`` files, ``done`` of them processed."""
    return {
        "state": state,
        "progress": done * 100 // total,
        "progressMessage": f"Publishing {done} of {total} files",
        "taskProgress": [
            {"numProcessed": done, "numProcessing": 0, "numPending": total - done, "items": []}
        ],
    }


def event(topic: str, short: str, value: Mapping[str, Any], *, v1: bool = False) -> Event:
    """A record as the consumer decodes it: contract v2 (``ce_type`` with the prefix) or, with
    ``v1``, as the daemon wrote it before v2."""
    ce_type = short if v1 else EVENT_TYPE_PREFIX + short
    headers = {"ce_type": ce_type.encode(), "ce_subject": str(value.get("jobHandle", "")).encode()}
    return decode_event(topic, headers, json.dumps({"type": ce_type, **value}).encode(), None)


def job_events(i: int, *, outcome: str | None = None) -> list[Event]:
    """Job ``i`` observed, moved to Running, and (with ``outcome``) completed."""
    company = f"c|100{i % 3 + 1}"
    handle = f"j|{company[2:]}||ISPublish_catalog_{i}_2026-11-28-13:31:00.000|{5640000 + i}"
    at = (T0 + timedelta(seconds=5 * i)).isoformat()
    base = {"companyHandle": company, "jobHandle": handle, "observedAt": at}
    snapshot = {
        "jobHandle": handle,
        "type": TYPES[i % len(TYPES)],
        "originalName": f"catalog_{i}",
        "status": status("WaitingCoordinator", 0, 8),
    }
    out = [
        event("ips.jobs.state", "job.observed", {**base, "sequence": 1, "snapshot": snapshot}),
        event(
            "ips.jobs.state",
            "job.state_changed",
            {**base, "sequence": 2, "from": "WaitingCoordinator", "to": "Running"}
            | {"status": status("Running", 3, 8)},
        ),
        event(
            "ips.jobs.progress",
            "job.progress",
            {**base, "sequence": 3} | {"status": status("Running", 6, 8)},
        ),
    ]
    if outcome is not None:
        counts = {"fileSuccess": 8, "fileError": 0, "fileWarning": 0, "totalFile": 8}
        out.append(
            event(
                "ips.jobs.state",
                "job.completed",
                {**base, "sequence": 4, "outcome": outcome, "counts": counts},
            )
        )
    return out


def screen(state: TailState, width: int, height: int) -> list[str]:
    """The screen ``render_screen`` draws on a terminal of that size, as lines of text."""
    console = Console(width=width, height=height, record=True, force_terminal=True)
    console.print(render_screen(state, width, height))
    return console.export_text().splitlines()


def local(at: datetime) -> str:
    """How the view writes a time."""
    return at.astimezone().strftime("%H:%M:%S")


def test_screen_fits_80x24_with_recent_changes_and_a_completion() -> None:
    """At 80x24 the screen has at most 24 lines of at most 80 columns, the table of active jobs
    with percentages next to the bars, and at least five recent changes, each with time,
    company, job name, job type and transition, one of them a completion with outcome and
    file counts."""
    state = TailState()
    for i in range(8):
        for e in job_events(i, outcome="succeeded" if i == 6 else None):
            state.apply(e)
    lines = screen(state, 80, 24)
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines), lines
    assert " 7 active" in lines[0]
    assert any("catalog_0" in line and "Running" in line and " 75%" in line for line in lines)
    recent = lines[lines.index(next(x for x in lines if x.startswith("Recent changes"))) + 1 :]
    assert len(recent) >= 5
    done = next(line for line in recent if "done: succeeded" in line)
    assert done.split()[:3] == [local(T0 + timedelta(seconds=30)), "c|1001", "catalog_6"]
    assert "8/8 files" in done
    moved = next(line for line in recent if "catalog_7" in line and "→ Running" in line)
    assert "VideoPublish" in moved or "VideoPub" in moved  # the type, maybe cut to fit
    assert "3/8 files" in moved


def test_recent_pane_stays_visible_with_more_jobs_than_rows() -> None:
    """With 40 active jobs at 80x24 the table is cut (saying how many more) and the recent
    pane keeps its lines."""
    state = TailState()
    for i in range(40):
        for e in job_events(i):
            state.apply(e)
    lines = screen(state, 80, 24)
    assert len(lines) <= 24
    assert any(line.strip().startswith("+") and "more" in line for line in lines)
    start = next(i for i, x in enumerate(lines) if x.startswith("Recent changes"))
    assert len(lines) - start - 1 >= MIN_RECENT
    assert "catalog_39" in lines[-1]  # the newest change is the last line


def test_a_larger_terminal_shows_more_rows_and_the_progress_message() -> None:
    """At 160x50 every one of 20 jobs has its row, and the progress message is shown."""
    state = TailState()
    for i in range(20):
        for e in job_events(i):
            state.apply(e)
    lines = screen(state, 160, 50)
    assert len(lines) <= 50
    table = lines[: next(i for i, x in enumerate(lines) if x.startswith("Recent changes"))]
    assert all(any(f"catalog_{i} " in line for line in table) for i in range(20))
    assert any("Publishing 6 of 8 files" in line for line in lines)
    assert not any(line.strip().endswith("more") for line in lines)


def test_notifications_and_stalls_are_recent_changes_and_heartbeats_set_the_header() -> None:
    """A company outage notification, a stall and a failing heartbeat show up on the screen."""
    state = TailState()
    for e in job_events(1):
        state.apply(e)
    handle = next(iter(state.jobs))
    at = (T0 + timedelta(minutes=5)).isoformat()
    stalled = {"companyHandle": "c|1002", "jobHandle": handle, "observedAt": at, "sequence": 4}
    state.apply(event("ips.jobs.state", "job.stalled", stalled | {"stalledForS": 900}))
    note = {"companyHandle": "c|1003", "kind": "company_unreachable", "at": at}
    state.apply(
        event("n", "streamer.notification.company_unreachable", note | {"message": "HTTP 503"})
    )
    beat = {"companyHandle": "c|1003", "ok": False, "activeJobs": 0, "polledAt": at}
    state.apply(event("h", "streamer.heartbeat", beat))
    text = "\n".join(screen(state, 80, 24))
    assert "stalled 15min" in text
    assert "STALLED" in text  # the job's row
    assert "company unreachable" in text
    assert "HTTP 503" in text
    assert "FAILING: c|1003" in text


def test_a_job_known_from_jobs_latest_keeps_its_name_and_type() -> None:
    """A job seen before the view started (read from jobs.latest) completes with its name and
    type on the line, not its handle."""
    state = TailState()
    handle = "j|1001||Video_x_2026-11-28-13:00:00.000|42"
    snap = {
        "jobHandle": handle,
        "companyHandle": "c|1001",
        "type": "VideoPublish",
        "originalName": "spring_video",
        "status": status("Running", 2, 4),
    }
    state.seed({"company": "c|1001", "snapshot": snap, "stalled": False, "vanishedAt": None})
    assert state.jobs[handle].name == "spring_video"
    done = {"companyHandle": "c|1001", "jobHandle": handle, "observedAt": T0.isoformat()}
    counts = {"fileSuccess": 3, "fileError": 1, "fileWarning": 0, "totalFile": 4}
    change = state.apply(
        event(
            "ips.jobs.state",
            "job.completed",
            done | {"sequence": 9, "outcome": "completed_with_errors", "counts": counts},
        )
    )
    assert change is not None
    assert (change.name, change.job_type, change.what) == (
        "spring_video",
        "VideoPublish",
        "done: with errors",
    )
    assert change.files == "3/4 1 err"
    assert handle not in state.jobs


def test_filters_by_company_job_type_and_event_type() -> None:
    """--company keeps one company, --type a job type or (with a dot) an event type."""
    events = [e for i in range(6) for e in job_events(i, outcome="failed")]

    def shown(filters: Filters) -> list[Event]:
        state = TailState(filters)
        out = []
        for e in events:
            if state.matches(e):
                out.append(e)
            state.apply(e)
        return out

    assert {(e.value or {})["companyHandle"] for e in shown(Filters.of(["c|1002"]))} == {"c|1002"}
    videos = {
        str(e.subject)
        for e in events
        if e.type == "job.observed" and (e.value or {})["snapshot"]["type"] == "VideoPublish"
    }
    by_type = shown(Filters.of(types=["videopublish"]))
    assert {e.subject for e in by_type} == videos
    assert len(by_type) == 4 * len(videos)  # every event of those jobs, completion included
    assert {e.type for e in shown(Filters.of(types=["job.completed"]))} == {"job.completed"}
    state = TailState(Filters.of(["c|1001"], ["job.completed"]))
    for e in events:
        state.apply(e)
    assert {c.company for c in state.recent} == {"c|1001"}
    assert {c.what for c in state.recent} == {"done: FAILED"}
    assert state.jobs == {}  # completed jobs leave the table


def test_v1_and_v2_records_read_alike() -> None:
    """A record written before contract v2 (short ce_type) and its v2 form give the same event
    type, the same view and the same line; --type takes the short or the full type."""
    base = {"companyHandle": "c|1001", "jobHandle": "j|1", "observedAt": T0.isoformat()}
    done = {**base, "sequence": 3, "outcome": "failed", "counts": None}
    v1, v2 = (event("s", "job.completed", done, v1=old) for old in (True, False))
    assert v1.type == v2.type == "job.completed"
    assert v2.headers["ce_type"] == b"dev.ips-job-streamer.job.completed"
    lines = [describe("s", e.headers, e.value) for e in (v1, v2)]
    assert lines[0] == lines[1]
    assert lines[0].startswith("job.completed ")
    for types in (["job.completed"], ["dev.ips-job-streamer.job.completed"]):
        state = TailState(Filters.of(types=types))
        assert state.matches(v1)
        assert state.matches(v2)
    assert Filters.of(types=["dev.ips-job-streamer.streamer.notification"]).event_shown(
        "streamer.notification.company_unreachable"
    )


def test_merger_releases_in_event_time_order_and_waits_for_lagging_partitions() -> None:
    """Events of two partitions come out by (time, sequence); an event later than what a lagging
    partition has delivered is held back until that partition catches up."""
    observed, changed, progress = job_events(0)
    later = job_events(1)[0]  # 5 s later
    merger = Merger()
    merger.add("state", [observed, changed, later])
    assert merger.release(["progress"]) == []  # progress has delivered nothing yet
    merger.add("progress", [progress])
    assert merger.release(["progress"]) == [observed, changed, progress]
    assert merger.release([]) == [later]  # progress caught up
    assert len(merger) == 0


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


@contextmanager
def tail_process(tmp: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """``streamer tail ARGS`` (stdout not a terminal: the line view), stopped at the end."""
    out = tmp / f"tail-{uuid.uuid4().hex[:6]}.out"
    err = out.with_suffix(".err")
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer.cli", "tail", *args], stdout=o, stderr=e
        )
    try:
        yield proc, out, err
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def settled_lines(path: Path, proc: subprocess.Popen[bytes], what: str) -> list[str]:
    """The lines of ``path`` once one arrived and two retry periods passed without more."""
    wait_until(lambda: path.read_text().strip(), 60, what=what)
    time.sleep(11)  # > 2 x RETRY_S: the retries happened and said nothing more
    assert proc.poll() is None, path.read_text()  # still waiting
    return path.read_text().splitlines()


def test_broker_unreachable_is_one_line_then_it_waits(tmp_path: Path) -> None:
    """Against a closed port, tail prints one line naming the broker, no traceback, and keeps
    waiting."""
    port = free_port()
    with tail_process(tmp_path, "--bootstrap", f"127.0.0.1:{port}") as (proc, out, err):
        lines = settled_lines(err, proc, "the unreachable line")
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"tail: Kafka at 127.0.0.1:{port} is unreachable")
    assert "retrying" in lines[0]
    assert out.read_text() == ""


async def produce(bootstrap: str, records: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
    """Produce ``(topic, ce_type, value)`` records, in this order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, ce_type, value in records:
            await producer.send_and_wait(
                topic,
                json.dumps(value).encode(),
                key=value["jobHandle"].encode(),
                headers=[
                    ("ce_type", ce_type.encode()),
                    ("ce_subject", value["jobHandle"].encode()),
                ],
            )
    finally:
        await producer.stop()


@pytest.mark.kafka
def test_waits_for_topics_with_one_line_then_shows_events_merged_in_order(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With --config naming a prefix whose topics do not exist, tail says so once and waits; once
    they exist it shows a job's observation before its progress, though the progress record
    was written first."""
    prefix = f"tail{uuid.uuid4().hex[:8]}"
    config = write_config(
        tmp_path / "streamer.toml",
        endpoint="http://127.0.0.1:1/",
        bootstrap=kafka_bootstrap,
        prefix=prefix,
        companies=["c|1001"],
    )
    args = ("--config", str(config), "--from-beginning", "--lines")
    with tail_process(tmp_path, *args) as (proc, out, err):
        lines = settled_lines(err, proc, "the waiting line")
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"tail: waiting for topic(s) {prefix}.jobs.latest, ")
        assert f"{prefix}.jobs.state" in lines[0]
        topics = TopicNames.with_prefix(prefix)
        asyncio.run(ensure_topics({"bootstrap_servers": kafka_bootstrap}, topics, 3, 1))
        _, _, progress = job_events(0)
        observed = job_events(0)[0]
        asyncio.run(
            produce(
                kafka_bootstrap,
                [
                    (
                        topics.progress,
                        EVENT_TYPE_PREFIX + "job.progress",
                        dict(progress.value or {}),
                    ),
                    (topics.state, "job.observed", dict(observed.value or {})),  # a v1 record
                ],
            )
        )
        wait_until(lambda: len(out.read_text().splitlines()) >= 2, 60, what="two lines")
    shown = out.read_text().splitlines()
    assert shown[0].startswith("job.observed ")
    assert shown[1].startswith("job.progress ")
    assert len(err.read_text().splitlines()) == 1


@pytest.mark.kafka
def test_config_reuses_sasl_settings_and_names_a_refused_login(
    sasl_broker: SaslBroker, tmp_path: Path
) -> None:
    """--config takes SASL from the daemon's config: the right password reaches the broker (it
    then waits for the topics), a wrong one is named as a refused login."""
    user, password = sasl_broker.users["PLAIN"]
    prefix = f"tail{uuid.uuid4().hex[:8]}"

    def config(name: str, pw: str) -> Path:
        return write_config(
            tmp_path / f"{name}.toml",
            endpoint="http://127.0.0.1:1/",
            bootstrap=sasl_broker.bootstrap,
            prefix=prefix,
            companies=["c|1001"],
            sections={
                "kafka": {
                    "security_protocol": "SASL_PLAINTEXT",
                    "sasl_mechanism": "PLAIN",
                    "sasl_username": user,
                    "sasl_password": pw,
                }
            },
        )

    right, wrong = config("right", password), config("wrong", "not-" + password)
    with (
        tail_process(tmp_path, "--config", str(right), "--lines") as (ok_proc, _, ok_err),
        tail_process(tmp_path, "--config", str(wrong), "--lines") as (bad_proc, _, bad_err),
    ):
        ok = settled_lines(ok_err, ok_proc, "the waiting line")
        bad = settled_lines(bad_err, bad_proc, "the refused line")
    assert len(ok) == 1, ok
    assert ok[0].startswith(f"tail: waiting for topic(s) {prefix}.")
    assert len(bad) == 1, bad
    assert f"tail: Kafka at {sasl_broker.bootstrap} refused the login" in bad[0]
    assert "sasl_username=plainuser" in bad[0]
    assert password not in bad[0]


def test_completion_line_names_a_reconciled_job_its_duration_and_first_error() -> None:
    """A completion the view never saw observed takes the job's name and type from the event,
    and reads outcome, duration and the job log's first error."""
    state = TailState(Filters.of())
    handle = "j|1003||ab_2026-11-28-13:40:02.114|5640871"
    value = {
        "companyHandle": "c|1003",
        "jobHandle": handle,
        "observedAt": T0.isoformat(),
        "sequence": 1,
        "outcome": "failed",
        "counts": None,
        "originalName": "spring.zip",
        "jobType": "UploadUrlsJob",
        "durationS": 85.2,
        "logMessages": {
            "errors": [{"message": "Unable to read file", "logType": "UploadError"}],
            "warnings": [],
            "errorTotal": 3,
            "warningTotal": 0,
        },
    }
    change = state.apply(event("ips.jobs.state", "job.completed", value))
    assert change is not None
    assert (change.name, change.job_type) == ("spring.zip", "UploadUrlsJob")
    assert change.what == "done: FAILED"
    assert change.what_text(20) == "done: FAILED"  # no room: the outcome alone
    assert change.what_text(40) == "done: FAILED · 85s · Unable to read file"
    assert change.what_text(30) == "done: FAILED · 85s · Unable t…"  # 30 columns
