"""Ground truth of a simulator run as JSON Lines: what happened, and what each poll could see.

One JSON object per line, written and flushed as it happens. Kinds:

* ``{"kind": "transition", "t", "company", "jobHandle", "from": state|null, "to": state|"gone"}``,
  plus ``"outcome"`` when ``to`` is ``"gone"``;
* ``{"kind": "joblog", "t", "company", "jobHandle", "outcome"}`` when a job log becomes visible;
* ``{"kind": "poll", "t", "wall", "company", "ok": true, "jobs": [[jobHandle, state], ...]}`` for
  every successful ``getActiveJobs`` reply served (``"filtered": true`` when the request filtered
  by job handle or name), and ``{"kind": "poll", ..., "ok": false, "fault": mode}`` for a
  failed one;
* ``{"kind": "control", "t", "wall", "action", ...}`` for control-API actions (faults, clock,
  stalls, stop/start).

``t`` is simulated time (the clock of the timestamps inside replies), ``wall`` the real UTC time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from streamer.simulator.jobs import Fact, Transition


class GroundTruthWriter:
    """Appends records to a JSON Lines file (truncated on open) and flushes each one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = path.open("w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (no-op after :meth:`close`)."""
        if self._file is None:
            return
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def write_facts(self, facts: list[Fact], iso: Callable[[float], str]) -> None:
        """Write lifecycle facts; ``iso`` maps simulated seconds to an ISO timestamp."""
        for fact in facts:
            record: dict[str, Any]
            if isinstance(fact, Transition):
                record = {
                    "kind": "transition",
                    "t": iso(fact.t),
                    "company": fact.company,
                    "jobHandle": fact.job_handle,
                    "from": fact.from_state,
                    "to": fact.to_state,
                }
                if fact.outcome is not None:
                    record["outcome"] = fact.outcome.value
            else:
                record = {
                    "kind": "joblog",
                    "t": iso(fact.t),
                    "company": fact.company,
                    "jobHandle": fact.job_handle,
                    "outcome": fact.outcome.value,
                }
            self.write(record)

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_ground_truth(path: Path | str) -> list[dict[str, Any]]:
    """All records of a ground truth file, in order (a torn last line is skipped)."""
    records: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # Only the last line can be torn (the writer may be mid-write while we read).
                continue
    return records
