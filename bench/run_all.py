"""Run every benchmark of issues #5 and #13 and print a final table of the targets.

Each benchmark runs in its own Python process (so that none inherits another's heap), prints its
own figures and the machine, and hands its targets back as JSON. The final table gives, per
target, the goal, the measured value, the verdict, the margin and the floor it is relative to
(measured in the same run), then what bounds each missed target; the machine is printed first.
The command exits 1 while any target is missed (or a benchmark did not complete). On a two-core
machine run it while nothing else heavy runs: the load average is printed with every part.

    make bench                       # = .venv/bin/python bench/run_all.py
    make bench-quick                 # = .venv/bin/python bench/run_all.py --quick
    .venv/bin/python bench/run_all.py [--quick] [--only decode,cycle,memory,end_to_end,scale_out]

``--quick`` runs every benchmark at reduced scale (fewer rounds, 200 / 400 companies, 20 s
windows): for trying the command, not for the figures (the scale targets name the reduced shape).
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

from bench.common import ROOT, Target, machine_info, print_machine, print_targets

BENCHES: dict[str, list[str]] = {
    "decode": [],
    "cycle": [],
    "memory": [],
    "end_to_end": [],
    "scale_out": [],
}
QUICK: dict[str, list[str]] = {
    "decode": ["--quick"],
    "cycle": ["--cycles", "4"],
    "memory": ["--shape", "100x100"],
    "end_to_end": ["--seconds", "20", "--companies", "200"],
    "scale_out": ["--seconds", "20", "--companies", "400"],
}


def main(argv: list[str]) -> int:
    """Run the selected benchmarks; return 0 when every target was met."""
    quick = "--quick" in argv
    only = argv[argv.index("--only") + 1].split(",") if "--only" in argv else list(BENCHES)
    print_machine("bench/run_all.py: the benchmarks of issues #5 and #13")
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
    print(f"\n=== targets of issues #5 and #13 ({time.monotonic() - started:.0f} s in all) ===")
    for key, value in machine_info().items():
        print(f"  {key:13s} {value}")
    print()
    print_targets(targets)
    for name in failed:
        print(f"benchmark did not complete: {name}")
    met = sum(t.passed for t in targets)
    print(f"{met} of {len(targets)} targets met" + (" (quick run)" if quick else ""))
    return 0 if met == len(targets) and not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
