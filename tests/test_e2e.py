"""End to end: simulator (real SOAP over HTTP) -> `streamer run` subprocess -> real Kafka broker."""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from jsonschema import Draft202012Validator

from streamer.encode import EVENT_TYPE_PREFIX, TopicNames, load_schema, short_type
from streamer.simulator import read_ground_truth
from tests.harness import Simulator, running_stack
from tests.verify import compare, expected_states

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")


@pytest.fixture(scope="module")
def e2e_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bounded run shared by the assertions below: 40 cycles per company at 0.5 s."""
    with running_stack(
        tmp_path_factory.mktemp("e2e"),
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=("--jobs-per-company", "3", "--speedup", "25", "--max-jobs", "14", "--seed", "7"),
        streamer_args=("--max-cycles", "40"),
        until=None,
    ) as stack:
        rc = stack.streamer.proc.wait(120)
    return {
        "rc": rc,
        "log": stack.log.read_text(),
        "ground_truth": stack.ground_truth(),
        "events": stack.events(),
        "records": stack.records(),
        "topics": stack.topics,
    }


def test_streamer_exits_cleanly_after_max_cycles(e2e_run: dict[str, Any]) -> None:
    """`streamer run --max-cycles` returns exit code 0 and logs one line per company cycle."""
    assert e2e_run["rc"] == 0, e2e_run["log"][-3000:]
    cycles = [json.loads(x) for x in e2e_run["log"].splitlines() if '"company_cycle"' in x]
    assert Counter(c["company"] for c in cycles) == dict.fromkeys(COMPANIES, 40)


def test_every_polled_transition_delivered_once_and_nothing_else(
    e2e_run: dict[str, Any],
) -> None:
    """Each state a poll saw is delivered once, in order per job; nothing invented."""
    gt = e2e_run["ground_truth"]
    report = compare(gt, e2e_run["events"])
    assert report.ok, report
    assert not report.skipped_flagged
    expected = expected_states(gt)
    # The workload really exercised the lifecycle: jobs were observed, changed state, finished.
    assert sum(1 for s in expected.values() if s[-1] == "gone") >= 5
    assert report.expected == report.delivered >= 20


def test_completions_carry_job_log_outcome(e2e_run: dict[str, Any]) -> None:
    """job.completed carries the outcome and counts of the job log the simulator wrote."""
    gt = e2e_run["ground_truth"]
    logs = {r["jobHandle"]: r["outcome"] for r in gt if r["kind"] == "joblog"}
    completed = [e for e in e2e_run["events"] if e.type == "job.completed"]
    assert completed
    for ev in completed:
        assert ev.value["outcome"] == logs[ev.key]
        assert ev.value["counts"]["totalFile"] >= 0
    assert len({e.value["outcome"] for e in completed}) >= 2


def test_records_keyed_by_job_handle_with_cloudevents_headers(e2e_run: dict[str, Any]) -> None:
    """Job records are keyed by jobHandle and carry CloudEvents binary-mode headers."""
    for ev in e2e_run["events"]:
        assert ev.key == ev.value["jobHandle"] == ev.headers["ce_subject"]
        assert ev.headers["ce_specversion"] == "1.0"
        assert ev.headers["ce_id"].startswith(ev.key + ":")
        assert ev.headers["ce_source"].startswith("http://127.0.0.1:")
        company = urllib.parse.quote(ev.value["companyHandle"], safe="")
        job = urllib.parse.quote(ev.key, safe="")
        assert ev.headers["ce_source"].endswith(f"/companies/{company}/jobs/{job}")
        assert ev.headers["ce_type"] == ev.value["type"] == EVENT_TYPE_PREFIX + ev.type
        assert len(ev.headers["ce_sequence"]) == 20


def _public_records(e2e_run: dict[str, Any]) -> list[tuple[str, Any, bytes, dict[str, str]]]:
    """``(topic, key, value, headers)`` of every record of the public topics but tombstones."""
    topics: TopicNames = e2e_run["topics"]
    public = (topics.state, topics.progress, topics.heartbeat, topics.notifications, topics.latest)
    return [
        (topic, key, value, {k: v.decode() for k, v in headers})
        for topic in public
        for _, key, value, headers in e2e_run["records"][topic]
        if value is not None
    ]


def test_every_event_validates_against_its_schema(e2e_run: dict[str, Any]) -> None:
    """Every job event, heartbeat and checkpoint record validates against its v2 JSON Schema,
    the one its ce_dataschema names."""
    validators: dict[str, Draft202012Validator] = {}
    checked = Counter[str]()
    for _, _key, value, hdrs in _public_records(e2e_run):
        kind = short_type(hdrs["ce_type"])
        if kind.startswith("streamer.notification."):
            kind = "streamer.notification"
        assert hdrs["ce_dataschema"].endswith(f"/schemas/{kind}.v2.json")
        if kind not in validators:
            validators[kind] = Draft202012Validator(load_schema(kind))
        validators[kind].validate(json.loads(value))
        checked[kind] += 1
    assert {"job.observed", "job.state_changed", "job.progress", "job.completed"} <= set(checked)
    assert checked["streamer.heartbeat"] >= 80
    assert checked["job.latest"] > 0


def test_the_cloudevents_sdk_decodes_every_record(e2e_run: dict[str, Any]) -> None:
    """The official CloudEvents SDK decodes every public record (binary mode) into the event
    its headers and value say: type, source, id, subject, sequence, dataschema, data."""
    decoded = 0
    for _, key, value, hdrs in _public_records(e2e_run):
        message = KafkaMessage({k: v.encode() for k, v in hdrs.items()}, key, value)
        event = from_binary_event(message)
        assert event.get_specversion() == "1.0"
        assert event.get_type() == hdrs["ce_type"]
        assert event.get_type().startswith(EVENT_TYPE_PREFIX)
        assert event.get_source() == hdrs["ce_source"]
        assert event.get_id() == hdrs["ce_id"]
        assert event.get_subject() == hdrs["ce_subject"]
        assert event.get_extension("sequence") == hdrs["ce_sequence"]
        assert event.get_dataschema() == hdrs["ce_dataschema"]
        assert event.get_data() == json.loads(value)
        decoded += 1
    assert decoded > 100


def test_sequence_increases_per_source(e2e_run: dict[str, Any]) -> None:
    """CloudEvents sequence extension: within each ce_source the ce_sequence values are unique
    and, read in order, strictly increasing: a job's events on the state and progress topics
    (one source per job), each company's heartbeats and notifications (a source each)."""
    topics: TopicNames = e2e_run["topics"]
    by_source: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for topic, _, _, hdrs in _public_records(e2e_run):
        if topic != topics.latest:
            by_source[hdrs["ce_source"]].append((topic, int(hdrs["ce_sequence"]), hdrs["ce_time"]))
    kinds = Counter(src.rsplit("/", 2)[-2] if "/jobs/" in src else src.rsplit("/", 1)[-1]
                    for src in by_source)  # fmt: skip
    assert kinds["jobs"] >= 5
    assert kinds["heartbeat"] == len(COMPANIES)
    for source, seen in by_source.items():
        for topic in {t for t, _, _ in seen}:
            in_topic = [seq for t, seq, _ in seen if t == topic]  # offset order
            assert all(a < b for a, b in itertools.pairwise(in_topic)), source
        merged = sorted(seen, key=lambda x: x[1])
        assert len({seq for _, seq, _ in merged}) == len(merged), source  # unique per source
        if "/jobs/" in source:  # the job's own counter, 1, 2, ... without gaps
            assert [seq for _, seq, _ in merged] == list(range(1, len(merged) + 1)), source
        times = [datetime.fromisoformat(t) for _, _, t in merged]
        assert times == sorted(times), source


def test_latest_records_share_their_jobs_source(e2e_run: dict[str, Any]) -> None:
    """A job's checkpoint records on the latest topic carry the job's source and the sequence
    of its last event: never going back, never ahead of the events."""
    topics: TopicNames = e2e_run["topics"]
    last_event: dict[str, int] = {}
    for topic, _, _, hdrs in _public_records(e2e_run):
        if topic in (topics.state, topics.progress):
            src = hdrs["ce_source"]
            last_event[src] = max(last_event.get(src, 0), int(hdrs["ce_sequence"]))
    seen: dict[str, int] = {}
    for topic, _, _, hdrs in _public_records(e2e_run):
        if topic != topics.latest:
            continue
        src, seq = hdrs["ce_source"], int(hdrs["ce_sequence"])
        assert src in last_event
        assert seen.get(src, 0) <= seq <= last_event[src]
        seen[src] = seq
    assert seen


def test_latest_topic_ends_with_tombstones_for_completed_jobs(e2e_run: dict[str, Any]) -> None:
    """The compacted topic's last record of every completed job is a tombstone."""
    topics: TopicNames = e2e_run["topics"]
    last: dict[bytes, bytes | None] = {}
    for _, key, value, _ in e2e_run["records"][topics.latest]:
        last[key] = value
    completed = {e.key.encode() for e in e2e_run["events"] if e.type == "job.completed"}
    assert completed
    for key in completed:
        assert last[key] is None


def test_ground_truth_file_is_written(tmp_path: Path) -> None:
    """The harness reads ground truth records written as JSON Lines."""
    path = tmp_path / "gt.jsonl"
    path.write_text('{"kind":"poll","ok":true,"company":"c","jobs":[["j","Running"]]}\n{"kind"')
    assert read_ground_truth(path) == [
        {"kind": "poll", "ok": True, "company": "c", "jobs": [["j", "Running"]]}
    ]


SHARED_IPSAPI = Path(__file__).resolve().parents[1].parent / "shared" / "ipsapi"


@pytest.mark.parametrize(
    "wsdl",
    ["official-2013-02-15", "official-2014-04-03", "served-by-url"],
)
def test_runs_against_official_wsdls_and_wsdl_urls(
    kafka_bootstrap: str, tmp_path: Path, wsdl: str
) -> None:
    """The daemon runs from an official 2013/2014 WSDL file or a WSDL URL, endpoint overridden."""
    if wsdl.startswith("official") and not SHARED_IPSAPI.is_dir():
        pytest.skip("official WSDLs not available (../shared/ipsapi)")
    locations: dict[str, Callable[[Simulator], str]] = {
        "official-2013-02-15": lambda _: str(SHARED_IPSAPI / "IpsApi-2013-02-15.wsdl"),
        "official-2014-04-03": lambda _: str(SHARED_IPSAPI / "IpsApi-2014-04-03.wsdl"),
        "served-by-url": lambda sim: sim.base_url + "/scene7/webservice/IpsApi-2014-04-03.wsdl",
    }
    with running_stack(
        tmp_path,
        kafka_bootstrap,
        companies=["c|1001"],
        sim_args=("--jobs-per-company", "3", "--speedup", "25", "--seed", "4"),
        interval_s=0.3,
        sections=lambda sim: {"ips": {"wsdl": locations[wsdl](sim)}},
        streamer_args=("--max-cycles", "15"),
        until=None,
    ) as stack:
        assert stack.streamer.proc.wait(90) == 0, stack.log.read_text()[-2000:]
        gt = stack.ground_truth()
    events = stack.events()
    report = compare(gt, events)
    assert report.ok, report
    observed = [e for e in events if e.type == "job.observed"]
    assert observed
    trigger = {e.value["snapshot"]["triggerTime"] is None for e in observed}
    # triggerTime exists only from 2014-04-03 on; the 2013 WSDL talks 2013 and never sees it.
    assert trigger == {wsdl == "official-2013-02-15"}
