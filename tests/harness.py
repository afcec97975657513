"""Process harness for end-to-end runs: the simulator and the streamer as real subprocesses.

Shared by the end-to-end, chaos and operations (``test_ops_*``) tests and by ``bench/chaos.py``.
:func:`running_stack` is the usual entry: a simulator, a config for it, and a streamer.
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
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from streamer import localkafka
from streamer.encode import TopicNames
from streamer.localkafka import free_port as free_port
from streamer.simulator import read_ground_truth
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
        # The oracle (tests/verify.py) tells committed polls by their heartbeats: one per cycle.
        "heartbeat": {"every_s": 0},
        # Tests wait for and read the company_cycle line of every cycle.
        "log": {"format": "json", "cycles": "info"},
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
        """One company's entry of ``/status``. A company is listed once its shard is taken,
        in any order: before that, an entry in state ``"unlisted"`` with no cycles (so that a
        probe waiting for cycles waits, and an assertion on the state says what it saw)."""
        for entry in self.status()["companies"]:
            if entry["handle"] == handle:
                found: dict[str, Any] = entry
                return found
        return {"handle": handle, "state": "unlisted", "cycles": 0, "consecutiveFailures": 0}


def log_count(log: Path, event: str) -> int:
    """How many times the streamer logged ``event`` (0 when there is no log yet)."""
    return sum(r.get("event") == event for r in log_records(log)) if log.exists() else 0


def wait_started(
    streamer: Streamer, until: str | None, timeout_s: float = 60, *, seen: int = 0
) -> Streamer:
    """Wait for the streamer's HTTP port and, unless ``until`` is None, for that log event to
    appear more than ``seen`` times (the log may hold earlier runs)."""
    wait_port(streamer.port, streamer.proc, timeout_s)
    if until is not None:
        event = until
        wait_until(
            lambda: log_count(streamer.log, event) > seen, timeout_s, what=f"log event {event}"
        )
    return streamer


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
    seen = log_count(log, until) if until is not None else 0
    proc = start_streamer(config, log, *args)
    try:
        streamer = Streamer(proc, config, log, config_http_port(config))
        yield wait_started(streamer, until, timeout_s, seen=seen)
    finally:
        stop_process(proc)


# --------------------------------------------------------------------------------------------
# A whole stack: simulator + config + streamer
# --------------------------------------------------------------------------------------------

#: Tables of a streamer config as :func:`write_config` takes them.
Sections = Mapping[str, Mapping[str, TomlValue]]


@dataclass
class Stack:
    """A running simulator, a streamer config for it, and the streamers started on that config.

    Stopped by :func:`running_stack` on exit; the topics, logs and ground truth stay readable.
    """

    sim: Simulator
    config: Path
    log: Path
    bootstrap: str
    prefix: str
    started: list[Streamer] = field(default_factory=list)

    @property
    def streamer(self) -> Streamer:
        """The streamer started last."""
        assert self.started, "no streamer started yet"
        return self.started[-1]

    @property
    def topics(self) -> TopicNames:
        """The topic names of its prefix."""
        return TopicNames.with_prefix(self.prefix)

    def start(
        self, *args: str, until: str | None = "company_cycle", timeout_s: float = 60
    ) -> Streamer:
        """Start ``streamer run <args>`` on the config, logging to :attr:`log` (appended).

        With ``until``, wait for the HTTP port and that log event, as :func:`running_streamer`;
        None: return at once.
        """
        seen = log_count(self.log, until) if until is not None else 0
        proc = start_streamer(self.config, self.log, *args)
        streamer = Streamer(proc, self.config, self.log, config_http_port(self.config))
        self.started.append(streamer)
        return streamer if until is None else wait_started(streamer, until, timeout_s, seen=seen)

    def stop(self) -> None:
        """Stop every streamer it started that still runs (SIGTERM, then SIGKILL)."""
        for streamer in self.started:
            stop_process(streamer.proc)

    def ground_truth(self) -> list[dict[str, Any]]:
        """The simulator's ground truth records so far."""
        return read_ground_truth(self.sim.ground_truth)

    def events(self) -> list[Delivered]:
        """The committed job events."""
        return delivered_events(self.bootstrap, self.prefix)

    def heartbeats(self) -> list[dict[str, Any]]:
        """The committed heartbeat values."""
        return heartbeats(self.bootstrap, self.prefix)

    def records(self) -> dict[str, list[Any]]:
        """The raw records of every topic, by topic."""
        return all_records(self.bootstrap, self.prefix)

    def sim_state(self) -> dict[str, Any]:
        """The simulator's ``/_sim/state`` document."""
        state: dict[str, Any] = sim_control(self.sim, "/_sim/state", method="GET")
        return state

    def wait_workload_done(self, max_jobs: int, timeout_s: float = 180) -> None:
        """Wait until the simulator has submitted ``max_jobs`` jobs and none is active."""

        def done() -> bool:
            state = self.sim_state()
            return bool(state["submitted_jobs"] == max_jobs and state["active_jobs"] == 0)

        wait_until(done, timeout_s, interval_s=0.5, what=f"the simulator's {max_jobs} jobs done")

    def wait_nothing_tracked(self, timeout_s: float = 60) -> None:
        """Wait until the last streamer tracks no job in any company: the completion of every
        job that left IPS is committed."""
        wait_port(self.streamer.port, self.streamer.proc, timeout_s)
        wait_until(
            lambda: all(c["trackedJobs"] == 0 for c in self.streamer.status()["companies"]),
            timeout_s,
            interval_s=0.5,
            what="no tracked job left",
        )


@contextlib.contextmanager
def running_stack(
    tmp: Path,
    bootstrap: str,
    *,
    companies: Sequence[str],
    sim_args: Sequence[str] = (),
    sim_password: str = PASSWORD,
    prefix: str | None = None,
    name: str = "streamer",
    interval_s: float = 0.5,
    password: str = PASSWORD,
    sections: Sections | Callable[[Simulator], Sections] | None = None,
    extra: str = "",
    streamer_args: Sequence[str] = (),
    start: bool = True,
    until: str | None = "company_cycle",
    timeout_s: float = 60,
) -> Iterator[Stack]:
    """Start a simulator of ``companies`` (plus ``sim_args``), write ``<name>.toml`` for it and,
    with ``start``, run ``streamer run <streamer_args>`` logging to ``<name>.log``.

    ``until``: the log event to wait for before yielding (a first cycle; None: do not wait, e.g.
    for a ``--max-cycles`` run). ``sections`` may be a function of the simulator (for URLs on its
    port). The topic ``prefix`` is unique unless given; ``name`` keeps several stacks in one
    ``tmp`` apart. Streamers and simulator are stopped on exit.
    """
    company_args = [a for c in companies for a in ("--company", c)]
    sim_name = "simulator" if name == "streamer" else f"{name}-simulator"
    prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
    with simulator(tmp, *company_args, *sim_args, password=sim_password, name=sim_name) as sim:
        config = write_config(
            tmp / f"{name}.toml",
            endpoint=sim.endpoint,
            bootstrap=bootstrap,
            prefix=prefix,
            companies=companies,
            interval_s=interval_s,
            extra=extra,
            password=password,
            sections=sections(sim) if callable(sections) else sections,
        )
        stack = Stack(sim, config, tmp / f"{name}.log", bootstrap, prefix)
        try:
            if start:
                stack.start(*streamer_args, until=until, timeout_s=timeout_s)
            yield stack
        finally:
            stack.stop()
