"""Every record a company cycle commits fits Kafka's record limit, or becomes a dead letter.

* :meth:`RecordGuard.fit`: a job whose records would exceed ``kafka.max_record_bytes`` is cut to
  fit (:func:`streamer.limits.fit`, deterministic, flagged ``truncated``); each job is measured
  once, the reply cache's unchanged job objects are recognised by identity.
* :meth:`RecordGuard.within_limit` / :meth:`RecordGuard.dead_letters`: a record still too large,
  or one Kafka refused, is replaced by a ``record_rejected`` notification naming the job and the
  topic, so the rest of the cycle commits and nothing is lost silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from streamer.encode import DEFAULT_CONTRACT, Contract, Record, TopicNames, encode_notification
from streamer.kafka import Rejection
from streamer.limits import fit, job_record_bytes
from streamer.metrics import Metrics
from streamer.model import JobSnapshot, Snapshot

log = structlog.get_logger("streamer.poller")


class RecordGuard:
    """One company's record limit: cut jobs, dead-letter records (see the module docstring)."""

    def __init__(
        self,
        *,
        handle: str,
        limit: int,
        metrics: Metrics,
        source: str,
        topics: TopicNames,
        contract: Contract = DEFAULT_CONTRACT,
    ) -> None:
        self.handle = handle
        self._limit = limit
        self._metrics = metrics
        self._source = source
        self._topics = topics
        self._contract = contract
        # Per job handle: the last listed snapshot and what it was cut to (identity memo).
        self._fitted: dict[str, tuple[JobSnapshot, JobSnapshot]] = {}

    def fit(self, snapshot: Snapshot) -> Snapshot:
        """Cut jobs whose records would exceed the record limit (each job measured once)."""
        limit = self._limit
        memo, fitted = self._fitted, {}
        jobs: list[JobSnapshot] = []
        for job in snapshot.jobs:
            seen = memo.get(job.job_handle)
            if seen is not None and seen[0] is job:
                out = seen[1]
            else:
                out = fit(job, limit)
                if out is not job and (seen is None or not seen[1].truncated):
                    self._metrics.jobs_truncated.inc()
                    log.warning(
                        "job_truncated",
                        company=self.handle,
                        job=job.job_handle,
                        bytes=job_record_bytes(job),
                        limit=limit,
                    )
            fitted[job.job_handle] = (job, out)
            jobs.append(out)
        self._fitted = fitted
        if all(a is b for a, b in zip(jobs, snapshot.jobs, strict=True)):
            return snapshot
        return Snapshot(snapshot.company_handle, tuple(jobs))

    def within_limit(self, records: Sequence[Record], now: datetime) -> list[Record]:
        """Records above the record limit never reach Kafka: each becomes a dead letter."""
        limit = self._limit
        over = [
            Rejection(r.topic, r.key, f"{size} bytes, above kafka.max_record_bytes ({limit})")
            for r in records
            if (size := record_bytes(r)) > limit
        ]
        return self.dead_letters(records, over, now) if over else list(records)

    def dead_letters(
        self, records: Sequence[Record], rejections: Sequence[Rejection], now: datetime
    ) -> list[Record]:
        """``records`` with each refused one replaced by a ``record_rejected`` notification."""
        refused = {(r.topic, r.key): r for r in rejections}
        out: list[Record] = []
        for record in records:
            why = refused.get((record.topic, record.key))
            if why is None:
                out.append(record)
                continue
            # The key may be what is too large: name the job by an excerpt.
            job = (record.key or b"").decode(errors="replace")[:1000]
            self._metrics.records_rejected.labels(_reason(why.reason)).inc()
            log.error(
                "record_rejected",
                company=self.handle,
                topic=record.topic,
                job=job,
                error=why.reason,
            )
            out.append(
                encode_notification(
                    "record_rejected",
                    self.handle,
                    f"record of job {job} on {record.topic} not published: {why.reason}"[:1000],
                    now,
                    source=self._source,
                    topics=self._topics,
                    job=(record.topic, job),
                    contract=self._contract,
                )
            )
        return out


def record_bytes(record: Record) -> int:
    """What a record weighs on the wire, roughly: key, value and headers."""
    return (
        len(record.key or b"")
        + len(record.value or b"")
        + sum(len(k) + len(v) for k, v in record.headers)
    )


def _reason(reason: str) -> str:
    return "too_large" if "bytes" in reason or "TooLarge" in reason else "refused"
