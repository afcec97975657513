"""A ``getActiveJobs`` reply cut around its ``jobArray`` content, at the byte level.

A reply is ``head + region + tail``: ``head`` ends with the ``jobArray`` start tag, ``region`` is
the array's content (the job elements), ``tail`` starts with its end tag. Both fast paths of the
decoder work on the region without walking a tree: the reply cache
(:mod:`streamer.ips.reply_cache`) and the text scan (:mod:`streamer.ips.row_scan`). What makes
the cut trustworthy is stated where it is used; the checks live here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from streamer.ips import envelope
from streamer.ips.errors import IpsError
from streamer.ips.schema import names

__all__ = [
    "SAFE_ENCODINGS",
    "Split",
    "head_tail_array",
    "job_array",
    "real_array",
    "split",
    "unique_outside_region",
    "unique_tags",
]

_JOB_ARRAY = re.compile(rb"<((?:[A-Za-z_][\w.\-]*:)?)jobArray(?=[\s/>])[^>]*>")
#: Encodings in which every ``<`` byte is a ``<`` character and UTF-8 decoding gives the text.
SAFE_ENCODINGS = frozenset({"UTF-8", "UTF8", "US-ASCII", "ASCII"})


@dataclass(frozen=True, slots=True)
class Split:
    """A reply cut around its ``jobArray`` content; ``prefix`` is its tag's (``"ns1:"``)."""

    head: bytes
    region: bytes
    tail: bytes
    prefix: str


def split(body: bytes) -> Split | None:
    """Cut a reply at its first ``jobArray`` start tag and the last end tag of that name."""
    m = _JOB_ARRAY.search(body)
    if m is None:
        return None
    prefix = m.group(1)
    close = body.rfind(b"</" + prefix + b"jobArray")
    if close < m.end():
        return None
    return Split(body[: m.end()], body[m.end() : close], body[close:], prefix.decode())


def unique_tags(body: bytes, cut: Split) -> bool:
    """Whether the cut tags are the only literal ``jobArray`` start and end tags of the reply."""
    prefix = cut.prefix.encode()
    return body.count(b"<" + prefix + b"jobArray") == 1 and (
        body.count(b"</" + prefix + b"jobArray") == 1
    )


def unique_outside_region(cut: Split) -> bool:
    """Whether ``head`` and ``tail`` hold no ``jobArray`` start or end tag literal but the cut
    ones. With the region's own literals ruled out by its reader, this is :func:`unique_tags`
    without reading the region (most of the reply)."""
    prefix = cut.prefix.encode()
    open_tag, end_tag = b"<" + prefix + b"jobArray", b"</" + prefix + b"jobArray"
    return (
        cut.head.count(open_tag) == 1
        and end_tag not in cut.head
        and open_tag not in cut.tail
        and cut.tail.count(end_tag) == 1
    )


def real_array(array: etree._Element, cut: Split) -> bool:
    """Whether a decoded ``jobArray`` is the one cut at, in a byte-safe encoding."""
    prefix = f"{array.prefix}:" if array.prefix else ""
    encoding = (array.getroottree().docinfo.encoding or "").upper()
    return prefix == cut.prefix and encoding in SAFE_ENCODINGS


def job_array(body: bytes, namespace: str) -> etree._Element:
    """The checked ``jobArray`` element of a ``getActiveJobs`` reply (raises like the decoder)."""
    nm = names(namespace)
    return envelope.return_array(body, (nm.active_jobs_return,), nm.job_array)


def head_tail_array(cut: Split, namespace: str) -> etree._Element | None:
    """The ``jobArray`` of ``head + tail`` when that is a valid reply with an empty array (the
    one cut at, in a byte-safe encoding), else None."""
    try:
        array = job_array(cut.head + cut.tail, namespace)
    except IpsError:
        return None
    return array if len(array) == 0 and real_array(array, cut) else None
