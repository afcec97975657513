"""[filter] and [privacy] end to end: simulator -> `streamer run` -> real broker, every topic read
back as raw bytes (keys, values, headers), the private checkpoint topic included."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streamer.config import load_config
from streamer.encode import TopicNames
from streamer.ips import IpsClient
from streamer.service import ips_settings_for
from streamer.simulator.catalog import KINDS, UNDOCUMENTED_KINDS
from tests.harness import USER, Stack, read_topics, running_stack, sim_control

pytestmark = pytest.mark.kafka

COMPANIES = ("c|1001", "c|1002")
#: The simulator submits every job as its first user: this address is what must not leak.
EMAIL = USER.encode()
KEY = "e2e-hash-key-0123456789abcdef"
SIM_ARGS = ("--jobs-per-company", "4", "--speedup", "25", "--seed", "11")
#: Reconcile often, so that job logs of filtered jobs are listed during the run.
RECONCILE = "\n[completion]\nreconcile_interval_s = 2\nreconcile_delay_s = 5\n"
FILTERS = """
[filter]
exclude_job_types = ["UrlUpload"]

[filter.companies."c|1002"]
states = ["Running"]
progress = false
"""
RawRecord = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]
_EMAIL_FIELD = re.compile(rb'"submitUserEmail":"([^"]*)"')


def every_record(stack: Stack) -> list[RawRecord]:
    """Every committed record of every topic of the stack's prefix, private ones included."""
    t = stack.topics
    names = [t.state, t.progress, t.latest, t.heartbeat, t.notifications, t.checkpoint, t.shards]
    return asyncio.run(read_topics(stack.bootstrap, names))


def raw_bytes(record: RawRecord) -> bytes:
    """Key, value and every header name and value of a record, concatenated."""
    _, key, value, headers = record
    return b"\0".join([key or b"", value or b"", *(k.encode() + b"=" + v for k, v in headers)])


def spellings(handle: str) -> list[bytes]:
    """How a job handle can appear in a record: as is, JSON-escaped, percent-encoded."""
    forms = {handle, json.dumps(handle)[1:-1], urllib.parse.quote(handle, safe="")}
    return [f.encode() for f in forms]


def job_values(records: Iterable[RawRecord], topics: TopicNames) -> list[dict[str, Any]]:
    """The JSON values of the job events (state and progress topics)."""
    return [
        json.loads(value)
        for topic, _, value, _ in records
        if topic in (topics.state, topics.progress) and value is not None
    ]


def states_entered(values: Iterable[dict[str, Any]]) -> set[str]:
    """The states job.observed (first seen in) and job.state_changed (to) were published for."""
    out = set()
    for v in values:
        if kind(v) == "observed":
            out.add(v["snapshot"]["status"]["state"])
        elif kind(v) == "state_changed":
            out.add(v["to"])
    return out


def kind(value: dict[str, Any]) -> str:
    """``observed``, ``state_changed``, ... of a job event value, whatever the type's prefix."""
    return str(value["type"]).rsplit("job.", 1)[-1]


async def types_of_jobs(stack: Stack) -> dict[str, str]:
    """jobHandle -> job type of every job the simulator ran so far (finished: from getJobLogs
    by the name prefix the simulator gives each kind; active: from its control API)."""
    prefixes = {k.name_prefix + "_": k.type for k in KINDS + UNDOCUMENTED_KINDS}
    settings = load_config(stack.config, {})
    out: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        client = await IpsClient.create(ips_settings_for(settings, COMPANIES[0]), session)
        for company in COMPANIES:
            listing = await client.list_job_logs(company)
            for log in listing.logs:
                out[log.job_handle] = next(
                    t for p, t in prefixes.items() if log.job_name.startswith(p)
                )
    for company in COMPANIES:
        state = sim_control(stack.sim, f"/_sim/state?company={urllib.parse.quote(company)}",
                            method="GET")  # fmt: skip
        out.update({j["jobHandle"]: j["type"] for j in state["jobs"]})
    return out


@pytest.fixture(scope="module")
def filtered_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bounded run: UrlUpload excluded everywhere; c|1002 streams state events only into
    Running (the simulator's jobs go New, WaitingCoordinator, Running) and no progress; the
    default privacy policy (drop)."""
    with running_stack(
        tmp_path_factory.mktemp("filters-e2e"),
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=SIM_ARGS,
        extra=RECONCILE + FILTERS,
        streamer_args=("--max-cycles", "50"),
        until=None,
    ) as stack:
        rc = stack.streamer.proc.wait(180)
        return {
            "rc": rc,
            "log": stack.log.read_bytes(),
            "records": every_record(stack),
            "types": asyncio.run(types_of_jobs(stack)),
            "topics": stack.topics,
        }


def test_filtered_run_exits_cleanly(filtered_run: dict[str, Any]) -> None:
    """The run with filters finishes its cycles and exits 0."""
    assert filtered_run["rc"] == 0, filtered_run["log"][-3000:]


def test_a_filtered_job_type_reaches_no_topic(filtered_run: dict[str, Any]) -> None:
    """No record on any topic (checkpoint included) names a UrlUpload job, in its key, value
    or headers; the other types are streamed."""
    types: dict[str, str] = filtered_run["types"]
    filtered = [h for h, t in types.items() if t == "UrlUpload"]
    assert len(filtered) >= 3, types  # the run did submit jobs of the filtered type
    records: list[RawRecord] = filtered_run["records"]
    blobs = [raw_bytes(r) for r in records]
    leaks = [h for h in filtered for form in spellings(h) if any(form in b for b in blobs)]
    assert leaks == []
    values = job_values(records, filtered_run["topics"])
    seen = {v["snapshot"]["type"] for v in values if kind(v) == "observed"}
    assert seen
    assert "UrlUpload" not in seen
    completed = [v for v in values if kind(v) == "completed"]
    assert completed
    assert all(types[v["jobHandle"]] != "UrlUpload" for v in completed)


def test_company_filter_turns_off_progress_and_filters_state_events(
    filtered_run: dict[str, Any],
) -> None:
    """c|1002: no job.progress, state events only into Running, and every job's sequence
    1, 2, 3 ... without holes; c|1001 keeps both."""
    values = job_values(filtered_run["records"], filtered_run["topics"])
    by_company: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in values:
        by_company[v["companyHandle"]].append(v)
    other, own = by_company["c|1001"], by_company["c|1002"]
    assert any(kind(v) == "progress" for v in other)
    assert states_entered(other) - {"Running"}
    assert own
    assert not any(kind(v) == "progress" for v in own)
    assert states_entered(own) == {"Running"}
    sequences: dict[str, list[int]] = defaultdict(list)
    for v in own:
        sequences[v["jobHandle"]].append(v["sequence"])
    for handle, seqs in sequences.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), handle


def test_dropped_address_reaches_no_topic_and_no_log_line(filtered_run: dict[str, Any]) -> None:
    """drop (the default): the address is in no record of any topic and in no log line;
    snapshots carry submitUserEmail as ""."""
    records: list[RawRecord] = filtered_run["records"]
    assert not [r for r in records if EMAIL in raw_bytes(r)]
    found = {m for r in records for m in _EMAIL_FIELD.findall(r[2] or b"")}
    assert found == {b""}
    assert EMAIL not in filtered_run["log"]


# -- hash, across a restart --------------------------------------------------------------------


@pytest.fixture(scope="module")
def hashed_runs(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two bounded runs on one config and one set of topics: privacy hash with a key file."""
    tmp = tmp_path_factory.mktemp("privacy-e2e")
    key_file = tmp / "email-hash.key"
    key_file.write_text(KEY + "\n")
    privacy = f'\n[privacy]\nsubmit_user_email = "hash"\nhash_key_file = "{key_file}"\n'
    with running_stack(
        tmp,
        kafka_bootstrap,
        companies=COMPANIES,
        sim_args=SIM_ARGS,
        extra=RECONCILE + privacy,
        start=False,
    ) as stack:
        stack.start("--max-cycles", "25", until=None)
        first_rc = stack.streamer.proc.wait(180)
        first = every_record(stack)
        stack.start("--max-cycles", "25", until=None)
        second_rc = stack.streamer.proc.wait(180)
        records = every_record(stack)
        return {
            "rc": (first_rc, second_rc),
            "log": stack.log.read_bytes(),
            "first": first,
            "second": records[len(first) :],
            "all": records,
        }


def test_hashed_address_is_the_keyed_hmac_before_and_after_a_restart(
    hashed_runs: dict[str, Any],
) -> None:
    """hash: every submitUserEmail on every topic is hmac-sha256 of the address under the key,
    the same in the records of both runs."""
    assert hashed_runs["rc"] == (0, 0), hashed_runs["log"][-3000:]
    digest = hmac.new(KEY.encode(), EMAIL.lower(), hashlib.sha256).hexdigest()
    expected = f"hmac-sha256:{digest}".encode()
    for run in ("first", "second"):
        values = {m for r in hashed_runs[run] for m in _EMAIL_FIELD.findall(r[2] or b"")}
        assert values == {expected}, run


def test_hashed_address_reaches_no_topic_and_no_log_line(hashed_runs: dict[str, Any]) -> None:
    """hash: the raw address is in no key, value or header of any topic, nor in the log."""
    assert not [r for r in hashed_runs["all"] if EMAIL in raw_bytes(r)]
    assert EMAIL not in hashed_runs["log"]


def test_check_shows_the_effective_filters(tmp_path: Path, kafka_bootstrap: str) -> None:
    """`streamer check` prints each company's effective filter and the privacy policy."""
    from tests.harness import run_cli, simulator, write_config

    with simulator(tmp_path, "--company", COMPANIES[0], "--company", COMPANIES[1]) as sim:
        config = write_config(
            tmp_path / "check.toml",
            endpoint=sim.endpoint,
            bootstrap=kafka_bootstrap,
            prefix="chkfilters",
            companies=COMPANIES,
            extra=FILTERS,
        )
        result = run_cli("check", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        r"ips c\|1001: ok, \d+ active jobs, \d+ of them streamed \(\d+ ms\)", lines[1]
    )
    assert (
        "filter c|1001: job types all except UrlUpload; state events all; job.progress on" in lines
    )
    assert (
        "filter c|1002: job types all except UrlUpload; state events only Running;"
        " job.progress off (own [filter.companies] keys)" in lines
    )
    assert 'privacy: submitUserEmail drop: published as ""' in lines
