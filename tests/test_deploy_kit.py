"""The deploy kit, checked without a container engine: docker-compose.yml, the Dockerfile,
deploy/kubernetes.yaml, the systemd unit and the Grafana dashboard parse, name files that exist
and agree with each other and with the streamer's configuration (each config they carry loads
with the environment they give it); the unit passes ``systemd-analyze verify`` and scores below
4.0 in ``systemd-analyze security`` where systemd-analyze is available.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamer.config import Settings, load_config
from streamer.metrics import Metrics
from streamer.status import CompanyStatus, ServiceStatus

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "ips-job-streamer.service"


def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed."""
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def kubernetes() -> dict[str, dict[str, Any]]:
    """deploy/kubernetes.yaml's documents by kind."""
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one document of each kind"
    return by_kind


def load_with(tmp: Path, text: str, env: Mapping[str, str]) -> Settings:
    """The streamer's settings from a config text and an environment, as the daemon loads them."""
    path = tmp / "streamer.toml"
    path.write_text(text)
    return load_config(path, env=env)


def config_arg(args: list[str]) -> str:
    """The value of ``--config`` in a command line."""
    return args[args.index("--config") + 1]


def listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` as ``{NAME: "host:port"}``."""
    return dict(item.split("://", 1) for item in value.split(","))


# --------------------------------------------------------------------------------------------
# docker-compose.yml and the Dockerfile
# --------------------------------------------------------------------------------------------


def test_compose_builds_one_image_once_and_mounts_an_existing_config(tmp_path: Path) -> None:
    """One service builds the image, the others use it without pulling; the streamer's config is
    a file of the repository mounted where its command reads it, and it loads."""
    services = compose()["services"]
    builders = [name for name, s in services.items() if "build" in s]
    assert builders == ["simulator"]
    image = services["simulator"]["image"]
    assert services["streamer"]["image"] == image
    assert services["streamer"]["pull_policy"] == "never"
    streamer = services["streamer"]
    mounts = {}
    for volume in streamer["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    config_path = config_arg(streamer["command"])
    assert config_path in mounts
    host_file = ROOT / mounts[config_path]
    assert host_file.is_file(), host_file
    settings = load_with(tmp_path, host_file.read_text(), streamer.get("environment", {}))
    # It reaches the compose services: Kafka's in-network listener, the simulator's port.
    kafka_env = services["kafka"]["environment"]
    assert (
        settings.kafka.bootstrap_servers
        in listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).values()
    )
    sim_port = services["simulator"]["command"][
        services["simulator"]["command"].index("--port") + 1
    ]
    assert settings.ips.endpoint == f"http://simulator:{sim_port}/scene7/services/IpsApiService"
    # Its HTTP port is the one published and health-checked, on all interfaces of the container.
    assert settings.http.host == "0.0.0.0"
    assert f":{settings.http.port}:{settings.http.port}" in " ".join(streamer["ports"])
    assert f"127.0.0.1:{settings.http.port}/readyz" in " ".join(streamer["healthcheck"]["test"])


def test_compose_kafka_keeps_its_data_on_the_volume_and_has_a_host_listener() -> None:
    """log.dirs is the mounted volume (not the image's /tmp default); a listener advertised to
    the host is published on that same host port; every listener has a protocol."""
    doc = compose()
    kafka = doc["services"]["kafka"]
    env = kafka["environment"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in kafka["volumes"]}
    assert env["KAFKA_LOG_DIRS"] in mounts
    assert mounts[env["KAFKA_LOG_DIRS"]] in doc["volumes"]  # a named volume, kept on `down`
    bound = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(bound) <= set(protocols)
    host_name, host_port = advertised["HOST"].rsplit(":", 1)
    assert host_name in ("127.0.0.1", "localhost")
    container_port = bound["HOST"].rsplit(":", 1)[1]
    assert f"127.0.0.1:{host_port}:{container_port}" in kafka["ports"]
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised


def test_dockerfile_copies_what_exists_and_what_the_build_needs() -> None:
    """Every COPY source exists; the README and LICENSE the package metadata names are copied;
    the image's default command reads the config path compose and Kubernetes mount."""
    text = (ROOT / "Dockerfile").read_text()
    copied: set[str] = set()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            copied.update(sources)
    for source in copied:
        assert (ROOT / source).exists(), source
    assert {"pyproject.toml", "README.md", "LICENSE", "streamer"} <= copied
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))  # type: ignore[union-attr]
    assert config_arg(cmd) == config_arg(compose()["services"]["streamer"]["command"])
    statefulset = kubernetes()["StatefulSet"]
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert config_arg(container["args"]) == config_arg(cmd)
    assert re.search(r"^USER 10001$", text, re.M)


# --------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------


def test_kubernetes_config_map_secret_and_probes(tmp_path: Path) -> None:
    """The ConfigMap holds the streamer.toml the pod reads, and it loads with the pod's
    environment (Secret included); the Secret is the one the pod takes its environment from;
    probes are /healthz (liveness) and /readyz (readiness) on the container's HTTP port; the
    grace period covers the drain."""
    docs = kubernetes()
    assert set(docs) == {"ConfigMap", "Secret", "Service", "StatefulSet"}
    sts = docs["StatefulSet"]
    assert sts["spec"]["serviceName"] == docs["Service"]["metadata"]["name"]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    config = PurePosixPath(config_arg(container["args"]))
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    text = docs["ConfigMap"]["data"][config.name]
    assert (container["envFrom"][0]["secretRef"]["name"]) == docs["Secret"]["metadata"]["name"]
    env = {e["name"]: e.get("value", "pod-0") for e in container["env"]}
    env.update(docs["Secret"]["stringData"])
    settings = load_with(tmp_path, text, env)
    assert settings.ips.password is not None  # from the Secret, not the ConfigMap
    assert "password" not in text.replace("password_file", "")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == settings.http.port
    assert settings.http.host == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["port"] == "http"
    assert pod["terminationGracePeriodSeconds"] >= settings.shutdown.drain_timeout_s + 2
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.http.port)


# --------------------------------------------------------------------------------------------
# systemd
# --------------------------------------------------------------------------------------------


def systemd_analyze() -> str:
    """The systemd-analyze executable, or a skip when this machine has none."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze not available (package systemd; `make tools` installs it)")
    return found


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts the unit without a warning (its ExecStart pointed at a
    stand-in executable: verify requires one to exist)."""
    tool = systemd_analyze()
    stub = tmp_path / "streamer"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert "/opt/ips-job-streamer/venv/bin/streamer run --config" in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/ips-job-streamer/venv/bin/streamer", str(stub)))
    result = subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    own = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert not own, own  # e.g. "Unknown key ..." is only a warning, exit code 0


def test_unit_exposure_is_below_4(tmp_path: Path) -> None:
    """``systemd-analyze security --offline=true`` rates the unit below 4.0 ("OK")."""
    tool = systemd_analyze()
    result = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    if found is None and "offline" in result.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {result.stderr.strip()}")
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) < 4.0, result.stdout


def test_unit_and_readme_document_the_user_it_runs_as() -> None:
    """The unit runs as a dedicated user whose creation (useradd) the unit and the README give;
    exit codes 2 and 3 are not restarted."""
    text = UNIT.read_text()
    user = re.search(r"^User=(\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
    joined = re.sub(r"\\\n#?\s*", " ", text)  # shell lines continued with a backslash
    assert re.search(rf"useradd .*{user}$", joined, re.M)
    readme = re.sub(r"\\\n\s*", " ", (ROOT / "README.md").read_text())
    assert re.search(rf"useradd .*{user}\b", readme)
    assert re.search(r"^RestartPreventExitStatus=2 3$", text, re.M)


# --------------------------------------------------------------------------------------------
# Monitoring: dashboard and alert rules name metrics that exist
# --------------------------------------------------------------------------------------------


def exposed_metrics() -> set[str]:
    """Every sample name a scrape of the streamer can hold (one company, nothing happened)."""
    status = ServiceStatus(started_at=datetime.now(UTC))
    status.companies["c|1001"] = CompanyStatus("c|1001", 5.0)
    text = generate_latest(Metrics(status).registry).decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return names | {"up"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (this project's and process_*)."""
    return set(re.findall(r"\b((?:streamer|process)_[a-z_]+|up)\b(?=\s*[{\[)]|\s)", expr))


def dashboard_exprs() -> list[str]:
    """Every query of the Grafana dashboard."""
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_grafana_dashboard_parses_and_reads_only_exposed_metrics() -> None:
    """The dashboard is JSON with unique panel ids inside a 24-column grid, a Prometheus
    datasource variable, and queries over metrics the streamer exposes."""
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    exprs = dashboard_exprs()
    assert len(exprs) > 15
    exposed = exposed_metrics()
    used = set().union(*(metric_names(e) for e in exprs))
    assert "streamer_active_jobs" in used  # the name scan works
    assert used <= exposed, used - exposed


def test_alert_rules_read_only_exposed_metrics() -> None:
    """Each alert rule's expression reads metrics the streamer (or Prometheus: up) exposes, and
    the rules cover what the README promises."""
    doc = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {
        "IpsCompanyUnreachable",
        "IpsAuthenticationFailing",
        "IpsPollsBehindSchedule",
        "IpsStreamerCommitFailures",
        "IpsJobsStalled",
        "IpsStreamerNoHeartbeat",
    } <= names
    exposed = exposed_metrics()
    for rule in rules:
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= exposed, (rule["alert"], used - exposed)
