"""The [completion] reconciliation keys: defaults, validation, environment, the poller's policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import ConfigError, Settings, load_config
from streamer.reconcile import ReconcileSettings
from streamer.reconciler import ReconcilePolicy
from streamer.service import reconcile_for, reconcile_policy

MINIMAL = """
[ips]
user = "api@example.com"
password = "pw"

[[companies]]
handle = "c|1001"
"""


def load(tmp_path: Path, extra: str = "", env: dict[str, str] | None = None) -> Settings:
    """Settings from the minimal config plus ``extra`` TOML."""
    path = tmp_path / "streamer.toml"
    path.write_text(MINIMAL + extra, encoding="utf-8")
    return load_config(path, env or {})


def test_reconciliation_is_on_by_default_with_its_documented_values(tmp_path: Path) -> None:
    """Defaults: a pass every 60 s, 120 s overlap, 30 s delay, 1000 rows, no look-back."""
    c = load(tmp_path).completion
    assert c.reconcile
    assert (c.reconcile_interval_s, c.reconcile_overlap_s, c.reconcile_delay_s) == (60, 120, 30)
    assert (c.reconcile_max_rows, c.lookback_s) == (1000, 0)


def test_policy_follows_the_config_and_the_record_limit(tmp_path: Path) -> None:
    """The poller's policy carries the keys; the ledger bound follows kafka.max_record_bytes."""
    cfg = load(
        tmp_path,
        "\n[completion]\nreconcile_overlap_s = 10\nreconcile_delay_s = 2\n"
        "reconcile_max_rows = 50\nlookback_s = 600\n"
        "\n[kafka]\nmax_record_bytes = 100000\n",
    )
    assert reconcile_policy(cfg) == ReconcilePolicy(
        interval_s=60,
        rules=ReconcileSettings(
            overlap_s=10, delay_s=2, lookback_s=600, max_rows=50, max_reported=500
        ),
    )
    policy = reconcile_policy(cfg)
    assert policy is not None
    assert reconcile_for(policy, 30.0).max_pass_s == 30.0  # a slow company may take its interval
    assert reconcile_for(policy, 1.0).max_pass_s == policy.max_pass_s


def test_interval_zero_turns_it_off_also_from_the_environment(tmp_path: Path) -> None:
    """reconcile_interval_s = 0 (here from STREAMER_COMPLETION__...) means no policy at all."""
    cfg = load(tmp_path, env={"STREAMER_COMPLETION__RECONCILE_INTERVAL_S": "0"})
    assert not cfg.completion.reconcile
    assert reconcile_policy(cfg) is None


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("reconcile_max_rows = 1", "completion.reconcile_max_rows"),
        ("reconcile_overlap_s = -1", "completion.reconcile_overlap_s"),
        ("reconcile_delay_s = -0.5", "completion.reconcile_delay_s"),
        ("lookback_s = -60", "completion.lookback_s"),
        ("reconcile_interval_s = -1", "completion.reconcile_interval_s"),
        ("reconcile_every = 5", "completion.reconcile_every"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, line: str, key: str) -> None:
    """A negative time, a numRows below 2 or a misspelt key stops the start, naming it."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(tmp_path, f"\n[completion]\n{line}\n")
