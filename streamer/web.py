"""HTTP endpoints: /healthz, /readyz, /metrics, /status for operators, /schemas/ for consumers
(aiohttp).

``GET /schemas/`` lists the packaged JSON Schemas (every contract version), ``GET /schemas/<file>``
serves one as ``application/schema+json``: the default ``ce_dataschema`` of every record points
here. Only listed file names are served; anything else is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamer.encode import schema_files, schema_text
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

    async def schema_index(_: web.Request) -> web.Response:
        return web.json_response({"schemas": list(schema_files())})

    async def schema_view(request: web.Request) -> web.Response:
        text = schema_text(request.match_info["name"])
        if text is None:
            raise web.HTTPNotFound(text="no such schema\n")
        return web.Response(
            text=text,
            content_type="application/schema+json",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/status", status_view)
    app.router.add_get("/schemas/", schema_index)
    app.router.add_get("/schemas/{name}", schema_view)
    return app
