"""A consumer outside Python: the Java example in examples/java-consumer (kafka-clients with
read_committed, the CloudEvents Java SDK, Jackson typed classes, the v2 JSON Schemas) built with
Maven and run against records the daemon committed to the real broker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.harness import all_records, run_cli, running_stack

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "examples" / "java-consumer"
PREFIX = "dev.ips-job-streamer."


@pytest.fixture(scope="module")
def java_classpath() -> str:
    """`mvn package` of the example (class path: its classes and the copied dependencies)."""
    if shutil.which("mvn") is None or shutil.which("java") is None:
        pytest.skip("Maven and a JDK are needed to build the Java consumer")
    build = subprocess.run(
        ["mvn", "-q", "-B", "-Dstyle.color=never", "package"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MAVEN_OPTS": os.environ.get("MAVEN_OPTS", "-Xmx512m")},
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return f"{PROJECT / 'target' / 'classes'}{os.pathsep}{PROJECT / 'target' / 'lib' / '*'}"


@pytest.fixture(scope="module")
def java_run(
    java_classpath: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A bounded daemon run with failing jobs, then the Java consumer over all its topics."""
    tmp = tmp_path_factory.mktemp("java")
    with running_stack(
        tmp,
        kafka_bootstrap,
        companies=("c|1001", "c|1002"),
        sim_args=(
            *("--jobs-per-company", "3", "--speedup", "25", "--max-jobs", "12"),
            *("--seed", "11", "--fail-probability", "0.4"),
        ),
        streamer_args=("--max-cycles", "60"),
        until=None,
    ) as stack:
        rc = stack.streamer.proc.wait(180)
        assert rc == 0, stack.log.read_text()[-3000:]
        schemas = tmp / "schemas"
        export = run_cli("schemas", "export", str(schemas))
        assert export.returncode == 0, export.stderr
        records = all_records(kafka_bootstrap, stack.prefix)
        java = subprocess.run(
            [
                *("java", "-cp", java_classpath, "dev.ipsjobstreamer.example.Main"),
                *("--bootstrap", kafka_bootstrap, "--prefix", stack.prefix),
                *("--schemas", str(schemas), "--idle-ms", "10000", "--max-ms", "240000"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    lines = java.stdout.splitlines()
    summary = next((ln for ln in lines if ln.startswith("SUMMARY ")), None)
    assert summary is not None, java.stdout[-3000:] + java.stderr[-3000:]
    return {
        "rc": java.returncode,
        "stderr": java.stderr,
        "lines": lines,
        "summary": json.loads(summary.removeprefix("SUMMARY ")),
        "records": records,
    }


def _python_counts(records: dict[str, list[Any]]) -> tuple[Counter[str], int]:
    """Committed records by ce_type short name as aiokafka reads them, and the tombstones."""
    counts: Counter[str] = Counter()
    tombstones = 0
    for recs in records.values():
        for _topic, _key, value, headers in recs:
            if value is None:
                tombstones += 1
                continue
            ce_type = dict(headers)["ce_type"].decode()
            counts[ce_type.removeprefix(PREFIX)] += 1
    return counts, tombstones


def test_java_consumer_decodes_every_record_without_violation(java_run: dict[str, Any]) -> None:
    """The Java consumer maps every committed record to a typed class and finds no contract
    violation (schema, ce_type prefix, ce_id, ce_subject, per-job ce_source and ce_sequence)."""
    summary = java_run["summary"]
    assert summary["violations"] == [], summary["violations"][:5]
    assert java_run["rc"] == 0, java_run["stderr"][-3000:]
    assert not [t for t in summary["byType"] if t.startswith("unknown:")], summary["byType"]


def test_java_consumer_sees_what_python_sees(java_run: dict[str, Any]) -> None:
    """Kafka's Java client with read_committed reads the same records, type by type, as the
    Python reader: nothing the daemon committed is invisible or malformed to Java."""
    counts, tombstones = _python_counts(java_run["records"])
    summary = java_run["summary"]
    assert summary["byType"] == dict(counts)
    assert summary["tombstones"] == tombstones
    for kind in ("job.observed", "job.state_changed", "job.completed", "streamer.heartbeat"):
        assert counts[kind] > 0, kind


def test_java_consumer_prints_actionable_failed_completion(java_run: dict[str, Any]) -> None:
    """A failed job's completion, typed in Java, names the job, its type, duration and the job
    log's first error."""
    completed = [ln for ln in java_run["lines"] if ln.startswith("COMPLETED")]
    failed = [ln for ln in completed if "outcome=failed" in ln]
    assert failed, completed[:5]
    line = failed[0]
    assert 'job="null"' not in line, line
    assert "type=null" not in line, line
    assert "duration=?" not in line, line
    assert "first_error=" in line, line
