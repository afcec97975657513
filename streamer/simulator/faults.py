"""Fault injection plan: which request of which company gets which failure.

A plan is an ordered list of :class:`FaultRule` values. For each SOAP request the server asks
:meth:`FaultPlan.decide` with the request's company and operation; every matching rule adds its
latency, and the first matching rule whose random draw fires picks the failure mode. Rules with a
``count`` retire after firing that many times. ``vanish_before_log`` is not a per-request failure:
it changes when job logs appear, so the server reads it through :meth:`FaultPlan.log_delays`.

Two modes script the reply itself, for hostile-reply tests: ``raw`` answers ``status`` with the
bytes of ``body`` (text, sent as UTF-8) or ``body_file`` (a path on the simulator's machine, read
at each request, for large or non-UTF-8 bodies); ``drip`` sends the real reply, or that body when
one is given, in ``chunk_bytes`` pieces spread evenly over ``drip_s`` seconds.

Draws come from the plan's own seeded ``random.Random``, so fault injection never disturbs the
job lifecycle's random stream.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

#: Modes that fail a single request.
REQUEST_MODES: frozenset[str] = frozenset(
    {
        "http_500",  # HTTP 500 with an HTML body, as a proxy or a crashed app server sends
        "http_503",  # HTTP 503 with Retry-After
        "timeout",  # hold the request longer than any sane client timeout, then drop it
        "auth_fault",  # authenticationFault 10001
        "authz_fault",  # authorizationFault 20000
        "ipsapi_fault",  # ipsApiFault 30000 (server-side exception)
        "malformed_xml",  # HTTP 200, body is not well-formed XML
        "truncated",  # HTTP 200, the reply cut in the middle of the job list
        "wrong_namespace",  # HTTP 200, a well-formed reply in another schema namespace
        "drop_connection",  # close the socket without a reply
        "empty_reply",  # HTTP 200 with an empty body
        "raw",  # HTTP `status` with the scripted `body` / `body_file` bytes
        "drip",  # the reply (or the scripted body) in small chunks over `drip_s` seconds
    }
)
#: Modes that change the job lifecycle instead of a request.
LIFECYCLE_MODES: frozenset[str] = frozenset({"vanish_before_log"})
MODES: frozenset[str] = REQUEST_MODES | LIFECYCLE_MODES
#: Modes that may carry a scripted body.
SCRIPTED: frozenset[str] = frozenset({"raw", "drip"})
#: Longest ``body`` text :meth:`FaultRule.to_json` shows (it goes into logs and the ground truth).
SHOWN_BODY_CHARS = 200


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault injection rule; ``company`` ``None`` matches every company."""

    company: str | None = None
    mode: str | None = None
    #: Probability that the mode fires on a matching request (1.0 = always).
    error_rate: float = 1.0
    #: Real seconds added before answering every matching request (failed or not).
    latency_s: float = 0.0
    #: Retire the rule after it fired this many times (``None`` = never).
    count: int | None = None
    #: Restrict to one SOAP operation (``getActiveJobs``, ...); ``None`` = all.
    operation: str | None = None
    #: ``timeout`` mode: real seconds to hold the request before dropping it.
    timeout_s: float = 60.0
    #: Override the fault code of ``auth_fault`` / ``authz_fault`` / ``ipsapi_fault``.
    code: int | None = None
    #: ``vanish_before_log`` mode: simulated seconds until the log appears (``None`` = never).
    log_delay_s: float | None = None
    #: ``raw`` mode: the HTTP status of the scripted reply.
    status: int = 200
    #: ``raw`` / ``drip`` modes: the reply body as text (sent UTF-8 encoded) ...
    body: str | None = None
    #: ... or as the bytes of this file (read at each request); at most one of the two.
    body_file: str | None = None
    #: ``raw`` / ``drip`` modes: the Content-Type of a scripted body.
    content_type: str = "text/xml; charset=utf-8"
    #: ``drip`` mode: real seconds over which the reply is sent ...
    drip_s: float = 5.0
    #: ... in pieces of this many bytes.
    chunk_bytes: int = 256

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"mode: unknown fault mode {self.mode!r}; one of {sorted(MODES)}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate: must be within 0..1")
        if self.latency_s < 0 or self.timeout_s < 0:
            raise ValueError("latency_s / timeout_s: must not be negative")
        if self.count is not None and self.count < 1:
            raise ValueError("count: must be at least 1")
        if self.log_delay_s is not None and self.log_delay_s < 0:
            raise ValueError("log_delay_s: must not be negative")
        self._check_scripted_reply()

    def _check_scripted_reply(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError("status: must be an HTTP status (100..599)")
        for name in ("body", "body_file", "content_type"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: must be a string")
        if self.body is not None and self.body_file is not None:
            raise ValueError("body / body_file: give at most one")
        if (self.body is not None or self.body_file is not None) and self.mode not in SCRIPTED:
            raise ValueError(f"body / body_file: only for the modes {sorted(SCRIPTED)}")
        if self.drip_s < 0:
            raise ValueError("drip_s: must not be negative")
        if self.chunk_bytes < 1:
            raise ValueError("chunk_bytes: must be at least 1")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from a control-API JSON object; unknown keys are an error.

        ``error_rate`` without ``mode`` means ``http_500``.
        """
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        try:
            rule = cls(**dict(data))
        except TypeError as exc:  # wrong value types reach the dataclass as TypeError
            raise ValueError(str(exc)) from exc
        if rule.mode is None and "error_rate" in data:
            rule = replace(rule, mode="http_500")
        return rule

    def to_json(self) -> dict[str, Any]:
        """The rule as a JSON-able dict; a ``body`` longer than :data:`SHOWN_BODY_CHARS` is
        shown as its start and its length (the dict is for logs and the control API's view)."""
        data = asdict(self)
        body = self.body
        if body is not None and len(body) > SHOWN_BODY_CHARS:
            data["body"] = f"{body[:SHOWN_BODY_CHARS]}... ({len(body):,} chars)"
        return data

    def body_bytes(self) -> bytes | None:
        """The scripted body (``body`` encoded, or ``body_file`` read), None when there is none.

        Raises OSError when ``body_file`` cannot be read.
        """
        if self.body_file is not None:
            return Path(self.body_file).read_bytes()
        return None if self.body is None else self.body.encode()

    def matches(self, company: str | None, operation: str | None) -> bool:
        """True when the rule applies to a request of ``company`` for ``operation``."""
        if self.company is not None and self.company != company:
            return False
        return self.operation is None or operation is None or self.operation == operation


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one request: wait ``latency_s`` then fail with ``rule.mode`` (if any)."""

    latency_s: float = 0.0
    rule: FaultRule | None = None

    @property
    def mode(self) -> str | None:
        """The failure mode to apply, ``None`` to answer normally."""
        return None if self.rule is None else self.rule.mode


NO_FAULT = Decision()


class FaultPlan:
    """The mutable set of active rules, with ids for the control API."""

    def __init__(self, rules: Iterable[FaultRule] = (), *, seed: int = 0) -> None:
        self._rng = random.Random(f"faults:{seed}")
        self._rules: dict[int, FaultRule] = {}
        self._fired: dict[int, int] = {}
        self._next_id = 1
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> int:
        """Add a rule; returns its id."""
        rule_id = self._next_id
        self._next_id += 1
        self._rules[rule_id] = rule
        self._fired[rule_id] = 0
        return rule_id

    def remove(self, rule_id: int) -> bool:
        """Remove one rule; False when no such id."""
        self._fired.pop(rule_id, None)
        return self._rules.pop(rule_id, None) is not None

    def clear(self, company: str | None = None) -> int:
        """Remove every rule, or only those naming ``company``; returns how many."""
        doomed = [i for i, r in self._rules.items() if company is None or r.company == company]
        for rule_id in doomed:
            self.remove(rule_id)
        return len(doomed)

    def to_json(self) -> list[dict[str, Any]]:
        """Active rules with their ids and fire counts."""
        return [{"id": i, "fired": self._fired[i], **r.to_json()} for i, r in self._rules.items()]

    def decide(self, company: str | None, operation: str | None) -> Decision:
        """Pick latency and failure mode for one request (consumes random draws)."""
        if not self._rules:
            return NO_FAULT
        latency = 0.0
        chosen: FaultRule | None = None
        for rule_id, rule in list(self._rules.items()):
            if rule.mode in LIFECYCLE_MODES or not rule.matches(company, operation):
                continue
            latency += rule.latency_s
            fires = rule.mode is not None and chosen is None and self._draw(rule.error_rate)
            if fires:
                chosen = rule
            if rule.count is not None and (fires or rule.mode is None):
                self._fired[rule_id] += 1
                if self._fired[rule_id] >= rule.count:
                    self.remove(rule_id)
            elif fires:
                self._fired[rule_id] += 1
        return Decision(latency, chosen) if latency or chosen else NO_FAULT

    def log_delays(self) -> dict[str | None, float]:
        """Job log delay overrides from ``vanish_before_log`` rules (``inf`` = never).

        The key ``None`` applies to every company.
        """
        delays: dict[str | None, float] = {}
        for rule in self._rules.values():
            if rule.mode == "vanish_before_log":
                delay = math.inf if rule.log_delay_s is None else rule.log_delay_s
                delays[rule.company] = delay
        return delays

    def _draw(self, rate: float) -> bool:
        # Rate 1.0 must not consume a draw: scripted faults stay independent of earlier luck.
        return rate >= 1.0 or (rate > 0.0 and self._rng.random() < rate)
