"""The simulator's fault modes, control API and ground truth, over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from streamer.simulator import SERVICE_PATH, SIMULATOR, read_ground_truth, soap
from tests.test_simulator_http import MakeClient, advance, fault_of, jobs_of, post, simulators


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[MakeClient]:
    """A factory of simulator test clients, closed after the test."""
    async with simulators(tmp_path) as make:
        yield make


async def add_fault(client: TestClient[Any, Any], **rule: Any) -> int:
    """Add a fault rule through the control API; returns its id."""
    async with client.post("/_sim/faults", json=rule) as response:
        assert response.status == 201, await response.text()
        rule_id: int = (await response.json())["id"]
        return rule_id


@pytest.mark.parametrize(
    ("mode", "status", "element", "code"),
    [
        ("auth_fault", 500, "authenticationFault", 10001),
        ("authz_fault", 500, "authorizationFault", 20000),
        ("ipsapi_fault", 500, "ipsApiFault", 30000),
    ],
)
async def test_injected_soap_faults(
    make_client: MakeClient, mode: str, status: int, element: str, code: int
) -> None:
    """auth_fault / authz_fault / ipsapi_fault answer the matching SOAP fault."""
    client = await make_client()
    await add_fault(client, mode=mode)
    got_status, body, _ = await post(client)
    assert got_status == status
    assert fault_of(body)[:2] == (element, code)


async def test_http_error_modes(make_client: MakeClient) -> None:
    """http_500 is a 500 HTML page (no SOAP), http_503 a 503 with Retry-After."""
    client = await make_client()
    await add_fault(client, mode="http_500", count=1)
    status, body, response = await post(client)
    assert (status, response.content_type) == (500, "text/html")
    assert b"Envelope" not in body
    await add_fault(client, mode="http_503", count=1)
    status, _, response = await post(client)
    assert status == 503
    assert response.headers["Retry-After"]


async def test_truncated_reply_is_really_cut(make_client: MakeClient) -> None:
    """truncated: HTTP 200 whose body stops inside the job list and does not parse."""
    client = await make_client(jobs_per_company=10)
    await advance(client, 30)
    _, full, _ = await post(client)
    await add_fault(client, mode="truncated", count=1)
    status, body, response = await post(client, headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert response.headers.get("Content-Encoding") == "gzip"  # cut before compression
    assert full.startswith(body)
    assert len(body) < len(full)
    assert b"<jobArray>" in body
    assert b"</jobArray>" not in body
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(body)


async def test_malformed_empty_and_wrong_namespace(make_client: MakeClient) -> None:
    """malformed_xml is not well-formed, empty_reply is empty, wrong_namespace is re-namespaced."""
    client = await make_client()
    await advance(client, 30)
    await add_fault(client, mode="malformed_xml", count=1)
    status, body, _ = await post(client)
    assert status == 200
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(body)
    await add_fault(client, mode="empty_reply", count=1)
    assert (await post(client))[:2] == (200, b"")
    await add_fault(client, mode="wrong_namespace", count=1)
    status, body, _ = await post(client)
    payload = etree.fromstring(body).find(f"{{{soap.SOAP_ENV}}}Body")[0]  # type: ignore[index]
    assert etree.QName(payload).namespace == soap.NS_WRONG
    assert jobs_of(body, soap.NS_WRONG)


async def test_drop_connection_drops(make_client: MakeClient) -> None:
    """drop_connection closes the socket without any HTTP response."""
    client = await make_client()
    await add_fault(client, mode="drop_connection", count=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(client)
    assert (await post(client))[0] == 200


async def test_timeout_holds_the_request_then_drops(make_client: MakeClient) -> None:
    """timeout holds the request past a client timeout, then drops it without a reply."""
    client = await make_client()
    await add_fault(client, mode="timeout", timeout_s=0.5)
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.2):
            await post(client)
    started = time.monotonic()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(client)
    assert time.monotonic() - started >= 0.45


async def test_latency_delays_a_good_reply(make_client: MakeClient) -> None:
    """latency_s delays the reply of its company by that much, the reply is still good, and
    another company's reply does not wait for it."""
    latency = 3.0  # long enough that "did not wait for it" needs no tight time window
    client = await make_client()
    await add_fault(client, latency_s=latency, company="c|1001")
    started = time.monotonic()
    delayed = asyncio.create_task(post(client))
    other, _, _ = await post(client, params={"companyHandle": "c|1002"})
    assert other == 200
    assert time.monotonic() - started < latency
    status, _, _ = await delayed
    assert status == 200
    assert time.monotonic() - started >= latency - 0.02


async def test_count_company_scope_and_error_rate(make_client: MakeClient) -> None:
    """count retires a rule; company scoping spares others; error_rate fails some requests."""
    client = await make_client()
    await add_fault(client, mode="http_503", count=2, company="c|1001")
    other = await post(client, params={"companyHandle": "c|1002"})
    statuses = [(await post(client))[0] for _ in range(3)]
    assert (other[0], statuses) == (200, [503, 503, 200])
    async with client.get("/_sim/faults") as response:
        assert (await response.json())["rules"] == []
    await add_fault(client, error_rate=0.5)
    statuses = [(await post(client))[0] for _ in range(30)]
    assert 0 < statuses.count(500) < 30
    async with client.delete("/_sim/faults") as response:
        assert (await response.json())["removed"] == 1


async def test_control_api_rejects_bad_input(make_client: MakeClient) -> None:
    """Bad fault JSON is a 400; unknown rule ids, jobs and clock actions are 404."""
    client = await make_client()
    for bad in ({"mode": "meteor"}, {"bogus": 1}, [1, 2]):
        async with client.post("/_sim/faults", json=bad) as response:
            assert response.status == 400
    async with client.post("/_sim/faults", data=b"{") as response:
        assert response.status == 400
    for method, path in (("DELETE", "/_sim/faults/99"), ("POST", "/_sim/clock/rewind")):
        async with client.request(method, path) as response:
            assert response.status == 404
    async with client.post("/_sim/jobs/stall", json={"jobHandle": "j|x"}) as response:
        assert response.status == 404


async def test_vanish_before_log(make_client: MakeClient) -> None:
    """vanish_before_log: a job leaves the list but its log shows only after the delay."""
    client = await make_client(running_duration_s=(5.0, 10.0))
    rule = await add_fault(client, mode="vanish_before_log", company="c|1001", log_delay_s=60)
    await post(client)  # build the company at t=0
    await advance(client, 40)
    sim = client.app[SIMULATOR]
    company = sim.sync("c|1001")
    gone = [
        r
        for r in read_ground_truth(sim.config.ground_truth_path)
        if r["kind"] == "transition" and r["to"] == "gone"
    ]
    assert gone
    assert company.logs == {}
    params = {"companyHandle": "c|1001", "jobHandle": gone[0]["jobHandle"]}
    _, body, _ = await post(client, "getJobLogDetails", params)
    assert etree.fromstring(body).xpath("//*[local-name()='jobLogArray']/*") == []
    async with client.delete(f"/_sim/faults/{rule}") as response:
        assert response.status == 200
    await advance(client, 60)
    _, body, _ = await post(client, "getJobLogDetails", params)
    assert len(etree.fromstring(body).xpath("//*[local-name()='jobLogArray']/*")) == 1


async def test_clock_pause_resume_and_advance(make_client: MakeClient) -> None:
    """A paused clock stands still; advance jumps it; resume lets it run again."""
    client = await make_client(speedup=50.0)

    async def sim_seconds() -> float:
        async with client.get("/_sim/state") as response:
            value: float = (await response.json())["sim_seconds"]
            return value

    first = await sim_seconds()
    await asyncio.sleep(0.05)
    assert await sim_seconds() == first
    await advance(client, 12.5)
    assert await sim_seconds() == pytest.approx(first + 12.5)
    await client.post("/_sim/clock/resume")
    await asyncio.sleep(0.05)
    assert await sim_seconds() > first + 13.0
    await client.post("/_sim/clock/pause")
    paused = await sim_seconds()
    await asyncio.sleep(0.05)
    assert await sim_seconds() == paused


async def test_stalled_job_shows_frozen_progress(make_client: MakeClient) -> None:
    """A job stalled through the control API keeps its progress fields until unstalled."""
    client = await make_client(running_duration_s=(200.0, 300.0), stall_probability=0.0)
    await advance(client, 30)
    _, body, _ = await post(client)
    handle = next(h for h, state in jobs_of(body) if state == "Running")
    params = {"companyHandle": "c|1001", "jobHandle": handle}

    async def progress() -> list[str]:
        _, reply, _ = await post(client, params=params)
        root = etree.fromstring(reply)
        item = root.find(f".//{{{soap.NS_2014}}}items")
        assert item is not None
        return [
            item.findtext(f"{{{soap.NS_2014}}}{n}") or ""
            for n in ("progress", "lastProgressUpdate", "progressMessage")
        ]

    async with client.post("/_sim/jobs/stall", json={"jobHandle": handle}) as response:
        assert response.status == 200
    before = await progress()
    await advance(client, 60)
    assert await progress() == before
    async with client.post("/_sim/jobs/unstall", json={"jobHandle": handle}) as response:
        assert response.status == 200
    await advance(client, 30)
    after = await progress()
    assert int(after[0]) > int(before[0])
    assert after[1] > before[1]
    async with client.post("/_sim/jobs/unstall", json={"jobHandle": handle}) as response:
        assert response.status == 409


async def test_ground_truth_records_what_each_poll_could_see(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """Every served getActiveJobs reply has a matching ok poll record; failures are recorded."""
    client = await make_client(running_duration_s=(5.0, 20.0))
    served: list[tuple[str, list[list[str]]]] = []
    for step in range(12):
        company = ("c|1001", "c|1002")[step % 2]
        _, body, _ = await post(client, params={"companyHandle": company})
        served.append((company, jobs_of(body)))
        await advance(client, 4)
    await add_fault(client, mode="truncated", count=1)
    await post(client)
    await add_fault(client, mode="drop_connection", count=1)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(client)
    await post(client, password="wrong")
    await client.close()  # flushes the last facts and closes the file

    records = read_ground_truth(tmp_path / "truth.jsonl")
    polls = [r for r in records if r["kind"] == "poll"]
    ok = [(r["company"], r["jobs"]) for r in polls if r["ok"]]
    assert ok == served
    assert [r.get("fault") for r in polls if not r["ok"]] == [
        "truncated",
        "drop_connection",
        "authenticationFault",
    ]
    transitions = [r for r in records if r["kind"] == "transition"]
    states: dict[str, str] = {}
    for record in transitions:
        assert states.get(record["jobHandle"]) == record["from"]
        states[record["jobHandle"]] = record["to"]
    seen = {handle for _, jobs in served for handle, _ in jobs}
    assert seen <= set(states)
    gone = {r["jobHandle"]: r["outcome"] for r in transitions if r["to"] == "gone"}
    logs = {r["jobHandle"]: r["outcome"] for r in records if r["kind"] == "joblog"}
    assert gone
    assert gone == logs
    assert all(r["t"].endswith("Z") for r in records)


async def test_state_lists_a_companys_jobs(make_client: MakeClient) -> None:
    """GET /_sim/state?company= lists the company's jobs with state and progress."""
    client = await make_client()
    await advance(client, 30)
    async with client.get("/_sim/state", params={"company": "c|1001"}) as response:
        state = await response.json()
    assert state["companies_configured"] == 2
    assert state["jobs"]
    assert {"jobHandle", "state", "progress", "type", "name", "stalled"} <= set(state["jobs"][0])
    async with client.get("/_sim/state", params={"company": "c|404"}) as response:
        assert response.status == 404
    _, body, _ = await post(client)
    assert [[j["jobHandle"], j["state"]] for j in state["jobs"]] == jobs_of(body)
    async with client.post(SERVICE_PATH, data=b"") as response:
        assert response.status == 500
