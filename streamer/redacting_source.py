"""An IPS client whose replies pass the ``[privacy]`` policy before anyone reads them.

The one place the policy meets I/O: a company poller (and its reconciler) is given this wrapper
instead of the IPS client, so every ``ActiveJob`` and ``JobLog`` it sees is already redacted,
whichever call returned it. Calls it does not name are wrapped too (:meth:`__getattr__`): a reply
of a call added later cannot slip past the policy.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from streamer.ips import JobLogListing, JobSource
from streamer.model import JobLog, JobSnapshot, Snapshot
from streamer.privacy import EmailPolicy, redact, redact_job, redact_log


class RedactingSource:
    """``inner`` (an IPS client of one company) with ``policy`` applied to every reply."""

    def __init__(self, inner: JobSource, policy: EmailPolicy) -> None:
        self._inner = inner
        self._policy = policy
        # The last reply's jobs, as (decoded, redacted): an unchanged job keeps its redacted
        # object, so the diff's identity fast path still works.
        self._jobs: dict[str, tuple[JobSnapshot, JobSnapshot]] = {}

    async def get_active_jobs(self, company_handle: str) -> Snapshot:
        """``getActiveJobs``, every job redacted."""
        snapshot = await self._inner.get_active_jobs(company_handle)
        if self._policy.keeps:
            return snapshot
        memo = self._jobs
        seen: dict[str, tuple[JobSnapshot, JobSnapshot]] = {}
        jobs: list[JobSnapshot] = []
        for job in snapshot.jobs:
            known = memo.get(job.job_handle)
            same = known is not None and known[0] is job
            out = known[1] if known is not None and same else redact_job(self._policy, job)
            seen[job.job_handle] = (job, out)
            jobs.append(out)
        self._jobs = seen
        if all(a is b for a, b in zip(jobs, snapshot.jobs, strict=True)):
            return snapshot
        return Snapshot(snapshot.company_handle, tuple(jobs))

    async def get_job_log(self, company_handle: str, job_handle: str) -> JobLog | None:
        """A finished job's log, redacted."""
        log = await self._inner.get_job_log(company_handle, job_handle)
        return None if log is None else redact_log(self._policy, log)

    async def list_job_logs(
        self,
        company_handle: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        num_rows: int | None = None,
    ) -> JobLogListing:
        """``getJobLogs`` for a window, every log redacted."""
        listing = await self._inner.list_job_logs(
            company_handle, start=start, end=end, num_rows=num_rows
        )
        return redact(self._policy, listing)

    def __getattr__(self, name: str) -> Any:
        """Any other attribute of the client; the replies of its coroutine methods redacted."""
        if name.startswith("_"):  # never our own state (copy, pickle: not set up yet)
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        call: Callable[..., Any] = attr

        @functools.wraps(call)
        async def redacted(*args: Any, **kwargs: Any) -> Any:
            return redact(self._policy, await call(*args, **kwargs))

        return redacted
