"""What is streamed: the ``[filter]`` rules of one company, applied to snapshots, events and logs.

Pure: no I/O, no clock; stdlib and :mod:`streamer.model` only. Semantics (the README's
"Filters" section says the same for operators):

* **Job type** (``job_types``: the types streamed, empty = all; ``exclude_job_types``: never
  streamed, wins over ``job_types``). A job whose ``ActiveJob/type`` is filtered out is invisible:
  :func:`screen` takes it out of the snapshot before the diff, so it is never tracked and gets no
  event, no checkpoint record and no completion. A job tracked before its type was filtered out
  (the filter changed across a restart) is forgotten: dropped from the state and its checkpoint
  records tombstoned, without a completion.
* **Job logs** (reconciliation, ``getJobLogs``): a ``JobLog`` carries no job type, only its
  ``logType`` (``Begin<kind>`` / ``End<kind>``). :func:`log_job_types` maps the documented kinds
  to the job types that write them (``Upload`` is written by both ``UrlUpload`` and
  ``UploadFromServerDirectory``). Under a type filter a log is reconciled only if its kind is
  known and *every* type it may belong to is streamed: a filtered job must never appear, so a kind
  shared by a streamed and a filtered type, or a kind the table does not know (an undocumented job
  type's), is not reconciled. Such jobs are still completed when a poll saw them; only jobs no
  poll saw (shorter than a poll, or ended while the streamer was down) go unreported.
* **States** (``states``, empty = all) filters the state events while the job stays tracked, so
  its completion is still right: ``job.observed`` is published when the state it was first seen
  in is listed, ``job.state_changed`` when its target state is listed. ``job.completed``,
  ``job.stalled`` and ``job.recovered`` are never filtered by state.
* **Progress** (``progress = false``) turns ``job.progress`` off entirely.
* Filtered events leave no hole in a job's sequence: :func:`publishable` renumbers the events it
  keeps and the tracked sequence with them, so ``ce_sequence`` stays 1, 2, 3, ... per job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from streamer.model import (
    JobEvent,
    JobLog,
    JobObserved,
    JobProgress,
    JobState,
    JobStateChanged,
    Snapshot,
    TrackedJob,
)

__all__ = [
    "DOCUMENTED_JOB_TYPES",
    "JOB_STATES",
    "JobFilter",
    "Screened",
    "describe",
    "log_job_types",
    "publishable",
    "screen",
]

#: ``ActiveJob/type`` constants IPS documents (``ips-api.md`` section 4.4); IPS sends others too.
DOCUMENTED_JOB_TYPES: tuple[str, ...] = (
    "ImageServingPublish",
    "ImageRenderingPublish",
    "ServerDirectoryPublish",
    "ServerDirectoryPublishWithTemplate",
    "VideoPublish",
    "UploadFromServerDirectory",
    "UrlUpload",
    "MetadataUpload",
    "ImageOptimization",
    "Cleanup",
)

#: ``ActiveJob/state`` constants IPS documents.
JOB_STATES: tuple[str, ...] = tuple(s.value for s in JobState)

#: Job log kinds (``Begin<kind>`` / ``End<kind>``) and the job types known to write them. The
#: Job Log Types page lists Begin/End pairs per kind; which job types share a kind is inferred
#: (an upload job of any source logs ``Upload``; ``UploadUrls`` is the URL upload's own).
_LOG_KIND_TYPES: Mapping[str, frozenset[str]] = {
    "ImageServingPublish": frozenset({"ImageServingPublish"}),
    "ImageRenderingPublish": frozenset({"ImageRenderingPublish"}),
    "VideoPublish": frozenset({"VideoPublish"}),
    "ServerDirectoryPublish": frozenset(
        {"ServerDirectoryPublish", "ServerDirectoryPublishWithTemplate"}
    ),
    "Upload": frozenset({"UrlUpload", "UploadFromServerDirectory"}),
    "UploadUrls": frozenset({"UrlUpload"}),
    "Reoptimize": frozenset({"ImageOptimization"}),
}


def log_job_types(log_type: str) -> frozenset[str] | None:
    """The job types a job log of ``log_type`` may belong to; None for a kind not known.

    ``EndUpload`` → ``{"UrlUpload", "UploadFromServerDirectory"}``; ``EndReprocess`` (an
    undocumented job type's) and log types without a ``Begin``/``End`` prefix → None.
    """
    for prefix in ("Begin", "End"):
        if log_type.startswith(prefix):
            return _LOG_KIND_TYPES.get(log_type[len(prefix) :])
    return None


@dataclass(frozen=True, slots=True)
class JobFilter:
    """One company's effective filter; the default streams everything."""

    #: Job types streamed; empty = every type.
    job_types: frozenset[str] = frozenset()
    #: Job types never streamed (wins over ``job_types``).
    exclude_job_types: frozenset[str] = frozenset()
    #: States whose ``job.observed`` / ``job.state_changed`` are published; empty = every state.
    states: frozenset[str] = frozenset()
    #: False turns ``job.progress`` off.
    progress: bool = True

    @property
    def streams_every_type(self) -> bool:
        """Whether no job is filtered out by its type."""
        return not self.job_types and not self.exclude_job_types

    @property
    def streams_every_event(self) -> bool:
        """Whether no event of a streamed job is filtered out."""
        return not self.states and self.progress

    def streams_type(self, job_type: str) -> bool:
        """Whether jobs of ``job_type`` are streamed."""
        if job_type in self.exclude_job_types:
            return False
        return not self.job_types or job_type in self.job_types

    def streams_log(self, log: JobLog) -> bool:
        """Whether a listed job log may be reconciled: no type filter, or its kind is known and
        every type it may belong to is streamed."""
        if self.streams_every_type:
            return True
        types = log_job_types(log.log_type)
        return types is not None and all(self.streams_type(t) for t in types)

    def streams_event(self, event: JobEvent) -> bool:
        """Whether an event of a streamed job is published."""
        if isinstance(event, JobProgress):
            return self.progress
        if not self.states:
            return True
        if isinstance(event, JobStateChanged):
            return event.to_state in self.states
        if isinstance(event, JobObserved):
            return event.snapshot.status.state in self.states
        return True

    def logs(self, logs: Sequence[JobLog]) -> tuple[JobLog, ...]:
        """The job logs that may be reconciled (the same tuple when all may)."""
        kept = tuple(log for log in logs if self.streams_log(log))
        return kept if len(kept) != len(logs) else tuple(logs)


@dataclass(frozen=True, slots=True)
class Screened:
    """A snapshot and a state with the filtered job types taken out."""

    snapshot: Snapshot
    #: The state to diff against (tracked jobs of filtered types left out).
    state: dict[str, TrackedJob]
    #: Sorted handles of tracked jobs whose type is now filtered out: tombstone their records.
    forgotten: tuple[str, ...]
    #: How many listed jobs the filter took out.
    filtered_out: int = 0


def screen(flt: JobFilter, snapshot: Snapshot, state: dict[str, TrackedJob]) -> Screened:
    """Take the jobs of filtered types out of ``snapshot`` and ``state`` (see module docstring).

    With nothing to take out, the snapshot and state objects are returned as they are.
    """
    if flt.streams_every_type:
        return Screened(snapshot, state, ())
    decided: dict[str, bool] = {}

    def streamed(job_type: str) -> bool:
        known = decided.get(job_type)
        if known is None:
            known = decided[job_type] = flt.streams_type(job_type)
        return known

    jobs = tuple(j for j in snapshot.jobs if streamed(j.type))
    forgotten = tuple(sorted(h for h, t in state.items() if not streamed(t.snapshot.type)))
    out_snapshot = snapshot if len(jobs) == len(snapshot.jobs) else replace(snapshot, jobs=jobs)
    if forgotten:
        gone = set(forgotten)
        state = {h: t for h, t in state.items() if h not in gone}
    return Screened(out_snapshot, state, forgotten, len(snapshot.jobs) - len(jobs))


def publishable(
    flt: JobFilter, events: Sequence[JobEvent], state: dict[str, TrackedJob]
) -> tuple[tuple[JobEvent, ...], dict[str, TrackedJob]]:
    """The events ``flt`` publishes, renumbered without holes, and the state that matches them.

    ``events`` are one cycle's events, each job's numbered on from its tracked sequence; a
    job's kept events take the numbers of the dropped ones, and its tracked ``sequence`` (the
    last number published) goes down by as many as were dropped. Deterministic: the same
    cycle always gives the same ids. With nothing dropped, ``state`` itself is returned.
    """
    if flt.streams_every_event:
        return tuple(events), state
    dropped: dict[str, int] = {}
    kept: list[JobEvent] = []
    for event in events:
        handle = event.job_handle
        if not flt.streams_event(event):
            dropped[handle] = dropped.get(handle, 0) + 1
            continue
        shift = dropped.get(handle, 0)
        kept.append(replace(event, sequence=event.sequence - shift) if shift else event)
    if not dropped:
        return tuple(kept), state
    out = dict(state)
    for handle, n in dropped.items():
        tracked = out.get(handle)
        if tracked is not None:
            out[handle] = replace(tracked, sequence=tracked.sequence - n)
    return tuple(kept), out


def describe(flt: JobFilter) -> str:
    """One line for ``streamer check``: what ``flt`` streams, unknown names flagged."""

    def names(values: Iterable[str], known: Sequence[str], what: str) -> str:
        return ", ".join(
            v if v in known else f"{v} (not a documented IPS {what})" for v in sorted(values)
        )

    types_doc = DOCUMENTED_JOB_TYPES
    types = "only " + names(flt.job_types, types_doc, "job type") if flt.job_types else "all"
    if flt.exclude_job_types:
        types += " except " + names(flt.exclude_job_types, types_doc, "job type")
    states = "all" if not flt.states else "only " + names(flt.states, JOB_STATES, "state")
    progress = "on" if flt.progress else "off"
    return f"job types {types}; state events {states}; job.progress {progress}"
