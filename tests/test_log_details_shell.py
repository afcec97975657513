"""Completions and their job log messages in the company loop, on fakes: what is read, what a
failing, slow or skipped look-up publishes (the completion, always once, with null messages)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from streamer.checkpoint import decode_checkpoint, encode_checkpoint
from streamer.completion_context import DOCUMENTED_ERROR_TYPES, ContextSettings
from streamer.encode import EVENT_TYPE_PREFIX
from streamer.ips import IpsFault, IpsTransportError
from streamer.log_details import LogDetailsPolicy
from streamer.model import JobLog, JobLogDetail, JobLogDetailPage
from streamer.reconcile import start
from streamer.reconciler import ReconcilePolicy
from tests.shell_fakes import TOPICS, Rig, ScriptedIps, rig, sample
from tests.test_diff import COMPANY, T0, job, snap

LOOKUPS = "streamer_log_message_lookups_total"


def failed_log(handle: str, *, warnings: int = 0) -> JobLog:
    """A finished job log of ``handle``: fatal, 85 s long, optionally with file warnings."""
    return JobLog(
        COMPANY, handle, f"{handle}_n", handle, "EndUpload", T0, T0 + timedelta(seconds=85),
        1, 0, warnings, 0, 0, 1, 1, 0, 0, True,
    )  # fmt: skip


def errors(n: int) -> list[JobLogDetail]:
    """n UploadError rows, one per asset, a second apart, and a success row between."""
    rows = [JobLogDetail("UploadSuccess", "ok", T0, "ok.jpg", "Image")]
    rows += [
        JobLogDetail(
            "UploadError", f"asset_{i}.jpg: corrupt", T0 + timedelta(seconds=i), f"asset_{i}.jpg"
        )
        for i in range(n)
    ]
    return rows


def completions(r: Rig) -> list[dict[str, Any]]:
    """The committed job.completed values."""
    return [
        v for v in r.sink.values(TOPICS.state) if v["type"] == EVENT_TYPE_PREFIX + "job.completed"
    ]


async def vanish(r: Rig) -> None:
    """Poll the jobs once, then poll them gone: their look-ups run in the second cycle."""
    await r.poller.cycle()
    r.clock.advance(5)
    await r.poller.cycle()


async def test_failed_job_completes_with_its_first_errors_and_identity() -> None:
    """A failed job's job.completed names the job and carries its first errors, from one
    getJobLogDetails page of error types (no warning page: its log shows none)."""
    ips = ScriptedIps(snap(job("j|1")), snap())
    ips.logs["j|1"] = failed_log("j|1")
    ips.details["j|1"] = errors(8)
    r = rig(ips, log_details=LogDetailsPolicy(ContextSettings(max_messages=3)))
    await vanish(r)
    (done,) = completions(r)
    assert done["outcome"] == "failed"
    assert (done["jobName"], done["originalName"], done["jobType"]) == (
        job("j|1").name,
        "j|1",
        "UrlUpload",
    )
    assert done["submitUserEmail"] == "ops@example.com"
    assert done["durationS"] == 85.0
    messages = done["logMessages"]
    assert [m["message"] for m in messages["errors"]] == [
        f"asset_{i}.jpg: corrupt" for i in range(3)
    ]
    assert messages["errors"][0]["assetName"] == "asset_0.jpg"
    assert (messages["errorTotal"], messages["warnings"], messages["warningTotal"]) == (8, [], 0)
    ((handle, types, rows),) = ips.detail_lookups
    assert (handle, rows) == ("j|1", 3)
    assert set(types) == set(DOCUMENTED_ERROR_TYPES)
    assert sample(r.metrics, LOOKUPS, result="ok") == 1


async def test_succeeded_job_reads_no_details() -> None:
    """A successful job costs no message look-up and carries logMessages null."""
    ips = ScriptedIps(snap(job("j|1")), snap())
    ips.logs["j|1"] = JobLog(
        COMPANY, "j|1", "n", "j|1", "EndUpload", T0, T0, 1, 0, 0, 0, 0, 1, 1, 0, 0, False
    )
    r = rig(ips)
    await vanish(r)
    (done,) = completions(r)
    assert (done["outcome"], done["logMessages"], done["durationS"]) == ("succeeded", None, 0.0)
    assert ips.detail_lookups == []


async def test_a_failing_look_up_still_publishes_exactly_one_completion() -> None:
    """Transport errors and faults: the completion is committed once, logMessages null,
    counted and never retried; the job leaves state."""
    for failure, result in (
        (IpsTransportError("timed out", kind="timeout"), "error"),
        (IpsFault(30000, "Internal server exception"), "fault"),
        (None, "absent"),
    ):
        ips = ScriptedIps(snap(job("j|1")), snap())
        ips.logs["j|1"] = failed_log("j|1")
        if failure is not None:
            ips.details["j|1"] = failure
        r = rig(ips)
        await vanish(r)
        r.clock.advance(5)
        await r.poller.cycle()  # nothing more to say about j|1
        (done,) = completions(r)
        assert done["logMessages"] is None
        assert done["jobName"] == job("j|1").name
        assert "j|1" not in r.poller.state
        assert sample(r.metrics, LOOKUPS, result=result) == 1
        assert len(ips.detail_lookups) == 1


async def test_a_slow_look_up_gives_up_at_the_cycle_budget() -> None:
    """A look-up still unanswered after timeout_s: the completion goes out with null messages."""

    class Hanging(ScriptedIps):
        async def get_job_log_details(self, *args: object, **kwargs: object) -> JobLogDetailPage:
            await asyncio.Event().wait()
            raise AssertionError("never answered")

    ips = Hanging(snap(job("j|1")), snap())
    ips.logs["j|1"] = failed_log("j|1")
    r = rig(ips, log_details=LogDetailsPolicy(timeout_s=0.2))
    await asyncio.wait_for(vanish(r), timeout=30)
    (done,) = completions(r)
    assert done["logMessages"] is None
    assert sample(r.metrics, LOOKUPS, result="timeout") == 1


async def test_look_ups_per_cycle_are_bounded_in_event_order() -> None:
    """Above max_lookups completions per cycle, the later ones publish null, counted skipped;
    with 0 nothing is read at all."""
    ips = ScriptedIps(snap(job("j|1"), job("j|2"), job("j|3")), snap())
    for h in ("j|1", "j|2", "j|3"):
        ips.logs[h] = failed_log(h)
        ips.details[h] = errors(1)
    r = rig(ips, log_details=LogDetailsPolicy(max_lookups=2))
    await vanish(r)
    got = {v["jobHandle"]: v["logMessages"] for v in completions(r)}
    assert None not in (got["j|1"], got["j|2"])
    assert got["j|3"] is None
    assert sample(r.metrics, LOOKUPS, result="skipped") == 1

    ips = ScriptedIps(snap(job("j|1")), snap())
    ips.logs["j|1"] = failed_log("j|1")
    r = rig(ips, log_details=LogDetailsPolicy(max_lookups=0))
    await vanish(r)
    assert completions(r)[0]["logMessages"] is None
    assert ips.detail_lookups == []


async def test_errors_and_warnings_read_one_page_each() -> None:
    """A log with file warnings too: an error page and a warning page, both carried."""
    ips = ScriptedIps(snap(job("j|1")), snap())
    ips.logs["j|1"] = failed_log("j|1", warnings=2)
    ips.details["j|1"] = [
        *errors(1),
        JobLogDetail("UploadWarning", "w.jpg: no profile", T0, "w.jpg"),
    ]
    r = rig(ips)
    await vanish(r)
    (done,) = completions(r)
    assert [m["logType"] for m in done["logMessages"]["warnings"]] == ["UploadWarning"]
    assert done["logMessages"]["errorTotal"] == 1
    assert len(ips.detail_lookups) == 2


async def test_identity_survives_a_restart_through_the_checkpoint() -> None:
    """A job tracked before a restart completes after it with its name, type and submitter."""
    ips = ScriptedIps(snap(job("j|1")))
    first = rig(ips)
    await first.poller.cycle()
    restored = {
        h: decode_checkpoint(encode_checkpoint(t, topics=TOPICS).value or b"")
        for h, t in first.poller.state.items()
    }
    ips = ScriptedIps(snap())
    ips.logs["j|1"] = failed_log("j|1")
    ips.details["j|1"] = errors(2)
    r = rig(ips, state=restored)
    await r.poller.cycle()
    (done,) = completions(r)
    assert (done["jobName"], done["jobType"], done["submitUserEmail"]) == (
        job("j|1").name,
        "UrlUpload",
        "ops@example.com",
    )
    assert done["logMessages"]["errorTotal"] == 2


async def test_reconciled_failed_job_is_named_from_its_log_and_gets_messages() -> None:
    """A failed job no poll saw: name and submitter from the JobLog, no type, its errors."""
    ips = ScriptedIps(snap())
    ips.job_logs = [
        JobLog(
            COMPANY, "j|9", "nightly_1", "nightly", "EndUpload", T0 - timedelta(seconds=100),
            T0 - timedelta(seconds=60), 1, 0, 0, 0, 0, 1, 1, 0, 0, True,
            submit_user_email="ops@example.com",
        )
    ]  # fmt: skip
    ips.details["j|9"] = errors(1)
    ips.server_time = T0
    r = rig(
        ips,
        reconcile=ReconcilePolicy(),
        ledger=start(T0 - timedelta(seconds=600), ReconcilePolicy().rules),
    )
    await r.poller.cycle()
    (done,) = completions(r)
    assert done["reconciled"] is True
    assert (done["jobName"], done["originalName"], done["jobType"]) == (
        "nightly_1",
        "nightly",
        None,
    )
    assert done["submitUserEmail"] == "ops@example.com"
    assert done["durationS"] == 40.0
    assert done["logMessages"]["errors"][0]["message"] == "asset_0.jpg: corrupt"


async def test_no_messages_are_read_once_shutdown_began() -> None:
    """A cycle finishing during shutdown commits its completions at once, messages null: the
    drain must fit the shard hand-over bound; a look-up under way when it begins is dropped."""
    ips = ScriptedIps(snap(job("j|1")), snap())
    ips.logs["j|1"] = failed_log("j|1")
    ips.details["j|1"] = errors(2)
    r = rig(ips)
    await r.poller.cycle()
    r.clock.advance(5)
    r.stop.set()
    await r.poller.cycle()
    (done,) = completions(r)
    assert (done["outcome"], done["logMessages"]) == ("failed", None)
    assert ips.detail_lookups == []
    assert sample(r.metrics, LOOKUPS, result="skipped") == 1

    class Hanging(ScriptedIps):
        async def get_job_log_details(self, *args: object, **kwargs: object) -> JobLogDetailPage:
            r.stop.set()  # shutdown begins while the page is being read
            await asyncio.Event().wait()
            raise AssertionError("never answered")

    ips = Hanging(snap(job("j|1")), snap())
    ips.logs["j|1"] = failed_log("j|1")
    r = rig(ips)
    await asyncio.wait_for(vanish(r), timeout=30)  # not the 10 s budget: shutdown ends it
    (done,) = completions(r)
    assert done["logMessages"] is None
    assert sample(r.metrics, LOOKUPS, result="skipped") == 1
