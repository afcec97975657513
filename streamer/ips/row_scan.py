"""Where the texts of a ``getActiveJobs`` job array are, found by regular expressions (fast path).

Walking ten thousand job elements in lxml from Python costs a proxy object, a tag string and a
text string per element: most of a full decode. The array's content in the *reply text* can be
matched instead, one compiled pattern per job that spells out the ``ActiveJob`` sequence of the
schema: every leaf's text comes back from C as a match group.

:func:`scan_region` is one step of a proof that :func:`streamer.ips.text_decode.decode_scanned`
completes; when a step fails, the tree walk gives the exact result or error. The region it
gets is the content of the reply's one ``jobArray`` (cut at its only literal tags, and ``head
+ tail`` parsed as a valid reply with an empty array: :mod:`streamer.ips.array_cut`). Here:

1. *The region is a sequence of job elements.* A job pattern is a literal sequence of tags
   named in the schema, in its order, the optional elements optional, ``[^<]*`` texts (a leaf
   has no child element) and XML white space between elements; the arrays of tasks and task
   items are spelled out the same way. The one open part, a sub-job's content, may hold any
   tag except a start or end tag of its own name, a comment, CDATA or a processing
   instruction: so every ``<`` in it starts a tag, and its first end tag of its name is its
   own. Matches are taken back to back and must consume the region (white space aside).
2. *The region is well-formed content,* so the whole reply is well-formed: its tags are
   literal and balanced; each text holds only XML characters (no C0 control but tab, line
   feed and carriage return; no U+FFFE or U+FFFF; UTF-8 decoding refuses the rest), no
   ``]]>``, and each ``&`` starts a reference to a predefined entity (there is no DTD: ``head``
   parsed without one) or to a legal character. A sub-job's content is checked by its decoder
   (:mod:`streamer.ips.text_decode`): it is the very text of a sub-job decoded before under
   the same namespace bindings, or lxml parses it now under those bindings.
3. *Texts as lxml reads them.* A leaf's text is the characters between its tags with line ends
   normalised (XML 1.0 section 2.11), then references replaced (a ``&#13;`` stays a carriage
   return). libxml2 keeps white space inside an element without children, as the pattern does.

Anything else (attributes on job elements, other prefixes, a comment, an unknown element, a
character that is not allowed) fails a step and takes the tree walk.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from streamer.ips.schema import (
    ACTIVE_JOB,
    TASK_ITEM_PROGRESS,
    TASK_PROGRESS,
    Spec,
    has_trigger_time,
)
from streamer.model import SUB_JOB_ELEMENTS

__all__ = ["ScannedArray", "scan_region", "xml_text"]

_WS = "[ \t\r\n]*"
#: Leaves of type xsd:string. For them an empty element (``<a/>``, ``<a></a>``) reads like an
#: absent one (lxml's ``None``, mapped to ``""`` or ``None``); a number or date must have text,
#: so their patterns accept only ``<a>text</a>``, and an empty one fails in the tree walk.
_STRING_LEAVES = frozenset(
    {
        "companyHandle",
        "jobHandle",
        "name",
        "originalName",
        "type",
        "state",
        "submitUserEmail",
        "locale",
        "description",
        "serverName",
        "progressMessage",
        "taskType",
        "taskState",
        "itemName",
    }
)
_REFERENCE = re.compile(r"&(?:#x([0-9A-Fa-f]+)|#([0-9]+)|(lt|gt|amp|quot|apos));")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
_LEADING_WS = re.compile(_WS)


#: A character of text (and of a sub-job's tags): not ``<``, and not one of the C0 controls
#: XML forbids (all but tab, line feed and carriage return).
_TEXT = r"[^<\x00-\x08\x0b\x0c\x0e-\x1f]"


def _legal(code: int) -> bool:
    """Whether a code point is an XML 1.0 ``Char``."""
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _characters_ok(text: str) -> bool:
    """Whether a region's text holds no U+FFFE, U+FFFF or ``]]>`` (the patterns refuse the C0
    controls; UTF-8 decoding refused surrogates and malformed sequences). Searches are for
    rare characters, one at a time: str.find skips a one-byte-wide text at once for U+FFFE and
    U+FFFF, and runs memchr for one character (a longer needle is searched several times
    slower)."""
    if text.find("\ufffe") >= 0 or text.find("\uffff") >= 0:
        return False
    return not any(text.startswith("]]>", at) for at in _positions(text, "]"))


def _references_ok(text: str, ampersands: list[int]) -> bool:
    """Whether each ``&`` at these positions starts a reference to a predefined entity or to a
    legal character."""
    match = _REFERENCE.match
    for at in ampersands:
        m = match(text, at)
        if m is None:
            return False
        hex_code, dec_code, _name = m.groups()
        if hex_code is not None or dec_code is not None:
            digits = hex_code or dec_code
            if len(digits) > 8 or not _legal(int(digits, 16 if hex_code else 10)):
                return False
    return True


def _reference(m: re.Match[str]) -> str:
    hex_code, dec_code, name = m.groups()
    if name is not None:
        return _ENTITIES[name]
    return chr(int(hex_code, 16) if hex_code is not None else int(dec_code))


def xml_text(raw: str) -> str:
    """Raw characters between two tags as an XML parser reads them: line ends normalised, then
    entity and character references replaced (a ``&#13;`` stays a carriage return)."""
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    if "&" in raw:
        raw = _REFERENCE.sub(_reference, raw)
    return raw


def _leaf(p: str, field: str, namespace: str, capture: bool, ws: str) -> str:
    """The pattern of one leaf element of a sequence (``field`` with its ``?``/``+`` suffix):
    ``?`` optional, ``+`` required where the API version has it and absent before."""
    if field.endswith("+") and not has_trigger_time(namespace):
        # Not in this API version: the element must be absent; the group still exists (None).
        return "(?:((?!)))?" if capture else ""
    name = field.rstrip("?+")
    group = "(" if capture else "(?:"
    if name in _STRING_LEAVES:
        one = f"<{p}{name}(?:>{group}{_TEXT}*)</{p}{name}>|/>){ws}"
    else:
        one = f"<{p}{name}>{group}{_TEXT}*)</{p}{name}>{ws}"
    return f"(?:{one})?" if field.endswith("?") else one


def _leaves(p: str, spec: Spec, namespace: str, capture: bool, ws: str) -> str:
    return "".join(_leaf(p, field, namespace, capture, ws) for field in spec.leaves)


def _array(p: str, name: str, inner: str, capture: bool, ws: str) -> str:
    """An array element of ``items`` rows (``inner``): empty, or holding rows only."""
    group = "(" if capture else "(?:"
    return f"(?:<{p}{name}/>|<{p}{name}>{ws}{group}(?:{inner})*)</{p}{name}>){ws}"


@dataclass(frozen=True)
class _Patterns:
    """The compiled patterns of one body namespace and array prefix. One ``match`` per job:
    each call of the regular expression engine costs about a microsecond before it reads a
    character, so tasks are matched within the job, and their groups found again afterwards
    by one ``findall`` over the job's task array. ``job`` allows no white space between
    elements (about 10% faster), ``loose_job`` any: a job that fails the first tries the
    second; the task and item patterns allow it (a task array matched either way)."""

    job: re.Pattern[str]
    loose_job: re.Pattern[str]
    task: re.Pattern[str]
    item: re.Pattern[str]


@lru_cache(maxsize=32)
def _patterns(namespace: str, p: str) -> _Patterns:
    def job(ws: str) -> str:
        rows, end_row = f"<{p}items>{ws}", f"</{p}items>{ws}"
        names = "|".join(SUB_JOB_ELEMENTS)
        # A sub-job's content: text and tags, but no start or end tag of its own name, comment,
        # CDATA or processing instruction (step 1); tags hold text characters only (step 2).
        content = rf"(?:{_TEXT}++|<(?![!?]|/?{p}(?P=sub)[ \t\r\n/>]))*+"
        sub_job = (
            f"(?:<{p}(?P<sub>{names})>(?P<content>{content})</{p}(?P=sub)>{ws}"
            f"|<{p}(?P<empty>{names})/>{ws})?"
        )
        return (
            rows
            + _leaves(p, ACTIVE_JOB, namespace, True, ws)
            + _array(p, "taskProgressArray", task(False), True, ws)
            + sub_job
            + end_row
        )

    def item(capture: bool) -> str:
        leaves = _leaves(p, TASK_ITEM_PROGRESS, namespace, capture, _WS)
        return f"<{p}items>{_WS}{leaves}</{p}items>{_WS}"

    def task(capture: bool) -> str:
        leaves = _leaves(p, TASK_PROGRESS, namespace, capture, _WS)
        items = _array(p, "taskItemProgressArray", item(False), capture, _WS)
        return f"<{p}items>{_WS}{leaves}{items}</{p}items>{_WS}"

    return _Patterns(
        job=re.compile(job("")),
        loose_job=re.compile(job(_WS)),
        task=re.compile(task(True)),
        item=re.compile(item(True)),
    )


@dataclass(frozen=True, slots=True)
class ScannedArray:
    """The jobs of an array as match groups, in reply order."""

    #: Each job's groups: the ``ActiveJob`` leaves in schema order (``None`` when absent or an
    #: empty element), then its task array's content (``None`` when empty), then its sub-job's
    #: element name and content (``None`` when there is none or it is an empty element), then
    #: the name of an empty sub-job element (``<uploadUrlsJob/>``).
    jobs: list[tuple[str | None, ...]]
    #: Indices of the jobs whose texts hold a reference or a carriage return: only their
    #: leaf texts need :func:`xml_text`.
    raw_jobs: frozenset[int]
    #: ``tasks(content)``: each task's groups (its 8 leaves, then its item array's content),
    #: for a task array's content; ``items(content)`` likewise each task item's 4 leaves. The
    #: content matched this repetition exactly within the job, and the patterns are
    #: deterministic: searching finds the same rows, back to back.
    tasks: Callable[[str], list[tuple[str | None, ...]]]
    items: Callable[[str], list[tuple[str | None, ...]]]


def _positions(text: str, needle: str) -> list[int]:
    """Where ``needle`` occurs in ``text``, found with str.find (memchr for one character: a
    regular expression scans character by character, ten times slower)."""
    out: list[int] = []
    find = text.find
    at = find(needle)
    while at >= 0:
        out.append(at)
        at = find(needle, at + 1)
    return out


def scan_region(region: bytes, namespace: str, prefix: str) -> ScannedArray | None:
    """The jobs in the content of a ``jobArray`` tagged with ``prefix`` (``"ns1:"`` or ``""``),
    read as text; ``None`` when steps 1 and 2 of the module docstring do not hold (sub-job
    contents aside: their decoder checks them)."""
    try:
        text = region.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not _characters_ok(text):
        return None
    ampersands = _positions(text, "&")
    if ampersands and not _references_ok(text, ampersands):
        return None
    pats = _patterns(namespace, prefix)
    match, loose = pats.job.match, pats.loose_job.match
    pos = _LEADING_WS.match(text).end()  # type: ignore[union-attr]  # matches always
    end = len(text)
    jobs: list[tuple[str | None, ...]] = []
    ends: list[int] = []
    while pos < end:
        m = match(text, pos) or loose(text, pos)
        if m is None:
            return None
        jobs.append(m.groups())
        pos = m.end()
        ends.append(pos)
    raw = frozenset(bisect_right(ends, at) for at in ampersands + _positions(text, "\r"))
    return ScannedArray(jobs=jobs, raw_jobs=raw, tasks=pats.task.findall, items=pats.item.findall)
