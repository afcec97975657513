"""``streamer check``: prove a configuration works before running it as a daemon.

Calls ``getActiveJobs`` once per company, connects to Kafka with the configured credentials (a
refused login is named as such, not as an unreachable broker) and checks the contract's topics
(missing ones, and the settings :func:`streamer.topics.evaluate` judges). It never starts a
transactional producer: that would fence a running instance that uses the same transactional id.
Last, it prints what will be streamed: each company's effective ``[filter]`` and the ``[privacy]``
policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp

from streamer.config import Settings
from streamer.encode import TopicNames
from streamer.filters import describe, screen
from streamer.ips import IpsClient, IpsError
from streamer.kafka_access import KafkaAuthenticationFailed, probe
from streamer.service import ips_settings_for
from streamer.topics import check_topics


async def run_check(settings: Settings, echo: Callable[[str], None]) -> bool:
    """Print a readable report; return True only if every check passed."""
    ok = True
    echo("configuration: ok")
    async with aiohttp.ClientSession() as session:
        clients: dict[tuple[str, str], IpsClient] = {}
        for company in settings.companies:
            user, password = settings.credentials_for(company)
            started = time.perf_counter()
            try:
                client = clients.get((user, password))
                if client is None:
                    client = await IpsClient.create(
                        ips_settings_for(settings, company.handle), session
                    )
                    clients[(user, password)] = client
                snap = await client.get_active_jobs(company.handle)
                ms = (time.perf_counter() - started) * 1000
                flt = settings.filter.for_company(company.handle)
                streamed = len(screen(flt, snap, {}).snapshot.jobs)
                shown = "" if flt.streams_every_type else f", {streamed} of them streamed"
                echo(f"ips {company.handle}: ok, {len(snap.jobs)} active jobs{shown} ({ms:.0f} ms)")
            except IpsError as exc:
                ok = False
                echo(f"ips {company.handle}: FAILED ({getattr(exc, 'kind', '?')}): {exc}")
            except Exception as exc:  # the WSDL could not even be loaded
                ok = False
                echo(f"ips {company.handle}: FAILED: {exc!r}")
    ok = await _check_kafka(settings, echo) and ok
    for line in filter_lines(settings):
        echo(line)
    echo("result: ok" if ok else "result: FAILED")
    return ok


def filter_lines(settings: Settings) -> list[str]:
    """What is streamed: each company's effective filter, and the privacy policy."""
    lines = []
    for company in settings.companies:
        own = (
            " (own [filter.companies] keys)" if company.handle in settings.filter.companies else ""
        )
        flt = settings.filter.for_company(company.handle)
        lines.append(f"filter {company.handle}: {describe(flt)}{own}")
    privacy = settings.privacy
    how = {
        "keep": "published as IPS sends it",
        "hash": f"published as hmac-sha256:<hex>, key from {privacy.hash_key_file}",
        "drop": 'published as ""',
    }[privacy.submit_user_email]
    lines.append(f"privacy: submitUserEmail {privacy.submit_user_email}: {how}")
    return lines


async def _check_kafka(settings: Settings, echo: Callable[[str], None]) -> bool:
    """Reach the broker with our credentials, then check the contract's topics on it."""
    topics = TopicNames.with_prefix(settings.kafka.topic_prefix)
    kw = dict(settings.kafka.client_kwargs())
    kw["request_timeout_ms"] = 10_000
    where = f"kafka {settings.kafka.bootstrap_servers}"
    try:
        await probe(kw)  # names a refused login, which aiokafka reports as "unable to bootstrap"
        checked = await check_topics(kw, topics, settings.kafka.partitions, settings.kafka.shards)
    except KafkaAuthenticationFailed as exc:
        echo(f"{where}: FAILED: {exc}")
        return False
    except Exception as exc:
        echo(f"{where}: FAILED: {exc!r}")
        return False
    echo(f"{where}: ok")
    ok = not checked.errors
    if checked.missing and not settings.kafka.create_topics:
        ok = False
        echo(f"kafka topics missing and kafka.create_topics is off: {', '.join(checked.missing)}")
    elif checked.missing:
        echo(f"kafka topics to be created at start: {', '.join(checked.missing)}")
    else:
        echo("kafka topics: all present")
    for finding in checked.findings:
        echo(f"kafka topics: {finding.severity.upper()}: {finding.message}")
    return ok
