"""[filter] and [privacy] in the company loop, in-process on fakes: what each cycle commits."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from streamer.encode import Record
from streamer.filters import JobFilter
from streamer.model import TrackedJob
from streamer.poller import PollSettings
from streamer.privacy import EmailPolicy
from streamer.redacting_source import RedactingSource
from tests.shell_fakes import TOPICS, Rig, ScriptedIps, rig
from tests.test_diff import T0, job, snap
from tests.test_reconcile_shell import POLICY, ips, joblog

EMAIL = "ops@example.com"  # what tests.test_diff.job() submits with
NO_HEARTBEAT = PollSettings(interval_s=5.0, heartbeat=False)


def records(r: Rig) -> list[Record]:
    """Every committed record, in commit order."""
    return [rec for batch in r.sink.batches for rec in batch]


def of_type(r: Rig, suffix: str) -> list[dict[str, Any]]:
    """Committed job event values whose type ends with ``suffix``."""
    values = r.sink.values(TOPICS.state) + r.sink.values(TOPICS.progress)
    return [v for v in values if v["type"].endswith(suffix)]


def tracked(*jobs: Any) -> dict[str, TrackedJob]:
    """State as a restart would restore it: each job tracked at sequence 1."""
    return {j.job_handle: TrackedJob(j, 1, T0, j.status, T0, T0) for j in jobs}


async def test_a_type_filtered_since_the_last_run_is_forgotten_with_tombstones() -> None:
    """Restored jobs of a type now filtered out: no event, no completion, tombstoned records
    on the latest and the checkpoint topic; the others go on."""
    video = replace(job("j|v"), type="VideoPublish")
    fake = ScriptedIps(snap(job("j|u"), video))
    flt = JobFilter(exclude_job_types=frozenset({"VideoPublish"}))
    r = rig(fake, state=tracked(job("j|u"), video), job_filter=flt, poll=NO_HEARTBEAT)
    await r.poller.cycle()
    assert set(r.poller.state) == {"j|u"}
    assert fake.log_lookups == []
    mentions = [rec for rec in records(r) if rec.key == b"j|v"]
    assert [(rec.topic, rec.value) for rec in mentions] == [
        (TOPICS.latest, None),
        (TOPICS.checkpoint, None),
    ]
    await r.poller.cycle()
    assert not [rec for rec in records(r)[len(mentions) :] if rec.key == b"j|v"]


async def test_a_filtered_type_never_reaches_any_topic() -> None:
    """A job of a filtered type is never tracked: no record names it, heartbeats do not count
    it, and it vanishing is no completion."""
    video = replace(job("j|v"), type="VideoPublish")
    fake = ScriptedIps(snap(job("j|u"), video), snap(job("j|u"), video), snap(job("j|u")))
    flt = JobFilter(job_types=frozenset({"UrlUpload"}))
    r = rig(fake, job_filter=flt)
    for _ in range(3):
        await r.poller.cycle()
    assert not any(b"j|v" in (rec.key or b"") + (rec.value or b"") for rec in records(r))
    assert {v["activeJobs"] for v in r.sink.values(TOPICS.heartbeat)} == {1}
    assert r.status.active_jobs == 1
    assert fake.log_lookups == []


async def test_states_and_progress_filters_keep_sequences_gap_free() -> None:
    """states=[Done], progress off: only ->Done and the completion, numbered 1 and 2."""
    fake = ScriptedIps(
        snap(job(state="New")),
        snap(job(state="Running", progress=50)),
        snap(job(state="Done", progress=100)),
        snap(),
    )
    fake.logs["j|1"] = joblog("j|1", 10)
    flt = JobFilter(states=frozenset({"Done"}), progress=False)
    r = rig(fake, job_filter=flt)
    for _ in range(4):
        r.clock.advance(5)
        await r.poller.cycle()
    values = r.sink.values(TOPICS.state) + r.sink.values(TOPICS.progress)
    assert [(v["type"].rsplit(".", 1)[-1], v["sequence"]) for v in values] == [
        ("state_changed", 1),
        ("completed", 2),
    ]
    assert r.poller.state == {}


async def test_reconciliation_skips_logs_a_filtered_type_may_have_written() -> None:
    """A log kind shared with a filtered type (Upload) and an unknown kind are not reconciled;
    a publish job's log is."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    flt = JobFilter(exclude_job_types=frozenset({"UrlUpload"}))
    r = rig(fake, reconcile=POLICY, job_filter=flt)
    await r.poller.cycle()
    fake.job_logs = [
        joblog("j|upload", 150),
        replace(joblog("j|publish", 160), log_type="EndImageServingPublish"),
        replace(joblog("j|odd", 170), log_type="EndReprocess"),
    ]
    fake.server_time = ips(200)
    r.clock.advance(61)
    await r.poller.cycle()
    assert [v["jobHandle"] for v in of_type(r, "job.completed")] == ["j|publish"]


async def test_restored_addresses_are_rewritten_under_the_new_policy() -> None:
    """Switching keep -> drop: the first cycle rewrites every tracked job's checkpoint records
    without the address, although no job changed; events never carry it."""
    fake = ScriptedIps(snap(job("j|1"), job("j|2"), job("j|3", state="New")))
    r = rig(
        RedactingSource(fake, EmailPolicy("drop")),  # type: ignore[arg-type]
        state=tracked(job("j|1"), job("j|2")),
        privacy=EmailPolicy("drop"),
    )
    await r.poller.cycle()
    latest = {rec.key: rec.value for rec in records(r) if rec.topic == TOPICS.latest}
    assert set(latest) == {b"j|1", b"j|2", b"j|3"}
    assert all(v is not None and EMAIL.encode() not in v for v in latest.values())
    assert all(json.loads(v)["snapshot"]["submitUserEmail"] == "" for v in latest.values() if v)
    assert not any(EMAIL.encode() in (rec.value or b"") for rec in records(r))
    assert {t.snapshot.submit_user_email for t in r.poller.state.values()} == {""}
    await r.poller.cycle()  # rewritten once: the next cycle writes nothing for unchanged jobs
    assert [rec for rec in r.sink.batches[-1] if rec.topic == TOPICS.latest] == []
