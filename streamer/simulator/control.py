"""The simulator's JSON control API (``/_sim/...``), for demos and chaos tests.

=========================  ==============================================================
``GET /_sim/state``        clock, counters, active rules, when the scenario started;
                           ``?company=`` adds its jobs/logs
``GET /_sim/faults``       ``{"rules": [...]}``
``POST /_sim/faults``      add a :class:`~streamer.simulator.faults.FaultRule` (JSON object);
                           ``{"mode": "raw", "status": 401, "body": "..."}`` scripts a reply,
                           ``"body_file"`` must name a readable file
``DELETE /_sim/faults``    remove all rules (``?company=`` only that company's)
``DELETE /_sim/faults/N``  remove rule ``N``
``POST /_sim/clock/pause`` freeze simulated time; ``/resume``; ``/advance {"seconds": s}``
``POST /_sim/jobs/stall``  ``{"jobHandle": h, "duration_s": s | null}`` (null = until unstall)
``POST /_sim/jobs/unstall`` ``{"jobHandle": h}``
``POST /_sim/stop``        the SOAP endpoint answers 503 until ``POST /_sim/start``
=========================  ==============================================================
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from streamer.simulator.faults import FaultRule
from streamer.simulator.jobs import job_view
from streamer.simulator.state import SIMULATOR, Simulator

log = structlog.get_logger(__name__)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return data


def _status(sim: Simulator) -> dict[str, Any]:
    now = sim.clock.now()
    start = sim.world.scenario_start
    companies = sim.world.companies.values()
    return {
        "accepting": sim.accepting,
        "paused": sim.clock.paused,
        "speedup": sim.clock.speedup,
        "sim_seconds": now,
        "sim_time": sim.iso(now),
        "epoch": sim.epoch.isoformat(),
        "scenario": sim.config.scenario is not None,
        "scenario_started": None if start is None else sim.iso(start),
        "companies_configured": len(sim.config.companies),
        "companies_started": len(sim.world.companies),
        "active_jobs": sum(len(c.active) for c in companies),
        "submitted_jobs": sum(c.submitted for c in companies),
        "job_logs": sum(len(c.logs) for c in companies),
        "requests": dict(sim.requests),
        "faults": sim.plan.to_json(),
    }


async def get_state(request: web.Request) -> web.Response:
    """Simulator status; with ``?company=`` also that company's jobs and logs."""
    sim = request.app[SIMULATOR]
    company = request.query.get("company")
    state = _status(sim)
    if company is not None:
        csim = sim.sync(company)
        if csim is None:
            raise web.HTTPNotFound(text=f"unknown company {company}")
        state["jobs"] = [
            {
                "jobHandle": j.handle,
                "state": j.state,
                "type": j.kind.type,
                "name": j.name,
                "progress": job_view(j, csim.now).progress,
                "stalled": _stalled(j.stalls, csim.now),
            }
            for j in csim.active.values()
        ]
        state["logs"] = [
            {"jobHandle": g.job_handle, "outcome": g.outcome.value} for g in csim.logs.values()
        ]
    return web.json_response(state)


def _stalled(stalls: list[tuple[float, float]], now: float) -> bool:
    return any(s <= now < s + n for s, n in stalls)


async def get_faults(request: web.Request) -> web.Response:
    """Active fault rules."""
    return web.json_response({"rules": request.app[SIMULATOR].plan.to_json()})


async def post_fault(request: web.Request) -> web.Response:
    """Add a fault rule."""
    sim = request.app[SIMULATOR]
    try:
        rule = FaultRule.from_json(await _json_body(request))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    if rule.body_file is not None and not await asyncio.to_thread(Path(rule.body_file).is_file):
        # Read at each request: refuse now rather than answer every request with an error.
        raise web.HTTPBadRequest(text=f"body_file: no such file {rule.body_file}")
    sim.sync()  # jobs that vanished before now keep the log delay they had
    rule_id = sim.plan.add(rule)
    sim.world.set_log_delays(sim.plan.log_delays())
    sim.record("control", action="fault_added", id=rule_id, rule=rule.to_json())
    log.info("sim_fault_rule_added", id=rule_id, **rule.to_json())
    return web.json_response({"id": rule_id, "rule": rule.to_json()}, status=201)


async def delete_faults(request: web.Request) -> web.Response:
    """Remove all rules, or one company's."""
    sim = request.app[SIMULATOR]
    sim.sync()
    removed = sim.plan.clear(request.query.get("company"))
    sim.world.set_log_delays(sim.plan.log_delays())
    sim.record("control", action="faults_cleared", removed=removed)
    log.info("sim_fault_rules_cleared", removed=removed)
    return web.json_response({"removed": removed})


async def delete_fault(request: web.Request) -> web.Response:
    """Remove one rule by id."""
    sim = request.app[SIMULATOR]
    try:
        rule_id = int(request.match_info["rule_id"])
    except ValueError as exc:
        raise web.HTTPBadRequest(text="rule id must be an integer") from exc
    sim.sync()
    if not sim.plan.remove(rule_id):
        raise web.HTTPNotFound(text=f"no rule {rule_id}")
    sim.world.set_log_delays(sim.plan.log_delays())
    sim.record("control", action="fault_removed", id=rule_id)
    return web.json_response({"removed": 1})


async def post_clock(request: web.Request) -> web.Response:
    """Pause, resume or advance simulated time."""
    sim = request.app[SIMULATOR]
    action = request.match_info["action"]
    if action == "pause":
        sim.clock.pause()
    elif action == "resume":
        sim.clock.resume()
    elif action == "advance":
        seconds = (await _json_body(request)).get("seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            raise web.HTTPBadRequest(text='expected {"seconds": <non-negative number>}')
        sim.clock.skip(float(seconds))
        sim.sync()
    else:
        raise web.HTTPNotFound(text=f"unknown clock action {action}")
    sim.record("control", action=f"clock_{action}")
    log.info("sim_clock", action=action, sim_time=sim.iso(sim.clock.now()))
    return web.json_response({"paused": sim.clock.paused, "sim_time": sim.iso(sim.clock.now())})


async def post_job(request: web.Request) -> web.Response:
    """Stall or unstall one running job."""
    sim = request.app[SIMULATOR]
    action = request.match_info["action"]
    data = await _json_body(request)
    handle = data.get("jobHandle")
    duration = data.get("duration_s")
    if not isinstance(handle, str) or not (duration is None or isinstance(duration, int | float)):
        raise web.HTTPBadRequest(text='expected {"jobHandle": str, "duration_s": number|null}')
    sim.sync()
    job = sim.world.find_job(handle)
    if job is None:
        raise web.HTTPNotFound(text=f"no active job {handle}")
    csim = sim.world.company(job.company)
    assert csim is not None
    if action == "stall":
        ok = csim.stall(handle, None if duration is None else float(duration))
    elif action == "unstall":
        ok = csim.unstall(handle)
    else:
        raise web.HTTPNotFound(text=f"unknown job action {action}")
    if not ok:
        raise web.HTTPConflict(text=f"cannot {action} {handle} in state {job.state}")
    sim.record("control", action=action, company=job.company, jobHandle=handle, duration_s=duration)
    log.info("sim_job_" + action, job_handle=handle, duration_s=duration)
    return web.json_response({"ok": True, "jobHandle": handle})


async def post_service(request: web.Request) -> web.Response:
    """Make the SOAP endpoint refuse (503) or serve again."""
    sim = request.app[SIMULATOR]
    sim.accepting = request.match_info["action"] == "start"
    sim.record("control", action="start" if sim.accepting else "stop")
    log.info("sim_service", accepting=sim.accepting)
    return web.json_response({"accepting": sim.accepting})


def add_control_routes(app: web.Application) -> None:
    """Register the ``/_sim`` routes."""
    app.router.add_get("/_sim/state", get_state)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_post("/_sim/faults", post_fault)
    app.router.add_delete("/_sim/faults", delete_faults)
    app.router.add_delete("/_sim/faults/{rule_id}", delete_fault)
    app.router.add_post("/_sim/clock/{action}", post_clock)
    app.router.add_post("/_sim/jobs/{action}", post_job)
    app.router.add_post("/_sim/{action:stop|start}", post_service)
