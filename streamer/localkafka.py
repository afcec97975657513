"""A real single-node Apache Kafka (KRaft) broker on 127.0.0.1, without Docker.

The broker jars (``org.apache.kafka:kafka_2.13`` and its runtime dependencies) come from Maven
Central through a tiny generated ``pom.xml`` into a cache folder (``.cache/`` of the checkout, or
``$STREAMER_CACHE_DIR``); later runs reuse them.

Used by the demo (``streamer demo``), the test suite (a session fixture) and the benchmarks::

    streamer kafka fetch                 # download the jars once
    streamer kafka start [--port 9092]   # format storage, start, wait until ready
    streamer kafka stop                  # SIGTERM, wait, then SIGKILL
    streamer kafka status

Stdlib only (plus Java 17 and Maven on the machine).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]
#: Where the cache and broker state live: the source checkout when running from one (editable
#: install), else the current directory; ``$STREAMER_HOME`` overrides both.
ROOT = Path(
    os.environ.get(
        "STREAMER_HOME", _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd()
    )
)
KAFKA_VERSION = "4.1.1"
CACHE = Path(os.environ.get("STREAMER_CACHE_DIR") or ROOT / ".cache").absolute()
LIBS = CACHE / f"kafka-{KAFKA_VERSION}" / "libs"
DEFAULT_STATE = ROOT / "var" / "kafka"

POM = """\
<!-- Resolves the Apache Kafka broker and its runtime dependencies from Maven Central
     so the local single-node KRaft broker can run without Docker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ips-job-streamer</groupId>
  <artifactId>local-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <properties>
    <kafka.version>{version}</kafka.version>
  </properties>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
"""

LOG4J = """\
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
"""


#: Broker processes started by this process, by pid (reaped by :func:`stop`).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def fetch() -> Path:
    """Download the broker jars into the cache unless a complete copy is already there."""
    marker = LIBS / ".complete"
    if marker.exists():
        return LIBS
    if shutil.which("mvn") is None:
        raise SystemExit("localkafka: Maven (mvn) is needed to fetch the Kafka jars")
    tmp = LIBS.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"localkafka: fetching Kafka {KAFKA_VERSION} jars from Maven Central", file=sys.stderr)
    tmp.mkdir(parents=True)
    pom = tmp / "pom.xml"
    pom.write_text(POM.format(version=KAFKA_VERSION))
    done = subprocess.run(
        [
            "mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode != 0:
        # Maven's own words are the useful part of a failure; on success it says nothing useful.
        print(done.stdout + done.stderr, file=sys.stderr)
        raise SystemExit(f"localkafka: Maven could not fetch Kafka {KAFKA_VERSION} jars")
    pom.unlink()
    shutil.rmtree(LIBS, ignore_errors=True)
    tmp.rename(LIBS)
    marker.write_text(KAFKA_VERSION)
    return LIBS


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Broker:
    """A running broker started by :func:`start`."""

    pid: int
    port: int
    state_dir: Path

    @property
    def bootstrap(self) -> str:
        """The ``bootstrap.servers`` string for clients."""
        return f"127.0.0.1:{self.port}"


def _properties(
    port: int, controller_port: int, data: Path, advertised_port: int | None = None
) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{advertised_port or port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=5",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=5",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Aborted transactions of killed producers must not block read_committed readers
            # for the default 15 minutes in chaos tests.
            "transaction.max.timeout.ms=900000",
            "auto.create.topics.enable=false",
            "log.segment.bytes=16777216",
            "log.cleaner.backoff.ms=1000",
            "",
        ]
    )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise SystemExit("localkafka: Java 17+ is needed to run the Kafka broker")
    return java


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 30) -> None:
    """Wait until ``port`` accepts connections; RuntimeError if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        if port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s:.0f}s")


def start(
    state_dir: Path = DEFAULT_STATE,
    port: int = 0,
    timeout_s: float = 90.0,
    heap: str = "768m",
    *,
    advertised_port: int | None = None,
) -> Broker:
    """Format fresh storage in ``state_dir`` and start a broker; return once it serves requests.

    ``advertised_port``: the port the broker tells clients to connect to, when that is not its
    own (a proxy in front of it, which must forward to ``port``); clients, the broker's own
    transaction markers included, then connect there.
    """
    libs = fetch()
    port = port or free_port()
    controller_port = free_port()
    shutil.rmtree(state_dir, ignore_errors=True)
    data = state_dir / "data"
    logs = state_dir / "logs"
    data.mkdir(parents=True)
    logs.mkdir(parents=True)
    props = state_dir / "server.properties"
    props.write_text(_properties(port, controller_port, data, advertised_port))
    (state_dir / "log4j.properties").write_text(LOG4J)
    jvm = _jvm(state_dir, libs, heap)
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run(
        [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return _launch(state_dir, jvm, props, port, timeout_s)


def _jvm(state_dir: Path, libs: Path, heap: str) -> list[str]:
    logs = state_dir / "logs"
    return [
        _java(), f"-Xmx{heap}", "-Xms256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true", f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j.configuration=file:{state_dir / 'log4j.properties'}",
        "-cp", f"{libs}/*",
    ]  # fmt: skip


def restart(state_dir: Path, timeout_s: float = 90.0, heap: str = "768m") -> Broker:
    """Start a stopped broker again on its existing storage and ports (no re-format)."""
    props = state_dir / "server.properties"
    port = int(
        next(
            # listeners=PLAINTEXT://127.0.0.1:<port>,CONTROLLER://...: the broker's own port
            line.split(",", 1)[0].rsplit(":", 1)[1]
            for line in props.read_text().splitlines()
            if line.startswith("listeners=")
        )
    )
    return _launch(state_dir, _jvm(state_dir, fetch(), heap), props, port, timeout_s)


def _launch(state_dir: Path, jvm: list[str], props: Path, port: int, timeout_s: float) -> Broker:
    logs = state_dir / "logs"
    server_log = logs / "server.log"
    # The log survives restarts: wait for one more "started" line than there was before.
    before = _started_count(server_log)
    out = (logs / "stdout.log").open("ab")
    proc = subprocess.Popen(
        [*jvm, "kafka.Kafka", str(props)],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C in the demo terminal is handled by us, not the JVM
    )
    out.close()
    # Keep the handle: the broker outlives this call, and ``stop`` reaps it.
    _CHILDREN[proc.pid] = proc
    (state_dir / "broker.pid").write_text(f"{proc.pid}\n{port}\n")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (logs / "stdout.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"Kafka broker exited with {proc.returncode}:\n{tail}")
        if _started_count(server_log) > before and port_open(port):
            return Broker(proc.pid, port, state_dir)
        time.sleep(0.2)
    stop(state_dir)
    raise RuntimeError(f"Kafka broker did not become ready within {timeout_s:.0f}s")


def _started_count(server_log: Path) -> int:
    if not server_log.exists():
        return 0
    return server_log.read_text(errors="replace").count("Kafka Server started")


def running(state_dir: Path = DEFAULT_STATE) -> Broker | None:
    """The broker recorded in ``state_dir`` if its process is alive."""
    pidfile = state_dir / "broker.pid"
    if not pidfile.exists():
        return None
    pid_s, port_s = pidfile.read_text().split()
    try:
        os.kill(int(pid_s), 0)
    except ProcessLookupError:
        return None
    return Broker(int(pid_s), int(port_s), state_dir)


def stop(state_dir: Path = DEFAULT_STATE, timeout_s: float = 30.0) -> None:
    """Stop the broker recorded in ``state_dir``: SIGTERM, then SIGKILL after ``timeout_s``."""
    broker = running(state_dir)
    if broker is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(broker.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(broker.pid, 0)
            # Reap it when it is our child (tests), so it does not linger as a zombie.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(broker.pid, os.WNOHANG)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(broker.pid, signal.SIGKILL)
    child = _CHILDREN.pop(broker.pid, None)
    if child is not None:
        child.wait()
    (state_dir / "broker.pid").unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: fetch | start | stop | status."""
    parser = argparse.ArgumentParser(prog="streamer kafka", description="Local Kafka broker")
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--port", type=int, default=9092)
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(fetch())
    elif args.command == "start":
        existing = running(args.state_dir)
        if existing is not None:
            print(existing.bootstrap)
            return 0
        if port_open(args.port):
            raise SystemExit(f"localkafka: port {args.port} is already in use")
        print(start(args.state_dir, args.port).bootstrap)
    elif args.command == "stop":
        stop(args.state_dir)
    else:
        broker = running(args.state_dir)
        print(broker.bootstrap if broker else "stopped")
        return 0 if broker else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
