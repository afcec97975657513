"""The group chaos command: kill -9 random instances of a 3-instance deployment, verify.

    .venv/bin/python bench/group_chaos.py --kills 20          (or: make group-chaos)

Starts a Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS points at one) and the IPS simulator, runs
three instances sharing the companies (one consumer group, 8 shards), SIGKILLs a random instance
``--kills`` times and restarts it with the same static member id after a random pause, lets the
workload finish, then reads every topic back read_committed and compares with the simulator's
ground truth. Exits non-zero unless missing, duplicated and extra are all zero.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.end_to_end import broker
from tests.chaos import report_lines
from tests.group_chaos import run_group_chaos


def main() -> int:
    """Run the group chaos workload and print its verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=36, help="jobs in the workload")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="group-chaos-"))
    with broker(tmp) as bootstrap:
        result = run_group_chaos(
            bootstrap,
            tmp,
            instances=args.instances,
            kills=args.kills,
            seed=args.seed,
            max_jobs=args.jobs,
            log=lambda line: print(line, flush=True),
        )
    r = result.report
    print(f"instances:                      {result.instances}")
    print(f"kills:                          {result.kills}")
    print("\n".join(report_lines(r)))
    print(f"final exit codes:               {result.exit_codes}")
    print(f"seconds:                        {result.seconds:.1f}  (logs in {tmp})")
    return 0 if r.ok and all(c == 0 for c in result.exit_codes) else 1


if __name__ == "__main__":
    sys.exit(main())
