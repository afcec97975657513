"""Where the local Kafka's jars are cached (streamer.localkafka.CACHE)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PRINT_CACHE = "import streamer.localkafka as k; print(k.CACHE); print(k.LIBS)"


def cache_paths(env_value: str | None, cwd: Path) -> list[str]:
    """CACHE and LIBS as a fresh interpreter computes them with this STREAMER_CACHE_DIR."""
    env = {k: v for k, v in os.environ.items() if k != "STREAMER_CACHE_DIR"}
    if env_value is not None:
        env["STREAMER_CACHE_DIR"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", PRINT_CACHE],
        env=env,
        cwd=cwd,
        check=True,
        text=True,
        capture_output=True,
    )
    return out.stdout.split()


@pytest.mark.parametrize("env_value", [None, ""])
def test_unset_or_empty_cache_dir_means_the_checkout_cache(
    env_value: str | None, tmp_path: Path
) -> None:
    """An empty STREAMER_CACHE_DIR counts as unset: the jars live under <checkout>/.cache,
    an absolute path, whatever the working directory (the broker starts elsewhere)."""
    cache, libs = cache_paths(env_value, tmp_path)
    assert Path(cache).is_absolute()
    assert Path(cache).name == ".cache"
    assert Path(libs).is_relative_to(cache)


def test_relative_cache_dir_is_made_absolute(tmp_path: Path) -> None:
    """A relative STREAMER_CACHE_DIR is taken from the working directory, once, absolute."""
    cache, _ = cache_paths("jars", tmp_path)
    assert Path(cache) == (tmp_path / "jars").absolute()
