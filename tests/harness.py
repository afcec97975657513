"""Process harness for end-to-end runs: the simulator and the streamer as real subprocesses.

Shared by the end-to-end and chaos tests and by ``bench/chaos.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamer.encode import TopicNames
from streamer.simulator.verify import Delivered, from_kafka_record

SERVICE_PATH = "/scene7/services/IpsApiService"
USER = "demo@example.com"
PASSWORD = "demo-password"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Wait until ``port`` accepts connections; fail if ``proc`` died first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on {port} within {timeout_s}s")


@dataclass
class Simulator:
    """A simulator subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    ground_truth: Path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The SOAP service URL."""
        return self.base_url + SERVICE_PATH


@contextlib.contextmanager
def simulator(tmp: Path, *args: str) -> Iterator[Simulator]:
    """Run ``streamer simulate`` with a ground truth file in ``tmp``; stop it afterwards."""
    port = free_port()
    gt = tmp / "ground-truth.jsonl"
    log = (tmp / "simulator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "simulate", "--port", str(port),
         "--ground-truth", str(gt), "--user", USER, "--password", PASSWORD,
         "--log-level", "warning", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_port(port, proc)
        yield Simulator(proc, port, gt)
    finally:
        stop_process(proc)
        log.close()


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    """SIGTERM, wait, SIGKILL; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def write_config(
    path: Path,
    *,
    endpoint: str,
    bootstrap: str,
    prefix: str,
    companies: Sequence[str],
    interval_s: float = 0.5,
    transactional_id: str | None = None,
    extra: str = "",
) -> Path:
    """A streamer TOML config for a test run (HTTP endpoints on a free port)."""
    comp = "\n".join(f'[[companies]]\nhandle = "{c}"\n' for c in companies)
    path.write_text(
        f"""
[ips]
endpoint = "{endpoint}"
user = "{USER}"
password = "{PASSWORD}"
timeout_s = 5

[poll]
interval_s = {interval_s}
backoff_initial_s = 0.2
backoff_max_s = 2
auth_backoff_s = 2

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
transactional_id = "{transactional_id or prefix + "-streamer"}"

[http]
port = {free_port()}

[log]
format = "json"

[shutdown]
drain_timeout_s = 20
{extra}
{comp}
"""
    )
    return path


def start_streamer(config: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``streamer run`` as a subprocess logging to ``log``."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "streamer.cli", "run", "--config", str(config), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


async def read_topics(
    bootstrap: str, topic_names: Sequence[str], timeout_s: float = 30
) -> list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    """Every committed record of the topics (read_committed, from the start to the end)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    try:
        tps: list[TopicPartition] = []
        for name in topic_names:
            parts = consumer.partitions_for_topic(name)
            if parts is None:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(name) or set()
            tps.extend(TopicPartition(name, p) for p in parts)
        if not tps:
            return out
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for recs in batch.values():
                out.extend((r.topic, r.key, r.value, list(r.headers)) for r in recs)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        if remaining:
            raise TimeoutError(f"did not reach the end of {sorted(map(str, remaining))}")
    finally:
        await consumer.stop()
    return out


def delivered_events(bootstrap: str, prefix: str) -> list[Delivered]:
    """The job events on the state and progress topics of ``prefix``."""
    topics = TopicNames.with_prefix(prefix)
    raw = asyncio.run(read_topics(bootstrap, [topics.state, topics.progress]))
    events = [from_kafka_record(*r) for r in raw]
    return [e for e in events if e is not None]


def all_records(bootstrap: str, prefix: str) -> dict[str, list[Any]]:
    """Raw records of every topic of ``prefix``, by topic."""
    topics = TopicNames.with_prefix(prefix)
    names = [topics.state, topics.progress, topics.latest, topics.heartbeat, topics.notifications]
    raw = asyncio.run(read_topics(bootstrap, names))
    out: dict[str, list[Any]] = {n: [] for n in names}
    for rec in raw:
        out[rec[0]].append(rec)
    return out
