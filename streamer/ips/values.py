"""Model values from IPS reply texts: conversions, memos and fast constructors.

Shared by both ``getActiveJobs`` decoders, the tree walk (:mod:`streamer.ips.decode`) and the
text scan (:mod:`streamer.ips.text_decode`), so that one text always maps to one value:

* a task's or task item's ``progress`` that is not finite (xsd:double allows ``NaN``, ``INF``,
  ``-INF``) is read as ``0.0``, as if no progress was reported: NaN is unequal to itself, so
  every poll would otherwise see the job move and publish a progress event;
* sub-job definitions are kept as an opaque generic tree and not validated against their (large)
  schemas; nothing downstream computes on them. A tree nested deeper than
  :data:`MAX_SUB_JOB_DEPTH` levels under its job is refused as a malformed reply (kind
  ``"malformed"``): such a reply is hostile or broken, and walking it would exhaust the stack.
"""

from __future__ import annotations

import gc
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from streamer.ips import envelope
from streamer.ips.constructors import fast_constructor
from streamer.ips.errors import IpsReplyError
from streamer.ips.schema import ABSENT, Names
from streamer.model import JobSnapshot, JobStatus, SubJob, TaskItemProgress, TaskProgress, XmlTree

#: Deepest nesting of a sub-job tree, counted in elements below the ``ActiveJob`` (the sub-job
#: element is level 1). The real schemas nest a handful of levels; lxml accepts 2,048 (huge_tree).
MAX_SUB_JOB_DEPTH = 256

_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_fromisoformat = datetime.fromisoformat
_isfinite = math.isfinite
#: Texts that repeat across jobs (states, types, users, servers, messages) are interned: a
#: tracked job then holds shared strings, not copies (memory at 100,000 tracked jobs).
intern = sys.intern
#: xsd:dateTime text -> value. Timestamps repeat within a job (startDate = triggerTime, a task's
#: update = the job's) and across polls; one shared object is cheaper to build and to keep.
DT_MEMO: dict[str, datetime] = {}
_DT_MEMO_SIZE = 1 << 16
#: Sub-job definitions repeat across jobs (same options, same e-mail setting): share the trees.
_TREE_MEMO: dict[XmlTree, XmlTree] = {}
TREE_MEMO_SIZE = 1 << 14

new_job_snapshot = fast_constructor(JobSnapshot)
new_job_status = fast_constructor(JobStatus)
new_task_progress = fast_constructor(TaskProgress)
new_task_item_progress = fast_constructor(TaskItemProgress)
new_sub_job = fast_constructor(SubJob)


# ------------------------------------------------------------------------------------------
# Values. A required element without text reaches int(None)/float(None)/dt(None), whose
# TypeError the row loops report with the row index.
# ------------------------------------------------------------------------------------------


def forget() -> None:
    """Empty the memos of this module (timestamps, sub-job trees)."""
    DT_MEMO.clear()
    _TREE_MEMO.clear()


def dt(text: Any) -> datetime:
    """xsd:dateTime to an aware datetime (no offset means UTC); memoised by text."""
    value = DT_MEMO.get(text)
    if value is None:
        try:
            value = _fromisoformat(text)  # None -> TypeError, reported by the caller
        except ValueError:
            value = _fromisoformat(text.strip())  # xsd:dateTime allows surrounding whitespace
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if len(DT_MEMO) >= _DT_MEMO_SIZE:
            DT_MEMO.clear()
        DT_MEMO[text] = value
    return value


def opt_dt(text: Any) -> datetime | None:
    """An optional xsd:dateTime: None when the element is ABSENT (an empty one is invalid)."""
    return None if text is ABSENT else dt(text)


def boolean(text: str | None) -> bool:
    try:
        return _BOOLEANS[(text or "").strip()]
    except KeyError:
        raise ValueError(f"invalid xsd:boolean {text!r}") from None


def progress(text: Any) -> float:
    """An xsd:double progress; NaN and infinities read as 0.0 (see the module docstring)."""
    value = float(text)
    return value if _isfinite(value) else 0.0


def opt(text: Any) -> str | None:
    """An optional string: None when the element is ABSENT or empty, else the interned text."""
    return None if text is None or text is ABSENT else intern(text)


def _tree(element: etree._Element, local: dict[str, str], prefix: str, depth: int) -> XmlTree:
    """A sub-job element's children as a generic tree; all must be in ``prefix``'s namespace.

    ``depth`` is the element's level under its job (the sub-job element is 1): no element may
    be deeper than :data:`MAX_SUB_JOB_DEPTH`, so the recursion stays far from Python's limit,
    also in a worker thread with a deep caller stack. Elements with neither children nor text
    (or only whitespace) are left out: zeep maps them, simple or complex, to ``None`` exactly
    like absent ones, and both decode paths must agree.
    """
    if depth >= MAX_SUB_JOB_DEPTH and len(element):
        raise IpsReplyError(
            f"{envelope.tag(element)}: sub-job nested deeper than {MAX_SUB_JOB_DEPTH} levels",
            kind="malformed",
        )
    out: list[tuple[str, str | XmlTree]] = []
    append = out.append
    for child in element:
        tag: str = child.tag  # type: ignore[assignment]  # always str after parsing
        name = local.get(tag)
        if name is None:  # first sighting of this tag: check its namespace once
            if not tag.startswith(prefix):
                raise IpsReplyError(
                    f"{envelope.tag(element)}: unexpected element {tag}", kind="schema"
                )
            if len(local) >= 4096:
                local.clear()
            name = local[tag] = tag[len(prefix) :]
        # Leaves first (most elements): no schema type here has mixed content.
        text = child.text
        if text is not None and not text.isspace():
            append((name, intern(text)))
        elif len(child):
            append((name, _tree(child, local, prefix, depth + 1)))
    return tuple(out)


def sub_job(element: etree._Element, nm: Names, name: str) -> SubJob:
    """The sub-job of an ActiveJob, its tree shared with equal ones decoded before."""
    tree = _tree(element, nm.local, nm.prefix, 1)
    shared = _TREE_MEMO.get(tree)
    if shared is None:
        if len(_TREE_MEMO) >= TREE_MEMO_SIZE:
            _TREE_MEMO.clear()
        shared = _TREE_MEMO[tree] = tree
    return new_sub_job(element=name, fields=shared)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while mapping: the values are acyclic and a 10,000-job reply creates
    ~10^6 objects, each allocation burst otherwise triggering generation scans."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
