"""Operational events on the topics: heartbeats of a quiet company, stalls and recoveries,
authentication notifications.

Most tests share one streamer run (two companies, 0.3 s interval, stalls after 1.5 s) against a
simulator whose jobs never stall on their own; the tests stall a job or break a company's
credentials through the simulator's control API and read the topics back while it runs.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from streamer.encode import TopicNames
from tests.harness import (
    Simulator,
    Streamer,
    all_records,
    delivered_events,
    http_request,
    running_stack,
    sim_control,
    wait_until,
)
from tests.verify import Delivered

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
INTERVAL_S = 0.3
STALL_AFTER_S = 1.5


@dataclass
class Run:
    """The module's running simulator and streamer, and where the streamer publishes."""

    sim: Simulator
    streamer: Streamer
    bootstrap: str
    prefix: str

    @property
    def topics(self) -> TopicNames:
        """Its topic names."""
        return TopicNames.with_prefix(self.prefix)

    def values(self, topic: str) -> list[dict[str, Any]]:
        """The committed record values of one of its topics (tombstones skipped)."""
        records = all_records(self.bootstrap, self.prefix)[topic]
        return [json.loads(value) for _, _, value, _ in records if value is not None]

    def events(self) -> list[Delivered]:
        """Its committed job events."""
        return delivered_events(self.bootstrap, self.prefix)


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A simulator without spontaneous stalls and a streamer detecting stalls after 1.5 s."""
    with running_stack(
        tmp_path_factory.mktemp("ops-events"),
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=("--jobs-per-company=3", "--speedup=20", "--seed=9", "--stall-probability=0"),
        interval_s=INTERVAL_S,
        sections={"stall": {"after_s": STALL_AFTER_S}},
    ) as stack:
        yield Run(stack.sim, stack.streamer, stack.bootstrap, stack.prefix)


def company_query(handle: str) -> str:
    """``?company=<handle>`` for the simulator's state endpoint."""
    return "?company=" + urllib.parse.quote(handle, safe="")


def stall_a_running_job(sim: Simulator, company: str) -> str:
    """Stall (until unstalled) some job the simulator has running; return its handle."""

    def try_stall() -> str | None:
        state = sim_control(sim, "/_sim/state" + company_query(company), method="GET")
        for job in state["jobs"]:
            if job["state"] == "Running" and 5 < job["progress"] < 60:
                body = {"jobHandle": job["jobHandle"], "duration_s": None}
                code, _ = http_request(sim.base_url + "/_sim/jobs/stall", method="POST", body=body)
                if code == 200:  # 409: it left Running meanwhile
                    return str(job["jobHandle"])
        return None

    return wait_until(try_stall, 30, interval_s=0.05, what="a running job to stall")


def metric_count(streamer: Streamer, event_type: str) -> float:
    """``streamer_events_total{type=event_type}`` from /metrics (0 when absent)."""
    _, text = streamer.get("/metrics")
    prefix = f'streamer_events_total{{type="{event_type}"}} '
    line = next((x for x in text.splitlines() if x.startswith(prefix)), None)
    return 0.0 if line is None else float(line.removeprefix(prefix))


def test_stalled_job_yields_stalled_then_recovered(run: Run) -> None:
    """A job frozen longer than stall.after_s gets job.stalled, then job.recovered once it moves."""
    handle = stall_a_running_job(run.sim, COMPANIES[0])
    try:
        wait_until(
            lambda: metric_count(run.streamer, "job.stalled") >= 1,
            STALL_AFTER_S + 30,
            what="job.stalled committed",
        )
    finally:
        sim_control(run.sim, "/_sim/jobs/unstall", {"jobHandle": handle})
    wait_until(lambda: metric_count(run.streamer, "job.recovered") >= 1, 30, what="job.recovered")
    events = run.events()
    stalls = [e for e in events if e.type in ("job.stalled", "job.recovered")]
    assert [(e.key, e.type) for e in stalls] == [
        (handle, "job.stalled"),
        (handle, "job.recovered"),
    ]
    stalled, recovered = (e.value for e in stalls)
    assert recovered["sequence"] > stalled["sequence"]
    assert STALL_AFTER_S <= stalled["stalledForS"] < recovered["stalledForS"]
    assert stalled["status"]["state"] == "Running"
    assert recovered["status"]["progress"] >= stalled["status"]["progress"]
    own = sorted((e for e in events if e.key == handle), key=lambda e: e.value["sequence"])
    assert [e.value["sequence"] for e in own] == list(range(1, len(own) + 1))


def test_auth_fault_notifies_and_recovers_while_other_company_publishes(run: Run) -> None:
    """An authentication fault gives authentication_failing, then company_recovered after it is
    fixed; the other company's heartbeats and events keep flowing meanwhile."""
    bad, good = COMPANIES
    sim_control(run.sim, "/_sim/faults", {"company": bad, "mode": "auth_fault"})
    try:
        wait_until(lambda: run.streamer.company(bad)["state"] == "auth_failed", 30, what="auth")
        good_cycles = run.streamer.company(good)["cycles"]
        wait_until(
            lambda: run.streamer.company(good)["cycles"] >= good_cycles + 5, 30, what="cycles"
        )
    finally:
        sim_control(run.sim, "/_sim/faults" + company_query(bad), method="DELETE")
    wait_until(lambda: run.streamer.company(bad)["state"] == "ok", 30, what="bad recovered")
    notes = [n for n in run.values(run.topics.notifications) if n["companyHandle"] == bad]
    kinds = [n["kind"] for n in notes]
    assert kinds == ["authentication_failing", "company_recovered"], notes
    failing = notes[0]
    assert failing["type"] == "dev.ips-job-streamer.streamer.notification.authentication_failing"
    assert "fault_authentication" in failing["message"]
    start, end = (datetime.fromisoformat(n["at"]) for n in notes)
    assert start < end

    def during(value: dict[str, Any], key: str) -> bool:
        return start <= datetime.fromisoformat(value[key]) < end

    beats = [b for b in run.values(run.topics.heartbeat) if during(b, "polledAt")]
    good_beats = [b for b in beats if b["companyHandle"] == good]
    assert len(good_beats) >= 5
    assert all(b["ok"] for b in good_beats)
    bad_beats = [b for b in beats if b["companyHandle"] == bad]
    assert bad_beats
    assert not any(b["ok"] for b in bad_beats)
    assert {b["error"] for b in bad_beats} == {"fault_authentication"}
    events = [e for e in run.events() if during(dict(e.value), "observedAt")]
    assert any(e.value["companyHandle"] == good for e in events)
    assert not any(e.value["companyHandle"] == bad for e in events)  # never invented


def test_quiet_company_heartbeats_once_per_cycle(
    kafka_bootstrap: str, tmp_path: Path, topic_prefix: str
) -> None:
    """A company without jobs still gets one ok heartbeat per cycle, with activeJobs 0."""
    cycles = 6
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=["c|2001"],
        sim_args=("--jobs-per-company=0",),
        prefix=topic_prefix,
        interval_s=INTERVAL_S,
        streamer_args=("--max-cycles", str(cycles)),
        until=None,
    ) as stack:
        assert stack.streamer.proc.wait(60) == 0, stack.log.read_text()[-2000:]
    topics = stack.topics
    records = stack.records()
    beats = [json.loads(v) for _, _, v, _ in records[topics.heartbeat]]
    assert len(beats) == cycles
    assert {(b["companyHandle"], b["ok"], b["activeJobs"], b["error"]) for b in beats} == {
        ("c|2001", True, 0, None)
    }
    polled = sorted(datetime.fromisoformat(b["polledAt"]) for b in beats)
    assert len(set(polled)) == cycles  # one heartbeat per cycle, each of its own poll
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(polled)]
    # Paced by the interval: not faster on average (a late cycle may catch up at once, so single
    # gaps can be short on a loaded machine), and no pause of seconds between cycles.
    assert sum(gaps) / len(gaps) > 0.5 * INTERVAL_S, gaps
    assert max(gaps) < 5, gaps
    assert all(b["lastSuccessAt"] == b["polledAt"] for b in beats)
    assert records[topics.state] == records[topics.progress] == records[topics.latest] == []
