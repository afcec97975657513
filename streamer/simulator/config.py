"""Settings of the IPS simulator: workload shape, timing, outcome mix, faults, outputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from streamer.simulator.faults import FaultRule
from streamer.simulator.scenario import Scenario

DEFAULT_USER = "demo@example.com"
DEFAULT_PASSWORD = "demo-password"


def _default_users() -> dict[str, str]:
    return {DEFAULT_USER: DEFAULT_PASSWORD}


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator needs; plain data, validated on construction.

    Durations are in simulated seconds unless named ``real``; ``speedup`` simulated seconds pass
    per real second. Ranges are ``(low, high)`` and drawn uniformly.
    """

    #: Company handles served, e.g. ``("c|1001", "c|1002")``.
    companies: tuple[str, ...] = ("c|1001",)
    #: Target number of concurrently active jobs per company; a vanished job is replaced.
    jobs_per_company: int = 5
    seed: int = 0
    speedup: float = 1.0
    #: Accepted credentials, email -> password (authHeader or HTTP Basic).
    users: dict[str, str] = field(default_factory=_default_users, repr=False)
    #: Time a job spends in ``New``, then in ``WaitingCoordinator``, then ``Running``.
    new_duration_s: tuple[float, float] = (0.5, 3.0)
    waiting_duration_s: tuple[float, float] = (1.0, 8.0)
    running_duration_s: tuple[float, float] = (20.0, 120.0)
    #: Mean gap between a job vanishing and its replacement being submitted.
    submit_gap_s: float = 2.0
    #: Initial jobs are submitted at random times within this window after start.
    initial_spread_s: float = 5.0
    #: Start with every company already busy: initial jobs are back-dated into random states.
    warm_start: bool = False
    #: Files processed per job (drives task counters and job log counts).
    files_per_job: tuple[int, int] = (1, 40)
    #: Progress is published in steps of this much running time (as IPS updates periodically).
    progress_step_s: float = 2.0
    #: Outcome mix; the rest succeed.
    fail_probability: float = 0.05
    error_probability: float = 0.10
    warning_probability: float = 0.15
    #: A failed job stays listed with its task ``Failed`` this long before vanishing.
    fail_linger_s: float = 3.0
    #: Probability that a running job's progress freezes once, for ``stall_duration_s``.
    stall_probability: float = 0.05
    stall_duration_s: tuple[float, float] = (30.0, 120.0)
    #: Probability that a job has a type string outside the documented list.
    unknown_type_probability: float = 0.03
    #: How long after vanishing a job's log becomes visible.
    log_delay_s: float = 0.0
    #: Share of jobs that live only ``short_job_duration_s`` from submission to gone (an upload
    #: of one small file): shorter than a poll interval, no poll may ever list them.
    short_job_share: float = 0.0
    short_job_duration_s: tuple[float, float] = (0.2, 1.5)
    #: Stop submitting after this many jobs in total (split evenly over companies).
    max_jobs_total: int | None = None
    #: Job logs kept per company (oldest dropped first).
    max_logs_per_company: int = 1000
    #: JSON Lines ground truth output; ``None`` = off.
    ground_truth_path: Path | None = None
    #: Simulated time zero; ``None`` = the wall clock when the app is built.
    start_time: datetime | None = None
    #: Real seconds between background advances of all companies (keeps ground truth prompt);
    #: ``None`` = advance only when a request comes.
    tick_s: float | None = 1.0
    #: Fault rules active from the start.
    faults: tuple[FaultRule, ...] = ()
    #: WSDL served at ``/scene7/webservice/``; ``None`` = the project's own WSDL.
    wsdl_path: Path | None = None
    #: Scripted jobs and outages on top of the random workload (:mod:`.scenario`).
    scenario: Scenario | None = None

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("invalid simulator config: " + "; ".join(problems))

    def _problems(self) -> Iterator[str]:
        if not self.companies or any(not c for c in self.companies):
            yield "companies: need at least one non-empty company handle"
        if len(set(self.companies)) != len(self.companies):
            yield "companies: handles must be unique"
        if self.jobs_per_company < 0:
            yield "jobs_per_company: must not be negative"
        if self.speedup <= 0:
            yield "speedup: must be positive"
        for name in (
            "new_duration_s",
            "waiting_duration_s",
            "running_duration_s",
            "stall_duration_s",
            "files_per_job",
        ):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                yield f"{name}: need 0 <= low <= high"
        if self.running_duration_s[0] <= 0 or self.files_per_job[0] < 1:
            yield "running_duration_s / files_per_job: lower bound must be positive"
        probs = (self.fail_probability, self.error_probability, self.warning_probability)
        if any(not 0 <= p <= 1 for p in probs) or sum(probs) > 1:
            yield "fail/error/warning_probability: each within 0..1, sum at most 1"
        low, high = self.short_job_duration_s
        if not 0 <= low <= high or high <= 0:
            yield "short_job_duration_s: need 0 <= low <= high and high > 0"
        for name in ("stall_probability", "unknown_type_probability", "short_job_share"):
            if not 0 <= getattr(self, name) <= 1:
                yield f"{name}: must be within 0..1"
        if self.progress_step_s <= 0 or self.submit_gap_s < 0 or self.log_delay_s < 0:
            yield "progress_step_s must be positive; submit_gap_s, log_delay_s not negative"
        if self.max_jobs_total is not None and self.max_jobs_total < 0:
            yield "max_jobs_total: must not be negative"
        if self.tick_s is not None and self.tick_s <= 0:
            yield "tick_s: must be positive or None"
        if self.start_time is not None and self.start_time.tzinfo is None:
            yield "start_time: must be timezone-aware"
        if self.scenario is not None:
            strangers = self.scenario.companies() - set(self.companies)
            if strangers:
                yield f"scenario: names companies not simulated: {sorted(strangers)}"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], **overrides: Any) -> SimulatorConfig:
        """Settings from a TOML ``[simulator]`` table (``scenario`` as a sub-table), then
        ``overrides``; ranges are two-element arrays. Raises ValueError naming a bad key."""
        unknown = set(table) - TABLE_KEYS
        if unknown:
            raise ValueError(f"simulator: unknown keys {sorted(unknown)}; allowed: "
                             f"{sorted(TABLE_KEYS)}")  # fmt: skip
        settings: dict[str, Any] = {}
        for key, value in table.items():
            if key == "scenario":
                settings[key] = Scenario.from_mapping(value)
            elif isinstance(value, list):
                settings[key] = tuple(value)
            else:
                settings[key] = value
        settings.update(overrides)
        try:
            return cls(**settings)
        except TypeError as exc:
            raise ValueError(f"simulator: {exc}") from exc

    @classmethod
    def bulk(
        cls, companies: int, jobs_per_company: int, *, seed: int = 0, **overrides: Any
    ) -> SimulatorConfig:
        """A benchmark load: ``companies`` handles ``c|1001``.. each with that many busy jobs.

        Companies start warm (jobs already in every state), no ground truth, no background
        tick: each company is built on its first request and only advanced when polled.
        """
        settings: dict[str, Any] = {
            "companies": tuple(f"c|{1001 + i}" for i in range(companies)),
            "jobs_per_company": jobs_per_company,
            "seed": seed,
            "warm_start": True,
            "tick_s": None,
            "max_logs_per_company": 100,
        }
        settings.update(overrides)
        return cls(**settings)

    def company_quota(self, index: int) -> int | None:
        """How many jobs company number ``index`` may submit under ``max_jobs_total``."""
        if self.max_jobs_total is None:
            return None
        share, extra = divmod(self.max_jobs_total, len(self.companies))
        return share + (1 if index < extra else 0)


#: Keys a ``[simulator]`` table may set: plain data only (paths, times and faults come from the
#: command line or the control API).
TABLE_KEYS: frozenset[str] = frozenset(f.name for f in fields(SimulatorConfig)) - {
    "users",
    "ground_truth_path",
    "start_time",
    "faults",
    "wsdl_path",
}
