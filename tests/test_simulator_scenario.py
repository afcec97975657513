"""The simulator's scripted scenario: fixed jobs and outages, started by the first poll."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streamer.demo import clock_note
from streamer.model import Outcome
from streamer.simulator import SIMULATOR
from streamer.simulator.config import SimulatorConfig
from streamer.simulator.jobs import GONE, NEW, LogWritten, Transition, job_view
from streamer.simulator.lifecycle import AFTER_POLL_S, SimWorld
from streamer.simulator.scenario import Outage, Scenario, ScriptedJob
from tests.test_simulator_http import jobs_of, post, simulators

ROOT = Path(__file__).resolve().parents[1]
EPOCH = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FIRST_POLL = 5.0
POLL_S = 2.0


def demo_table() -> dict[str, Any]:
    """The ``[simulator]`` table of the demo config."""
    with (ROOT / "config" / "demo.toml").open("rb") as fh:
        table: dict[str, Any] = tomllib.load(fh)["simulator"]
    return table


def demo_world(**overrides: Any) -> SimWorld:
    """A world of the demo's simulator settings (no background tick)."""
    return SimWorld(SimulatorConfig.from_table(demo_table(), tick_s=None, **overrides), EPOCH)


def poll_all(world: SimWorld, until: float) -> dict[str, list[tuple[float, set[str]]]]:
    """Poll every company every 2 s from t=5 to ``until``, as the demo's streamer does; the
    handles each poll listed, per company."""
    seen: dict[str, list[tuple[float, set[str]]]] = {c: [] for c in world.config.companies}
    t = FIRST_POLL
    while t <= until:
        for company in world.config.companies:
            sim = world.advance(company, t)
            assert sim is not None
            seen[company].append((t, set(sim.active)))
            world.polled(company, t)
        t += POLL_S
    return seen


def ends(facts: list[Any]) -> dict[str, Transition]:
    """The vanishing of every job, by handle."""
    return {f.job_handle: f for f in facts if isinstance(f, Transition) and f.to_state == GONE}


def draw(handle: str) -> str:
    """The random part of a job handle (``j|1001||<draw>_<stamp>|<serial>``)."""
    return handle.split("|")[3].split("_")[0]


def test_demo_table_is_a_scenario_with_every_scene() -> None:
    """The demo config's [simulator] table scripts every outcome, a stall, a job without a log,
    a job between two polls and an outage, at the wall clock's pace."""
    config = SimulatorConfig.from_table(demo_table())
    scenario = config.scenario
    assert scenario is not None
    assert config.speedup == 1.0
    assert {j.outcome for j in scenario.jobs} == set(Outcome) - {Outcome.UNKNOWN}
    assert any(j.stall_at_s is not None and j.stall_s > 8 for j in scenario.jobs)
    assert any(not j.log for j in scenario.jobs)
    assert any(j.between_polls for j in scenario.jobs)
    assert scenario.outages
    assert scenario.repeat_s is not None


def test_script_waits_for_the_first_poll_and_then_plays_on_time() -> None:
    """Nothing scripted happens before the first answered poll; then each job starts at_s after
    it and ends new_s + waiting_s + running_s later."""
    world = demo_world(jobs_per_company=0)
    world.advance("c|1001", 60.0)
    assert not world.drain()
    assert world.scenario_start is None
    world.polled("c|1001", 60.0)
    world.advance("c|1001", 100.0)
    assert world.scenario_start == 60.0
    # ISPublish at 0 (+1+2+14) and UrlUpload at 10 (+1+2+16); the video (at 2, +1+2+24, stalled
    # 20 s) ends at 109.
    assert sorted(f.t for f in ends(world.drain()).values()) == pytest.approx([77.0, 89.0])


def test_demo_scenario_outcomes_stall_missing_log_and_a_job_between_polls() -> None:
    """Played with polls every 2 s: the scripted jobs end with every outcome, the stalled job's
    progress freezes for its stall, one job never gets a log, and one lives between two polls."""
    world = demo_world(jobs_per_company=0)
    seen = poll_all(world, 85.0)
    facts = world.drain()
    ended = ends(facts)
    logs = {f.job_handle for f in facts if isinstance(f, LogWritten)}
    assert {e.outcome for e in ended.values()} == set(Outcome) - {Outcome.UNKNOWN}
    assert len(set(ended) - logs) == 1  # the optimisation's log never comes
    submitted = {
        f.job_handle: f.t for f in facts if isinstance(f, Transition) and f.to_state == NEW
    }
    listed = {h for polls in seen.values() for _, handles in polls for h in handles}
    unseen = set(ended) - listed
    assert len(unseen) == 1
    (between,) = unseen
    poll_times = [t for t, _ in seen["c|1002"]]
    start, end = submitted[between], ended[between].t
    assert any(p < start and end < p + POLL_S for p in poll_times)
    assert start - max(p for p in poll_times if p < start) == pytest.approx(AFTER_POLL_S)
    assert between in logs  # reconciliation can find it


def test_stalled_job_freezes_for_its_stall() -> None:
    """The demo's video job shows the same progress and lastProgressUpdate for its 20 s stall."""
    world = demo_world(jobs_per_company=0)
    world.polled("c|1001", 0.0)
    sim = world.advance("c|1001", 12.0)
    assert sim is not None
    (video,) = [j for j in sim.active.values() if j.kind.type == "VideoPublish"]
    frozen = job_view(video, 12.0)
    for t in (16.0, 24.0, 30.0):
        world.advance("c|1001", t)
        assert job_view(video, t) == frozen
    world.advance("c|1001", 34.0)
    assert job_view(video, 34.0).progress > frozen.progress


def test_scenario_repeats_every_round() -> None:
    """With repeat_s the script plays again: the same scenes, repeat_s later."""
    world = demo_world(jobs_per_company=0)
    world.polled("c|1001", 0.0)
    world.advance("c|1001", 200.0)
    times = sorted(round(f.t, 3) for f in ends(world.drain()).values())
    first = [t for t in times if t < 90]
    assert first
    assert [t + 90 for t in first] == [t for t in times if 90 <= t < 180]


def test_scripted_jobs_leave_the_random_workload_as_it_was() -> None:
    """The random jobs' history is the same with and without the scenario."""

    def history(**overrides: Any) -> list[tuple[float, str, str | None, str]]:
        world = demo_world(**overrides)
        poll_all(world, 80.0)
        return [
            (f.t, draw(f.job_handle), f.from_state, f.to_state)
            for f in world.drain()
            if isinstance(f, Transition)
        ]

    alone = history(scenario=None)
    random_draws = {d for _, d, _, _ in alone}
    with_script = history()
    assert alone
    assert len(with_script) > len(alone)
    assert [h for h in with_script if h[1] in random_draws] == alone


def test_outage_covers_its_window_of_each_round() -> None:
    """An outage fails its company from at_s to at_s + for_s of every round, nothing else."""
    scenario = Scenario(outages=(Outage("c|1003", 20.0, 14.0),), repeat_s=90.0)
    assert scenario.outage_at("c|1003", 19.9) is None
    assert scenario.outage_at("c|1003", 20.0) is not None
    assert scenario.outage_at("c|1003", 33.9) is not None
    assert scenario.outage_at("c|1003", 34.0) is None
    assert scenario.outage_at("c|1003", 90.0 + 25.0) is not None
    assert scenario.outage_at("c|1001", 25.0) is None
    assert scenario.outage_at("c|1003", -70.0) is None
    assert Scenario(outages=(Outage("c|1003", 20.0, 14.0),)).outage_at("c|1003", 115.0) is None


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"jobs": [{"company": "c|1001", "at_s": 0, "colour": "red"}]}, "colour"),
        ({"jobs": [{"company": "c|1001", "at_s": 0, "outcome": "unknown"}]}, "outcome"),
        ({"jobs": [{"company": "c|1001", "at_s": 0, "type": "Teleport"}]}, "type"),
        ({"jobs": [{"company": "c|1001", "at_s": 0, "stall_at_s": 30}]}, "stall_at_s"),
        ({"outages": [{"company": "c|1001", "at_s": 0, "for_s": 5, "mode": "raw"}]}, "mode"),
        ({"repeat_s": 10, "outages": [{"company": "c|1", "at_s": 5, "for_s": 9}]}, "repeat_s"),
        ({"sequel": True}, "sequel"),
    ],
)
def test_bad_scenario_is_refused_naming_the_key(table: dict[str, Any], named: str) -> None:
    """A scenario table with a bad key or value fails with a message naming it."""
    with pytest.raises(ValueError, match=named):
        Scenario.from_mapping(table)


def test_scenario_of_a_company_not_simulated_is_refused() -> None:
    """Every company a scenario names must be simulated."""
    with pytest.raises(ValueError, match=r"c\|2002"):
        SimulatorConfig(scenario=Scenario(jobs=(ScriptedJob("c|2002", 0.0),)))
    with pytest.raises(ValueError, match="unknown keys"):
        SimulatorConfig.from_table({"speed": 2})


async def test_outage_answers_503_over_http_during_its_window(tmp_path: Path) -> None:
    """The first poll starts the script; the company's requests fail during its outage only,
    other companies' go on."""
    scenario = Scenario(outages=(Outage("c|1001", 1.0, 5.0, "http_503"),))
    async with simulators(tmp_path) as make:
        client = await make(scenario=scenario)
        assert (await post(client))[0] == 200
        assert client.app is not None
        clock = client.app[SIMULATOR].clock
        clock.skip(2.0)
        assert (await post(client))[0] == 503
        status, body, _ = await post(client, params={"companyHandle": "c|1002"})
        assert status == 200
        assert jobs_of(body)
        clock.skip(5.0)
        assert (await post(client))[0] == 200


def test_clock_note_only_when_the_simulator_is_not_on_wall_time() -> None:
    """The demo says nothing about the clock at speedup 1, and names the drift otherwise."""
    assert clock_note(1.0) is None
    note = clock_note(5.0)
    assert note is not None
    assert "5x" in note
    assert "4 s per second" in note
