"""A streaming ASGI response whose producer runs, and ends, inside the response task.

Litestar's ``Stream`` iterates a body iterator in a child task and abandons it when the
client disconnects. Our producers hold a ``balancer.generate(...)`` context (cancel scopes, a
slot on an agent) that must be entered and exited in one task and closed promptly so the
agent stops generating. So a producer here is a coroutine function given an ``emit``
callable: it runs in the response task, may use task groups freely, and is cancelled when
the client goes away or the server shuts down (then ``on_shutdown`` may add a last chunk).

Every write has a deadline: a client that reads nothing for ``write_timeout`` seconds is cut
off (``SlowClient``), so it cannot hold a slot on an agent; ``on_cut`` counts it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send

if TYPE_CHECKING:
    from paddler.balancer import Balancer

__all__ = ["WRITE_TIMEOUT", "Emit", "ProducerStream", "SlowClient", "send_within", "write_deadline"]

logger = logging.getLogger("paddler_server")

Emit = Callable[[bytes], Awaitable[None]]
Producer = Callable[[Emit], Awaitable[None]]
WRITE_TIMEOUT = 30.0


class SlowClient(Exception):
    """A write to the client waited longer than its deadline: the client stopped reading."""


async def send_within(
    send: Callable[[Any], Awaitable[None]], message: Any, deadline: float
) -> None:
    """``await send(message)``, or ``SlowClient`` once it has waited ``deadline`` seconds.

    The send is started eagerly: a write the server takes at once (the client reads, so its
    socket buffer has room) finishes without suspending, and then needs no deadline. Only a
    send that has to wait for the client is continued under a timeout. A cancel scope with a
    deadline costs ~5 us, as much as the rest of relaying one token frame.
    """
    pending = send(message)
    if type(pending) is CoroutineType:
        try:
            waiting_on = pending.send(None)
        except StopIteration:
            return
        pending = _Resumed(pending, waiting_on)
    try:
        with anyio.move_on_after(deadline) as scope:
            await pending
    finally:
        if type(pending) is _Resumed:
            pending.close()
    if scope.cancelled_caught:
        raise SlowClient(f"the client read nothing for {deadline:g} s")


class _Resumed:
    """Awaits the rest of a coroutine that has been stepped once and is waiting on
    ``waiting_on``: what ``await coro`` would have done from there, throws included."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def close(self) -> None:
        self._coro.close()  # a no-op once it has finished

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # cancellation included: the coroutine handles it
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration:
                    return


def write_deadline(balancer: Balancer) -> dict[str, Any]:
    """``write_timeout`` and ``on_cut`` for a response of ``balancer``'s services."""
    metrics = getattr(balancer, "metrics", None)

    def on_cut() -> None:
        if metrics is not None and hasattr(metrics, "count_slow_client"):
            metrics.count_slow_client()

    config = getattr(balancer, "config", None)  # test doubles of the balancer may have none
    timeout = getattr(config, "client_write_timeout", WRITE_TIMEOUT)
    return {"write_timeout": timeout, "on_cut": on_cut}


class ProducerStream(ASGIStreamingResponse):
    """Streams what ``producer(emit)`` emits; a client disconnect cancels the producer."""

    def __init__(
        self,
        producer: Producer,
        *,
        media_type: str,
        headers: dict[str, Any] | None = None,
        status_code: int = 200,
        shutdown: anyio.Event | None = None,
        on_shutdown: Callable[[], bytes | None] | None = None,
        write_timeout: float = WRITE_TIMEOUT,
        on_cut: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            iterator=(), media_type=media_type, headers=headers, status_code=status_code
        )
        self._producer = producer
        self._shutdown = shutdown
        self._on_shutdown = on_shutdown
        self._write_timeout = write_timeout
        self._on_cut = on_cut

    async def send_body(self, send: Send, receive: Receive) -> None:
        try:
            await self._send_body(send, receive)
        except* SlowClient as group:
            exc = group.exceptions[0]
            # The producer has left its balancer context (the request is stopped and its slot
            # freed); the response stays incomplete and the server closes the connection.
            logger.info("client cut off: %s", exc)
            if self._on_cut is not None:
                self._on_cut()

    async def _send_body(self, send: Send, receive: Receive) -> None:
        timeout = self._write_timeout

        async def emit(chunk: bytes) -> None:
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            await send_within(send, message, timeout)

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as producer_scope:

                async def watch_disconnect() -> None:
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            tg.cancel_scope.cancel()
                            return

                async def watch_shutdown(event: anyio.Event) -> None:
                    await event.wait()
                    producer_scope.cancel()

                tg.start_soon(watch_disconnect)
                if self._shutdown is not None:
                    tg.start_soon(watch_shutdown, self._shutdown)
                await self._producer(emit)
            if producer_scope.cancelled_caught and self._on_shutdown is not None:
                last = self._on_shutdown()
                if last:
                    await emit(last)
            end = {"type": "http.response.body", "body": b"", "more_body": False}
            await send_within(send, end, timeout)
            tg.cancel_scope.cancel()
