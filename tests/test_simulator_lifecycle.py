"""The simulator's job lifecycle model: deterministic, forward-only, consistent outcomes."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.model import Outcome
from streamer.simulator.catalog import KINDS, UNDOCUMENTED_KINDS
from streamer.simulator.config import SimulatorConfig
from streamer.simulator.jobs import (
    GONE,
    NEW,
    RUNNING,
    WAITING,
    JobView,
    LogWritten,
    SimJob,
    Transition,
    classify,
    job_view,
    log_details,
)
from streamer.simulator.lifecycle import SimWorld

EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ORDER = {None: 0, NEW: 1, WAITING: 2, RUNNING: 3, GONE: 4}


def _config(**overrides: object) -> SimulatorConfig:
    settings_: dict[str, object] = {
        "companies": ("c|1001", "c|1002"),
        "jobs_per_company": 4,
        "seed": 7,
        "running_duration_s": (10.0, 40.0),
        "tick_s": None,
    }
    settings_.update(overrides)
    return SimulatorConfig(**settings_)  # type: ignore[arg-type]


def _run(world: SimWorld, times: list[float]) -> list[Transition | LogWritten]:
    for t in times:
        for company in world.config.companies:
            world.advance(company, t)
    return world.drain()


def _by_company(facts: list[Transition | LogWritten]) -> dict[str, list[object]]:
    grouped: dict[str, list[object]] = defaultdict(list)
    for fact in facts:
        grouped[fact.company].append(fact)
    return dict(grouped)


def _snapshot(world: SimWorld) -> dict[str, list[tuple[str, object]]]:
    return {
        handle: [(j.handle, job_view(j, sim.now)) for j in sim.active.values()]
        for handle, sim in world.companies.items()
    }


def test_same_seed_same_history() -> None:
    """Two worlds with the same seed and the same times produce identical facts and views."""
    a, b = SimWorld(_config(), EPOCH), SimWorld(_config(), EPOCH)
    times = [float(t) for t in range(0, 200, 5)]
    assert _run(a, times) == _run(b, times)
    assert _snapshot(a) == _snapshot(b)


def test_other_seed_other_history() -> None:
    """A different seed gives different job handles (the seed is really used)."""
    a, b = SimWorld(_config(), EPOCH), SimWorld(_config(seed=8), EPOCH)
    assert _run(a, [60.0]) != _run(b, [60.0])


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=150.0), max_size=12))
def test_history_does_not_depend_on_when_it_was_advanced(samples: list[float]) -> None:
    """Advancing through arbitrary intermediate times ends in the same state as one jump."""
    stepped, direct = SimWorld(_config(), EPOCH), SimWorld(_config(), EPOCH)
    stepped_facts = _run(stepped, [*sorted(samples), 150.0])
    direct_facts = _run(direct, [150.0])
    assert _by_company(stepped_facts) == _by_company(direct_facts)
    assert _snapshot(stepped) == _snapshot(direct)


def test_states_only_move_forward() -> None:
    """Each job goes New -> WaitingCoordinator -> Running -> gone, one step at a time."""
    world = SimWorld(_config(fail_probability=0.3), EPOCH)
    facts = _run(world, [float(t) for t in range(0, 400, 3)])
    seen: dict[str, str | None] = {}
    for fact in facts:
        if not isinstance(fact, Transition):
            continue
        assert fact.from_state == seen.get(fact.job_handle)
        assert ORDER[fact.to_state] == ORDER[fact.from_state] + 1
        seen[fact.job_handle] = fact.to_state
    assert Counter(seen.values())[GONE] > 10


def _views_over_time(job: SimJob, world: SimWorld, until: float) -> list[JobView]:
    views = []
    t = world.companies[job.company].now
    while job.state != GONE and t < until:
        t += 0.7
        world.advance(job.company, t)
        if job.state != GONE:
            views.append(job_view(job, t))
    return views


def test_progress_is_monotone_and_tasks_move_forward() -> None:
    """Progress, lastProgressUpdate and each task's progress/state never go backwards."""
    world = SimWorld(_config(stall_probability=0.5, fail_probability=0.3), EPOCH)
    world.advance("c|1001", 10.0)
    task_order = {"New": 0, "Processing": 1, "Failed": 2, "Done": 2}
    checked = 0
    while checked < 12:
        sim = world.companies["c|1001"]
        job = next(j for j in sim.active.values() if j.state != GONE)
        views = _views_over_time(job, world, sim.now + 500)
        for before, after in itertools.pairwise(views):
            assert after.progress >= before.progress
            assert after.last_update >= before.last_update
            assert 0 <= after.progress <= 100
            for tb, ta in zip(before.tasks, after.tasks, strict=False):
                assert ta.progress >= tb.progress
                assert 0.0 <= ta.progress <= 1.0
                assert task_order[ta.state] >= task_order[tb.state]
                assert ta.processed + ta.processing + ta.pending == job.files
        checked += 1


def test_finished_jobs_get_a_log_consistent_with_their_outcome() -> None:
    """Every vanished job gets a job log whose counts classify to the outcome it vanished with."""
    world = SimWorld(
        _config(fail_probability=0.2, error_probability=0.2, warning_probability=0.2), EPOCH
    )
    facts = _run(world, [float(t) for t in range(0, 600, 10)])
    gone = {
        f.job_handle: f.outcome for f in facts if isinstance(f, Transition) and f.to_state == GONE
    }
    logged = {f.job_handle: f.outcome for f in facts if isinstance(f, LogWritten)}
    assert gone == logged
    assert set(gone.values()) == {
        Outcome.SUCCEEDED,
        Outcome.FAILED,
        Outcome.COMPLETED_WITH_ERRORS,
        Outcome.COMPLETED_WITH_WARNINGS,
    }
    for sim in world.companies.values():
        for log in sim.logs.values():
            c = log.counts
            assert classify(c) is log.outcome is gone[log.job_handle]
            assert log.end > log.start
            rows = log_details(log)
            types = Counter(r.log_type for r in rows)
            kind = log.kind.log_kind
            assert types[f"{kind}Error"] == c.error
            assert types[f"{kind}Warning"] == c.warning
            assert types[f"{kind}Success"] == c.success
            assert (types["FatalError"] == 1) is c.fatal
            assert rows[0].log_type.startswith("Begin")
            assert rows[-1].log_type.startswith("End")
            assert [r.t for r in rows] == sorted(r.t for r in rows)


def test_max_jobs_total_bounds_the_workload() -> None:
    """With max_jobs_total the companies submit exactly that many jobs, then go quiet."""
    world = SimWorld(_config(companies=("c|1", "c|2", "c|3"), max_jobs_total=7), EPOCH)
    facts = _run(world, [100.0, 1000.0, 3000.0])
    submitted = [f for f in facts if isinstance(f, Transition) and f.from_state is None]
    assert len(submitted) == 7
    assert sum(len(s.active) for s in world.companies.values()) == 0
    assert sum(len(s.logs) for s in world.companies.values()) == 7


def test_company_keeps_about_its_target_of_active_jobs() -> None:
    """A vanished job is replaced, so the active count stays near jobs_per_company."""
    world = SimWorld(_config(jobs_per_company=10, submit_gap_s=0.5), EPOCH)
    counts = []
    for t in range(50, 600, 25):
        world.advance("c|1001", float(t))
        counts.append(len(world.companies["c|1001"].active))
    assert min(counts) >= 7
    assert max(counts) <= 10


def test_runtime_stall_freezes_progress_until_unstalled() -> None:
    """A stalled job's progress and lastProgressUpdate freeze, and it vanishes later."""
    world = SimWorld(_config(stall_probability=0.0, running_duration_s=(100.0, 100.0)), EPOCH)
    world.advance("c|1001", 0.0)
    sim = world.companies["c|1001"]
    t = 30.0
    world.advance("c|1001", t)
    job = next(j for j in sim.active.values() if j.state == RUNNING)
    planned_end = job.gone_at
    assert sim.stall(job.handle, None)
    frozen = job_view(job, t)
    world.advance("c|1001", t + 50)
    assert job_view(job, t + 50) == frozen
    assert job.gone_at == float("inf")
    assert sim.unstall(job.handle)
    assert job.gone_at == pytest.approx(planned_end + 50)
    world.advance("c|1001", t + 60)
    assert job_view(job, t + 60).progress > frozen.progress


def test_stall_of_a_job_that_is_not_running_is_refused() -> None:
    """Only running jobs can be stalled."""
    world = SimWorld(_config(new_duration_s=(5.0, 5.0)), EPOCH)
    sim = world.advance("c|1001", 5.0)
    assert sim is not None
    job = next(j for j in sim.active.values() if j.state == NEW)
    assert not sim.stall(job.handle, 10.0)
    assert not sim.stall("j|nope", 10.0)


def test_log_delay_and_never_appearing_logs() -> None:
    """With a log delay the log appears that long after the job vanished; inf means never."""
    world = SimWorld(_config(log_delay_s=30.0), EPOCH)
    facts = _run(world, [300.0])
    vanish = {f.job_handle: f.t for f in facts if isinstance(f, Transition) and f.to_state == GONE}
    logged = {f.job_handle: f.t for f in facts if isinstance(f, LogWritten)}
    assert logged
    assert all(logged[h] == pytest.approx(vanish[h] + 30.0) for h in logged)
    assert set(vanish) - set(logged) == {h for h, t in vanish.items() if t + 30.0 > 300.0}

    world = SimWorld(_config(), EPOCH)
    world.set_log_delays({"c|1001": float("inf")})
    facts = _run(world, [300.0])
    assert not [f for f in facts if isinstance(f, LogWritten) and f.company == "c|1001"]
    assert [f for f in facts if isinstance(f, LogWritten) and f.company == "c|1002"]


def test_handles_and_names_look_like_real_ones_and_are_unique() -> None:
    """Job handles follow j|<company>||<hex>_<stamp>|<n>; names are originalName_<stamp>."""
    world = SimWorld(_config(jobs_per_company=30), EPOCH)
    _run(world, [200.0])
    handle_re = re.compile(
        r"^j\|(\d+)\|\|[0-9a-f]{21}_(\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d\.\d{3})\|\d+$"
    )
    handles = []
    for sim in world.companies.values():
        for job in sim.active.values():
            match = handle_re.match(job.handle)
            assert match is not None, job.handle
            assert match.group(1) == job.company.removeprefix("c|")
            assert job.name == f"{job.original_name}_{match.group(2)}"
            handles.append(job.handle)
        handles.extend(sim.logs)
    assert len(handles) == len(set(handles)) > 60


def test_job_type_mix_uses_the_right_sub_job_elements() -> None:
    """All documented types appear with their element, plus undocumented type strings."""
    world = SimWorld(_config(jobs_per_company=150, unknown_type_probability=0.2), EPOCH)
    _run(world, [1.0])
    pairs = {
        (j.kind.type, j.kind.element) for s in world.companies.values() for j in s.active.values()
    }
    expected = {
        ("ImageServingPublish", "imageServingPublishJob"),
        ("UrlUpload", "uploadUrlsJob"),
        ("UploadFromServerDirectory", "uploadDirectoryJob"),
        ("VideoPublish", "videoPublishJob"),
        ("ImageRenderingPublish", "imageRenderingPublishJob"),
        ("ServerDirectoryPublish", "serverDirectoryPublishJob"),
        ("ImageOptimization", "optimizeImagesJob"),
    }
    assert expected == {(k.type, k.element) for k in KINDS}
    assert pairs >= expected
    assert pairs & {(k.type, k.element) for k in UNDOCUMENTED_KINDS}
    for sim in world.companies.values():
        for job in sim.active.values():
            element = job.kind.element
            assert job.sub_job.startswith(f"<{element}>") if element else job.sub_job == ""


def test_warm_start_begins_with_busy_companies() -> None:
    """A bulk config starts every company with its jobs already in all states."""
    config = SimulatorConfig.bulk(50, 10)
    world = SimWorld(config, EPOCH)
    states: Counter[str] = Counter()
    for company in config.companies:
        sim = world.advance(company, 0.0)
        assert sim is not None
        assert 7 <= len(sim.active) <= 10
        states.update(j.state for j in sim.active.values())
    assert states[RUNNING] > states[NEW] > 0
    assert states[WAITING] > 0


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"companies": ()}, "companies"),
        ({"companies": ("c|1", "c|1")}, "companies"),
        ({"speedup": 0}, "speedup"),
        ({"running_duration_s": (5.0, 1.0)}, "running_duration_s"),
        ({"fail_probability": 0.6, "error_probability": 0.6}, "probability"),
        ({"max_jobs_total": -1}, "max_jobs_total"),
        ({"start_time": datetime(2024, 1, 1)}, "start_time"),
    ],
)
def test_invalid_config_is_refused_naming_the_key(overrides: dict[str, object], key: str) -> None:
    """A bad setting fails at construction with a message naming it."""
    with pytest.raises(ValueError, match=key):
        _config(**overrides)


def test_unknown_company_is_not_simulated() -> None:
    """Only configured company handles exist in the world."""
    world = SimWorld(_config(), EPOCH)
    assert world.company("c|9999") is None
    assert world.advance("c|9999", 10.0) is None
