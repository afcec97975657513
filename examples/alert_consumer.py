"""Turn ips-job-streamer events into alerts: failed jobs and stalled jobs, one line each.

A small standalone consumer of the ``<prefix>.jobs.state`` topic (it needs only ``aiokafka``),
meant as a starting point for a real alerting hook (replace :func:`emit` with a pager call).

Usage::

    python examples/alert_consumer.py --bootstrap 127.0.0.1:9092 --topic-prefix ips \\
        --group-id ips-alerts [--from-beginning] [--max-messages N] [--timeout SECONDS]

It prints, on standard output, one line per alert::

    ALERT job_failed  company=c|1003 job="DirUpload_banners_2026-11-29-22:31:31.808" \
        type=UploadFromServerDirectory duration=43s errors=1 first_error="Fatal error while \
        processing asset_0006.jpg: lost connection to the image server (asset asset_0006.jpg)" \
        handle=j|1003||e32d...|3590896 at=2026-11-29T22:32:16.997426+00:00 id=j|1003||...:4
    ALERT job_stalled company=c|1001 job=j|1001|43 state=Running progress=40 \
        no_progress_for_s=912 message='Uploading 4 of 10 files' at=... id=j|1001|43:...

(shown on two lines here; each alert is one line). ``id`` is the event's ``ce_id``.

How it reads, and why:

* ``isolation_level=read_committed``: the streamer publishes in Kafka transactions; a plain
  consumer could see events of an aborted transaction, which the streamer then publishes again.
* a consumer group (``--group-id``): offsets are committed after the alerts of a batch were
  printed, so a restarted consumer continues where it left off (at-least-once).
* deduplication by ``ce_id``: a replay (a restart before the offset commit) or a duplicate must
  not page twice; the last ``--dedupe-window`` ids are remembered. Across restarts the committed
  offsets do that job.
* without ``--from-beginning`` a group that has no committed offset yet starts at the end of the
  topic (only new alerts); with it, at the earliest retained record.
* event types: contract v2 names them ``dev.ips-job-streamer.job.completed``, ...; records written
  before v2 on the topic say ``job.completed``: :func:`event_type` reads both. Unknown types and
  unknown ``outcome`` values are ignored (a minor contract version may add some).

Options: ``--max-messages N`` stops after N records were read (alerts or not); ``--timeout S``
stops once no record arrived for S seconds. Without either it runs until Ctrl-C or SIGTERM.
Exit status 0; 1 when Kafka cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError


class SeenIds:
    """The last ``capacity`` event ids, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; False when it was already remembered (a duplicate)."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


#: What contract v2 puts before every event type.
TYPE_PREFIX = "dev.ips-job-streamer."


def event_type(headers: Mapping[str, str]) -> str:
    """The short event type (``job.completed``) of a v2 or v1 record's ``ce_type``."""
    ce_type = headers.get("ce_type", "")
    return ce_type.removeprefix(TYPE_PREFIX)


def alert_line(headers: Mapping[str, str], value: Mapping[str, Any]) -> str | None:
    """The alert line for one event, or None when the event is not worth an alert."""
    ce_type = event_type(headers)
    common = f"company={value.get('companyHandle')} job={value.get('jobHandle')}"
    tail = f"at={value.get('observedAt')} id={headers.get('ce_id')}"
    if ce_type == "job.completed" and value.get("outcome") == "failed":
        return failed_line(value, tail)
    if ce_type == "job.stalled":
        status = value.get("status") or {}
        stalled = value.get("stalledForS")
        stalled_s = round(stalled) if isinstance(stalled, int | float) else "?"
        return (
            f"ALERT job_stalled {common} state={status.get('state')} "
            f"progress={status.get('progress')} no_progress_for_s={stalled_s} "
            f"message={status.get('progressMessage')!r} {tail}"
        )
    return None


def failed_line(value: Mapping[str, Any], tail: str) -> str:
    """``job_failed``: which job (name, type), how long it ran, how many errors, the first one.

    ``job`` and ``first_error`` are JSON-quoted (names and messages hold spaces and quotes);
    ``errors`` is the job log's error total, else its file error count; ``first_error`` is left
    out when the completion carries no messages (the look-up failed).
    """
    messages = value.get("logMessages") or {}
    counts = value.get("counts") or {}
    name = json.dumps(
        value.get("jobName") or value.get("originalName") or value.get("jobHandle"),
        ensure_ascii=False,
    )
    duration = value.get("durationS")
    errors = messages.get("errorTotal", counts.get("fileError", "?"))
    line = (
        f"ALERT job_failed  company={value.get('companyHandle')} job={name} "
        f"type={value.get('jobType') or '?'} "
        f"duration={f'{duration:.0f}s' if isinstance(duration, int | float) else '?'} "
        f"errors={errors}"
    )
    first = (messages.get("errors") or [None])[0]
    if first:
        text = first.get("message", "")
        if first.get("assetName"):
            text = f"{text} (asset {first['assetName']})"
        line += f" first_error={json.dumps(text, ensure_ascii=False)}"
    return f"{line} handle={value.get('jobHandle')} {tail}"


def emit(line: str) -> None:
    """Deliver one alert (here: print it; a real hook would page someone)."""
    print(line, flush=True)


async def consume(
    args: argparse.Namespace, stop: asyncio.Event, deliver: Callable[[str], None] = emit
) -> int:
    """Read the state topic until stopped or a limit is reached; return the exit status."""
    topic = f"{args.topic_prefix}.jobs.state"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        print(f"alert_consumer: cannot reach Kafka at {args.bootstrap}: {exc}", file=sys.stderr)
        await consumer.stop()
        return 1
    seen = SeenIds(args.dedupe_window)
    read = 0
    last_record = time.monotonic()
    try:
        while not stop.is_set():
            if args.max_messages is not None and read >= args.max_messages:
                break
            if args.timeout is not None and time.monotonic() - last_record >= args.timeout:
                break
            limit = None if args.max_messages is None else args.max_messages - read
            batch = await consumer.getmany(timeout_ms=200, max_records=limit)
            for records in batch.values():
                for record in records:
                    read += 1
                    last_record = time.monotonic()
                    handle_record(record.headers, record.value, seen, deliver)
            if batch:
                await consumer.commit()  # after the alerts went out: at-least-once
    finally:
        await consumer.stop()
    return 0


def handle_record(
    raw_headers: Sequence[tuple[str, bytes]],
    raw_value: bytes | None,
    seen: SeenIds,
    deliver: Callable[[str], None],
) -> None:
    """Alert on one record unless it is a tombstone, not alert-worthy, or a duplicate."""
    if raw_value is None:
        return
    headers = {k: v.decode("utf-8", "replace") for k, v in raw_headers}
    try:
        value = json.loads(raw_value)
    except ValueError:
        print(f"alert_consumer: skipped a record that is not JSON: {headers}", file=sys.stderr)
        return
    line = alert_line(headers, value)
    if line is not None and seen.add(headers.get("ce_id", line)):
        deliver(line)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic-prefix", default="ips", help="the streamer's kafka.topic_prefix")
    parser.add_argument("--group-id", default="ips-alerts", help="consumer group id")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="without committed offsets, start at the earliest record instead of the end",
    )
    parser.add_argument("--max-messages", type=int, default=None, help="stop after N records")
    parser.add_argument(
        "--timeout", type=float, default=None, help="stop after this many idle seconds"
    )
    parser.add_argument(
        "--dedupe-window", type=int, default=100_000, help="event ids remembered for dedupe"
    )
    return parser.parse_args(argv)


async def main(argv: Sequence[str] | None = None) -> int:
    """Run until a limit, Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    return await consume(args, stop)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
