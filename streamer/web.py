"""HTTP endpoints for operators: /healthz, /readyz, /metrics, /status (aiohttp)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamer.metrics import Metrics
from streamer.status import ServiceStatus


def build_web_app(
    status: ServiceStatus,
    metrics: Metrics,
    clock: Callable[[], datetime],
    config_view: dict[str, object] | None = None,
) -> web.Application:
    """The operator app. Reads the status; never changes it."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(_: web.Request) -> web.Response:
        ready, reasons = status.readiness(clock())
        body = "ready\n" if ready else "not ready\n" + "".join(f"- {r}\n" for r in reasons)
        return web.Response(text=body, status=200 if ready else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        payload = generate_latest(metrics.registry)
        return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status_view(_: web.Request) -> web.Response:
        doc = status.as_json(clock())
        if config_view is not None:
            doc["config"] = config_view
        return web.json_response(doc)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/status", status_view)
    return app
