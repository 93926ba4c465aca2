"""An ASGI response whose producer decides the status late and runs in the response task.

OpenAI clients expect a real HTTP status for failures that happen before any output (503 when
the buffer is full, 504 on a timeout), so a streaming response is started only once the first
result is in. The producer holds a ``balancer.generate(...)`` context, which must be entered and
left in one task; a client disconnect cancels it, which cancels the request on its agent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Scope, Send

from paddler.errors import PaddlerError
from paddler_server._sse import SSE_HEADERS, sse_event
from paddler_server._streaming import WRITE_TIMEOUT, SlowClient, send_within
from paddler_server.openai._errors import OpenAIError, error_from_paddler

__all__ = ["Producer", "ProducerResponse", "Responder", "sse_event"]

logger = logging.getLogger("paddler_server.openai")


class Responder:
    """What a producer uses to answer: ``json(...)`` once, or ``start_sse()`` then ``send``."""

    def __init__(self, send: Send, *, write_timeout: float = WRITE_TIMEOUT) -> None:
        self._send = send
        self._write_timeout = write_timeout
        self.started = False
        self.sse = False
        #: The last body message is sent (``json`` sends it; a stream's is sent at the end).
        self.finished = False
        self._held: list[bytes] = []  # chunks sent with ``hold``, written with the next send

    async def start(self, status: int, headers: dict[str, str], media_type: str) -> None:
        if self.started:
            raise RuntimeError("the response has already started")
        self.started = True
        raw = [(b"content-type", media_type.encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        start = {"type": "http.response.start", "status": status, "headers": raw}
        await send_within(self._send, start, self._write_timeout)

    async def start_sse(self) -> None:
        self.sse = True
        await self.start(200, SSE_HEADERS, "text/event-stream; charset=utf-8")

    async def send(self, chunk: bytes, *, more: bool = True, hold: bool = False) -> None:
        """Write a body chunk; ``SlowClient`` when the client reads nothing for the deadline.

        With ``hold`` (the next result has already arrived: ``Results.ready``) the chunk
        waits and leaves with the next send: one write, and one wake of the client, for what
        one agent frame brought."""
        if hold and more:
            self._held.append(chunk)
            return
        if self._held:
            self._held.append(chunk)
            chunk = b"".join(self._held)
            self._held.clear()
        message = {"type": "http.response.body", "body": chunk, "more_body": more}
        self.finished = not more
        await send_within(self._send, message, self._write_timeout)

    async def json(
        self, body: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        """The whole answer: with a ``Content-Length`` and in one body message, the server
        writes it in two sends (head, body), not three (head, chunk, last chunk)."""
        raw = json.dumps(body, ensure_ascii=False).encode()
        length = {"content-length": str(len(raw))}
        await self.start(status, {**headers, **length} if headers else length, "application/json")
        await self.send(raw, more=False)

    async def error(self, exc: OpenAIError) -> None:
        await self.json(exc.body(), status=exc.status, headers=exc.headers)


Producer = Callable[[Responder], Awaitable[None]]


class ProducerResponse(ASGIResponse):
    """Runs ``producer(responder)``; an ``OpenAIError`` before the start becomes its JSON body."""

    def __init__(
        self,
        producer: Producer,
        *,
        write_timeout: float = WRITE_TIMEOUT,
        on_cut: Callable[[], None] | None = None,
        shutdown: anyio.Event | None = None,
    ) -> None:
        super().__init__(body=b"")
        self._producer = producer
        self._write_timeout = write_timeout
        self._on_cut = on_cut
        self._shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(receive, send)
        except* SlowClient as group:
            # The producer left its balancer context (request stopped, slot freed); the
            # response stays incomplete and the server closes the connection.
            logger.info("client cut off: %s", group.exceptions[0])
            if self._on_cut is not None:
                self._on_cut()

    async def _respond(self, receive: Receive, send: Send) -> None:
        responder = Responder(send, write_timeout=self._write_timeout)
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch_disconnect)
            shutting_down = anyio.CancelScope()

            async def watch_shutdown(event: anyio.Event) -> None:
                await event.wait()
                shutting_down.cancel()

            if self._shutdown is not None:
                tg.start_soon(watch_shutdown, self._shutdown)
            try:
                try:
                    with shutting_down:
                        await self._producer(responder)
                    if shutting_down.cancelled_caught:
                        stopped = OpenAIError(503, "The balancer is shutting down")
                        if not responder.sse:
                            raise stopped
                        await responder.send(sse_event(stopped.body()))  # a stream's last words
                        await responder.send(b"data: [DONE]\n\n")
                except (OpenAIError, SlowClient):
                    raise
                except PaddlerError as exc:
                    raise error_from_paddler(exc) from exc
                except Exception as exc:
                    logger.exception("the OpenAI handler failed")
                    raise OpenAIError(500, f"Internal error: {type(exc).__name__}") from exc
            except OpenAIError as exc:
                if responder.started:
                    logger.info("error after the response started: %s", exc.message)
                else:
                    if exc.status >= 500:
                        logger.info("request failed status=%d: %s", exc.status, exc.message)
                    await responder.error(exc)
            if not responder.started:
                await responder.error(OpenAIError(500, "The request produced no response"))
            if not responder.finished:
                await responder.send(b"", more=False)
            tg.cancel_scope.cancel()
