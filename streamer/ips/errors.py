"""Typed errors of the IPS client: transport failures, SOAP faults and unusable replies.

Every error carries a short, stable ``kind`` usable as a metric label. Messages never contain the
request (and so never the password): they name what went wrong, the operation and at most a short
excerpt of what the server said. ``str()`` of every error is at most :data:`MAX_MESSAGE_CHARS`
characters plus a note of the full length: it goes into logs, heartbeats and ``/status``, and a
server can send a fault reason of megabytes.
"""

from __future__ import annotations

import re

from lxml import etree

#: Fault families by the local name of the ``soapenv:Fault/detail`` child element.
FAULT_ELEMENTS: tuple[str, ...] = ("authenticationFault", "authorizationFault", "ipsApiFault")
#: The user information of a URL: ``scheme://`` then anything up to the last ``@`` before the path.
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
#: Longest message an error keeps (its start: the kind of fault and its code come first).
MAX_MESSAGE_CHARS = 500


def excerpt(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text``, or its first ``limit`` characters and ``"... (N chars)"`` when it is longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} chars)"


class IpsError(Exception):
    """Base class of every error raised by ``streamer.ips``.

    Raised as such only with ``kind="wsdl"`` (the WSDL cannot be loaded or lacks the job
    operations) or ``kind="request"`` (zeep refused to build the request envelope).
    """

    kind: str = "error"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(excerpt(message))
        if kind is not None:
            self.kind = kind

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else ""


class IpsTransportError(IpsError):
    """The request did not produce a SOAP reply: timeout, connection failure, HTTP error status.

    ``kind`` is one of ``"timeout"``, ``"connection"``, ``"tls"``, ``"http_4xx"``, ``"http_5xx"``
    or ``"http"`` (any other unexpected status); ``status`` is the HTTP status when there was one.
    """

    kind = "connection"

    def __init__(
        self, message: str, *, kind: str = "connection", status: int | None = None
    ) -> None:
        super().__init__(message, kind=kind)
        self.status = status


class IpsReplyError(IpsError):
    """The reply cannot be trusted as a complete answer; never read it as a shorter job list.

    ``kind`` is ``"malformed"`` (not well-formed XML, truncated, empty, not a SOAP envelope,
    nested too deep), ``"namespace"`` (the body is in another API version's namespace),
    ``"schema"`` (wrong body element, a required element missing, an unexpected element, a value
    of the wrong type) or ``"too_large"`` (longer than ``ips.max_reply_bytes``; not read whole).
    """

    kind = "schema"


class IpsFault(IpsError):
    """A SOAP fault returned by IPS (HTTP 500, or 200 with ``faultHttpStatusCode=200``).

    ``code`` and ``reason`` come from the fault detail (``0`` and ``""`` when the fault carries
    no IPS detail); ``fault_string``/``fault_code`` are the SOAP ``faultstring``/``faultcode``.
    The attributes are whole; ``str()`` names the class and the code, then an excerpt of the reason.
    """

    kind = "fault"

    def __init__(
        self, code: int, reason: str, *, fault_string: str = "", fault_code: str = ""
    ) -> None:
        super().__init__(f"{type(self).__name__} {code}: {reason or fault_string}")
        self.code = code
        self.reason = reason
        self.fault_string = fault_string
        self.fault_code = fault_code

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructor arguments: teach pickle (and copy) how to rebuild the fault.
        return (
            _rebuild_fault,
            (type(self), self.code, self.reason, self.fault_string, self.fault_code),
        )


class AuthenticationFault(IpsFault):
    """``authenticationFault``: missing or invalid credentials (codes 10000-10002)."""

    kind = "fault_authentication"


class AuthorizationFault(IpsFault):
    """``authorizationFault``: the user may not do this, or not for this company (20000-20009)."""

    kind = "fault_authorization"


class IpsApiFault(IpsFault):
    """``ipsApiFault``: the request was refused or failed on the server (codes 30000-30003)."""

    kind = "fault_ipsapi"


_BY_ELEMENT: dict[str, type[IpsFault]] = {
    "authenticationFault": AuthenticationFault,
    "authorizationFault": AuthorizationFault,
    "ipsApiFault": IpsApiFault,
}


def _rebuild_fault(
    cls: type[IpsFault], code: int, reason: str, fault_string: str, fault_code: str
) -> IpsFault:
    return cls(code, reason, fault_string=fault_string, fault_code=fault_code)


def fault_class(element: str | None, code: int | None) -> type[IpsFault]:
    """The fault class for a detail element local name, else for the code range, else IpsFault."""
    if element is not None and element in _BY_ELEMENT:
        return _BY_ELEMENT[element]
    if code is not None:
        if 10000 <= code < 20000:
            return AuthenticationFault
        if 20000 <= code < 30000:
            return AuthorizationFault
        if 30000 <= code < 40000:
            return IpsApiFault
    return IpsFault


def make_fault(
    element: str | None, code: int | None, reason: str, *, fault_string: str, fault_code: str
) -> IpsFault:
    """Build the typed fault for a parsed SOAP fault."""
    cls = fault_class(element, code)
    return cls(
        code if code is not None else 0,
        reason,
        fault_string=fault_string,
        fault_code=fault_code,
    )


def fault_from_detail(
    detail: etree._Element | None, *, fault_string: str, fault_code: str
) -> IpsFault:
    """The typed fault for a SOAP fault's ``detail`` element (its first child names the family)."""
    element: str | None = None
    code: int | None = None
    reason = ""
    infos = [] if detail is None else [c for c in detail if isinstance(c.tag, str)]
    if infos:  # comments and PIs are skipped: their tag is not a str
        element = etree.QName(infos[0]).localname
        for part in infos[0]:
            name = etree.QName(part).localname if isinstance(part.tag, str) else ""
            if name == "code":
                try:
                    code = int((part.text or "").strip())
                except ValueError:
                    code = None
            elif name == "reason":
                reason = part.text or ""
    return make_fault(element, code, reason, fault_string=fault_string, fault_code=fault_code)


def scrub(message: str, secret: str) -> str:
    """``message`` with every occurrence of ``secret`` masked (no-op for an empty secret)."""
    return message.replace(secret, "***") if secret else message


def redact_url(url: str) -> str:
    """``url`` with its user and password, if any, replaced: ``https://***@host/path``."""
    return _URL_USERINFO.sub(r"\1***@", url, count=1) if "@" in url else url


def redact_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced (see :func:`redact_url`)."""
    return _URL_USERINFO.sub(r"\1***@", text) if "@" in text else text
