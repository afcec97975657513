"""One company cycle as a value: settle a diff with its job-log answers, then build its records.

Pure: no I/O, no clock. The poller, the property tests and the benchmarks all call these two steps,
so the rule that decides what a cycle commits lives in one place:

1. :func:`streamer.diff.diff` gives events, the next state and the vanished jobs that await a job
   log (``pending_completion``).
2. The shell looks those job logs up (I/O) and hands the answers to :func:`settle`: a handle mapped
   to a :class:`~streamer.model.JobLog` or ``None`` was answered (found / not found or faulted, one
   of the bounded attempts); a handle left out was not answered at all (a transport error) and
   stays as it is, without spending an attempt. A log that names another job than the one asked for
   is not that job's log: it counts as "not found", never as an outcome. Completions and stalls
   carry the job's name, type and submitter from its tracked snapshot
   (:mod:`streamer.completion_context`); the messages of a completion's job log are attached
   later by the shell (:func:`streamer.completion_context.attach`).
3. :func:`cycle_records` turns the settled cycle into Kafka records, in a fixed order: events,
   checkpoint records of the changed jobs (sorted), tombstones of the completed jobs, the same
   checkpoint records and tombstones on the private checkpoint topic, then the optional heartbeat.
   The caller commits them in one transaction and only then advances state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from streamer.checkpoint import encode_checkpoint
from streamer.completion_context import completed_with_job, stalled_with_job
from streamer.diff import DiffResult, DiffSettings, complete
from streamer.encode import (
    DEFAULT_CONTRACT,
    Contract,
    Record,
    TopicNames,
    encode_event,
    encode_heartbeat,
    encode_tombstone,
)
from streamer.model import Heartbeat, JobEvent, JobLog, JobStalled, Snapshot, TrackedJob

__all__ = ["Settled", "cycle_records", "heartbeat_due", "owned", "settle"]


@dataclass(frozen=True, slots=True)
class Settled:
    """A cycle after its job-log answers: what to publish and the state to advance to."""

    #: Diff events first (in their order), then the completions (by job handle).
    events: tuple[JobEvent, ...]
    #: The state to advance to once the cycle's records are committed.
    state: dict[str, TrackedJob]
    #: Sorted handles whose checkpoint record must be rewritten.
    changed: tuple[str, ...]
    #: Sorted handles completed in this cycle (dropped from state, tombstoned).
    completed: tuple[str, ...]
    #: Vanished jobs still waiting for a final job log after this cycle.
    pending: tuple[str, ...]


def owned(snapshot: Snapshot, company: str) -> Snapshot:
    """``snapshot`` with every job attributed to ``company``, the company that was polled.

    A job belongs to the company whose ``getActiveJobs`` listed it. Should IPS ever put another
    ``companyHandle`` on a job, keeping it would file the job's checkpoint under that other
    company, and every restart would observe it again as new.
    """
    if snapshot.company_handle == company and all(
        j.company_handle == company for j in snapshot.jobs
    ):
        return snapshot
    jobs = tuple(
        j if j.company_handle == company else replace(j, company_handle=company)
        for j in snapshot.jobs
    )
    return Snapshot(company, jobs)


def settle(
    result: DiffResult,
    logs: Mapping[str, JobLog | None],
    now: datetime,
    settings: DiffSettings,
) -> Settled:
    """Fold the job-log answers for ``result.pending_completion`` into the diff's outcome."""
    state = dict(result.state)
    events = [
        stalled_with_job(e, state[e.job_handle].snapshot)
        if isinstance(e, JobStalled) and e.job_handle in state
        else e
        for e in result.events
    ]
    changed = set(result.changed)
    completed: list[str] = []
    pending: list[str] = []
    for handle in result.pending_completion:
        if handle not in logs:
            pending.append(handle)  # not answered: retry next cycle, no attempt spent
            continue
        log = logs[handle]
        if log is not None and log.job_handle != handle:
            log = None  # another job's log is no answer about this one
        event, tracked = complete(state[handle], log, now, settings)
        if event is not None:
            events.append(completed_with_job(event, state[handle].snapshot))
        if tracked is None:
            del state[handle]
            changed.discard(handle)
            completed.append(handle)
        else:
            pending.append(handle)
            if tracked is not state[handle]:
                state[handle] = tracked
                changed.add(handle)
    return Settled(
        tuple(events), state, tuple(sorted(changed)), tuple(sorted(completed)), tuple(pending)
    )


def cycle_records(
    settled: Settled,
    *,
    source: str,
    topics: TopicNames,
    heartbeat: Heartbeat | None = None,
    contract: Contract = DEFAULT_CONTRACT,
) -> list[Record]:
    """The records of one settled cycle, in commit order (see the module docstring)."""
    records = [
        encode_event(e, source=source, topics=topics, contract=contract) for e in settled.events
    ]
    state = settled.state
    latest = [
        encode_checkpoint(state[h], topics=topics, source=source, contract=contract)
        for h in settled.changed
    ]
    latest.extend(encode_tombstone(h, topics=topics) for h in settled.completed)
    records.extend(latest)
    # The same records again on the private checkpoint topic, which the publisher of the
    # company's shard writes to the shard's own partition (restorable per shard).
    records.extend(replace(r, topic=topics.checkpoint) for r in latest)
    if heartbeat is not None:
        records.append(encode_heartbeat(heartbeat, source=source, topics=topics, contract=contract))
    return records


def heartbeat_due(last: Heartbeat | None, beat: Heartbeat, every_s: float) -> bool:
    """Whether a cycle publishes its heartbeat ``beat``, given the ``last`` one committed.

    Every cycle when ``every_s`` is 0. Otherwise: the company's first heartbeat, every failed
    poll, any change of ``ok``, ``error`` or ``activeJobs`` since the last one, and then at
    least every ``every_s`` seconds of poll time while nothing changes.
    """
    if every_s <= 0 or last is None or not beat.ok:
        return True
    if (beat.ok, beat.error, beat.active_jobs) != (last.ok, last.error, last.active_jobs):
        return True
    return (beat.polled_at - last.polled_at).total_seconds() >= every_s
