"""The topics of the event contract: their settings, creating them, checking existing ones, and
noticing one that was deleted while the daemon runs.

A pre-created topic is the operator's, but some of its settings decide whether the delivery promise
holds: the checkpoint topic must be compacted (else old job records are deleted and a restart
forgets those jobs), and the job topics should have the partition count the config states (else a
job's key lands on another partition than consumers who read the config expect).
:func:`evaluate` turns what the broker says into typed findings (pure); :func:`check_topics` asks
the broker; :func:`announce` logs them and says whether the daemon may start.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from streamer.encode import TopicNames

log = structlog.get_logger("streamer.topics")

__all__ = [
    "Severity",
    "TopicCheck",
    "TopicFinding",
    "TopicGuard",
    "TopicSpec",
    "TopicState",
    "TopicsMissing",
    "announce",
    "check_topics",
    "ensure_topics",
    "evaluate",
    "topic_specs",
]

#: Kafka's "no limit" for retention.ms / retention.bytes.
UNLIMITED = "-1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the streamer needs, with its settings."""

    name: str
    config: Mapping[str, str] = field(default_factory=dict)
    #: Fixed partition count (the private topics: one partition per shard); None = configured.
    partitions: int | None = None


_COMPACT = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}


def topic_specs(topics: TopicNames, shards: int = 1) -> tuple[TopicSpec, ...]:
    """The topics of the event contract, then the private ones, with their settings."""
    return (
        TopicSpec(topics.state),
        TopicSpec(topics.progress, {"retention.ms": str(3 * 24 * 3600 * 1000)}),
        TopicSpec(topics.latest, _COMPACT),
        TopicSpec(topics.heartbeat, {"retention.ms": str(24 * 3600 * 1000)}),
        TopicSpec(topics.notifications),
        TopicSpec(topics.checkpoint, _COMPACT, partitions=shards),
        # No records: its partitions are the shards the instances' group shares.
        TopicSpec(topics.shards, {"retention.ms": str(3600 * 1000)}, partitions=shards),
    )


class TopicsMissing(Exception):
    """Topics of the contract are gone and the streamer may not create them."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        super().__init__(
            f"kafka topics missing: {', '.join(self.names)}; kafka.create_topics is off, so the "
            "streamer cannot recreate them: create them (see `streamer check`) and restart"
        )


async def _create(
    admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], partitions: int, replication: int
) -> None:
    """Create ``specs``; one that exists already is fine (another instance was quicker)."""
    new = [
        NewTopic(s.name, s.partitions or partitions, replication, topic_configs=dict(s.config))
        for s in specs
    ]
    response = await admin.create_topics(new)
    # The broker answers per topic instead of raising: an invalid replication factor or a
    # policy violation would otherwise pass unnoticed and every commit would fail later.
    for name, code, *rest in getattr(response, "topic_errors", ()):
        error = for_code(code)
        if code != 0 and error is not TopicAlreadyExistsError:
            detail = rest[0] if rest and rest[0] else error.__name__
            raise error(f"cannot create topic {name}: {detail}")


async def ensure_topics(
    client_kwargs: Mapping[str, Any],
    topics: TopicNames,
    partitions: int,
    replication_factor: int,
    shards: int = 1,
) -> list[str]:
    """Create the missing topics; return the names created."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in topic_specs(topics, shards) if s.name not in existing]
        if missing:
            await _create(admin, missing, partitions, replication_factor)
        return [s.name for s in missing]
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class TopicState:
    """What the broker says about one existing topic."""

    name: str
    partitions: int
    config: Mapping[str, str]


class Severity(StrEnum):
    """An error refuses to start; a warning is logged and the daemon runs."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class TopicFinding:
    """One setting of one topic that differs from what the contract needs."""

    severity: Severity
    topic: str
    setting: str
    message: str


@dataclass(frozen=True, slots=True)
class TopicCheck:
    """The findings about the contract's topics; ``missing`` lists topics that do not exist."""

    findings: tuple[TopicFinding, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[TopicFinding, ...]:
        """Findings that must stop the daemon from starting."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[TopicFinding, ...]:
        """Findings worth an operator's attention that do not break the promise."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)


def evaluate(
    states: Mapping[str, TopicState], topics: TopicNames, partitions: int, shards: int = 1
) -> tuple[TopicFinding, ...]:
    """Compare existing topics with the contract (pure): compaction and retention of the two
    checkpoint topics, partitions of the job topics and of the per-shard topics. Topics absent
    from ``states`` are not judged here."""
    found: list[TopicFinding] = []
    for checkpoint in (states.get(topics.latest), states.get(topics.checkpoint)):
        if checkpoint is not None:
            found.extend(_compaction(checkpoint))
    for name in (topics.state, topics.progress, topics.latest):
        state = states.get(name)
        if state is not None and state.partitions != partitions:
            found.append(
                TopicFinding(
                    Severity.WARNING,
                    name,
                    "partitions",
                    f"topic {name}: {state.partitions} partitions, but kafka.partitions is "
                    f"{partitions}: job keys land on other partitions than the config says",
                )
            )
    for name in (topics.checkpoint, topics.shards):
        state = states.get(name)
        if state is not None and state.partitions != shards:
            found.append(
                TopicFinding(
                    Severity.ERROR,
                    name,
                    "partitions",
                    f"topic {name}: {state.partitions} partitions, but kafka.shards is {shards}: "
                    "shard p is partition p of this topic; set kafka.shards to "
                    f"{state.partitions} or recreate the topic",
                )
            )
    return tuple(found)


def _compaction(topic: TopicState) -> list[TopicFinding]:
    policy = topic.config.get("cleanup.policy", "delete")
    policies = {p.strip() for p in policy.split(",")}
    if "compact" not in policies:
        return [
            TopicFinding(
                Severity.ERROR,
                topic.name,
                "cleanup.policy",
                f"topic {topic.name}: cleanup.policy={policy}, but the checkpoint topic "
                "needs cleanup.policy=compact (else job records are deleted and a restart "
                "forgets those jobs)",
            )
        ]
    found = []
    if "delete" in policies:
        for key in ("retention.ms", "retention.bytes"):
            value = topic.config.get(key, UNLIMITED)
            if value != UNLIMITED:
                found.append(
                    TopicFinding(
                        Severity.WARNING,
                        topic.name,
                        key,
                        f"topic {topic.name}: cleanup.policy={policy} with {key}={value}: "
                        "checkpoint records past that limit are deleted and a restart "
                        f"forgets those jobs; use {key}=-1 or cleanup.policy=compact",
                    )
                )
    return found


async def describe(client_kwargs: Mapping[str, Any], names: Sequence[str]) -> dict[str, TopicState]:
    """Partitions (metadata) and configuration (``describe_configs``) of the named topics that
    exist; absent ones are left out."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        metadata = await admin.describe_topics(list(names))
        counts = {t["topic"]: len(t["partitions"]) for t in metadata if t["error_code"] == 0}
        if not counts:
            return {}
        resources = [ConfigResource(ConfigResourceType.TOPIC, n, None) for n in counts]
        configs: dict[str, dict[str, str]] = {}
        for response in await admin.describe_configs(resources):
            for code, message, _type, name, entries, *_ in response.resources:
                if code != 0:
                    raise for_code(code)(f"describe_configs {name}: {message}")
                configs[name] = {e[0]: e[1] for e in entries if e[1] is not None}
        return {n: TopicState(n, c, configs.get(n, {})) for n, c in counts.items()}
    finally:
        await admin.close()


async def check_topics(
    client_kwargs: Mapping[str, Any], topics: TopicNames, partitions: int, shards: int = 1
) -> TopicCheck:
    """Describe the contract's topics on the broker and evaluate them."""
    names = [s.name for s in topic_specs(topics, shards)]
    states = await describe(client_kwargs, names)
    return TopicCheck(
        findings=evaluate(states, topics, partitions, shards),
        missing=tuple(n for n in names if n not in states),
    )


def announce(check: TopicCheck, *, create_topics: bool) -> bool:
    """Log the findings of the start-up check; False (and one line on stderr per error) when the
    daemon must not start: a wrong checkpoint topic, or missing topics it may not create."""
    for finding in check.warnings:
        log.warning(
            "topic_check_warning",
            topic=finding.topic,
            setting=finding.setting,
            problem=finding.message,
        )
    errors = [f.message for f in check.errors]
    if check.missing and not create_topics:
        errors.append(str(TopicsMissing(check.missing)))
    for message in errors:
        log.error("topic_check_failed", problem=message)
        print(f"streamer: refusing to start: {message}", file=sys.stderr, flush=True)
    return not errors


class TopicGuard:
    """After a failed commit: are the contract's topics still there?

    A topic deleted while the daemon runs makes every transaction fail. With
    ``kafka.create_topics`` on, the guard recreates what is missing (logged as
    ``topic_recreated``); with it off, it raises :class:`TopicsMissing`, which should stop the
    daemon with that message rather than retry forever.
    """

    def __init__(
        self,
        client_kwargs: Mapping[str, Any],
        topics: TopicNames,
        *,
        partitions: int,
        replication_factor: int,
        create_topics: bool,
        shards: int = 1,
    ) -> None:
        self._kwargs = dict(client_kwargs)
        self._specs = topic_specs(topics, shards)
        self._partitions = partitions
        self._replication = replication_factor
        self._create = create_topics

    async def after_failure(self) -> None:
        """Recreate missing topics, or raise :class:`TopicsMissing` when that is not allowed.

        Returns quietly when the broker cannot be asked: that is an outage, which the publisher
        already waits out.
        """
        admin = AIOKafkaAdminClient(**self._kwargs)
        try:
            try:
                await admin.start()
                existing = set(await admin.list_topics())
            except (KafkaError, OSError, TimeoutError) as exc:
                log.debug("topic_guard_skipped", error=repr(exc))
                return
            missing = [s for s in self._specs if s.name not in existing]
            if not missing:
                return
            names = [s.name for s in missing]
            if not self._create:
                log.error("topics_missing", topics=names)
                raise TopicsMissing(names)
            try:
                await _create(admin, missing, self._partitions, self._replication)
            except (KafkaError, OSError, TimeoutError) as exc:
                # Logged, not raised: the next failed commit asks again.
                log.error("topic_recreate_failed", topics=names, error=repr(exc))
                return
            log.warning("topic_recreated", topics=names)
        finally:
            await admin.close()
