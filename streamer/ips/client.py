"""Async IPS SOAP client: zeep builds the requests, aiohttp carries them, decode.py reads replies.

zeep is used only for what it is good at: reading a WSDL (ours or an official one, any version),
knowing each operation's body namespace, SOAPAction and header element, and serialising request
envelopes. It never touches the network (its blocking transport would stall the event loop) and
never decodes replies (too slow for ten thousand jobs; see :mod:`streamer.ips.decode`).
:func:`zeep_decode_active_jobs` keeps zeep's own reply mapping as the reference the fast decoder
is tested and benchmarked against.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
import zeep
import zeep.exceptions
import zeep.loader
from lxml import etree
from zeep.wsdl.bindings.soap import Soap11Binding

from streamer.ips.decode import decode_active_jobs, decode_job_logs, find_fault
from streamer.ips.errors import (
    IpsError,
    IpsFault,
    IpsReplyError,
    IpsTransportError,
    fault_from_detail,
    scrub,
)
from streamer.model import (
    SUB_JOB_ELEMENTS,
    JobLog,
    JobSnapshot,
    JobStatus,
    Snapshot,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    XmlTree,
)

_T = TypeVar("_T")
#: zeep ships py.typed but most of its API is unannotated; use it through Any.
_zeep: Any = zeep
_parse_xml: Any = zeep.loader.parse_xml

#: The project's own WSDL (2014-04-03, job operations only), shipped with the package.
DEFAULT_WSDL = str(Path(__file__).resolve().parent / "wsdl" / "IpsApi-2014-04-03.wsdl")
#: Replies larger than this are decoded in a worker thread so the event loop stays responsive.
_THREAD_DECODE_BYTES = 256 * 1024


def _package_version() -> str:
    try:
        return metadata.version("ips-job-streamer")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True, kw_only=True)
class IpsSettings:
    """How to reach and authenticate to IPS. The password never appears in ``repr``."""

    wsdl: str = DEFAULT_WSDL
    endpoint: str | None = None
    user: str
    password: str = field(repr=False)
    app_name: str = "ips-job-streamer"
    app_version: str = field(default_factory=_package_version)
    locale: str | None = None
    auth: Literal["header", "basic", "both"] = "header"
    timeout_s: float = 30
    verify_tls: bool = True
    include_waiting_jobs: bool | None = None


@dataclass(frozen=True)
class _Binding:
    """What the client needs from a loaded WSDL: zeep objects plus the facts read from them."""

    client: Any  # zeep.Client
    service: Any  # zeep ServiceProxy bound to the SOAP 1.1 port
    namespace: str
    header_qname: str
    header_fields: frozenset[str]
    active_jobs_params: frozenset[str]
    address: str


def _load_binding(source: str | io.BytesIO, label: str) -> _Binding:
    """Parse a WSDL with zeep (sync) and pick its SOAP 1.1 port and authHeader element."""
    settings = _zeep.Settings(strict=True, xml_huge_tree=True, forbid_external=True)
    try:
        client = _zeep.Client(source, settings=settings)
    except (zeep.exceptions.Error, etree.XMLSyntaxError, OSError, ValueError) as exc:
        raise IpsError(f"cannot load WSDL {label}: {exc}", kind="wsdl") from exc
    for service in client.wsdl.services.values():
        ports = sorted(service.ports.values(), key=lambda p: p.name != "IpsApiSoapPort")
        for port in [p for p in ports if isinstance(p.binding, Soap11Binding)]:
            binding: Any = port.binding
            if "getActiveJobs" in binding.all():
                break
        else:
            continue
        op = binding.get("getActiveJobs")
        header_elements = op.input.header.type.elements if op.input.header is not None else []
        if not header_elements:
            raise IpsError(f"WSDL {label}: getActiveJobs declares no authHeader", kind="wsdl")
        header = header_elements[0][1]
        return _Binding(
            client=client,
            service=client.bind(service.name, port.name),
            namespace=str(op.input.body.qname.namespace),
            header_qname=str(header.qname.text),
            header_fields=frozenset(name for name, _ in header.type.elements),
            active_jobs_params=frozenset(name for name, _ in op.input.body.type.elements),
            address=str(port.binding_options.get("address") or ""),
        )
    raise IpsError(f"WSDL {label}: no SOAP 1.1 port with getActiveJobs", kind="wsdl")


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


class IpsClient:
    """Calls the IPS job operations over one aiohttp session. Build it with :meth:`create`."""

    def __init__(self, settings: IpsSettings, session: aiohttp.ClientSession, binding: _Binding):
        self._settings = settings
        self._session = session
        self._binding = binding
        self._endpoint = settings.endpoint or binding.address
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        self._headers = {"Content-Type": "text/xml; charset=utf-8"}
        if settings.auth in ("basic", "both"):
            # Built by hand: aiohttp.BasicAuth is deprecated and latin-1 only (RFC 7617: UTF-8).
            token = base64.b64encode(f"{settings.user}:{settings.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    @classmethod
    async def create(cls, settings: IpsSettings, session: aiohttp.ClientSession) -> IpsClient:
        """Load the WSDL (a path, or a URL fetched with ``session``) and build a client."""
        source: str | io.BytesIO = settings.wsdl
        if _is_url(settings.wsdl):
            data = await _fetch(session, settings, settings.wsdl)
            source = io.BytesIO(data)
        binding = _load_binding(source, settings.wsdl)
        return cls(settings, session, binding)

    @property
    def namespace(self) -> str:
        """The body namespace of the loaded WSDL (e.g. ``.../xsd/2014-04-03``)."""
        return self._binding.namespace

    @property
    def endpoint(self) -> str:
        """The service URL requests are POSTed to."""
        return self._endpoint

    @property
    def header_qname(self) -> str:
        """Clark name of the authHeader element the binding declares."""
        return self._binding.header_qname

    def build_request(self, operation: str, **params: Any) -> bytes:
        """The SOAP 1.1 request envelope for ``operation`` with the authHeader, as UTF-8 bytes."""
        b = self._binding
        s = self._settings
        values: dict[str, Any] = {"appName": s.app_name, "appVersion": s.app_version}
        if s.locale is not None:
            values["locale"] = s.locale
        if s.auth in ("header", "both"):
            values["user"] = s.user
            values["password"] = s.password
        header = b.client.get_element(b.header_qname)(
            **{k: v for k, v in values.items() if k in b.header_fields}
        )
        body = {k: v for k, v in params.items() if v is not None}
        envelope = b.client.create_message(b.service, operation, _soapheaders=[header], **body)
        return bytes(etree.tostring(envelope, encoding="utf-8", xml_declaration=True))

    async def get_active_jobs(self, company_handle: str) -> Snapshot:
        """``getActiveJobs`` for one company: the complete, strictly parsed job list."""
        params: dict[str, Any] = {"companyHandle": company_handle}
        if (
            self._settings.include_waiting_jobs is not None
            and "includeWaitingJobs" in self._binding.active_jobs_params
        ):
            params["includeWaitingJobs"] = self._settings.include_waiting_jobs
        body = await self._call("getActiveJobs", params)
        jobs = await self._decode(decode_active_jobs, body)
        return Snapshot(company_handle=company_handle, jobs=jobs)

    async def get_job_log(self, company_handle: str, job_handle: str) -> JobLog | None:
        """``getJobLogDetails`` for one job; None when IPS has no log for it (yet)."""
        params = {"companyHandle": company_handle, "jobHandle": job_handle}
        body = await self._call("getJobLogDetails", params)
        logs = await self._decode(decode_job_logs, body, operation="getJobLogDetails")
        if not logs:
            return None
        return next((log for log in logs if log.job_handle == job_handle), logs[0])

    async def get_job_logs(
        self,
        company_handle: str,
        *,
        num_rows: int | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        sort_by: str | None = None,
        sort_direction: str | None = None,
        user_handle: str | None = None,
    ) -> tuple[JobLog, ...]:
        """``getJobLogs`` for one company (no details), filtered and sorted as IPS allows."""
        params = {
            "companyHandle": company_handle,
            "userHandle": user_handle,
            "sortBy": sort_by,
            "sortDirection": sort_direction,
            "startDate": start_date,
            "endDate": end_date,
            "numRows": num_rows,
        }
        body = await self._call("getJobLogs", params)
        return await self._decode(decode_job_logs, body, operation="getJobLogs")

    async def _decode(self, fn: Callable[..., _T], body: bytes, **kwargs: Any) -> _T:
        try:
            if len(body) > _THREAD_DECODE_BYTES:
                return await asyncio.to_thread(fn, body, self.namespace, **kwargs)
            return fn(body, self.namespace, **kwargs)
        except IpsFault as fault:
            raise self._clean(fault) from None

    def _clean(self, fault: IpsFault) -> IpsFault:
        """The fault with the password masked out of its texts (servers may echo input)."""
        pw = self._settings.password
        return type(fault)(
            fault.code,
            scrub(fault.reason, pw),
            fault_string=scrub(fault.fault_string, pw),
            fault_code=fault.fault_code,
        )

    async def _call(self, operation: str, params: dict[str, Any]) -> bytes:
        """POST one request; return the body of a 2xx reply, raise typed errors otherwise."""
        try:
            payload = self.build_request(operation, **params)
        except (zeep.exceptions.Error, TypeError) as exc:
            raise IpsError(f"{operation}: cannot build request: {exc}", kind="request") from exc
        headers = {**self._headers, "SOAPAction": f'"{operation}"'}
        status, body = await self._post(operation, payload, headers)
        if 200 <= status < 300:
            return body
        if status == 500:
            fault = find_fault(body)
            if fault is not None:
                raise self._clean(fault)
        kind = "http_5xx" if status >= 500 else "http_4xx" if status >= 400 else "http"
        raise IpsTransportError(f"{operation}: HTTP {status}", kind=kind, status=status)

    async def _post(
        self, operation: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """POST and read the whole reply; network failures become IpsTransportError."""
        settings = self._settings
        try:
            async with self._session.post(
                self._endpoint,
                data=payload,
                headers=headers,
                timeout=self._timeout,
                ssl=settings.verify_tls,
            ) as resp:
                return resp.status, await resp.read()
        except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError on 3.11
            raise IpsTransportError(
                f"{operation}: no reply within {settings.timeout_s:g}s", kind="timeout"
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise IpsTransportError(f"{operation}: TLS error: {exc}", kind="tls") from exc
        except aiohttp.ClientError as exc:
            raise IpsTransportError(
                f"{operation}: {type(exc).__name__}: {scrub(str(exc), settings.password)}",
                kind="connection",
            ) from exc


async def _fetch(session: aiohttp.ClientSession, settings: IpsSettings, url: str) -> bytes:
    """GET a WSDL over HTTP(S) with the session (TLS and timeout per settings)."""
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=settings.timeout_s), ssl=settings.verify_tls
        ) as resp:
            if resp.status != 200:
                kind = "http_5xx" if resp.status >= 500 else "http_4xx"
                raise IpsTransportError(
                    f"WSDL {url}: HTTP {resp.status}", kind=kind, status=resp.status
                )
            return await resp.read()
    except TimeoutError as exc:
        raise IpsTransportError(f"WSDL {url}: timeout", kind="timeout") from exc
    except aiohttp.ClientError as exc:
        raise IpsTransportError(f"WSDL {url}: {type(exc).__name__}", kind="connection") from exc


# ------------------------------------------------------------------------------------------
# Reference path: zeep's own reply mapping (tests and benchmarks prove decode.py equal to it)
# ------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _cached_binding(wsdl: str) -> _Binding:
    return _load_binding(wsdl, wsdl)


def zeep_decode_active_jobs(
    client_or_wsdl: IpsClient | str | os.PathLike[str], body: bytes
) -> tuple[JobSnapshot, ...]:
    """Decode a ``getActiveJobs`` reply with zeep (strict) and convert to model values.

    Slow; the reference for :func:`streamer.ips.decode.decode_active_jobs`. zeep cannot tell an
    empty element from an absent one, so an empty sub-job element (``<metadataPublishJob/>``)
    maps to ``sub_job=None`` here where the fast decoder keeps ``SubJob(element, ())``.
    """
    if isinstance(client_or_wsdl, IpsClient):
        b = client_or_wsdl._binding
    else:
        b = _cached_binding(os.fspath(client_or_wsdl))
    binding = b.service._binding
    operation = binding.get("getActiveJobs")
    try:
        doc = _parse_xml(body, binding.transport, settings=b.client.settings)
    except zeep.exceptions.XMLSyntaxError as exc:
        raise IpsReplyError(f"reply is not well-formed XML: {exc}", kind="malformed") from exc
    if doc.find("soap-env:Body/soap-env:Fault", namespaces=binding.nsmap) is not None:
        try:
            binding.process_error(doc, operation)
        except zeep.exceptions.Fault as fault:
            raise fault_from_detail(
                fault.detail,  # the lxml <detail> element, or None
                fault_string=(fault.message or "").strip(),
                fault_code=(fault.code or "").strip(),
            ) from None
    try:
        result = operation.process_reply(doc)
    except (zeep.exceptions.Error, ValueError, TypeError) as exc:
        raise IpsReplyError(f"zeep: {exc}", kind="schema") from exc
    if result is None:
        return ()
    if not isinstance(result, list):
        raise IpsReplyError(f"zeep: unexpected reply {type(result).__name__}", kind="schema")
    try:
        return tuple(_job_from_zeep(job) for job in result)
    except (ValueError, TypeError, AttributeError) as exc:
        raise IpsReplyError(f"zeep: invalid ActiveJob: {exc}", kind="schema") from exc


def _zdt(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"expected dateTime, got {value!r}")
    offset = value.utcoffset()
    if offset is None:
        return value.replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC if offset == timedelta(0) else timezone(offset))


def _zint(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected int, got {value!r}")
    return value


def _zfloat(value: Any) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise ValueError(f"expected double, got {value!r}")
    return float(value)


def _zitems(array: Any) -> list[Any]:
    return [] if array is None else [x for x in (array["items"] or []) if x is not None]


def _ztree(obj: Any) -> XmlTree:
    out: list[tuple[str, str | XmlTree]] = []
    for name, value in obj.__values__.items():
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                continue
            if isinstance(v, bool):
                out.append((name, "true" if v else "false"))
            elif isinstance(v, int | float):
                out.append((name, str(v)))
            elif isinstance(v, str):
                if v and not v.isspace():
                    out.append((name, v))
            else:
                out.append((name, _ztree(v)))
    return tuple(out)


def _job_from_zeep(j: Any) -> JobSnapshot:
    v = j.__values__
    tasks = tuple(
        TaskProgress(
            task_type=t.taskType or "",
            task_state=t.taskState or "",
            num_processed=_zint(t.numProcessed),
            num_processing=_zint(t.numProcessing),
            num_pending=_zint(t.numPending),
            progress=_zfloat(t.progress),
            progress_message=t.progressMessage or "",
            last_progress_update=_zdt(t.lastProgressUpdate),
            items=tuple(
                TaskItemProgress(
                    item_name=i.itemName or "",
                    progress=_zfloat(i.progress),
                    progress_message=i.progressMessage or "",
                    last_progress_update=_zdt(i.lastProgressUpdate),
                )
                for i in _zitems(t.taskItemProgressArray)
            ),
        )
        for t in _zitems(v["taskProgressArray"])
    )
    subs = [(name, v[name]) for name in SUB_JOB_ELEMENTS if v.get(name) is not None]
    if len(subs) > 1:
        raise ValueError("more than one sub-job element")
    trigger = v.get("triggerTime")
    return JobSnapshot(
        company_handle=v["companyHandle"] or "",
        job_handle=v["jobHandle"] or "",
        name=v["name"] or "",
        original_name=v["originalName"] or "",
        type=v["type"] or "",
        submit_user_email=v["submitUserEmail"] or "",
        locale=v["locale"] or None,
        description=v["description"] or None,
        server_name=v["serverName"] or "",
        start_date=_zdt(v["startDate"]),
        trigger_time=_zdt(trigger) if "triggerTime" in v else None,
        status=JobStatus(
            state=v["state"] or "",
            progress=_zint(v["progress"]),
            progress_message=v["progressMessage"] or "",
            last_progress_update=_zdt(v["lastProgressUpdate"]),
            total_size=_zint(v["totalSize"]),
            task_progress=tasks,
        ),
        sub_job=SubJob(subs[0][0], _ztree(subs[0][1])) if subs else None,
    )
