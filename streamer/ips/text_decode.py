"""``getActiveJobs`` replies decoded from their text, not from a tree: the fast full decode.

:func:`decode_scanned` answers only when it can prove that its answer is the tree walk's
(:func:`streamer.ips.decode.decode_job_rows`); otherwise it returns ``None`` and the caller
walks the tree, which gives the exact result or the exact error. The proof:

1. the reply is ``head + region + tail``, cut at its only literal ``jobArray`` start and end
   tags (:mod:`streamer.ips.array_cut`; the region's reader rules out literals inside it);
2. ``head + tail`` parses as a valid reply whose ``jobArray`` is empty and is the one cut at,
   in UTF-8 or ASCII: envelope, fault, body and return element are checked there;
3. the region is well-formed content made of job elements that the schema's patterns spell
   out (:mod:`streamer.ips.row_scan`), every sub-job's content being either the very text of
   a sub-job decoded before under the same namespace bindings and prefix, or one parsed now
   with lxml, in a small document of just the new ones whose root binds the same prefixes
   (a malformed one fails there; each element means what it means in the reply).

So the reply is that valid reply with those jobs in its array, and each value is converted by
the same functions as the tree walk's (:mod:`streamer.ips.values`).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from lxml import etree

from streamer.ips import array_cut, envelope, values
from streamer.ips.errors import IpsReplyError
from streamer.ips.row_scan import ScannedArray, scan_region, xml_text
from streamer.ips.schema import Names, names
from streamer.model import JobSnapshot, SubJob, TaskItemProgress, TaskProgress

__all__ = ["decode_cut", "decode_scanned", "forget_values"]

#: Sub-jobs read from a tree, by context (array prefix and namespace bindings), then by
#: (element name, content text): a job's definition does not change while it runs, so a full
#: decode of jobs seen before reads no tree for them. Bounded like the tree memo, per context.
_SUB_JOB_MEMO: dict[tuple[Any, ...], dict[tuple[Any, ...], SubJob]] = {}
#: Distinct contexts kept: replies of one API version share one; the bound is for hostile input.
_MAX_CONTEXTS = 16


def decode_scanned(body: bytes, namespace: str) -> tuple[JobSnapshot, ...] | None:
    """A ``getActiveJobs`` reply in body ``namespace`` decoded from its text, or ``None`` when
    the proof in the module docstring does not go through (then walk the tree)."""
    cut = array_cut.split(body)
    return None if cut is None else decode_cut(cut, namespace)


def decode_cut(cut: array_cut.Split, namespace: str) -> tuple[JobSnapshot, ...] | None:
    """:func:`decode_scanned` for a reply already cut by :func:`array_cut.split`."""
    if not array_cut.unique_outside_region(cut):
        return None
    array = array_cut.head_tail_array(cut, namespace)
    if array is None:
        return None
    scan = scan_region(cut.region, namespace, cut.prefix)
    if scan is None or not scan.jobs:
        return None  # no jobs: the tree walk of a tiny reply is as cheap
    try:
        with values.gc_paused():
            return _jobs(scan, _context(array, cut.prefix), names(namespace))
    except (ValueError, TypeError, KeyError, IndexError, IpsReplyError, etree.XMLSyntaxError):
        return None  # the tree walk raises the exact error


def forget_values() -> None:
    """Empty every value memo of the decoders (sub-jobs, their trees, timestamps): the next
    decode meets each text for the first time, as after a start (benchmarks measure both)."""
    _SUB_JOB_MEMO.clear()
    values.forget()


def _context(array: etree._Element, prefix: str) -> tuple[Any, ...]:
    """What a sub-job's text means beyond itself: the namespace bindings in scope at the array
    (job elements declare none: they have no attributes), and the array's prefix (under which
    the text was checked to hold no ``jobArray`` tag)."""
    return (prefix, *sorted(array.nsmap.items(), key=lambda kv: kv[0] or ""))


def _jobs(scan: ScannedArray, context: tuple[Any, ...], nm: Names) -> tuple[JobSnapshot, ...]:
    """Model values from scanned texts, converted as the tree walk converts the tree's (an
    empty leaf reads ``""`` here, ``None`` there: both map alike). The constructors take
    their fields by position, in field order: this loop runs once per job and task."""
    read_tasks, read_items, raw_jobs = scan.tasks, scan.items, scan.raw_jobs
    intern, dt_memo, dt, progress_of = values.intern, values.DT_MEMO.get, values.dt, values.progress
    new_job, new_status = values.new_job_snapshot, values.new_job_status
    new_task = values.new_task_progress
    sub_jobs = _sub_jobs(scan, context, nm)
    out: list[JobSnapshot] = []
    append = out.append
    for index, groups in enumerate(scan.jobs):
        raw = index in raw_jobs
        if raw:  # leaves only: the nested contents are matched again as they are
            groups = (*_fixed(groups[:16]), *groups[16:])
        (
            companyHandle, jobHandle, name, originalName, type_, state, submitUserEmail, locale,
            description, serverName, startDate, triggerTime, totalSize, progress, progressMessage,
            lastProgressUpdate, task_text, _sub_name, _sub_text, _empty_sub,
        ) = groups  # fmt: skip
        tasks: tuple[TaskProgress, ...] = ()
        if task_text:
            built = []
            for task in read_tasks(task_text):
                if raw:
                    task = (*_fixed(task[:8]), task[8])
                (
                    taskType, taskState, numProcessed, numProcessing, numPending, taskProgress,
                    taskMessage, taskUpdate, item_text,
                ) = task  # fmt: skip
                built.append(
                    new_task(
                        intern(taskType or ""),
                        intern(taskState or ""),
                        int(numProcessed),  # type: ignore[arg-type]  # None -> TypeError
                        int(numProcessing),  # type: ignore[arg-type]
                        int(numPending),  # type: ignore[arg-type]
                        progress_of(taskProgress),
                        intern(taskMessage or ""),
                        dt_memo(taskUpdate) or dt(taskUpdate),  # type: ignore[arg-type]
                        _items(read_items(item_text), raw) if item_text else (),
                    )
                )
            tasks = tuple(built)
        append(
            new_job(
                intern(companyHandle or ""),
                jobHandle or "",
                name or "",
                originalName or "",
                intern(type_ or ""),
                intern(submitUserEmail or ""),
                intern(locale) if locale else None,
                description or None,
                intern(serverName or ""),
                dt_memo(startDate) or dt(startDate),  # type: ignore[arg-type]
                None if triggerTime is None else dt_memo(triggerTime) or dt(triggerTime),
                new_status(
                    intern(state or ""),
                    int(progress),  # type: ignore[arg-type]
                    intern(progressMessage or ""),
                    dt_memo(lastProgressUpdate) or dt(lastProgressUpdate),  # type: ignore[arg-type]
                    int(totalSize),  # type: ignore[arg-type]
                    tasks,
                ),
                sub_jobs[index],
            )
        )
    return tuple(out)


def _sub_jobs(scan: ScannedArray, context: tuple[Any, ...], nm: Names) -> list[SubJob | None]:
    """Each scanned job's sub-job (``None`` without one): remembered ones, and the others read
    from one small document holding just them, parsed under the array's namespace bindings
    (so any malformed one fails the parse, and the caller walks the tree)."""
    memo = _SUB_JOB_MEMO.get(context)
    if memo is None:
        if len(_SUB_JOB_MEMO) >= _MAX_CONTEXTS:
            _SUB_JOB_MEMO.clear()
        memo = _SUB_JOB_MEMO[context] = {}
    keys: list[tuple[str, str] | None] = []
    for groups in scan.jobs:
        sub_name, sub_text, empty_sub = groups[17:]
        if empty_sub is not None:
            keys.append((empty_sub, ""))
        elif sub_name is not None and sub_text is not None:
            keys.append((sub_name, sub_text))
        else:
            keys.append(None)
    missing = list(dict.fromkeys(k for k in keys if k is not None and k not in memo))
    if missing:
        read = _read_sub_jobs(missing, context, nm)
        if len(memo) + len(read) > values.TREE_MEMO_SIZE:  # start over, keeping this reply's
            kept = {k: memo[k] for k in keys if k is not None and k not in read}
            memo.clear()
            memo.update(kept)
        memo.update(read)
    return [None if key is None else memo[key] for key in keys]


def _read_sub_jobs(
    keys: list[tuple[str, str]], context: tuple[Any, ...], nm: Names
) -> dict[tuple[str, str], SubJob]:
    """Sub-jobs parsed from their texts, in one document whose root binds the prefixes in
    scope at the array: each element means there what it means in the reply."""
    prefix, *bindings = context
    wrap = f"{prefix}jobArray"
    declarations = " ".join(
        f"xmlns:{name}={quoteattr(uri)}" if name else f"xmlns={quoteattr(uri)}"
        for name, uri in bindings
    )
    parts = [f"<{wrap} {declarations}>"]
    for name, text in keys:
        if f"<{prefix}jobArray" in text or f"</{prefix}jobArray" in text:
            raise ValueError("a jobArray tag in a sub-job")  # see array_cut.split
        parts.append(f"<{prefix}{name}>{text}</{prefix}{name}>")
    parts.append(f"</{wrap}>")
    root = etree.fromstring("".join(parts).encode(), envelope.reply_parser())
    if len(root) != len(keys):
        raise ValueError("sub-job texts did not read back one element each")
    return {
        key: values.sub_job(element, nm, key[0]) for key, element in zip(keys, root, strict=True)
    }


def _fixed(texts: tuple[str | None, ...]) -> tuple[str | None, ...]:
    """Leaf texts as an XML parser reads them (see :func:`~streamer.ips.row_scan.xml_text`)."""
    return tuple([None if t is None else xml_text(t) for t in texts])


def _items(rows: list[tuple[str | None, ...]], raw: bool) -> tuple[TaskItemProgress, ...]:
    out = []
    for groups in rows:
        itemName, progress, progressMessage, lastProgressUpdate = _fixed(groups) if raw else groups
        out.append(
            values.new_task_item_progress(
                values.intern(itemName or ""),
                values.progress(progress),
                values.intern(progressMessage or ""),
                values.dt(lastProgressUpdate),
            )
        )
    return tuple(out)
