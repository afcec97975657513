"""getJobLogDetails pages of error and warning rows: the request the client sends, the fast
decoder against zeep's mapping (shipped and official WSDLs, 2014-04-03 and 2013-02-15), and the
simulator serving them (filter, paging, realistic rows) to the real client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from lxml import etree

from streamer.ips import DEFAULT_WSDL, IpsClient, IpsReplyError, IpsSettings
from streamer.ips.decode import decode_log_details
from streamer.model import JobLogDetail, JobLogDetailPage, Outcome
from streamer.simulator import SIMULATOR, soap
from streamer.simulator.jobs import SimJobLog, log_details
from tests.test_ips_wsdl_compat import (
    FIXTURES,
    NS13,
    NS14,
    SERVICE_PATH,
    _client,
    official,
    return_element,
    server,
)
from tests.test_simulator_http import MakeClient, advance, make_client
from tests.zeep_reference import zeep_decode_log_details

__all__ = ["make_client", "server"]  # fixtures, imported for the tests below

PAGE = "job_log_details_page.xml"
PAGE_2013 = "job_log_details_page_2013.xml"
FAILED_JOB = "j|110||fail|7"
PDT = timezone(timedelta(hours=-7))


def body(fixture: str) -> bytes:
    """The bytes of a reply fixture."""
    return (FIXTURES / fixture).read_bytes()


# ------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------


def test_page_fixture_decodes_rows_assets_dates_and_total() -> None:
    """The page's rows in reply order with message, type, date, asset; total from the log."""
    page = decode_log_details(body(PAGE), NS14, job_handle=FAILED_JOB, max_rows=10)
    assert page == JobLogDetailPage(
        FAILED_JOB,
        (
            JobLogDetail(
                "UploadError",
                "Unable to process shoe-12.tif: unsupported or corrupt file",
                datetime(2024, 5, 6, 10, 15, 41, tzinfo=PDT),
                "shoe-12.tif",
                "Image",
            ),
            JobLogDetail(
                "UploadError",
                "shoe-17.tif: file not found at <source> & skipped",
                datetime(2024, 5, 6, 10, 15, 52, 500000, tzinfo=PDT),
                "shoe-17.tif",
                None,
            ),
            JobLogDetail(
                "FatalError",
                "Fatal error: lost connection to the image server",
                datetime(2024, 5, 6, 17, 16, 50, tzinfo=UTC),
            ),
        ),
        total_rows=7,
    )


def test_page_keeps_at_most_max_rows_whatever_the_server_sent() -> None:
    """A server that ignores recordsPerPage cannot grow the page past the bound."""
    page = decode_log_details(body(PAGE), NS14, job_handle=FAILED_JOB, max_rows=1)
    assert page is not None
    assert [d.log_type for d in page.details] == ["UploadError"]
    assert page.total_rows == 7


def test_a_reply_without_the_jobs_log_is_none() -> None:
    """Another job's log is never read as this job's; an empty array neither."""
    assert decode_log_details(body(PAGE), NS14, job_handle="j|other", max_rows=5) is None
    empty = body("job_log_details_empty.xml")
    assert decode_log_details(empty, NS14, job_handle=FAILED_JOB, max_rows=5) is None


def test_an_invalid_date_is_a_schema_error() -> None:
    """A dateCreated that is no xsd:dateTime fails the reply, as zeep's strict mode does."""
    broken = body(PAGE).replace(b"2024-05-06T10:15:41.000-07:00", b"yesterday")
    with pytest.raises(IpsReplyError) as caught:
        decode_log_details(broken, NS14, job_handle=FAILED_JOB, max_rows=5)
    assert caught.value.kind == "schema"


@pytest.mark.parametrize("max_rows", [1, 2, 10])
def test_fast_equals_zeep_with_shipped_wsdl(max_rows: int) -> None:
    """zeep's mapping with the shipped WSDL equals the fast decoder, for any bound."""
    for fixture, handle in [
        (PAGE, FAILED_JOB),
        ("job_log_details_errors.xml", "j|110||err|2"),
        ("job_log_details_fatal.xml", "j|110||fatal|4"),
        ("job_log_details_warnings.xml", "j|110||warn|3"),
    ]:
        raw = body(fixture)
        fast = decode_log_details(raw, NS14, job_handle=handle, max_rows=max_rows)
        assert fast is not None, fixture
        assert zeep_decode_log_details(DEFAULT_WSDL, raw, handle, max_rows) == fast, fixture


def test_fast_equals_zeep_with_official_2014_wsdl() -> None:
    """zeep's mapping with the official 2014-04-03 WSDL equals the fast decoder."""
    wsdl = str(official("IpsApi-2014-04-03.wsdl"))
    fast = decode_log_details(body(PAGE), NS14, job_handle=FAILED_JOB, max_rows=5)
    assert zeep_decode_log_details(wsdl, body(PAGE), FAILED_JOB, 5) == fast


def test_2013_page_has_no_dates_and_equals_zeep_with_official_2013_wsdl() -> None:
    """A 2013-02-15 page (no dateCreated) is valid there, decodes without dates, as zeep's."""
    schema = etree.XMLSchema(etree.parse(str(official("IpsApi-2013-02-15.xsd"))))
    schema.assertValid(return_element(PAGE_2013))
    raw = body(PAGE_2013)
    fast = decode_log_details(raw, NS13, job_handle="j|110||warn|3", max_rows=5)
    assert fast is not None
    assert [(d.asset_name, d.created_at) for d in fast.details] == [
        ("hat-1.jpg", None),
        ("hat-4.jpg", None),
    ]
    wsdl = str(official("IpsApi-2013-02-15.wsdl"))
    assert zeep_decode_log_details(wsdl, raw, "j|110||warn|3", 5) == fast


# ------------------------------------------------------------------------------------------
# The request
# ------------------------------------------------------------------------------------------


async def test_request_filters_pages_and_sorts_identically_with_official_wsdl(
    server: tuple[TestServer, list[bytes], dict[str, bytes]],
) -> None:
    """logTypeArray, recordsPerPage (at most 1,000), page 1, by date: the same bytes as the
    official WSDL's client sends, and the page decoded from the reply."""
    srv, seen, reply = server
    reply["body"] = body(PAGE)
    url = str(srv.make_url(SERVICE_PATH))
    async with aiohttp.ClientSession() as session:
        own = await _client(Path(DEFAULT_WSDL), url, session)
        page = await own.get_job_log_details(
            "c|110", FAILED_JOB, log_types=["FatalError", "UploadError"], rows=5
        )
        await own.get_job_log_details("c|110", FAILED_JOB, log_types=["UploadWarning"], rows=5000)
        ref = await _client(official("IpsApi-2014-04-03.wsdl"), url, session)
        await ref.get_job_log_details(
            "c|110", FAILED_JOB, log_types=["FatalError", "UploadError"], rows=5
        )
    assert page is not None
    assert (page.total_rows, len(page.details)) == (7, 3)
    assert seen[0] == seen[2], "official and shipped WSDL must produce identical requests"
    param = etree.fromstring(seen[0])[1][0]
    assert [(etree.QName(c).localname, c.text) for c in param if len(c) == 0] == [
        ("companyHandle", "c|110"),
        ("jobHandle", FAILED_JOB),
        ("recordsPerPage", "5"),
        ("resultsPage", "1"),
        ("sortBy", "Date"),
        ("sortDirection", "Ascending"),
    ]
    (types,) = [c for c in param if etree.QName(c).localname == "logTypeArray"]
    assert [(etree.QName(i).localname, i.text) for i in types] == [
        ("items", "FatalError"),
        ("items", "UploadError"),
    ]
    assert b"<ns0:recordsPerPage>1000</ns0:recordsPerPage>" in seen[1]


async def test_official_2013_wsdl_client_reads_a_2013_page(
    server: tuple[TestServer, list[bytes], dict[str, bytes]],
) -> None:
    """A client on the official 2013 WSDL sends the same parameters and decodes the page."""
    srv, seen, reply = server
    reply["body"] = body(PAGE_2013)
    async with aiohttp.ClientSession() as session:
        client = await _client(
            official("IpsApi-2013-02-15.wsdl"), str(srv.make_url(SERVICE_PATH)), session
        )
        page = await client.get_job_log_details(
            "c|110", "j|110||warn|3", log_types=["ImageServingPublishWarning"], rows=5
        )
    assert page is not None
    assert [d.message[:9] for d in page.details] == ["hat-1.jpg", "hat-4.jpg"]
    param = etree.fromstring(seen[0])[1][0]
    assert param.tag == f"{{{NS13}}}getJobLogDetailsParam"
    assert [etree.QName(c).localname for c in param] == [
        "companyHandle",
        "jobHandle",
        "logTypeArray",
        "recordsPerPage",
        "resultsPage",
        "sortBy",
        "sortDirection",
    ]


# ------------------------------------------------------------------------------------------
# The simulator serving them
# ------------------------------------------------------------------------------------------


def _sim_logs(client: Any, company: str) -> list[SimJobLog]:
    sim = client.app[SIMULATOR]
    csim = sim.sync(company)
    return list(csim.logs.values())


@pytest.mark.parametrize("namespace", [soap.NS_2014, soap.NS_2013])
async def test_simulator_pages_equal_zeep_for_both_versions(
    make_client: MakeClient, namespace: str
) -> None:
    """Filtered, paged simulator replies decode the same with the fast decoder and zeep."""
    client = await make_client(
        running_duration_s=(5.0, 20.0),
        files_per_job=(20, 40),
        fail_probability=0.3,
        error_probability=0.3,
        warning_probability=0.3,
    )
    await advance(client, 400)
    logs = [g for g in _sim_logs(client, "c|1001") if g.outcome is not Outcome.SUCCEEDED]
    assert logs
    wsdl = DEFAULT_WSDL if namespace == soap.NS_2014 else str(official("IpsApi-2013-02-15.wsdl"))
    for log in logs:
        kind = log.kind.log_kind
        types = frozenset({f"{kind}Error", f"{kind}Warning", "FatalError"})
        raw = soap.job_logs_reply(
            "getJobLogDetails", namespace, [log], lambda t: f"2026-01-01T00:00:{t % 60:06.3f}Z",
            details=True, log_types=types, per_page=3, page=1,
        )  # fmt: skip
        fast = decode_log_details(raw, namespace, job_handle=log.job_handle, max_rows=3)
        assert fast == zeep_decode_log_details(wsdl, raw, log.job_handle, 3)


async def test_simulator_serves_error_and_warning_pages_to_the_client(
    make_client: MakeClient,
) -> None:
    """Failed, with-errors and with-warnings jobs: pages of their error or warning rows only,
    each naming its asset, fewer rows than the log holds, and the log's true total."""
    client = await make_client(
        running_duration_s=(5.0, 20.0),
        files_per_job=(30, 40),
        fail_probability=0.3,
        error_probability=0.3,
        warning_probability=0.3,
    )
    await advance(client, 600)
    logs = _sim_logs(client, "c|1001")
    url = str(client.make_url(SERVICE_PATH))
    seen: set[Outcome] = set()
    async with aiohttp.ClientSession() as session:
        ips = await IpsClient.create(
            IpsSettings(endpoint=url, user="demo@example.com", password="demo-password"), session
        )
        for log in logs:
            kind = log.kind.log_kind
            rows = log_details(log)
            for suffix in ("Error", "Warning"):
                wanted = {f"{kind}{suffix}"} | ({"FatalError"} if suffix == "Error" else set())
                truth = [r for r in rows if r.log_type in wanted]
                page = await ips.get_job_log_details(
                    "c|1001", log.job_handle, log_types=sorted(wanted), rows=2
                )
                assert page is not None
                assert page.total_rows == len(truth)
                assert [(d.log_type, d.message, d.asset_name) for d in page.details] == [
                    (r.log_type, r.message, r.asset_name) for r in truth[:2]
                ]
                assert all(d.asset_name and d.asset_name in d.message for d in page.details)
                if len(truth) > 2:
                    seen.add(log.outcome)
            page = await ips.get_job_log_details(
                "c|1001", "j|none", log_types=["FatalError"], rows=2
            )
            assert page is None
    # More error (warning) rows than one page, for each kind of unsuccessful job.
    assert seen >= {Outcome.COMPLETED_WITH_ERRORS, Outcome.COMPLETED_WITH_WARNINGS}
    failed = [g for g in logs if g.outcome is Outcome.FAILED]
    assert failed
    assert all(
        any(r.log_type == "FatalError" and r.asset_name for r in log_details(g)) for g in failed
    )
