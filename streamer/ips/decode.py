"""Fast, strict decoding of IPS SOAP replies (raw bytes) into :mod:`streamer.model` values.

This is the hot path of every poll: a busy company can have ten thousand active jobs, and zeep's
generic object mapping is far too slow for that. The decoder walks the lxml tree once, with
precompiled Clark-notation tag names per body namespace and a cached "layout" per distinct
sequence of child tags, so each element is looked at once and no XPath is evaluated.

It is as strict as zeep's strict mode about everything it maps: a missing required element, an
element out of order or unexpected, a body in another namespace, a bad value, a truncated or
unparseable document all raise :class:`~streamer.ips.errors.IpsReplyError`. A partial answer must
never look like a shorter job list (every missing job would look completed). The one place it is
looser than zeep: sub-job definitions are kept as an opaque generic tree and not validated against
their (large) schemas; nothing downstream computes on them.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

from lxml import etree

from streamer.ips.errors import IpsFault, IpsReplyError, fault_from_detail
from streamer.model import (
    SUB_JOB_ELEMENTS,
    JobLog,
    JobSnapshot,
    JobStatus,
    SubJob,
    TaskItemProgress,
    TaskProgress,
    XmlTree,
)

if TYPE_CHECKING:
    from streamer.ips.reply_cache import ActiveJobsCache

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"

_ENVELOPES = {f"{{{SOAP11_ENV}}}Envelope": SOAP11_ENV, f"{{{SOAP12_ENV}}}Envelope": SOAP12_ENV}
_VERSION_RE = re.compile(r"/xsd/(\d{4}-\d{2}-\d{2})")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_fromisoformat = datetime.fromisoformat
#: Texts that repeat across jobs (states, types, users, servers, messages) are interned: a
#: tracked job then holds shared strings, not copies (memory at 100,000 tracked jobs).
_intern = sys.intern
#: xsd:dateTime text -> value. Timestamps repeat within a job (startDate = triggerTime, a task's
#: update = the job's) and across polls; one shared object is cheaper to build and to keep.
_DT_MEMO: dict[str, datetime] = {}
_DT_MEMO_SIZE = 1 << 16
#: Sub-job definitions repeat across jobs (same options, same e-mail setting): share the trees.
_TREE_MEMO: dict[XmlTree, XmlTree] = {}
_TREE_MEMO_SIZE = 1 << 14
_THREAD = threading.local()
_T = TypeVar("_T")


def _constructor(cls: type[_T]) -> Callable[..., _T]:
    """A positional constructor for a frozen, slotted model dataclass, about twice as fast.

    The ``__init__`` that dataclasses generates for these classes calls ``object.__setattr__``
    once per field (there is no ``__post_init__``, no converter); this function sets the same
    slots through their descriptors, without its per-field global and attribute lookups. The
    objects are the same: equal, hashable, frozen. Generated once per class, as dataclasses
    generates ``__init__``.
    """
    if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    if hasattr(cls, "__post_init__") or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} has a __post_init__ or no slots")
    names = [f.name for f in dataclasses.fields(cls)]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{n}": cls.__dict__[n].__set__ for n in names})
    lines = [f"def make({', '.join(names)}):", "    o = _new(_cls)"]
    lines += [f"    _set_{n}(o, {n})" for n in names]
    lines.append("    return o")
    exec("\n".join(lines), scope)  # the technique dataclasses uses for __init__
    make: Callable[..., _T] = scope["make"]
    make.__qualname__ = make.__name__ = f"new_{cls.__name__}"
    return make


_JobSnapshot = _constructor(JobSnapshot)
_JobStatus = _constructor(JobStatus)
_TaskProgress = _constructor(TaskProgress)
_TaskItemProgress = _constructor(TaskItemProgress)
_SubJob = _constructor(SubJob)

# Schema sequences in order. Suffix ``?``: optional; ``+``: required from 2014-04-03 on, absent
# before. Only the types the model is built from; sub-job definitions stay generic trees.
_ACTIVE_JOB = (
    "companyHandle jobHandle name originalName type state submitUserEmail locale? description? "
    "serverName startDate triggerTime+ totalSize progress progressMessage lastProgressUpdate "
    "taskProgressArray " + " ".join(f"{name}?" for name in SUB_JOB_ELEMENTS)
)
_TASK = (
    "taskType taskState numProcessed numProcessing numPending progress progressMessage "
    "lastProgressUpdate taskItemProgressArray"
)
_TASK_ITEM = "itemName progress progressMessage lastProgressUpdate"
_JOB_LOG = (
    "companyHandle jobHandle jobName originalJobName submitUserEmail logType jobSubType "
    "startDate? endDate? description fileSuccessCount fileErrorCount fileWarningCount "
    "fileDuplicateCount fileUpdateCount totalFileCount transferSuccessCount transferErrorCount "
    "transferWarningCount fatalError detailTotalRows? detailArray?"
)
_DETAIL = "logMessage logType dateCreated+ assetName? assetType? assetHandle? auxArray?"
_AUX = "logMessage logType dateCreated?"


def namespace_version(namespace: str) -> str:
    """The API version date of a body namespace (``"2014-04-03"``), ``""`` when unversioned."""
    m = _VERSION_RE.search(namespace)
    return m.group(1) if m else ""


def has_trigger_time(namespace: str) -> bool:
    """Whether ``ActiveJob/triggerTime`` (and ``JobLogDetail/dateCreated``) exist in a version."""
    return namespace_version(namespace) >= "2014-04-03"


class _Seq:
    """A schema sequence for one namespace: child tags in order, and a layout cache."""

    __slots__ = ("cache", "last", "modes", "name", "tags")

    def __init__(self, name: str, ns: str, spec: str) -> None:
        v14 = has_trigger_time(ns)
        fields = spec.split()
        self.name = name
        self.tags = tuple(f"{{{ns}}}{f.rstrip('?+')}" for f in fields)
        # mode: 1 required, 0 optional, -1 not in this API version (its slot stays -1)
        self.modes = tuple(
            0 if f[-1] == "?" else (1 if v14 else -1) if f[-1] == "+" else 1 for f in fields
        )
        self.cache: dict[tuple[str, ...], tuple[int, ...]] = {}
        #: The last shape seen and its layout: consecutive elements nearly always share it, and
        #: comparing tag tuples is cheaper than hashing freshly built tag strings.
        self.last: tuple[tuple[str, ...], tuple[int, ...]] = (("",), ())  # matches no element

    def layout(self, tags: tuple[str, ...]) -> tuple[int, ...]:
        """Child index of each schema slot (-1 when absent); raises on a schema violation."""
        last = self.last
        if tags == last[0]:
            return last[1]
        lay = self.cache.get(tags)
        if lay is None:
            lay = self._match(tags)
            if len(self.cache) >= 512:  # distinct shapes are few; bound hostile input anyway
                self.cache.clear()
            self.cache[tags] = lay
        self.last = (tags, lay)
        return lay

    def _match(self, tags: tuple[str, ...]) -> tuple[int, ...]:
        out: list[int] = []
        i, n = 0, len(tags)
        for tag, mode in zip(self.tags, self.modes, strict=True):
            if mode >= 0 and i < n and tags[i] == tag:
                out.append(i)
                i += 1
            elif mode == 1:
                found = f", found {tags[i]}" if i < n else ""
                raise IpsReplyError(f"{self.name}: missing element {tag}{found}", kind="schema")
            else:
                out.append(-1)
        if i < n:
            raise IpsReplyError(f"{self.name}: unexpected element {tags[i]}", kind="schema")
        return tuple(out)


class _Names:
    """Precompiled Clark tag names and sequences for one body namespace."""

    def __init__(self, ns: str) -> None:
        p = self.prefix = f"{{{ns}}}"
        self.items = p + "items"
        self.active_jobs_return = p + "getActiveJobsReturn"
        self.job_array = p + "jobArray"
        self.job_log_returns = (p + "getJobLogDetailsReturn", p + "getJobLogsReturn")
        self.job_log_array = p + "jobLogArray"
        self.sub_jobs = {p + name: name for name in SUB_JOB_ELEMENTS}
        #: Clark tag -> local name, for sub-job tags already checked to be in this namespace.
        self.local: dict[str, str] = {}
        self.active_job = _Seq("ActiveJob", ns, _ACTIVE_JOB)
        self.task = _Seq("TaskProgress", ns, _TASK)
        self.task_item = _Seq("TaskItemProgress", ns, _TASK_ITEM)
        self.job_log = _Seq("JobLog", ns, _JOB_LOG)
        self.detail = _Seq("JobLogDetail", ns, _DETAIL)
        self.aux = _Seq("JobLogDetailAux", ns, _AUX)


@lru_cache(maxsize=16)
def _names(namespace: str) -> _Names:
    return _Names(namespace)


# ------------------------------------------------------------------------------------------
# Envelope, body and faults
# ------------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
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


def parse_envelope(body: bytes) -> etree._Element:
    """Parse reply bytes into the SOAP ``Envelope`` element (1.1 or 1.2), or raise IpsReplyError."""
    try:
        root = etree.fromstring(body, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise IpsReplyError(f"reply is not well-formed XML: {exc}", kind="malformed") from exc
    if root is None:
        raise IpsReplyError("reply is empty", kind="malformed")
    if root.getroottree().docinfo.doctype:
        # A SOAP message must not carry a DTD (SOAP 1.1 section 3); entities are a hazard.
        raise IpsReplyError("reply carries a DOCTYPE", kind="malformed")
    if root.tag not in _ENVELOPES:
        raise IpsReplyError(f"reply root is {_tag(root)}, not a SOAP Envelope", kind="malformed")
    return root


def _tags(children: list[etree._Element]) -> tuple[str, ...]:
    """Child tags of a parsed tree (always ``str`` after parsing; the stubs allow more)."""
    return cast("tuple[str, ...]", tuple([c.tag for c in children]))


def _tag(element: etree._Element) -> str:
    """An element's Clark tag name, for messages."""
    return str(element.tag)


def _soap_body(envelope: etree._Element) -> etree._Element:
    body = envelope.find(f"{{{_ENVELOPES[_tag(envelope)]}}}Body")
    if body is None:
        raise IpsReplyError("SOAP Envelope has no Body", kind="malformed")
    return body


def fault_of(envelope: etree._Element) -> IpsFault | None:
    """The typed fault carried by a SOAP 1.1 or 1.2 envelope, or None when it carries none."""
    env_ns = _ENVELOPES.get(_tag(envelope))
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


def _return_array(
    body: bytes, expected: tuple[str, ...], array: str, items: str
) -> list[etree._Element]:
    """The ``items`` of the one array child of the body's return element (one of ``expected``)."""
    return _items(_return_element(body, expected, array), items)


def _return_element(body: bytes, expected: tuple[str, ...], array: str) -> etree._Element:
    """The one ``array`` child of the body's one return element (one of ``expected``)."""
    envelope = parse_envelope(body)
    raise_for_fault(envelope)
    children = list(_soap_body(envelope))
    if len(children) != 1:
        raise IpsReplyError(f"SOAP Body has {len(children)} elements, expected 1", kind="schema")
    ret = children[0]
    if ret.tag not in expected:
        if any(_tag(ret).rpartition("}")[2] == tag.rpartition("}")[2] for tag in expected):
            raise IpsReplyError(f"reply {_tag(ret)} is not in {expected[0]}", kind="namespace")
        raise IpsReplyError(f"reply body is {_tag(ret)}, expected {expected[0]}", kind="schema")
    inner = list(ret)
    if len(inner) != 1 or inner[0].tag != array:
        found = _tag(inner[0]) if inner else "nothing"
        raise IpsReplyError(f"{_tag(ret)}: expected {array}, found {found}", kind="schema")
    return inner[0]


def _items(array: etree._Element, items: str) -> list[etree._Element]:
    """The ``items`` children of an array element; any other child is a schema violation."""
    rows = list(array.iterchildren(items))  # tag filter runs in C: no per-row tag strings
    if len(rows) != len(array):
        odd = next(c for c in array if c.tag != items)
        raise IpsReplyError(f"{_tag(array)}: unexpected element {_tag(odd)}", kind="schema")
    return rows


# ------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------


def _dt(text: Any) -> datetime:
    """xsd:dateTime to an aware datetime (no offset means UTC); memoised by text."""
    value = _DT_MEMO.get(text)
    if value is None:
        try:
            value = _fromisoformat(text)  # None -> TypeError, reported by the caller
        except ValueError:
            value = _fromisoformat(text.strip())  # xsd:dateTime allows surrounding whitespace
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if len(_DT_MEMO) >= _DT_MEMO_SIZE:
            _DT_MEMO.clear()
        _DT_MEMO[text] = value
    return value


def _bool(text: str | None) -> bool:
    try:
        return _BOOLEANS[(text or "").strip()]
    except KeyError:
        raise ValueError(f"invalid xsd:boolean {text!r}") from None


def _tree(element: etree._Element, local: dict[str, str], prefix: str) -> XmlTree:
    """A sub-job element's children as a generic tree; all must be in ``prefix``'s namespace.

    Elements with neither children nor text (or only whitespace) are left out: zeep maps them,
    simple or complex, to ``None`` exactly like absent ones, and both decode paths must agree.
    """
    out: list[tuple[str, str | XmlTree]] = []
    append = out.append
    for child in element:
        tag = cast(str, child.tag)
        name = local.get(tag)
        if name is None:  # first sighting of this tag: check its namespace once
            if not tag.startswith(prefix):
                raise IpsReplyError(f"{_tag(element)}: unexpected element {tag}", kind="schema")
            if len(local) >= 4096:
                local.clear()
            name = local[tag] = tag[len(prefix) :]
        # Leaves first (most elements): no schema type here has mixed content.
        text = child.text
        if text is not None and not text.isspace():
            append((name, _intern(text)))
        elif len(child):
            append((name, _tree(child, local, prefix)))
    return tuple(out)


def _sub_job(element: etree._Element, nm: _Names, name: str) -> SubJob:
    """The sub-job of an ActiveJob, its tree shared with equal ones decoded before."""
    tree = _tree(element, nm.local, nm.prefix)
    shared = _TREE_MEMO.get(tree)
    if shared is None:
        if len(_TREE_MEMO) >= _TREE_MEMO_SIZE:
            _TREE_MEMO.clear()
        shared = _TREE_MEMO[tree] = tree
    return _SubJob(name, shared)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while mapping: the values are acyclic and a 10,000-job reply creates
    ~10^6 objects, each allocation burst otherwise triggering generation scans."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ------------------------------------------------------------------------------------------
# getActiveJobs. The three mappers are the hot loop (once per job/task/item): children listed
# once, their tag tuple looked up in the layout cache, texts read once, values built
# positionally. int(None)/_dt(None) raise TypeError, which the caller reports with the job index.
# ------------------------------------------------------------------------------------------


def decode_active_jobs(
    body: bytes, namespace: str, cache: ActiveJobsCache | None = None
) -> tuple[JobSnapshot, ...]:
    """Decode a ``getActiveJobs`` reply in body ``namespace`` into job snapshots, in reply order.

    With a per-company ``cache`` (:class:`~streamer.ips.reply_cache.ActiveJobsCache`), job
    elements whose bytes did not change since an earlier reply are not parsed again: the earlier
    :class:`JobSnapshot` objects are returned. The result (or the error) is the same either way.
    """
    if cache is not None:
        return cache.decode(body, namespace)
    return decode_job_rows(job_array(body, namespace), namespace)


def job_array(body: bytes, namespace: str) -> etree._Element:
    """The checked ``jobArray`` element of a ``getActiveJobs`` reply (raises like the decoder)."""
    nm = _names(namespace)
    return _return_element(body, (nm.active_jobs_return,), nm.job_array)


def decode_job_rows(array: etree._Element, namespace: str) -> tuple[JobSnapshot, ...]:
    """Decode the ``items`` of a checked ``jobArray`` (see :func:`job_array`), in order."""
    nm = _names(namespace)
    rows = _items(array, nm.items)
    jobs: list[JobSnapshot] = []
    append = jobs.append
    try:
        with _gc_paused():
            for row in rows:
                append(_active_job(row, nm))
    except (ValueError, TypeError) as exc:
        raise IpsReplyError(f"ActiveJob #{len(jobs)}: invalid value: {exc}", kind="schema") from exc
    return tuple(jobs)


def _opt(text: str | None) -> str | None:
    return None if text is None else _intern(text)


def _active_job(row: etree._Element, nm: _Names) -> JobSnapshot:
    ch = list(row)
    tags: tuple[Any, ...] = tuple([c.tag for c in ch])  # str after parsing
    seq = nm.active_job
    last = seq.last
    lay = last[1] if tags == last[0] else seq.layout(tags)
    t: list[Any] = [c.text for c in ch]  # str | None; int(None) -> TypeError, reported
    tpa = lay[16]
    task_rows = ch[tpa]
    tasks = tuple([_task(x, nm) for x in _items(task_rows, nm.items)]) if len(task_rows) else ()
    sub_job: SubJob | None = None
    extra = len(ch) - tpa - 1  # sub-jobs are the last slots of the sequence
    if extra:
        if extra > 1:
            raise IpsReplyError("ActiveJob: more than one sub-job element", kind="schema")
        sub_job = _sub_job(ch[-1], nm, nm.sub_jobs[tags[-1]])
    i7, i8, i11 = lay[7], lay[8], lay[11]
    # Positional, in JobSnapshot/JobStatus field order; slot numbers follow _ACTIVE_JOB.
    # Handles and names are unique per job; the other texts repeat and are interned.
    # fmt: off
    return _JobSnapshot(
        _intern(t[lay[0]] or ""), t[lay[1]] or "", t[lay[2]] or "", t[lay[3]] or "",
        _intern(t[lay[4]] or ""), _intern(t[lay[6]] or ""),
        _opt(t[i7]) if i7 >= 0 else None,  # lxml: empty text is None
        t[i8] if i8 >= 0 else None, _intern(t[lay[9]] or ""),
        _dt(t[lay[10]]), _dt(t[i11]) if i11 >= 0 else None,
        _JobStatus(_intern(t[lay[5]] or ""), int(t[lay[13]]), _intern(t[lay[14]] or ""),
                  _dt(t[lay[15]]), int(t[lay[12]]), tasks),
        sub_job,
    )
    # fmt: on


def _task(row: etree._Element, nm: _Names) -> TaskProgress:
    ch = list(row)
    tags: tuple[Any, ...] = tuple([c.tag for c in ch])  # str after parsing
    seq = nm.task
    if tags != seq.tags:  # every TaskProgress element is required: one valid shape
        seq.layout(tags)  # raises the schema error
    texts: list[Any] = [c.text for c in ch]  # str | None; int(None) -> TypeError, reported
    task_type, state, processed, processing, pending, progress, message, updated, _ = texts
    item_rows = ch[8]
    items = (
        tuple([_task_item(i, nm) for i in _items(item_rows, nm.items)]) if len(item_rows) else ()
    )
    # fmt: off
    return _TaskProgress(
        _intern(task_type or ""), _intern(state or ""), int(processed), int(processing),
        int(pending), float(progress), _intern(message or ""), _dt(updated), items,
    )
    # fmt: on


def _task_item(row: etree._Element, nm: _Names) -> TaskItemProgress:
    ch = list(row)
    tags: tuple[Any, ...] = tuple([c.tag for c in ch])  # str after parsing
    seq = nm.task_item
    if tags != seq.tags:  # every TaskItemProgress element is required: one valid shape
        seq.layout(tags)  # raises the schema error
    texts: list[Any] = [c.text for c in ch]  # str | None; float(None) -> TypeError, reported
    name, progress, message, updated = texts
    return _TaskItemProgress(
        _intern(name or ""), float(progress), _intern(message or ""), _dt(updated)
    )


# ------------------------------------------------------------------------------------------
# getJobLogDetails / getJobLogs
# ------------------------------------------------------------------------------------------


def decode_job_logs(
    body: bytes, namespace: str, *, operation: str | None = None
) -> tuple[JobLog, ...]:
    """Decode a ``getJobLogDetails`` (or ``getJobLogs``) reply into job logs, in reply order.

    ``operation`` pins the expected return element; by default either operation's is accepted.
    """
    nm = _names(namespace)
    expected = nm.job_log_returns if operation is None else (f"{nm.prefix}{operation}Return",)
    rows = _return_array(body, expected, nm.job_log_array, nm.items)
    logs: list[JobLog] = []
    try:
        with _gc_paused():
            for row in rows:
                logs.append(_job_log(row, nm))
    except (ValueError, TypeError) as exc:
        raise IpsReplyError(f"JobLog #{len(logs)}: invalid value: {exc}", kind="schema") from exc
    return tuple(logs)


def _job_log(row: etree._Element, nm: _Names) -> JobLog:
    ch = list(row)
    lay = nm.job_log.layout(_tags(ch))
    t: list[Any] = [c.text for c in ch]  # str | None; int(None) -> TypeError, reported
    detail_types: list[str] = []
    if lay[21] >= 0:
        for detail in _items(ch[lay[21]], nm.items):
            dch = list(detail)
            dlay = nm.detail.layout(_tags(dch))
            if dlay[2] >= 0:
                _dt(dch[dlay[2]].text)  # validated, not kept
            if dlay[6] >= 0:
                for aux in _items(dch[dlay[6]], nm.items):
                    ach = list(aux)
                    alay = nm.aux.layout(_tags(ach))
                    if alay[2] >= 0:
                        _dt(ach[alay[2]].text)
            detail_types.append(dch[dlay[1]].text or "")
    if lay[20] >= 0:
        int(t[lay[20]])  # detailTotalRows: validated, not kept
    # Positional, in JobLog field order: handles, names, logType, dates, 9 counts, fatalError.
    # fmt: off
    return JobLog(
        t[lay[0]] or "", t[lay[1]] or "", t[lay[2]] or "", t[lay[3]] or "", t[lay[5]] or "",
        _dt(t[lay[7]]) if lay[7] >= 0 else None, _dt(t[lay[8]]) if lay[8] >= 0 else None,
        int(t[lay[10]]), int(t[lay[11]]), int(t[lay[12]]), int(t[lay[13]]), int(t[lay[14]]),
        int(t[lay[15]]), int(t[lay[16]]), int(t[lay[17]]), int(t[lay[18]]),
        _bool(t[lay[19]]), tuple(detail_types),
    )
    # fmt: on
