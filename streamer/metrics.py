"""Prometheus metrics of the streamer, on a registry of its own.

What a scrape holds besides the streamer's own metrics: ``process_*`` (CPU, memory, open files,
start time), ``python_*`` (interpreter, garbage collector) and ``streamer_build_info``. Every
labelled counter has its label sets at 0 from the start, so ``increase(...)`` and alerts see a
failure kind before its first occurrence. No ``*_created`` series: they double the number of
series and no rule here reads them.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streamer.encode import SCHEMA_IDS
from streamer.status import ServiceStatus

#: Bounds in seconds; 0.1 and 0.25 are the poll-to-commit targets of the benchmarks, with bounds
#: around them so that a p99 near a target is read off the histogram, not guessed.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Process-wide in prometheus_client; this process exposes no other registry.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: ``kind`` of a failed poll: the ``kind`` of every IPS error (streamer/ips/errors.py, client.py,
#: envelope.py, decode.py) and ``internal_error`` (an error that escaped a cycle, poller.py).
POLL_FAILURE_KINDS = (
    "timeout",
    "connection",
    "tls",
    "http_4xx",
    "http_5xx",
    "http",
    "malformed",
    "namespace",
    "schema",
    "too_large",
    "fault",
    "fault_authentication",
    "fault_authorization",
    "fault_ipsapi",
    "wsdl",
    "request",
    "error",
    "internal_error",
)
#: ``result`` of a poll, a job log look-up; ``reason`` of a dead letter; ``type`` of an event.
POLL_RESULTS = ("ok", "failed")
JOB_LOG_RESULTS = ("found", "absent", "error", "fault")
#: ``result`` of a completion's job log message look-up (see streamer.log_details).
LOG_MESSAGE_RESULTS = ("ok", "absent", "error", "fault", "timeout", "skipped")
REJECT_REASONS = ("too_large", "refused")
EVENT_TYPES = tuple(t for t in SCHEMA_IDS if t.startswith("job.") and t != "job.latest")


def _version() -> str:
    try:
        return version("ips-job-streamer")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


class _StatusCollector(Collector):
    """Per-company gauges computed at scrape time from the live status."""

    def __init__(self, status: ServiceStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        since = GaugeMetricFamily(
            "streamer_seconds_since_last_successful_poll",
            "Seconds since the last successful getActiveJobs of a company "
            "(since start if none yet).",
            labels=["company"],
        )
        active = GaugeMetricFamily(
            "streamer_active_jobs", "Jobs in the last successful snapshot", labels=["company"]
        )
        failing = GaugeMetricFamily(
            "streamer_consecutive_poll_failures",
            "Failed polls in a row per company",
            labels=["company"],
        )
        since_poll = GaugeMetricFamily(
            "streamer_seconds_since_last_poll",
            "Seconds since the last getActiveJobs of a company, failed or not (since start if "
            "none yet).",
            labels=["company"],
        )
        interval = GaugeMetricFamily(
            "streamer_poll_interval_seconds",
            "Configured poll interval of a company (alert thresholds are multiples of it)",
            labels=["company"],
        )
        auth = GaugeMetricFamily(
            "streamer_authentication_failing",
            "1 while IPS refuses the company's credentials (polls wait poll.auth_backoff_s)",
            labels=["company"],
        )
        now = time.time()
        started = self._status.started_at.timestamp()
        for c in self._status.companies.values():
            ref = c.last_success_at.timestamp() if c.last_success_at else started
            since.add_metric([c.handle], max(0.0, now - ref))
            active.add_metric([c.handle], c.active_jobs)
            failing.add_metric([c.handle], c.consecutive_failures)
            polled = c.last_poll_at.timestamp() if c.last_poll_at else started
            since_poll.add_metric([c.handle], max(0.0, now - polled))
            interval.add_metric([c.handle], c.interval_s)
            auth.add_metric([c.handle], 1.0 if c.state == "auth_failed" else 0.0)
        tracked = GaugeMetricFamily("streamer_jobs_tracked", "Jobs held in streamer state")
        tracked.add_metric([], sum(c.tracked_jobs for c in self._status.companies.values()))
        ready = GaugeMetricFamily("streamer_ready", "1 while /readyz answers 200")
        ready.add_metric([], 1.0 if self._status.readiness(datetime.now(UTC))[0] else 0.0)
        committed = self._status.last_commit_at
        since_commit = GaugeMetricFamily(
            "streamer_seconds_since_last_commit",
            "Seconds since the last committed Kafka transaction (since start if none yet)",
        )
        since_commit.add_metric(
            [], max(0.0, now - (committed.timestamp() if committed else started))
        )
        yield from (
            since,
            active,
            failing,
            since_poll,
            interval,
            auth,
            tracked,
            ready,
            since_commit,
        )


class Metrics:
    """All metrics the service updates."""

    def __init__(self, status: ServiceStatus) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.poll_latency = Histogram(
            "streamer_poll_latency_seconds",
            "getActiveJobs round trip, decode included",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.polls = Counter("streamer_polls", "Polls by result", ["result"], registry=r)
        self.poll_failures = Counter(
            "streamer_poll_failures", "Failed polls by kind", ["kind"], registry=r
        )
        self.events = Counter("streamer_events", "Events committed by type", ["type"], registry=r)
        self.commit_latency = Histogram(
            "streamer_commit_latency_seconds",
            "Kafka transaction duration (begin to commit)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.poll_to_commit = Histogram(
            "streamer_poll_to_commit_seconds",
            "From sending getActiveJobs to the cycle's transaction commit (to the cycle's end "
            "when it had nothing to commit)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commits = Counter("streamer_commits", "Committed transactions", registry=r)
        self.records = Counter("streamer_records", "Records committed", registry=r)
        self.commit_failures = Counter(
            "streamer_commit_failures", "Failed Kafka transactions", registry=r
        )
        self.job_log_lookups = Counter(
            "streamer_job_log_lookups", "getJobLogDetails calls by result", ["result"], registry=r
        )
        self.log_message_lookups = Counter(
            "streamer_log_message_lookups",
            "Job log message look-ups of completions (getJobLogDetails by log type) by result",
            ["result"],
            registry=r,
        )
        self.jobs_truncated = Counter(
            "streamer_jobs_truncated",
            "Jobs cut to fit kafka.max_record_bytes (each time a cut job changes)",
            registry=r,
        )
        self.records_rejected = Counter(
            "streamer_records_rejected",
            "Records that could not be published and went to the dead-letter notification",
            ["reason"],
            registry=r,
        )
        self.cycles_late = Counter(
            "streamer_cycles_behind_schedule",
            "Cycles that started later than one interval after the previous one was due",
            registry=r,
        )
        self.shards_owned = Gauge("streamer_shards_owned", "Shards this instance owns", registry=r)
        self.rebalances = Counter(
            "streamer_rebalances", "Shard assignments received from the group", registry=r
        )
        self.takeovers = Histogram(
            "streamer_shard_takeover_seconds",
            "From taking a shard (producer start, fencing) to its companies polling",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.shard_step_downs = Counter(
            "streamer_shard_step_downs",
            "Shards given up because another instance fenced their producer",
            registry=r,
        )
        self.reconcile_passes = Counter(
            "streamer_reconcile_passes",
            "Job log reconciliation passes by result (complete, partial, failed)",
            ["result"],
            registry=r,
        )
        self.reconcile_failures = Counter(
            "streamer_reconcile_failures",
            "Job log reconciliation passes that failed, by kind",
            ["kind"],
            registry=r,
        )
        self.reconciled_jobs = Counter(
            "streamer_reconciled_jobs",
            "Finished jobs no committed poll saw, completed from the job log listing",
            registry=r,
        )
        self.info = Gauge("streamer_up", "1 while the service runs", registry=r)
        self.build = Info("streamer_build", "Version of the streamer and of Python", registry=r)
        self.build.info({"version": _version(), "python": platform.python_version()})
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        r.register(_StatusCollector(status))
        # Every label set exists from the start: a counter reads 0 before its first failure.
        # The children updated every cycle are bound once: labels() takes a lock and a lookup.
        self.polls_ok = self.polls.labels("ok")
        self.polls_failed = self.polls.labels("failed")
        self.events_by_type = {event: self.events.labels(event) for event in EVENT_TYPES}
        for result in POLL_RESULTS:
            self.polls.labels(result)
        for kind in POLL_FAILURE_KINDS:
            self.poll_failures.labels(kind)
        for event in EVENT_TYPES:
            self.events.labels(event)
        for result in JOB_LOG_RESULTS:
            self.job_log_lookups.labels(result)
        for result in LOG_MESSAGE_RESULTS:
            self.log_message_lookups.labels(result)
        for reason in REJECT_REASONS:
            self.records_rejected.labels(reason)
