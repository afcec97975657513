"""The IPS job types as element sequences, per API version: which child element fills which slot.

Each complexType the model is built from is a :class:`Spec`: its leaf elements (text values), then
its nested elements (arrays, sub-jobs), in schema order. Compiled for one body namespace it is a
:class:`SchemaSequence`, which matches the child tags of an element against the schema once per
distinct shape and returns a :class:`Layout`: the leaf texts by slot, the nested children by name.
Sub-job definitions are not described here: they stay generic trees (see
:mod:`streamer.ips.decode`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

from streamer.ips.errors import IpsReplyError
from streamer.model import SUB_JOB_ELEMENTS

_VERSION_RE = re.compile(r"/xsd/(\d{4}-\d{2}-\d{2})")
#: Distinct child shapes kept per sequence: they are few; the bound is for hostile input.
_MAX_SHAPES = 512


class _Absent:
    """The type of :data:`ABSENT`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


#: What :attr:`Layout.leaf_texts` gives for an optional leaf element that is not there (an
#: element that is there without text gives ``None``, as lxml reads it).
ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Spec:
    """A complexType's sequence: leaf elements, then nested ones, each in schema order.

    Suffix ``?``: optional; ``+``: required from 2014-04-03 on, absent before.
    """

    name: str
    leaves: tuple[str, ...]
    nested: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, leaves: str, nested: str = "") -> Spec:
        """A spec from space-separated element names."""
        return cls(name, tuple(leaves.split()), tuple(nested.split()))


ACTIVE_JOB = Spec.of(
    "ActiveJob",
    "companyHandle jobHandle name originalName type state submitUserEmail locale? description? "
    "serverName startDate triggerTime+ totalSize progress progressMessage lastProgressUpdate",
    "taskProgressArray " + " ".join(f"{name}?" for name in SUB_JOB_ELEMENTS),
)
TASK_PROGRESS = Spec.of(
    "TaskProgress",
    "taskType taskState numProcessed numProcessing numPending progress progressMessage "
    "lastProgressUpdate",
    "taskItemProgressArray",
)
TASK_ITEM_PROGRESS = Spec.of(
    "TaskItemProgress", "itemName progress progressMessage lastProgressUpdate"
)
JOB_LOG = Spec.of(
    "JobLog",
    "companyHandle jobHandle jobName originalJobName submitUserEmail logType jobSubType "
    "startDate? endDate? description fileSuccessCount fileErrorCount fileWarningCount "
    "fileDuplicateCount fileUpdateCount totalFileCount transferSuccessCount transferErrorCount "
    "transferWarningCount fatalError detailTotalRows?",
    "detailArray?",
)
JOB_LOG_DETAIL = Spec.of(
    "JobLogDetail",
    "logMessage logType dateCreated+ assetName? assetType? assetHandle?",
    "auxArray?",
)
JOB_LOG_DETAIL_AUX = Spec.of("JobLogDetailAux", "logMessage logType dateCreated?")


def namespace_version(namespace: str) -> str:
    """The API version date of a body namespace (``"2014-04-03"``), ``""`` when unversioned."""
    m = _VERSION_RE.search(namespace)
    return m.group(1) if m else ""


def has_trigger_time(namespace: str) -> bool:
    """Whether ``ActiveJob/triggerTime`` (and ``JobLogDetail/dateCreated``) exist in a version."""
    return namespace_version(namespace) >= "2014-04-03"


def _picker(indices: tuple[int, ...]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """``texts -> (texts[i] for i in indices)`` as one C call (itemgetter), always a tuple."""
    if len(indices) == 1:
        (i,) = indices
        return lambda texts: (texts[i],)
    return itemgetter(*indices)  # a tuple for 2+ indices


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the slots of one child shape are: computed once per shape, shared by elements."""

    #: ``leaf_texts(texts)``, ``texts`` being the children's texts followed by :data:`ABSENT`:
    #: the leaf texts in schema order, ABSENT for a leaf that is not there (its index is -1).
    leaf_texts: Callable[[list[Any]], tuple[Any, ...]]
    #: Child index of each nested slot by element name; -1 when absent.
    nested: Mapping[str, int]


class SchemaSequence:
    """A :class:`Spec` compiled for one namespace: child tags in order and a layout cache."""

    __slots__ = ("cache", "last", "modes", "name", "spec", "tags")

    def __init__(self, spec: Spec, namespace: str) -> None:
        v14 = has_trigger_time(namespace)
        fields = spec.leaves + spec.nested
        self.spec = spec
        self.name = spec.name
        self.tags = tuple(f"{{{namespace}}}{f.rstrip('?+')}" for f in fields)
        # mode: 1 required, 0 optional, -1 not in this API version (always absent)
        self.modes = tuple(
            0 if f[-1] == "?" else (1 if v14 else -1) if f[-1] == "+" else 1 for f in fields
        )
        self.cache: dict[tuple[str, ...], Layout] = {}
        #: The last shape seen and its layout: consecutive elements nearly always share it, and
        #: comparing tag tuples is cheaper than hashing freshly built tag strings.
        self.last: tuple[tuple[str, ...], Layout | None] = (("",), None)  # matches no element

    def layout(self, tags: tuple[str, ...]) -> Layout:
        """The layout of an element with these child tags; raises on a schema violation."""
        last_tags, last_layout = self.last
        if tags == last_tags and last_layout is not None:
            return last_layout
        found = self.cache.get(tags)
        if found is None:
            found = self._layout(self.match(tags))
            if len(self.cache) >= _MAX_SHAPES:
                self.cache.clear()
            self.cache[tags] = found
        self.last = (tags, found)
        return found

    def match(self, tags: tuple[str, ...]) -> tuple[int, ...]:
        """Child index of each slot in schema order (-1 when absent); raises on a violation."""
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

    def _layout(self, indices: tuple[int, ...]) -> Layout:
        leaves = len(self.spec.leaves)
        nested = {
            name.rstrip("?+"): index
            for name, index in zip(self.spec.nested, indices[leaves:], strict=True)
        }
        return Layout(_picker(indices[:leaves]), nested)


class Names:
    """Clark tag names and compiled sequences of one body namespace."""

    def __init__(self, namespace: str) -> None:
        p = self.prefix = f"{{{namespace}}}"
        self.items = p + "items"
        self.active_jobs_return = p + "getActiveJobsReturn"
        self.job_array = p + "jobArray"
        self.job_log_returns = (p + "getJobLogDetailsReturn", p + "getJobLogsReturn")
        self.job_log_array = p + "jobLogArray"
        self.sub_jobs = {p + name: name for name in SUB_JOB_ELEMENTS}
        #: Clark tag -> local name, for sub-job tags already checked to be in this namespace.
        self.local: dict[str, str] = {}
        self.active_job = SchemaSequence(ACTIVE_JOB, namespace)
        self.task = SchemaSequence(TASK_PROGRESS, namespace)
        self.task_item = SchemaSequence(TASK_ITEM_PROGRESS, namespace)
        self.job_log = SchemaSequence(JOB_LOG, namespace)
        self.detail = SchemaSequence(JOB_LOG_DETAIL, namespace)
        self.aux = SchemaSequence(JOB_LOG_DETAIL_AUX, namespace)


@lru_cache(maxsize=16)
def names(namespace: str) -> Names:
    """The (shared) names of a body namespace."""
    return Names(namespace)
