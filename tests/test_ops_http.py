"""Operator endpoints of a running `streamer run`: /readyz, /healthz, /metrics, /status; and the
/schemas/ endpoint every record's ce_dataschema names by default.

One streamer subprocess (two companies, 0.3 s interval) runs for the whole module against a
simulator whose faults the tests switch on and off through its control API. Each test waits for
the streamer to be ready again before it starts, so the order of the tests does not matter.
"""

from __future__ import annotations

import http.client
import json
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from streamer.encode import TopicNames, short_type
from tests.harness import Simulator, Streamer, all_records, running_stack, sim_control, wait_until

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
INTERVAL_S = 0.3
#: Not ready once a company had no successful poll for READY_FACTOR * INTERVAL_S = 6 s: long
#: enough that a loaded machine does not flap /readyz between the checks below.
READY_FACTOR = 20.0
READY_WINDOW_S = READY_FACTOR * INTERVAL_S

#: Fault rules restricted to polls: a job log lookup must not use up a counted fault.
POLLS_ONLY = {"operation": "getActiveJobs"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def ops(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Simulator, Streamer]]:
    """A simulator and a streamer running against it (stopped at the end of the module)."""
    with running_stack(
        tmp_path_factory.mktemp("ops-http"),
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=("--jobs-per-company=3", "--speedup=25", "--seed=5", "--stall-probability=0"),
        interval_s=INTERVAL_S,
        sections={"poll": {"ready_factor": READY_FACTOR}},
    ) as stack:
        yield stack.sim, stack.streamer


@pytest.fixture
def ready(ops: tuple[Simulator, Streamer]) -> tuple[Simulator, Streamer]:
    """The module's simulator and streamer, with no fault rules left and /readyz at 200."""
    sim, streamer = ops
    sim_control(sim, "/_sim/faults", method="DELETE")
    sim_control(sim, "/_sim/start")
    sim_control(sim, "/_sim/clock/resume")
    wait_until(lambda: streamer.get("/readyz")[0] == 200, 60, what="/readyz 200")
    return sim, streamer


def scrape(streamer: Streamer) -> Samples:
    """Every sample of ``/metrics``, keyed by (sample name, labels)."""
    code, text = streamer.get("/metrics")
    assert code == 200, text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when it is absent (a labelled counter not incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def company_query(handle: str) -> str:
    """``?company=<handle>`` for the simulator's state endpoint."""
    return "?company=" + urllib.parse.quote(handle, safe="")


def test_readyz_503_names_failing_company_while_ips_down_healthz_stays_200(
    ready: tuple[Simulator, Streamer],
) -> None:
    """/readyz is 503 naming each company while IPS refuses, 200 again after; /healthz stays 200."""
    sim, streamer = ready
    health: list[int] = []

    def not_ready() -> str | None:
        health.append(streamer.get("/healthz")[0])
        code, text = streamer.get("/readyz")
        return text if code == 503 and all(f"company {c}:" in text for c in COMPANIES) else None

    sim_control(sim, "/_sim/stop")
    try:
        body = wait_until(not_ready, READY_WINDOW_S + 30, what="/readyz 503 for both companies")
        assert body.startswith("not ready\n")
        for company in COMPANIES:
            line = next(x for x in body.splitlines() if f"company {company}:" in x)
            assert "no successful poll for" in line
            assert "HTTP 503" in line  # the last error says what IPS answered
        down = scrape(streamer)
        assert sample(down, "streamer_ready") == 0.0
        for company in COMPANIES:
            since = "streamer_seconds_since_last_successful_poll"
            assert sample(down, since, company=company) > READY_WINDOW_S
        health.append(streamer.get("/healthz")[0])
    finally:
        sim_control(sim, "/_sim/start")
    wait_until(lambda: streamer.get("/readyz") == (200, "ready\n"), 30, what="/readyz 200 again")
    assert sample(scrape(streamer), "streamer_ready") == 1.0
    assert streamer.get("/healthz") == (200, '{"alive": true}')
    assert set(health) == {200}


def test_metrics_move_with_the_run(ready: tuple[Simulator, Streamer]) -> None:
    """Polls, events by type, poll latency, commits and per-company gauges move as cycles run."""
    _, streamer = ready
    kinds = ("job.observed", "job.state_changed", "job.progress", "job.completed")
    wait_until(
        lambda: sample(scrape(streamer), "streamer_events_total", type="job.completed") > 0,
        30,
        what="a first completion",
    )
    before = scrape(streamer)
    wait_until(
        lambda: (
            sample(scrape(streamer), "streamer_polls_total", result="ok")
            >= sample(before, "streamer_polls_total", result="ok") + 10
        ),
        30,
        what="10 more successful polls",
    )
    after = scrape(streamer)
    for name in ("streamer_poll_latency_seconds_count", "streamer_commits_total"):
        assert sample(after, name) > sample(before, name) > 0, name
    assert sample(after, "streamer_poll_latency_seconds_sum") > 0
    assert sample(after, "streamer_records_total") > sample(before, "streamer_records_total")
    for kind in kinds:
        assert sample(after, "streamer_events_total", type=kind) > 0, kind
    assert sum(sample(after, "streamer_events_total", type=k) for k in kinds) > sum(
        sample(before, "streamer_events_total", type=k) for k in kinds
    )
    for company in COMPANIES:
        since = sample(after, "streamer_seconds_since_last_successful_poll", company=company)
        assert 0 <= since < READY_WINDOW_S
        assert ("streamer_active_jobs", frozenset({("company", company)})) in after
    assert sample(after, "streamer_up") == 1.0


def test_poll_failures_counted_by_kind_under_injected_fault(
    ready: tuple[Simulator, Streamer],
) -> None:
    """Three injected HTTP 500s raise streamer_poll_failures{kind=http_5xx} by three."""
    sim, streamer = ready
    before = scrape(streamer)
    sim_control(
        sim, "/_sim/faults", {"company": COMPANIES[0], "mode": "http_500", "count": 3, **POLLS_ONLY}
    )
    wait_until(
        lambda: sim_control(sim, "/_sim/faults", method="GET")["rules"] == [], 30, what="3 fired"
    )
    wait_until(lambda: streamer.company(COMPANIES[0])["state"] == "ok", 30, what="recovery")
    after = scrape(streamer)
    kind = ("streamer_poll_failures_total", "http_5xx")
    assert sample(after, kind[0], kind=kind[1]) - sample(before, kind[0], kind=kind[1]) == 3
    failed = "streamer_polls_total"
    assert sample(after, failed, result="failed") - sample(before, failed, result="failed") == 3
    assert sample(after, "streamer_consecutive_poll_failures", company=COMPANIES[0]) == 0


def test_status_shows_last_poll_and_job_count_per_company(
    ready: tuple[Simulator, Streamer],
) -> None:
    """/status lists every company with a recent lastPollAt and the job count of its snapshot."""
    sim, streamer = ready
    sim_control(sim, "/_sim/clock/pause")  # freeze the job set so the counts can be compared
    try:
        cycles = {c: streamer.company(c)["cycles"] for c in COMPANIES}
        wait_until(
            lambda: all(streamer.company(c)["cycles"] >= cycles[c] + 2 for c in COMPANIES),
            30,
            what="two cycles after the pause",
        )
        doc = streamer.status()
        metrics = scrape(streamer)
        jobs = {
            c: len(sim_control(sim, "/_sim/state" + company_query(c), method="GET")["jobs"])
            for c in COMPANIES
        }
    finally:
        sim_control(sim, "/_sim/clock/resume")
    now = datetime.fromisoformat(doc["now"])
    assert doc["ready"] is True
    assert doc["reasons"] == []
    assert doc["kafka"]["ok"] is True
    assert [c["handle"] for c in doc["companies"]] == list(COMPANIES)
    assert doc["config"]["ips"]["password"] == "**********"
    for entry in doc["companies"]:
        handle = entry["handle"]
        assert entry["state"] == "ok"
        assert entry["lastError"] is None
        assert entry["intervalS"] == INTERVAL_S
        last_poll = datetime.fromisoformat(entry["lastPollAt"])
        assert now - timedelta(seconds=READY_WINDOW_S) < last_poll <= now
        assert datetime.fromisoformat(entry["lastSuccessAt"]) <= now
        assert entry["activeJobs"] == jobs[handle] > 0
        assert sample(metrics, "streamer_active_jobs", company=handle) == jobs[handle]
        assert entry["trackedJobs"] >= entry["activeJobs"]


def test_status_shows_last_error_of_the_failing_company_only(
    ready: tuple[Simulator, Streamer],
) -> None:
    """/status shows a failing company's last error and kind; the other company has none."""
    sim, streamer = ready
    bad, good = COMPANIES
    sim_control(sim, "/_sim/faults", {"company": bad, "mode": "ipsapi_fault", **POLLS_ONLY})
    try:
        entry = wait_until(
            lambda: (e := streamer.company(bad))["consecutiveFailures"] >= 2 and e,
            30,
            what="two failed polls",
        )
        other = streamer.company(good)
    finally:
        sim_control(sim, "/_sim/faults" + company_query(bad), method="DELETE")
    assert entry["state"] == "failing"
    assert entry["lastErrorKind"] == "fault_ipsapi"
    assert "IpsApiFault 30000" in entry["lastError"]
    assert other["state"] == "ok"
    assert other["lastError"] is None
    recovered = wait_until(
        lambda: (e := streamer.company(bad))["state"] == "ok" and e, 30, what="recovery"
    )
    assert recovered["lastError"] is None
    assert recovered["consecutiveFailures"] == 0


def test_dataschema_of_consumed_records_resolves_on_the_daemon(
    ready: tuple[Simulator, Streamer],
) -> None:
    """The ce_dataschema of real consumed records (a job event, a heartbeat, a checkpoint) is a
    URL of the running daemon's /schemas/ endpoint; the schema fetched from it validates the
    record's value."""
    _, streamer = ready
    with streamer.config.open("rb") as fh:
        kafka = tomllib.load(fh)["kafka"]
    topics = TopicNames.with_prefix(kafka["topic_prefix"])
    wanted = (topics.state, topics.heartbeat, topics.latest)

    def consumed() -> dict[str, tuple[dict[str, str], bytes]] | None:
        records = all_records(kafka["bootstrap_servers"], kafka["topic_prefix"])
        found = {}
        for topic in wanted:
            for _, _, value, headers in records[topic]:
                if value is not None:
                    found[topic] = ({k: v.decode() for k, v in headers}, value)
                    break
        return found if len(found) == len(wanted) else None

    found = wait_until(consumed, 60, interval_s=1, what="records on every topic")
    for headers, value in found.values():
        url = headers["ce_dataschema"]
        kind = short_type(headers["ce_type"])
        assert url == f"http://127.0.0.1:{streamer.port}/schemas/{kind}.v2.json"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("application/schema+json")
            schema = json.loads(resp.read())
        Draft202012Validator(schema).validate(json.loads(value))


@pytest.mark.parametrize(
    "path",
    [
        "/schemas/../status",
        "/schemas/../../pyproject.toml",
        "/schemas/..%2F..%2Fpyproject.toml",
        "/schemas/%2e%2e/%2e%2e/streamer/encode.py",
        "/schemas/__init__.py",
        "/schemas/job.observed.v7.json",
    ],
)
def test_schemas_path_traversal_is_404(ready: tuple[Simulator, Streamer], path: str) -> None:
    """A raw request path that tries to leave /schemas/ (or names no schema) gets a 404."""
    _, streamer = ready
    conn = http.client.HTTPConnection("127.0.0.1", streamer.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=False)  # sent as is, not normalised
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 404, (path, body[:200])
