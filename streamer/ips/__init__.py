"""IPS (Scene7 / Dynamic Media Classic) SOAP access: client, fast reply decoder, typed errors.

Modules: ``client`` (WSDL, requests, HTTP), ``envelope`` (SOAP envelope and faults of a reply),
``schema`` (the job types' element sequences), ``decode`` (reply rows to model values),
``reply_cache`` (unchanged job elements not decoded again), ``source`` (what a company loop
asks of IPS), ``errors``.
"""

from streamer.ips.client import DEFAULT_WSDL, IpsClient, IpsSettings, JobLogListing, ips_datetime
from streamer.ips.decode import decode_active_jobs, decode_job_logs
from streamer.ips.envelope import find_fault, parse_envelope, raise_for_fault
from streamer.ips.errors import (
    AuthenticationFault,
    AuthorizationFault,
    IpsApiFault,
    IpsError,
    IpsFault,
    IpsReplyError,
    IpsTransportError,
)
from streamer.ips.reply_cache import ActiveJobsCache
from streamer.ips.source import JobSource

__all__ = [
    "DEFAULT_WSDL",
    "ActiveJobsCache",
    "AuthenticationFault",
    "AuthorizationFault",
    "IpsApiFault",
    "IpsClient",
    "IpsError",
    "IpsFault",
    "IpsReplyError",
    "IpsSettings",
    "IpsTransportError",
    "JobLogListing",
    "JobSource",
    "decode_active_jobs",
    "decode_job_logs",
    "find_fault",
    "ips_datetime",
    "parse_envelope",
    "raise_for_fault",
]
