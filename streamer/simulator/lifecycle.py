"""Pure job lifecycle model of the IPS simulator: no I/O, no clock, time passed in.

Rules of this module:

* time is a float of simulated seconds since the simulation's epoch (a ``datetime`` given once);
* each company is an independent discrete-event process with its own ``random.Random`` seeded
  from ``(seed, company)``; every random draw happens while processing an event, and events are
  processed strictly in (time, sequence) order, so the state at time ``t`` does not depend on how
  often, or when, :meth:`CompanySim.advance` was called before ``t``;
* a job moves ``New`` -> ``WaitingCoordinator`` -> ``Running`` -> gone (leaves the active list);
  its whole plan (durations, outcome, counts, stall) is drawn when it is submitted; a share of
  jobs (``short_job_share``) live only ``short_job_duration_s`` in all, without stall or
  linger: shorter than a poll interval, they may end between two polls;
* while running, progress is a function of *running time* (wall time minus stalls), published in
  steps of ``progress_step_s``, so progress is monotone and freezes during a stall;
* when a job vanishes its job log is written; it becomes visible after the log delay;
* a scenario (:mod:`.scenario`) adds scripted jobs with a fixed plan, drawn from their own random
  stream so the random workload stays as it was; the script starts when :meth:`SimWorld.polled`
  reports the first answered poll, and a ``between_polls`` job is submitted just after a poll of
  its company: poll times are then an input of the model, like the time.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from streamer.model import Outcome
from streamer.simulator.catalog import (
    KINDS,
    UNDOCUMENTED_KINDS,
    JobKind,
    original_name,
    pick_kind,
    sub_job_xml,
)
from streamer.simulator.config import SimulatorConfig
from streamer.simulator.jobs import (
    GONE,
    NEW,
    RUNNING,
    WAITING,
    Fact,
    LogCounts,
    LogWritten,
    SimJob,
    SimJobLog,
    TaskPlan,
    Transition,
    stall_union,
)
from streamer.simulator.scenario import ScriptedJob

_SUBMIT, _TO_WAITING, _TO_RUNNING, _GONE, _LOG, _ROUND, _SCRIPT, _SCRIPT_NOW = range(8)
_KIND_BY_TYPE: dict[str, JobKind] = {k.type: k for k in (*KINDS, *UNDOCUMENTED_KINDS)}
#: How long after the poll that armed it a ``between_polls`` job is submitted (simulated s).
AFTER_POLL_S = 0.05


class CompanySim:
    """The discrete-event process of one company's jobs."""

    def __init__(
        self, handle: str, index: int, config: SimulatorConfig, epoch: datetime, facts: list[Fact]
    ) -> None:
        self.handle = handle
        self.config = config
        self.epoch = epoch
        self.rng = random.Random(f"{config.seed}:{handle}")
        self.active: dict[str, SimJob] = {}
        self.logs: dict[str, SimJobLog] = {}
        self.now = -math.inf
        self.submitted = 0
        self.quota = config.company_quota(index)
        self.log_delay: float | None = None
        self._facts = facts
        self._heap: list[tuple[float, int, int, str]] = []
        self._seq = 0
        self._pending_logs: dict[str, SimJobLog] = {}
        self._serial = self.rng.randrange(1_000_000, 9_000_000)
        scenario = config.scenario
        self.script: tuple[ScriptedJob, ...] = () if scenario is None else scenario.jobs_of(handle)
        self._repeat_s = None if scenario is None else scenario.repeat_s
        # Scripted jobs draw from their own stream: the random workload is the same with or
        # without a scenario, and the script the same whatever the random jobs did.
        self._script_rng = random.Random(f"{config.seed}:{handle}:scenario")
        self._armed: list[int] = []
        self._scripted: set[str] = set()
        self._no_log: set[str] = set()
        new, wait, run = config.new_duration_s, config.waiting_duration_s, config.running_duration_s
        lifetime = (sum(new) + sum(wait) + sum(run)) / 2
        for _ in range(config.jobs_per_company):
            if config.warm_start:
                self._push(-self.rng.uniform(0.0, lifetime), _SUBMIT)
            else:
                self._push(self.rng.uniform(0.0, config.initial_spread_s), _SUBMIT)

    # ---- time ---------------------------------------------------------------------------------

    def advance(self, t: float) -> None:
        """Process every event up to and including ``t``; never moves backwards."""
        heap = self._heap
        while heap and heap[0][0] <= t:
            et, _, kind, handle = heapq.heappop(heap)
            self.now = max(self.now, et)
            self._dispatch(kind, handle, et)
        self.now = max(self.now, t)

    def _push(self, t: float, kind: int, handle: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, handle))

    def _dispatch(self, kind: int, handle: str, t: float) -> None:
        if kind == _SUBMIT:
            self._submit(t)
            return
        if kind in (_ROUND, _SCRIPT, _SCRIPT_NOW):
            self._play(kind, int(handle), t)
            return
        if kind == _LOG:
            self._publish_log(handle, t)
            return
        job = self.active.get(handle)
        if job is None:
            return
        if kind == _TO_WAITING:
            self._move(job, WAITING, t)
            self._push(job.running_at, _TO_RUNNING, handle)
        elif kind == _TO_RUNNING:
            self._move(job, RUNNING, t)
            self._reschedule_gone(job)
        elif kind == _GONE and job.gone_at == t:  # else stale: a stall moved the end
            self._vanish(job, t)

    def _move(self, job: SimJob, to: str, t: float) -> None:
        self._facts.append(Transition(t, self.handle, job.handle, job.state, to))
        job.state = to

    # ---- submission -----------------------------------------------------------------------------

    def _submit(self, t: float) -> None:
        if self.quota is not None and self.submitted >= self.quota:
            return
        self.submitted += 1
        job = self._new_job(t)
        self.active[job.handle] = job
        self._facts.append(Transition(t, self.handle, job.handle, None, NEW))
        self._push(job.waiting_at, _TO_WAITING, job.handle)

    def _new_job(self, t: float) -> SimJob:
        cfg, rng = self.config, self.rng
        kind = pick_kind(rng, cfg.unknown_type_probability)
        files = rng.randint(*cfg.files_per_job)
        # Drawn only when short jobs are asked for: other workloads keep their random sequence.
        short = cfg.short_job_share > 0 and rng.random() < cfg.short_job_share
        if short:
            life = rng.uniform(*cfg.short_job_duration_s)
            waiting_at, running_at, duration = t + 0.1 * life, t + 0.3 * life, 0.7 * life
        else:
            waiting_at = t + rng.uniform(*cfg.new_duration_s)
            running_at = waiting_at + rng.uniform(*cfg.waiting_duration_s)
            duration = rng.uniform(*cfg.running_duration_s)
        outcome, fraction = self._draw_outcome()
        end_running = duration * fraction
        counts = _plan_counts(outcome, files, fraction, kind, rng)
        stalls: list[tuple[float, float]] = []
        if not short and rng.random() < cfg.stall_probability:
            at = running_at + rng.uniform(0.2, 0.8) * end_running
            stalls.append((at, rng.uniform(*cfg.stall_duration_s)))
        plan = _Plan(kind, files, waiting_at, running_at, duration, end_running, outcome, counts)
        linger = cfg.fail_linger_s if outcome is Outcome.FAILED and not short else 0.0
        return self._job(rng, t, plan, stalls, linger, None)

    def _job(
        self,
        rng: random.Random,
        t: float,
        plan: _Plan,
        stalls: list[tuple[float, float]],
        linger: float,
        name: str | None,
    ) -> SimJob:
        cfg, kind, files = self.config, plan.kind, plan.files
        stamp = self.stamp(t)
        self._serial += rng.randint(1, 97)
        company_id = self.handle.removeprefix("c|")
        handle = f"j|{company_id}||{rng.getrandbits(84):021x}_{stamp}|{self._serial}"
        orig = original_name(kind, rng) if name is None else name
        return SimJob(
            company=self.handle,
            handle=handle,
            name=f"{orig}_{stamp}",
            original_name=orig,
            kind=kind,
            sub_job=sub_job_xml(kind, self.handle, files, rng),
            user_email=next(iter(cfg.users), "ops@example.com"),
            locale="en-US" if rng.random() < 0.7 else None,
            description=f"{kind.type} of {files} files" if rng.random() < 0.5 else None,
            server_name=f"sps1-jobs-{rng.randint(1, 8):02d}",
            total_size=files * rng.randint(20_000, 2_000_000) if kind.transfers else 0,
            files=files,
            submitted_at=t,
            waiting_at=plan.waiting_at,
            running_at=plan.running_at,
            duration=plan.duration,
            end_running=plan.end_running,
            linger=linger,
            outcome=plan.outcome,
            counts=plan.counts,
            tasks=_plan_tasks(kind, rng),
            step=cfg.progress_step_s,
            stalls=stalls,
        )

    # ---- the scenario -------------------------------------------------------------------------

    def start_script(self, t: float) -> None:
        """Start the company's scripted jobs' first round at ``t``."""
        if self.script:
            self._push(t, _ROUND, "0")

    def polled(self, t: float) -> None:
        """A ``getActiveJobs`` answer was served at ``t``: submit the armed between-polls jobs
        just after it, so that they end before the next poll."""
        for index in self._armed:
            self._push(t + AFTER_POLL_S, _SCRIPT_NOW, str(index))
        self._armed.clear()

    def _play(self, kind: int, index: int, t: float) -> None:
        if kind == _ROUND:
            for i, spec in enumerate(self.script):
                self._push(t + spec.at_s, _SCRIPT, str(i))
            if self._repeat_s is not None:
                self._push(t + self._repeat_s, _ROUND, str(index + 1))
        elif kind == _SCRIPT and self.script[index].between_polls:
            self._armed.append(index)
        else:
            self._submit_scripted(self.script[index], t)

    def _submit_scripted(self, spec: ScriptedJob, t: float) -> None:
        rng = self._script_rng
        kind = _KIND_BY_TYPE[spec.type]
        waiting_at = t + spec.new_s
        running_at = waiting_at + spec.waiting_s
        fraction = spec.end_running / spec.running_s
        counts = _plan_counts(spec.outcome, spec.files, fraction, kind, rng)
        plan = _Plan(
            kind, spec.files, waiting_at, running_at, spec.running_s, spec.end_running,
            spec.outcome, counts,
        )  # fmt: skip
        stalls = [] if spec.stall_at_s is None else [(running_at + spec.stall_at_s, spec.stall_s)]
        failed = spec.outcome is Outcome.FAILED and not spec.between_polls
        linger = self.config.fail_linger_s if failed else 0.0
        job = self._job(rng, t, plan, stalls, linger, spec.name)
        self.active[job.handle] = job
        self._scripted.add(job.handle)
        if not spec.log:
            self._no_log.add(job.handle)
        self._facts.append(Transition(t, self.handle, job.handle, None, NEW))
        self._push(job.waiting_at, _TO_WAITING, job.handle)

    def _draw_outcome(self) -> tuple[Outcome, float]:
        cfg, u = self.config, self.rng.random()
        if u < cfg.fail_probability:
            return Outcome.FAILED, self.rng.uniform(0.2, 0.9)
        u -= cfg.fail_probability
        if u < cfg.error_probability:
            return Outcome.COMPLETED_WITH_ERRORS, 1.0
        u -= cfg.error_probability
        if u < cfg.warning_probability:
            return Outcome.COMPLETED_WITH_WARNINGS, 1.0
        return Outcome.SUCCEEDED, 1.0

    def stamp(self, t: float) -> str:
        """``yyyy-MM-dd-HH:mm:ss.SSS`` of simulated time ``t`` (handle and name suffix)."""
        dt = self.epoch + timedelta(milliseconds=round(t * 1000))
        return f"{dt:%Y-%m-%d-%H:%M:%S}.{dt.microsecond // 1000:03d}"

    # ---- end of a job ---------------------------------------------------------------------------

    def _reschedule_gone(self, job: SimJob) -> None:
        job.gone_at = job.time_at_running(job.end_running) + job.linger
        if math.isfinite(job.gone_at):
            self._push(job.gone_at, _GONE, job.handle)

    def _vanish(self, job: SimJob, t: float) -> None:
        del self.active[job.handle]
        self._facts.append(Transition(t, self.handle, job.handle, job.state, GONE, job.outcome))
        job.state = GONE
        log = SimJobLog(
            company=self.handle,
            job_handle=job.handle,
            job_name=job.name,
            original_name=job.original_name,
            user_email=job.user_email,
            kind=job.kind,
            description=job.description or "",
            start=job.submitted_at,
            end=t,
            counts=job.counts,
            outcome=job.outcome,
            files=job.files,
        )
        delay = self.config.log_delay_s if self.log_delay is None else self.log_delay
        if job.handle in self._no_log:
            delay = math.inf
        if delay == 0:
            self._publish(log, t)
        elif math.isfinite(delay):
            self._pending_logs[job.handle] = log
            self._push(t + delay, _LOG, job.handle)
        if job.handle in self._scripted:  # the script replaces nothing: it has its own times
            self._scripted.discard(job.handle)
            self._no_log.discard(job.handle)
            return
        gap = self.rng.expovariate(1 / self.config.submit_gap_s) if self.config.submit_gap_s else 0
        self._push(t + gap, _SUBMIT)

    def _publish_log(self, handle: str, t: float) -> None:
        log = self._pending_logs.pop(handle, None)
        if log is not None:
            self._publish(log, t)

    def _publish(self, log: SimJobLog, t: float) -> None:
        self.logs[log.job_handle] = log
        if len(self.logs) > self.config.max_logs_per_company:
            del self.logs[next(iter(self.logs))]
        self._facts.append(LogWritten(t, self.handle, log.job_handle, log.outcome))

    # ---- runtime controls -----------------------------------------------------------------------

    def stall(self, handle: str, duration: float | None) -> bool:
        """Freeze a running job's progress from ``now`` for ``duration`` (``None`` = until
        :meth:`unstall`); False when the job is not running."""
        job = self.active.get(handle)
        if job is None or job.state != RUNNING:
            return False
        length = math.inf if duration is None else duration
        job.stalls = stall_union([*job.stalls, (self.now, length)])
        self._reschedule_gone(job)
        return True

    def unstall(self, handle: str) -> bool:
        """End the stall a job is in now; False when it is not stalled."""
        job = self.active.get(handle)
        if job is None:
            return False
        for i, (s, n) in enumerate(job.stalls):
            if s <= self.now < s + n:
                job.stalls[i] = (s, self.now - s)
                self._reschedule_gone(job)
                return True
        return False


@dataclass(frozen=True, slots=True)
class _Plan:
    """What decides a job's life: its kind, size, timings and end."""

    kind: JobKind
    files: int
    waiting_at: float
    running_at: float
    duration: float
    end_running: float
    outcome: Outcome
    counts: LogCounts


def _plan_counts(
    outcome: Outcome, files: int, fraction: float, kind: JobKind, rng: random.Random
) -> LogCounts:
    error = warning = 0
    if outcome is Outcome.FAILED:
        success = int(files * fraction)
    elif outcome is Outcome.COMPLETED_WITH_ERRORS:
        error = rng.randint(1, max(1, files // 3))
        # Errors and warnings together: the classification must let errors win.
        warning = rng.randint(0, files - error) if rng.random() < 0.3 else 0
        success = files - error - warning
    elif outcome is Outcome.COMPLETED_WITH_WARNINGS:
        warning = rng.randint(1, max(1, files // 3))
        success = files - warning
    else:
        success = files
    done = success + error + warning
    return LogCounts(
        success=success,
        error=error,
        warning=warning,
        total=files,
        transfer_success=done if kind.transfers else 0,
        fatal=outcome is Outcome.FAILED,
    )


def _plan_tasks(kind: JobKind, rng: random.Random) -> tuple[TaskPlan, ...]:
    total = sum(spec.weight for spec in kind.tasks)
    plans, start = [], 0.0
    for i, spec in enumerate(kind.tasks):
        end = 1.0 if i == len(kind.tasks) - 1 else start + spec.weight / total
        plans.append(TaskPlan(spec, start, end, rng.randint(1, 2)))
        start = end
    return tuple(plans)


class SimWorld:
    """All companies; each is built lazily on first use and advanced independently."""

    def __init__(self, config: SimulatorConfig, epoch: datetime) -> None:
        self.config = config
        self.epoch = epoch
        self.facts: list[Fact] = []
        self.companies: dict[str, CompanySim] = {}
        self._index = {handle: i for i, handle in enumerate(config.companies)}
        self._log_delays: dict[str | None, float] = {}
        #: When the scenario started (the first answered poll); ``None``: not yet, or none.
        self.scenario_start: float | None = None

    def company(self, handle: str | None) -> CompanySim | None:
        """The company's process (built on first use); ``None`` for an unknown company."""
        if handle is None:
            return None
        sim = self.companies.get(handle)
        if sim is None:
            index = self._index.get(handle)
            if index is None:
                return None
            sim = self.companies[handle] = CompanySim(
                handle, index, self.config, self.epoch, self.facts
            )
            sim.log_delay = self._log_delays.get(handle, self._log_delays.get(None))
            if self.scenario_start is not None:
                sim.start_script(self.scenario_start)
        return sim

    def polled(self, handle: str, t: float) -> None:
        """A company's ``getActiveJobs`` was answered at ``t``: the first answer starts the
        scenario; between-polls jobs of that company are submitted just after it."""
        if self.config.scenario is not None and self.scenario_start is None:
            self.scenario_start = t
            for started in self.companies.values():
                started.start_script(t)
        sim = self.company(handle)
        if sim is not None:
            sim.polled(t)

    def advance(self, handle: str, t: float) -> CompanySim | None:
        """Bring one company to time ``t``; returns it (``None`` if unknown)."""
        sim = self.company(handle)
        if sim is not None:
            sim.advance(t)
        return sim

    def advance_all(self, t: float) -> None:
        """Bring every company built so far to time ``t``."""
        for sim in self.companies.values():
            sim.advance(t)

    def drain(self) -> list[Fact]:
        """Facts produced since the last drain, in the order they happened per company."""
        facts, self.facts[:] = list(self.facts), []
        return facts

    def set_log_delays(self, delays: dict[str | None, float]) -> None:
        """Override the log delay per company (key ``None`` = all); ``{}`` restores config."""
        self._log_delays = dict(delays)
        for handle, sim in self.companies.items():
            sim.log_delay = delays.get(handle, delays.get(None))

    def find_job(self, job_handle: str) -> SimJob | None:
        """An active job by handle, in any company built so far."""
        for sim in self.companies.values():
            job = sim.active.get(job_handle)
            if job is not None:
                return job
        return None
