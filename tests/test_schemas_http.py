"""The packaged JSON Schemas for consumers: served at /schemas/ by the daemon's HTTP server and
written out by ``streamer schemas export DIR`` (the running daemon's side is in
test_ops_http.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from streamer.cli import main
from streamer.encode import SCHEMA_IDS, load_schema, schema_files
from streamer.metrics import Metrics
from streamer.status import ServiceStatus
from streamer.web import build_web_app

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
#: Names that must not reach anything but a packaged schema file, raw on the wire.
TRAVERSALS = (
    "/schemas/../encode.py",
    "/schemas/..%2Fencode.py",
    "/schemas/..%2f..%2fpyproject.toml",
    "/schemas/%2e%2e/%2e%2e/pyproject.toml",
    "/schemas/%2e%2e%2f__init__.py",
    "/schemas/__init__.py",
    "/schemas/job.observed.v2.json%00.py",
    "/schemas/job.observed.v3.json",
    "/schemas/job.observed.v2.json/",
    "/schemas//etc/passwd",
    "/schemas/%2Fetc%2Fpasswd",
)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    """A test client of the operator app."""
    status = ServiceStatus(started_at=T0)
    app = build_web_app(status, Metrics(status), lambda: T0)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_index_lists_every_packaged_schema(client: TestClient[Any, Any]) -> None:
    """GET /schemas/ lists the v1 and v2 file of every type."""
    resp = await client.get("/schemas/")
    assert resp.status == 200
    names = (await resp.json())["schemas"]
    assert names == list(schema_files())
    assert {f"{kind}.v{v}.json" for kind in SCHEMA_IDS for v in (1, 2)} == set(names)


async def test_every_schema_is_served_as_schema_json(client: TestClient[Any, Any]) -> None:
    """GET /schemas/<file> serves each packaged schema as application/schema+json."""
    for name in schema_files():
        resp = await client.get(f"/schemas/{name}")
        assert resp.status == 200, name
        assert resp.content_type == "application/schema+json"
        kind, version = name.rsplit(".v", 1)
        served = json.loads(await resp.text())
        assert served == load_schema(kind, version=int(version.removesuffix(".json")))
        Draft202012Validator.check_schema(served)


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_unknown_names_and_path_traversal_are_404(
    client: TestClient[Any, Any], path: str
) -> None:
    """Only listed file names are served: other names and escapes from /schemas/ are 404."""
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 404, path


def test_export_writes_every_schema(tmp_path: Path) -> None:
    """`streamer schemas export DIR` writes every packaged schema into DIR (created)."""
    target = tmp_path / "out" / "schemas"
    result = CliRunner().invoke(main, ["schemas", "export", str(target)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == list(schema_files())
    for p in target.iterdir():
        kind, version = p.name.rsplit(".v", 1)
        assert json.loads(p.read_text()) == load_schema(
            kind, version=int(version.removesuffix(".json"))
        )
    assert f"wrote {len(schema_files())} schema files" in result.output
