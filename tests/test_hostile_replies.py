"""Hostile IPS replies against the running daemon (issue 9): no single reply stops the stream.

One streamer polls two companies of one simulator. Each test scripts a hostile reply for company
A through the simulator's ``raw`` / ``drip`` fault modes, waits until the daemon has met it, and
checks per case: the daemon runs on, company B keeps committing, the failure kind is counted in
``/metrics``, logged and in A's committed heartbeats, and no job event came from the bad reply
(events of A committed while it was served are compared with what the contract allows); then
the reply is withdrawn and A recovers. Replies the contract accepts (a slow one, non-finite
progress, a foreign log or company handle, oversized jobs) are checked for what they may publish.

The daemon keeps vanished jobs pending for many lookups (``completion.log_max_attempts``): a
scripted job list hides A's real jobs for a while, and they must come back without a completion.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streamer.ips.decode import decode_active_jobs, decode_job_logs
from streamer.ips.errors import IpsError
from streamer.simulator import render, soap
from tests.harness import (
    Stack,
    parse_log,
    running_stack,
    sim_control,
    wait_until,
)
from tests.verify import Delivered, from_kafka_record

pytestmark = pytest.mark.kafka

A, B = "c|1001", "c|1002"
NS = soap.NS_2014
#: ``ips.timeout_s``: a drip of 2 s stays well inside it, one of 60 s far beyond.
IPS_TIMEOUT_S = 6
#: ``ips.max_reply_bytes``: above the largest reply that must be read whole (the ~10 MB reply
#: of the oversized jobs; a 3 MB fault), below the reply that must not be.
MAX_REPLY_BYTES = 12 * 1024 * 1024
#: Job-log lookups before a vanished job completes as ``unknown``: more than any test lasts.
LOG_MAX_ATTEMPTS = 200
WHEN = "2026-11-29T19:18:19.522Z"
DEADLINE_S = 60


# --------------------------------------------------------------------------------------------
# Hostile reply bodies
# --------------------------------------------------------------------------------------------


def task_xml(progress: str = "0.5", items: str = "", message: str = "Publishing") -> str:
    """One ``taskProgressArray/items`` element."""
    return (
        "<items><taskType>com.scene7.publish.PublishAsyncTaskMonitor</taskType>"
        "<taskState>Processing</taskState><numProcessed>1</numProcessed>"
        "<numProcessing>1</numProcessing><numPending>1</numPending>"
        f"<progress>{progress}</progress><progressMessage>{message}</progressMessage>"
        f"<lastProgressUpdate>{WHEN}</lastProgressUpdate>"
        f"<taskItemProgressArray>{items}</taskItemProgressArray></items>"
    )


def item_xml(n: int, progress: str = "0.5") -> str:
    """One ``taskItemProgressArray/items`` element."""
    return (
        f"<items><itemName>asset_{n:05d}.jpg</itemName><progress>{progress}</progress>"
        f"<progressMessage>Processing</progressMessage>"
        f"<lastProgressUpdate>{WHEN}</lastProgressUpdate></items>"
    )


def job_xml(
    handle: str,
    *,
    company: str = A,
    message: str = "Publishing 1 of 3 files",
    tasks: str | None = None,
    sub_job: str = "<emailSetting>None</emailSetting>",
) -> str:
    """One ``jobArray/items`` element of a running ImageServingPublish job (fixed times)."""
    return (
        f"<items><companyHandle>{company}</companyHandle><jobHandle>{handle}</jobHandle>"
        "<name>hostile</name><originalName>hostile</originalName>"
        "<type>ImageServingPublish</type><state>Running</state>"
        "<submitUserEmail>demo@example.com</submitUserEmail><serverName>sps1-jobs-01</serverName>"
        f"<startDate>{WHEN}</startDate><triggerTime>{WHEN}</triggerTime>"
        f"<totalSize>0</totalSize><progress>33</progress><progressMessage>{message}"
        f"</progressMessage><lastProgressUpdate>{WHEN}</lastProgressUpdate>"
        f"<taskProgressArray>{task_xml() if tasks is None else tasks}</taskProgressArray>"
        f"<imageServingPublishJob>{sub_job}</imageServingPublishJob></items>"
    )


def reply(*jobs: str) -> bytes:
    """A ``getActiveJobs`` reply listing ``jobs``."""
    return render.active_jobs_reply(NS, list(jobs))


def handle(name: str) -> str:
    """A job handle of company A that the simulator never lists."""
    return f"j|1001||hostile-{name}|1"


def nested(depth: int) -> str:
    """A sub-job tree ``depth`` elements deep below the sub-job element."""
    return "<x>" * depth + "deep" + "</x>" * depth


XXE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    + reply(job_xml(handle("xxe"), message="&xxe;")).split(b"?>", 1)[1]
)
#: lol9 expands to 10^9 "lol"s: ten entities, each ten references to the one before.
LAUGHS = '<!ENTITY lol0 "lol">' + "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
)
BILLION_LAUGHS = (
    f'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE soapenv:Envelope [{LAUGHS}]>'.encode()
    + reply(job_xml(handle("laughs"), message="&lol9;")).split(b"?>", 1)[1]
)
GARBAGE = random.Random(9).randbytes(4096)
#: A reply declared UTF-8 with a broken two-byte sequence (0xC3 then "(") in a message.
INVALID_UTF8 = reply(job_xml(handle("utf8"), message="caf@BAD@")).replace(b"@BAD@", b"\xc3(")
NAN_JOB = handle("nan")
NAN_PROGRESS = reply(
    job_xml(NAN_JOB, tasks=task_xml("NaN", item_xml(1, "INF") + item_xml(2, "-INF")))
)
FOREIGN_JOB = handle("foreign")
FOREIGN_COMPANY = reply(job_xml(FOREIGN_JOB, company="c|9999"))
BIG_MESSAGE, BIG_ITEMS, SMALL = handle("message"), handle("items"), handle("small")


def big_jobs() -> bytes:
    """A 2 MB progressMessage job, a 50,000 task items job and a small one (~9 MB)."""
    items = "".join(item_xml(n) for n in range(50_000))
    return reply(
        job_xml(BIG_MESSAGE, message="m" * 2_000_000),
        job_xml(BIG_ITEMS, tasks=task_xml(items=items)),
        job_xml(SMALL),
    )


def too_large() -> bytes:
    """A well-formed reply one MiB longer than ``ips.max_reply_bytes``."""
    padding = "p" * (MAX_REPLY_BYTES + 1024 * 1024)
    return reply(job_xml(handle("large"), message=padding))


def fault_3mb() -> bytes:
    """An ipsApiFault whose reason is 3 MB long."""
    return soap.fault_reply(soap.ipsapi_fault(30000, "reason " + "r" * 3_000_000))


def job_log_reply(job_handle: str) -> bytes:
    """A ``getJobLogDetails`` reply with the failed log of ``job_handle``."""
    counts = "".join(
        f"<{name}>{value}</{name}>"
        for name, value in (
            ("fileSuccessCount", 0),
            ("fileErrorCount", 3),
            ("fileWarningCount", 0),
            ("fileDuplicateCount", 0),
            ("fileUpdateCount", 0),
            ("totalFileCount", 3),
            ("transferSuccessCount", 0),
            ("transferErrorCount", 0),
            ("transferWarningCount", 0),
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{soap.SOAP_ENV}"><soapenv:Body>'
        f'<getJobLogDetailsReturn xmlns="{NS}"><jobLogArray><items>'
        f"<companyHandle>{A}</companyHandle><jobHandle>{job_handle}</jobHandle>"
        "<jobName>other</jobName><originalJobName>other</originalJobName>"
        "<submitUserEmail>demo@example.com</submitUserEmail>"
        "<logType>EndImageServingPublish</logType><jobSubType>full</jobSubType>"
        f"<startDate>{WHEN}</startDate><endDate>{WHEN}</endDate><description>other</description>"
        f"{counts}<fatalError>true</fatalError><detailTotalRows>0</detailTotalRows>"
        "<detailArray></detailArray></items></jobLogArray></getJobLogDetailsReturn>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


# --------------------------------------------------------------------------------------------
# The running daemon
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """The module's simulator and streamer, and where scripted bodies are written."""

    stack: Stack
    files: Path

    @property
    def log(self) -> Path:
        """The streamer's log file."""
        return self.stack.log

    def offset(self) -> int:
        """The log's current length: records after it are newer than this call."""
        return self.log.stat().st_size if self.log.exists() else 0

    def records_since(self, offset: int) -> list[dict[str, Any]]:
        """The JSON log records written after ``offset``."""
        with self.log.open("rb") as fh:
            fh.seek(offset)
            return parse_log(fh.read().decode(errors="replace"))

    def logged(self, offset: int, event: str, **fields: object) -> list[dict[str, Any]]:
        """Records of ``event`` after ``offset`` whose fields have these values."""
        return [
            r
            for r in self.records_since(offset)
            if r.get("event") == event and all(r.get(k) == v for k, v in fields.items())
        ]

    def cycles(self, offset: int, company: str) -> int:
        """Committed cycles of ``company`` after ``offset``."""
        return len(self.logged(offset, "company_cycle", company=company))

    def metric(self, name: str, **labels: str) -> float:
        """One sample of ``/metrics`` (0 when absent)."""
        _, text = self.stack.streamer.get("/metrics")
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        prefix = f"{name}{{{inner}}} " if labels else f"{name} "
        line = next((x for x in text.splitlines() if x.startswith(prefix)), None)
        return 0.0 if line is None else float(line.removeprefix(prefix))

    def failures(self, kind: str) -> float:
        """``streamer_poll_failures_total{kind}``."""
        return self.metric("streamer_poll_failures_total", kind=kind)

    def install(self, rule: Mapping[str, Any], body: bytes | None = None) -> int:
        """Add a fault rule for company A (``body`` goes through a file); returns its id."""
        full = {"company": A, "operation": "getActiveJobs", **rule}
        if body is not None:
            path = self.files / f"body-{time.monotonic_ns()}.bin"
            path.write_bytes(body)
            full["body_file"] = str(path)
        rule_id: int = sim_control(self.stack.sim, "/_sim/faults", full)["id"]
        return rule_id

    def remove(self, rule_id: int) -> None:
        """Remove one rule."""
        sim_control(self.stack.sim, f"/_sim/faults/{rule_id}", method="DELETE")

    def clear_and_recover(self) -> None:
        """Withdraw A's rules and wait until A commits a cycle again."""
        offset = self.offset()
        sim_control(self.stack.sim, "/_sim/faults?company=c%7C1001", method="DELETE")
        wait_until(lambda: self.cycles(offset, A) >= 1, DEADLINE_S, what="company A recovers")
        assert self.stack.streamer.company(A)["state"] == "ok"

    def assert_alive(self) -> None:
        """The daemon process runs and answers /healthz."""
        streamer = self.stack.streamer
        assert streamer.proc.poll() is None, "the daemon exited"
        assert streamer.get("/healthz")[0] == 200

    def committed(self) -> tuple[list[Delivered], list[dict[str, Any]]]:
        """Committed job events and heartbeat values (one read_committed pass)."""
        records = self.stack.records()
        events = [from_kafka_record(*r) for r in records[self.stack.topics.state]]
        events += [from_kafka_record(*r) for r in records[self.stack.topics.progress]]
        beats = [json.loads(r[2]) for r in records[self.stack.topics.heartbeat] if r[2]]
        return [e for e in events if e is not None], beats

    def job_events(self, job_handle: str) -> list[Delivered]:
        """The committed events of one job, in sequence order."""
        events = [e for e in self.committed()[0] if e.key == job_handle]
        return sorted(events, key=lambda e: int(e.value["sequence"]))


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One streamer polling two companies every 0.5 s."""
    tmp = tmp_path_factory.mktemp("hostile")
    with running_stack(
        tmp,
        kafka_bootstrap,
        companies=(A, B),
        sim_args=("--jobs-per-company=2", "--speedup=10", "--seed=5", "--stall-probability=0"),
        interval_s=0.5,
        sections={
            "ips": {"timeout_s": IPS_TIMEOUT_S, "max_reply_bytes": MAX_REPLY_BYTES},
            "completion": {"log_max_attempts": LOG_MAX_ATTEMPTS},
        },
    ) as stack:
        # Both companies committed once: B's cycles are the yardstick of every test.
        offset = 0
        runner = Run(stack, tmp)
        wait_until(lambda: runner.cycles(offset, B) >= 1, DEADLINE_S, what="B's first cycle")
        yield runner


def utc(text: str) -> datetime:
    """An ISO timestamp of an event or heartbeat."""
    return datetime.fromisoformat(text).astimezone(UTC)


def now() -> datetime:
    """The wall clock, as the daemon stamps events."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# Replies that fail the poll
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """A hostile reply that must fail A's poll with ``kind``."""

    rule: Mapping[str, Any]
    kind: str
    body: Callable[[], bytes] | None = None
    #: Failed polls to see before checking (a slow failure is waited for once).
    failures: int = 2
    #: More checks on the log records of the failures and on A's /status entry.
    check: Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], None] | None = None


def _no_file_contents(records: Sequence[Mapping[str, Any]], status: Mapping[str, Any]) -> None:
    # The external entity names /etc/passwd: nothing of it may surface anywhere.
    text = json.dumps([records, status])
    assert "root:" not in text


def _short_fault(records: Sequence[Mapping[str, Any]], status: Mapping[str, Any]) -> None:
    for rec in records:
        assert len(rec["error"]) < 1000, len(rec["error"])
        assert re.search(r"\(3,0\d\d,\d\d\d chars\)", rec["error"])  # named, not shown
    assert len(status["lastError"]) < 1000


REJECTED: dict[str, Rejected] = {
    "xxe": Rejected({"mode": "raw"}, "malformed", lambda: XXE, check=_no_file_contents),
    "billion_laughs": Rejected({"mode": "raw"}, "malformed", lambda: BILLION_LAUGHS),
    "truncated": Rejected({"mode": "truncated"}, "malformed"),
    "garbage": Rejected({"mode": "raw"}, "malformed", lambda: GARBAGE),
    "invalid_utf8": Rejected({"mode": "raw"}, "malformed", lambda: INVALID_UTF8),
    "drip_beyond_timeout": Rejected(
        {"mode": "drip", "drip_s": 60, "chunk_bytes": 64}, "timeout", failures=1
    ),
    "http_401": Rejected(
        {"mode": "raw", "status": 401, "body": "<html>401</html>", "content_type": "text/html"},
        "http_4xx",
    ),
    "sub_job_600_deep": Rejected(
        {"mode": "raw"}, "malformed", lambda: reply(job_xml(handle("d600"), sub_job=nested(600)))
    ),
    "sub_job_2048_deep": Rejected(
        {"mode": "raw"}, "malformed", lambda: reply(job_xml(handle("d2k"), sub_job=nested(2048)))
    ),
    "larger_than_max_reply_bytes": Rejected({"mode": "raw"}, "too_large", too_large),
    "fault_reason_3mb": Rejected(
        {"mode": "raw", "status": 500}, "fault_ipsapi", fault_3mb, check=_short_fault
    ),
}


@pytest.mark.parametrize("name", list(REJECTED))
def test_hostile_reply_fails_only_that_poll(run: Run, name: str) -> None:
    """The reply is A's failed poll of its kind (metric, log, heartbeat), publishes no job
    event, leaves the daemon running and B committing; A recovers once it is gone."""
    case = REJECTED[name]
    before = run.failures(case.kind)
    offset, installed_at = run.offset(), now()
    run.install(case.rule, case.body() if case.body else None)
    wait_until(
        lambda: run.logged(offset, "poll_failed", company=A, kind=case.kind),
        DEADLINE_S,
        what=f"A's poll failing with {case.kind}",
    )
    met_at, met = now(), run.offset()
    wait_until(
        # Three: the first may have polled before the failure was seen.
        lambda: run.failures(case.kind) >= before + case.failures and run.cycles(met, B) >= 3,
        DEADLINE_S,
        what=f"{case.failures} failures of A while B commits three cycles",
    )
    run.assert_alive()
    status = run.stack.streamer.company(A)
    assert (status["state"], status["lastErrorKind"]) == ("failing", case.kind)
    if case.check is not None:
        case.check(run.logged(offset, "poll_failed", company=A), status)
    events, beats = run.committed()
    cleared_at = now()
    # No job event of A observed while the reply was served (B's go on).
    during = [e for e in events if met_at < utc(e.value["observedAt"]) < cleared_at]
    assert {e.value["companyHandle"] for e in during} <= {B}
    # The failure is in A's committed heartbeats; B's heartbeats say ok meanwhile.
    assert any(
        h["companyHandle"] == A
        and not h["ok"]
        and h["error"] == case.kind
        and utc(h["polledAt"]) > installed_at
        for h in beats
    ), "no failed heartbeat of A with the kind"
    assert sum(h["companyHandle"] == B and h["ok"] and utc(h["polledAt"]) > met_at
               for h in beats) >= 2  # fmt: skip
    run.clear_and_recover()


# --------------------------------------------------------------------------------------------
# Replies the contract accepts
# --------------------------------------------------------------------------------------------


def test_drip_within_the_timeout_is_a_good_poll(run: Run) -> None:
    """A reply trickling in over 2 s (timeout 6 s) is a successful poll; nothing fails."""
    offset = run.offset()
    run.install({"mode": "drip", "drip_s": 2.0, "chunk_bytes": 128})
    (slow, *_) = wait_until(
        lambda: [r for r in run.logged(offset, "company_cycle", company=A) if r["poll_ms"] >= 1500],
        DEADLINE_S,
        what="a dripped poll of A committed",
    )
    assert run.logged(offset, "poll_failed", company=A) == []
    # B committed while A's reply trickled in (its cycles are 0.5 s apart, the drip takes 2 s).
    end = utc(slow["timestamp"])
    start = end - timedelta(milliseconds=slow["poll_ms"])
    b_cycles = run.logged(offset, "company_cycle", company=B)
    assert any(start < utc(r["timestamp"]) < end for r in b_cycles)
    run.assert_alive()
    run.clear_and_recover()


def test_non_finite_progress_publishes_the_job_once(run: Run) -> None:
    """NaN / INF task progress reads as 0.0: the job is observed once, no progress event on
    every poll."""
    offset = run.offset()
    run.install({"mode": "raw"}, NAN_PROGRESS)
    wait_until(lambda: run.cycles(offset, A) >= 4, DEADLINE_S, what="A polls the NaN reply")
    events = run.job_events(NAN_JOB)
    assert [e.type for e in events] == ["job.observed"]
    task = events[0].value["snapshot"]["status"]["taskProgress"][0]
    assert task["progress"] == 0.0
    assert [i["progress"] for i in task["items"]] == [0.0, 0.0]
    assert run.logged(offset, "poll_failed", company=A) == []
    run.assert_alive()
    run.clear_and_recover()


def test_job_listed_under_another_company_is_observed_once(run: Run) -> None:
    """A job carrying another companyHandle is filed under A, observed once, and warned about."""
    offset = run.offset()
    run.install({"mode": "raw"}, FOREIGN_COMPANY)
    wait_until(lambda: run.cycles(offset, A) >= 4, DEADLINE_S, what="A polls the foreign job")
    events = run.job_events(FOREIGN_JOB)
    assert [(e.type, e.value["companyHandle"]) for e in events] == [("job.observed", A)]
    assert run.logged(offset, "jobs_of_another_company", company=A, others=["c|9999"])
    run.assert_alive()
    run.clear_and_recover()


def test_oversized_jobs_are_cut_and_published_once(run: Run) -> None:
    """A 2 MB progressMessage and 50,000 task items: each job is published once, cut and flagged
    truncated, within the record limit; the reply's other job is published whole."""
    offset = run.offset()
    before = run.metric("streamer_jobs_truncated_total")
    run.install({"mode": "raw"}, big_jobs())
    wait_until(lambda: run.cycles(offset, A) >= 4, 120, what="A polls the oversized jobs")
    for big in (BIG_MESSAGE, BIG_ITEMS):
        events = run.job_events(big)
        assert [e.type for e in events] == ["job.observed"], big
        snapshot = events[0].value["snapshot"]
        assert snapshot["truncated"] is True
        assert len(json.dumps(events[0].value)) < 1_000_000
        assert run.logged(offset, "job_truncated", company=A, job=big)
    small = run.job_events(SMALL)
    assert [e.type for e in small] == ["job.observed"]
    assert "truncated" not in small[0].value["snapshot"]
    assert run.metric("streamer_jobs_truncated_total") >= before + 2
    assert run.logged(offset, "poll_failed", company=A) == []
    run.assert_alive()
    run.clear_and_recover()


def test_job_log_of_another_job_completes_nothing(run: Run) -> None:
    """A getJobLogDetails answer carrying another jobHandle is 'no log': the vanished job gets
    no completion from it, however often it is looked up."""
    vanishing, other = handle("vanishing"), handle("other-log")
    run.install({"mode": "raw", "operation": "getJobLogDetails"}, job_log_reply(other))
    listing = run.install({"mode": "raw"}, reply(job_xml(vanishing)))
    wait_until(
        lambda: [e.type for e in run.job_events(vanishing)] == ["job.observed"],
        DEADLINE_S,
        interval_s=1.0,
        what="the job observed",
    )
    gone = run.offset()
    vanished_at = now()
    absent = run.metric("streamer_job_log_lookups_total", result="absent")
    run.remove(listing)  # the job leaves the list: every lookup now gets the other job's log
    wait_until(
        lambda: len(run.logged(gone, "job_log_handle_mismatch", job_handle=vanishing)) >= 3,
        DEADLINE_S,
        what="three lookups answered with the other job's log",
    )
    assert run.metric("streamer_job_log_lookups_total", result="absent") >= absent + 3
    events, _ = run.committed()
    completed = [
        e
        for e in events
        if e.type == "job.completed" and e.value["companyHandle"] == A
        and utc(e.value["observedAt"]) > vanished_at
    ]  # fmt: skip
    assert completed == []
    run.assert_alive()
    run.clear_and_recover()


def test_foreign_company_job_is_not_observed_again_after_a_restart(run: Run) -> None:
    """After a restart the checkpoint files the foreign-company job under A: no second
    job.observed."""
    job = handle("foreign-restart")
    run.install({"mode": "raw"}, reply(job_xml(job, company="c|9998")))
    wait_until(
        lambda: [e.type for e in run.job_events(job)] == ["job.observed"],
        DEADLINE_S,
        interval_s=1.0,
        what="the job observed",
    )
    run.stack.stop()
    offset = run.offset()
    run.stack.start()
    wait_until(lambda: run.cycles(offset, A) >= 3, DEADLINE_S, what="A polls after the restart")
    assert [e.type for e in run.job_events(job)] == ["job.observed"]
    run.assert_alive()
    run.clear_and_recover()


# --------------------------------------------------------------------------------------------
# The bodies are what the cases claim (no daemon needed)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (XXE, "malformed"),
        (BILLION_LAUGHS, "malformed"),
        (GARBAGE, "malformed"),
        (INVALID_UTF8, "malformed"),
        (reply(job_xml(handle("d600"), sub_job=nested(600))), "malformed"),
        (reply(job_xml(handle("d2k"), sub_job=nested(2048))), "malformed"),
        (fault_3mb(), "fault_ipsapi"),
    ],
    ids=["xxe", "billion_laughs", "garbage", "invalid_utf8", "d600", "d2048", "fault_3mb"],
)
def test_rejected_bodies_fail_the_decoder(body: bytes, kind: str) -> None:
    """Each hostile body is refused by the daemon's decoder with the kind the suite expects."""
    with pytest.raises(IpsError) as caught:
        decode_active_jobs(body, NS)
    assert caught.value.kind == kind


def test_accepted_bodies_decode() -> None:
    """The bodies the contract accepts decode: a 255-deep sub-job too, so the depth cases fail
    for their depth only; the foreign log decodes as another job's log."""
    assert len(decode_active_jobs(reply(job_xml(handle("d255"), sub_job=nested(254))), NS)) == 1
    (nan,) = decode_active_jobs(NAN_PROGRESS, NS)
    assert nan.status.task_progress[0].progress == 0.0
    assert decode_active_jobs(FOREIGN_COMPANY, NS)[0].company_handle == "c|9999"
    (log,) = decode_job_logs(job_log_reply("j|x"), NS, operation="getJobLogDetails")
    assert log.job_handle == "j|x"


def test_suite_body_helpers_are_consistent() -> None:
    """Sanity of the helpers: the too-large body exceeds the cap, the big one stays below it."""
    assert len(too_large()) > MAX_REPLY_BYTES
    assert 8_000_000 < len(big_jobs()) < MAX_REPLY_BYTES
