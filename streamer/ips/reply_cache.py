"""Incremental decoding of ``getActiveJobs`` replies: unchanged job elements are not parsed again.

Between two polls of a busy company most of its jobs do not move, and their ``jobArray/items``
element in the reply is the same, byte for byte. :class:`ActiveJobsCache` keeps, for one company,
a digest of each job element's bytes and the :class:`~streamer.model.JobSnapshot` decoded from it.
The next reply is cut into job elements at the byte level and only new elements are parsed and
decoded; unchanged jobs come back as the very same snapshot objects, so that the diff takes its
identity fast path.

The result, or the error, is always the one :func:`~streamer.ips.decode.decode_active_jobs`
gives without a cache. The argument, in the terms used below (a reply is ``head + region +
tail``: ``head`` ends with the ``jobArray`` start tag, ``tail`` starts with its end tag):

1. *Context.* What an element's bytes mean depends on the bytes before it (encoding, namespace
   declarations, ``xml:space``): on ``head``. Entries are valid for the head they were verified
   with; another head (or namespace) empties the cache. Only UTF-8/ASCII documents are cached,
   where every ``<`` byte is a ``<`` character.
2. *The cut is at the real ``jobArray``.* When the cache is (re)built from a full decode, the
   literal ``<p:jobArray`` and ``</p:jobArray`` occur once each in the whole reply and the
   ``jobArray`` the decoder found (Body / return / jobArray) carries prefix ``p``: so ``head``
   ends with its start tag. That is a property of ``head`` (its ancestors open in ``head``), and
   later replies must have the same ``head``; a changed ``tail`` is verified by decoding
   ``head + tail`` (an empty job array). New pieces must not contain ``jobArray`` at all.
3. *Each entry is exactly one element.* On a full decode the region is cut by an exact scan: in a
   well-formed region without ``<!`` or ``<?`` every ``<`` starts a tag, so literal ``items``
   tags nest exactly. Later, new pieces (cut where the marker - the start tags every job element
   begins with - occurs) are verified by a strict parse and decode of ``head + "\n" + piece1 +
   "\n" + piece2 ... + tail``: pieces free of comments, CDATA and PIs (others are verified one
   by one, ``head + piece + tail``) each start a line; exactly one ``jobArray`` child must start
   on each of those lines. By induction each piece starts at the ``jobArray`` level with its
   child, no other child starts within it, and its final ``</items>`` can only be that child's
   end tag (anything that could hide it would also hide the real ``</p:jobArray>``).
4. *Assembly.* The reply is ``head + ws + e1 + ws + e2 ... + ws + tail``, each ``e`` one verified
   element and ``head + tail`` verified: so it is well-formed, and its full decode is the
   entries' snapshots in order. Keys are SHA-256 digests (128 bits kept) of the element bytes.

Anything outside this shape (a fault, pretty-printing we cannot cut, a piece that does not
verify) takes the full decode, which returns the exact result or raises the exact error.

Small replies (below ``min_bytes``, about 20 jobs) are not cut: they are decoded whole, unless
the reply is the previous one again, byte for byte (a quiet company, the usual case). Then the
previous result is returned: decoding is a function of the bytes and the namespace, and the key
is the digest of the whole reply. Only a successful decode is remembered, so an error is
raised again by decoding again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from streamer.ips import array_cut, decode
from streamer.ips.array_cut import Split, head_tail_array, real_array, unique_tags
from streamer.ips.errors import IpsError
from streamer.ips.text_decode import decode_cut
from streamer.model import JobSnapshot

__all__ = ["ActiveJobsCache"]

_WS = b" \t\r\n"
_sha256 = hashlib.sha256
_FIRST_TAG = re.compile(rb"[ \t\r\n]*<([^\s/>!?]+)>")
_NEXT_TAG = re.compile(rb"[ \t\r\n]*<[^\s/>!?][^>]*>")
#: Above this share of new elements, one full parse is cheaper than parsing them one by one.
_MAX_MISS_SHARE = 0.4
#: Polls a churning company's cache stands aside at most (see ActiveJobsCache).
_MAX_BACKOFF = 32
#: Replies smaller than this (about 20 jobs) are decoded whole: a failed attempt to reuse
#: costs more than the cache can save on them.
_MIN_BYTES = 32 * 1024
#: Line numbers prove where new pieces start; keep them well inside libxml2's exact range.
_MAX_LINES = 60_000


def _digest(piece: bytes) -> bytes:
    # SHA-256 (hardware-accelerated on current x86 and ARM CPUs: twice BLAKE2b's speed here),
    # truncated to 128 bits to keep the key small; collisions are out of practical reach.
    return _sha256(piece).digest()[:16]


@dataclass(frozen=True, slots=True)
class _State:
    """What one verified reply left behind (replaced whole, so threads never see a mix)."""

    namespace: str
    head: bytes
    tail: bytes
    #: The bytes every job element starts with (its start tag and its first child's).
    marker: bytes
    #: The job element's end tag.
    end_tag: bytes
    entries: dict[bytes, JobSnapshot]


class ActiveJobsCache:
    """One company's memo of decoded job elements. Pass it to ``decode_active_jobs``.

    A company whose jobs nearly all move between polls gains nothing from it: when a reply
    has too many new elements, the cache stands aside for 1, 2, 4 ... up to 32 polls (full
    decodes, no bookkeeping) before it tries again.
    """

    __slots__ = (
        "_backoff",
        "_last_small",
        "_min_bytes",
        "_skip",
        "_state",
        "last_hits",
        "last_misses",
        "last_path",
    )

    def __init__(self, min_bytes: int = _MIN_BYTES) -> None:
        #: Replies smaller than this are decoded whole (see _MIN_BYTES).
        self._min_bytes = min_bytes
        self._state: _State | None = None
        self._backoff = 0
        self._skip = 0
        #: ``(namespace, digest of the reply, result)`` of the last small reply decoded.
        self._last_small: tuple[str, bytes, tuple[JobSnapshot, ...]] | None = None
        #: Statistics of the last decode: reused elements, decoded elements, and which path
        #: ran: ``"incremental"``, ``"full"`` (parsed whole, cache rebuilt), ``"uncacheable"``
        #: (parsed whole, reply not cut), ``"skipped"`` (parsed whole, cache standing aside).
        self.last_hits = 0
        self.last_misses = 0
        self.last_path = ""

    def __len__(self) -> int:
        state = self._state
        return 0 if state is None else len(state.entries)

    def clear(self) -> None:
        """Forget every entry."""
        self._state = None
        self._last_small = None

    def decode(self, body: bytes, namespace: str) -> tuple[JobSnapshot, ...]:
        """Decode a reply like ``decode_active_jobs(body, namespace)``, reusing known elements."""
        if len(body) < self._min_bytes:
            return self._small(body, namespace)
        self._last_small = None
        if self._skip > 0:
            return self._aside(body, namespace)
        state = self._state  # read once: another thread may swap it meanwhile
        split = array_cut.split(body)
        if (
            state is not None
            and split is not None
            and state.namespace == namespace
            and split.head == state.head
        ):
            reused = self._incremental(state, split, namespace)
            if reused is not None:
                self._backoff = 0
                return reused
        self._state = None
        if self._skip > 0:  # the reply just had too many new elements
            return self._aside(body, namespace)
        return self._full(body, namespace, split)

    # -- paths -------------------------------------------------------------------------------

    def _full(self, body: bytes, namespace: str, split: Split | None) -> tuple[JobSnapshot, ...]:
        """Decode everything (raising any error) and rebuild the cache from the reply."""
        scanned = None if split is None else decode_cut(split, namespace)
        if scanned is not None:
            # The text path proved the reply is head + region + tail around its one real
            # jobArray (the same cut as split), in a byte-safe encoding: what the checks of
            # the tree's answer below establish.
            jobs, real = scanned, True
        else:
            array = decode.job_array(body, namespace)
            jobs = decode.decode_job_rows(array, namespace)
            real = split is not None and real_array(array, split) and unique_tags(body, split)
        self.last_hits, self.last_misses, self.last_path = 0, len(jobs), "uncacheable"
        if split is not None and real:
            state = _scan(split, namespace, jobs)
            if state is not None:
                self._state = state
                self.last_path = "full"
        return jobs

    def _small(self, body: bytes, namespace: str) -> tuple[JobSnapshot, ...]:
        """A small reply: the previous result when the bytes are the same, else decoded whole."""
        key = _digest(body)
        last = self._last_small  # read once: another thread may swap it meanwhile
        if last is not None and last[0] == namespace and last[1] == key:
            jobs = last[2]
            self.last_hits, self.last_misses, self.last_path = len(jobs), 0, "same"
            return jobs
        self._state = None
        jobs = decode.decode_active_jobs(body, namespace)
        self._last_small = (namespace, key, jobs)
        self.last_hits, self.last_misses, self.last_path = 0, len(jobs), "small"
        return jobs

    def _aside(self, body: bytes, namespace: str) -> tuple[JobSnapshot, ...]:
        """A plain full decode, the cache standing aside (one poll fewer to skip)."""
        self._skip -= 1
        self._state = None
        jobs = decode.decode_active_jobs(body, namespace)
        self.last_hits, self.last_misses, self.last_path = 0, len(jobs), "skipped"
        return jobs

    def _stand_aside(self) -> None:
        """Too many new elements: skip the cache for the next few polls (doubling, bounded)."""
        self._backoff = min(max(1, 2 * self._backoff), _MAX_BACKOFF)
        self._skip = self._backoff + 1  # this poll too

    def _incremental(
        self, state: _State, split: Split, namespace: str
    ) -> tuple[JobSnapshot, ...] | None:
        """Decode only new elements; None when the reply cannot be cut or a piece fails."""
        parts = split.region.split(state.marker)
        if parts[0].strip(_WS):
            return None
        del parts[0]
        # Key: the digest of a piece without the marker it starts with (the same for all).
        tails = [part.rstrip(_WS) for part in parts]
        keys = list(map(_digest, tails))
        known = state.entries
        new: dict[bytes, bytes] = {k: t for k, t in zip(keys, tails, strict=True) if k not in known}
        if len(new) > _MAX_MISS_SHARE * len(keys):
            self._stand_aside()
            return None
        if split.tail != state.tail and head_tail_array(split, namespace) is None:
            return None
        decoded = _verify_new(split, state, list(new.values()), namespace)
        if decoded is None:
            return None
        fresh = dict(zip(new, decoded, strict=True))
        entries = {k: known.get(k) or fresh[k] for k in keys}
        self._state = _State(
            namespace, split.head, split.tail, state.marker, state.end_tag, entries
        )
        self.last_hits, self.last_misses, self.last_path = (
            len(keys) - len(new),
            len(new),
            "incremental",
        )
        return tuple([entries[k] for k in keys])


# ------------------------------------------------------------------------------------------
# Cutting and verifying
# ------------------------------------------------------------------------------------------


def _verify_new(
    split: Split, state: _State, tails: list[bytes], namespace: str
) -> list[JobSnapshot] | None:
    """Parse and decode new pieces (``marker + tail``), proving each is one whole element.

    Pieces without comments, CDATA or processing instructions are verified together, each on a
    line of its own (point 3 of the module docstring); the others one by one.
    """
    marker, end_tag = state.marker, state.end_tag
    pieces = [marker + tail for tail in tails]
    joined = b"".join(pieces)
    if b"jobArray" in joined:  # cannot be verified here (module docstring, point 2)
        return None
    if not all(piece.endswith(end_tag) for piece in pieces):
        return None
    out: list[JobSnapshot | None] = [None] * len(pieces)
    batch: list[tuple[int, bytes]] = []
    special = b"<!" in joined or b"<?" in joined
    for i, piece in enumerate(pieces):
        if special and (b"<!" in piece or b"<?" in piece):
            out[i] = _verify_one(split.head + piece + split.tail, namespace)
            if out[i] is None:
                return None
        else:
            batch.append((i, piece))
    for chunk in _line_chunks(split.head, batch):
        jobs = _verify_lines(split, [piece for _, piece in chunk], namespace)
        if jobs is None:
            return None
        for (i, _), job in zip(chunk, jobs, strict=True):
            out[i] = job
    return out  # type: ignore[return-value]  # every slot is set


def _line_chunks(head: bytes, batch: list[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
    """Split a batch so that no document exceeds ``_MAX_LINES`` lines."""
    chunks: list[list[tuple[int, bytes]]] = []
    current: list[tuple[int, bytes]] = []
    lines = base = head.count(b"\n") + 2
    for item in batch:
        n = item[1].count(b"\n") + 1
        if current and lines + n > _MAX_LINES:
            chunks.append(current)
            current, lines = [], base
        current.append(item)
        lines += n
    if current:
        chunks.append(current)
    return chunks


def _verify_lines(split: Split, pieces: list[bytes], namespace: str) -> list[JobSnapshot] | None:
    """The jobs of ``head + "\\n" + p1 + "\\n" + p2 ... + tail``, if each piece is one element.

    Every ``<`` in the pieces starts a tag (no comment, CDATA, PI), each piece starts a line, and
    exactly one child of ``jobArray`` starts on each of those lines (libxml2 records the line on
    which a start tag ends; a piece's first start tag is on its first line). By induction each
    piece starts at the ``jobArray`` level with its child, no other child starts inside it, and
    its final ``</items>`` can only be that child's end tag.
    """
    line = split.head.count(b"\n") + 2
    starts = []
    for piece in pieces:
        starts.append(line)
        line += piece.count(b"\n") + 1
    document = b"".join([split.head, b"\n", b"\n".join(pieces), split.tail])
    try:
        array = decode.job_array(document, namespace)
        if len(array) != len(pieces) or [row.sourceline for row in array] != starts:
            return None
        return list(decode.decode_job_rows(array, namespace))
    except IpsError:
        return None


def _verify_one(document: bytes, namespace: str) -> JobSnapshot | None:
    """The one job of ``head + piece + tail``; None unless it parses and decodes cleanly."""
    try:
        array = decode.job_array(document, namespace)
        if len(array) != 1:
            return None
        (job,) = decode.decode_job_rows(array, namespace)
    except IpsError:
        return None
    return job


def _scan(split: Split, namespace: str, jobs: tuple[JobSnapshot, ...]) -> _State | None:
    """Entries for a fully decoded (so well-formed) reply, its job elements cut by exact scan."""
    region = split.region
    first = _FIRST_TAG.match(region)
    if not jobs or first is None or b"<!" in region or b"<?" in region:
        return None
    qname = first.group(1)
    open_tag, end_tag = b"<" + qname + b">", b"</" + qname + b">"
    # Only the plain forms, so that each literal token below is one start or end tag.
    if region.count(b"<" + qname) != region.count(open_tag) or region.count(
        b"</" + qname
    ) != region.count(end_tag):
        return None
    pieces: list[bytes] = []
    depth, begin, pos = 0, 0, 0
    for m in re.finditer(re.escape(open_tag) + b"|" + re.escape(end_tag), region):
        at = m.start()
        if region[at + 1] == 0x2F:  # "/": an end tag
            depth -= 1
            if depth == 0:
                pos = m.end()
                pieces.append(region[begin:pos])
        else:
            if depth == 0:
                if region[pos:at].strip(_WS):
                    return None  # text or another element between two job elements
                begin = at
            depth += 1
    if depth or region[pos:].strip(_WS) or len(pieces) != len(jobs):
        return None
    second = _NEXT_TAG.match(pieces[0], len(open_tag))
    if second is None:
        return None
    marker = pieces[0][: second.end()]
    entries = {
        _digest(p[len(marker) :]): j
        for p, j in zip(pieces, jobs, strict=True)
        if p.startswith(marker)
    }
    return _State(namespace, split.head, split.tail, marker, end_tag, entries)
