"""The text path of the getActiveJobs decoder (streamer.ips.text_decode, row_scan, array_cut):
it answers exactly what the tree walk answers, or it does not answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.ips import IpsReplyError, decode_active_jobs, values
from streamer.ips.decode import decode_job_rows, job_array
from streamer.ips.row_scan import _STRING_LEAVES, xml_text
from streamer.ips.schema import ACTIVE_JOB, TASK_ITEM_PROGRESS, TASK_PROGRESS
from streamer.ips.text_decode import decode_scanned, forget_values
from streamer.model import JobSnapshot
from streamer.simulator import SimulatorConfig, render
from streamer.simulator.soap import NS_2013, NS_2014
from streamer.simulator.state import Simulator
from tests.ips_strategies import (
    NS13,
    NS14,
    GeneratedJob,
    _schema_types,
    active_jobs,
    active_jobs_reply,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ips"


def tree_walk(body: bytes, namespace: str = NS14) -> tuple[JobSnapshot, ...]:
    """What the tree walk alone decodes (the reference)."""
    return decode_job_rows(job_array(body, namespace), namespace)


def one_job_reply() -> bytes:
    """A fixed, valid reply of one job with a task, a task item and a sub-job."""
    return (FIXTURES / "active_jobs_task_items.xml").read_bytes()


def simulator_reply(namespace: str, jobs: int = 40) -> bytes:
    """A reply as the simulator serves it over HTTP (one company, simulated second 600)."""
    config = SimulatorConfig.bulk(1, jobs, start_time=datetime(2026, 1, 1, tzinfo=UTC), seed=7)
    sim = Simulator(config)
    state = sim.world.advance(config.companies[0], 600.0)
    assert state is not None
    with_trigger = namespace != NS_2013
    items = [
        render.active_job_xml(j, state.now, sim.dates, with_trigger) for j in state.active.values()
    ]
    return render.active_jobs_reply(namespace, items)


def sub_job_reply(q_namespace: str) -> bytes:
    """One job whose elements carry prefix ``p`` (the body namespace) and whose sub-job's
    children carry prefix ``q``, bound to ``q_namespace`` on the return element."""
    job = (FIXTURES / "active_jobs_one.xml").read_text()
    leaves = re.search(r"<companyHandle>.*?</lastProgressUpdate>", job, re.S)
    assert leaves is not None
    first = re.sub(r"<(/?)(\w+)>", r"<\1p:\2>", leaves.group(0))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<soapenv:Body><p:getActiveJobsReturn xmlns:p="{NS14}" xmlns:q="{q_namespace}">'
        f"<p:jobArray><p:items>{first}<p:taskProgressArray/><p:imageServingPublishJob>"
        "<q:publishType>Full</q:publishType><q:emailSetting>None</q:emailSetting>"
        "</p:imageServingPublishJob></p:items></p:jobArray></p:getActiveJobsReturn>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


# ------------------------------------------------------------------------------------------
# Same answer as the tree walk, and the text path does answer
# ------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(active_jobs(), min_size=1, max_size=4))
def test_generated_replies_take_the_text_path_with_the_tree_walks_values(
    generated: list[GeneratedJob],
) -> None:
    """Any schema-valid generated reply is decoded from its text, to the tree walk's values."""
    body = active_jobs_reply(generated)
    scanned = decode_scanned(body, NS14)
    assert scanned is not None
    assert scanned == tree_walk(body) == tuple(g.expected for g in generated)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(active_jobs(with_trigger_time=False), min_size=1, max_size=3))
def test_generated_2013_replies_take_the_text_path(generated: list[GeneratedJob]) -> None:
    """2013-02-15 replies (no triggerTime) are decoded from their text as well."""
    body = active_jobs_reply(generated, NS13)
    scanned = decode_scanned(body, NS13)
    assert scanned is not None
    assert scanned == tree_walk(body, NS13)


@pytest.mark.parametrize("namespace", [NS_2014, NS_2013])
def test_simulator_replies_take_the_text_path(namespace: str) -> None:
    """What the simulator serves (the benchmarks' replies) is decoded from its text."""
    body = simulator_reply(namespace)
    scanned = decode_scanned(body, namespace)
    assert scanned is not None
    assert len(scanned) > 10
    assert scanned == tree_walk(body, namespace)


def _pretty(body: bytes) -> bytes:
    """The same reply with white space (spaces, tabs, CRLF) between every two elements."""
    return re.sub(rb">(?=<)", b">\r\n\t  ", body)


def _prefixed(body: bytes) -> bytes:
    """The same reply with the body namespace bound to prefix ``ns1`` instead of the default."""
    text = body.decode()
    head, sep, rest = text.partition("<getActiveJobsReturn")
    rest = re.sub(r"<(/?)(?!soapenv:)([A-Za-z]\w*)", r"<\1ns1:\2", sep + rest)
    rest = rest.replace(f'xmlns="{NS14}"', f'xmlns:ns1="{NS14}"', 1)
    return (head + rest).encode()


@pytest.mark.parametrize(
    ("variant", "transform"),
    [
        ("white space between elements", _pretty),
        ("prefixed elements", _prefixed),
        ("character references", lambda b: b.replace(b"<name>", b"<name>&#x41;&#66;&amp;&lt;")),
        ("carriage returns in text", lambda b: b.replace(b"<name>", b"<name>a\r\nb\rc&#13;")),
        ("white space only text", lambda b: b.replace(b"<progressMessage>", b"<progressMessage> ")),
        (
            "empty string leaf",
            lambda b: re.sub(rb"<locale>[^<]*</locale>", b"<locale></locale>", b),
        ),
        ("self-closed string leaf", lambda b: re.sub(rb"<locale>[^<]*</locale>", b"<locale/>", b)),
        ("non-ASCII text", lambda b: b.replace(b"<name>", "<name>Ünïcødé ✓ 𝄞".encode())),
    ],
)
def test_variants_of_the_text_decode_like_the_tree(variant: str, transform: object) -> None:
    """Each variant of a valid reply is decoded from its text, to the tree walk's values."""
    body = transform(simulator_reply(NS_2014, 12))  # type: ignore[operator]
    assert body != simulator_reply(NS_2014, 12), variant
    scanned = decode_scanned(body, NS14)
    assert scanned is not None, variant
    assert scanned == tree_walk(body), variant


def test_xml_text_normalises_line_ends_before_replacing_references() -> None:
    """CRLF and CR read as LF, a character reference to CR stays CR, entities are replaced."""
    assert xml_text("a\r\nb\rc&#13;&#x41;&amp;&lt;&gt;&quot;&apos;") == "a\nb\nc\rA&<>\"'"


# ------------------------------------------------------------------------------------------
# Replies the text path must not answer; the decoder still gives the tree walk's verdict
# ------------------------------------------------------------------------------------------


def _outcome(decode: Callable[[], tuple[JobSnapshot, ...]]) -> object:
    """A decode's values, or its error's type and message."""
    try:
        return decode()
    except IpsReplyError as exc:
        return (type(exc), str(exc))


HOSTILE: dict[str, Callable[[bytes], bytes]] = {
    "control character": lambda b: b.replace(b"<name>", b"<name>\x01"),
    "bare ampersand": lambda b: b.replace(b"<name>", b"<name>a & b"),
    "undefined entity": lambda b: b.replace(b"<name>", b"<name>&nbsp;"),
    "illegal character reference": lambda b: b.replace(b"<name>", b"<name>&#1;"),
    "]]> in text": lambda b: b.replace(b"<name>", b"<name>]]>"),
    "U+FFFF": lambda b: b.replace(b"<name>", "<name>\uffff".encode()),
    "invalid UTF-8": lambda b: b.replace(b"<name>", b"<name>\xff\xfe"),
    "comment in a job": lambda b: b.replace(b"<name>", b"<!-- x --><name>", 1),
    "CDATA in a leaf": lambda b: b.replace(b"<name>", b"<name><![CDATA[x]]>", 1),
    "attribute on a job": lambda b: b.replace(b"<items>", b'<items a="1">', 1),
    "element out of order": lambda b: b.replace(b"<type>", b"<statex/><type>", 1),
    "mismatched end tag in a sub-job": lambda b: re.sub(rb"(<(\w+Job)>)", rb"\1<oops>", b, count=1),
    "unbound prefix in a sub-job": lambda b: re.sub(
        rb"(<(\w+Job)>)", rb"\1<zz:x>1</zz:x>", b, count=1
    ),
    "foreign element in a sub-job": lambda b: re.sub(
        rb"(<(\w+Job)>)", rb'\1<x xmlns="urn:other">1</x>', b, count=1
    ),
    "jobArray start tag in a sub-job": lambda b: re.sub(
        rb"(<(\w+Job)>)", rb"\1<jobArray/>", b, count=1
    ),
    "truncated": lambda b: b[: len(b) // 2],
    "second job array": lambda b: b.replace(b"</jobArray>", b"</jobArray><jobArray/>", 1),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_replies_the_text_path_cannot_prove_take_the_tree_walk(case: str) -> None:
    """A malformed or unexpected reply gets no answer from the text path; the decoder gives
    exactly what the tree walk gives (the same values, or an IpsReplyError)."""
    # The valid reply is read from its text, its sub-job remembered: the variant's checks
    # alone must refuse it (a sub-job read from the tree would find a malformed reply anyway).
    assert decode_scanned(one_job_reply(), NS14) is not None
    body = HOSTILE[case](one_job_reply())
    assert decode_scanned(body, NS14) is None
    assert _outcome(lambda: decode_active_jobs(body, NS14)) == _outcome(lambda: tree_walk(body))


def test_declared_latin1_reply_takes_the_tree_walk() -> None:
    """A reply in another encoding than UTF-8/ASCII is not read as text."""
    body = one_job_reply().replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    assert b"ISO-8859-1" in body
    assert decode_scanned(body, NS14) is None
    assert decode_active_jobs(body, NS14) == tree_walk(body)


def test_sub_job_text_accepted_under_one_binding_is_not_reused_under_another() -> None:
    """A sub-job read from the tree once is reused only under the same namespace bindings: the
    same text whose prefix means another namespace is refused, as the tree walk refuses it."""
    good, bad = sub_job_reply(NS14), sub_job_reply("urn:other")
    assert good.partition(b"<p:jobArray>")[2] == bad.partition(b"<p:jobArray>")[2]
    scanned = decode_scanned(good, NS14)  # reads the sub-job from the tree, remembers it
    assert scanned is not None
    assert scanned == tree_walk(good)
    assert scanned[0].sub_job is not None
    assert scanned[0].sub_job.fields
    assert decode_scanned(good, NS14) == scanned  # now from memory
    with pytest.raises(IpsReplyError):
        tree_walk(bad)
    assert decode_scanned(bad, NS14) is None
    with pytest.raises(IpsReplyError):
        decode_active_jobs(bad, NS14)


def test_string_leaves_are_the_wsdls_xsd_string_leaves() -> None:
    """The leaves whose empty element reads like an absent one are exactly the xsd:string
    leaves of ActiveJob, TaskProgress and TaskItemProgress in the shipped WSDL."""
    types = _schema_types()
    declared = {
        field.name
        for spec in (ACTIVE_JOB, TASK_PROGRESS, TASK_ITEM_PROGRESS)
        for field in types[spec.name]
        if field.type == "xsd:string" and field.name in {f.rstrip("?+") for f in spec.leaves}
    }
    assert declared == _STRING_LEAVES


def test_sub_job_memory_over_its_bound_still_answers_every_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When remembered sub-jobs would pass their bound, memory starts over and every job of the
    reply still gets its own sub-job, as the tree walk reads it."""
    monkeypatch.setattr(values, "TREE_MEMO_SIZE", 3)
    forget_values()
    first = simulator_reply(NS_2014, 30)
    # One sub-job new, the others remembered: memory starts over in the middle of a reply.
    second = re.sub(
        rb"<emailSetting>\w+</emailSetting>", b"<emailSetting>New</emailSetting>", first, count=1
    )
    assert second != first
    for body in (first, second, _prefixed(first), first):
        scanned = decode_scanned(body, NS14)
        assert scanned is not None
        assert len({job.sub_job for job in scanned}) > 3
        assert scanned == tree_walk(body)
