"""SOAP 1.1 for the simulator: parse IPS requests, build replies and faults.

Replies follow the schema of the namespace the request used (element order included):
2014-04-03 (and 2016-01-14-beta, identical for job types) carry ``ActiveJob/triggerTime`` and
``JobLogDetail/dateCreated``; 2013-02-15 does not. Faults use the unversioned
``http://www.scene7.com/IpsApi/xsd`` detail elements.

``getActiveJobs`` items are written as text in :mod:`streamer.simulator.render` (the hot path);
job logs and faults are built here with lxml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from streamer.simulator.catalog import esc
from streamer.simulator.jobs import SimJobLog, log_details

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
FAULT_NS = "http://www.scene7.com/IpsApi/xsd"
NS_2014 = "http://www.scene7.com/IpsApi/xsd/2014-04-03"
NS_2013 = "http://www.scene7.com/IpsApi/xsd/2013-02-15"
NS_2016 = "http://www.scene7.com/IpsApi/xsd/2016-01-14-beta"
#: A namespace no IPS client expects, for the ``wrong_namespace`` fault.
NS_WRONG = "http://www.scene7.com/IpsApi/xsd/2012-02-14"
#: Accepted body namespaces -> whether the 2014-04-03 additions are emitted.
VERSIONS: dict[str, bool] = {NS_2014: True, NS_2016: True, NS_2013: False}
#: Supported operations -> their parameter elements.
OPERATIONS: dict[str, frozenset[str]] = {
    "getActiveJobs": frozenset(
        {"companyHandle", "jobHandle", "originalName", "includeWaitingJobs"}
    ),
    "getJobLogs": frozenset(
        {
            "companyHandle",
            "userHandle",
            "sortBy",
            "sortDirection",
            "startDate",
            "endDate",
            "numRows",
        }
    ),
    "getJobLogDetails": frozenset(
        {
            "companyHandle",
            "jobHandle",
            "originalName",
            "logTypeArray",
            "recordsPerPage",
            "resultsPage",
            "sortBy",
            "sortDirection",
        }
    ),
}
_INT_PARAMS = frozenset({"numRows", "recordsPerPage", "resultsPage"})
_HEADER_NAMESPACES = frozenset({FAULT_NS, *VERSIONS})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)


class SoapFault(Exception):
    """An IPS fault: detail element ``{FAULT_NS}<element>`` with ``code`` and ``reason``."""

    def __init__(self, element: str, code: int, reason: str, faultcode: str = "soapenv:Client"):
        super().__init__(f"{element} {code}: {reason}")
        self.element, self.code, self.reason, self.faultcode = element, code, reason, faultcode


def authentication_fault(code: int, reason: str) -> SoapFault:
    """authenticationFault (10000 no credentials, 10001 invalid, 10002 invalid user)."""
    return SoapFault("authenticationFault", code, reason)


def authorization_fault(code: int, reason: str) -> SoapFault:
    """authorizationFault (20000 invalid company, ...)."""
    return SoapFault("authorizationFault", code, reason)


def ipsapi_fault(code: int, reason: str) -> SoapFault:
    """ipsApiFault (30000 exception, 30001 invalid / 30002 missing parameter, 30003 bad XML)."""
    return SoapFault(
        "ipsApiFault", code, reason, "soapenv:Server" if code == 30000 else "soapenv:Client"
    )


@dataclass(frozen=True, slots=True)
class Auth:
    """What the ``authHeader`` carried (all optional)."""

    user: str | None = None
    password: str | None = None
    gzip_response: bool | None = None
    fault_http_status: int | None = None


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """A parsed request: operation, body namespace, scalar and array parameters, auth header."""

    operation: str
    namespace: str
    params: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, tuple[str, ...]] = field(default_factory=dict)
    auth: Auth = Auth()

    @property
    def modern(self) -> bool:
        """True for 2014-04-03-shaped replies."""
        return VERSIONS[self.namespace]

    def int_param(self, name: str) -> int | None:
        """An integer parameter (validated at parse time)."""
        value = self.params.get(name)
        return None if value is None else int(value)


def _bool(text: str, what: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ipsapi_fault(30001, f"{what}: not a boolean: {text!r}")


def _local(el: etree._Element) -> tuple[str | None, str]:
    q = etree.QName(el)
    return q.namespace, q.localname


def parse_auth(header: etree._Element | None) -> Auth:
    """Read the ``authHeader`` (versioned or unversioned namespace) from ``soapenv:Header``."""
    if header is None:
        return Auth()
    for el in header.iterchildren(tag=etree.Element):
        ns, name = _local(el)
        if name != "authHeader" or ns not in _HEADER_NAMESPACES:
            continue
        values = {_local(c)[1]: (c.text or "").strip() for c in el.iterchildren(etree.Element)}
        status = values.get("faultHttpStatusCode")
        gzip = values.get("gzipResponse")
        if status is not None and not (status.isdigit() and 200 <= int(status) <= 599):
            raise ipsapi_fault(30001, f"faultHttpStatusCode: invalid value {status!r}")
        return Auth(
            user=values.get("user"),
            password=values.get("password"),
            gzip_response=None if gzip is None else _bool(gzip, "gzipResponse"),
            fault_http_status=None if status is None else int(status),
        )
    return Auth()


def parse_request(body: bytes, soap_action: str | None) -> SoapRequest:
    """Parse a SOAP 1.1 request; raises :class:`SoapFault` 30003 (or 30001) when invalid."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ipsapi_fault(30003, f"request is not well-formed XML: {exc}") from exc
    root_tag = etree.QName(root).text
    if root_tag != f"{{{SOAP_ENV}}}Envelope":
        raise ipsapi_fault(30003, f"not a SOAP 1.1 envelope: {root_tag}")
    body_el = root.find(f"{{{SOAP_ENV}}}Body")
    op_el = None if body_el is None else next(body_el.iterchildren(etree.Element), None)
    if op_el is None:
        raise ipsapi_fault(30003, "empty SOAP body")
    ns, name = _local(op_el)
    operation = name.removesuffix("Param")
    if ns not in VERSIONS or operation not in OPERATIONS or not name.endswith("Param"):
        raise ipsapi_fault(30003, f"unknown operation {{{ns}}}{name}")
    action = (soap_action or "").strip().strip('"')
    if action and action.rsplit("#", 1)[-1].rsplit("/", 1)[-1] != operation:
        raise ipsapi_fault(30003, f"SOAPAction {action!r} does not match {name}")
    params: dict[str, str] = {}
    arrays: dict[str, tuple[str, ...]] = {}
    for child in op_el.iterchildren(etree.Element):
        cns, cname = _local(child)
        if cns != ns or cname not in OPERATIONS[operation] or cname in params:
            raise ipsapi_fault(30003, f"unexpected element {{{cns}}}{cname} in {name}")
        if cname == "logTypeArray":
            arrays[cname] = tuple((i.text or "") for i in child.iterchildren(etree.Element))
            continue
        text = (child.text or "").strip()
        if cname in _INT_PARAMS and not text.lstrip("-").isdigit():
            raise ipsapi_fault(30001, f"{cname}: not an integer: {text!r}")
        if cname == "includeWaitingJobs":
            _bool(text, cname)
        params[cname] = text
    auth = parse_auth(root.find(f"{{{SOAP_ENV}}}Header"))
    return SoapRequest(operation, ns, params, arrays, auth)


# ---- replies --------------------------------------------------------------------------------


def _el(name: str, text: str) -> str:
    return f"<{name}>{esc(text)}</{name}>"


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el: etree._Element = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        el.text = text
    return el


def _envelope(payload: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV})
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(payload)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def job_logs_reply(
    operation: str,
    namespace: str,
    logs: list[SimJobLog],
    dates: Callable[[float], str],
    *,
    details: bool,
    log_types: frozenset[str] | None = None,
    per_page: int = 1000,
    page: int = 1,
) -> bytes:
    """``getJobLogsReturn`` or ``getJobLogDetailsReturn`` (with detail rows when ``details``)."""
    ns, modern = namespace, VERSIONS[namespace]
    root = etree.Element(f"{{{ns}}}{operation}Return", nsmap={None: ns})
    array = _sub(root, ns, "jobLogArray")
    for log in logs:
        c, item = log.counts, _sub(array, ns, "items")
        for name, value in (
            ("companyHandle", log.company),
            ("jobHandle", log.job_handle),
            ("jobName", log.job_name),
            ("originalJobName", log.original_name),
            ("submitUserEmail", log.user_email),
            ("logType", f"End{log.kind.log_kind}"),
            ("jobSubType", "full" if log.kind.type == "ImageServingPublish" else ""),
            ("startDate", dates(log.start)),
            ("endDate", dates(log.end)),
            ("description", log.description),
            ("fileSuccessCount", c.success),
            ("fileErrorCount", c.error),
            ("fileWarningCount", c.warning),
            ("fileDuplicateCount", c.duplicate),
            ("fileUpdateCount", c.update),
            ("totalFileCount", c.total),
            ("transferSuccessCount", c.transfer_success),
            ("transferErrorCount", c.transfer_error),
            ("transferWarningCount", c.transfer_warning),
            ("fatalError", "true" if c.fatal else "false"),
        ):
            _sub(item, ns, name, str(value))
        if not details:
            continue
        rows = [r for r in log_details(log) if log_types is None or r.log_type in log_types]
        _sub(item, ns, "detailTotalRows", str(len(rows)))
        detail_array = _sub(item, ns, "detailArray")
        for row in rows[(page - 1) * per_page : page * per_page]:
            detail = _sub(detail_array, ns, "items")
            _sub(detail, ns, "logMessage", row.message)
            _sub(detail, ns, "logType", row.log_type)
            if modern:
                _sub(detail, ns, "dateCreated", dates(row.t))
            if row.asset_name is not None:
                _sub(detail, ns, "assetName", row.asset_name)
            if row.asset_type is not None:
                _sub(detail, ns, "assetType", row.asset_type)
    return _envelope(root)


_FAULT_STRINGS = {
    "authenticationFault": "AuthenticationException",
    "authorizationFault": "AuthorizationException",
    "ipsApiFault": "IpsApiException",
}


def fault_reply(fault: SoapFault) -> bytes:
    """A SOAP 1.1 fault envelope carrying ``fault`` as its detail."""
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV})
    soap_fault = etree.SubElement(
        etree.SubElement(env, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault"
    )
    etree.SubElement(soap_fault, "faultcode").text = fault.faultcode
    etree.SubElement(soap_fault, "faultstring").text = _FAULT_STRINGS[fault.element]
    detail = etree.SubElement(
        etree.SubElement(soap_fault, "detail"),
        f"{{{FAULT_NS}}}{fault.element}",
        nsmap={"ns1": FAULT_NS},
    )
    etree.SubElement(detail, f"{{{FAULT_NS}}}code").text = str(fault.code)
    etree.SubElement(detail, f"{{{FAULT_NS}}}reason").text = fault.reason
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def request_envelope(
    operation: str,
    params: dict[str, str] | None = None,
    *,
    namespace: str = NS_2014,
    user: str | None = None,
    password: str | None = None,
    header_namespace: str | None = None,
    header_extra: dict[str, str] | None = None,
) -> bytes:
    """A SOAP 1.1 request as a hand-written client sends it (tests, benchmarks, smoke checks).

    ``header_namespace`` defaults to the body namespace; pass :data:`FAULT_NS` for the
    unversioned ``authHeader``. No header is sent when ``user`` is ``None``.
    """
    header = ""
    if user is not None:
        fields = {
            "user": user,
            "password": password or "",
            "appName": "sim-client",
            "appVersion": "1.0",
            **(header_extra or {}),
        }
        body = "".join(_el(k, v) for k, v in fields.items())
        hns = header_namespace or namespace
        header = f'<soapenv:Header><authHeader xmlns="{hns}">{body}</authHeader></soapenv:Header>'
    param_xml = "".join(_el(k, v) for k, v in (params or {}).items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">'
        f'{header}<soapenv:Body><{operation}Param xmlns="{namespace}">{param_xml}'
        f"</{operation}Param></soapenv:Body></soapenv:Envelope>"
    ).encode()
