"""The simulator's fault plan: which request fails how, and for how long."""

from __future__ import annotations

import math

import pytest

from streamer.simulator.faults import MODES, FaultPlan, FaultRule


def test_no_rules_no_fault() -> None:
    """An empty plan lets every request through without delay."""
    decision = FaultPlan().decide("c|1", "getActiveJobs")
    assert (decision.latency_s, decision.mode) == (0.0, None)


def test_rule_applies_only_to_its_company_and_operation() -> None:
    """A company/operation-scoped rule leaves other companies and operations alone."""
    plan = FaultPlan([FaultRule(company="c|1", mode="http_500", operation="getActiveJobs")])
    assert plan.decide("c|1", "getActiveJobs").mode == "http_500"
    assert plan.decide("c|2", "getActiveJobs").mode is None
    assert plan.decide("c|1", "getJobLogDetails").mode is None


def test_count_retires_the_rule_after_firing() -> None:
    """A rule with count=N fails exactly the next N matching requests."""
    plan = FaultPlan([FaultRule(mode="http_503", count=2)])
    modes = [plan.decide("c|1", "getActiveJobs").mode for _ in range(4)]
    assert modes == ["http_503", "http_503", None, None]
    assert plan.to_json() == []


def test_latency_adds_up_and_counts_requests() -> None:
    """Latency of all matching rules adds; a latency-only rule with count retires too."""
    plan = FaultPlan([FaultRule(latency_s=0.2, count=1), FaultRule(latency_s=0.3)])
    assert plan.decide("c|1", None).latency_s == pytest.approx(0.5)
    assert plan.decide("c|1", None).latency_s == pytest.approx(0.3)


def test_error_rate_is_a_seeded_probability() -> None:
    """error_rate fires about that often, reproducibly for a seed; 0 never fires."""

    def draws(seed: int) -> list[str | None]:
        plan = FaultPlan([FaultRule(mode="http_500", error_rate=0.3)], seed=seed)
        return [plan.decide("c|1", None).mode for _ in range(400)]

    first = draws(1)
    assert first == draws(1)
    assert 80 < first.count("http_500") < 160
    never = FaultPlan([FaultRule(mode="http_500", error_rate=0.0)])
    assert all(never.decide("c|1", None).mode is None for _ in range(50))


def test_first_firing_rule_wins() -> None:
    """With several matching rules, the first one that fires picks the mode."""
    plan = FaultPlan([FaultRule(mode="timeout"), FaultRule(mode="http_500")])
    assert plan.decide("c|1", None).mode == "timeout"


def test_vanish_before_log_is_a_lifecycle_mode() -> None:
    """vanish_before_log never fails a request; it turns into log delays (None = never)."""
    plan = FaultPlan(
        [
            FaultRule(company="c|1", mode="vanish_before_log"),
            FaultRule(mode="vanish_before_log", log_delay_s=30.0),
        ]
    )
    assert plan.decide("c|1", "getJobLogDetails").mode is None
    assert plan.log_delays() == {"c|1": math.inf, None: 30.0}


def test_clear_and_remove() -> None:
    """Rules can be removed by id, by company, or all at once."""
    plan = FaultPlan()
    a = plan.add(FaultRule(company="c|1", mode="http_500"))
    plan.add(FaultRule(company="c|2", mode="http_500"))
    plan.add(FaultRule(company="c|2", mode="http_503"))
    assert plan.remove(a)
    assert not plan.remove(a)
    assert plan.clear("c|2") == 2
    assert plan.to_json() == []


def test_from_json_validates() -> None:
    """The control API's JSON is checked: unknown keys/modes and bad values are refused."""
    rule = FaultRule.from_json({"company": "c|1", "error_rate": 0.3})
    assert rule.mode == "http_500"  # error_rate alone means HTTP 500
    for bad in (
        {"mode": "explode"},
        {"nope": 1},
        {"error_rate": 2},
        {"count": 0},
        {"latency_s": -1},
        {"mode": "http_500", "error_rate": "x"},
    ):
        with pytest.raises(ValueError, match=r"\w"):
            FaultRule.from_json(bad)


def test_every_documented_mode_is_accepted() -> None:
    """All modes the brief names exist."""
    assert {
        "http_500",
        "http_503",
        "timeout",
        "auth_fault",
        "authz_fault",
        "ipsapi_fault",
        "malformed_xml",
        "truncated",
        "wrong_namespace",
        "drop_connection",
        "empty_reply",
        "vanish_before_log",
    } == MODES
