"""The simulator's fault plan: which request fails how, and for how long; scripted replies."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamer.simulator.faults import MODES, SHOWN_BODY_CHARS, FaultPlan, FaultRule
from tests.test_simulator_chaos import add_fault
from tests.test_simulator_http import MakeClient, post, simulators


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[MakeClient]:
    """A factory of simulator test clients, closed after the test."""
    async with simulators(tmp_path) as make:
        yield make


def test_no_rules_no_fault() -> None:
    """An empty plan lets every request through without delay."""
    decision = FaultPlan().decide("c|1", "getActiveJobs")
    assert (decision.latency_s, decision.mode) == (0.0, None)


def test_rule_applies_only_to_its_company_and_operation() -> None:
    """A company/operation-scoped rule leaves other companies and operations alone."""
    plan = FaultPlan([FaultRule(company="c|1", mode="http_500", operation="getActiveJobs")])
    assert plan.decide("c|1", "getActiveJobs").mode == "http_500"
    assert plan.decide("c|2", "getActiveJobs").mode is None
    assert plan.decide("c|1", "getJobLogDetails").mode is None


def test_count_retires_the_rule_after_firing() -> None:
    """A rule with count=N fails exactly the next N matching requests."""
    plan = FaultPlan([FaultRule(mode="http_503", count=2)])
    modes = [plan.decide("c|1", "getActiveJobs").mode for _ in range(4)]
    assert modes == ["http_503", "http_503", None, None]
    assert plan.to_json() == []


def test_latency_adds_up_and_counts_requests() -> None:
    """Latency of all matching rules adds; a latency-only rule with count retires too."""
    plan = FaultPlan([FaultRule(latency_s=0.2, count=1), FaultRule(latency_s=0.3)])
    assert plan.decide("c|1", None).latency_s == pytest.approx(0.5)
    assert plan.decide("c|1", None).latency_s == pytest.approx(0.3)


def test_error_rate_is_a_seeded_probability() -> None:
    """error_rate fires about that often, reproducibly for a seed; 0 never fires."""

    def draws(seed: int) -> list[str | None]:
        plan = FaultPlan([FaultRule(mode="http_500", error_rate=0.3)], seed=seed)
        return [plan.decide("c|1", None).mode for _ in range(400)]

    first = draws(1)
    assert first == draws(1)
    assert 80 < first.count("http_500") < 160
    never = FaultPlan([FaultRule(mode="http_500", error_rate=0.0)])
    assert all(never.decide("c|1", None).mode is None for _ in range(50))


def test_first_firing_rule_wins() -> None:
    """With several matching rules, the first one that fires picks the mode."""
    plan = FaultPlan([FaultRule(mode="timeout"), FaultRule(mode="http_500")])
    assert plan.decide("c|1", None).mode == "timeout"


def test_vanish_before_log_is_a_lifecycle_mode() -> None:
    """vanish_before_log never fails a request; it turns into log delays (None = never)."""
    plan = FaultPlan(
        [
            FaultRule(company="c|1", mode="vanish_before_log"),
            FaultRule(mode="vanish_before_log", log_delay_s=30.0),
        ]
    )
    assert plan.decide("c|1", "getJobLogDetails").mode is None
    assert plan.log_delays() == {"c|1": math.inf, None: 30.0}


def test_clear_and_remove() -> None:
    """Rules can be removed by id, by company, or all at once."""
    plan = FaultPlan()
    a = plan.add(FaultRule(company="c|1", mode="http_500"))
    plan.add(FaultRule(company="c|2", mode="http_500"))
    plan.add(FaultRule(company="c|2", mode="http_503"))
    assert plan.remove(a)
    assert not plan.remove(a)
    assert plan.clear("c|2") == 2
    assert plan.to_json() == []


def test_from_json_validates() -> None:
    """The control API's JSON is checked: unknown keys/modes and bad values are refused."""
    rule = FaultRule.from_json({"company": "c|1", "error_rate": 0.3})
    assert rule.mode == "http_500"  # error_rate alone means HTTP 500
    for bad in (
        {"mode": "explode"},
        {"nope": 1},
        {"error_rate": 2},
        {"count": 0},
        {"latency_s": -1},
        {"mode": "http_500", "error_rate": "x"},
    ):
        with pytest.raises(ValueError, match=r"\w"):
            FaultRule.from_json(bad)


def test_every_documented_mode_is_accepted() -> None:
    """All modes the brief names exist."""
    assert {
        "http_500",
        "http_503",
        "timeout",
        "auth_fault",
        "authz_fault",
        "ipsapi_fault",
        "malformed_xml",
        "truncated",
        "wrong_namespace",
        "drop_connection",
        "empty_reply",
        "vanish_before_log",
        "raw",
        "drip",
    } == MODES


def test_scripted_reply_rules_are_validated() -> None:
    """raw/drip rules: one body source, a real HTTP status, sane drip numbers, strings only."""
    assert FaultRule.from_json({"mode": "raw", "status": 401, "body": "no"}).status == 401
    for bad in (
        {"mode": "raw", "body": "a", "body_file": "/tmp/a"},
        {"mode": "http_500", "body": "a"},
        {"mode": "raw", "status": 99},
        {"mode": "raw", "status": 600},
        {"mode": "raw", "body": 5},
        {"mode": "drip", "drip_s": -1},
        {"mode": "drip", "chunk_bytes": 0},
    ):
        with pytest.raises(ValueError, match=r"\w"):
            FaultRule.from_json(bad)


def test_body_bytes_come_from_the_text_or_the_file(tmp_path: Path) -> None:
    """body is sent UTF-8 encoded; body_file byte for byte, also when it is not UTF-8."""
    assert FaultRule(mode="raw", body="é").body_bytes() == "é".encode()
    path = tmp_path / "reply.bin"
    path.write_bytes(b"\xff\xfe<x/>")
    assert FaultRule(mode="raw", body_file=str(path)).body_bytes() == b"\xff\xfe<x/>"
    assert FaultRule(mode="drip").body_bytes() is None


def test_a_long_body_is_shown_as_an_excerpt() -> None:
    """to_json (logs, the control API's view) shows a long body's start and length only."""
    shown = FaultRule(mode="raw", body="x" * 100_000).to_json()["body"]
    assert shown.startswith("x" * SHOWN_BODY_CHARS)
    assert len(shown) < SHOWN_BODY_CHARS + 50
    assert "100,000 chars" in shown


async def test_raw_answers_the_scripted_status_and_bytes(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """raw: the given status and body (text or file, byte for byte) for its company only."""
    client = await make_client()
    await add_fault(client, mode="raw", company="c|1001", status=401, body="<h1>who?</h1>",
                    content_type="text/html")  # fmt: skip
    status, body, response = await post(client)
    assert (status, body, response.content_type) == (401, b"<h1>who?</h1>", "text/html")
    assert (await post(client, params={"companyHandle": "c|1002"}))[0] == 200
    path = tmp_path / "bad-utf8.xml"
    path.write_bytes(b"<a>\xc3\x28</a>")
    async with client.delete("/_sim/faults") as deleted:
        assert deleted.status == 200
    await add_fault(client, mode="raw", body_file=str(path), operation="getActiveJobs")
    assert (await post(client))[:2] == (200, b"<a>\xc3\x28</a>")


async def test_raw_body_file_must_exist(make_client: MakeClient, tmp_path: Path) -> None:
    """The control API refuses a body_file that is not there (400), not every later request."""
    client = await make_client()
    rule = {"mode": "raw", "body_file": str(tmp_path / "missing.xml")}
    async with client.post("/_sim/faults", json=rule) as response:
        assert response.status == 400
        assert "body_file" in await response.text()


async def test_drip_sends_the_real_reply_slowly(make_client: MakeClient) -> None:
    """drip: the same bytes as an undisturbed reply, spread over at least drip_s seconds."""
    drip_s = 3.0  # a lower bound only: sleeping cannot make it arrive early
    client = await make_client()
    _, normal, _ = await post(client)
    await add_fault(client, mode="drip", drip_s=drip_s, chunk_bytes=200, count=1)
    started = time.monotonic()
    status, body, _ = await post(client)
    assert time.monotonic() - started >= drip_s * 0.9
    assert (status, body) == (200, normal)


async def test_drip_beyond_a_client_timeout_times_it_out(make_client: MakeClient) -> None:
    """A reply dripped over longer than the client waits ends in the client's timeout."""
    client = await make_client()
    await add_fault(client, mode="drip", drip_s=30, body="<x>" + "y" * 5000 + "</x>")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await post(client)
