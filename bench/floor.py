"""The floor loop: the streamer's I/O per company cycle with no product logic, and its CPU cost.

What one steady company cycle of ``streamer run`` cannot avoid, done as plainly as asyncio,
aiohttp, lxml and aiokafka allow, on the same event loop kind (uvloop when installed, as the
streamer's default), with the streamer's HTTP connection limit and producer settings:

* one task per company, each cycle at the same jittered interval, first polls spread over it;
* an aiohttp POST of the very ``getActiveJobs`` request the streamer sends (built by
  ``IpsClient.build_request``, same headers) to the same simulator, the whole reply read;
* ``lxml.etree.fromstring`` of the reply (no mapping, no diff);
* one record per cycle (a small JSON value keyed by the company) handed to one transactional
  ``AIOKafkaProducer`` with group commit: every cycle waiting at that moment shares one
  transaction, and each company waits for its commit before its next cycle, as the streamer does.

After ``--warmup`` seconds the process CPU time (all threads) and the cycles are counted for
``--seconds``; the result is printed as one JSON line. ``bench/end_to_end.py`` runs it against the
simulator it started, after the streamer's window, and prints its CPU per cycle beside the
streamer's.

    .venv/bin/python bench/floor.py --endpoint URL --bootstrap HOST:PORT --companies 1000
        [--interval 5] [--jitter 0.1] [--seconds 60] [--warmup 15] [--user U --password P]
        [--loop auto|asyncio]
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from lxml import etree


def _opt(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def event_loop_kind(wanted: str = "auto") -> str:
    """Install uvloop's policy when it is installed (the streamer's default) unless ``wanted``
    is ``asyncio``; name the loop."""
    if wanted == "asyncio":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


class GroupCommit:
    """One transactional producer; cycles waiting together share one transaction."""

    def __init__(self, producer: Any, topic: str, max_records: int = 20_000) -> None:
        self._producer = producer
        self._topic = topic
        self._max = max_records
        self._queue: asyncio.Queue[tuple[bytes, bytes, asyncio.Future[None]]] = asyncio.Queue()

    async def publish(self, key: bytes, value: bytes) -> None:
        """Commit one record; return once its transaction committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((key, value, done))
        await done

    async def run(self) -> None:
        """The commit loop (until cancelled)."""
        producer = self._producer
        while True:
            group = [await self._queue.get()]
            while len(group) < self._max and not self._queue.empty():
                group.append(self._queue.get_nowait())
            await producer.begin_transaction()
            futures = [await producer.send(self._topic, value=v, key=k) for k, v, _ in group]
            await asyncio.gather(*futures)
            await producer.commit_transaction()
            for _, _, done in group:
                if not done.done():
                    done.set_result(None)


async def company_loop(
    session: aiohttp.ClientSession,
    endpoint: str,
    payload: bytes,
    headers: dict[str, str],
    key: bytes,
    commits: GroupCommit,
    interval: float,
    jitter: float,
    counter: list[int],
) -> None:
    """Poll, parse, publish one record, wait for the commit; at the jittered interval."""
    await asyncio.sleep(random.uniform(0, interval))
    loop = asyncio.get_running_loop()
    next_due = loop.time()
    while True:
        async with session.post(endpoint, data=payload, headers=headers) as resp:
            body = await resp.read()
        root = etree.fromstring(body)
        value = b'{"company":"%s","elements":%d}' % (key, len(root))
        await commits.publish(key, value)
        counter[0] += 1
        next_due += interval * random.uniform(1 - jitter, 1 + jitter)
        await asyncio.sleep(max(0.0, next_due - loop.time()))


async def run(argv: list[str]) -> dict[str, Any]:
    """Run the floor loop and return its figures."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from streamer.ips import IpsClient, IpsSettings
    from streamer.kafka import Publisher

    endpoint = _opt(argv, "--endpoint", "")
    bootstrap = _opt(argv, "--bootstrap", "127.0.0.1:9092")
    companies = [f"c|{1001 + i}" for i in range(int(_opt(argv, "--companies", "1000")))]
    interval = float(_opt(argv, "--interval", "5"))
    jitter = float(_opt(argv, "--jitter", "0.1"))
    seconds = float(_opt(argv, "--seconds", "60"))
    warmup = float(_opt(argv, "--warmup", "15"))
    user = _opt(argv, "--user", "bench@example.com")
    password = _opt(argv, "--password", "bench-password")
    topic = f"floor{os.getpid()}"
    kwargs: dict[str, Any] = {"bootstrap_servers": bootstrap}
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    # The streamer's connection limit (service.py) and its producer settings (kafka.py).
    connector = aiohttp.TCPConnector(limit=72)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = await IpsClient.create(
            IpsSettings(endpoint=endpoint, user=user, password=password), session
        )
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"getActiveJobs"'}
        producer = Publisher(kwargs, f"{topic}-txn")._new_producer()
        await producer.start()
        commits = GroupCommit(producer, topic)
        committer = asyncio.create_task(commits.run())
        counter = [0]
        loops = []
        for c in companies:
            payload = client.build_request("getActiveJobs", companyHandle=c)
            args = (endpoint, payload, headers, c.encode(), commits, interval, jitter, counter)
            loops.append(asyncio.create_task(company_loop(session, *args)))
        try:
            await asyncio.sleep(warmup)
            cpu0, n0, t0 = time.process_time(), counter[0], time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, n1, t1 = time.process_time(), counter[0], time.monotonic()
        finally:
            for task in [*loops, committer]:
                task.cancel()
            await asyncio.gather(*loops, committer, return_exceptions=True)
            await producer.stop()
    cycles = n1 - n0
    return {
        "loop": "",
        "window_s": t1 - t0,
        "cycles": cycles,
        "cpu_s": cpu1 - cpu0,
        "cpu_ms_per_cycle": (cpu1 - cpu0) / cycles * 1000 if cycles else None,
        "expected_cycles": len(companies) * (t1 - t0) / interval,
    }


def main(argv: list[str]) -> None:
    """Run and print the figures as one JSON line."""
    kind = event_loop_kind(_opt(argv, "--loop", "auto"))
    result = asyncio.run(run(argv))
    result["loop"] = kind
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
