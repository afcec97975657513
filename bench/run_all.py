"""Run every benchmark of issue #5 ("Fast at scale") and print a final table of the targets.

Each benchmark runs in its own Python process (so that none inherits another's heap), prints its
own figures and the machine, and hands its targets back as JSON. On a two-core machine run this
while nothing else heavy runs: the load average is printed with every benchmark.

    make bench                       # = .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py [--quick] [--only decode,cycle,memory,end_to_end]

``--quick`` shortens every benchmark (fewer rounds, a 20 s end-to-end window): for trying the
command, not for the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, Target, print_machine, print_targets

BENCHES: dict[str, list[str]] = {
    "decode": [],
    "cycle": [],
    "memory": [],
    "end_to_end": [],
}
QUICK: dict[str, list[str]] = {
    "decode": ["--quick"],
    "cycle": ["--cycles", "4"],
    "memory": ["--shape", "100x100"],
    "end_to_end": ["--seconds", "20"],
}


def main(argv: list[str]) -> int:
    """Run the selected benchmarks; return 0 when every target was met."""
    quick = "--quick" in argv
    only = argv[argv.index("--only") + 1].split(",") if "--only" in argv else list(BENCHES)
    print_machine("bench/run_all.py: issue #5 benchmarks")
    targets: list[Target] = []
    failed: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in only:
            out = Path(tmp) / f"{name}.json"
            args = [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--json", str(out)]
            args += QUICK[name] if quick else BENCHES[name]
            sys.stdout.flush()
            code = subprocess.run(args, cwd=ROOT).returncode
            if code != 0 or not out.exists():
                failed.append(f"{name} (exit {code})")
                continue
            targets += [Target(**t) for t in json.loads(out.read_text())["targets"]]
    print(f"\n=== targets of issue #5 ({time.monotonic() - started:.0f} s in all) ===")
    print_targets(targets)
    for name in failed:
        print(f"benchmark did not complete: {name}")
    met = sum(t.passed for t in targets)
    print(f"{met} of {len(targets)} targets met" + (" (quick run)" if quick else ""))
    return 0 if met == len(targets) and not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
