"""A streaming ASGI response whose producer runs, and ends, inside the response task.

Litestar's ``Stream`` iterates a body iterator in a child task and abandons it when the
client disconnects. Our producers hold a ``balancer.generate(...)`` context (cancel scopes, a
slot on an agent) that must be entered and exited in one task and closed promptly so the
agent stops generating. So a producer here is a coroutine function given an ``emit``
callable: it runs in the response task, may use task groups freely, and is cancelled when
the client goes away or the server shuts down (then ``on_shutdown`` may add a last chunk).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import Receive, Send

__all__ = ["Emit", "ProducerStream"]

Emit = Callable[[bytes], Awaitable[None]]
Producer = Callable[[Emit], Awaitable[None]]


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
    ) -> None:
        super().__init__(
            iterator=(), media_type=media_type, headers=headers, status_code=status_code
        )
        self._producer = producer
        self._shutdown = shutdown
        self._on_shutdown = on_shutdown

    async def send_body(self, send: Send, receive: Receive) -> None:
        async def emit(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

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
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()
