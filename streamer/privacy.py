"""The ``[privacy]`` policy for ``submitUserEmail``: keep it, a keyed hash of it, or drop it.

Pure: no I/O, no clock; stdlib and :mod:`streamer.model` only. The policy is applied once, to the
values IPS replies decode to (every ``ActiveJob`` and ``JobLog``), before anything else reads
them: the snapshot, the checkpoint, ``job.completed`` and ``job.stalled`` all derive their
``submitUserEmail`` from those values, so no other place needs to know the policy.

* ``keep``: the address as IPS sends it;
* ``hash``: ``hmac-sha256:<64 hex digits>``, the HMAC-SHA256 of the address (trimmed and lower
  case, so that one person's address hashes the same however IPS spells its case) under the key
  of ``privacy.hash_key_file``. Stable across restarts and instances that share the key, so a
  consumer can still count or group jobs per submitter without learning who it is; without the
  key nobody can test a guessed address against it (a plain SHA-256 of an address can be
  reversed with a list of addresses);
* ``drop``: the empty string (the field stays, the schemas require it).

Applying a policy twice changes nothing (a hashed value is recognised and kept), so state
restored from the checkpoint can be passed through it again safely.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import re
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal, TypeVar, cast, get_args

from streamer.model import JobLog, JobSnapshot, Snapshot, TrackedJob

__all__ = [
    "HASH_PREFIX",
    "MIN_KEY_BYTES",
    "MODES",
    "EmailPolicy",
    "Mode",
    "redact",
    "redact_job",
    "redact_log",
    "redact_snapshot",
    "redact_state",
]

Mode = Literal["keep", "hash", "drop"]
MODES: tuple[str, ...] = get_args(Mode)
HASH_PREFIX = "hmac-sha256:"
#: Shortest key accepted: a short key could be found by trying keys against a known address.
MIN_KEY_BYTES = 16
_HASHED = re.compile(r"hmac-sha256:[0-9a-f]{64}\Z")
#: The field every IPS type that names a submitter uses.
_FIELD = "submit_user_email"
#: Distinct addresses whose hashes are remembered (a company has few submitters).
_MEMO_SIZE = 4096

_T = TypeVar("_T")

# A job with another address, built from its fields read at once: twice as fast as
# dataclasses.replace, which matters once per job per poll; every init field is copied.
_JOB_FIELDS = tuple(f.name for f in fields(JobSnapshot) if f.init)
_JOB_VALUES = operator.attrgetter(*_JOB_FIELDS)
_EMAIL_AT = _JOB_FIELDS.index(_FIELD)


@dataclass(frozen=True, slots=True)
class EmailPolicy:
    """What happens to ``submitUserEmail`` (see the module docstring); default ``keep``."""

    mode: Mode = "keep"
    #: The HMAC key (``hash`` only); never printed.
    key: bytes = field(default=b"", repr=False)
    _memo: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "hash" and len(self.key) < MIN_KEY_BYTES:
            raise ValueError(f"a hash key has at least {MIN_KEY_BYTES} bytes")

    @property
    def keeps(self) -> bool:
        """Whether addresses pass unchanged (nothing to apply)."""
        return self.mode == "keep"

    def apply(self, email: str) -> str:
        """``email`` under this policy; an empty value stays empty."""
        if self.mode == "keep" or not email:
            return email
        if self.mode == "drop":
            return ""
        if _HASHED.match(email):
            return email  # already hashed (state restored from the checkpoint)
        memo = self._memo
        hashed = memo.get(email)
        if hashed is None:
            normal = email.strip().lower().encode("utf-8")
            hashed = HASH_PREFIX + hmac.new(self.key, normal, hashlib.sha256).hexdigest()
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[email] = hashed
        return hashed


def redact_job(policy: EmailPolicy, job: JobSnapshot) -> JobSnapshot:
    """``job`` under ``policy`` (the same object when nothing changes)."""
    email = policy.apply(job.submit_user_email)
    if email == job.submit_user_email:
        return job
    values = _JOB_VALUES(job)
    args: tuple[Any, ...] = (*values[:_EMAIL_AT], email, *values[_EMAIL_AT + 1 :])
    return JobSnapshot(*args)


def redact_snapshot(policy: EmailPolicy, snapshot: Snapshot) -> Snapshot:
    """Every job of ``snapshot`` under ``policy`` (the same object when nothing changes)."""
    if policy.keeps:
        return snapshot
    jobs = tuple(redact_job(policy, j) for j in snapshot.jobs)
    if all(a is b for a, b in zip(jobs, snapshot.jobs, strict=True)):
        return snapshot
    return replace(snapshot, jobs=jobs)


def redact_log(policy: EmailPolicy, log: JobLog) -> JobLog:
    """A job log under ``policy``: every ``submit_user_email`` in it, at any depth."""
    return log if policy.keeps else _walk(policy, log)


def redact_state(
    policy: EmailPolicy, state: dict[str, TrackedJob]
) -> tuple[dict[str, TrackedJob], tuple[str, ...]]:
    """Tracked jobs under ``policy``, and the sorted handles it changed (their checkpoint records
    still hold the old value: rewrite them). ``state`` itself when nothing changes."""
    if policy.keeps:
        return state, ()
    out: dict[str, TrackedJob] | None = None
    changed: list[str] = []
    for handle, tracked in state.items():
        job = redact_job(policy, tracked.snapshot)
        if job is not tracked.snapshot:
            if out is None:
                out = dict(state)
            out[handle] = replace(tracked, snapshot=job)
            changed.append(handle)
    return (state, ()) if out is None else (out, tuple(sorted(changed)))


def redact(policy: EmailPolicy, value: _T) -> _T:
    """Any value an IPS call returns under ``policy``: snapshots, job logs, listings, details.

    Dataclasses are walked field by field (tuples and lists too); every ``submit_user_email``
    string found is replaced. Snapshots take the fast path of :func:`redact_snapshot`.
    """
    return value if policy.keeps else cast(_T, _walk(policy, value))


def _walk(policy: EmailPolicy, value: Any) -> Any:
    if isinstance(value, Snapshot):
        return redact_snapshot(policy, value)
    if isinstance(value, JobSnapshot):
        return redact_job(policy, value)
    if isinstance(value, tuple | list):
        items = [_walk(policy, v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        if hasattr(value, "_fields"):  # a NamedTuple takes its items one by one
            return type(value)(*items)
        return type(value)(items)
    if not is_dataclass(value) or isinstance(value, type):
        return value
    changes: dict[str, Any] = {}
    for f in fields(value):
        old = getattr(value, f.name)
        if f.name == _FIELD and isinstance(old, str):
            new = policy.apply(old)
            if new != old:
                changes[f.name] = new
        elif isinstance(old, tuple | list) or (is_dataclass(old) and not isinstance(old, type)):
            new = _walk(policy, old)
            if new is not old:
                changes[f.name] = new
    return replace(value, **changes) if changes else value
