"""The fast reply decoder (streamer.ips.decode): values, strictness, faults, equality with zeep."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError, dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from streamer.diff import DiffSettings, diff
from streamer.ips import (
    AuthenticationFault,
    AuthorizationFault,
    IpsApiFault,
    IpsFault,
    IpsReplyError,
    decode_active_jobs,
    decode_job_logs,
    find_fault,
    parse_envelope,
    raise_for_fault,
)
from streamer.ips.client import DEFAULT_WSDL
from streamer.ips.constructors import fast_constructor
from streamer.ips.decode import MAX_SUB_JOB_DEPTH
from streamer.model import SUB_JOB_ELEMENTS, JobObserved, JobSnapshot, Snapshot, TaskItemProgress
from tests.ips_strategies import (
    NS13,
    NS14,
    GeneratedJob,
    active_jobs,
    active_jobs_reply,
    as_zeep_sees,
)
from tests.zeep_reference import zeep_decode_active_jobs

FIXTURES = Path(__file__).parent / "fixtures" / "ips"
GOOD_2014 = (
    "active_jobs_empty.xml",
    "active_jobs_one.xml",
    "active_jobs_many.xml",
    "active_jobs_sub_jobs.xml",
    "active_jobs_optional_missing.xml",
    "active_jobs_task_items.xml",
)
PDT = timezone(timedelta(hours=-7))


def fixture(name: str) -> bytes:
    """Raw bytes of a recorded-style reply."""
    return (FIXTURES / name).read_bytes()


def jobs(name: str, namespace: str = NS14) -> tuple[JobSnapshot, ...]:
    """A fixture decoded with the fast decoder."""
    return decode_active_jobs(fixture(name), namespace)


@pytest.fixture(scope="module")
def wsdl_2013(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The shipped WSDL turned into a 2013-02-15 one (namespace swapped, triggerTime removed)."""
    text = Path(DEFAULT_WSDL).read_text(encoding="utf-8").replace("2014-04-03", "2013-02-15")
    text = text.replace('<xsd:element name="triggerTime" type="xsd:dateTime"/>', "")
    path = tmp_path_factory.mktemp("wsdl") / "IpsApi-2013-02-15.wsdl"
    path.write_text(text, encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------
# Values decoded from the fixtures
# ------------------------------------------------------------------------------------------


def test_empty_job_array_is_empty_tuple() -> None:
    """An empty ``<jobArray></jobArray>`` decodes to no jobs (and is not an error)."""
    assert jobs("active_jobs_empty.xml") == ()


def test_one_job_every_field() -> None:
    """Every ActiveJob field of a complete job is decoded with its schema type."""
    (job,) = jobs("active_jobs_one.xml")
    assert job.company_handle == "c|110"
    assert job.job_handle == "j|110||3e41464dce942449a9e5b_2024-05-06-10:15:30.834|5129821"
    assert job.name == "3e41464dce942449a9e5b_2024-05-06-10:15:30.834"
    assert job.original_name == "3e41464dce942449a9e5b"
    assert (job.type, job.state, job.submit_user_email) == (
        "UrlUpload",
        "Running",
        "uploader@example.com",
    )
    assert (job.locale, job.description) == ("en-US", "Nightly catalogue sync")
    assert job.server_name == "saastex_100_52"
    assert job.start_date == datetime(2024, 5, 6, 10, 15, 30, 834000, tzinfo=PDT)
    assert job.trigger_time == datetime(2024, 5, 6, 10, 15, 30, tzinfo=PDT)
    assert (job.status.total_size, job.status.progress) == (1048576, 0)
    assert job.status.progress_message == "Optimizing files"
    assert job.status.last_progress_update == datetime(2024, 5, 6, 17, 16, 2, 101000, tzinfo=UTC)
    (task,) = job.status.task_progress
    assert task.task_type == "com.scene7.upload.UploadAsyncTaskMonitor"
    assert (task.task_state, task.num_processed, task.num_processing, task.num_pending) == (
        "Processing",
        3,
        1,
        6,
    )
    assert task.progress == pytest.approx(0.3)
    assert task.progress_message == ""
    assert task.items == ()
    assert job.sub_job is not None
    assert job.sub_job.element == "uploadUrlsJob"
    assert job.sub_job.fields[0] == (
        "urlArray",
        (
            (
                "items",
                (
                    ("sourceUrl", "https://assets.example.com/a/shoe-1.jpg"),
                    ("destPath", "catalog/shoes/"),
                ),
            ),
            (
                "items",
                (
                    ("sourceUrl", "https://assets.example.com/a/shoe-2.jpg"),
                    ("destPath", "catalog/shoes/"),
                ),
            ),
        ),
    )
    assert job.sub_job.fields[1:] == (
        ("numUrls", "2"),
        ("overwrite", "true"),
        ("readyForPublish", "true"),
        ("createMask", "false"),
        ("emailSetting", "None"),
    )


def test_many_jobs_in_reply_order_with_unknown_values_kept() -> None:
    """Jobs keep reply order; unknown ``state``/``type`` strings are kept verbatim."""
    many = jobs("active_jobs_many.xml")
    assert [j.state for j in many] == ["Running", "WaitingCoordinator", "Stopping", "Paused"]
    assert many[3].type == "SomeFutureJobType"
    assert many[3].sub_job is None
    assert many[2].status.total_size == 2147483647
    assert many[3].status.total_size == -1
    assert many[1].server_name == ""


def test_datetimes_are_aware_and_offsetless_means_utc() -> None:
    """Every datetime is aware: ``Z`` and offsets are honoured, no offset is read as UTC."""
    many = jobs("active_jobs_many.xml")
    assert many[0].start_date == datetime(2024, 5, 6, 16, 0, tzinfo=UTC)
    assert many[1].start_date == datetime(2024, 5, 6, 9, 1, tzinfo=UTC)
    assert many[1].start_date.tzinfo is not None
    assert many[2].start_date == datetime(2024, 5, 6, 6, 30, 0, 500000, tzinfo=UTC)
    for job in many:
        for value in (job.start_date, job.trigger_time, job.status.last_progress_update):
            assert value is not None
            assert value.utcoffset() is not None


def test_optional_strings_empty_or_absent_are_none_required_empty_are_blank() -> None:
    """Empty required strings become ``""``; empty or absent optional strings become None."""
    bare, absent = jobs("active_jobs_optional_missing.xml")
    assert (bare.name, bare.original_name, bare.submit_user_email, bare.server_name) == ("",) * 4
    assert (bare.locale, bare.description) == (None, None)
    assert (absent.locale, absent.description) == (None, None)
    assert bare.status.progress_message == ""
    assert bare.sub_job is None
    assert bare.status.task_progress == ()


def test_task_progress_with_items() -> None:
    """Task progress arrays decode every task and every task item, in order."""
    (job,) = jobs("active_jobs_task_items.xml")
    tasks = job.status.task_progress
    assert [t.task_state for t in tasks] == ["Done", "Processing", "Failed"]
    assert [t.progress for t in tasks] == [1.0, 0.25, 0.0]
    items = tasks[1].items
    assert [i.item_name for i in items] == ["shoe-1.psd", "shoe-2.psd", "shoe-3.psd"]
    assert [i.progress for i in items] == [1.0, 0.5, 0.0]
    assert [i.progress_message for i in items] == ["complete", "", "queued"]
    assert items[2].last_progress_update == datetime(2024, 5, 6, 11, 5, tzinfo=UTC)
    assert tasks[0].items == ()
    assert tasks[2].items == ()
    assert job.sub_job is not None
    assert job.sub_job.fields[0] == (
        "assetHandleArray",
        (("items", "a|110|1|100"), ("items", "a|110|1|101")),
    )


def _non_finite_progress(task: bytes, item: bytes) -> bytes:
    """active_jobs_task_items.xml with task 2's progress set to ``task``, and task 1's and that
    of task 2's first item to ``item``."""
    body = _replace("active_jobs_task_items.xml", b">0.25<", b">" + task + b"<")
    return body.replace(b"<progress>1.0</progress>", b"<progress>" + item + b"</progress>", 2)


@pytest.mark.parametrize(
    ("task", "item"), [(b"NaN", b"INF"), (b"INF", b"-INF"), (b"-INF", b"NaN"), (b"nan", b"inf")]
)
def test_non_finite_task_progress_reads_as_zero(task: bytes, item: bytes) -> None:
    """A NaN or infinite task / task item progress decodes as 0.0, in zeep's mapping too."""
    body = _non_finite_progress(task, item)
    (job,) = decode_active_jobs(body, NS14)
    tasks = job.status.task_progress
    assert [t.progress for t in tasks] == [0.0, 0.0, 0.0]  # tasks 1 and 2; task 3 was 0
    assert [i.progress for i in tasks[1].items] == [0.0, 0.5, 0.0]
    assert zeep_decode_active_jobs(DEFAULT_WSDL, body) == (job,)


def test_identical_polls_with_nan_progress_publish_no_progress_event() -> None:
    """Two polls showing the same NaN progress are no change for the diff: no event at all."""
    body = _non_finite_progress(b"NaN", b"NaN")
    first, second = (decode_active_jobs(body, NS14) for _ in range(2))  # separate objects
    assert first[0] is not second[0]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    polled = diff({}, Snapshot("c|110", first), t0, DiffSettings(), None)
    assert [type(e) for e in polled.events] == [JobObserved]
    t1 = t0 + timedelta(seconds=5)
    again = diff(polled.state, Snapshot("c|110", second), t1, DiffSettings(), t0)
    assert again.events == ()
    assert again.changed == ()


@pytest.mark.parametrize(("index", "element"), list(enumerate(SUB_JOB_ELEMENTS)))
def test_each_sub_job_type_is_recorded(index: int, element: str) -> None:
    """Each of the 14 sub-job elements is reported as ``SubJob(element, tree)``."""
    job = jobs("active_jobs_sub_jobs.xml")[index]
    assert job.sub_job is not None
    assert job.sub_job.element == element
    assert job.original_name == f"{element}-{index:02d}"
    assert job.sub_job.fields, "the fixture gives every sub-job some content"


def test_sub_job_nested_options_and_empty_elements() -> None:
    """Nested option types become nested trees; empty elements are left out of the tree."""
    by_element = {
        j.sub_job.element: j.sub_job.fields for j in jobs("active_jobs_sub_jobs.xml") if j.sub_job
    }
    upload_dir = dict(by_element["uploadDirectoryJob"])
    assert upload_dir["photoshopOptions"] == (
        ("process", "MaintainLayers"),
        (
            "layerOptions",
            (
                ("layerNaming", "LayerName"),
                ("anchor", "Center"),
                ("createTemplate", "true"),
                ("extractText", "false"),
                ("extendLayers", "true"),
            ),
        ),
    )
    media = upload_dir["mediaOptions"]
    assert isinstance(media, tuple)
    assert dict(media)["thumbnailOptions"] == (("thumbnailTime", "1500"),)
    assert "projectHandleArray" not in upload_dir  # <projectHandleArray/>
    assert dict(by_element["exportJob"])["is_modifier"] == "wid=800&fmt=jpeg"
    assert "autoSetCreationOptions" not in dict(by_element["automatedSetGenerationJob"])


def test_whitespace_only_sub_job_leaf_is_dropped_like_zeep() -> None:
    """A sub-job leaf holding only whitespace is left out of the tree, as zeep's mapping does."""
    body = fixture("active_jobs_one.xml").replace(
        b"<emailSetting>None</emailSetting>", b"<emailSetting> \t </emailSetting>"
    )
    (job,) = decode_active_jobs(body, NS14)
    assert job.sub_job is not None
    assert "emailSetting" not in dict(job.sub_job.fields)
    assert "createMask" in dict(job.sub_job.fields)
    assert zeep_decode_active_jobs(DEFAULT_WSDL, body) == (job,)


def test_2013_reply_has_no_trigger_time() -> None:
    """A 2013-02-15 reply decodes with ``trigger_time=None``."""
    (job,) = jobs("active_jobs_2013.xml", NS13)
    assert job.trigger_time is None
    assert job.start_date == datetime(2013, 6, 1, 14, 0, tzinfo=UTC)
    assert job.sub_job is not None
    assert job.sub_job.element == "uploadUrlsJob"


def test_empty_sub_job_element_is_still_recorded() -> None:
    """``<metadataPublishJob/>`` (all its children optional) still names the job's kind."""
    body = fixture("active_jobs_many.xml").replace(
        b"<ns1:taskProgressArray/>\n        </ns1:items>\n      </ns1:jobArray>",
        b"<ns1:taskProgressArray/><ns1:metadataPublishJob/></ns1:items></ns1:jobArray>",
    )
    last = decode_active_jobs(body, NS14)[-1]
    assert last.sub_job is not None
    assert (last.sub_job.element, last.sub_job.fields) == ("metadataPublishJob", ())


# ------------------------------------------------------------------------------------------
# Equality with zeep's own mapping
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD_2014)
def test_fast_equals_zeep_on_fixture(name: str) -> None:
    """The fast decoder returns exactly what zeep's strict mapping returns for each fixture."""
    body = fixture(name)
    assert decode_active_jobs(body, NS14) == zeep_decode_active_jobs(DEFAULT_WSDL, body)


def test_fast_equals_zeep_on_2013_fixture(wsdl_2013: str) -> None:
    """The 2013-02-15 fixture decodes identically through zeep with a 2013 WSDL."""
    body = fixture("active_jobs_2013.xml")
    zeep_jobs = zeep_decode_active_jobs(wsdl_2013, body)
    assert zeep_jobs
    assert decode_active_jobs(body, NS13) == zeep_jobs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(active_jobs(), max_size=3))
def test_generated_replies_decode_to_their_values_and_match_zeep(
    generated: list[GeneratedJob],
) -> None:
    """Generated schema-valid replies decode to the generated values, and zeep agrees."""
    body = active_jobs_reply(generated)
    fast = decode_active_jobs(body, NS14)
    assert fast == tuple(g.expected for g in generated)
    assert zeep_decode_active_jobs(DEFAULT_WSDL, body) == tuple(as_zeep_sees(j) for j in fast)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated=st.lists(active_jobs(with_trigger_time=False), min_size=1, max_size=2))
def test_generated_2013_replies_match_zeep(generated: list[GeneratedJob], wsdl_2013: str) -> None:
    """Generated 2013-02-15 replies (no triggerTime) decode equally both ways."""
    body = active_jobs_reply(generated, NS13)
    fast = decode_active_jobs(body, NS13)
    assert fast == tuple(g.expected for g in generated)
    assert zeep_decode_active_jobs(wsdl_2013, body) == tuple(as_zeep_sees(j) for j in fast)


# ------------------------------------------------------------------------------------------
# Strictness: anything but a complete, valid answer is an IpsReplyError
# ------------------------------------------------------------------------------------------


def _replace(name: str, old: bytes, new: bytes) -> bytes:
    body = fixture(name)
    assert old in body, "the mutation must apply"
    return body.replace(old, new, 1)


STRICT_CASES: dict[str, tuple[bytes, str]] = {
    "truncated": (fixture("active_jobs_truncated.xml"), "malformed"),
    "garbage_html": (fixture("garbage_html.txt"), "malformed"),
    "garbage_gzip": (fixture("garbage_gzip.bin"), "malformed"),
    "empty_body": (b"", "malformed"),
    "not_an_envelope": (b"<getActiveJobsReturn/>", "malformed"),
    "wrong_namespace": (fixture("active_jobs_wrong_namespace.xml"), "namespace"),
    "2013_read_as_2014": (fixture("active_jobs_2013.xml"), "namespace"),
    "missing_required": (fixture("active_jobs_missing_required.xml"), "schema"),
    "missing_trigger_time": (
        _replace(
            "active_jobs_one.xml", b"<triggerTime>2024-05-06T10:15:30.000-07:00</triggerTime>", b""
        ),
        "schema",
    ),
    "missing_task_progress_array_at_end": (
        _replace(
            "active_jobs_many.xml",
            b"<ns1:taskProgressArray/>\n        </ns1:items>\n      </ns1:jobArray>",
            b"</ns1:items></ns1:jobArray>",
        ),
        "schema",
    ),
    "unknown_element": (
        _replace("active_jobs_one.xml", b"<locale>", b"<colour>red</colour><locale>"),
        "schema",
    ),
    "out_of_order": (
        _replace(
            "active_jobs_one.xml",
            b"<locale>en-US</locale>\n          <description>Nightly catalogue sync</description>",
            b"<description>Nightly catalogue sync</description><locale>en-US</locale>",
        ),
        "schema",
    ),
    "bad_int": (
        _replace("active_jobs_one.xml", b"<totalSize>1048576", b"<totalSize>1MB"),
        "schema",
    ),
    "empty_int": (
        _replace("active_jobs_one.xml", b"<progress>0</progress>", b"<progress/>"),
        "schema",
    ),
    "empty_trigger_time": (
        _replace(
            "active_jobs_one.xml",
            b"<triggerTime>2024-05-06T10:15:30.000-07:00</triggerTime>",
            b"<triggerTime/>",
        ),
        "schema",
    ),
    "bad_datetime": (
        _replace("active_jobs_one.xml", b"<startDate>2024-05-06T", b"<startDate>yesterday "),
        "schema",
    ),
    "bad_double": (
        _replace("active_jobs_one.xml", b"<progress>0.3</progress>", b"<progress>30%</progress>"),
        "schema",
    ),
    "wrong_item_tag": (
        _replace(
            "active_jobs_task_items.xml",
            b"<items>\n              <taskType>",
            b"<item>\n              <taskType>",
        ).replace(
            b"<taskItemProgressArray/>\n            </items>",
            b"<taskItemProgressArray/>\n            </item>",
            1,
        ),
        "schema",
    ),
    "two_sub_jobs": (
        _replace(
            "active_jobs_one.xml",
            b"</uploadUrlsJob>",
            b"</uploadUrlsJob><optimizeImagesJob><emailSetting>All</emailSetting></optimizeImagesJob>",
        ),
        "schema",
    ),
    "foreign_element_in_sub_job": (
        _replace(
            "active_jobs_one.xml",
            b"<numUrls>2</numUrls>",
            b'<x:numUrls xmlns:x="urn:other">2</x:numUrls>',
        ),
        "schema",
    ),
    "no_job_array": (
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
        b'<getActiveJobsReturn xmlns="' + NS14.encode() + b'"/></e:Body></e:Envelope>',
        "schema",
    ),
    "wrong_body_element": (
        _replace(
            "active_jobs_empty.xml", b"getActiveJobsReturn", b"getScheduledJobsReturn"
        ).replace(b"</getActiveJobsReturn>", b"</getScheduledJobsReturn>"),
        "schema",
    ),
    "no_body": (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>', "malformed"),
    "entity_expansion": (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>&b;</e:Body></e:Envelope>',
        "malformed",
    ),
}


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_unusable_reply_is_reply_error_never_a_shorter_list(case: str) -> None:
    """Each malformed, truncated, foreign or schema-violating reply raises IpsReplyError(kind)."""
    body, kind = STRICT_CASES[case]
    with pytest.raises(IpsReplyError) as info:
        decode_active_jobs(body, NS14)
    assert info.value.kind == kind


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "garbage_html",
        "garbage_gzip",
        "wrong_namespace",
        "missing_required",
        "unknown_element",
    ],
)
def test_zeep_reference_path_is_strict_too(case: str) -> None:
    """The zeep reference path also refuses these replies with IpsReplyError."""
    with pytest.raises(IpsReplyError):
        zeep_decode_active_jobs(DEFAULT_WSDL, STRICT_CASES[case][0])


def test_2014_trigger_time_in_2013_reply_is_unexpected() -> None:
    """A triggerTime element in a 2013-02-15 reply is a schema violation, not ignored."""
    body = fixture("active_jobs_one.xml").replace(b"2014-04-03", b"2013-02-15")
    with pytest.raises(IpsReplyError, match="triggerTime"):
        decode_active_jobs(body, NS13)


def _deep_sub_job(levels: int) -> bytes:
    """active_jobs_one.xml whose sub-job holds a chain of elements ``levels`` deep under the job
    (the sub-job element is level 1, the innermost element holds text)."""
    chain = b"<options>" * (levels - 1) + b"x" + b"</options>" * (levels - 1)
    return _replace("active_jobs_one.xml", b"</uploadUrlsJob>", chain + b"</uploadUrlsJob>")


def test_sub_job_nested_to_the_depth_limit_is_decoded() -> None:
    """A sub-job tree exactly MAX_SUB_JOB_DEPTH levels deep is kept whole."""
    (job,) = decode_active_jobs(_deep_sub_job(MAX_SUB_JOB_DEPTH), NS14)
    assert job.sub_job is not None
    name, value = job.sub_job.fields[-1]
    levels = 2  # the outermost <options> is a child of the sub-job element
    while isinstance(value, tuple):
        ((name, value),) = value
        levels += 1
    assert (name, value, levels) == ("options", "x", MAX_SUB_JOB_DEPTH)


@pytest.mark.parametrize("levels", [MAX_SUB_JOB_DEPTH + 1, 1_000, 2_000])
def test_sub_job_nested_deeper_than_the_limit_is_a_malformed_reply(levels: int) -> None:
    """Deeper sub-job trees (lxml parses up to 2,048) fail the poll: no RecursionError."""
    body = _deep_sub_job(levels)
    etree.fromstring(body, etree.XMLParser(huge_tree=True))  # well-formed: the limit is ours
    with pytest.raises(IpsReplyError, match=f"deeper than {MAX_SUB_JOB_DEPTH}") as info:
        decode_active_jobs(body, NS14)
    assert info.value.kind == "malformed"


# ------------------------------------------------------------------------------------------
# Faults
# ------------------------------------------------------------------------------------------

FAULTS = {
    "fault_authentication.xml": (
        AuthenticationFault,
        10001,
        "Invalid user or password",
        "AuthenticationException",
        "fault_authentication",
    ),
    "fault_authorization.xml": (
        AuthorizationFault,
        20003,
        "User does not have permission to call operation getActiveJobs.",
        "AuthorizationException",
        "fault_authorization",
    ),
    "fault_ipsapi.xml": (
        IpsApiFault,
        30000,
        "Unexpected error: company handle c|999 not found",
        "ipsApiFault",
        "fault_ipsapi",
    ),
    "fault_soap12.xml": (
        AuthorizationFault,
        20000,
        "Invalid company",
        "AuthorizationException",
        "fault_authorization",
    ),
    "fault_unknown_detail.xml": (
        IpsApiFault,
        30002,
        "Missing parameter companyHandle",
        "SomethingNew",
        "fault_ipsapi",
    ),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_maps_to_typed_error(name: str) -> None:
    """Each fault family maps to its class with the detail's code and reason."""
    cls, code, reason, fault_string, kind = FAULTS[name]
    with pytest.raises(IpsFault) as info:
        decode_active_jobs(fixture(name), NS14)
    fault = info.value
    assert type(fault) is cls
    assert (fault.code, fault.reason, fault.fault_string, fault.kind) == (
        code,
        reason,
        fault_string,
        kind,
    )


def test_fault_without_detail_is_plain_ips_fault() -> None:
    """A fault with no IPS detail is a plain IpsFault carrying the fault string."""
    with pytest.raises(IpsFault) as info:
        decode_job_logs(fixture("fault_no_detail.xml"), NS14)
    assert type(info.value) is IpsFault
    assert (info.value.code, info.value.fault_string, info.value.kind) == (
        0,
        "java.lang.NullPointerException",
        "fault",
    )


def test_huge_fault_reason_is_cut_to_an_excerpt_in_the_message() -> None:
    """A 3 MB fault reason: str() is a 500-character excerpt with the full length; code whole."""
    reason = "x" * 3_000_000
    body = _replace("fault_ipsapi.xml", b"Unexpected error: company", reason.encode() + b" company")
    with pytest.raises(IpsApiFault) as info:
        decode_active_jobs(body, NS14)
    fault = info.value
    message = str(fault)
    assert message.startswith("IpsApiFault 30000: xxx")
    assert message.endswith(f"... ({len('IpsApiFault 30000: ' + fault.reason):,} chars)")
    assert len(message) < 550
    assert (fault.code, fault.kind, fault.message) == (30000, "fault_ipsapi", message)
    assert fault.reason.startswith(reason)  # the attribute keeps what IPS said


def test_long_error_messages_are_cut_too() -> None:
    """Any IpsError message (here a huge unexpected tag name) is cut the same way."""
    tag = b"colour" + b"r" * 100_000
    body = _replace("active_jobs_one.xml", b"<locale>", b"<" + tag + b"/><locale>")
    with pytest.raises(IpsReplyError) as info:
        decode_active_jobs(body, NS14)
    assert len(str(info.value)) < 550
    assert str(info.value).startswith("ActiveJob: missing element")
    assert str(info.value).endswith(" chars)")


@pytest.mark.parametrize(
    "name", ["fault_authentication.xml", "fault_authorization.xml", "fault_ipsapi.xml"]
)
def test_zeep_reference_maps_faults_identically(name: str) -> None:
    """zeep's fault handling yields the same typed fault as the fast path."""
    with pytest.raises(IpsFault) as fast:
        decode_active_jobs(fixture(name), NS14)
    with pytest.raises(IpsFault) as slow:
        zeep_decode_active_jobs(DEFAULT_WSDL, fixture(name))
    assert type(slow.value) is type(fast.value)
    assert (slow.value.code, slow.value.reason, slow.value.fault_string, slow.value.fault_code) == (
        fast.value.code,
        fast.value.reason,
        fast.value.fault_string,
        fast.value.fault_code,
    )


def test_raise_for_fault_and_find_fault() -> None:
    """raise_for_fault passes a normal envelope; find_fault returns None for non-fault bytes."""
    raise_for_fault(parse_envelope(fixture("active_jobs_one.xml")))
    with pytest.raises(AuthenticationFault):
        raise_for_fault(parse_envelope(fixture("fault_authentication.xml")))
    assert find_fault(fixture("garbage_html.txt")) is None
    assert find_fault(fixture("active_jobs_one.xml")) is None
    fault = find_fault(fixture("fault_ipsapi.xml"))
    assert isinstance(fault, IpsApiFault)
    assert fault.code == 30000


# ------------------------------------------------------------------------------------------
# Job logs
# ------------------------------------------------------------------------------------------


def test_job_log_success() -> None:
    """A clean job log: counts, dates, no fatal error, detail log types in order."""
    (log,) = decode_job_logs(fixture("job_log_details_success.xml"), NS14)
    assert (log.company_handle, log.job_handle, log.log_type) == (
        "c|110",
        "j|110||ok|1",
        "EndUpload",
    )
    assert (log.job_name, log.original_job_name) == ("ok_2024-05-06-10:15:30.834", "ok")
    assert log.start_date == datetime(2024, 5, 6, 17, 15, 30, 834000, tzinfo=UTC)
    assert log.end_date == datetime(2024, 5, 6, 17, 20, tzinfo=UTC)
    assert (log.file_success_count, log.total_file_count, log.transfer_success_count) == (3, 3, 3)
    assert log.fatal_error is False
    assert log.detail_log_types == ("BeginUpload", "FileBegin", "UploadSuccess", "EndUpload")


def test_job_log_errors_and_warnings() -> None:
    """Error and warning counts and their detail log types are decoded."""
    (err,) = decode_job_logs(fixture("job_log_details_errors.xml"), NS14)
    assert (err.file_error_count, err.transfer_error_count, err.fatal_error) == (2, 1, False)
    assert err.detail_log_types.count("UploadError") == 2
    (warn,) = decode_job_logs(fixture("job_log_details_warnings.xml"), NS14)
    assert (warn.file_warning_count, warn.file_duplicate_count, warn.file_update_count) == (1, 1, 1)
    assert warn.transfer_warning_count == 1
    assert warn.detail_log_types == ("UploadWarning", "DuplicateSkipped")


def test_job_log_fatal_without_end_date() -> None:
    """A fatal job log has ``fatal_error`` True and no end date."""
    (log,) = decode_job_logs(fixture("job_log_details_fatal.xml"), NS14)
    assert log.fatal_error is True
    assert log.end_date is None
    assert log.detail_log_types[-1] == "FatalError"


def test_job_logs_empty_and_get_job_logs_reply() -> None:
    """An empty jobLogArray is no logs; a getJobLogs reply decodes without details."""
    assert decode_job_logs(fixture("job_log_details_empty.xml"), NS14) == ()
    logs = decode_job_logs(fixture("job_logs.xml"), NS14, operation="getJobLogs")
    assert [log.job_handle for log in logs] == ["j|110||ok|1", "j|110||pub|5", "j|110||run|6"]
    assert all(log.detail_log_types == () for log in logs)
    assert logs[2].end_date is None


def test_job_log_strictness() -> None:
    """Job logs are strict too: wrong return element, missing dateCreated, bad boolean."""
    with pytest.raises(IpsReplyError):
        decode_job_logs(fixture("job_logs.xml"), NS14, operation="getJobLogDetails")
    no_date = _replace(
        "job_log_details_fatal.xml",
        b"<dateCreated>2024-05-06T10:01:00.000-07:00</dateCreated>",
        b"",
    )
    with pytest.raises(IpsReplyError, match="dateCreated"):
        decode_job_logs(no_date, NS14)
    legacy = re.sub(rb"<dateCreated>[^<]*</dateCreated>", b"", fixture("job_log_details_fatal.xml"))
    (log,) = decode_job_logs(legacy.replace(b"2014-04-03", b"2013-02-15"), NS13)
    assert log.fatal_error is True
    fatal = fixture("job_log_details_fatal.xml")
    empty_date = re.sub(rb"<dateCreated>[^<]*</dateCreated>", b"<dateCreated/>", fatal)
    with pytest.raises(IpsReplyError):
        decode_job_logs(empty_date, NS14)
    bad_bool = _replace("job_log_details_fatal.xml", b"<fatalError>true", b"<fatalError>yes")
    with pytest.raises(IpsReplyError):
        decode_job_logs(bad_bool, NS14)
    with pytest.raises(IpsReplyError):
        decode_job_logs(fixture("active_jobs_one.xml"), NS14)


def test_job_log_present_optional_elements_must_hold_values() -> None:
    """An optional date or count that is there must be valid; only an absent one is None."""
    (log,) = decode_job_logs(fixture("job_log_details_success.xml"), NS14)
    assert log.start_date is not None
    empty_start = re.sub(
        rb"<startDate>[^<]*</startDate>", b"<startDate/>", fixture("job_log_details_success.xml")
    )
    with pytest.raises(IpsReplyError, match="JobLog #0"):
        decode_job_logs(empty_start, NS14)
    no_start = re.sub(rb"<startDate>[^<]*</startDate>", b"", fixture("job_log_details_success.xml"))
    (log,) = decode_job_logs(no_start, NS14)
    assert log.start_date is None


# ------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------


def test_fast_constructor_builds_the_dataclass_values() -> None:
    """fast_constructor makes values equal to the dataclass's, frozen; it refuses other classes."""
    when = datetime(2026, 1, 1, tzinfo=UTC)
    fields: dict[str, Any] = {"item_name": "a.jpg", "progress": 0.5, "progress_message": "m"}
    made = fast_constructor(TaskItemProgress)(**fields, last_progress_update=when)
    plain = TaskItemProgress(**fields, last_progress_update=when)
    assert (made, hash(made), type(made)) == (plain, hash(plain), TaskItemProgress)
    with pytest.raises(FrozenInstanceError):
        made.progress = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError, match="not a frozen dataclass"):
        fast_constructor(_Mutable)


@dataclass
class _Mutable:
    """Not frozen: fast_constructor refuses it."""

    x: int


def test_fast_constructor_keeps_plain_defaults() -> None:
    """A field with a default (JobSnapshot.truncated) may be left out, as with the dataclass."""
    import dataclasses

    from tests.test_diff import job

    sample = job()
    fields = {
        f.name: getattr(sample, f.name)
        for f in dataclasses.fields(JobSnapshot)
        if f.name != "truncated"
    }
    built = fast_constructor(JobSnapshot)(**fields)
    assert built == sample
    assert built.truncated is False
