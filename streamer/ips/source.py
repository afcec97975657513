"""What a company loop asks of IPS: the protocol the IPS client, the privacy wrapper around it
and the tests' fakes all answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from streamer.ips.client import JobLogListing
from streamer.model import JobLog, JobLogDetailPage, Snapshot


class JobSource(Protocol):
    """What a poller asks of IPS (the IPS client, or a fake in tests)."""

    async def get_active_jobs(self, company_handle: str) -> Snapshot:
        """One complete snapshot of the company's active jobs."""

    async def get_job_log(self, company_handle: str, job_handle: str) -> JobLog | None:
        """The job log of a finished job, or None when there is none (yet)."""

    async def list_job_logs(
        self,
        company_handle: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        num_rows: int | None = None,
    ) -> JobLogListing:
        """The job logs that ended in ``[start, end]``, at most ``num_rows``, with IPS's clock."""

    async def get_job_log_details(
        self, company_handle: str, job_handle: str, *, log_types: Sequence[str], rows: int
    ) -> JobLogDetailPage | None:
        """One page of a job's detail rows of the given types; None without a log of the job."""
