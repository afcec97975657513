"""A TCP proxy for the Kafka protocol that can hold the answers to chosen requests.

Every connection to the proxy is forwarded to the broker, frame by frame. A request frame is a
4-byte big-endian length, then ``api_key`` (int16), ``api_version`` (int16), ``correlation_id``
(int32) and the rest; a response frame is a length, then the ``correlation_id`` it answers. While
the proxy is armed for an API key (:meth:`KafkaProxy.hold`), the next request with that key (and
those within a window after it) still reaches the broker at once, but its response is held back
for the given seconds: the broker has acted, the client does not know. Kafka answers in request
order on a connection, so holding one response holds the ones behind it too, as a slow network
would.

The broker must advertise the proxy's address (``advertised.listeners``), or clients would
connect to the broker directly after their first metadata request.

:class:`ProxyThread` runs a proxy on its own event loop in a thread, for synchronous tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

#: Kafka API key of EndTxn (commit or abort a transaction).
END_TXN = 26
_REQUEST_HEADER = struct.Struct(">hhi")
_LENGTH = struct.Struct(">i")
_CORRELATION = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class Held:
    """One response the proxy held back."""

    api_key: int
    correlation_id: int
    #: ``time.monotonic()`` when the request went to the broker.
    requested_at: float
    seconds: float


@dataclass(slots=True)
class _Arm:
    """Responses of one API key to hold: for how long, and the window of requests held."""

    seconds: float
    for_s: float
    #: ``time.monotonic()`` after which requests pass again; None until the first one came.
    until: float | None = None


async def _frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next whole frame (length prefix included), None at the end of the stream."""
    try:
        head = await reader.readexactly(_LENGTH.size)
        (size,) = _LENGTH.unpack(head)
        return head + await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class KafkaProxy:
    """Listens on 127.0.0.1:``port`` (0: any free port) and forwards to the broker's port."""

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.held: list[Held] = []
        self._lock = threading.Lock()
        self._armed: dict[int, _Arm] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def hold(self, api_key: int, seconds: float, *, for_s: float = 0.0) -> None:
        """Hold for ``seconds`` the response to the next request with ``api_key``, and to every
        further one sent within ``for_s`` seconds after that first one (a client's retries).

        Thread-safe: tests call it while the proxy runs in another thread.
        """
        with self._lock:
            self._armed[api_key] = _Arm(seconds, for_s)

    def _take(self, api_key: int) -> float | None:
        """Seconds to hold the response to a request with ``api_key`` sent now; None: none."""
        with self._lock:
            arm = self._armed.get(api_key)
            if arm is None:
                return None
            now = time.monotonic()
            if arm.until is None:
                arm.until = now + arm.for_s  # the first held request opens the window
            elif now > arm.until:
                del self._armed[api_key]
                return None
            return arm.seconds

    def holds(self) -> list[Held]:
        """The responses held so far (thread-safe copy)."""
        with self._lock:
            return list(self.held)

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and cut every forwarded connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port
            )
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        # Correlation id -> seconds to hold its response; written by the request side only.
        delays: dict[int, float] = {}
        try:
            requests = asyncio.create_task(self._requests(client_reader, upstream_writer, delays))
            responses = asyncio.create_task(self._responses(upstream_reader, client_writer, delays))
            await asyncio.wait({requests, responses}, return_when=asyncio.FIRST_COMPLETED)
            requests.cancel()
            responses.cancel()
            await asyncio.gather(requests, responses, return_exceptions=True)
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()
            self._tasks.discard(task)

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delays: dict[int, float],
    ) -> None:
        while (frame := await _frame(reader)) is not None:
            api_key, _, correlation_id = _REQUEST_HEADER.unpack_from(frame, _LENGTH.size)
            seconds = self._take(api_key)
            if seconds is not None:
                delays[correlation_id] = seconds
                with self._lock:
                    self.held.append(Held(api_key, correlation_id, time.monotonic(), seconds))
            writer.write(frame)
            await writer.drain()

    @staticmethod
    async def _responses(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delays: dict[int, float],
    ) -> None:
        while (frame := await _frame(reader)) is not None:
            (correlation_id,) = _CORRELATION.unpack_from(frame, _LENGTH.size)
            seconds = delays.pop(correlation_id, None)
            if seconds is not None:
                await asyncio.sleep(seconds)  # the broker acted; the client waits in the dark
            writer.write(frame)
            await writer.drain()


class ProxyThread:
    """A :class:`KafkaProxy` on its own event loop in a daemon thread."""

    def __init__(self, proxy: KafkaProxy) -> None:
        self.proxy = proxy
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> KafkaProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)
        return self.proxy

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextlib.contextmanager
def running_proxy(upstream_port: int, port: int = 0) -> Iterator[KafkaProxy]:
    """A running proxy to ``upstream_port`` for the duration of the block."""
    with ProxyThread(KafkaProxy(upstream_port, port)) as proxy:
        yield proxy
