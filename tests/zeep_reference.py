"""zeep's own reply mapping (``getActiveJobs``, ``getJobLogDetails`` pages): the oracle the fast
decoder is proven equal to.

Slow (about 0.7 ms per job) and never on the poll path: tests compare
:func:`streamer.ips.decode.decode_active_jobs` against :func:`zeep_decode_active_jobs`, and the
benchmarks (``bench/decode.py``) time both on the same replies. It loads the WSDL with zeep
itself, independently of the client, and converts zeep's objects to the model values by the
same documented rules (absent optional strings are None, non-finite progress is 0.0).
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import zeep
import zeep.exceptions
import zeep.loader
from zeep.wsdl.bindings.soap import Soap11Binding

from streamer.ips.errors import IpsReplyError, fault_from_detail
from streamer.model import (
    SUB_JOB_ELEMENTS,
    JobLogDetail,
    JobLogDetailPage,
    JobSnapshot,
    JobStatus,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    XmlTree,
)

__all__ = ["zeep_decode_active_jobs", "zeep_decode_log_details"]

#: zeep ships py.typed but most of its API is unannotated; use it through Any.
_zeep: Any = zeep
_parse_xml: Any = zeep.loader.parse_xml


@lru_cache(maxsize=8)
def _wsdl(path: str) -> tuple[Any, Any]:
    """``(zeep client, SOAP 1.1 binding with getActiveJobs)`` of a WSDL file, strict as the
    client loads it."""
    settings = _zeep.Settings(strict=True, xml_huge_tree=True, forbid_external=True)
    client = _zeep.Client(path, settings=settings)
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            binding: Any = port.binding  # zeep is untyped
            if isinstance(port.binding, Soap11Binding) and "getActiveJobs" in binding.all():
                return client, binding
    raise ValueError(f"{path}: no SOAP 1.1 port with getActiveJobs")


def zeep_decode_active_jobs(wsdl: str | os.PathLike[str], body: bytes) -> tuple[JobSnapshot, ...]:
    """Decode a ``getActiveJobs`` reply with zeep (strict) and convert to model values.

    Slow; the reference for :func:`streamer.ips.decode.decode_active_jobs`. zeep cannot tell an
    empty element from an absent one, so an empty sub-job element (``<metadataPublishJob/>``)
    maps to ``sub_job=None`` here where the fast decoder keeps ``SubJob(element, ())``.
    """
    result = _process_reply(wsdl, "getActiveJobs", body)
    if result is None:
        return ()
    if not isinstance(result, list):
        raise IpsReplyError(f"zeep: unexpected reply {type(result).__name__}", kind="schema")
    try:
        return tuple(_job_from_zeep(job) for job in result)
    except (ValueError, TypeError, AttributeError) as exc:
        raise IpsReplyError(f"zeep: invalid ActiveJob: {exc}", kind="schema") from exc


def zeep_decode_log_details(
    wsdl: str | os.PathLike[str], body: bytes, job_handle: str, max_rows: int
) -> JobLogDetailPage | None:
    """Decode a ``getJobLogDetails`` reply with zeep (strict): the detail page of one job's log.

    The reference for :func:`streamer.ips.decode.decode_log_details`: the log of
    ``job_handle`` (None when the reply holds none), its first ``max_rows`` rows.
    """
    result = _process_reply(wsdl, "getJobLogDetails", body) or []
    for log in result:
        if (log.jobHandle or "") != job_handle:
            continue
        details = []
        for d in _zitems(log.detailArray)[:max_rows]:
            created = d.__values__.get("dateCreated")  # absent from the 2013-02-15 type
            details.append(
                JobLogDetail(
                    log_type=d.logType or "",
                    message=d.logMessage or "",
                    created_at=None if created is None else _zdt(created),
                    asset_name=d.assetName or None,
                    asset_type=d.assetType or None,
                )
            )
        total = log.detailTotalRows
        return JobLogDetailPage(job_handle, tuple(details), None if total is None else _zint(total))
    return None


def _process_reply(wsdl: str | os.PathLike[str], name: str, body: bytes) -> Any:
    """zeep's strict reply processing of operation ``name``: its result, or the typed error."""
    client, binding = _wsdl(os.fspath(wsdl))
    operation = binding.get(name)
    try:
        doc = _parse_xml(body, binding.transport, settings=client.settings)
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
        return operation.process_reply(doc)
    except (zeep.exceptions.Error, ValueError, TypeError) as exc:
        raise IpsReplyError(f"zeep: {exc}", kind="schema") from exc


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


def _zprogress(value: Any) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise ValueError(f"expected double, got {value!r}")
    return float(value) if math.isfinite(value) else 0.0


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
            progress=_zprogress(t.progress),
            progress_message=t.progressMessage or "",
            last_progress_update=_zdt(t.lastProgressUpdate),
            items=tuple(
                TaskItemProgress(
                    item_name=i.itemName or "",
                    progress=_zprogress(i.progress),
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
