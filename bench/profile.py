"""Sampling profiles of a running benchmark process (py-spy), summarised as small text tables.

``py-spy`` (a PyPI package, not a dependency of the streamer: ``pip install py-spy``) samples the
stacks of another process from outside, so the profiled process runs at full speed and its CPU
per cycle stays comparable. Idle samples (the event loop waiting in ``epoll``) are left out:
every sample is time the process spent on a CPU, in Python or in C code called from Python.

:func:`summarize` turns py-spy's raw output (collapsed stacks, one ``frame;frame;... count`` line
each) into two tables: the functions that were running (own samples) and the functions that
were on the stack (inclusive samples), each with its share of all samples.

    .venv/bin/python bench/profile.py RAW_FILE [--top 40]   # print the summary of a raw profile
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: ``function (path:line)`` of one py-spy frame; the line is absent with ``--nolineno``.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^():]*)(?::\d+)?\)$")


def available() -> bool:
    """Whether ``py-spy`` is installed next to this interpreter or on ``PATH``."""
    return _py_spy() is not None


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, raw: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` into ``raw`` (collapsed stacks); wait on it."""
    exe = _py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    args = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    args += ["--rate", str(rate), "--format", "raw", "--nolineno"]
    args += ["--output", str(raw)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame_name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("path")
    # Shorten site-packages and checkout paths to the package part.
    for marker in ("site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker.startswith("/lib"):
                path = "stdlib/" + path.split("/", 1)[1]
    return f"{m.group('func')} ({path})"


def summarize(raw: Path, top: int = 40, title: str = "") -> str:
    """The own-sample and inclusive-sample tables of a raw py-spy profile, as text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        # The first frame may be a thread name ("thread (0x...)"): keep it, it is one frame.
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    out = [title] if title else []
    out.append(f"{total:,} samples on CPU (idle left out)\n")
    for label, counter in (("own (running)", own), ("inclusive (on the stack)", inclusive)):
        out.append(f"top {top} functions by {label} samples")
        out.append(f"{'share':>6}  {'samples':>8}  function")
        for name, n in counter.most_common(top):
            out.append(f"{n / max(total, 1):6.1%}  {n:8,}  {name}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    argv = sys.argv[1:]
    n = int(argv[argv.index("--top") + 1]) if "--top" in argv else 40
    print(summarize(Path(argv[0]), n))
