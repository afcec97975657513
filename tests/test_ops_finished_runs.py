"""Finished runs read back: progress coalescing, `streamer tail`, and the alert consumer example.

Two bounded runs go side by side, each with a simulator of its own (same seed, many failing jobs):
``plain`` publishes every progress change; ``coalesced`` sets ``progress.min_step = 50`` and
``progress.min_interval_s = 100`` and detects stalls after 1 s (its simulator stalls jobs often).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streamer.encode import EVENT_TYPE_PREFIX, TopicNames
from streamer.topics import ensure_topics
from tests.harness import running_stack
from tests.verify import Delivered, compare

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
CYCLES = 40
ALERT_CONSUMER = Path(__file__).resolve().parents[1] / "examples" / "alert_consumer.py"


@dataclass
class FinishedRun:
    """What one bounded run left behind."""

    prefix: str
    rc: int
    log: str
    ground_truth: list[Mapping[str, Any]]
    events: list[Delivered]
    records: dict[str, list[Any]]

    @property
    def topics(self) -> TopicNames:
        """Its topic names."""
        return TopicNames.with_prefix(self.prefix)

    def types(self) -> Counter[str]:
        """Its job events by type."""
        return Counter(e.type for e in self.events)


@pytest.fixture(scope="module")
def runs(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, FinishedRun]:
    """The ``plain`` and the ``coalesced`` run, both finished (40 cycles per company)."""
    tmp = tmp_path_factory.mktemp("ops-finished")
    setups: dict[str, tuple[tuple[str, ...], dict[str, dict[str, Any]]]] = {
        "plain": (("--stall-probability=0",), {}),
        "coalesced": (
            ("--stall-probability=0.5",),
            {"progress": {"min_step": 50, "min_interval_s": 100}, "stall": {"after_s": 1.0}},
        ),
    }
    common = ("--jobs-per-company=3", "--speedup=25", "--max-jobs=14", "--seed=11")
    with contextlib.ExitStack() as exits:
        stacks = {
            name: exits.enter_context(
                running_stack(
                    tmp,
                    kafka_bootstrap,
                    companies=COMPANIES,
                    sim_args=(*common, "--fail-probability=0.3", *sim_args),
                    name=name,
                    interval_s=0.3,
                    sections=sections,
                    streamer_args=("--max-cycles", str(CYCLES)),
                    until=None,
                )
            )
            for name, (sim_args, sections) in setups.items()
        }
        rcs = {name: run.streamer.proc.wait(120) for name, run in stacks.items()}
    return {
        name: FinishedRun(
            prefix=run.prefix,
            rc=rcs[name],
            log=run.log.read_text(),
            ground_truth=list(run.ground_truth()),
            events=run.events(),
            records=run.records(),
        )
        for name, run in stacks.items()
    }


def test_coalescing_keeps_every_state_change_with_far_fewer_progress_events(
    runs: dict[str, FinishedRun],
) -> None:
    """With min_step 50 / min_interval 100 s every polled state change is still delivered once,
    while job.progress events drop far below the uncoalesced run's."""
    plain, coalesced = runs["plain"], runs["coalesced"]
    for run in (plain, coalesced):
        assert run.rc == 0, run.log[-3000:]
        report = compare(run.ground_truth, run.events)
        assert report.ok, report
        assert report.expected == report.delivered >= 20
        assert run.types()["job.completed"] >= 5
    many, few = plain.types()["job.progress"], coalesced.types()["job.progress"]
    assert many >= 50
    assert few * 10 <= many, (few, many)
    assert coalesced.types()["job.state_changed"] >= 3  # never coalesced


def alert_consumer(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``examples/alert_consumer.py`` to its end."""
    return subprocess.run(
        [sys.executable, str(ALERT_CONSUMER), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


ALERT = re.compile(
    r'^ALERT (job_failed |job_stalled) company=(\S+) job=("(?:[^"\\]|\\.)*"|\S+) .* id=(\S+)$'
)


def alerts_by_kind(stdout: str) -> dict[str, list[str]]:
    """Alert ids by kind (``job_failed`` / ``job_stalled``); every line must be an alert."""
    out: dict[str, list[str]] = {"job_failed": [], "job_stalled": []}
    for line in stdout.splitlines():
        match = ALERT.match(line)
        assert match, line
        out[match.group(1).strip()].append(match.group(4))
    return out


def test_alert_consumer_alerts_each_failed_completion_and_stall(
    runs: dict[str, FinishedRun], kafka_bootstrap: str
) -> None:
    """The example consumer prints one alert per failed job.completed and per job.stalled, and
    a second run in the same group prints nothing (its offsets were committed)."""
    run = runs["coalesced"]
    failed = {
        e.event_id
        for e in run.events
        if e.type == "job.completed" and e.value["outcome"] == "failed"
    }
    stalled = {e.event_id for e in run.events if e.type == "job.stalled"}
    assert failed, "the workload should fail some jobs"
    assert stalled, "the workload should stall some jobs"
    group = f"alerts-{uuid.uuid4().hex[:8]}"
    common = ["--bootstrap", kafka_bootstrap, "--topic-prefix", run.prefix, "--group-id", group]
    n = len(run.records[run.topics.state])
    first = alert_consumer(*common, "--from-beginning", "--max-messages", str(n), "--timeout", "20")
    assert first.returncode == 0, first.stderr
    alerts = alerts_by_kind(first.stdout)
    assert sorted(alerts["job_failed"]) == sorted(failed)
    assert sorted(alerts["job_stalled"]) == sorted(stalled)
    again = alert_consumer(*common, "--from-beginning", "--timeout", "3")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""


async def produce(bootstrap: str, topic: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    """Produce ``(ce_type, value)`` records keyed by jobHandle, ``ce_id`` from the value."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for ce_type, value in records:
            headers = [
                ("ce_type", ce_type.encode()),
                ("ce_id", f"{value['jobHandle']}:{value['sequence']:020d}".encode()),
            ]
            await producer.send_and_wait(
                topic, json.dumps(value).encode(), key=value["jobHandle"].encode(), headers=headers
            )
    finally:
        await producer.stop()


def test_alert_consumer_dedupes_by_ce_id(kafka_bootstrap: str, topic_prefix: str) -> None:
    """A record delivered twice (same ce_id) alerts once; successes and progress never alert;
    v2 and v1 (written before the upgrade) event types both alert."""
    topics = TopicNames.with_prefix(topic_prefix)
    asyncio.run(ensure_topics({"bootstrap_servers": kafka_bootstrap}, topics, 1, 1))
    base = {"companyHandle": "c|9", "observedAt": "2026-01-01T00:00:00+00:00"}
    status = {"state": "Running", "progress": 40, "progressMessage": "Uploading 4 of 10 files"}
    failed = {**base, "jobHandle": "j|1", "sequence": 4, "outcome": "failed", "lastStatus": status}
    v2 = EVENT_TYPE_PREFIX
    records = [
        (v2 + "job.completed", failed),
        (v2 + "job.progress", {**base, "jobHandle": "j|2", "sequence": 2, "status": status}),
        (v2 + "job.completed", failed),  # the duplicate
        (v2 + "job.completed", {**failed, "jobHandle": "j|3", "outcome": "succeeded"}),
        ("job.stalled", {**base, "jobHandle": "j|2", "sequence": 3, "status": status}),  # v1
    ]
    asyncio.run(produce(kafka_bootstrap, topics.state, records))
    result = alert_consumer(
        "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix,
        "--group-id", f"dedupe-{topic_prefix}", "--from-beginning", "--max-messages", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith('ALERT job_failed  company=c|9 job="j|1" type=? duration=? errors=?')
    assert lines[0].endswith("id=j|1:00000000000000000004")
    assert lines[1].startswith("ALERT job_stalled company=c|9 job=j|2 state=Running progress=40")
    assert "message='Uploading 4 of 10 files'" in lines[1]


LINE = re.compile(r"^(job\.[a-z_]+)\s+(c\|\d+)\s+(\S+) #(\d+) (.*)$")


def test_tail_lines_prints_readable_lines_of_a_finished_run(
    runs: dict[str, FinishedRun], kafka_bootstrap: str
) -> None:
    """`streamer tail --lines --from-beginning --max-records N` prints exactly N readable lines,
    each saying what the matching event says."""
    run = runs["plain"]
    by_id = {(e.key, int(e.headers["ce_sequence"])): e for e in run.events}
    n = 60
    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "tail", "--bootstrap", kafka_bootstrap,
         "--topic-prefix", run.prefix, "--lines", "--from-beginning", "--max-records", str(n)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == n
    seen: set[tuple[str, int]] = set()
    for line in lines:
        match = LINE.match(line)
        assert match, line
        ce_type, company, handle, seq, detail = match.groups()
        event = by_id[(handle, int(seq))]
        assert (ce_type, company) == (event.type, event.value["companyHandle"])
        seen.add((handle, int(seq)))
        if ce_type == "job.state_changed":
            assert detail.startswith(f"{event.value['from']} -> {event.value['to']}")
        elif ce_type == "job.progress":
            assert detail.startswith(f"{event.value['status']['progress']}% ")
        elif ce_type == "job.completed":
            assert detail.startswith(f"outcome={event.value['outcome']} ")
        elif ce_type == "job.observed":
            assert f"state={event.value['snapshot']['status']['state']}" in detail
    assert len(seen) == n  # no line twice
