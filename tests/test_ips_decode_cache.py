"""The reply cache (streamer.ips.reply_cache): incremental decoding is the full decode, always."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from streamer.ips import (
    ActiveJobsCache,
    IpsClient,
    IpsFault,
    IpsReplyError,
    IpsSettings,
    decode_active_jobs,
    reply_cache,
)
from streamer.ips.decode import MAX_SUB_JOB_DEPTH
from streamer.model import JobSnapshot
from streamer.simulator import DEFAULT_PASSWORD, DEFAULT_USER, SimulatorConfig, build_app, render
from streamer.simulator.soap import NS_2014
from streamer.simulator.state import Simulator
from tests.ips_strategies import NS13, NS14, GeneratedJob, active_jobs, active_jobs_reply

FIXTURES = Path(__file__).parent / "fixtures" / "ips"
START = datetime(2026, 1, 1, tzinfo=UTC)


def fixture(name: str) -> bytes:
    """Raw bytes of a recorded-style reply."""
    return (FIXTURES / name).read_bytes()


def outcome(decode: Callable[[], tuple[JobSnapshot, ...]]) -> object:
    """The decoded jobs, or ``(error type, kind, message)`` when decoding raises."""
    try:
        return decode()
    except IpsFault as fault:
        return (type(fault), fault.code, str(fault))
    except IpsReplyError as exc:
        return (type(exc), exc.kind, str(exc))


def same_as_full(cache: ActiveJobsCache, body: bytes, namespace: str = NS14) -> object:
    """Decode with the cache, assert it equals the full decode (or its error); return it."""
    cached = outcome(lambda: decode_active_jobs(body, namespace, cache))
    assert cached == outcome(lambda: decode_active_jobs(body, namespace))
    return cached


class Polls:
    """Successive ``getActiveJobs`` replies of one simulated company, 5 simulated seconds apart."""

    def __init__(self, jobs: int, **overrides: Any) -> None:
        config = SimulatorConfig.bulk(1, jobs, start_time=START, seed=7, **overrides)
        self.sim = Simulator(config)
        self.t = 100.0

    def next(self, step_s: float = 5.0) -> bytes:
        """The reply at the next poll."""
        self.t += step_s
        company = self.sim.world.advance("c|1001", self.t)
        assert company is not None
        items = [
            render.active_job_xml(j, company.now, self.sim.dates, True)
            for j in company.active.values()
        ]
        return render.active_jobs_reply(NS_2014, items)


# ------------------------------------------------------------------------------------------
# Steady state
# ------------------------------------------------------------------------------------------


def test_successive_polls_decode_equal_and_reuse_unchanged_jobs() -> None:
    """Over many polls the cached decode equals the full one; unchanged jobs are reused objects."""
    polls = Polls(300, progress_step_s=30.0, running_duration_s=(300.0, 900.0))
    cache = ActiveJobsCache(min_bytes=0)
    previous: dict[str, JobSnapshot] = {}
    reused = 0
    for i in range(8):
        body = polls.next()
        jobs = same_as_full(cache, body)
        assert isinstance(jobs, tuple)
        assert cache.last_path == ("full" if i == 0 else "incremental")
        full = decode_active_jobs(body, NS14)
        for job, fresh in zip(jobs, full, strict=True):
            old = previous.get(job.job_handle)
            if old is not None and old == fresh:
                assert job is old  # identity: the diff's fast path
                reused += 1
        previous = {j.job_handle: j for j in jobs}
    assert reused > 1000


def test_cold_cache_fills_then_hits_everything() -> None:
    """The first decode fills the cache; the same bytes again are all hits and the same objects."""
    body = Polls(50).next()
    cache = ActiveJobsCache(min_bytes=0)
    first = decode_active_jobs(body, NS14, cache)
    assert (cache.last_path, len(cache)) == ("full", len(first))
    again = decode_active_jobs(body, NS14, cache)
    assert (cache.last_path, cache.last_hits, cache.last_misses) == ("incremental", len(first), 0)
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_pretty_printed_prefixed_reply_is_cached_too() -> None:
    """Indented replies with a namespace prefix (``ns1:items``) are cut and cached as well."""
    body = fixture("active_jobs_many.xml")
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, body)
    assert cache.last_path == "full"
    same_as_full(cache, body)
    assert (cache.last_path, cache.last_misses) == ("incremental", 0)
    changed = body.replace(b"<ns1:progress>42</ns1:progress>", b"<ns1:progress>43</ns1:progress>")
    jobs = same_as_full(cache, changed)
    assert (cache.last_path, cache.last_misses) == ("incremental", 1)
    assert isinstance(jobs, tuple)
    assert jobs[0].status.progress == 43


def test_many_changes_make_the_cache_stand_aside_then_return() -> None:
    """When most jobs changed the cache stands aside for 1, 2, 4 ... polls, then comes back."""
    polls = Polls(100, progress_step_s=30.0, running_duration_s=(300.0, 900.0))
    cache = ActiveJobsCache(min_bytes=0)
    paths = []
    for step in (5.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0, 60.0, 5.0, 5.0):
        same_as_full(cache, polls.next(step_s=step))
        paths.append(cache.last_path)
    assert paths == [
        "full",  # cold
        "skipped",  # a minute later nearly every job moved: aside for this poll and 1 more
        "skipped",
        "full",  # back: rebuilt
        "skipped",  # churn again: aside for this poll and 2 more
        "skipped",
        "skipped",
        "full",
        "incremental",  # 5 s later: reused (and the back-off starts from 1 again)
        "incremental",
    ]


def test_small_replies_are_decoded_whole() -> None:
    """Below the size threshold the cache keeps no elements and decodes a new reply whole."""
    polls = Polls(5)
    first, second = polls.next(), polls.next(60.0)
    assert first != second
    cache = ActiveJobsCache(min_bytes=max(len(first), len(second)) + 1)
    for body in (first, second):
        same_as_full(cache, body)
        assert (cache.last_path, len(cache)) == ("small", 0)


def test_a_small_reply_seen_again_returns_the_previous_result() -> None:
    """The same small reply again (a quiet company) gives the very same snapshots, undecoded."""
    body = Polls(5).next()
    cache = ActiveJobsCache(min_bytes=len(body) + 1)
    first = same_as_full(cache, body)
    again = same_as_full(cache, bytes(body))  # equal bytes, another object
    assert cache.last_path == "same"
    assert isinstance(first, tuple)
    assert isinstance(again, tuple)
    assert all(a is b for a, b in zip(first, again, strict=True))
    # The same bytes read in another namespace are another decode (here: its error).
    assert same_as_full(cache, body, NS13) != first


def test_a_small_reply_that_failed_is_decoded_again() -> None:
    """Only successful decodes are remembered: a bad small reply raises on every poll."""
    body = Polls(5).next()
    broken = body.replace(b"</jobHandle>", b"</jobHandle><surprise/>", 1)
    cache = ActiveJobsCache(min_bytes=len(broken) + 1)
    for _ in range(2):
        with pytest.raises(IpsReplyError):
            decode_active_jobs(broken, NS14, cache)
    same_as_full(cache, body)
    assert cache.last_path == "small"


def test_empty_reply_and_back() -> None:
    """An empty job list decodes to () with a warm cache, and jobs come back afterwards."""
    body = Polls(20).next()
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, body)
    empty = fixture("active_jobs_empty.xml")
    assert same_as_full(cache, empty) == ()
    same_as_full(cache, body)


def test_duplicate_job_elements_are_kept_twice() -> None:
    """A job element repeated in one reply decodes twice, as without the cache."""
    body = Polls(10).next()
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, body)
    start = body.index(b"<items><companyHandle>")
    end = body.index(b"<items><companyHandle>", start + 1)
    doubled = body[:end] + body[start:end] + body[end:]
    jobs = same_as_full(cache, doubled)
    assert isinstance(jobs, tuple)
    assert len(jobs) == 11


# ------------------------------------------------------------------------------------------
# Context changes
# ------------------------------------------------------------------------------------------


def _pretty(body: bytes) -> bytes:
    """The same reply indented, one element per line (as many SOAP stacks write them)."""
    root = etree.fromstring(body)
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8"))


def test_indented_replies_verify_new_pieces_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-line new pieces are verified together (and in chunks when lines run out)."""
    polls = Polls(60, progress_step_s=30.0, running_duration_s=(300.0, 900.0))
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, _pretty(polls.next()))
    monkeypatch.setattr(reply_cache, "_MAX_LINES", 200)  # a few pieces per verifying document
    misses = 0
    for _ in range(6):
        same_as_full(cache, _pretty(polls.next()))
        assert cache.last_path == "incremental"
        misses += cache.last_misses
    assert misses > 3


def test_new_piece_with_a_comment_is_verified_alone() -> None:
    """A new job element holding a comment or CDATA is parsed on its own, and still reused."""
    cache, body = _warm()
    commented = body.replace(b"</name>", b"<!-- note --></name>", 1).replace(
        b"</originalName>", b"<![CDATA[ & more]]></originalName>", 2
    )
    same_as_full(cache, commented)
    assert cache.last_path == "incremental"
    same_as_full(cache, commented)
    assert cache.last_misses == 0


def test_other_encodings_are_decoded_but_not_cached() -> None:
    """A reply declared in another encoding is decoded in full every time, never cut."""
    body = Polls(10).next().replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    cache = ActiveJobsCache(min_bytes=0)
    for _ in range(2):
        same_as_full(cache, body)
        assert cache.last_path == "uncacheable"


def test_changed_head_empties_the_cache() -> None:
    """Other bytes before the job array (another prefix, another declaration) start afresh."""
    body = fixture("active_jobs_many.xml")
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, body)
    renamed = body.replace(b"ns1:", b"ips:").replace(b"xmlns:ns1=", b"xmlns:ips=")
    same_as_full(cache, renamed)
    assert cache.last_path == "full"


def test_namespace_argument_is_part_of_the_context() -> None:
    """A cache filled for one namespace is not used to decode for another."""
    body13 = fixture("active_jobs_2013.xml")
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, body13, NS13)
    with pytest.raises(IpsReplyError) as info:
        decode_active_jobs(body13, NS14, cache)
    assert info.value.kind == "namespace"
    same_as_full(cache, body13, NS13)


def test_changed_tail_is_verified() -> None:
    """Bytes after the job array that break the document are caught, not trusted."""
    body = Polls(20).next()
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, body)
    assert body.endswith(b"</soapenv:Envelope>")
    same_as_full(cache, body + b"<!-- trailing comment -->")
    assert cache.last_path == "incremental"
    broken = same_as_full(cache, body[:-5])
    assert isinstance(broken, tuple)
    assert broken[1] == "malformed"


# ------------------------------------------------------------------------------------------
# Errors and hostile bytes: always the full decode's answer
# ------------------------------------------------------------------------------------------


def _warm(jobs: int = 30) -> tuple[ActiveJobsCache, bytes]:
    body = Polls(jobs).next()
    cache = ActiveJobsCache(min_bytes=0)
    same_as_full(cache, body)
    return cache, body


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("bad_int", lambda b: b.replace(b"<totalSize>", b"<totalSize>x", 1)),
        ("unknown_element", lambda b: b.replace(b"<locale>", b"<colour>red</colour><locale>", 1)),
        ("truncated_job", lambda b: b[: b.rindex(b"</items>")] + b"</jobArray>" + b[-80:]),
        ("unclosed_comment", lambda b: b.replace(b"<state>", b"<!-- </items><state>", 1)),
        ("cdata_marker", lambda b: b.replace(b"</name>", b"<![CDATA[</items><items>]]></name>", 1)),
        ("second_job_array", lambda b: b.replace(b"<state>", b"<jobArray></jobArray><state>", 1)),
        ("text_between_jobs", lambda b: b.replace(b"</items><items><c", b"</items>x<items><c", 1)),
        ("fault", lambda _: fixture("fault_authorization.xml")),
        ("doctype", lambda b: b.replace(b"?>", b"?><!DOCTYPE x>", 1)),
    ],
)
def test_damaged_reply_gives_the_full_decode_answer(
    name: str, mutate: Callable[[bytes], bytes]
) -> None:
    """A damaged or hostile reply after a warm cache decodes (or fails) exactly as in full."""
    cache, body = _warm()
    changed = mutate(body)
    assert changed != body, name
    same_as_full(cache, changed)
    same_as_full(cache, body)  # and the cache still works afterwards


@pytest.mark.parametrize("levels", [MAX_SUB_JOB_DEPTH + 1, 1_000, 2_000])
def test_too_deep_sub_job_fails_the_cached_decode_as_the_full_one(levels: int) -> None:
    """A sub-job nested past the limit is malformed, warm cache or cold: no RecursionError."""
    cache, body = _warm()
    chain = b"<a>" * (levels - 1) + b"x" + b"</a>" * (levels - 1)
    deep = body.replace(b"</videoPublishJob>", chain + b"</videoPublishJob>", 1)
    assert deep != body
    for decoder in (cache, ActiveJobsCache(min_bytes=0)):  # warm, then cold
        failed = same_as_full(decoder, deep)
        assert isinstance(failed, tuple)
        assert failed[:2] == (IpsReplyError, "malformed")
    assert isinstance(same_as_full(cache, body), tuple)  # and the cache still works afterwards


def test_marker_inside_a_job_never_splits_it() -> None:
    """A job whose text contains the bytes that start a job element is decoded as one job."""
    cache, body = _warm()
    escaped = body.replace(b"</name>", b"&lt;items&gt;&lt;companyHandle&gt;</name>", 1)
    jobs = same_as_full(cache, escaped)
    assert isinstance(jobs, tuple)
    assert len(jobs) == len(decode_active_jobs(body, NS14))
    nested = body.replace(
        b"</videoPublishJob>",
        b"<items><companyHandle>x</companyHandle></items></videoPublishJob>",
        1,
    )
    same_as_full(cache, nested)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pool=st.lists(active_jobs(), min_size=1, max_size=4),
    picks=st.lists(st.lists(st.integers(0, 3), max_size=5), min_size=1, max_size=4),
)
def test_generated_reply_sequences_decode_as_without_cache(
    pool: list[GeneratedJob], picks: list[list[int]]
) -> None:
    """Any sequence of generated replies sharing jobs decodes with a cache as without one."""
    cache = ActiveJobsCache(min_bytes=0)
    for pick in picks:
        same_as_full(cache, active_jobs_reply([pool[i % len(pool)] for i in pick]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_splice_of_a_known_reply_decodes_as_without_cache(data: st.DataObject) -> None:
    """Cutting, repeating or inserting bytes anywhere in a cached reply changes nothing."""
    cache, body = _CACHE_AND_BODY
    start = data.draw(st.integers(0, len(body)), label="start")
    end = data.draw(st.integers(start, min(len(body), start + 600)), label="end")
    insert = data.draw(
        st.sampled_from([b"", b"<", b"</items>", b"<items><companyHandle>", body[start:end]]),
        label="insert",
    )
    same_as_full(cache, body[:start] + insert + body[end:])
    same_as_full(cache, body)


def _cache_and_body() -> tuple[ActiveJobsCache, bytes]:
    return _warm(8)


_CACHE_AND_BODY = _cache_and_body()


# ------------------------------------------------------------------------------------------
# The client keeps one cache per company
# ------------------------------------------------------------------------------------------


@pytest.fixture
async def sim_server() -> AsyncIterator[TestServer]:
    """The IPS simulator (3 companies, 40 warm jobs each) on a local port."""
    config = SimulatorConfig.bulk(3, 40, start_time=START)
    server = TestServer(build_app(config))
    await server.start_server()
    yield server
    await server.close()


async def test_client_polls_each_company_through_its_own_cache(sim_server: TestServer) -> None:
    """Polling twice reuses each company's decoded jobs; the snapshots match a full decode."""
    async with aiohttp.ClientSession() as session:
        settings_ = IpsSettings(
            endpoint=str(sim_server.make_url("/scene7/services/IpsApiService")),
            user=DEFAULT_USER,
            password=DEFAULT_PASSWORD,
        )
        client = await IpsClient.create(settings_, session)
        for company in ("c|1001", "c|1002", "c|1003"):
            await client.get_active_jobs(company)
        for company in ("c|1001", "c|1002", "c|1003"):
            snapshot = await client.get_active_jobs(company)
            cache = client.job_cache(company)
            assert cache is not None
            assert cache.last_path == "incremental"
            assert cache.last_hits + cache.last_misses == len(snapshot.jobs)
            assert all(job.company_handle == company for job in snapshot.jobs)
