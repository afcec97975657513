"""Reconciliation in the company loop, in-process on fakes: passes, failures, ledger commits."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from streamer.checkpoint import decode_ledger, is_ledger_key
from streamer.encode import Record, short_type
from streamer.ips import IpsTransportError, JobLogListing
from streamer.kafka import CommitUncertain
from streamer.model import JobLog, Snapshot
from streamer.poller import PollSettings
from streamer.reconcile import CompanyLedger, LedgerStep, ReconcileSettings, ledger_step
from streamer.reconciler import ReconcilePolicy
from tests.shell_fakes import TOPICS, Rig, ScriptedIps, rig, sample
from tests.test_diff import COMPANY, T0, job, snap

#: IPS's clock in these tests (the streamer's own clock starts at T0 and never matters here).
IPS0 = T0 + timedelta(days=1)
POLICY = ReconcilePolicy(
    interval_s=60.0, rules=ReconcileSettings(overlap_s=30, delay_s=5, max_rows=3)
)


def ips(seconds: float) -> datetime:
    """IPS time ``seconds`` after IPS0."""
    return IPS0 + timedelta(seconds=seconds)


def joblog(handle: str, ended: float, *, fatal: bool = False) -> JobLog:
    """A finished job log of ``handle`` that ended at IPS second ``ended``."""
    return JobLog(
        COMPANY, handle, handle, handle, "EndUpload", ips(ended - 1), ips(ended),
        2, 0, 0, 0, 0, 2, 0, 0, 0, fatal,
    )  # fmt: skip


def reconciling(ips_fake: ScriptedIps, **kw: object) -> Rig:
    """A rig whose poller reconciles with POLICY (unless another policy is given)."""
    kw.setdefault("reconcile", POLICY)
    return rig(ips_fake, **kw)  # type: ignore[arg-type]


def completed(r: Rig) -> list[dict[str, object]]:
    """The committed job.completed values, in commit order."""
    return [v for v in r.sink.values(TOPICS.state) if short_type(v["type"]) == "job.completed"]


def ledgers(batch: list[Record]) -> list[CompanyLedger]:
    """The ledger records of one committed batch."""
    out = []
    for rec in batch:
        if rec.key is not None and is_ledger_key(rec.key):
            assert rec.topic == TOPICS.checkpoint
            assert rec.value is not None
            company, led = decode_ledger(rec.value)
            assert company == COMPANY
            out.append(led)
    return out


async def test_first_cycle_reads_ips_clock_then_reconciles_from_there() -> None:
    """No ledger yet: a one-row request reads IPS's clock, the ledger starts there, committed."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    fake.job_logs = [joblog("j|old", 50)]  # history before the first start: not replayed
    r = reconciling(fake)
    await r.poller.cycle()
    assert fake.listings == [(None, None, 1)]
    assert ledgers(r.sink.batches[0]) == [CompanyLedger(ips(100), ips(100))]
    assert r.status.reconciled_to == ips(100)
    assert completed(r) == []
    assert sample(r.metrics, "streamer_reconcile_passes_total", result="complete") == 1


async def test_unseen_job_is_completed_once_in_the_cycle_that_finds_it() -> None:
    """A job no poll saw gets one flagged job.completed, committed with the ledger."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    r = reconciling(fake)
    await r.poller.cycle()
    fake.job_logs = [joblog("j|short", 180, fatal=True)]
    fake.server_time = ips(200)
    r.clock.advance(61)
    await r.poller.cycle()  # the pass is due: [100 - 30, 200 - 5] by the last reading (200)
    # The window was computed from the reading known before the pass (100): nothing new, so
    # the pass read the clock first, then listed the window.
    assert fake.listings[1:] == [(ips(100), ips(100), 1), (ips(100), ips(195), 3)]
    (done,) = completed(r)
    assert done["jobHandle"] == "j|short"
    assert (done["reconciled"], done["observed"], done["lastStatus"]) == (True, False, None)
    assert (done["outcome"], done["sequence"], done["mayHaveSkipped"]) == ("failed", 1, True)
    assert done["endedAt"] == "2026-11-29T12:03:00.000000+00:00"
    (led,) = ledgers(r.sink.batches[-1])
    assert led.watermark == ips(195)
    assert led.reported == {"j|short": ips(180)}
    assert sample(r.metrics, "streamer_reconciled_jobs_total") == 1
    # The next pass lists the overlap again: the job is remembered, not reported twice.
    fake.server_time = ips(300)
    r.clock.advance(61)
    await r.poller.cycle()
    await r.poller.cycle()
    assert len(completed(r)) == 1


async def test_tracked_and_just_completed_jobs_are_left_to_the_vanish_path() -> None:
    """A listed log of a tracked job, or of one completed this cycle, gives no second event."""
    fake = ScriptedIps(snap(job("j|1"), job("j|2")), snap(job("j|1")))
    fake.server_time = ips(100)
    fake.logs["j|2"] = joblog("j|2", 180)
    r = reconciling(fake)
    await r.poller.cycle()  # observes both
    fake.server_time = ips(200)
    fake.job_logs = [joblog("j|1", 180), joblog("j|2", 180)]  # j|1 lists although it runs
    r.clock.advance(61)
    await r.poller.cycle()  # j|2 vanished: completed by its log lookup; the pass lists both
    done = completed(r)
    assert [(d["jobHandle"], d["reconciled"]) for d in done] == [("j|2", False)]
    (led,) = ledgers(r.sink.batches[-1])
    assert led.reported == {"j|2": ips(180)}


async def test_full_reply_is_split_until_it_is_not() -> None:
    """A window that comes back with numRows logs is listed again in halves; all are found."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    r = reconciling(fake)
    await r.poller.cycle()
    fake.job_logs = [joblog(f"j|{i}", 110 + 10 * i) for i in range(7)]
    fake.server_time = ips(200)
    r.clock.advance(61)
    await r.poller.cycle()
    assert {d["jobHandle"] for d in completed(r)} == {f"j|{i}" for i in range(7)}
    windows = [(s, e) for s, e, n in fake.listings[2:]]
    assert len(windows) > 3  # split at least twice
    assert all(n == 3 for _, _, n in fake.listings[2:])


async def test_failed_pass_is_reported_retried_later_and_never_blocks_the_cycle() -> None:
    """getJobLogs failing: counted, notified after 3 in a row, retried on backoff; polls go on."""
    fake = ScriptedIps(snap(job("j|1")))
    fake.listing_error = IpsTransportError("timed out", kind="timeout")
    r = reconciling(fake, poll=PollSettings(interval_s=5.0, failures_before_degraded=3))
    await r.poller.cycle()
    assert len(r.sink.batches) == 1  # the cycle committed its events and heartbeat anyway
    assert sample(r.metrics, "streamer_reconcile_failures_total", kind="timeout") == 1
    assert r.status.reconcile_error is not None
    await r.poller.cycle()
    assert len(fake.listings) == 1  # backing off: no pass in the next cycle
    for _ in range(2):
        r.clock.advance(120)
        await r.poller.cycle()
    kinds = [v["kind"] for v in r.sink.values(TOPICS.notifications)]
    assert kinds == ["reconcile_failing"]
    assert len(r.sink.batches) == 4
    fake.listing_error = None
    fake.server_time = ips(100)
    r.clock.advance(120)
    await r.poller.cycle()
    kinds = [v["kind"] for v in r.sink.values(TOPICS.notifications)]
    assert kinds == ["reconcile_failing", "reconcile_recovered"]
    assert r.status.reconcile_error is None


async def test_pass_cut_by_its_request_budget_goes_on_next_cycle() -> None:
    """A pass stops at max_requests with the pages it has; the next cycle continues it."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    r = reconciling(
        fake, reconcile=ReconcilePolicy(interval_s=60.0, rules=POLICY.rules, max_requests=2)
    )
    await r.poller.cycle()
    fake.job_logs = [joblog(f"j|{i}", 110 + 10 * i) for i in range(7)]
    fake.server_time = ips(200)
    r.clock.advance(61)
    await r.poller.cycle()
    assert sample(r.metrics, "streamer_reconcile_passes_total", result="partial") == 1
    for _ in range(6):
        await r.poller.cycle()  # due at once after a partial pass
    assert sorted(str(d["jobHandle"]) for d in completed(r)) == [f"j|{i}" for i in range(7)]


async def test_uncertain_commit_rereads_the_ledger_with_the_state() -> None:
    """After an uncertain commit the poller continues from the ledger Kafka really holds."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    r = reconciling(fake)
    await r.poller.cycle()
    fake.job_logs = [joblog("j|short", 180)]
    fake.server_time = ips(200)
    r.clock.advance(61)
    r.sink.fail = CommitUncertain("lost answer", epoch=1)
    await r.poller.cycle()
    # It did commit after all: Kafka holds the completion and its ledger.
    committed = CompanyLedger(ips(195), ips(100), {"j|short": ips(180)})
    r.sink.fail = None
    r.sink.reread = {}
    r.sink.reread_ledger = committed
    await r.poller.cycle()
    assert r.poller.ledger is not None
    assert r.poller.ledger.reported.keys() == {"j|short"}
    assert completed(r) == []  # nothing reported twice


async def test_job_listed_after_it_was_reported_is_not_observed_again() -> None:
    """getActiveJobs listing a job the ledger reported completed gives no job.observed."""
    fake = ScriptedIps(snap(job("j|late")))
    fake.server_time = ips(300)
    led = CompanyLedger(ips(195), ips(100), {"j|late": ips(120)})
    r = reconciling(fake, ledger=led)
    await r.poller.cycle()
    types = [short_type(v["type"]) for v in r.sink.values(TOPICS.state)]
    assert "job.observed" not in types
    assert r.poller.state == {}


async def test_restart_from_the_committed_ledger_reports_nothing_twice() -> None:
    """A new poller from the committed ledger finds the remembered jobs and skips them."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    r = reconciling(fake)
    await r.poller.cycle()
    fake.job_logs = [joblog("j|a", 180), joblog("j|b", 190)]
    fake.server_time = ips(200)
    r.clock.advance(61)
    await r.poller.cycle()
    (led,) = ledgers(r.sink.batches[-1])
    fake.job_logs.append(joblog("j|c", 210))
    fake.server_time = ips(400)
    again = reconciling(fake, ledger=led)
    await again.poller.cycle()
    await again.poller.cycle()
    assert [d["jobHandle"] for d in completed(again)] == ["j|c"]


async def test_reconciliation_off_writes_no_ledger() -> None:
    """Without a policy the poller never lists job logs and never writes a ledger record."""
    fake = ScriptedIps(snap(job("j|1")), snap())
    fake.logs["j|1"] = joblog("j|1", 100)
    r = rig(fake)
    await r.poller.cycle()
    await r.poller.cycle()
    assert fake.listings == []
    assert not any(ledgers(b) for b in r.sink.batches)
    assert [json.loads(json.dumps(d))["reconciled"] for d in completed(r)] == [False]


class SlowListing(ScriptedIps):
    """getJobLogs that hangs on its ``hang_at``-th request (then answers normally)."""

    def __init__(self, *replies: Snapshot, hang_at: int) -> None:
        super().__init__(*replies)
        self.hang_at = hang_at

    async def list_job_logs(
        self,
        company_handle: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        num_rows: int | None = None,
    ) -> JobLogListing:
        """Hang once, at request number ``hang_at``."""
        if len(self.listings) + 1 == self.hang_at:
            self.listings.append((start, end, num_rows))
            await asyncio.sleep(30)
        return await super().list_job_logs(company_handle, start=start, end=end, num_rows=num_rows)


async def test_pass_cut_by_its_time_budget_keeps_the_window_it_was_listing() -> None:
    """A request the time budget cuts off is listed again next cycle: nothing skipped."""
    fake = SlowListing(snap(), hang_at=6)
    fake.server_time = ips(100)
    policy = ReconcilePolicy(interval_s=60.0, rules=POLICY.rules, max_pass_s=0.2)
    r = reconciling(fake, reconcile=policy)
    await r.poller.cycle()
    fake.job_logs = [joblog(f"j|{i}", 110 + 10 * i) for i in range(7)]
    fake.server_time = ips(200)
    r.clock.advance(61)
    # Probe, the full window, its full first half, a page, then request 6 hangs past 0.2 s.
    await r.poller.cycle()
    assert sample(r.metrics, "streamer_reconcile_passes_total", result="partial") == 1
    for _ in range(5):
        await r.poller.cycle()
    assert sorted(str(d["jobHandle"]) for d in completed(r)) == [f"j|{i}" for i in range(7)]
    assert sample(r.metrics, "streamer_reconcile_passes_total", result="failed") == 0


async def test_pages_the_ledger_refuses_fail_the_pass_not_the_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the pure step refuse a pass's pages (a bug), the cycle still commits."""

    def refuse_pages(*args: object, **kw: object) -> LedgerStep:
        if kw.get("pages"):
            raise ValueError("pages leave a hole")
        return ledger_step(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("streamer.reconciler.ledger_step", refuse_pages)
    fake = ScriptedIps(snap(job("j|1")))
    fake.server_time = ips(100)
    fake.job_logs = [joblog("j|x", 50)]
    r = reconciling(fake, ledger=CompanyLedger(ips(0), ips(0)))
    await r.poller.cycle()
    assert len(r.sink.batches) == 1
    assert sample(r.metrics, "streamer_reconcile_failures_total", kind="internal_error") == 1
    assert [short_type(v["type"]) for v in r.sink.values(TOPICS.state)] == ["job.observed"]


async def test_full_passes_are_spread_by_a_quarter_of_the_interval() -> None:
    """The next full pass comes interval_s +/- 25% after one (here the low end, 45 of 60 s), so
    companies started together do not list their job logs in the same seconds forever."""
    fake = ScriptedIps(snap())
    fake.server_time = ips(100)
    r = reconciling(fake)
    reconciler = r.poller._reconciler
    assert reconciler is not None
    reconciler._uniform = lambda a, b: a  # the low end of the spread
    await r.poller.cycle()
    assert len(fake.listings) == 1
    r.clock.advance(44.0)
    await r.poller.cycle()
    assert len(fake.listings) == 1  # not due before 45 s
    r.clock.advance(2.0)
    await r.poller.cycle()
    assert len(fake.listings) == 2
