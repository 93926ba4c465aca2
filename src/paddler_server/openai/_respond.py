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
from paddler_server.openai._errors import OpenAIError, error_from_paddler

__all__ = ["Producer", "ProducerResponse", "Responder", "sse_event"]

logger = logging.getLogger("paddler_server.openai")


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already a string."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


class Responder:
    """What a producer uses to answer: ``json(...)`` once, or ``start_sse()`` then ``send``."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def start(self, status: int, headers: dict[str, str], media_type: str) -> None:
        if self.started:
            raise RuntimeError("the response has already started")
        self.started = True
        raw = [(b"content-type", media_type.encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await self._send({"type": "http.response.start", "status": status, "headers": raw})

    async def start_sse(self) -> None:
        await self.start(
            200,
            {"cache-control": "no-cache", "x-accel-buffering": "no"},
            "text/event-stream; charset=utf-8",
        )

    async def send(self, chunk: bytes) -> None:
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def json(
        self, body: Any, *, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        await self.start(status, headers or {}, "application/json")
        await self.send(json.dumps(body, ensure_ascii=False).encode())

    async def error(self, exc: OpenAIError) -> None:
        await self.json(exc.body(), status=exc.status, headers=exc.headers)


Producer = Callable[[Responder], Awaitable[None]]


class ProducerResponse(ASGIResponse):
    """Runs ``producer(responder)``; an ``OpenAIError`` before the start becomes its JSON body."""

    def __init__(self, producer: Producer) -> None:
        super().__init__(body=b"")
        self._producer = producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        responder = Responder(send)
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(watch_disconnect)
            try:
                try:
                    await self._producer(responder)
                except OpenAIError:
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
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()
