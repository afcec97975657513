"""What the product loads and ships: ``streamer run`` imports no dev or test tool, the simulator
imports nothing from the daemon, and the demo's config ships inside the package.

Imports are checked in a fresh interpreter: this test process has pytest, hypothesis and most of
the package loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import streamer
from streamer.config import load_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(streamer.__file__).resolve().parent

#: Modules (a name, or a name ending in ``.`` for a whole package) that ``streamer run`` must not
#: load: dev tools, test oracles and test libraries.
NOT_AT_RUN = (
    "streamer.localkafka",
    "streamer.demo",
    "streamer.tail",
    "streamer.tail_screen",
    "streamer.tail_state",
    "streamer.check",
    "streamer.simulator",
    "streamer.simulator.",
    "tests",
    "tests.",
    "hypothesis",
    "hypothesis.",
    "pytest",
    "_pytest",
    "_pytest.",
    "jsonschema",
)
#: The zeep reference decoder, an oracle for the IPS decoder's tests.
REFERENCE = ("streamer.ips.reference", "tests.zeep_reference")
#: The daemon side, which the simulator must stay independent of.
DAEMON = (
    "streamer.cli",
    "streamer.service",
    "streamer.poller",
    "streamer.kafka",
    "streamer.web",
    "streamer.ips",
    "streamer.ips.",
    "aiokafka",
    "aiokafka.",
)


def loaded_after(*modules: str) -> set[str]:
    """The names in ``sys.modules`` of a fresh interpreter after importing ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


def matching(loaded: set[str], patterns: tuple[str, ...]) -> list[str]:
    """The loaded module names equal to a pattern, or under one ending in ``.``."""
    return sorted(
        name
        for name in loaded
        if any(name == p or (p.endswith(".") and name.startswith(p)) for p in patterns)
    )


def test_streamer_run_loads_no_dev_or_test_tool() -> None:
    """Importing what ``streamer run`` needs (cli, service) loads no dev tool, oracle, test lib."""
    loaded = loaded_after("streamer.cli", "streamer.service")
    assert "streamer.service" in loaded  # the check sees a real import, not an empty one
    assert matching(loaded, NOT_AT_RUN) == []


def test_streamer_run_loads_no_zeep_reference_decoder() -> None:
    """Importing what ``streamer run`` needs does not load the zeep reference decoder."""
    assert matching(loaded_after("streamer.cli", "streamer.service"), REFERENCE) == []


def test_simulator_imports_nothing_from_the_daemon() -> None:
    """The simulator package loads neither the daemon's modules nor its Kafka client."""
    loaded = loaded_after("streamer.simulator", "streamer.simulator.server")
    assert "streamer.simulator.server" in loaded
    assert matching(loaded, DAEMON) == []


def test_demo_config_ships_in_the_package() -> None:
    """``streamer demo`` reads a config file inside the package, the same as config/demo.toml."""
    from streamer.demo import DEMO_CONFIG

    assert PACKAGE in Path(str(DEMO_CONFIG)).resolve().parents
    # The checkout's copy is what the Docker image mounts (docker-compose): keep them identical.
    assert DEMO_CONFIG.read_bytes() == (ROOT / "config" / "demo.toml").read_bytes()
    settings = load_config(Path(str(DEMO_CONFIG)), {})
    assert [c.handle for c in settings.companies] == ["c|1001", "c|1002", "c|1003"]
