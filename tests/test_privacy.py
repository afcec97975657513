"""The ``[privacy]`` policy for submitUserEmail (streamer.privacy) and the redacting IPS client."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.diff import DiffSettings, diff
from streamer.ips import JobLogListing
from streamer.model import JobLog, JobSnapshot, Snapshot
from streamer.privacy import (
    EmailPolicy,
    redact,
    redact_job,
    redact_log,
    redact_snapshot,
    redact_state,
)
from streamer.redacting_source import RedactingSource
from tests.shell_fakes import ScriptedIps
from tests.strategies import job_logs, snapshots
from tests.test_diff import COMPANY, T0, job, snap

KEY = b"0123456789abcdef-test-key"
HASH = EmailPolicy("hash", KEY)
DROP = EmailPolicy("drop")
KEEP = EmailPolicy("keep")
HASHED = re.compile(r"hmac-sha256:[0-9a-f]{64}")
policies = st.sampled_from((KEEP, DROP, HASH))


def log_with(email: str) -> JobLog:
    """A job log; ``JobLog`` may or may not carry the address (see :class:`LogWithUser`)."""
    return JobLog(COMPANY, "j|1", "n", "n", "EndUpload", T0, T0, 1, 0, 0, 0, 0, 1, 1, 0, 0, False)


@dataclass(frozen=True, slots=True)
class Message:
    """A nested value naming a submitter (as job log details may)."""

    text: str
    submit_user_email: str


@dataclass(frozen=True, slots=True)
class LogWithUser:
    """A job-log-like reply with the address at two depths."""

    job_handle: str
    submit_user_email: str
    messages: tuple[Message, ...] = ()


class Pair(NamedTuple):
    """A NamedTuple reply."""

    first: LogWithUser
    second: int


def test_hash_is_a_keyed_hmac_of_the_normalised_address() -> None:
    """hmac-sha256:<hex> of the trimmed, lower-case address under the key."""
    want = hmac.new(KEY, b"ops@example.com", hashlib.sha256).hexdigest()
    assert HASH.apply("ops@example.com") == f"hmac-sha256:{want}"
    assert HASH.apply("  Ops@Example.COM ") == f"hmac-sha256:{want}"


def test_hash_is_stable_across_instances_and_differs_by_key() -> None:
    """A new policy with the same key (a restart) hashes the same; another key does not."""
    again = EmailPolicy("hash", bytes(KEY))
    other = EmailPolicy("hash", KEY + b"2")
    assert again.apply("a@example.com") == HASH.apply("a@example.com")
    assert other.apply("a@example.com") != HASH.apply("a@example.com")
    assert HASH.apply("a@example.com") != HASH.apply("b@example.com")


def test_drop_empties_and_keep_keeps() -> None:
    """drop gives "", keep the address as sent; empty stays empty under every policy."""
    assert DROP.apply("ops@example.com") == ""
    assert KEEP.apply("Ops@Example.com") == "Ops@Example.com"
    assert [p.apply("") for p in (KEEP, DROP, HASH)] == ["", "", ""]


def test_a_hash_key_must_be_long_enough_and_the_mode_known() -> None:
    """Short keys and unknown modes are refused; the key never shows in repr."""
    with pytest.raises(ValueError, match="16 bytes"):
        EmailPolicy("hash", b"short")
    with pytest.raises(ValueError, match="mode must be one of"):
        EmailPolicy("mask")  # type: ignore[arg-type]
    assert "0123456789" not in repr(HASH)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=snapshots(max_jobs=3), policy=policies)
def test_only_the_address_changes_and_twice_is_once(
    snapshot: Snapshot, policy: EmailPolicy
) -> None:
    """Every other field is untouched; applying the policy again changes nothing."""
    out = redact_snapshot(policy, snapshot)
    assert [replace(j, submit_user_email="") for j in out.jobs] == [
        replace(j, submit_user_email="") for j in snapshot.jobs
    ]
    assert redact_snapshot(policy, out) == out
    for before, after in zip(snapshot.jobs, out.jobs, strict=True):
        if policy is KEEP or not before.submit_user_email:
            assert after.submit_user_email == before.submit_user_email
        elif policy is DROP:
            assert after.submit_user_email == ""
        else:
            assert HASHED.fullmatch(after.submit_user_email)


def test_unchanged_values_are_the_same_objects() -> None:
    """keep, and an already redacted job, hand back the very objects (no copy per poll)."""
    snapshot = snap(job("j|1"), job("j|2"))
    assert redact_snapshot(KEEP, snapshot) is snapshot
    dropped = redact_snapshot(DROP, snapshot)
    assert dropped is not snapshot
    assert redact_snapshot(DROP, dropped) is dropped
    assert redact_job(HASH, redact_job(HASH, job())) == redact_job(HASH, job())


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=job_logs(), policy=policies)
def test_job_logs_pass_whatever_fields_they_carry(log: JobLog, policy: EmailPolicy) -> None:
    """A JobLog without an address is returned as is."""
    assert redact_log(policy, log) is log


def test_any_reply_is_walked_for_the_address_at_any_depth() -> None:
    """Listings, tuples, lists, NamedTuples and nested dataclasses: every address replaced."""
    reply = LogWithUser("j|1", "a@example.com", (Message("x", "b@example.com"),))
    out = redact(DROP, [Pair(reply, 3), JobLogListing((log_with("a"),), None)])
    assert out[0] == Pair(LogWithUser("j|1", "", (Message("x", ""),)), 3)
    assert isinstance(out[1], JobLogListing)
    assert redact(KEEP, reply) is reply
    assert redact(DROP, (1, "a@example.com")) == (1, "a@example.com")  # only the named field


def test_restored_state_is_redacted_and_the_changed_handles_named() -> None:
    """State read back from the checkpoint under another policy: redacted, handles to rewrite."""
    state = diff({}, snap(job("j|1"), job("j|2")), T0, DiffSettings(), None).state
    out, changed = redact_state(DROP, state)
    assert changed == ("j|1", "j|2")
    assert {t.snapshot.submit_user_email for t in out.values()} == {""}
    assert redact_state(DROP, out) == (out, ())
    assert redact_state(KEEP, state) == (state, ())


# -- the redacting client ----------------------------------------------------------------------


class IpsWithDetails(ScriptedIps):
    """An IPS client with one more call than the poller's protocol names."""

    label = "plain attribute"

    async def get_asset_job_logs(self, company_handle: str, job_handle: str) -> LogWithUser:
        """A reply naming the submitter."""
        return LogWithUser(job_handle, "c@example.com")


async def test_redacting_source_redacts_every_reply_and_keeps_identity() -> None:
    """Snapshots, job logs, listings and calls it does not name are redacted; a job object IPS
    repeats unchanged stays one object across polls."""
    same = job("j|1")
    ips = IpsWithDetails(snap(same), snap(same, job("j|2")))
    ips.logs["j|1"] = log_with("x")
    source = RedactingSource(ips, HASH)
    first = await source.get_active_jobs(COMPANY)
    second = await source.get_active_jobs(COMPANY)
    assert {j.submit_user_email for j in first.jobs + second.jobs} == {
        HASH.apply(same.submit_user_email)
    }
    assert first.jobs[0] is second.jobs[0]
    assert await source.get_job_log(COMPANY, "j|1") == log_with("x")
    assert (await source.list_job_logs(COMPANY, num_rows=5)).logs == ()
    details = await source.get_asset_job_logs(COMPANY, "j|1")
    assert details.submit_user_email == HASH.apply("c@example.com")
    assert source.label == "plain attribute"


async def test_redacting_source_under_keep_passes_replies_through() -> None:
    """keep: the reply object itself."""
    snapshot: Snapshot = snap(job())
    assert await RedactingSource(ScriptedIps(snapshot), KEEP).get_active_jobs(COMPANY) is snapshot


def test_jobsnapshot_has_the_field_the_policy_names() -> None:
    """The generic walk looks for ``submit_user_email``: the model's field has that name."""
    assert "submit_user_email" in JobSnapshot.__dataclass_fields__
