"""What a company loop takes from the settings (streamer.service.poll_settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import Settings, load_config
from streamer.service import WAKE_GRID_SHARE, poll_settings

MINIMAL = """
[ips]
user = "api@example.com"
password = "pw"

[[companies]]
handle = "c|1001"

[[companies]]
handle = "c|1002"
interval_s = 60

[poll]
jitter = 0.2

[heartbeat]
every_s = 45
"""


def load(tmp_path: Path) -> Settings:
    """Settings from the config above."""
    path = tmp_path / "streamer.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    return load_config(path, {})


def test_company_loops_wake_on_a_grid_of_one_percent_of_their_interval(tmp_path: Path) -> None:
    """Each company's wake-up grid is 1% of its own interval: 50 ms at 5 s, 0.6 s at 60 s."""
    cfg = load(tmp_path)
    assert WAKE_GRID_SHARE == 0.01
    intervals = [cfg.interval_for(company) for company in cfg.companies]
    assert intervals == [5.0, 60.0]
    grids = [poll_settings(cfg, interval).wake_grid_s for interval in intervals]
    assert grids == [pytest.approx(0.05), pytest.approx(0.6)]


def test_poll_settings_carry_the_configured_keys(tmp_path: Path) -> None:
    """The interval, jitter and heartbeat cadence reach the loop as configured."""
    poll = poll_settings(load(tmp_path), 5.0)
    assert (poll.interval_s, poll.jitter, poll.heartbeat_every_s) == (5.0, 0.2, 45)
