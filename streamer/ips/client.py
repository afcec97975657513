"""Async IPS SOAP client: zeep builds the requests, aiohttp carries them, decode.py reads replies.

zeep is used only for what it is good at: reading a WSDL (ours or an official one, any version),
knowing each operation's body namespace, SOAPAction and header element, and serialising request
envelopes. It never touches the network (its blocking transport would stall the event loop) and
never decodes replies (too slow for ten thousand jobs; see :mod:`streamer.ips.decode`).
Each company's ``getActiveJobs`` replies go through an :class:`ActiveJobsCache`, so that jobs whose
reply element did not change since the last poll are not parsed again. zeep's own reply mapping,
the oracle the fast decoder is tested and benchmarked against, lives with the tests
(``tests/zeep_reference.py``).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import io
import ssl as ssl_module
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import aiohttp
import structlog
import zeep
import zeep.exceptions
from lxml import etree
from zeep.wsdl.bindings.soap import Soap11Binding

from streamer.ips.decode import decode_active_jobs, decode_job_logs, decode_log_details
from streamer.ips.envelope import find_fault
from streamer.ips.errors import (
    IpsError,
    IpsFault,
    IpsReplyError,
    IpsTransportError,
    excerpt,
    redact_url,
    redact_urls,
    scrub,
)
from streamer.ips.reply_cache import ActiveJobsCache
from streamer.model import JobLog, JobLogDetailPage, Snapshot

_T = TypeVar("_T")
#: zeep ships py.typed but most of its API is unannotated; use it through Any.
_zeep: Any = zeep

#: The project's own WSDL (2014-04-03, job operations only), shipped with the package.
DEFAULT_WSDL = str(Path(__file__).resolve().parent / "wsdl" / "IpsApi-2014-04-03.wsdl")
#: Replies larger than this are decoded in a worker thread so the event loop stays responsive.
_THREAD_DECODE_BYTES = 256 * 1024
#: Default bound on one reply's body (``ips.max_reply_bytes``): a 10,000-job reply is ~15 MB.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024


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
    #: Extra CA bundle (PEM) to trust for IPS, e.g. a corporate TLS-inspecting proxy's.
    ca_file: str | None = None
    include_waiting_jobs: bool | None = None
    #: Largest reply body read (also a WSDL fetched by URL); a longer one fails the call
    #: with IpsReplyError(kind="too_large") without being read whole.
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES

    def ssl(self) -> ssl_module.SSLContext | bool:
        """What aiohttp's ``ssl=`` gets: False (no verification), a context with the CA, or True."""
        if not self.verify_tls:
            return False
        if self.ca_file:
            return ssl_module.create_default_context(cafile=self.ca_file)
        return True


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


#: Request parameters filled into cached envelopes: handles, plain ``xsd:string`` values, and
#: dates already written as ``xsd:dateTime`` text (see :func:`ips_datetime`).
_TEMPLATED = frozenset({"companyHandle", "jobHandle", "startDate", "endDate"})


@dataclass(frozen=True, slots=True)
class JobLogListing:
    """A ``getJobLogs`` reply: the logs, and IPS's clock when it answered."""

    logs: tuple[JobLog, ...]
    #: The reply's HTTP ``Date`` (IPS's clock, whole seconds, rounded down); None without one.
    server_time: datetime | None = None


def ips_datetime(value: datetime, *, round_up: bool = False) -> str:
    """``value`` as ``xsd:dateTime`` text in UTC with milliseconds and an explicit ``Z``.

    IPS keeps milliseconds: a window's start is rounded down and its end up (``round_up``),
    so that a window never shrinks. Naive datetimes are refused: the zone must be explicit.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: a request date needs its time zone")
    utc = value.astimezone(UTC)
    spare = utc.microsecond % 1000
    if spare:
        utc -= timedelta(microseconds=spare)
        if round_up:
            utc += timedelta(milliseconds=1)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _server_time(header: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware datetime; None when absent or unreadable."""
    if not header:
        return None
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


@functools.lru_cache(maxsize=1 << 14)
def _xml_text(value: str) -> bytes:
    """``value`` as lxml writes element text in UTF-8 (and refuses what lxml refuses).

    Memoised: the same company handles go out every poll (an lxml round trip per request was
    3% of a quiet cycle's CPU)."""
    element = etree.Element("x")
    element.text = value
    return bytes(etree.tostring(element, encoding="utf-8"))[3:-4]


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
        self._ssl = settings.ssl()  # one context for every call: loading a CA file is not free
        self._headers = {"Content-Type": "text/xml; charset=utf-8"}
        #: Per company: decoded job elements of its last reply (see reply_cache).
        self._job_caches: dict[str, ActiveJobsCache] = {}
        #: Serialised request envelopes by operation and parameters (see build_request).
        self._templates: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        if settings.auth in ("basic", "both"):
            # Built by hand: aiohttp.BasicAuth is deprecated and latin-1 only (RFC 7617: UTF-8).
            token = base64.b64encode(f"{settings.user}:{settings.password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    @classmethod
    async def create(cls, settings: IpsSettings, session: aiohttp.ClientSession) -> IpsClient:
        """Load the WSDL (a path, or a URL fetched with ``session``) and build a client.

        Raises :class:`IpsTransportError` when a WSDL URL cannot be fetched (timeout, TLS,
        connection, HTTP error status: worth retrying), :class:`IpsReplyError` when it is longer
        than ``max_reply_bytes``, and ``IpsError(kind="wsdl")`` when what was loaded is not a
        usable WSDL. Messages show the URL without its credentials.
        """
        source: str | io.BytesIO = settings.wsdl
        if _is_url(settings.wsdl):
            data = await _fetch(session, settings, settings.wsdl)
            source = io.BytesIO(data)
        binding = _load_binding(source, redact_url(settings.wsdl))
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
        """The SOAP 1.1 request envelope for ``operation`` with the authHeader, as UTF-8 bytes.

        zeep takes about a millisecond per envelope, and a thousand companies are polled every
        few seconds: it serialises each operation once, with placeholders for the company and
        job handles, and later requests fill in that copy (escaped as lxml escapes text). The
        bytes are those zeep would build (tested).
        """
        body = {k: v for k, v in params.items() if v is not None}
        filled = {k: v for k, v in body.items() if k in _TEMPLATED and type(v) is str}
        key = (
            operation,
            tuple(sorted(filled)),
            tuple(sorted((k, repr(v)) for k, v in body.items() if k not in filled)),
        )
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= 256:
                self._templates.clear()
            template = self._templates[key] = self._template(operation, body, filled)
        if not template:  # placeholders not found once each: zeep for every request
            return self._serialize(operation, body)
        out = [template[0]]
        for name, segment in template[1:]:
            out.append(_xml_text(filled[name]))
            out.append(segment)
        return b"".join(out)

    def _template(
        self, operation: str, body: dict[str, Any], filled: dict[str, str]
    ) -> tuple[Any, ...]:
        """``(head, (name, segment), ...)``: the envelope cut around each placeholder."""
        tokens = {name: f"streamer-{uuid.uuid4().hex}" for name in filled}
        raw = self._serialize(operation, {**body, **tokens})
        spots = []
        for name, token in tokens.items():
            if raw.count(token.encode()) != 1:
                return ()
            spots.append((raw.index(token.encode()), name, len(token)))
        spots.sort()
        head_end = spots[0][0] if spots else len(raw)
        parts: list[Any] = [raw[:head_end]]
        for i, (at, name, size) in enumerate(spots):
            end = spots[i + 1][0] if i + 1 < len(spots) else len(raw)
            parts.append((name, raw[at + size : end]))
        return tuple(parts)

    def _serialize(self, operation: str, body: dict[str, Any]) -> bytes:
        """The envelope as zeep builds it."""
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
        cache = self._job_caches.get(company_handle)
        if cache is None:
            cache = self._job_caches[company_handle] = ActiveJobsCache()
        jobs = await self._decode(decode_active_jobs, body, cache=cache)
        return Snapshot(company_handle=company_handle, jobs=jobs)

    def job_cache(self, company_handle: str) -> ActiveJobsCache | None:
        """The reply cache of a company polled before (statistics, benchmarks)."""
        return self._job_caches.get(company_handle)

    async def get_job_log(self, company_handle: str, job_handle: str) -> JobLog | None:
        """``getJobLogDetails`` for one job; None when IPS has no log for it (yet).

        Only a log carrying the asked ``jobHandle`` counts: logs of other jobs are ignored (with
        a warning), and the lookup is then "no log found", to be retried like one.
        """
        params = {"companyHandle": company_handle, "jobHandle": job_handle}
        body = await self._call("getJobLogDetails", params)
        logs = await self._decode(decode_job_logs, body, operation="getJobLogDetails")
        found = next((log for log in logs if log.job_handle == job_handle), None)
        if found is None and logs:
            # Another job's log must never decide this job's outcome: treat it as no log yet.
            # (A fresh logger: a rare path, and it follows the current structlog configuration.)
            structlog.get_logger("streamer.ips").warning(
                "job_log_handle_mismatch",
                company=company_handle,
                job_handle=job_handle,
                returned_job_handle=excerpt(logs[0].job_handle, 200),
                returned_logs=len(logs),
            )
        return found

    async def get_job_log_details(
        self,
        company_handle: str,
        job_handle: str,
        *,
        log_types: Sequence[str],
        rows: int,
    ) -> JobLogDetailPage | None:
        """The first page of ``rows`` detail rows of one job's log, of the given log types only.

        ``getJobLogDetails`` with ``logTypeArray``, ``recordsPerPage`` (1 to 1,000, IPS's
        maximum) and ``resultsPage`` 1, sorted by date ascending: the reply stays small whatever
        the size of the log. At most ``rows`` rows are kept even if IPS sends more. None when
        the reply holds no log of that job.
        """
        rows = min(max(1, rows), 1000)
        params: dict[str, Any] = {
            "companyHandle": company_handle,
            "jobHandle": job_handle,
            "logTypeArray": {"items": list(log_types)},
            "recordsPerPage": rows,
            "resultsPage": 1,
            "sortBy": "Date",
            "sortDirection": "Ascending",
        }
        body = await self._call("getJobLogDetails", params)
        return await self._decode(decode_log_details, body, job_handle=job_handle, max_rows=rows)

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

    async def list_job_logs(
        self,
        company_handle: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        num_rows: int | None = None,
    ) -> JobLogListing:
        """``getJobLogs`` for the logs that ended in ``[start, end]`` (IPS time, explicit zone),
        at most ``num_rows`` of them, by start date; with IPS's clock from the reply's ``Date``.

        The dates go out as UTC text with milliseconds, the window rounded outwards.
        """
        params = {
            "companyHandle": company_handle,
            "sortBy": "StartDate",
            "sortDirection": "Ascending",
            "startDate": None if start is None else ips_datetime(start),
            "endDate": None if end is None else ips_datetime(end, round_up=True),
            "numRows": num_rows,
        }
        body, date = await self._exchange("getJobLogs", params)
        logs = await self._decode(decode_job_logs, body, operation="getJobLogs")
        return JobLogListing(logs, _server_time(date))

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
        return (await self._exchange(operation, params))[0]

    async def _exchange(self, operation: str, params: dict[str, Any]) -> tuple[bytes, str | None]:
        """As :meth:`_call`, with the reply's ``Date`` header."""
        try:
            payload = self.build_request(operation, **params)
        except (zeep.exceptions.Error, TypeError) as exc:
            raise IpsError(f"{operation}: cannot build request: {exc}", kind="request") from exc
        headers = {**self._headers, "SOAPAction": f'"{operation}"'}
        status, body, date = await self._post(operation, payload, headers)
        if 200 <= status < 300:
            return body, date
        if status == 500:
            fault = find_fault(body)
            if fault is not None:
                raise self._clean(fault)
        kind = "http_5xx" if status >= 500 else "http_4xx" if status >= 400 else "http"
        raise IpsTransportError(f"{operation}: HTTP {status}", kind=kind, status=status)

    async def _post(
        self, operation: str, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, str | None]:
        """POST and read the whole reply (status, body, Date header); network failures become
        IpsTransportError."""
        settings = self._settings
        try:
            async with self._session.post(
                self._endpoint,
                data=payload,
                headers=headers,
                timeout=self._timeout,
                ssl=self._ssl,
            ) as resp:
                body = await _read_body(resp, settings.max_reply_bytes, operation)
                return resp.status, body, resp.headers.get("Date")
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


async def _read_body(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body of ``resp``, or IpsReplyError(kind="too_large") as soon as it is known to
    be longer than ``limit`` bytes: from its Content-Length, else once that much was read."""
    declared = resp.content_length
    if declared is not None and declared > limit and not resp.headers.get("Content-Encoding"):
        resp.close()  # the rest is never read: the connection cannot be reused
        raise IpsReplyError(
            f"{what}: reply of {declared:,} bytes is larger than "
            f"ips.max_reply_bytes ({limit:,}); not read",
            kind="too_large",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            resp.close()
            raise IpsReplyError(
                f"{what}: reply larger than ips.max_reply_bytes ({limit:,} bytes); "
                f"stopped reading after {size:,}",
                kind="too_large",
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch(session: aiohttp.ClientSession, settings: IpsSettings, url: str) -> bytes:
    """GET a WSDL over HTTP(S) with the session (TLS, timeout and size bound per settings).

    Every failure to get it is an :class:`IpsTransportError` naming the URL without its
    credentials (``https://user:pw@host/...`` -> ``https://***@host/...``), so that the caller
    can report it and retry.
    """
    shown = redact_url(url)
    secrets = [settings.password, *_url_secrets(url)]
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=settings.timeout_s), ssl=settings.ssl()
        ) as resp:
            if resp.status != 200:
                kind = "http_5xx" if resp.status >= 500 else "http_4xx"
                raise IpsTransportError(
                    f"WSDL {shown}: HTTP {resp.status}", kind=kind, status=resp.status
                )
            return await _read_body(resp, settings.max_reply_bytes, f"WSDL {shown}")
    except TimeoutError:
        raise IpsTransportError(
            f"WSDL {shown}: no reply within {settings.timeout_s:g}s", kind="timeout"
        ) from None
    except aiohttp.ClientSSLError as exc:
        raise IpsTransportError(
            f"WSDL {shown}: TLS error: {_clean(exc, secrets)}", kind="tls"
        ) from None  # the cause's text may hold the URL with its credentials
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # ValueError: a URL yarl refuses
        raise IpsTransportError(
            f"WSDL {shown}: {type(exc).__name__}: {_clean(exc, secrets)}", kind="connection"
        ) from None


def _url_secrets(url: str) -> list[str]:
    """The user and password written into a URL, as written and decoded."""
    try:
        parts = urlsplit(url)
        found = [parts.username, parts.password]
    except ValueError:
        return []
    return [v for v in found + [unquote(x) for x in found if x] if v]


def _clean(exc: BaseException, secrets: list[str]) -> str:
    """``str(exc)`` with every secret masked and every URL's credentials redacted."""
    text = str(exc)
    for secret in secrets:
        text = scrub(text, secret)
    return redact_urls(text)
