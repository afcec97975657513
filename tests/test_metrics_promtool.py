"""Prometheus' own checker on the monitoring kit: ``promtool check metrics`` on a scrape,
``promtool check rules`` and ``promtool test rules`` on deploy/alerts.yml, and every query of
the Grafana dashboard parsed by promtool as a recording rule.

promtool comes from Debian's ``prometheus`` package (``make tools`` extracts the binary; ``make
test`` runs it first and passes ``PROMTOOL``). These tests skip only when no promtool can be
found: ``$PROMTOOL``, ``promtool`` on the PATH, or ``<cache>/tools/promtool``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from streamer.metrics import Metrics
from streamer.status import CompanyStatus, ServiceStatus

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool executable, or a skip when none can be found."""
    cache = Path(os.environ.get("STREAMER_CACHE_DIR") or ROOT / ".cache").absolute()
    for candidate in (
        os.environ.get("PROMTOOL"),
        shutil.which("promtool"),
        str(cache / "tools" / "promtool"),
    ):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("promtool not found: `make tools` extracts it from Debian's prometheus package")


def run(promtool: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS``, output captured."""
    return subprocess.run(
        [promtool, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def busy_scrape() -> str:
    """A scrape after some activity: histograms with observations, counters moved."""
    status = ServiceStatus(started_at=datetime.now(UTC))
    for handle in ("c|1001", "c|1002"):
        status.companies[handle] = CompanyStatus(handle, 5.0)
    metrics = Metrics(status)
    metrics.poll_latency.observe(0.08)
    metrics.commit_latency.observe(0.01)
    metrics.poll_to_commit.observe(0.2)
    metrics.takeovers.observe(0.5)
    metrics.polls.labels("ok").inc()
    metrics.poll_failures.labels("timeout").inc()
    metrics.events.labels("job.observed").inc(3)
    metrics.commits.inc()
    metrics.shards_owned.set(32)
    metrics.info.set(1)
    return generate_latest(metrics.registry).decode()


def test_promtool_check_metrics_accepts_a_scrape(promtool: str) -> None:
    """``promtool check metrics`` finds no problem in what /metrics serves."""
    result = run(promtool, "check", "metrics", stdin=busy_scrape())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # no lint findings either


def test_promtool_check_rules_accepts_the_alert_rules(promtool: str) -> None:
    """``promtool check rules deploy/alerts.yml`` succeeds."""
    result = run(promtool, "check", "rules", str(DEPLOY / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_alert_rules_pass(promtool: str) -> None:
    """``promtool test rules deploy/alerts.test.yml``: every alert fires on its series, with the
    labels and texts expected, and stays quiet on healthy ones."""
    result = run(promtool, "test", "rules", str(DEPLOY / "alerts.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "alerts.test.yml").read_text()))
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"][0]["rules"]
    assert tested == {r["alert"] for r in rules}  # every alert has a test


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each dashboard query, with Grafana's variables filled in, parses as PromQL (promtool
    checks it as the expression of a recording rule)."""
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    filled = [
        e.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$company", ".*")
        for e in exprs
    ]
    assert not any("$" in e for e in filled), filled
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(filled)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
