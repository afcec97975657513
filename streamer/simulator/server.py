"""The simulator's HTTP side: IPS SOAP endpoint, WSDL, control API, and the runner.

Routes:

* ``POST /scene7/services/IpsApiService``: ``getActiveJobs``, ``getJobLogs``, ``getJobLogDetails``
  (``getJobLogs``: the finished jobs whose log *ended* within ``startDate``..``endDate``, both
  inclusive, sorted by ``sortBy``/``sortDirection`` (``StartDate`` ascending by default), at
  most ``numRows``; the job log replies carry the simulated clock in their ``Date`` header);
* ``GET /scene7/webservice/<file>``: the WSDL (``soap:address`` rewritten to this server) and
  any ``.xsd`` beside it;
* ``/_sim/...``: the JSON control API (:mod:`streamer.simulator.control`).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from streamer.simulator import render, soap
from streamer.simulator.config import SimulatorConfig
from streamer.simulator.control import add_control_routes
from streamer.simulator.faults import SCRIPTED, FaultRule
from streamer.simulator.groundtruth import GroundTruthWriter
from streamer.simulator.jobs import SimJobLog
from streamer.simulator.soap import SoapFault, SoapRequest
from streamer.simulator.state import DEFAULT_WSDL, SIMULATOR, WSDL_NAME, Simulator

__all__ = ["DEFAULT_WSDL", "SERVICE_PATH", "SIMULATOR", "Simulator", "build_app", "serve"]

log = structlog.get_logger(__name__)

SERVICE_PATH = "/scene7/services/IpsApiService"
WSDL_DIR_PATH = "/scene7/webservice"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(wsdl|xsd)$")


def _xml_response(
    body: bytes, request: web.Request, auth: soap.Auth, status: int = 200
) -> web.Response:
    response = web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")
    if auth.gzip_response is not False and "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression(web.ContentCoding.gzip)
    return response


def _fault_response(fault: SoapFault, request: web.Request, auth: soap.Auth) -> web.Response:
    return _xml_response(soap.fault_reply(fault), request, auth, auth.fault_http_status or 500)


def _check_credentials(sim: Simulator, req: SoapRequest, request: web.Request) -> None:
    user, password = req.auth.user, req.auth.password
    header = request.headers.get("Authorization")
    if user is None and header:
        try:
            basic = aiohttp.BasicAuth.decode(header)
        except ValueError as exc:
            raise soap.authentication_fault(10001, "Invalid credentials") from exc
        user, password = basic.login, basic.password
    if user is None:
        raise soap.authentication_fault(10000, "No credentials")
    if sim.config.users.get(user) != password:
        raise soap.authentication_fault(10001, "Invalid credentials")


def _company(sim: Simulator, req: SoapRequest) -> str:
    company = req.params.get("companyHandle")
    if not company:
        raise soap.ipsapi_fault(30002, "companyHandle is required")
    if sim.world.company(company) is None:
        raise soap.authorization_fault(20000, f"Invalid company handle: {company}")
    return company


def _request_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise soap.ipsapi_fault(30001, f"not a dateTime: {text!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _log_end(sim: Simulator, log: SimJobLog) -> datetime:
    """A log's end as the reply shows it (milliseconds), so that window edges are exact."""
    return datetime.fromisoformat(sim.dates(log.end))


#: ``getJobLogs`` sort fields (Job Log Sort Fields) and what they sort by.
_LOG_SORT: dict[str, Callable[[SimJobLog], Any]] = {
    "StartDate": lambda g: g.start,
    "JobName": lambda g: g.job_name,
    "LogType": lambda g: g.kind.log_kind,
    "CompanyName": lambda g: g.company,
    "UserId": lambda g: g.user_email,
    "Email": lambda g: g.user_email,
    "FileErrorCount": lambda g: g.counts.error,
    "FileWarningCount": lambda g: g.counts.warning,
    "FileSuccessCount": lambda g: g.counts.success,
}


def _job_logs(
    sim: Simulator, logs: list[SimJobLog], p: dict[str, str], rows: int | None
) -> list[SimJobLog]:
    """``getJobLogs``: the window on end dates, the sort, ``numRows``."""
    start, end = _request_time(p.get("startDate")), _request_time(p.get("endDate"))
    if start is not None or end is not None:
        logs = [
            g
            for g in logs
            if (start is None or start <= _log_end(sim, g))
            and (end is None or _log_end(sim, g) <= end)
        ]
    key = _LOG_SORT.get(p.get("sortBy", "StartDate"))
    if key is None:
        raise soap.ipsapi_fault(30001, f"invalid sortBy: {p['sortBy']!r}")
    logs.sort(key=lambda g: (key(g), g.job_handle), reverse=p.get("sortDirection") == "Descending")
    return logs if rows is None else logs[: max(0, rows)]


def http_date(sim: Simulator) -> str:
    """The simulated clock as an HTTP ``Date`` (IPS's clock, as its replies carry it)."""
    now = (sim.epoch + timedelta(seconds=sim.clock.now())).astimezone(UTC)
    return email.utils.format_datetime(now, usegmt=True)


def _reply(sim: Simulator, req: SoapRequest, company: str) -> tuple[bytes, list[list[str]]]:
    """The reply body, and for getActiveJobs the ``[jobHandle, state]`` pairs it lists."""
    csim = sim.sync(company)
    assert csim is not None  # _company checked it exists
    p = req.params
    if req.operation == "getActiveJobs":
        jobs = list(csim.active.values())
        if "jobHandle" in p:
            jobs = [j for j in jobs if j.handle == p["jobHandle"]]
        if "originalName" in p:
            jobs = [j for j in jobs if j.original_name == p["originalName"]]
        items = [render.active_job_xml(j, csim.now, sim.dates, req.modern) for j in jobs]
        return render.active_jobs_reply(req.namespace, items), [[j.handle, j.state] for j in jobs]
    logs = list(csim.logs.values())
    if req.operation == "getJobLogs":
        logs = _job_logs(sim, logs, p, req.int_param("numRows"))
        return soap.job_logs_reply("getJobLogs", req.namespace, logs, sim.dates, details=False), []
    if "jobHandle" in p:
        logs = [csim.logs[p["jobHandle"]]] if p["jobHandle"] in csim.logs else []
    if "originalName" in p:
        logs = [g for g in logs if g.original_name == p["originalName"]]
    types = req.arrays.get("logTypeArray")
    return soap.job_logs_reply(
        "getJobLogDetails",
        req.namespace,
        logs,
        sim.dates,
        details=True,
        log_types=None if types is None else frozenset(types),
        per_page=min(max(1, req.int_param("recordsPerPage") or 1000), 1000),
        page=max(1, req.int_param("resultsPage") or 1),
    ), []


_INJECTED_FAULTS = {
    "auth_fault": lambda code: soap.authentication_fault(code or 10001, "Invalid credentials"),
    "authz_fault": lambda code: soap.authorization_fault(code or 20000, "Invalid company handle"),
    "ipsapi_fault": lambda code: soap.ipsapi_fault(code or 30000, "Internal server exception"),
}


async def handle_soap(request: web.Request) -> web.StreamResponse:
    """The IPS API endpoint."""
    sim = request.app[SIMULATOR]
    auth = soap.Auth()
    req: SoapRequest | None = None
    try:
        req = soap.parse_request(await request.read(), request.headers.get("SOAPAction"))
        auth = req.auth
        if not sim.accepting:
            sim.requests["refused"] += 1
            if req.operation == "getActiveJobs":
                sim.record(
                    "poll", company=req.params.get("companyHandle"), ok=False, fault="stopped"
                )
            return web.Response(
                status=503, text="IPS service stopped", headers={"Retry-After": "1"}
            )
        sim.requests[req.operation] += 1
        _check_credentials(sim, req, request)
        company = _company(sim, req)
    except SoapFault as fault:
        if not sim.accepting:  # a stopped service answers nothing, not even faults
            return web.Response(
                status=503, text="IPS service stopped", headers={"Retry-After": "1"}
            )
        sim.requests[fault.element] += 1
        if req is not None and req.operation == "getActiveJobs":
            company_handle = req.params.get("companyHandle")
            sim.record("poll", company=company_handle, ok=False, fault=fault.element)
        return _fault_response(fault, request, auth)
    return await _answer(sim, req, company, request)


async def _answer(
    sim: Simulator, req: SoapRequest, company: str, request: web.Request
) -> web.StreamResponse:
    decision = sim.decide(company, req.operation)
    if decision.latency_s and not await sim.sleep(decision.latency_s):
        return _drop(request)
    mode, rule = decision.mode, decision.rule
    is_poll = req.operation == "getActiveJobs"
    if mode is None:
        try:
            body, jobs = _reply(sim, req, company)
        except SoapFault as fault:  # a parameter IPS would refuse (a date, a sort field)
            return _fault_response(fault, request, req.auth)
        if is_poll:
            filtered = "jobHandle" in req.params or "originalName" in req.params
            extra = {"filtered": True} if filtered else {}
            sim.record("poll", company=company, ok=True, jobs=jobs, **extra)
            if not filtered:  # a whole, good answer: the scenario's clock of polls
                sim.polled(company, sim.clock.now())
        response = _xml_response(body, request, req.auth)
        if not is_poll:  # a job log reply: IPS's clock for the reconciliation window
            response.headers["Date"] = http_date(sim)
        return response
    assert rule is not None
    sim.requests[f"fault:{mode}"] += 1
    log.info("sim_fault_injected", company=company, operation=req.operation, mode=mode)
    if mode == "drip" and rule.body is None and rule.body_file is None:
        body, jobs = _reply(sim, req, company)
        if is_poll:  # the true job list, only slow: a client that waits for it sees the truth
            sim.record("poll", company=company, ok=True, jobs=jobs)
        return await _drip(sim, request, body, 200, "text/xml; charset=utf-8", rule)
    if is_poll:
        sim.record("poll", company=company, ok=False, fault=mode)
    if mode in SCRIPTED:
        return await _scripted(sim, request, rule)
    if mode in _INJECTED_FAULTS:
        return _fault_response(_INJECTED_FAULTS[mode](rule.code), request, req.auth)
    if mode == "http_500":
        return web.Response(
            status=500,
            text="<html><body>500 Internal Server Error</body></html>",
            content_type="text/html",
        )
    if mode == "http_503":
        return web.Response(
            status=503, text="Service Temporarily Unavailable", headers={"Retry-After": "5"}
        )
    if mode == "timeout":
        await sim.sleep(rule.timeout_s)
        return _drop(request)
    if mode == "drop_connection":
        return _drop(request)
    if mode == "empty_reply":
        return web.Response(status=200, body=b"", content_type="text/xml")
    body, _ = _reply(sim, req, company)
    if mode == "truncated":
        body = render.truncate(body)
    elif mode == "malformed_xml":
        body = render.malform(body)
    else:  # wrong_namespace
        body = render.wrong_namespace(body, req.namespace)
    return _xml_response(body, request, req.auth)


async def _scripted(sim: Simulator, request: web.Request, rule: FaultRule) -> web.StreamResponse:
    """The ``raw`` or ``drip`` reply of a rule carrying a scripted body."""
    try:
        # A body file can be megabytes: read it off the event loop serving the other companies.
        body = await asyncio.to_thread(rule.body_bytes) or b""
    except OSError as exc:
        return web.Response(status=500, text=f"simulator: cannot read body_file: {exc}")
    if rule.mode == "drip":
        return await _drip(sim, request, body, rule.status, rule.content_type, rule)
    return web.Response(status=rule.status, body=body, headers={"Content-Type": rule.content_type})


async def _drip(
    sim: Simulator,
    request: web.Request,
    body: bytes,
    status: int,
    content_type: str,
    rule: FaultRule,
) -> web.StreamResponse:
    """Send ``body`` in ``rule.chunk_bytes`` pieces spread evenly over ``rule.drip_s`` seconds."""
    response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    response.content_length = len(body)
    step = rule.chunk_bytes
    chunks = [body[i : i + step] for i in range(0, len(body), step)]
    pause = rule.drip_s / max(1, len(chunks))
    try:
        await response.prepare(request)
        for chunk in chunks:
            if not await sim.sleep(pause):
                _drop(request)  # shutting down
                return response
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        pass  # the client gave up waiting (its timeout): nothing left to send to
    return response


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer (aiohttp discards the returned response)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


async def handle_wsdl(request: web.Request) -> web.StreamResponse:
    """Serve the WSDL (address rewritten) or a schema file beside it."""
    sim = request.app[SIMULATOR]
    name = request.match_info["name"]
    wsdl_file = sim.config.wsdl_path or DEFAULT_WSDL
    if not _SAFE_NAME.match(name):
        raise web.HTTPNotFound()
    if name in (WSDL_NAME, wsdl_file.name):
        if not wsdl_file.is_file():
            raise web.HTTPNotFound(text=f"WSDL not found: {wsdl_file}")
        url = f"{request.scheme}://{request.host}{SERVICE_PATH}"
        return web.Response(body=sim.wsdl(url), content_type="text/xml", charset="utf-8")
    path = wsdl_file.parent / name
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type="text/xml", charset="utf-8")


async def _ticker(sim: Simulator, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        sim.sync()


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    sim = app[SIMULATOR]
    if sim.config.ground_truth_path is not None:
        sim.truth = GroundTruthWriter(sim.config.ground_truth_path)
    sim.clock.restart()
    tick = None
    if sim.config.tick_s is not None:
        tick = asyncio.create_task(_ticker(sim, sim.config.tick_s), name="simulator-tick")
    log.info(
        "sim_started",
        companies=len(sim.config.companies),
        seed=sim.config.seed,
        speedup=sim.config.speedup,
        epoch=sim.epoch.isoformat(),
    )
    try:
        yield
    finally:
        if tick is not None:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
        sim.sync()
        if sim.truth is not None:
            sim.truth.close()
        log.info("sim_stopped", requests=dict(sim.requests))


async def _on_shutdown(app: web.Application) -> None:
    # Wake handlers sleeping in latency/timeout faults so shutdown is not held up by them.
    app[SIMULATOR].closing.set()


def build_app(config: SimulatorConfig) -> web.Application:
    """The simulator as an aiohttp application (``app[SIMULATOR]`` is its state)."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[SIMULATOR] = Simulator(config)
    app.router.add_post(SERVICE_PATH, handle_soap)
    app.router.add_get(WSDL_DIR_PATH + "/{name}", handle_wsdl)
    add_control_routes(app)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_on_shutdown)
    return app


async def serve(
    config: SimulatorConfig, host: str, port: int, *, ready: Callable[[str], None] | None = None
) -> None:
    """Run the simulator until cancelled; ``ready(base_url)`` is called once it listens."""
    runner = web.AppRunner(build_app(config), shutdown_timeout=2.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        url_host = f"[{url_host}]" if ":" in url_host else url_host
        base_url = f"http://{url_host}:{bound_port}"
        log.info("sim_listening", url=base_url, service=base_url + SERVICE_PATH)
        if ready is not None:
            ready(base_url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
