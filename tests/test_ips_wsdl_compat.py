"""The shipped WSDL against the official IPS WSDLs/XSDs (read from ../shared/ipsapi, never copied).

Tests that need the official files skip cleanly when that folder is absent; the checks of the
shipped WSDL on its own always run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from lxml import etree

from streamer.ips import (
    DEFAULT_WSDL,
    IpsClient,
    IpsSettings,
    decode_active_jobs,
)
from tests.zeep_reference import zeep_decode_active_jobs

SHARED_IPSAPI = Path(__file__).resolve().parents[1].parent / "shared" / "ipsapi"
FIXTURES = Path(__file__).parent / "fixtures" / "ips"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS14 = "http://www.scene7.com/IpsApi/xsd/2014-04-03"
NS13 = "http://www.scene7.com/IpsApi/xsd/2013-02-15"
FAULT_NS = "http://www.scene7.com/IpsApi/xsd"
SERVICE_PATH = "/scene7/services/IpsApiService"
#: Fixtures whose body is a 2014-04-03 return element (validated against the schemas).
VALID_2014 = (
    "active_jobs_empty.xml",
    "active_jobs_one.xml",
    "active_jobs_many.xml",
    "active_jobs_sub_jobs.xml",
    "active_jobs_optional_missing.xml",
    "active_jobs_task_items.xml",
    "job_log_details_success.xml",
    "job_log_details_errors.xml",
    "job_log_details_warnings.xml",
    "job_log_details_fatal.xml",
    "job_log_details_empty.xml",
    "job_log_details_page.xml",
    "job_logs.xml",
)

Signature = list[tuple[str | None, str | None, str, str]]


def official(name: str) -> Path:
    """Path of an official file; skips the test when ../shared/ipsapi is absent."""
    path = SHARED_IPSAPI / name
    if not path.is_file():
        pytest.skip(f"official IPS API files not available ({SHARED_IPSAPI})")
    return path


def own_schemas() -> dict[str, etree._Element]:
    """The shipped WSDL's inline schemas by targetNamespace."""
    root = etree.parse(DEFAULT_WSDL).getroot()
    return {str(s.get("targetNamespace")): s for s in root.iter(f"{{{XS}}}schema")}


def signature(node: etree._Element) -> Signature:
    """(name, type, minOccurs, maxOccurs) of every element declared under ``node``, in order."""
    return [
        (e.get("name"), e.get("type"), e.get("minOccurs", "1"), e.get("maxOccurs", "1"))
        for e in node.iter(f"{{{XS}}}element")
    ]


def named(schema: etree._Element, kind: str) -> dict[str, etree._Element]:
    """Top-level ``complexType`` or ``element`` declarations of a schema by name."""
    return {str(n.get("name")): n for n in schema.findall(f"{{{XS}}}{kind}")}


def body_schema(schema: etree._Element) -> etree.XMLSchema:
    """An lxml XMLSchema for one inline schema element."""
    return etree.XMLSchema(etree.ElementTree(schema))


def return_element(fixture: str) -> etree._Element:
    """The single SOAP Body child of a fixture."""
    env = etree.parse(str(FIXTURES / fixture)).getroot()
    return env.find(f"{{{SOAP11}}}Body")[0]  # type: ignore[index]


# ------------------------------------------------------------------------------------------
# The shipped WSDL on its own
# ------------------------------------------------------------------------------------------


def test_own_wsdl_is_complete_for_the_job_operations() -> None:
    """The shipped WSDL declares the three operations, SOAP 1.1, SOAPAction = name, port, faults."""
    root = etree.parse(DEFAULT_WSDL).getroot()
    wsdl, soap = "http://schemas.xmlsoap.org/wsdl/", "http://schemas.xmlsoap.org/wsdl/soap/"
    assert root.get("targetNamespace") == "http://www.scene7.com/IpsApi"
    ops = root.findall(f"{{{wsdl}}}binding/{{{wsdl}}}operation")
    assert [o.get("name") for o in ops] == ["getActiveJobs", "getJobLogs", "getJobLogDetails"]
    for op in ops:
        assert op.find(f"{{{soap}}}operation").get("soapAction") == op.get("name")  # type: ignore[union-attr]
        assert op.find(f"{{{wsdl}}}input/{{{soap}}}header") is not None
        assert [f.get("name") for f in op.findall(f"{{{wsdl}}}fault")] == [
            "ipsApiFault",
            "authenticationFault",
            "authorizationFault",
        ]
    port = root.find(f"{{{wsdl}}}service/{{{wsdl}}}port")
    assert port is not None
    assert port.get("name") == "IpsApiSoapPort"
    assert set(own_schemas()) == {NS14, FAULT_NS}


@pytest.mark.parametrize("fixture", VALID_2014)
def test_fixtures_are_valid_against_own_schema(fixture: str) -> None:
    """Every well-formed 2014 fixture validates against the shipped WSDL's schema."""
    schema = body_schema(own_schemas()[NS14])
    schema.assertValid(return_element(fixture))


def test_own_schema_rejects_the_missing_required_fixture() -> None:
    """The schema check above can fail: the missing-jobHandle fixture is invalid."""
    schema = body_schema(own_schemas()[NS14])
    assert not schema.validate(return_element("active_jobs_missing_required.xml"))


# ------------------------------------------------------------------------------------------
# Against the official 2014-04-03 schema
# ------------------------------------------------------------------------------------------

COMPARED_TYPES = (
    "ActiveJob",
    "ActiveJobArray",
    "TaskProgress",
    "TaskProgressArray",
    "TaskItemProgress",
    "TaskItemProgressArray",
    "JobLog",
    "JobLogArray",
    "JobLogDetail",
    "JobLogDetailArray",
    "JobLogDetailAux",
    "JobLogDetailAuxArray",
    "HandleArray",
    "StringArray",
)


@pytest.mark.parametrize("type_name", COMPARED_TYPES)
def test_core_types_equal_official(type_name: str) -> None:
    """ActiveJob/TaskProgress/JobLog...: element names, order, types and occurrences as official."""
    theirs = named(etree.parse(str(official("IpsApi-2014-04-03.xsd"))).getroot(), "complexType")
    ours = named(own_schemas()[NS14], "complexType")
    assert signature(ours[type_name]) == signature(theirs[type_name])


def test_every_own_type_and_element_equals_official() -> None:
    """All 46 complexTypes and the param/return/authHeader elements equal the official ones."""
    official_schema = etree.parse(str(official("IpsApi-2014-04-03.xsd"))).getroot()
    ours = own_schemas()[NS14]
    for kind in ("complexType", "element"):
        theirs = named(official_schema, kind)
        mine = named(ours, kind)
        assert mine, kind
        for name, node in mine.items():
            assert signature(node) == signature(theirs[name]), f"{kind} {name}"
    assert len(named(ours, "complexType")) == 46


def test_auth_header_equals_official_and_faults_equal_common_schema() -> None:
    """authHeader (versioned, appName/appVersion required) and the fault elements match."""
    theirs = named(etree.parse(str(official("IpsApi-2014-04-03.xsd"))).getroot(), "element")
    ours = named(own_schemas()[NS14], "element")
    assert [s[0] for s in signature(ours["authHeader"])[1:]] == [
        "user",
        "password",
        "accessToken",
        "locale",
        "appName",
        "appVersion",
        "gzipResponse",
        "faultHttpStatusCode",
    ]
    assert signature(ours["authHeader"]) == signature(theirs["authHeader"])
    common = named(etree.parse(str(official("IpsApi-2014-04-03.common.xsd"))).getroot(), "element")
    mine = named(own_schemas()[FAULT_NS], "element")
    for fault in ("ipsApiFault", "authenticationFault", "authorizationFault"):
        assert signature(mine[fault]) == signature(common[fault])


@pytest.mark.parametrize("fixture", VALID_2014)
def test_fixtures_are_valid_against_official_schema(fixture: str) -> None:
    """Every 2014 fixture validates against the official 2014-04-03 XSD too."""
    schema = etree.XMLSchema(etree.parse(str(official("IpsApi-2014-04-03.xsd"))))
    schema.assertValid(return_element(fixture))


@pytest.mark.parametrize("fixture", ["active_jobs_one.xml", "active_jobs_sub_jobs.xml"])
def test_fast_equals_zeep_with_official_wsdl(fixture: str) -> None:
    """zeep's mapping with the official 2014 WSDL equals the fast decoder."""
    body = (FIXTURES / fixture).read_bytes()
    wsdl = str(official("IpsApi-2014-04-03.wsdl"))
    assert zeep_decode_active_jobs(wsdl, body) == decode_active_jobs(body, NS14)


def test_fast_equals_zeep_with_official_2013_wsdl() -> None:
    """zeep's mapping with the official 2013 WSDL equals the fast decoder (no triggerTime)."""
    body = (FIXTURES / "active_jobs_2013.xml").read_bytes()
    wsdl = str(official("IpsApi-2013-02-15.wsdl"))
    assert zeep_decode_active_jobs(wsdl, body) == decode_active_jobs(body, NS13)


# ------------------------------------------------------------------------------------------
# IpsClient created from the official WSDLs, calling a real HTTP server
# ------------------------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[bytes], dict[str, bytes]]]:
    """A service recording request bodies and answering ``reply["body"]``."""
    seen: list[bytes] = []
    reply: dict[str, bytes] = {}

    async def service(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(body=reply["body"], content_type="text/xml")

    app = web.Application()
    app.router.add_post(SERVICE_PATH, service)
    srv = TestServer(app)
    await srv.start_server()
    try:
        yield srv, seen, reply
    finally:
        await srv.close()


async def _client(wsdl: Path, url: str, session: aiohttp.ClientSession) -> IpsClient:
    settings = IpsSettings(
        wsdl=str(wsdl),
        endpoint=url,
        user="u@example.com",
        password="pw",
        app_version="1",
        include_waiting_jobs=True,
    )
    return await IpsClient.create(settings, session)


async def test_official_2014_wsdl_client_works(
    server: tuple[TestServer, list[bytes], dict[str, bytes]],
) -> None:
    """A client on the official 2014 WSDL sends the same envelope as ours and decodes replies."""
    srv, seen, reply = server
    wsdl = official("IpsApi-2014-04-03.wsdl")
    reply["body"] = (FIXTURES / "active_jobs_one.xml").read_bytes()
    url = str(srv.make_url(SERVICE_PATH))
    async with aiohttp.ClientSession() as session:
        client = await _client(wsdl, url, session)
        assert (client.namespace, client.header_qname) == (NS14, f"{{{NS14}}}authHeader")
        snapshot = await client.get_active_jobs("c|110")
        own = await _client(Path(DEFAULT_WSDL), url, session)
        await own.get_active_jobs("c|110")
    assert len(snapshot.jobs) == 1
    assert snapshot.jobs[0].trigger_time is not None
    assert seen[0] == seen[1], "official and shipped WSDL must produce identical requests"
    param = etree.fromstring(seen[0])[1][0]
    assert [etree.QName(c).localname for c in param] == ["companyHandle", "includeWaitingJobs"]


async def test_official_2013_wsdl_client_works(
    server: tuple[TestServer, list[bytes], dict[str, bytes]],
) -> None:
    """A 2013 client uses the legacy authHeader, never sends includeWaitingJobs, decodes 2013."""
    srv, seen, reply = server
    wsdl = official("IpsApi-2013-02-15.wsdl")
    reply["body"] = (FIXTURES / "active_jobs_2013.xml").read_bytes()
    async with aiohttp.ClientSession() as session:
        client = await _client(wsdl, str(srv.make_url(SERVICE_PATH)), session)
        assert client.endpoint.startswith("http://127.0.0.1")
        assert (client.namespace, client.header_qname) == (NS13, f"{{{FAULT_NS}}}authHeader")
        snapshot = await client.get_active_jobs("c|110")
    (job,) = snapshot.jobs
    assert job.trigger_time is None
    assert job.state == "Running"
    env = etree.fromstring(seen[0])
    header, param = env[0][0], env[1][0]
    assert header.tag == f"{{{FAULT_NS}}}authHeader"
    assert {etree.QName(c).localname for c in header} >= {"user", "password", "appName"}
    assert param.tag == f"{{{NS13}}}getActiveJobsParam"
    assert [etree.QName(c).localname for c in param] == ["companyHandle"]
