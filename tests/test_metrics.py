"""What ``/metrics`` exposes from the first scrape: process and build information, every label
set of the labelled counters at 0, the per-company gauges the alert rules read, no ``_created``
series; and the README lists every metric.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamer.metrics import POLL_FAILURE_KINDS, Metrics
from streamer.model import EVENT_TYPES
from streamer.poller import INTERNAL_ERROR
from streamer.status import CompanyStatus, ServiceStatus

ROOT = Path(__file__).resolve().parents[1]


def fresh(*companies: str) -> tuple[ServiceStatus, Metrics]:
    """A status with ``companies`` (5 s interval) and its metrics, nothing happened yet."""
    status = ServiceStatus(started_at=datetime.now(UTC) - timedelta(seconds=30))
    for handle in companies:
        status.companies[handle] = CompanyStatus(handle, 5.0)
    return status, Metrics(status)


def scrape(metrics: Metrics) -> str:
    """The text a scrape of ``/metrics`` returns."""
    return generate_latest(metrics.registry).decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_first_scrape_has_process_and_build_info_and_no_created_series() -> None:
    """process_* and streamer_build_info{version} are there; no *_created series at all."""
    _, metrics = fresh("c|1001")
    text = scrape(metrics)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert re.search(rf"^{name}(\{{| )", text, re.M), name
    assert re.search(r'^streamer_build_info\{.*version="[^"]+".*\} 1\.0$', text, re.M)
    assert "_created" not in text


def test_labelled_counters_exist_at_zero_before_their_first_increment() -> None:
    """Every failure kind, poll result, event type, job-log result and dead-letter reason has its
    series at 0 in the first scrape."""
    _, metrics = fresh()
    got = samples(scrape(metrics))
    expected = (
        [("streamer_poll_failures_total", "kind", k) for k in POLL_FAILURE_KINDS]
        + [("streamer_polls_total", "result", r) for r in ("ok", "failed")]
        + [("streamer_events_total", "type", t) for t in EVENT_TYPES.values()]
        + [("streamer_job_log_lookups_total", "result", r) for r in ("found", "absent")]
        + [("streamer_records_rejected_total", "reason", r) for r in ("too_large", "refused")]
    )
    for name, label, value in expected:
        assert got.get((name, frozenset({(label, value)}))) == 0.0, (name, value)


def test_every_failure_kind_the_code_can_raise_is_initialised() -> None:
    """Each ``kind`` an IPS error or the poller can give a failed poll is in POLL_FAILURE_KINDS,
    so an alert on a kind works before that kind first happens."""
    found = {INTERNAL_ERROR}
    for path in (ROOT / "streamer" / "ips").glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'\bkind\s*[=:]\s*(?:str\s*=\s*)?"([a-z0-9_]+)"', text))
        found |= set(re.findall(r'"(http(?:_[45]xx)?)"', text))
    assert {"timeout", "fault_authentication", "http_5xx", "too_large"} <= found  # the scan works
    assert found <= set(POLL_FAILURE_KINDS), found - set(POLL_FAILURE_KINDS)


def test_company_gauges_for_the_alert_rules() -> None:
    """Per company: the interval, seconds since the last poll (any outcome) and whether IPS
    refuses its credentials; service-wide: seconds since the last commit."""
    status, metrics = fresh("c|1001", "c|1002")
    now = datetime.now(UTC)
    status.companies["c|1001"].last_poll_at = now - timedelta(seconds=100)
    status.companies["c|1002"].last_poll_at = now
    status.companies["c|1002"].state = "auth_failed"
    status.last_commit_at = now - timedelta(seconds=50)
    got = samples(scrape(metrics))

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert value("streamer_poll_interval_seconds", company="c|1001") == 5.0
    assert 100 <= value("streamer_seconds_since_last_poll", company="c|1001") < 160
    assert value("streamer_seconds_since_last_poll", company="c|1002") < 60
    assert value("streamer_authentication_failing", company="c|1001") == 0.0
    assert value("streamer_authentication_failing", company="c|1002") == 1.0
    assert 50 <= value("streamer_seconds_since_last_commit") < 110
    # Never polled: counted from the start (30 s ago).
    assert 30 <= value("streamer_seconds_since_last_successful_poll", company="c|1001") < 90


def test_readme_lists_every_streamer_metric() -> None:
    """Each streamer_* metric family of a scrape is named in the README's metrics list."""
    _, metrics = fresh("c|1001")
    families = {f.name for f in text_string_to_metric_families(scrape(metrics))}
    ours = {f for f in families if f.startswith("streamer_")}
    assert len(ours) > 20
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"`(streamer_[a-z_]+)", readme))
    # Counters are listed with their _total suffix, which the parser strips from family names.
    missing = {f for f in ours if f not in listed and f + "_total" not in listed}
    assert not missing, sorted(missing)
