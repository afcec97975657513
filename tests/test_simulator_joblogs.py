"""The simulator's job log listing and short jobs: what reconciliation is tested against."""

from __future__ import annotations

import email.utils
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from streamer.ips import IpsClient, IpsSettings
from streamer.simulator import SIMULATOR, read_ground_truth, soap
from streamer.simulator.config import SimulatorConfig
from streamer.simulator.jobs import GONE, NEW, Transition
from streamer.simulator.lifecycle import SimWorld
from tests.test_simulator_http import EPOCH, MakeClient, advance, make_client, post

__all__ = ["make_client"]  # the fixture, imported for the tests below

ITEMS = "//*[local-name()='jobLogArray']/*"


def ends(body: bytes) -> list[str]:
    """The endDate texts of a getJobLogs reply, in reply order."""
    root = etree.fromstring(body)
    return [str(t) for t in root.xpath(ITEMS + "/*[local-name()='endDate']/text()")]


def starts(body: bytes) -> list[str]:
    """The startDate texts of a getJobLogs reply, in reply order."""
    root = etree.fromstring(body)
    return [str(t) for t in root.xpath(ITEMS + "/*[local-name()='startDate']/text()")]


async def finished(client: TestClient[Any, Any], seconds: float = 400) -> list[str]:
    """Run c|1001 for ``seconds`` of simulated time; its logs' end dates, sorted."""
    await advance(client, seconds)
    _, body, _ = await post(client, "getJobLogs", {"companyHandle": "c|1001"})
    return sorted(ends(body))


async def test_window_selects_logs_by_end_date_edges_included(make_client: MakeClient) -> None:
    """startDate..endDate select the logs that ended within, both edges included."""
    client = await make_client(running_duration_s=(5.0, 20.0))
    all_ends = await finished(client)
    assert len(all_ends) >= 6
    lo, hi = all_ends[1], all_ends[4]
    params = {"companyHandle": "c|1001", "startDate": lo, "endDate": hi}
    _, body, _ = await post(client, "getJobLogs", params)
    assert sorted(ends(body)) == all_ends[1:5]
    # Milliseconds matter: one past an edge leaves that log out.
    past = (datetime.fromisoformat(lo) + timedelta(milliseconds=1)).isoformat()
    _, body, _ = await post(client, "getJobLogs", {**params, "startDate": past})
    assert sorted(ends(body)) == all_ends[2:5]


async def test_sort_direction_and_num_rows(make_client: MakeClient) -> None:
    """sortBy StartDate (the default) ascending or descending; numRows cuts after sorting."""
    client = await make_client(running_duration_s=(5.0, 20.0))
    await finished(client)
    base = {"companyHandle": "c|1001"}
    _, body, _ = await post(client, "getJobLogs", base)
    ascending = starts(body)
    assert ascending == sorted(ascending)
    _, body, _ = await post(client, "getJobLogs", {**base, "sortDirection": "Descending"})
    assert starts(body) == ascending[::-1]
    _, body, _ = await post(client, "getJobLogs", {**base, "numRows": "3"})
    assert starts(body) == ascending[:3]
    _, body, _ = await post(client, "getJobLogs", {**base, "sortBy": "FileSuccessCount"})
    root = etree.fromstring(body)
    counts = [int(t) for t in root.xpath(ITEMS + "/*[local-name()='fileSuccessCount']/text()")]
    assert counts == sorted(counts)
    status, body, _ = await post(client, "getJobLogs", {**base, "sortBy": "Nonsense"})
    assert status == 500
    assert b"30001" in body


async def test_job_log_replies_carry_the_simulated_clock(make_client: MakeClient) -> None:
    """The Date of a getJobLogs reply is the simulated time (IPS's clock), not the wall's."""
    client = await make_client()
    await advance(client, 3600)
    _, _, response = await post(client, "getJobLogs", {"companyHandle": "c|1001"})
    date = email.utils.parsedate_to_datetime(response.headers["Date"])
    assert date == EPOCH + timedelta(seconds=3600)


async def test_ips_client_lists_a_window_and_reads_the_clock(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """The streamer's client sends the window with explicit zones and gets the Date back."""
    client = await make_client(running_duration_s=(5.0, 20.0))
    all_ends = await finished(client)
    url = str(client.make_url("/scene7/services/IpsApiService"))
    async with aiohttp.ClientSession() as session:
        ips = await IpsClient.create(
            IpsSettings(endpoint=url, user="demo@example.com", password="demo-password"), session
        )
        lo, hi = (datetime.fromisoformat(t) for t in (all_ends[0], all_ends[2]))
        listing = await ips.list_job_logs("c|1001", start=lo, end=hi, num_rows=10)
    got = sorted(g.end_date for g in listing.logs if g.end_date is not None)
    assert got == [datetime.fromisoformat(t) for t in all_ends[:3]]
    assert listing.server_time == EPOCH + timedelta(seconds=400)


def test_short_jobs_live_within_their_duration() -> None:
    """With short_job_share, that share of jobs goes from submitted to gone within the range."""
    cfg = SimulatorConfig(
        companies=("c|1001",),
        jobs_per_company=4,
        seed=3,
        tick_s=None,
        short_job_share=0.5,
        short_job_duration_s=(0.2, 1.0),
    )
    world = SimWorld(cfg, EPOCH)
    world.advance("c|1001", 2000)
    born: dict[str, float] = {}
    lives: list[float] = []
    for fact in world.drain():
        if isinstance(fact, Transition):
            if fact.to_state == NEW:
                born[fact.job_handle] = fact.t
            elif fact.to_state == GONE:
                lives.append(fact.t - born[fact.job_handle])
    short = [x for x in lives if x <= 1.0]  # a failed short job ends earlier still
    assert len(lives) >= 40
    assert 0.3 < len(short) / len(lives) < 0.7
    assert min(x for x in lives if x > 1.0) > 5  # the others live as long as ever


def test_no_short_jobs_keeps_the_seeded_history() -> None:
    """short_job_share 0 draws nothing more: existing seeded workloads are unchanged."""
    a = SimWorld(SimulatorConfig(companies=("c|1",), seed=9, tick_s=None), EPOCH)
    b = SimWorld(
        SimulatorConfig(companies=("c|1",), seed=9, tick_s=None, short_job_duration_s=(1, 2)),
        EPOCH,
    )
    a.advance("c|1", 500)
    b.advance("c|1", 500)
    assert a.drain() == b.drain()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"short_job_share": 1.5}, "short_job_share"),
        ({"short_job_duration_s": (2.0, 1.0)}, "short_job_duration_s"),
        ({"short_job_duration_s": (0.0, 0.0)}, "short_job_duration_s"),
    ],
)
def test_short_job_settings_are_validated(overrides: dict[str, Any], key: str) -> None:
    """A share outside 0..1 or an empty lifetime range is refused, naming the key."""
    with pytest.raises(ValueError, match=key):
        SimulatorConfig(**overrides)


async def test_ground_truth_records_jobs_no_poll_listed(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """Every job's life is in the ground truth, also that of jobs never listed by a poll."""
    client = await make_client(short_job_share=1.0, short_job_duration_s=(0.5, 1.0))
    await advance(client, 120)
    for company in ("c|1001", "c|1002"):
        client.app[SIMULATOR].sync(company)
    truth = read_ground_truth(tmp_path / "truth.jsonl")
    gone = Counter(r["company"] for r in truth if r["kind"] == "transition" and r["to"] == GONE)
    logs = {r["jobHandle"] for r in truth if r["kind"] == "joblog"}
    polled = {h for r in truth if r["kind"] == "poll" for h, _ in r.get("jobs", [])}
    assert min(gone["c|1001"], gone["c|1002"]) >= 20
    assert len(logs) == sum(gone.values())
    assert not polled  # nothing polled at all, and every job is still on record
    assert soap.NS_2014  # the same SOAP module served them
