"""A scripted scenario: jobs with a fixed plan and company outages on a fixed schedule.

The demo must show every kind of event within its first two minutes, which random rates cannot
promise. A scenario adds, on top of the random workload, jobs whose whole plan is given (type,
files, timings, outcome, a stall, a log that never comes, a life between two polls) and outages
of a company's SOAP endpoint, each at a fixed time after the scenario starts.

Times are simulated seconds after the scenario's start, which is the first ``getActiveJobs``
the simulator answers (so a slow start of the watcher shifts the script rather than hiding its
first scenes); with ``repeat_s`` the whole script plays again every ``repeat_s`` seconds.

Pure values and pure functions: parsing from a TOML table (:meth:`Scenario.from_mapping`) and
which outage covers a moment (:meth:`Scenario.outage_at`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from streamer.model import Outcome
from streamer.simulator.catalog import KINDS, UNDOCUMENTED_KINDS
from streamer.simulator.faults import REQUEST_MODES, SCRIPTED

#: Job types a scripted job may name.
KIND_NAMES: frozenset[str] = frozenset(k.type for k in (*KINDS, *UNDOCUMENTED_KINDS))
#: Outcomes a scripted job may end with (``unknown`` is the streamer's verdict, not IPS's: a job
#: gets it when its log never appears, ``log = false``).
OUTCOMES: frozenset[str] = frozenset(o.value for o in Outcome if o is not Outcome.UNKNOWN)
#: Outage modes: request failures without a scripted body.
OUTAGE_MODES: frozenset[str] = REQUEST_MODES - SCRIPTED


@dataclass(frozen=True, slots=True)
class ScriptedJob:
    """One job of the script: submitted ``at_s`` after the round starts, with a fixed plan."""

    company: str
    at_s: float
    type: str = "ImageServingPublish"
    outcome: Outcome = Outcome.SUCCEEDED
    files: int = 8
    #: Seconds in ``New``, then ``WaitingCoordinator``, then running to its end.
    new_s: float = 1.0
    waiting_s: float = 2.0
    running_s: float = 20.0
    #: A failed job stops at this fraction of its running time (fatal error).
    fail_at: float = 0.5
    #: Progress freezes this many running seconds into the job, for ``stall_s`` seconds.
    stall_at_s: float | None = None
    stall_s: float = 0.0
    #: Whether the job's log is ever written (``False``: the streamer completes it ``unknown``).
    log: bool = True
    #: Submit it just after the company's next ``getActiveJobs`` answer at or after ``at_s``, so
    #: that it lives and ends between two polls (keep its whole life well under the interval):
    #: only the job log listing can report it.
    between_polls: bool = False
    #: ``submitJob`` name; ``None``: one drawn like the random jobs'.
    name: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.company:
            problems.append("company: required")
        if self.type not in KIND_NAMES:
            problems.append(f"type: {self.type!r} is not one of {sorted(KIND_NAMES)}")
        if self.files < 1:
            problems.append("files: must be at least 1")
        if min(self.at_s, self.new_s, self.waiting_s, self.stall_s) < 0 or self.running_s <= 0:
            problems.append("at_s, new_s, waiting_s, stall_s must be >= 0, running_s > 0")
        if not 0 < self.fail_at <= 1:
            problems.append("fail_at: must be within (0, 1]")
        if self.stall_at_s is not None and not 0 <= self.stall_at_s < self.end_running:
            problems.append("stall_at_s: must fall within the job's running time")
        if self.between_polls and self.stall_at_s is not None:
            problems.append("between_polls: a job between two polls cannot stall")
        if problems:
            raise ValueError(f"scenario job at {self.at_s}s: " + "; ".join(problems))

    @property
    def end_running(self) -> float:
        """Running seconds at which the job stops (earlier than ``running_s`` when it fails)."""
        if self.outcome is Outcome.FAILED:
            return self.running_s * self.fail_at
        return self.running_s


@dataclass(frozen=True, slots=True)
class Outage:
    """A company's SOAP endpoint fails every request (``mode``) for ``for_s`` seconds."""

    company: str
    at_s: float
    for_s: float
    mode: str = "http_503"

    def __post_init__(self) -> None:
        if not self.company:
            raise ValueError("scenario outage: company: required")
        if self.at_s < 0 or self.for_s <= 0:
            raise ValueError("scenario outage: at_s must be >= 0 and for_s > 0")
        if self.mode not in OUTAGE_MODES:
            raise ValueError(f"scenario outage: mode {self.mode!r} not in {sorted(OUTAGE_MODES)}")

    def covers(self, company: str | None, t: float) -> bool:
        """Whether a request of ``company`` at ``t`` seconds into the round fails."""
        return company == self.company and self.at_s <= t < self.at_s + self.for_s


@dataclass(frozen=True, slots=True)
class Scenario:
    """The scripted jobs and outages; ``repeat_s`` ``None`` plays them once."""

    jobs: tuple[ScriptedJob, ...] = ()
    outages: tuple[Outage, ...] = ()
    repeat_s: float | None = None

    def __post_init__(self) -> None:
        if self.repeat_s is not None:
            if self.repeat_s <= 0:
                raise ValueError("scenario repeat_s: must be positive")
            ends = [j.at_s for j in self.jobs] + [o.at_s + o.for_s for o in self.outages]
            if any(end > self.repeat_s for end in ends):
                why = "every job must start and every outage end within one round"
                raise ValueError(f"scenario repeat_s: {why}")

    def jobs_of(self, company: str) -> tuple[ScriptedJob, ...]:
        """The scripted jobs of one company, in script order."""
        return tuple(j for j in self.jobs if j.company == company)

    def companies(self) -> frozenset[str]:
        """Every company the script names."""
        return frozenset(j.company for j in self.jobs) | {o.company for o in self.outages}

    def outage_at(self, company: str | None, since_start: float) -> Outage | None:
        """The outage failing ``company``'s requests ``since_start`` seconds after the start."""
        if since_start < 0:
            return None
        t = since_start if self.repeat_s is None else since_start % self.repeat_s
        return next((o for o in self.outages if o.covers(company, t)), None)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Scenario:
        """A scenario from a TOML table: ``repeat_s``, ``[[jobs]]`` and ``[[outages]]`` arrays.

        Unknown keys and bad values raise ValueError naming them.
        """
        _only(data, {"repeat_s", "jobs", "outages"}, "scenario")
        jobs = tuple(_scripted_job(i, item) for i, item in enumerate(data.get("jobs", ())))
        outages = tuple(
            Outage(**_only(item, _names(Outage), f"scenario.outages[{i}]"))
            for i, item in enumerate(data.get("outages", ()))
        )
        repeat = data.get("repeat_s")
        return cls(jobs, outages, None if repeat is None else float(repeat))


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _only(data: Mapping[str, Any], allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a table")
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return dict(data)


def _scripted_job(index: int, item: Mapping[str, Any]) -> ScriptedJob:
    values = _only(item, _names(ScriptedJob), f"scenario.jobs[{index}]")
    outcome = values.get("outcome", Outcome.SUCCEEDED.value)
    if outcome not in OUTCOMES:
        raise ValueError(f"scenario.jobs[{index}]: outcome {outcome!r} not in {sorted(OUTCOMES)}")
    values["outcome"] = Outcome(outcome)
    try:
        return ScriptedJob(**values)
    except TypeError as exc:
        raise ValueError(f"scenario.jobs[{index}]: {exc}") from exc
