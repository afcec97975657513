"""The simulator stays cheap at benchmark scale (generous bounds: they catch gross regressions)."""

from __future__ import annotations

import time
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


def test_ten_job_replies_are_cheap_across_many_companies() -> None:
    """Polling 200 companies x 10 jobs costs on average well under a few ms per reply."""
    config = SimulatorConfig.bulk(200, 10)
    world = SimWorld(config, EPOCH)
    for company in config.companies:  # builds each company once, like its first poll
        _reply(world, company, 0.0)
    started = time.perf_counter()
    for t in (5.0, 10.0):
        for company in config.companies:
            _reply(world, company, t)
    per_reply = (time.perf_counter() - started) / (2 * len(config.companies))
    assert per_reply < 0.003, f"{per_reply * 1000:.2f} ms per 10-job reply"


def test_ten_thousand_jobs_in_one_company() -> None:
    """A single company with 10,000 active jobs yields a well-formed reply of over 10 MB."""
    world = SimWorld(SimulatorConfig.bulk(1, 10_000), EPOCH)
    body = _reply(world, "c|1001", 1.0)
    assert len(body) > 10_000_000
    root = etree.fromstring(body, etree.XMLParser(huge_tree=True))
    jobs = root.findall(f".//{{{soap.NS_2014}}}jobArray/{{{soap.NS_2014}}}items")
    assert 9_000 <= len(jobs) <= 10_000
