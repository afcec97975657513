"""The simulator's SOAP: replies parse strictly against the official WSDLs; requests parse."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zeep
import zeep.exceptions
from lxml import etree

from streamer.model import Outcome
from streamer.simulator import render, soap
from streamer.simulator.catalog import KINDS, UNDOCUMENTED_KINDS
from streamer.simulator.config import SimulatorConfig
from streamer.simulator.jobs import SimJobLog, job_view
from streamer.simulator.lifecycle import CompanySim, SimWorld

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "ipsapi"
EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DATES = render.DateFormatter(EPOCH)

pytestmark = pytest.mark.wsdl


class _Reply:
    """The slice of a ``requests.Response`` zeep's ``process_reply`` reads."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.content, self.status_code, self.encoding = body, status, "utf-8"
        self.headers = {"Content-Type": "text/xml; charset=utf-8"}


def _client(version: str) -> Any:
    wsdl = SHARED / f"IpsApi-{version}.wsdl"
    if not wsdl.is_file():
        pytest.skip(f"official WSDL absent: {wsdl}")
    return zeep.Client(str(wsdl), settings=zeep.Settings(strict=True))  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def zeep14() -> Any:
    """A strict zeep client on the official 2014-04-03 WSDL."""
    return _client("2014-04-03")


@pytest.fixture(scope="module")
def zeep13() -> Any:
    """A strict zeep client on the official 2013-02-15 WSDL."""
    return _client("2013-02-15")


def _parse(client: Any, operation: str, body: bytes, status: int = 200) -> Any:
    binding = client.service._binding
    return binding.process_reply(client, binding.get(operation), _Reply(body, status))


def _validate(body: bytes, version: str) -> None:
    """Validate the payload element of a reply with lxml against the official schema."""
    xsd = SHARED / f"IpsApi-{version}.xsd"
    if not xsd.is_file():
        pytest.skip(f"official schema absent: {xsd}")
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    payload = etree.fromstring(body).find(f"{{{soap.SOAP_ENV}}}Body")[0]  # type: ignore[index]
    schema.assertValid(payload)


@pytest.fixture(scope="module")
def busy() -> CompanySim:
    """A company with many jobs of every kind, in every state."""
    config = SimulatorConfig(
        jobs_per_company=120,
        seed=3,
        unknown_type_probability=0.3,
        fail_probability=0.3,
        initial_spread_s=60.0,
        running_duration_s=(20.0, 60.0),
        tick_s=None,
    )
    sim = SimWorld(config, EPOCH).advance("c|1001", 45.0)
    assert sim is not None
    return sim


def _reply(sim: CompanySim, namespace: str = soap.NS_2014) -> bytes:
    modern = soap.VERSIONS[namespace]
    items = [render.active_job_xml(j, sim.now, DATES, modern) for j in sim.active.values()]
    return render.active_jobs_reply(namespace, items)


def test_empty_active_jobs_reply_parses(zeep14: Any) -> None:
    """An empty jobArray is schema-valid and parses strictly (zeep maps it to None)."""
    body = render.active_jobs_reply(soap.NS_2014, [])
    assert _parse(zeep14, "getActiveJobs", body) is None
    _validate(body, "2014-04-03")


def test_busy_active_jobs_reply_parses_strictly(zeep14: Any, busy: CompanySim) -> None:
    """Many jobs in every state and of every kind parse strictly, with the model's values."""
    body = _reply(busy)
    _validate(body, "2014-04-03")
    parsed = _parse(zeep14, "getActiveJobs", body)
    jobs = list(busy.active.values())
    assert len(parsed) == len(jobs)
    assert {j.state for j in jobs} == {"New", "WaitingCoordinator", "Running"}
    for job, item in zip(jobs, parsed, strict=True):
        view = job_view(job, busy.now)
        assert (item.jobHandle, item.state, item.progress) == (
            job.handle,
            view.state,
            view.progress,
        )
        assert item.name == job.name
        assert item.originalName == job.original_name  # escaped text round-trips
        assert item.triggerTime == item.startDate
        tasks = item.taskProgressArray.items if item.taskProgressArray else []
        assert [t.taskState for t in tasks] == [t.state for t in view.tasks]
        present = [e for e in soap_sub_jobs() if getattr(item, e) is not None]
        assert present == ([job.kind.element] if job.kind.element else [])


def soap_sub_jobs() -> list[str]:
    """Every sub-job element the simulator can emit."""
    return [k.element for k in (*KINDS, *UNDOCUMENTED_KINDS) if k.element]


def test_every_sub_job_element_is_emitted(busy: CompanySim) -> None:
    """The busy fixture really covers every sub-job element (so the strict parse covers them)."""
    root = etree.fromstring(_reply(busy))
    names = {etree.QName(el).localname for el in root.iter()}
    assert set(soap_sub_jobs()) <= names
    assert "taskItemProgressArray" in names
    assert root.xpath("//*[local-name()='taskItemProgressArray']/*")  # some with items


def test_2013_request_gets_a_2013_reply(zeep13: Any, zeep14: Any, busy: CompanySim) -> None:
    """A 2013-02-15 reply has no triggerTime, parses with the 2013 WSDL and not the 2014 one."""
    body = _reply(busy, soap.NS_2013)
    assert b"triggerTime" not in body
    _validate(body, "2013-02-15")
    parsed = _parse(zeep13, "getActiveJobs", body)
    assert [p.jobHandle for p in parsed] == list(busy.active)
    with pytest.raises(zeep.exceptions.XMLParseError):
        _parse(zeep14, "getActiveJobs", body)


@pytest.fixture(scope="module")
def logs() -> list[SimJobLog]:
    """Finished job logs with every outcome."""
    config = SimulatorConfig(
        jobs_per_company=20,
        seed=5,
        fail_probability=0.25,
        error_probability=0.25,
        warning_probability=0.25,
        running_duration_s=(10.0, 20.0),
        tick_s=None,
    )
    sim = SimWorld(config, EPOCH).advance("c|1001", 400.0)
    assert sim is not None
    found = list(sim.logs.values())
    assert {g.outcome for g in found} == set(Outcome) - {Outcome.UNKNOWN}
    return found


@pytest.mark.parametrize(
    ("version", "namespace"), [("2014-04-03", soap.NS_2014), ("2013-02-15", soap.NS_2013)]
)
def test_job_log_details_reply_parses_strictly(
    version: str, namespace: str, logs: list[SimJobLog], request: pytest.FixtureRequest
) -> None:
    """getJobLogDetails replies parse strictly, with counts, fatalError and detail rows."""
    client = request.getfixturevalue("zeep14" if version == "2014-04-03" else "zeep13")
    body = soap.job_logs_reply("getJobLogDetails", namespace, logs, DATES, details=True)
    _validate(body, version)
    parsed = _parse(client, "getJobLogDetails", body)
    assert [p.jobHandle for p in parsed] == [g.job_handle for g in logs]
    for log, item in zip(logs, parsed, strict=True):
        assert item.fatalError is log.counts.fatal
        assert (item.fileErrorCount, item.fileWarningCount) == (
            log.counts.error,
            log.counts.warning,
        )
        types = [d.logType for d in item.detailArray.items]
        assert item.detailTotalRows == len(types)
        assert ("FatalError" in types) is log.counts.fatal
        assert item.endDate > item.startDate
        if version == "2013-02-15":
            assert "dateCreated" not in item.detailArray.items[0]


def test_job_log_details_paging_and_type_filter(zeep14: Any, logs: list[SimJobLog]) -> None:
    """recordsPerPage/resultsPage page the detail rows; logTypeArray filters them."""
    log = max(logs, key=lambda g: g.files)
    page2 = _parse(
        zeep14,
        "getJobLogDetails",
        soap.job_logs_reply(
            "getJobLogDetails", soap.NS_2014, [log], DATES, details=True, per_page=2, page=2
        ),
    )[0]
    assert page2.detailTotalRows == log.files + 2 + log.counts.fatal
    assert len(page2.detailArray.items) == 2
    only = _parse(
        zeep14,
        "getJobLogDetails",
        soap.job_logs_reply(
            "getJobLogDetails",
            soap.NS_2014,
            [log],
            DATES,
            details=True,
            log_types=frozenset({f"{log.kind.log_kind}Success"}),
        ),
    )[0]
    assert {d.logType for d in only.detailArray.items} == {f"{log.kind.log_kind}Success"}
    assert only.detailTotalRows == log.counts.success


def test_job_logs_reply_and_empty_log_array_parse(zeep14: Any, logs: list[SimJobLog]) -> None:
    """getJobLogs (no details) and an empty jobLogArray parse strictly."""
    parsed = _parse(
        zeep14,
        "getJobLogs",
        soap.job_logs_reply("getJobLogs", soap.NS_2014, logs, DATES, details=False),
    )
    assert [p.detailArray for p in parsed] == [None] * len(logs)
    empty = soap.job_logs_reply("getJobLogDetails", soap.NS_2014, [], DATES, details=True)
    _validate(empty, "2014-04-03")
    assert _parse(zeep14, "getJobLogDetails", empty) is None


@pytest.mark.parametrize(
    ("fault", "element", "code", "faultcode"),
    [
        (
            soap.authentication_fault(10001, "Invalid credentials"),
            "authenticationFault",
            10001,
            "soapenv:Client",
        ),
        (
            soap.authorization_fault(20000, "Invalid company"),
            "authorizationFault",
            20000,
            "soapenv:Client",
        ),
        (soap.ipsapi_fault(30003, "bad XML"), "ipsApiFault", 30003, "soapenv:Client"),
        (soap.ipsapi_fault(30000, "boom"), "ipsApiFault", 30000, "soapenv:Server"),
    ],
)
def test_faults_parse_as_ips_faults(
    zeep14: Any, fault: soap.SoapFault, element: str, code: int, faultcode: str
) -> None:
    """Each fault raises zeep's Fault with the IPS detail element, code and SOAP faultcode."""
    with pytest.raises(zeep.exceptions.Fault) as info:
        _parse(zeep14, "getActiveJobs", soap.fault_reply(fault), 500)
    detail = info.value.detail[0]
    assert detail.tag == f"{{{soap.FAULT_NS}}}{element}"
    assert int(detail.find(f"{{{soap.FAULT_NS}}}code").text) == code
    assert info.value.code == faultcode
    common = SHARED / "IpsApi-2014-04-03.common.xsd"
    etree.XMLSchema(etree.parse(str(common))).assertValid(detail)


@pytest.mark.parametrize("damage", ["truncate", "malform", "wrong_namespace"])
def test_damaged_replies_do_not_parse(zeep14: Any, busy: CompanySim, damage: str) -> None:
    """Truncated, malformed and wrong-namespace replies are rejected by a strict client."""
    body = _reply(busy)
    if damage == "wrong_namespace":
        broken = render.wrong_namespace(body, soap.NS_2014)
    else:
        broken = getattr(render, damage)(body)
    assert broken != body
    with pytest.raises((zeep.exceptions.TransportError, zeep.exceptions.XMLParseError)):
        _parse(zeep14, "getActiveJobs", broken)


def test_truncation_cuts_inside_the_job_list(busy: CompanySim) -> None:
    """A truncated reply is a prefix that ends after the jobArray start, before its end."""
    body = _reply(busy)
    cut = render.truncate(body)
    assert body.startswith(cut)
    assert b"<jobArray>" in cut
    assert b"</jobArray>" not in cut
    assert len(cut) > len(body) // 3


# ---- requests -------------------------------------------------------------------------------


def _zeep_request(client: Any, operation: str, header_ns: str, **params: Any) -> bytes:
    header = client.get_element(f"{{{header_ns}}}authHeader")(
        user="u@example.com",
        password="pw",
        appName="test",
        appVersion="1",
        faultHttpStatusCode=200,
    )
    message = client.create_message(client.service, operation, _soapheaders=[header], **params)
    return bytes(etree.tostring(message))


@pytest.mark.parametrize("header_ns", [soap.NS_2014, soap.FAULT_NS])
def test_zeep_built_requests_parse(zeep14: Any, header_ns: str) -> None:
    """Requests zeep builds (versioned or unversioned authHeader) parse with their params."""
    body = _zeep_request(
        zeep14,
        "getActiveJobs",
        header_ns,
        companyHandle="c|1001",
        jobHandle="j|1",
        includeWaitingJobs=True,
    )
    req = soap.parse_request(body, '"getActiveJobs"')
    assert (req.operation, req.namespace, req.modern) == ("getActiveJobs", soap.NS_2014, True)
    assert req.params == {
        "companyHandle": "c|1001",
        "jobHandle": "j|1",
        "includeWaitingJobs": "true",
    }
    assert req.auth == soap.Auth("u@example.com", "pw", None, 200)
    details = soap.parse_request(
        _zeep_request(
            zeep14,
            "getJobLogDetails",
            header_ns,
            companyHandle="c|1",
            jobHandle="j|1",
            logTypeArray={"items": ["FileError", "FatalError"]},
            recordsPerPage=5,
        ),
        None,
    )
    assert details.arrays == {"logTypeArray": ("FileError", "FatalError")}
    assert details.int_param("recordsPerPage") == 5


def _bad_requests() -> Iterator[tuple[bytes, str | None, int]]:
    good = soap.request_envelope("getActiveJobs", {"companyHandle": "c|1"})
    yield b"<not xml", None, 30003
    soap12 = b"http://www.w3.org/2003/05/soap-envelope"
    yield good.replace(soap.SOAP_ENV.encode(), soap12), None, 30003
    yield soap.request_envelope("deleteAsset", {"companyHandle": "c|1"}), None, 30003
    yield soap.request_envelope("getActiveJobs", {"bogus": "1"}), None, 30003
    yield good.replace(soap.NS_2014.encode(), b"urn:other"), None, 30003
    yield good, "getJobLogs", 30003
    yield soap.request_envelope("getJobLogs", {"numRows": "ten"}), None, 30001
    yield soap.request_envelope("getActiveJobs", {"includeWaitingJobs": "maybe"}), None, 30001
    yield (
        soap.request_envelope(
            "getActiveJobs", user="u", header_extra={"faultHttpStatusCode": "abc"}
        ),
        None,
        30001,
    )


@pytest.mark.parametrize(("body", "action", "code"), list(_bad_requests()))
def test_bad_requests_are_ipsapi_faults(body: bytes, action: str | None, code: int) -> None:
    """Bad XML, unknown operations/elements/namespaces and a wrong SOAPAction are rejected."""
    with pytest.raises(soap.SoapFault) as info:
        soap.parse_request(body, action)
    assert (info.value.element, info.value.code) == ("ipsApiFault", code)
