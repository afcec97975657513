"""The example alert consumer's job_failed line: what an on-call engineer reads first."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ALERT_CONSUMER = Path(__file__).resolve().parents[1] / "examples" / "alert_consumer.py"


def consumer() -> ModuleType:
    """``examples/alert_consumer.py`` loaded as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("alert_consumer_example", ALERT_CONSUMER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FAILED: dict[str, Any] = {
    "companyHandle": "c|1003",
    "jobHandle": "j|1003||68c6|7407171",
    "sequence": 4,
    "observedAt": "2026-11-28T13:32:22.327000+00:00",
    "outcome": "failed",
    "jobName": 'spring "sale" upload',
    "jobType": "UrlUpload",
    "durationS": 85.4,
    "counts": {"fileError": 2},
    "logMessages": {
        "errors": [
            {"message": "Unable to process shoe-12.tif: corrupt", "assetName": "shoe-12.tif"},
            {"message": "later", "assetName": None},
        ],
        "warnings": [],
        "errorTotal": 3,
        "warningTotal": 0,
    },
}
HEADERS = {"ce_type": "job.completed", "ce_id": "j|1003||68c6|7407171:4"}


def test_failed_line_names_the_job_its_type_duration_and_first_error() -> None:
    """Name and first error JSON-quoted, the asset named, the error total, then the handle."""
    line = consumer().alert_line(HEADERS, FAILED)
    assert line == (
        'ALERT job_failed  company=c|1003 job="spring \\"sale\\" upload" type=UrlUpload '
        'duration=85s errors=3 first_error="Unable to process shoe-12.tif: corrupt '
        '(asset shoe-12.tif)" handle=j|1003||68c6|7407171 '
        "at=2026-11-28T13:32:22.327000+00:00 id=j|1003||68c6|7407171:4"
    )


def test_failed_line_without_messages_falls_back_to_the_counts() -> None:
    """No logMessages (the look-up failed): the file error count, no first_error."""
    value = {**FAILED, "logMessages": None, "jobName": None, "jobType": None, "durationS": None}
    line = consumer().alert_line(HEADERS, value)
    assert line is not None
    assert line.startswith(
        'ALERT job_failed  company=c|1003 job="j|1003||68c6|7407171" type=? duration=? errors=2 '
        "handle=j|1003||68c6|7407171 "
    )
    assert "first_error" not in line
