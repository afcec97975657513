"""The simulator at benchmark scale: many companies, and one company with 10,000 jobs.

Its CPU budget (under 3 ms per 10-job reply) is measured by ``bench/decode.py``, not here: a
timing bound in a test fails on a loaded machine without anything being wrong.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from streamer.simulator import render, soap
from streamer.simulator.config import SimulatorConfig
from streamer.simulator.lifecycle import SimWorld

EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DATES = render.DateFormatter(EPOCH)


def _reply(world: SimWorld, company: str, t: float) -> bytes:
    sim = world.advance(company, t)
    assert sim is not None
    items = [render.active_job_xml(j, sim.now, DATES, True) for j in sim.active.values()]
    return render.active_jobs_reply(soap.NS_2014, items)


def test_replies_across_many_companies_list_each_companys_jobs() -> None:
    """Polling 200 companies x 10 jobs three times gives well-formed replies of their own jobs."""
    config = SimulatorConfig.bulk(200, 10)
    world = SimWorld(config, EPOCH)
    ns = soap.NS_2014
    counts = []
    for t in (0.0, 5.0, 10.0):
        for company in config.companies:
            sim = world.advance(company, t)
            assert sim is not None
            items = [render.active_job_xml(j, sim.now, DATES, True) for j in sim.active.values()]
            root = etree.fromstring(render.active_jobs_reply(ns, items))
            jobs = root.findall(f".//{{{ns}}}jobArray/{{{ns}}}items")
            assert [j.findtext(f"{{{ns}}}jobHandle") for j in jobs] == list(sim.active)
            assert {j.findtext(f"{{{ns}}}companyHandle") for j in jobs} <= {company}
            counts.append(len(jobs))
    assert 5 <= sum(counts) / len(counts) <= 10


def test_ten_thousand_jobs_in_one_company() -> None:
    """A single company with 10,000 active jobs yields a well-formed reply of over 10 MB."""
    world = SimWorld(SimulatorConfig.bulk(1, 10_000), EPOCH)
    body = _reply(world, "c|1001", 1.0)
    assert len(body) > 10_000_000
    root = etree.fromstring(body, etree.XMLParser(huge_tree=True))
    jobs = root.findall(f".//{{{soap.NS_2014}}}jobArray/{{{soap.NS_2014}}}items")
    assert 9_000 <= len(jobs) <= 10_000
