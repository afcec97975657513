"""SOAP envelope handling of IPS replies: parsing, faults, and the one return element of a body.

Everything here is about SOAP 1.1 / 1.2 and the shape every IPS reply shares (``Envelope / Body /
<operation>Return / <array> / items*``); nothing here knows what a job is (that is
:mod:`streamer.ips.decode`). Every problem raises :class:`~streamer.ips.errors.IpsReplyError`
or the typed :class:`~streamer.ips.errors.IpsFault` the envelope carries.
"""

from __future__ import annotations

import threading
from typing import cast

from lxml import etree

from streamer.ips.errors import IpsFault, IpsReplyError, fault_from_detail

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"

_ENVELOPES = {f"{{{SOAP11_ENV}}}Envelope": SOAP11_ENV, f"{{{SOAP12_ENV}}}Envelope": SOAP12_ENV}
_THREAD = threading.local()


def reply_parser() -> etree.XMLParser:
    """This thread's reply parser (reusing one saves its setup: small replies parse 2x faster)."""
    parser: etree.XMLParser | None = getattr(_THREAD, "parser", None)
    if parser is None:
        parser = _THREAD.parser = etree.XMLParser(
            huge_tree=True,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            remove_comments=True,
            remove_pis=True,
            # Drops whitespace-only text *between* elements (~20% faster parse); libxml2 keeps it
            # inside an otherwise empty element, so ``<progressMessage> </progressMessage>`` is " ".
            remove_blank_text=True,
            collect_ids=False,
        )
    return parser


def tag(element: etree._Element) -> str:
    """An element's Clark tag name, for messages."""
    return str(element.tag)


def tags(children: list[etree._Element]) -> tuple[str, ...]:
    """Child tags of a parsed tree (always ``str`` after parsing; the stubs allow more)."""
    return cast("tuple[str, ...]", tuple([c.tag for c in children]))


def parse_envelope(body: bytes) -> etree._Element:
    """Parse reply bytes into the SOAP ``Envelope`` element (1.1 or 1.2), or raise IpsReplyError."""
    try:
        root = etree.fromstring(body, reply_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise IpsReplyError(f"reply is not well-formed XML: {exc}", kind="malformed") from exc
    if root is None:
        raise IpsReplyError("reply is empty", kind="malformed")
    if root.getroottree().docinfo.doctype:
        # A SOAP message must not carry a DTD (SOAP 1.1 section 3); entities are a hazard.
        raise IpsReplyError("reply carries a DOCTYPE", kind="malformed")
    if root.tag not in _ENVELOPES:
        raise IpsReplyError(f"reply root is {tag(root)}, not a SOAP Envelope", kind="malformed")
    return root


def _soap_body(envelope: etree._Element) -> etree._Element:
    body = envelope.find(f"{{{_ENVELOPES[tag(envelope)]}}}Body")
    if body is None:
        raise IpsReplyError("SOAP Envelope has no Body", kind="malformed")
    return body


def fault_of(envelope: etree._Element) -> IpsFault | None:
    """The typed fault carried by a SOAP 1.1 or 1.2 envelope, or None when it carries none."""
    env_ns = _ENVELOPES.get(tag(envelope))
    fault = None if env_ns is None else _soap_body(envelope).find(f"{{{env_ns}}}Fault")
    if fault is None:
        return None
    # SOAP 1.1: unqualified faultcode/faultstring/detail; SOAP 1.2: Code/Value, Reason/Text, Detail
    code = fault.findtext("faultcode") or fault.findtext(
        f"{{{SOAP12_ENV}}}Code/{{{SOAP12_ENV}}}Value"
    )
    text = fault.findtext("faultstring") or fault.findtext(
        f"{{{SOAP12_ENV}}}Reason/{{{SOAP12_ENV}}}Text"
    )
    detail = fault.find("detail")
    if detail is None:
        detail = fault.find(f"{{{SOAP12_ENV}}}Detail")
    return fault_from_detail(
        detail, fault_string=(text or "").strip(), fault_code=(code or "").strip()
    )


def raise_for_fault(root: etree._Element) -> None:
    """Raise the typed :class:`IpsFault` when ``root`` (a SOAP Envelope) carries a SOAP Fault."""
    fault = fault_of(root)
    if fault is not None:
        raise fault


def find_fault(body: bytes) -> IpsFault | None:
    """The fault in raw reply bytes, or None when they are not a SOAP envelope with a fault."""
    try:
        return fault_of(parse_envelope(body))
    except IpsReplyError:
        return None


def return_array(body: bytes, expected: tuple[str, ...], array: str) -> etree._Element:
    """The one ``array`` child of the body's one return element (one of the Clark tags
    ``expected``); a fault in the envelope is raised as its typed :class:`IpsFault`."""
    envelope = parse_envelope(body)
    raise_for_fault(envelope)
    children = list(_soap_body(envelope))
    if len(children) != 1:
        raise IpsReplyError(f"SOAP Body has {len(children)} elements, expected 1", kind="schema")
    ret = children[0]
    if ret.tag not in expected:
        if any(tag(ret).rpartition("}")[2] == name.rpartition("}")[2] for name in expected):
            raise IpsReplyError(f"reply {tag(ret)} is not in {expected[0]}", kind="namespace")
        raise IpsReplyError(f"reply body is {tag(ret)}, expected {expected[0]}", kind="schema")
    inner = list(ret)
    if len(inner) != 1 or inner[0].tag != array:
        found = tag(inner[0]) if inner else "nothing"
        raise IpsReplyError(f"{tag(ret)}: expected {array}, found {found}", kind="schema")
    return inner[0]


def items(array: etree._Element, item: str) -> list[etree._Element]:
    """The ``item`` children of an array element; any other child is a schema violation."""
    rows = list(array.iterchildren(item))  # tag filter runs in C: no per-row tag strings
    if len(rows) != len(array):
        odd = next(c for c in array if c.tag != item)
        raise IpsReplyError(f"{tag(array)}: unexpected element {tag(odd)}", kind="schema")
    return rows
