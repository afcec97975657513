"""Frozen value types shared by every layer: job snapshots, job logs, outcomes and events.

Rules of this module:

* stdlib only, no I/O, no clock;
* every value is a frozen, slotted dataclass, so it can be hashed, compared and shared freely;
* strings that IPS defines as open-ended (``state``, ``type``, ``taskState``) stay ``str``: an
  unknown value is kept, never dropped or coerced; the known constants live in :class:`JobState`;
* empty XML elements are normalised to ``""`` for required strings, ``None`` for optional ones;
* every ``datetime`` is timezone-aware.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

#: A sub-job definition as a generic frozen XML tree: ``((child_name, value), ...)`` in document
#: order, where ``value`` is the element's text for a leaf or a nested tree for a complex element.
#: Repeated elements (``items``) repeat their name. Leaf text is kept in its XML lexical form
#: (``"true"``, ``"42"``): the sub-job schemas are large and nothing downstream computes on them.
XmlTree: TypeAlias = tuple[tuple[str, "str | XmlTree"], ...]


class JobState(enum.StrEnum):
    """Documented ``ActiveJob/state`` constants (others IPS sends are kept as plain str)."""

    UNKNOWN = "Unknown"
    NEW = "New"
    WAITING_CLIENT = "WaitingClient"
    WAITING_COORDINATOR = "WaitingCoordinator"
    RUNNING = "Running"
    STOPPING = "Stopping"
    DONE = "Done"


#: The 14 optional sub-job elements of ``ActiveJob`` in schema order (2014-04-03).
SUB_JOB_ELEMENTS: tuple[str, ...] = (
    "imageServingPublishJob",
    "imageRenderingPublishJob",
    "videoPublishJob",
    "serverDirectoryPublishJob",
    "metadataPublishJob",
    "uploadDirectoryJob",
    "uploadUrlsJob",
    "uploadPostJob",
    "optimizeImagesJob",
    "ripPdfsJob",
    "reprocessAssetsJob",
    "createVideoSitemapJob",
    "exportJob",
    "automatedSetGenerationJob",
)


@dataclass(frozen=True, slots=True)
class TaskItemProgress:
    """``TaskItemProgress``: progress of one item inside a task."""

    item_name: str
    progress: float
    progress_message: str
    last_progress_update: datetime


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """``TaskProgress``: progress of one task of a job (``progress`` is 0.0-1.0)."""

    task_type: str
    task_state: str
    num_processed: int
    num_processing: int
    num_pending: int
    progress: float
    progress_message: str
    last_progress_update: datetime
    items: tuple[TaskItemProgress, ...] = ()


@dataclass(frozen=True, slots=True)
class SubJob:
    """The one sub-job element present on an ``ActiveJob`` (its definition), by element name."""

    element: str
    fields: XmlTree = ()


@dataclass(frozen=True, slots=True)
class JobStatus:
    """The fields of a job that move while it runs; what the diff compares."""

    state: str
    progress: int
    progress_message: str
    last_progress_update: datetime
    total_size: int
    task_progress: tuple[TaskProgress, ...] = ()


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """One ``ActiveJob`` of a ``getActiveJobs`` reply, normalised (every 2014-04-03 field)."""

    company_handle: str
    job_handle: str
    name: str
    original_name: str
    type: str
    submit_user_email: str
    locale: str | None
    description: str | None
    server_name: str
    start_date: datetime
    #: ``triggerTime`` exists only from 2014-04-03 on; ``None`` when talking to older WSDLs.
    trigger_time: datetime | None
    status: JobStatus
    sub_job: SubJob | None = None
    #: True when the streamer cut fields so that the job's records fit Kafka's record limit
    #: (see :mod:`streamer.limits`); the cut is deterministic, so the same reply cuts the same.
    truncated: bool = False

    @property
    def state(self) -> str:
        """Shortcut for ``status.state``."""
        return self.status.state


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A complete, successfully parsed ``getActiveJobs`` reply for one company."""

    company_handle: str
    jobs: tuple[JobSnapshot, ...]


@dataclass(frozen=True, slots=True)
class JobLog:
    """``JobLog`` as returned by ``getJobLogDetails`` (details reduced to their log types)."""

    company_handle: str
    job_handle: str
    job_name: str
    original_job_name: str
    log_type: str
    start_date: datetime | None
    end_date: datetime | None
    file_success_count: int
    file_error_count: int
    file_warning_count: int
    file_duplicate_count: int
    file_update_count: int
    total_file_count: int
    transfer_success_count: int
    transfer_error_count: int
    transfer_warning_count: int
    fatal_error: bool
    detail_log_types: tuple[str, ...] = ()
    #: ``submitUserEmail`` of the log ("" when empty): who submitted the job.
    submit_user_email: str = ""


@dataclass(frozen=True, slots=True)
class JobLogDetail:
    """One ``JobLogDetail`` row of a job log, as ``getJobLogDetails`` returns it."""

    log_type: str
    message: str
    #: ``dateCreated`` (2014-04-03 on); None before.
    created_at: datetime | None = None
    asset_name: str | None = None
    asset_type: str | None = None


@dataclass(frozen=True, slots=True)
class JobLogDetailPage:
    """One page of a job's detail rows (``getJobLogDetails`` with paging and a type filter)."""

    job_handle: str
    details: tuple[JobLogDetail, ...]
    #: ``detailTotalRows``: rows matching the request across all pages; None when not sent.
    total_rows: int | None = None


@dataclass(frozen=True, slots=True)
class LogMessage:
    """One error or warning message of a job log, as ``job.completed`` carries it."""

    message: str
    log_type: str
    asset_name: str | None = None
    asset_type: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogMessages:
    """The first error and warning messages of a finished job's log, with their totals."""

    errors: tuple[LogMessage, ...] = ()
    warnings: tuple[LogMessage, ...] = ()
    error_total: int = 0
    warning_total: int = 0


class Outcome(enum.StrEnum):
    """How a job ended, classified from its job log (``ips-api.md`` section 5.4)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    COMPLETED_WITH_WARNINGS = "completed_with_warnings"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """The job log counts carried by ``job.completed``."""

    file_success: int = 0
    file_error: int = 0
    file_warning: int = 0
    file_duplicate: int = 0
    file_update: int = 0
    total_file: int = 0
    transfer_success: int = 0
    transfer_error: int = 0
    transfer_warning: int = 0


# --------------------------------------------------------------------------------------------
# Events: a closed union. Every event names its job, its per-job sequence and when it was seen.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventBase:
    """Fields every job event carries."""

    company_handle: str
    job_handle: str
    sequence: int
    observed_at: datetime

    @property
    def event_id(self) -> str:
        """Deterministic id: regenerated identically after a crash before commit."""
        return f"{self.job_handle}:{self.sequence}"


@dataclass(frozen=True, slots=True)
class JobObserved(EventBase):
    """``job.observed``: the job appeared in a snapshot for the first time."""

    snapshot: JobSnapshot
    #: True when the job was already past ``New`` when first seen: earlier states were missed.
    seen_after_start: bool = False


@dataclass(frozen=True, slots=True)
class JobStateChanged(EventBase):
    """``job.state_changed``: ``state`` moved from ``from_state`` to ``to_state``."""

    from_state: str
    to_state: str
    status: JobStatus
    #: True when the previous observation is older than one poll (restart, Kafka outage, failed
    #: polls): states shorter than the gap cannot have been seen.
    may_have_skipped: bool = False


@dataclass(frozen=True, slots=True)
class JobProgress(EventBase):
    """``job.progress``: progress, message or task progress changed."""

    status: JobStatus
    #: Progress units per second since the last progress event, when it can be estimated.
    rate: float | None = None
    #: Estimated completion time, when it can be estimated.
    eta: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobCompleted(EventBase):
    """``job.completed``: the job finished; outcome from its job log.

    Found one of two ways: the job left ``getActiveJobs`` (``reconciled`` false), or the job
    log listing (``getJobLogs``) showed a finished job the streamer had not reported
    (``reconciled`` true; see :mod:`streamer.reconcile`).
    """

    outcome: Outcome
    #: The job's status in its last committed observation; None when it was never observed.
    last_status: JobStatus | None
    counts: OutcomeCounts | None = None
    log_type: str | None = None
    ended_at: datetime | None = None
    #: How many job log lookups were made before the outcome was decided.
    log_attempts: int = 0
    #: True when the job's disappearance was noticed after a gap (restart, outage, failed
    #: polls): states it went through after its last committed observation may have been missed.
    may_have_skipped: bool = False
    #: The job log's own start time (IPS time), when a log was found.
    started_at: datetime | None = None
    #: True when the completion was found in the job log listing, not by a vanished job.
    reconciled: bool = False
    #: False when no ``job.observed`` was ever published for the job (it started and ended
    #: between two committed polls, or while the streamer was down).
    observed: bool = True
    #: The job's name, original name, type and submitter: from its last observation, or from
    #: its job log when it was never observed (a job log has no type: None then).
    job_name: str | None = None
    original_name: str | None = None
    job_type: str | None = None
    submit_user_email: str | None = None
    #: ``ended_at - started_at`` in seconds (job log times); None without both.
    duration_s: float | None = None
    #: The first error and warning messages of the job log; None when the outcome is
    #: ``succeeded`` or no details could be read.
    log_messages: LogMessages | None = None


@dataclass(frozen=True, slots=True)
class JobStalled(EventBase):
    """``job.stalled``: a running job's progress has not moved for ``stalled_for_s`` seconds."""

    status: JobStatus
    stalled_for_s: float
    #: The job's name, original name, type and submitter (from its tracked snapshot).
    job_name: str | None = None
    original_name: str | None = None
    job_type: str | None = None
    submit_user_email: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecovered(EventBase):
    """``job.recovered``: a stalled job moved again."""

    status: JobStatus
    stalled_for_s: float


JobEvent: TypeAlias = (
    JobObserved | JobStateChanged | JobProgress | JobCompleted | JobStalled | JobRecovered
)

EVENT_TYPES: dict[type[EventBase], str] = {
    JobObserved: "job.observed",
    JobStateChanged: "job.state_changed",
    JobProgress: "job.progress",
    JobCompleted: "job.completed",
    JobStalled: "job.stalled",
    JobRecovered: "job.recovered",
}


def event_type(event: JobEvent) -> str:
    """The CloudEvents ``type`` of an event (``job.observed``, ...)."""
    return EVENT_TYPES[type(event)]


# --------------------------------------------------------------------------------------------
# Per-job tracked state: what the checkpoint topic stores, and what diff reads and returns.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackedJob:
    """The streamer's last committed knowledge of one job."""

    snapshot: JobSnapshot
    #: Sequence number of the last event emitted for this job.
    sequence: int
    #: When the job was last seen in a successful snapshot.
    last_seen_at: datetime
    #: Progress reference for coalescing: the status last published on the progress topic,
    #: and when.
    last_progress_status: JobStatus
    last_progress_at: datetime
    #: When the job's progress last moved (stall detection).
    last_moved_at: datetime
    stalled: bool = False
    #: Set once the job vanished from a successful snapshot; its completion waits on the job log.
    vanished_at: datetime | None = None
    log_attempts: int = 0
    #: The vanish was noticed after a gap (see ``JobCompleted.may_have_skipped``).
    vanished_after_gap: bool = False


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One per company per cycle: proof that a quiet company is still being watched."""

    company_handle: str
    polled_at: datetime
    ok: bool
    latency_s: float
    active_jobs: int
    last_success_at: datetime | None
    error: str | None = None
