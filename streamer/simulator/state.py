"""The state of one running simulator: clock, world, fault plan, ground truth, WSDL cache."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from lxml import etree

from streamer.simulator.config import SimulatorConfig
from streamer.simulator.faults import Decision, FaultPlan, FaultRule
from streamer.simulator.groundtruth import GroundTruthWriter
from streamer.simulator.lifecycle import CompanySim, SimWorld
from streamer.simulator.render import DateFormatter

WSDL_NAME = "IpsApi-2014-04-03.wsdl"
DEFAULT_WSDL = Path(__file__).resolve().parents[1] / "ips" / "wsdl" / WSDL_NAME
_WSDL_SOAP = ("http://schemas.xmlsoap.org/wsdl/soap/", "http://schemas.xmlsoap.org/wsdl/soap12/")


class SimClock:
    """Simulated seconds since start: real elapsed time x ``speedup``, pausable, skippable."""

    def __init__(self, speedup: float, now_fn: Callable[[], float] = time.monotonic) -> None:
        self.speedup, self._now_fn = speedup, now_fn
        self._anchor_real, self._anchor_sim, self.paused = now_fn(), 0.0, False

    def now(self) -> float:
        """Current simulated time."""
        if self.paused:
            return self._anchor_sim
        return self._anchor_sim + (self._now_fn() - self._anchor_real) * self.speedup

    def restart(self) -> None:
        """Make now simulated time zero."""
        self._anchor_real, self._anchor_sim = self._now_fn(), 0.0

    def pause(self) -> None:
        """Freeze simulated time."""
        if not self.paused:
            self._anchor_sim, self.paused = self.now(), True

    def resume(self) -> None:
        """Let simulated time run again from where it was frozen."""
        if self.paused:
            self._anchor_real, self.paused = self._now_fn(), False

    def skip(self, seconds: float) -> None:
        """Jump simulated time forward."""
        self._anchor_sim += max(0.0, seconds)


class Simulator:
    """Everything a running simulator holds: clock, world, fault plan, ground truth."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.epoch = config.start_time or datetime.now(UTC).replace(microsecond=0)
        self.clock = SimClock(config.speedup)
        self.dates = DateFormatter(self.epoch)
        self.world = SimWorld(config, self.epoch)
        self.plan = FaultPlan(config.faults, seed=config.seed)
        self.world.set_log_delays(self.plan.log_delays())
        self.truth: GroundTruthWriter | None = None
        self.accepting = True
        self.closing = asyncio.Event()
        self.requests: Counter[str] = Counter()
        self._wsdl_cache: dict[str, bytes] = {}

    def iso(self, t: float) -> str:
        """ISO timestamp of simulated time ``t``."""
        return self.dates(t)

    def record(self, kind: str, **fields: Any) -> None:
        """Write one ground truth record stamped with simulated and wall time."""
        if self.truth is not None:
            wall = datetime.now(UTC).isoformat(timespec="milliseconds")
            self.truth.write(
                {"kind": kind, "t": self.iso(self.clock.now()), "wall": wall, **fields}
            )

    def decide(self, company: str, operation: str) -> Decision:
        """What to do with one request: a scenario outage in force fails it, else the plan."""
        start = self.world.scenario_start
        scenario = self.config.scenario
        if scenario is not None and start is not None:
            outage = scenario.outage_at(company, self.clock.now() - start)
            if outage is not None:
                return Decision(0.0, FaultRule(company=company, mode=outage.mode))
        return self.plan.decide(company, operation)

    def polled(self, company: str, t: float) -> None:
        """An unfiltered ``getActiveJobs`` of ``company`` was answered at simulated ``t``."""
        started = self.world.scenario_start is not None
        self.world.polled(company, t)
        if not started and self.world.scenario_start is not None:
            self.record("control", action="scenario_started")

    def sync(self, company: str | None = None) -> CompanySim | None:
        """Advance one company (or every built one) to now and log what happened."""
        now = self.clock.now()
        sim = None
        if company is None:
            self.world.advance_all(now)
        else:
            sim = self.world.advance(company, now)
        facts = self.world.drain()
        if facts and self.truth is not None:
            self.truth.write_facts(facts, self.iso)
        return sim

    async def sleep(self, seconds: float) -> bool:
        """Sleep real seconds; returns early (False) when the server shuts down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)
            return False
        return True

    def wsdl(self, service_url: str) -> bytes:
        """The WSDL with its service addresses pointing at ``service_url``."""
        cached = self._wsdl_cache.get(service_url)
        if cached is None:
            tree = etree.parse(str(self.config.wsdl_path or DEFAULT_WSDL))
            for ns in _WSDL_SOAP:
                for address in tree.iter(f"{{{ns}}}address"):
                    address.set("location", service_url)
            cached = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
            self._wsdl_cache[service_url] = cached
        return cached


SIMULATOR: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)
