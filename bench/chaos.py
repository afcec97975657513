"""The chaos command: kill -9 the streamer at random points of a simulated workload, verify.

    .venv/bin/python bench/chaos.py --kills 20          (or: make chaos)

Starts a Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS points at one) and the IPS simulator, runs
the streamer, SIGKILLs it ``--kills`` times at random moments (restarting it each time), lets a
last run finish the workload, then reads every topic back read_committed and compares with the
simulator's ground truth. Prints: ground-truth transitions, delivered, missing, duplicated, extra;
every ground-truth job that finished (seen by a committed poll or not) and its completions,
missing, duplicated, extra; and the number of kills. Exits non-zero unless all of those are zero.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.end_to_end import broker
from tests.chaos import report_lines, run_chaos


def main() -> int:
    """Run the chaos workload and print its verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=45, help="jobs in the workload")
    parser.add_argument("--speedup", type=float, default=10.0)
    parser.add_argument(
        "--short-job-share",
        type=float,
        default=0.3,
        help="share of jobs shorter than a poll interval (only reconciliation can report them)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
    with broker(tmp) as bootstrap:
        result = run_chaos(
            bootstrap,
            tmp,
            kills=args.kills,
            seed=args.seed,
            max_jobs=args.jobs,
            speedup=args.speedup,
            short_job_share=args.short_job_share,
            log=lambda line: print(line, flush=True),
        )
    r = result.report
    print(f"kills:                          {result.kills}")
    print("\n".join(report_lines(r)))
    print(f"final run exit code:            {result.exit_code}")
    print(f"seconds:                        {result.seconds:.1f}  (logs in {tmp})")
    return 0 if r.ok and result.exit_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
