"""Prometheus metrics of the streamer, on a registry of its own (no global state)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streamer.status import ServiceStatus

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
        now = time.time()
        for c in self._status.companies.values():
            ref = c.last_success_at or self._status.started_at
            since.add_metric([c.handle], max(0.0, now - ref.timestamp()))
            active.add_metric([c.handle], c.active_jobs)
            failing.add_metric([c.handle], c.consecutive_failures)
        tracked = GaugeMetricFamily("streamer_jobs_tracked", "Jobs held in streamer state")
        tracked.add_metric([], sum(c.tracked_jobs for c in self._status.companies.values()))
        ready = GaugeMetricFamily("streamer_ready", "1 while /readyz answers 200")
        ready.add_metric([], 1.0 if self._status.readiness(datetime.now(UTC))[0] else 0.0)
        yield from (since, active, failing, tracked, ready)


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
            "From sending getActiveJobs to the cycle's transaction commit",
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
        r.register(_StatusCollector(status))
