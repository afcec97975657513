"""Reaching the broker with our credentials: a refused login told apart from an absent broker.

aiokafka's clients swallow the broker's SASL answer while they bootstrap: a wrong password surfaces
as ``KafkaConnectionError('Unable to bootstrap ...')``, exactly like a broker that is down, and a
daemon would wait for it forever under the wrong name. :func:`probe` opens one connection itself
(version lookup plus SASL handshake), which raises the broker's real answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streamer.retry import Backoff, Stopped, sleep_or_stop, until_stopped

log = structlog.get_logger("streamer.kafka")

#: What a broker answers when it refuses our SASL credentials or mechanism.
AUTH_ERRORS = (
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)

#: Retry policy while the broker cannot be reached at start-up (as the publisher's).
UNREACHABLE_BACKOFF = Backoff(initial_s=1.0, max_s=15.0)


class KafkaAuthenticationFailed(Exception):
    """The broker refused our SASL credentials (or mechanism); retrying will not help by itself.

    ``str()`` names the mechanism and user, never the password; ``detail`` is the broker's answer.
    """

    def __init__(self, mechanism: object, username: object, detail: str) -> None:
        self.mechanism = mechanism
        self.username = username
        self.detail = detail
        super().__init__(
            f"authentication failed (sasl_mechanism={mechanism}, sasl_username={username})"
        )


_CONN_KEYS = (
    "client_id",
    "request_timeout_ms",
    "ssl_context",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
)


async def probe(client_kwargs: Mapping[str, Any]) -> None:
    """Connect once to a bootstrap server (as every aiokafka client does first), then close.

    Raises :class:`KafkaAuthenticationFailed` when a broker refuses the credentials,
    ``KafkaConnectionError`` when no bootstrap server answers.
    """
    conn_kwargs = {k: client_kwargs[k] for k in _CONN_KEYS if k in client_kwargs}
    errors: list[str] = []
    for host, port, _ in collect_hosts(client_kwargs.get("bootstrap_servers", "localhost")):
        try:
            conn = await create_conn(host, port, **conn_kwargs)
        except AUTH_ERRORS as exc:
            raise KafkaAuthenticationFailed(
                client_kwargs.get("sasl_mechanism"),
                client_kwargs.get("sasl_plain_username"),
                f"{type(exc).__name__}: {exc}",
            ) from None
        except (KafkaError, OSError, TimeoutError) as exc:
            errors.append(f"{host}:{port}: {exc!r}")
            continue
        conn.close()
        return
    raise KafkaConnectionError(f"no bootstrap server answered: {'; '.join(errors)}")


async def wait_for_access(
    client_kwargs: Mapping[str, Any],
    stop: asyncio.Event,
    *,
    auth_backoff_s: float,
    backoff: Backoff = UNREACHABLE_BACKOFF,
) -> bool:
    """Start-up gate: return True once the broker accepts our connection, False if stopped first.

    A refused login is logged as ``kafka_authentication_failed`` (an error, retried after the long
    ``auth_backoff_s``, like an IPS authentication fault); an absent broker as
    ``kafka_unavailable`` (retried with ``backoff``).
    """
    failures = 0
    while not stop.is_set():
        try:
            await until_stopped(stop, probe(client_kwargs))
        except Stopped:
            return False
        except KafkaAuthenticationFailed as exc:
            delay = auth_backoff_s
            log.error(
                "kafka_authentication_failed", error=str(exc), detail=exc.detail, retry_in_s=delay
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            failures += 1
            delay = backoff.delay(failures)
            log.warning("kafka_unavailable", error=repr(exc), retry_in_s=round(delay, 2))
        else:
            return True
        if await sleep_or_stop(stop, delay):
            return False
    return False
