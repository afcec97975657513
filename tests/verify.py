"""Compare what the streamer delivered to Kafka with the simulator's ground truth.

Used by the end-to-end tests and by the chaos command. Two checks:

**Transitions.** Expected, per job, is the list of distinct states that successful polls showed,
in order, followed by ``gone`` once a successful poll of its company no longer listed it.
Delivered, per job, is the list of states its events carry, ordered by ``ce_sequence``:
``job.observed`` gives the first state, ``job.state_changed`` the next ones, ``job.completed``
gives ``gone`` (a *reconciled* completion, found in the job log listing, is not a transition any
poll showed: it belongs to the second check only).

* missing: an expected state that was not delivered, unless the next delivered event says it may
  have skipped states (a poll whose cycle was never committed, e.g. the streamer was killed, can
  show a state no later poll shows; the streamer cannot know it, and says so);
* duplicated: an event id delivered more than once;
* extra: a delivered state the job never had in the ground truth, or an event for an unknown job;
* wrong outcome: a completion whose outcome differs from the job log the simulator wrote.

**Completions**, over every job of the ground truth, whether a poll saw it or not:

* completion duplicated: a job with more than one ``job.completed`` (distinct event ids);
* completion extra: a ``job.completed`` for a job that never finished, or flagged ``observed:
  false`` although its ``job.observed`` was delivered;
* completion missing (only with ``every_job``, once the workload is over and the streamer had
  the time to reconcile): a finished job without ``job.completed``.

With the streamer's heartbeats given, a poll counts only if the streamer committed its cycle (a
heartbeat with ``ok`` and ``polledAt`` between that poll and the company's next one: heartbeats
commit in the same transaction as the cycle's events). A state that only uncommitted polls showed
(the streamer was killed, or Kafka was down, before the commit) cannot be recovered by any
restart: it is reported as ``uncommitted``, not as missing.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamer.encode import short_type

GONE = "gone"


@dataclass(frozen=True, slots=True)
class Delivered:
    """One job event read back from Kafka."""

    topic: str
    key: str
    headers: Mapping[str, str]
    value: Mapping[str, Any]

    @property
    def type(self) -> str:
        """The short event type (``job.completed``) of its ``ce_type``."""
        return short_type(self.headers.get("ce_type", ""))

    @property
    def event_id(self) -> str:
        """The CloudEvents id."""
        return self.headers.get("ce_id", "")


@dataclass
class Report:
    """Outcome of a comparison; ``ok`` when nothing is missing, duplicated, extra or wrong."""

    expected: int = 0
    delivered: int = 0
    missing: list[str] = field(default_factory=list)
    skipped_flagged: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    wrong_outcome: list[str] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)
    bad_key: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    #: Jobs of the ground truth that finished, and how many of them no committed poll saw.
    jobs: int = 0
    unseen_jobs: int = 0
    #: Distinct job.completed delivered, and how many of them were found by reconciliation.
    completions: int = 0
    reconciled: int = 0
    completion_missing: list[str] = field(default_factory=list)
    completion_duplicated: list[str] = field(default_factory=list)
    completion_extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the delivery matches the ground truth."""
        return not (
            self.missing
            or self.duplicated
            or self.extra
            or self.wrong_outcome
            or self.bad_key
            or self.out_of_order
            or self.completion_missing
            or self.completion_duplicated
            or self.completion_extra
        )

    def summary(self) -> str:
        """One line of counts."""
        return (
            f"ground-truth transitions: {self.expected}, delivered: {self.delivered}, "
            f"missing: {len(self.missing)}, duplicated: {len(self.duplicated)}, "
            f"extra: {len(self.extra)}, wrong outcome: {len(self.wrong_outcome)}, "
            f"flagged skips: {len(self.skipped_flagged)}, "
            f"seen only by uncommitted polls: {len(self.uncommitted)}; "
            f"ground-truth jobs finished: {self.jobs} ({self.unseen_jobs} no committed poll "
            f"saw), completions: {self.completions} ({self.reconciled} reconciled), "
            f"missing: {len(self.completion_missing)}, "
            f"duplicated: {len(self.completion_duplicated)}, "
            f"extra: {len(self.completion_extra)}"
        )


def from_kafka_record(
    topic: str, key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> Delivered | None:
    """A job event from a raw Kafka record, or None for anything else (tombstones, heartbeats)."""
    if value is None or key is None:
        return None
    hdrs = {k: v.decode() for k, v in headers}
    if not short_type(hdrs.get("ce_type", "")).startswith("job."):
        return None
    return Delivered(topic, key.decode(), hdrs, json.loads(value))


def committed_polls(
    ground_truth: Iterable[Mapping[str, Any]], heartbeats: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The successful polls whose cycle the streamer committed (see the module docstring)."""
    beats: dict[str, list[str]] = defaultdict(list)
    for hb in heartbeats:
        if hb.get("ok"):
            beats[hb["companyHandle"]].append(_utc(hb["polledAt"]))
    for times in beats.values():
        times.sort()
    polls = [r for r in ground_truth if r.get("kind") == "poll"]
    out: list[Mapping[str, Any]] = []
    for i, rec in enumerate(polls):
        if not rec.get("ok") or rec.get("filtered"):
            continue
        company = rec["company"]
        start = _utc(rec["wall"])
        end = next(
            (_utc(r["wall"]) for r in polls[i + 1 :] if r["company"] == company),
            "9999",
        )
        times = beats.get(company, [])
        k = bisect.bisect_left(times, start)
        if k < len(times) and times[k] < end:
            out.append(rec)
    return out


def _utc(iso: str) -> str:
    """ISO time as a sortable UTC string with microseconds."""
    t = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def expected_states(ground_truth: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Per job: the distinct states successful polls showed, then ``gone``."""
    states: dict[str, list[str]] = defaultdict(list)
    present: dict[str, set[str]] = defaultdict(set)
    for rec in ground_truth:
        if rec.get("kind") != "poll" or not rec.get("ok") or rec.get("filtered"):
            continue
        company = rec["company"]
        listed = {handle: state for handle, state in rec["jobs"]}
        for handle, state in listed.items():
            seq = states[handle]
            if not seq or seq[-1] != state:
                seq.append(state)
        for handle in present[company] - listed.keys():
            if states[handle][-1] != GONE:
                states[handle].append(GONE)
        present[company] = set(listed)
    return dict(states)


def _truth(
    ground_truth: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per job: every state it had, and the job log outcome when the log came with the job's end.

    A job whose log was delayed (or never written) maps to ``"unknown"`` as well as its outcome:
    the streamer gives up after bounded lookups, and ``unknown`` is then the honest answer.
    """
    had: dict[str, set[str]] = defaultdict(set)
    gone_at: dict[str, str] = {}
    outcomes: dict[str, set[str]] = defaultdict(set)
    for rec in ground_truth:
        if rec.get("kind") == "transition":
            had[rec["jobHandle"]].add(rec["to"])
            if rec["to"] == GONE:
                gone_at[rec["jobHandle"]] = rec["t"]
                outcomes[rec["jobHandle"]].add("unknown")
        elif rec.get("kind") == "joblog":
            handle = rec["jobHandle"]
            if gone_at.get(handle) == rec["t"]:
                outcomes[handle] = {rec["outcome"]}
            else:
                outcomes[handle].add(rec["outcome"])
    return had, outcomes


def _state_of(ev: Delivered) -> str | None:
    if ev.type == "job.observed":
        return str(ev.value["snapshot"]["status"]["state"])
    if ev.type == "job.state_changed":
        return str(ev.value["to"])
    if ev.type == "job.completed":
        return GONE
    return None


def _reconciled(ev: Delivered) -> bool:
    return ev.type == "job.completed" and ev.value.get("reconciled") is True


def compare(
    ground_truth: Sequence[Mapping[str, Any]],
    delivered: Iterable[Delivered],
    heartbeats: Iterable[Mapping[str, Any]] | None = None,
    *,
    every_job: bool = False,
) -> Report:
    """Check delivered job events against the ground truth (see the module docstring).

    ``every_job``: the workload is over and the streamer had the time to reconcile: every job
    that finished must have its ``job.completed``.
    """
    report = Report()
    expected = expected_states(ground_truth)
    if heartbeats is not None:
        seen_all = expected
        expected = expected_states(committed_polls(ground_truth, heartbeats))
        for handle, seen in seen_all.items():
            kept = expected.get(handle, [])
            report.uncommitted.extend(f"{handle}: {s}" for s in seen if s not in kept)
    had, outcomes = _truth(ground_truth)
    seen_ids: set[str] = set()
    by_job: dict[str, list[Delivered]] = defaultdict(list)
    for ev in delivered:
        if ev.event_id in seen_ids:
            report.duplicated.append(ev.event_id)
            continue
        seen_ids.add(ev.event_id)
        if ev.key != ev.value.get("jobHandle") or ev.key != ev.headers.get("ce_subject"):
            report.bad_key.append(ev.event_id)
        by_job[ev.key].append(ev)
    report.expected = sum(len(s) for s in expected.values())
    for handle, events in by_job.items():
        events.sort(key=lambda e: int(e.headers.get("ce_sequence", "0")))
        seqs = [int(e.headers.get("ce_sequence", "0")) for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            report.out_of_order.append(f"{handle}: sequences {seqs}")
        if handle not in had:
            report.extra.extend(e.event_id for e in events)
            continue
        states: list[tuple[str, bool]] = []
        for ev in events:
            state = _state_of(ev)
            if ev.type == "job.completed" and ev.value.get("outcome") not in outcomes[handle]:
                report.wrong_outcome.append(
                    f"{handle}: delivered {ev.value.get('outcome')}, "
                    f"job log says {outcomes.get(handle)}"
                )
            if state is None or _reconciled(ev):
                continue
            if state != GONE and state not in had[handle]:
                report.extra.append(f"{ev.event_id}: state {state} never happened")
            states.append((state, bool(ev.value.get("mayHaveSkipped"))))
        report.delivered += len(states)
        _match(handle, expected.get(handle, []), states, report)
    for handle, exp in expected.items():
        if handle not in by_job:
            report.missing.extend(f"{handle}: {s}" for s in exp)
    _completions(report, had, expected, by_job, every_job=every_job)
    return report


def _completions(
    report: Report,
    had: Mapping[str, set[str]],
    expected: Mapping[str, list[str]],
    by_job: Mapping[str, list[Delivered]],
    *,
    every_job: bool,
) -> None:
    """The completions check (see the module docstring)."""
    finished = {h for h, states in had.items() if GONE in states}
    report.jobs = len(finished)
    report.unseen_jobs = len(finished - expected.keys())
    for handle, events in by_job.items():
        done = [e for e in events if e.type == "job.completed"]
        report.completions += len(done)
        report.reconciled += sum(_reconciled(e) for e in done)
        if len(done) > 1:
            report.completion_duplicated.append(
                f"{handle}: {[e.event_id for e in done]} "
                f"(reconciled: {[_reconciled(e) for e in done]})"
            )
        for e in done:
            if handle not in finished:
                report.completion_extra.append(f"{e.event_id}: the job never finished")
            observed = any(x.type == "job.observed" for x in events)
            if e.value.get("observed") is False and observed:
                report.completion_extra.append(f"{e.event_id}: observed false, but it was")
    if every_job:
        report.completion_missing.extend(
            sorted(
                h for h in finished if not any(e.type == "job.completed" for e in by_job.get(h, ()))
            )
        )


def _match(
    handle: str, expected: list[str], delivered: list[tuple[str, bool]], report: Report
) -> None:
    """Walk both state lists; an expected state may be absent only before a flagged event."""
    i = 0
    for state, flagged in delivered:
        gap: list[str] = []
        while i < len(expected) and expected[i] != state:
            gap.append(expected[i])
            i += 1
        if i == len(expected):
            # Delivered a state that no poll showed at this point: only possible if it was
            # seen by a poll the ground truth counted differently; report it.
            report.extra.append(f"{handle}: delivered {state} not in polled order {expected}")
            return
        for g in gap:
            (report.skipped_flagged if flagged else report.missing).append(f"{handle}: {g}")
        i += 1
    report.missing.extend(f"{handle}: {s}" for s in expected[i:])
