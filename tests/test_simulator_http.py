"""The simulator over real HTTP: SOAP endpoint, auth, WSDL, compression, serve()."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from streamer.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    SERVICE_PATH,
    SIMULATOR,
    SimulatorConfig,
    build_app,
    read_ground_truth,
    serve,
    soap,
)
from streamer.simulator.server import DEFAULT_WSDL

EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "ipsapi"
MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@contextlib.asynccontextmanager
async def simulators(tmp_path: Path) -> AsyncIterator[MakeClient]:
    """Start simulators (clock paused at 0, no ticker) and close them on exit."""
    clients: list[TestClient[Any, Any]] = []

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        settings: dict[str, Any] = {
            "companies": ("c|1001", "c|1002"),
            "jobs_per_company": 5,
            "seed": 11,
            "start_time": EPOCH,
            "tick_s": None,
            "running_duration_s": (20.0, 60.0),
            "ground_truth_path": tmp_path / "truth.jsonl",
        }
        settings.update(overrides)
        app = build_app(SimulatorConfig(**settings))
        app[SIMULATOR].clock.pause()
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[MakeClient]:
    """A factory of simulator test clients, closed after the test."""
    async with simulators(tmp_path) as make:
        yield make


async def post(
    client: TestClient[Any, Any],
    operation: str = "getActiveJobs",
    params: dict[str, str] | None = None,
    *,
    user: str | None = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    namespace: str = soap.NS_2014,
    header_extra: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    """POST one SOAP request; returns status, body and the response."""
    if params is None:
        params = {"companyHandle": "c|1001"}
    body = soap.request_envelope(
        operation,
        params,
        namespace=namespace,
        user=user,
        password=password,
        header_extra=header_extra,
    )
    all_headers = {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": f'"{operation}"',
        **(headers or {}),
    }
    async with client.post(SERVICE_PATH, data=body, headers=all_headers) as response:
        return response.status, await response.read(), response


def fault_of(body: bytes) -> tuple[str, int, str]:
    """(detail element, code, faultcode) of a SOAP fault reply."""
    root = etree.fromstring(body)
    fault = root.find(f".//{{{soap.SOAP_ENV}}}Fault")
    assert fault is not None
    detail = fault.find("detail")
    assert detail is not None
    element = detail[0]
    code = element.findtext(f"{{{soap.FAULT_NS}}}code")
    assert code is not None
    return etree.QName(element).localname, int(code), fault.findtext("faultcode") or ""


def jobs_of(body: bytes, namespace: str = soap.NS_2014) -> list[list[str]]:
    """``[jobHandle, state]`` of every job in a getActiveJobs reply."""
    root = etree.fromstring(body)
    return [
        [i.findtext(f"{{{namespace}}}jobHandle") or "", i.findtext(f"{{{namespace}}}state") or ""]
        for i in root.iter(f"{{{namespace}}}items")
        if i.find(f"{{{namespace}}}jobHandle") is not None
    ]


async def advance(client: TestClient[Any, Any], seconds: float) -> None:
    """Move the paused simulated clock forward through the control API."""
    async with client.post("/_sim/clock/advance", json={"seconds": seconds}) as response:
        assert response.status == 200


async def test_good_credentials_get_jobs(make_client: MakeClient) -> None:
    """A valid authHeader gets HTTP 200 and the company's active jobs."""
    client = await make_client()
    await advance(client, 30)
    status, body, _ = await post(client)
    assert status == 200
    jobs = jobs_of(body)
    assert jobs
    assert all(h.startswith("j|1001||") for h, _ in jobs)


async def test_bad_credentials_are_authentication_fault_10001(make_client: MakeClient) -> None:
    """A wrong password gets HTTP 500 with authenticationFault 10001, faultcode Client."""
    client = await make_client()
    status, body, _ = await post(client, password="wrong")
    assert status == 500
    assert fault_of(body) == ("authenticationFault", 10001, "soapenv:Client")
    status, body, _ = await post(client, user="nobody@example.com")
    assert (status, fault_of(body)[1]) == (500, 10001)


async def test_no_credentials_is_10000_and_basic_auth_works(make_client: MakeClient) -> None:
    """No credentials at all is 10000 (not 401); HTTP Basic credentials are accepted."""
    client = await make_client()
    status, body, _ = await post(client, user=None)
    assert (status, fault_of(body)[:2]) == (500, ("authenticationFault", 10000))
    token = base64.b64encode(f"{DEFAULT_USER}:{DEFAULT_PASSWORD}".encode()).decode()
    status, body, _ = await post(client, user=None, headers={"Authorization": f"Basic {token}"})
    assert status == 200
    bad = base64.b64encode(f"{DEFAULT_USER}:nope".encode()).decode()
    status, body, _ = await post(client, user=None, headers={"Authorization": f"Basic {bad}"})
    assert fault_of(body)[1] == 10001


async def test_fault_http_status_code_is_honoured(make_client: MakeClient) -> None:
    """faultHttpStatusCode=200 in the authHeader turns a fault's HTTP status into 200."""
    client = await make_client()
    status, body, _ = await post(
        client, password="wrong", header_extra={"faultHttpStatusCode": "200"}
    )
    assert (status, fault_of(body)[1]) == (200, 10001)


async def test_company_checks(make_client: MakeClient) -> None:
    """Unknown company is authorizationFault 20000; a missing companyHandle is 30002."""
    client = await make_client()
    status, body, _ = await post(client, params={"companyHandle": "c|9999"})
    assert (status, fault_of(body)[:2]) == (500, ("authorizationFault", 20000))
    status, body, _ = await post(client, params={})
    assert fault_of(body)[:2] == ("ipsApiFault", 30002)


async def test_bad_request_xml_and_unknown_operation_are_30003(make_client: MakeClient) -> None:
    """Garbage and unknown operations get ipsApiFault 30003 over HTTP."""
    client = await make_client()
    async with client.post(SERVICE_PATH, data=b"<oops") as response:
        assert response.status == 500
        assert fault_of(await response.read())[:2] == ("ipsApiFault", 30003)
    _, body, _ = await post(client, "deleteAsset")
    assert fault_of(body)[:2] == ("ipsApiFault", 30003)


async def test_filters_by_job_handle_and_original_name(make_client: MakeClient) -> None:
    """jobHandle and originalName filter the active list."""
    client = await make_client(jobs_per_company=12)
    await advance(client, 20)
    _, body, _ = await post(client)
    jobs = jobs_of(body)
    handle = jobs[3][0]
    _, body, _ = await post(client, params={"companyHandle": "c|1001", "jobHandle": handle})
    assert jobs_of(body) == [jobs[3]]
    sim = client.app[SIMULATOR]
    name = sim.world.companies["c|1001"].active[handle].original_name
    _, body, _ = await post(client, params={"companyHandle": "c|1001", "originalName": name})
    root = etree.fromstring(body)
    names = root.xpath("//*[local-name()='originalName']/text()")
    assert names
    assert set(names) == {name}


async def test_reply_uses_the_request_namespace(make_client: MakeClient) -> None:
    """A 2013-02-15 request gets a 2013-02-15 reply without triggerTime."""
    client = await make_client()
    await advance(client, 30)
    status, body, _ = await post(client, namespace=soap.NS_2013)
    assert status == 200
    assert jobs_of(body, soap.NS_2013)
    assert b"triggerTime" not in body
    assert soap.NS_2014.encode() not in body


async def test_job_logs_over_http(make_client: MakeClient) -> None:
    """A vanished job's log is served by getJobLogDetails; unknown handles get an empty array."""
    client = await make_client(running_duration_s=(5.0, 10.0))
    await advance(client, 200)
    company = client.app[SIMULATOR].sync("c|1001")
    handle = next(iter(company.logs))
    params = {"companyHandle": "c|1001", "jobHandle": handle}
    status, body, _ = await post(client, "getJobLogDetails", params)
    assert status == 200
    root = etree.fromstring(body)
    assert root.xpath("//*[local-name()='jobLogArray']/*/*[local-name()='jobHandle']/text()") == [
        handle
    ]
    assert root.xpath("//*[local-name()='detailArray']/*")
    params["jobHandle"] = "j|1001||nope"
    _, body, _ = await post(client, "getJobLogDetails", params)
    assert etree.fromstring(body).xpath("//*[local-name()='jobLogArray']/*") == []
    _, body, _ = await post(client, "getJobLogs", {"companyHandle": "c|1001", "numRows": "2"})
    assert len(etree.fromstring(body).xpath("//*[local-name()='jobLogArray']/*")) == 2


async def test_gzip_when_accepted_unless_header_says_no(make_client: MakeClient) -> None:
    """Replies are gzipped when Accept-Encoding allows, not when gzipResponse=false."""
    client = await make_client(jobs_per_company=20)
    await advance(client, 30)
    _, _, response = await post(client, headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("Content-Encoding") == "gzip"
    _, _, response = await post(
        client, headers={"Accept-Encoding": "gzip"}, header_extra={"gzipResponse": "false"}
    )
    assert "Content-Encoding" not in response.headers
    _, _, response = await post(client, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in response.headers


def _wsdl_for_test() -> Path:
    if DEFAULT_WSDL.is_file():
        return DEFAULT_WSDL
    official = SHARED / "IpsApi-2014-04-03.wsdl"
    if not official.is_file():
        pytest.skip("no WSDL available")
    return official


async def test_wsdl_is_served_with_this_servers_address(make_client: MakeClient) -> None:
    """GET of the WSDL returns it with soap:address pointing at this server's service URL."""
    client = await make_client(wsdl_path=_wsdl_for_test())
    async with client.get("/scene7/webservice/IpsApi-2014-04-03.wsdl") as response:
        assert response.status == 200
        root = etree.fromstring(await response.read())
    locations = root.xpath("//*[local-name()='address']/@location")
    assert locations
    assert set(locations) == {str(client.make_url(SERVICE_PATH))}
    for name in ("nope.wsdl", "..%2Fsecret.xsd", "IpsApi.txt"):
        async with client.get(f"/scene7/webservice/{name}") as response:
            assert response.status == 404


async def test_stop_and_start_the_endpoint(make_client: MakeClient, tmp_path: Path) -> None:
    """/_sim/stop makes the SOAP endpoint answer 503 (a failed poll); /_sim/start undoes it."""
    client = await make_client()
    async with client.post("/_sim/stop") as response:
        assert (await response.json()) == {"accepting": False}
    status, _, _ = await post(client)
    assert status == 503
    await client.post("/_sim/start")
    status, _, _ = await post(client)
    assert status == 200
    polls = [r for r in read_ground_truth(tmp_path / "truth.jsonl") if r["kind"] == "poll"]
    assert [(r["ok"], r.get("fault")) for r in polls] == [(False, "stopped"), (True, None)]


async def test_serve_picks_a_port_reports_ready_and_stops_cleanly(tmp_path: Path) -> None:
    """serve() with port 0 calls ready(base_url), answers requests, and ends on cancel."""
    urls: list[str] = []
    ready = asyncio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    config = SimulatorConfig(tick_s=0.05, ground_truth_path=tmp_path / "gt.jsonl")
    task = asyncio.create_task(serve(config, "127.0.0.1", 0, ready=on_ready))
    await asyncio.wait_for(ready.wait(), 10)
    assert urls[0].startswith("http://127.0.0.1:")
    assert not urls[0].endswith(":0")
    async with aiohttp.ClientSession() as session, session.get(urls[0] + "/_sim/state") as r:
        assert (await r.json())["accepting"] is True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (tmp_path / "gt.jsonl").exists()
