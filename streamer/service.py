"""The one owner of the streamer's lifecycle: start-up, the company loops, and a bounded shutdown.

Start-up order matters for the delivery promise: the transactional producer starts first (fencing a
predecessor and aborting its open transaction), then the checkpoint topic is read to its end, and
only then do the company loops poll and diff against that restored state.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import structlog
from aiohttp import web
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from streamer.completion_context import ContextSettings
from streamer.config import Settings
from streamer.diff import DiffSettings
from streamer.encode import SCHEMA_ID_BASE, Contract, TopicNames
from streamer.ips import IpsClient, IpsSettings
from streamer.kafka import (
    CommitStats,
    FencedError,
    Publisher,
)
from streamer.kafka_access import wait_for_access
from streamer.log_details import LogDetailsPolicy
from streamer.metrics import Metrics
from streamer.poller import CompanyPoller, PollSettings, company_source
from streamer.reconcile import CompanyLedger, ReconcileSettings
from streamer.reconciler import ReconcilePolicy
from streamer.redacting_source import RedactingSource
from streamer.restore import CompanyStates, restore_state
from streamer.retry import Backoff, Stopped, sleep_or_stop, until_stopped
from streamer.shards import ShardCoordinator, ShardOwner, ShardPlan, companies_by_shard
from streamer.status import CommitWatch, CompanyStatus, ServiceStatus
from streamer.supervisor import Ending, Failure, Supervisor
from streamer.topics import TopicGuard, announce, check_topics, ensure_topics
from streamer.web import build_web_app

log = structlog.get_logger("streamer.service")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_FENCED = 3
EXIT_DRAIN_TIMEOUT = 4
EXIT_FORCED = 130

#: After a second signal, how long the producer and HTTP cleanup may take before a hard exit.
FORCED_CLEANUP_S = 3.0
#: Retry policy of the start-up steps (WSDL, topics) while IPS or Kafka are not there yet.
START_BACKOFF = Backoff(initial_s=1.0, max_s=30.0, jitter=0.2)

_T = TypeVar("_T")

#: A company loop's wake-ups fall on a grid of this share of its interval (50 ms at 5 s):
#: the companies due in one slot wake together (timer coalescing, see sleep_or_stop). A cycle
#: starts at most one slot late; the spread over the interval stays (100 slots).
WAKE_GRID_SHARE = 0.01


def utcnow() -> datetime:
    """The wall clock, timezone-aware (the one place the service reads it)."""
    return datetime.now(UTC)


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when ``use_uvloop`` (``runtime.uvloop``) and it is installed; None
    for asyncio's own loop (``asyncio.Runner``'s ``loop_factory``)."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a runtime dependency, absent only if removed
        return None
    return uvloop.new_event_loop


def ips_settings_for(cfg: Settings, company_handle: str) -> IpsSettings:
    """The IPS client settings of one company (its effective credentials)."""
    user, password = cfg.credentials_for(company_handle)
    return IpsSettings(
        wsdl=cfg.ips.wsdl_location(),
        endpoint=cfg.ips.endpoint,
        user=user,
        password=password,
        app_name=cfg.ips.app_name,
        app_version=cfg.ips.app_version,
        locale=cfg.ips.locale,
        auth=cfg.ips.auth,
        timeout_s=cfg.ips.timeout_s,
        verify_tls=cfg.ips.verify_tls,
        ca_file=str(cfg.ips.ca_file) if cfg.ips.ca_file else None,
        include_waiting_jobs=cfg.ips.include_waiting_jobs,
        max_reply_bytes=cfg.ips.max_reply_bytes,
    )


def reconcile_policy(cfg: Settings) -> ReconcilePolicy | None:
    """The reconciliation policy of ``[completion]``; None when it is turned off."""
    c = cfg.completion
    if not c.reconcile:
        return None
    return ReconcilePolicy(
        interval_s=c.reconcile_interval_s,
        rules=ReconcileSettings(
            overlap_s=c.reconcile_overlap_s,
            delay_s=c.reconcile_delay_s,
            lookback_s=c.lookback_s,
            max_rows=c.reconcile_max_rows,
            # The ledger is one checkpoint record: it must stay well below the record limit
            # (an entry is a job handle and a number, about 100 bytes).
            max_reported=max(100, cfg.kafka.max_record_bytes // 200),
        ),
    )


def schema_base_url(cfg: Settings, http_port: int | None, fqdn: Callable[[], str]) -> str:
    """Where ``ce_dataschema`` points: ``events.schema_base_url``, else this daemon's own
    ``/schemas/`` endpoint, else (HTTP server off) the schemas' canonical ids.

    The host of the own endpoint is ``http.host`` when the server listens on that one address
    only (any other name would not answer), the machine's fully qualified name when it listens
    on every address.
    """
    if cfg.events.schema_base_url:
        return cfg.events.schema_base_url
    if not cfg.http.enabled or http_port is None:
        return SCHEMA_ID_BASE
    host = cfg.http.host
    if host in ("", "0.0.0.0", "::"):
        host = fqdn()
    with_port = f"[{host}]" if _is_ipv6(host) else host
    return f"http://{with_port}:{http_port}/schemas/"


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def log_details_policy(cfg: Settings) -> LogDetailsPolicy:
    """How completions read their job log messages (``[completion]``)."""
    c = cfg.completion
    return LogDetailsPolicy(
        settings=ContextSettings(
            max_messages=c.max_log_messages, max_message_chars=c.max_log_message_chars
        ),
        max_lookups=c.max_log_lookups,
        timeout_s=c.log_messages_timeout_s,
    )


def poll_settings(cfg: Settings, interval: float) -> PollSettings:
    """What a company loop polling every ``interval`` seconds takes from the settings; its
    wake-ups fall on a grid of :data:`WAKE_GRID_SHARE` of the interval."""
    return PollSettings(
        interval_s=interval,
        jitter=cfg.poll.jitter,
        backoff_initial_s=cfg.poll.backoff_initial_s,
        backoff_max_s=cfg.poll.backoff_max_s,
        auth_backoff_s=cfg.poll.auth_backoff_s,
        failures_before_degraded=cfg.poll.failures_before_degraded,
        heartbeat=cfg.kafka.heartbeat,
        heartbeat_every_s=cfg.heartbeat.every_s,
        cycle_lines=cfg.log.cycles == "info",
        summary_every_s=cfg.log.summary_every_s,
        max_record_bytes=cfg.kafka.max_record_bytes,
        wake_grid_s=interval * WAKE_GRID_SHARE,
    )


def reconcile_for(policy: ReconcilePolicy, interval_s: float) -> ReconcilePolicy:
    """``policy`` for a company polled every ``interval_s``: a pass may hold a cycle that long."""
    return replace(policy, max_pass_s=max(policy.max_pass_s, interval_s))


class Service:
    """Runs the streamer for a validated configuration."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_cycles: int | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.max_cycles = max_cycles
        self.clock = clock
        self.stop_event = asyncio.Event()
        self.status = ServiceStatus(started_at=clock(), ready_factor=settings.poll.ready_factor)
        self.metrics = Metrics(self.status)
        self.topics = TopicNames.with_prefix(settings.kafka.topic_prefix)
        self.http_port: int | None = None
        #: Set once the HTTP server is bound (the default schema URL names its port).
        self.contract = Contract(schema_base_url(settings, None, socket.getfqdn))
        self._signals = 0
        self._forced = False
        self._order = {c.handle: i for i, c in enumerate(settings.companies)}
        self._main: asyncio.Task[int] | None = None

    def request_stop(self) -> None:
        """Begin a graceful drain: loops finish their cycle, commit, and return.

        A second request stops waiting: the run is cancelled, the producer and the HTTP client
        are closed within :data:`FORCED_CLEANUP_S`, and the process exits with 130.
        """
        self._signals += 1
        if self._signals > 1:
            self._force()
            return
        log.info("shutdown_requested", drain_timeout_s=self.settings.shutdown.drain_timeout_s)
        self.status.stopping = True
        self.stop_event.set()

    def _force(self) -> None:
        log.error("forced_exit", reason="second signal", cleanup_s=FORCED_CLEANUP_S)
        self._forced = True
        self.stop_event.set()
        if self._main is not None and not self._main.done():
            self._main.cancel()
        # Cleanup has a bound: whatever hangs past it is left to the operating system.
        asyncio.get_running_loop().call_later(FORCED_CLEANUP_S, os._exit, EXIT_FORCED)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT drain; a second one forces a bounded cleanup and exit 130."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self) -> int:
        """Run until stopped (or ``max_cycles`` per company); return the process exit code."""
        self._main = asyncio.current_task()
        try:
            return await self._run()
        except asyncio.CancelledError:
            if self._forced:
                return EXIT_FORCED
            raise

    async def _run(self) -> int:
        cfg = self.settings
        self.metrics.info.set(1)
        kafka_kwargs = cfg.kafka.client_kwargs()
        supervisor = Supervisor(self.stop_event)
        async with AsyncExitStack() as stack:
            # Runs last on the way out: no task outlives the resources it uses.
            stack.push_async_callback(supervisor.close)
            if cfg.http.enabled:
                # First, so that /healthz and /readyz answer while IPS or Kafka are not there yet.
                bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                supervisor.service("http", self._serve_http(bound))
                self.http_port = await bound
            self.contract = Contract(schema_base_url(cfg, self.http_port, socket.getfqdn))
            log.info("event_contract", schema_base_url=self.contract.schema_base_url)
            # TLS verification is chosen per request by the IPS client.
            connector = aiohttp.TCPConnector(
                limit=max(16, cfg.poll.max_concurrent_polls + cfg.poll.job_log_concurrency)
            )
            session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            clients = await self._with_retry(lambda: self._ips_clients(session), "load_wsdl")
            if clients is None:
                return EXIT_OK
            # Names a refused Kafka login (aiokafka reports it as "unable to bootstrap").
            auth_wait_s = cfg.poll.auth_backoff_s
            if not await wait_for_access(kafka_kwargs, self.stop_event, auth_backoff_s=auth_wait_s):
                return EXIT_OK
            if cfg.kafka.create_topics:
                created = await self._with_retry(
                    lambda: ensure_topics(
                        kafka_kwargs,
                        self.topics,
                        cfg.kafka.partitions,
                        cfg.kafka.replication_factor,
                        cfg.kafka.shards,
                    ),
                    "create_topics",
                )
                if created is None:
                    return EXIT_OK
                if created:
                    log.info("topics_created", topics=created)
            checked = await self._with_retry(
                lambda: check_topics(
                    kafka_kwargs, self.topics, cfg.kafka.partitions, cfg.kafka.shards
                ),
                "check_topics",
            )
            if checked is None:
                return EXIT_OK
            if not announce(checked, create_topics=cfg.kafka.create_topics):
                return EXIT_CONFIG
            coordinator = ShardCoordinator(
                consumer_kwargs=self._group_kwargs(kafka_kwargs),
                shards_topic=self.topics.shards,
                plans=self._plans(clients, kafka_kwargs),
                # Below the rebalance timeout (= session timeout): the group waits for us.
                handover_timeout_s=min(
                    cfg.shutdown.drain_timeout_s, 0.8 * cfg.kafka.session_timeout_s
                ),
                on_change=self._shards_changed,
                on_taken=self._shard_taken,
                on_step_down=self._shard_stepped_down,
                on_rebalance=self.metrics.rebalances.inc,
            )
            # On a forced exit (second signal) the shards are let go without a drain.
            stack.push_async_callback(coordinator.stop, 0.0)
            if await self._with_retry(coordinator.start, "join_group") is None:
                return EXIT_OK
            self.status.kafka_ok = True  # the group coordinator answered
            supervisor.service("shard-group", coordinator.run(self.stop_event))
            supervisor.worker("lifetime", self._lifetime(coordinator))
            log.info(
                "service_started",
                companies=len(cfg.companies),
                shards=cfg.kafka.shards,
                group_id=cfg.kafka.effective_group_id,
                group_instance_id=cfg.kafka.effective_group_instance_id,
                http_port=self.http_port,
                event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
            )
            ending = await supervisor.run(cfg.shutdown.drain_timeout_s)
            # Company loops finish their cycle and commit, then each shard's producer closes.
            drained = await coordinator.stop()
            if ending is Ending.FINISHED and not drained:
                log.error("drain_timeout", timeout_s=cfg.shutdown.drain_timeout_s)
                ending = Ending.DRAIN_TIMEOUT
            await supervisor.close()
            return self._exit_code(ending, supervisor.failure)
        return EXIT_OK  # pragma: no cover - the stack always returns above

    async def _lifetime(self, coordinator: ShardCoordinator) -> None:
        """Until stopped; with ``max_cycles``, until every owned company ran its cycles."""
        if self.max_cycles is None:
            await self.stop_event.wait()
            return
        while not coordinator.finished():
            if await sleep_or_stop(self.stop_event, 0.1):
                return

    def _group_kwargs(self, kafka_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The shard group's consumer settings."""
        k = self.settings.kafka
        session_ms = int(k.session_timeout_s * 1000)
        return {
            **kafka_kwargs,
            "group_id": k.effective_group_id,
            "group_instance_id": k.effective_group_instance_id,
            "session_timeout_ms": session_ms,
            "heartbeat_interval_ms": max(1000, session_ms // 5),
            "rebalance_timeout_ms": session_ms,
            "auto_offset_reset": "latest",
            # Not sticky: a sticky-assignor group was reported stuck rebalancing for ~45 min.
            "partition_assignment_strategy": (RoundRobinPartitionAssignor,),
        }

    def _plans(
        self, clients: dict[str, IpsClient], kafka_kwargs: dict[str, Any]
    ) -> dict[int, ShardPlan]:
        """How to run each shard that has companies."""
        cfg = self.settings
        by_shard = companies_by_shard([c.handle for c in cfg.companies], cfg.kafka.shards)
        guard = TopicGuard(
            kafka_kwargs,
            self.topics,
            partitions=cfg.kafka.partitions,
            replication_factor=cfg.kafka.replication_factor,
            create_topics=cfg.kafka.create_topics,
            shards=cfg.kafka.shards,
        )
        log_sem = asyncio.Semaphore(cfg.poll.job_log_concurrency)
        poll_sem = asyncio.Semaphore(cfg.poll.max_concurrent_polls)

        def plan(shard: int, handles: list[str]) -> ShardPlan:
            def publisher(stop: asyncio.Event) -> Publisher:
                return Publisher(
                    kafka_kwargs,
                    f"{cfg.kafka.transactional_id}-shard-{shard}",
                    max_batch_records=cfg.kafka.max_batch_records,
                    commit_interval_s=cfg.kafka.commit_interval_s,
                    # A commit still pending after two request timeouts means Kafka is gone:
                    # its outcome is uncertain; the checkpoint is re-read before going on.
                    commit_timeout_s=max(5.0, 2 * cfg.kafka.request_timeout_s),
                    on_commit=self._on_commit,
                    on_failure=self._on_kafka_failure,
                    checkpoint_topic=self.topics.checkpoint,
                    checkpoint_partition=shard,
                    after_failure=guard.after_failure,
                )

            # The shard's reconciliation ledgers, read by restore() for the loops it precedes.
            ledgers: dict[str, CompanyLedger] = {}

            async def restore() -> CompanyStates:
                restored = await restore_state(
                    kafka_kwargs, self.topics.checkpoint, partitions=[shard]
                )
                states = restored.states
                ledgers.clear()
                ledgers.update(restored.ledgers)
                self.status.restored_jobs += sum(len(s) for s in states.values())
                log.info(
                    "state_restored",
                    shard=shard,
                    jobs=sum(len(s) for s in states.values()),
                    companies=len(states),
                    ledgers=len(ledgers),
                )
                return states

            def loops(
                publisher: Publisher, states: CompanyStates, stop: asyncio.Event
            ) -> list[tuple[str, Coroutine[Any, Any, None]]]:
                out: list[tuple[str, Coroutine[Any, Any, None]]] = []
                for handle in handles:
                    poller = self._poller(
                        handle,
                        clients[handle],
                        publisher,
                        states,
                        stop,
                        log_sem,
                        poll_sem,
                        ledgers.get(handle),
                    )
                    out.append((handle, poller.run(self.max_cycles)))
                return out

            return ShardPlan(shard, tuple(handles), publisher, restore, loops)

        return {shard: plan(shard, handles) for shard, handles in by_shard.items()}

    def _shards_changed(self, owners: dict[int, ShardOwner]) -> None:
        owned = {h for o in owners.values() for h in o.plan.companies}
        for handle in list(self.status.companies):
            if handle not in owned:
                del self.status.companies[handle]
        self.status.shards = sorted(owners)
        self.metrics.shards_owned.set(len(owners))

    def _shard_taken(self, shard: int, seconds: float) -> None:
        self.metrics.takeovers.observe(seconds)

    def _shard_stepped_down(self, shard: int) -> None:
        self.metrics.shard_step_downs.inc()

    def _exit_code(self, ending: Ending, failure: Failure | None) -> int:
        """The documented exit code of how the supervised run ended."""
        if ending is Ending.FINISHED:
            log.info("drained" if self.stop_event.is_set() else "finished")
            return EXIT_OK
        if ending is Ending.DRAIN_TIMEOUT:
            return EXIT_DRAIN_TIMEOUT
        self.stop_event.set()
        assert failure is not None
        if isinstance(failure.error, FencedError):
            log.error("fenced", error=str(failure.error))
            print(
                f"streamer: stopped: {failure.error}. Give each running instance its own "
                "kafka.transactional_id.",
                file=sys.stderr,
                flush=True,
            )
            return EXIT_FENCED
        print(
            f"streamer: stopped: task {failure.task} failed: {failure.error!r}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_ERROR

    async def _with_retry(self, make: Callable[[], Awaitable[_T]], what: str) -> _T | None:
        """``make()`` until it succeeds; None if stopped first. Start-up waits, never crashes."""
        failures = 0
        while not self.stop_event.is_set():
            try:
                return await until_stopped(self.stop_event, make())
            except Stopped:
                return None
            except Exception as exc:  # Kafka or the WSDL not reachable yet: wait for it.
                failures += 1
                delay = START_BACKOFF.delay(failures)
                log.warning(f"{what}_failed", error=repr(exc), retry_in_s=round(delay, 2))
                await sleep_or_stop(self.stop_event, delay)
        return None

    async def _ips_clients(self, session: aiohttp.ClientSession) -> dict[str, IpsClient]:
        """One IpsClient per distinct credential set (the WSDL is parsed once per set)."""
        cfg = self.settings
        by_creds: dict[tuple[str, str], IpsClient] = {}
        clients: dict[str, IpsClient] = {}
        for company in cfg.companies:
            user, password = cfg.credentials_for(company)
            key = (user, password)
            if key not in by_creds:
                by_creds[key] = await IpsClient.create(
                    ips_settings_for(cfg, company.handle), session
                )
            clients[company.handle] = by_creds[key]
        return clients

    def _poller(
        self,
        handle: str,
        client: IpsClient,
        publisher: Publisher,
        states: CompanyStates,
        stop: asyncio.Event,
        log_sem: asyncio.Semaphore,
        poll_sem: asyncio.Semaphore,
        ledger: CompanyLedger | None = None,
    ) -> CompanyPoller:
        """The loop of one company of an owned shard (its status shows in /status)."""
        cfg = self.settings
        reconcile = reconcile_policy(cfg)
        company = next(c for c in cfg.companies if c.handle == handle)
        interval = cfg.interval_for(company)
        status = CompanyStatus(handle, interval)
        companies = self.status.companies
        companies[handle] = status
        # Shards are taken over in any order: /status keeps the configured order.
        order = self._order
        self.status.companies = dict(sorted(companies.items(), key=lambda kv: order[kv[0]]))
        privacy = cfg.privacy.policy
        return CompanyPoller(
            handle=handle,
            # [privacy] applies to every reply before the poller reads it.
            client=client if privacy.keeps else RedactingSource(client, privacy),
            publisher=CommitWatch(publisher, status, self.clock),
            state=dict(states.get(handle, {})),
            poll=poll_settings(cfg, interval),
            diff_settings=DiffSettings(
                progress_min_step=cfg.progress.min_step,
                progress_min_interval_s=cfg.progress.min_interval_s,
                stall_after_s=cfg.stall.after_s or None,
                poll_interval_s=interval,
                log_max_attempts=cfg.completion.log_max_attempts,
            ),
            topics=self.topics,
            source=company_source(client.endpoint, handle),
            contract=self.contract,
            metrics=self.metrics,
            status=status,
            clock=self.clock,
            stop=stop,
            log_lookups=log_sem,
            polls=poll_sem,
            reconcile=None if reconcile is None else reconcile_for(reconcile, interval),
            ledger=ledger,
            job_filter=cfg.filter.for_company(handle),
            privacy=privacy,
            log_details=log_details_policy(cfg),
        )

    async def _serve_http(self, bound: asyncio.Future[int]) -> None:
        """Serve health, readiness, metrics and status until cancelled (a supervised service)."""
        cfg = self.settings
        app = build_web_app(self.status, self.metrics, self.clock, cfg.redacted())
        runner = web.AppRunner(app, access_log=None)
        try:
            await runner.setup()
            site = web.TCPSite(runner, cfg.http.host, cfg.http.port)
            await site.start()
            sockets = getattr(site._server, "sockets", None) or []
            bound.set_result(sockets[0].getsockname()[1] if sockets else cfg.http.port)
            await asyncio.Event().wait()  # until cancelled
        except Exception as exc:
            if not bound.done():
                bound.set_exception(exc)
            raise
        finally:
            await runner.cleanup()

    def _on_commit(self, stats: CommitStats) -> None:
        self.status.kafka_ok = True
        self.status.last_commit_at = self.clock()
        self.status.last_commit_error = None
        self.metrics.commits.inc()
        self.metrics.records.inc(stats.records)
        self.metrics.commit_latency.observe(stats.seconds)

    def _on_kafka_failure(self, message: str) -> None:
        self.status.kafka_ok = False
        self.status.last_commit_error = message
        for c in self.status.companies.values():
            c.state = "waiting_for_kafka"
