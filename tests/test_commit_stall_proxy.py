"""A commit whose answer stalls past the commit timeout (issue 9): no event is committed twice.

A dedicated broker advertises a proxy (:mod:`tests.kafka_proxy`) as its address, so every
connection of the daemon goes through it. Once the daemon commits steadily, the proxy holds the
responses to EndTxn requests for 8 s: the broker commits the transaction, the daemon's commit
timeout (max(5, 2 x ``kafka.request_timeout_s``) = 5 s) expires first, so the outcome is unknown
to it. It must re-initialise the producer, re-read the checkpoint and continue from what Kafka
really committed: a read_committed reader sees every ``ce_id`` once.

aiokafka gives up on a request after ``request_timeout_s`` (2 s here) and sends EndTxn again on
a new connection, which the coordinator answers at once for a transaction it already committed.
Holding only the first answer therefore does not reach the commit timeout; the uncertain-commit
test holds every EndTxn answer for 6 s from the first, so that the retries stall as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamer import localkafka
from streamer.encode import TopicNames
from tests.harness import Stack, log_records, read_topics, running_stack, wait_until
from tests.kafka_proxy import END_TXN, KafkaProxy, running_proxy

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

COMPANIES = ("c|1001", "c|1002")
HOLD_S = 8.0
#: Commit timeout = max(5, 2 x 2) = 5 s < HOLD_S.
REQUEST_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def proxied_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaProxy]:
    """A broker of its own, reachable only through a proxy that it advertises."""
    state = tmp_path_factory.mktemp("stall-kafka")
    broker_port = localkafka.free_port()
    with running_proxy(broker_port) as proxy:
        localkafka.start(state, broker_port, advertised_port=proxy.port)
        try:
            yield proxy
        finally:
            localkafka.stop(state)


def count(log: Path, event: str) -> int:
    """How many times the daemon logged ``event``."""
    return sum(r.get("event") == event for r in log_records(log))


@contextlib.contextmanager
def steady_stack(proxy: KafkaProxy, tmp: Path) -> Iterator[Stack]:
    """Simulator and daemon publishing through the proxy, after six committed cycles."""
    with running_stack(
        tmp,
        f"127.0.0.1:{proxy.port}",
        companies=COMPANIES,
        sim_args=("--jobs-per-company=3", "--speedup=20", "--seed=4"),
        interval_s=0.5,
        sections={"kafka": {"request_timeout_s": REQUEST_TIMEOUT_S}},
        timeout_s=120,
    ) as stack:
        wait_until(lambda: count(stack.log, "company_cycle") >= 6, 60, what="six cycles")
        yield stack


def commits_after(stack: Stack, index: int, cycles: int = 2) -> None:
    """Wait until every company committed ``cycles`` cycles logged after record ``index``."""

    def committed(company: str) -> bool:
        after = log_records(stack.log)[index:]
        done = [r for r in after if r.get("event") == "company_cycle"]
        return sum(1 for r in done if r.get("company") == company) >= cycles

    for company in COMPANIES:
        wait_until(lambda: committed(company), 60, what=f"{company} commits again")  # noqa: B023
    assert stack.streamer.proc.poll() is None


def assert_no_duplicate_ids(stack: Stack) -> None:
    """Every ce_id on the state and progress topics is there once (read_committed)."""
    topics = TopicNames.with_prefix(stack.prefix)
    raw = asyncio.run(read_topics(stack.bootstrap, [topics.state, topics.progress]))
    ids = Counter(dict(headers)["ce_id"].decode() for _, _, _, headers in raw)
    assert len(ids) > 10, "too few events to tell"
    assert [i for i, n in ids.items() if n > 1] == []


def test_end_txn_answers_stalled_past_the_commit_timeout_duplicate_nothing(
    proxied_broker: KafkaProxy, tmp_path: Path
) -> None:
    """EndTxn answered after the commit timeout: the commit is uncertain, the checkpoint is
    re-read, the daemon commits on, and no ce_id is in the topics twice."""
    proxy = proxied_broker
    with steady_stack(proxy, tmp_path) as stack:
        proxy.hold(END_TXN, HOLD_S, for_s=6.0)
        wait_until(
            lambda: count(stack.log, "checkpoint_reread") >= 1, 90, what="the checkpoint re-read"
        )
        records = log_records(stack.log)
        uncertain = [
            r
            for r in records
            if r.get("event") == "publish_failed" and "transaction failed" in r.get("error", "")
        ]
        assert uncertain, "no uncertain commit logged"
        assert {h.api_key for h in proxy.holds()} == {END_TXN}
        reread = next(i for i, r in enumerate(records) if r.get("event") == "checkpoint_reread")
        commits_after(stack, reread)
        assert any(r.get("event") == "company_state_reread" for r in log_records(stack.log))
        stack.stop()
        assert_no_duplicate_ids(stack)


def test_one_stalled_end_txn_answer_duplicates_nothing(
    proxied_broker: KafkaProxy, tmp_path: Path
) -> None:
    """Only the first EndTxn answer held for 8 s: whatever path the client takes (its own retry
    or an uncertain commit), the daemon commits on and no ce_id is in the topics twice."""
    proxy = proxied_broker
    with steady_stack(proxy, tmp_path) as stack:
        held = len(proxy.holds())
        proxy.hold(END_TXN, HOLD_S)
        wait_until(lambda: len(proxy.holds()) > held, 60, what="an EndTxn answer held")
        # The held answer has been let through (or dropped with its connection) by then.
        time.sleep(HOLD_S + 1)
        commits_after(stack, len(log_records(stack.log)))
        stack.stop()
        assert_no_duplicate_ids(stack)
