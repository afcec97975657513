"""Process harness for end-to-end runs: the simulator and the streamer as real subprocesses.

Shared by the end-to-end, chaos and operations (``test_ops_*``) tests and by ``bench/chaos.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamer import localkafka
from streamer.encode import TopicNames
from streamer.localkafka import free_port as free_port
from tests.verify import Delivered, from_kafka_record

SERVICE_PATH = "/scene7/services/IpsApiService"
USER = "demo@example.com"
PASSWORD = "demo-password"


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """Wait until ``port`` accepts connections; fail if ``proc`` died first."""
    localkafka.wait_port(port, proc, "process", timeout_s)


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
def simulator(
    tmp: Path, *args: str, password: str = PASSWORD, name: str = "simulator"
) -> Iterator[Simulator]:
    """Run ``streamer simulate`` with a ground truth file in ``tmp``; stop it afterwards.

    ``password`` is the one the simulator accepts for :data:`USER`; ``name`` names its ground
    truth and log files, so that several simulators can share ``tmp``.
    """
    port = free_port()
    gt = tmp / ("ground-truth.jsonl" if name == "simulator" else f"{name}-ground-truth.jsonl")
    log = (tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "simulate", "--port", str(port),
         "--ground-truth", str(gt), "--user", USER, "--password", password,
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


#: A scalar TOML value as :func:`write_config` renders it (``None``: leave the key out).
TomlValue = str | int | float | bool | None


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
    password: str = PASSWORD,
    sections: Mapping[str, Mapping[str, TomlValue]] | None = None,
) -> Path:
    """A streamer TOML config for a test run (HTTP endpoints on a free port).

    ``sections`` sets or overrides keys of the generated tables (``{"poll": {"ready_factor":
    1.5}}``; a ``None`` value drops a key); ``extra`` is TOML text appended after them.
    """
    tables: dict[str, dict[str, TomlValue]] = {
        "ips": {"endpoint": endpoint, "user": USER, "password": password, "timeout_s": 5},
        "poll": {
            "interval_s": interval_s,
            "backoff_initial_s": 0.2,
            "backoff_max_s": 2,
            "auth_backoff_s": 2,
        },
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topic_prefix": prefix,
            "transactional_id": transactional_id or prefix + "-streamer",
        },
        "http": {"port": free_port()},
        "log": {"format": "json"},
        "shutdown": {"drain_timeout_s": 20},
    }
    for table, values in (sections or {}).items():
        tables.setdefault(table, {}).update(values)
    text = "".join(
        f"\n[{table}]\n"
        + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items() if v is not None)
        for table, values in tables.items()
    )
    comp = "\n".join(f'[[companies]]\nhandle = "{c}"\n' for c in companies)
    path.write_text(f"{text}{extra}\n{comp}\n")
    return path


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


def config_http_port(config: Path) -> int:
    """The ``[http] port`` of a config written by :func:`write_config`."""
    with config.open("rb") as fh:
        return int(tomllib.load(fh)["http"]["port"])


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``streamer <args>`` to its end; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, **(env or {})},
    )


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


def heartbeats(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    """The committed heartbeat values of ``prefix`` (to tell committed polls from lost ones)."""
    topic = TopicNames.with_prefix(prefix).heartbeat
    raw = asyncio.run(read_topics(bootstrap, [topic]))
    return [json.loads(value) for _, _, value, _ in raw if value is not None]


def all_records(bootstrap: str, prefix: str) -> dict[str, list[Any]]:
    """Raw records of every topic of ``prefix``, by topic."""
    topics = TopicNames.with_prefix(prefix)
    names = [topics.state, topics.progress, topics.latest, topics.heartbeat, topics.notifications]
    raw = asyncio.run(read_topics(bootstrap, names))
    out: dict[str, list[Any]] = {n: [] for n in names}
    for rec in raw:
        out[rec[0]].append(rec)
    return out


# --------------------------------------------------------------------------------------------
# Operating a running streamer: HTTP endpoints, simulator control, logs, waiting
# --------------------------------------------------------------------------------------------

T = TypeVar("T")


def http_request(
    url: str, *, method: str = "GET", body: object = None, timeout_s: float = 5
) -> tuple[int, str]:
    """``(status, body text)`` of one HTTP request; an error status is returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def sim_control(sim: Simulator, path: str, body: object = None, *, method: str = "POST") -> Any:
    """Call the simulator's control API (``/_sim/...``); the JSON answer. Fails on an error."""
    status, text = http_request(sim.base_url + path, method=method, body=body)
    if status >= 300:
        raise RuntimeError(f"{method} {path} -> {status}: {text}")
    return json.loads(text)


def wait_until(
    probe: Callable[[], T | None], timeout_s: float = 20, *, interval_s: float = 0.1, what: str = ""
) -> T:
    """Call ``probe`` until it returns something truthy; return that. Fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s}s: {what or probe}")
        time.sleep(interval_s)


def parse_log(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a streamer log (other lines, such as library warnings, are skipped)."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
    return out


def log_records(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a streamer log file."""
    return parse_log(log.read_text(errors="replace"))


def log_has(log: Path, event: str) -> bool:
    """Whether the streamer logged ``event`` (a structlog event name)."""
    return any(r.get("event") == event for r in log_records(log))


@dataclass
class Streamer:
    """A running ``streamer run`` subprocess and how to reach it."""

    proc: subprocess.Popen[bytes]
    config: Path
    log: Path
    port: int

    def url(self, path: str) -> str:
        """The URL of one of its HTTP endpoints."""
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        """``(status, body)`` of ``GET path`` on its HTTP server."""
        return http_request(self.url(path))

    def status(self) -> dict[str, Any]:
        """The ``/status`` document."""
        code, text = self.get("/status")
        assert code == 200, text
        doc: dict[str, Any] = json.loads(text)
        return doc

    def company(self, handle: str) -> dict[str, Any]:
        """One company's entry of ``/status``."""
        found: dict[str, Any] = next(c for c in self.status()["companies"] if c["handle"] == handle)
        return found


@contextlib.contextmanager
def running_streamer(
    config: Path,
    log: Path,
    *args: str,
    until: str | None = "company_cycle",
    timeout_s: float = 60,
) -> Iterator[Streamer]:
    """Start ``streamer run``, wait for its HTTP port and the log event ``until`` (a first
    successful cycle by default), and stop it (SIGTERM, then SIGKILL) afterwards."""
    proc = start_streamer(config, log, *args)
    streamer = Streamer(proc, config, log, config_http_port(config))
    try:
        wait_port(streamer.port, proc, timeout_s)
        if until is not None:
            event = until
            wait_until(lambda: log_has(log, event), timeout_s, what=f"log event {event}")
        yield streamer
    finally:
        stop_process(proc)
