"""The distribution: ``python -m build`` gives an sdist and a wheel; the wheel installs into a
clean virtualenv (runtime dependencies only, from PyPI) and works there without the checkout:
``streamer -V``, ``streamer run --help``, the package data (demo config, JSON Schemas, WSDL,
licence), and a bounded ``streamer run`` of the packaged demo config against the wheel's own
simulator and a real broker.

Slow (a build and a virtualenv with its dependencies: about a minute), and kept in CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from streamer.localkafka import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Installed:
    """A clean virtualenv with the built wheel installed, and a working directory outside the
    checkout."""

    wheel: Path
    venv: Path
    cwd: Path

    def bin(self, name: str) -> str:
        """A console script or the interpreter of the virtualenv."""
        return str(self.venv / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for its commands: nothing that points back at the checkout."""
        keep = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
            and not k.startswith("STREAMER_")
        }
        return {**keep, **extra}

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in the working directory, output captured."""
        return subprocess.run(
            args,
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build sdist and wheel (the wheel from the sdist) and install the wheel in a new venv."""
    tmp = tmp_path_factory.mktemp("packaging")
    dist = tmp / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return Installed(wheel, venv, cwd)


def test_wheel_declares_the_licence_and_ships_it(installed: Installed) -> None:
    """The wheel's metadata says Apache-2.0 and carries the LICENSE text."""
    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = whl.read(metadata).decode()
        licence = next(n for n in names if n.endswith("/LICENSE"))
        assert "Apache License" in whl.read(licence).decode()
    assert "License-Expression: Apache-2.0" in text


def test_installed_commands_answer_without_the_checkout(installed: Installed) -> None:
    """``streamer -V`` prints the version and ``streamer run --help`` the daemon's help."""
    version = installed.run(installed.bin("streamer"), "-V")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "streamer, version 0.1.0"
    help_text = installed.run(installed.bin("streamer"), "run", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--config" in help_text.stdout
    assert "Exit codes" in help_text.stdout


def test_shell_completion_comes_with_the_installed_command(installed: Installed) -> None:
    """click's completion (README: ``_STREAMER_COMPLETE=bash_source streamer``) works from the
    wheel: the script is generated and completes command and option names."""
    script = subprocess.run(
        [installed.bin("streamer")],
        cwd=installed.cwd,
        env=installed.env(_STREAMER_COMPLETE="bash_source"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "complete -o nosort -F _streamer_completion streamer" in script.stdout
    words = subprocess.run(
        [installed.bin("streamer")],
        cwd=installed.cwd,
        env=installed.env(
            _STREAMER_COMPLETE="bash_complete", COMP_WORDS="streamer tail --co", COMP_CWORD="2"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert words.stdout.split() == ["plain,--config", "plain,--company"]


def test_package_data_and_only_runtime_dependencies_are_installed(installed: Installed) -> None:
    """The demo config, every JSON Schema and the WSDL come from the installed package (not the
    checkout), and no dev tool was installed with it."""
    code = (
        "import importlib.resources as r, json, streamer\n"
        "root = r.files('streamer')\n"
        "print(json.dumps({'file': streamer.__file__,\n"
        "  'demo': (root / 'data' / 'demo.toml').read_text(),\n"
        "  'schemas': sorted(p.name for p in (root / 'schemas').iterdir()"
        " if p.name.endswith('.json')),\n"
        "  'wsdl': sorted(p.name for p in (root / 'ips' / 'wsdl').iterdir())}))\n"
    )
    probe = installed.run(installed.bin("python"), "-c", code)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["file"].startswith(str(installed.venv))
    assert (ROOT / "streamer" / "data" / "demo.toml").read_text() == found["demo"]
    assert found["schemas"] == sorted(
        p.name for p in (ROOT / "streamer" / "schemas").glob("*.json")
    )
    assert "IpsApi-2014-04-03.wsdl" in found["wsdl"]
    pip_list = installed.run(installed.bin("pip"), "list", "--format=json")
    names = {p["name"].lower().replace("_", "-") for p in json.loads(pip_list.stdout)}
    assert {"aiokafka", "zeep", "rich", "prometheus-client"} <= names
    assert not names & {"pytest", "mypy", "ruff", "hypothesis", "jsonschema", "build"}


@pytest.mark.kafka
def test_installed_streamer_runs_the_packaged_demo_config(
    installed: Installed, kafka_bootstrap: str
) -> None:
    """From the wheel alone: the simulator serves, ``streamer run`` with the packaged demo config
    polls it for three cycles and drains (exit 0), and ``streamer tail`` reads the events back."""
    sim_port, http_port = free_port(), free_port()
    prefix = f"pkg{uuid.uuid4().hex[:8]}"
    sim = subprocess.Popen(
        [installed.bin("streamer"), "simulate", "--port", str(sim_port), "--speedup", "20"],
        cwd=installed.cwd,
        env=installed.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(sim_port, sim, "the installed simulator")
        demo = installed.run(
            installed.bin("python"),
            "-c",
            "import importlib.resources as r; print(r.files('streamer') / 'data' / 'demo.toml')",
        ).stdout.strip()
        env = installed.env(
            STREAMER_IPS__ENDPOINT=f"http://127.0.0.1:{sim_port}/scene7/services/IpsApiService",
            STREAMER_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap,
            STREAMER_KAFKA__TOPIC_PREFIX=prefix,
            STREAMER_KAFKA__TRANSACTIONAL_ID=f"{prefix}-streamer",
            STREAMER_HTTP__PORT=str(http_port),
            STREAMER_POLL__INTERVAL_S="0.5",
        )
        run = subprocess.run(
            [installed.bin("streamer"), "run", "--config", demo, "--max-cycles", "3"],
            cwd=installed.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        tail = installed.run(
            installed.bin("streamer"),
            "tail",
            "--bootstrap",
            kafka_bootstrap,
            "--topic-prefix",
            prefix,
            "--lines",
            "--from-beginning",
            "--max-records",
            "3",
        )
        assert tail.returncode == 0, tail.stderr
        kinds = [line.split()[0] for line in tail.stdout.splitlines()]
        assert len(kinds) == 3, tail.stdout
        assert kinds[0] == "job.observed"  # the earliest event of all is an observation
        assert all(k.startswith("job.") for k in kinds)
    finally:
        sim.terminate()
        sim.wait(20)
