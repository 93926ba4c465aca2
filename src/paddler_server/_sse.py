"""Server-sent events: the one formatter (``sse_event``) and headers every SSE response uses
(the management snapshot streams here, the OpenAI streams), and ``snapshot_stream``: one
snapshot at connect, one per change, keep-alive comments."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from paddler.wire import converter
from paddler_server._streaming import WRITE_TIMEOUT, Emit, ProducerStream

__all__ = ["KEEP_ALIVE_SECONDS", "SSE_HEADERS", "snapshot_stream", "sse_event"]

KEEP_ALIVE_SECONDS = 10.0
#: No caching, and no buffering by a proxy in front (nginx reads ``x-accel-buffering``).
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already a string."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def _event(snapshot: Any) -> bytes:
    return sse_event(converter.dumps(snapshot))


def snapshot_stream(
    current: Callable[[], Any],
    subscribe: Callable[[], AsyncIterator[Any]],
    *,
    shutdown: anyio.Event | None,
    keep_alive: float = KEEP_ALIVE_SECONDS,
    write_timeout: float = WRITE_TIMEOUT,
    on_cut: Callable[[], None] | None = None,
) -> ProducerStream:
    """An SSE response: ``current()`` now, then every new snapshot from ``subscribe()``.

    Unchanged snapshots are not repeated; a ``: keep-alive`` comment goes out after
    ``keep_alive`` seconds of silence. The stream ends when the server shuts down.
    """

    async def produce(emit: Emit) -> None:
        last = _event(current())
        await emit(last)
        send, receive = anyio.create_memory_object_stream[Any](16)
        async with anyio.create_task_group() as tg:

            async def pump() -> None:
                async with send:
                    async for snapshot in subscribe():
                        await send.send(snapshot)

            tg.start_soon(pump)
            async with receive:
                while True:
                    with anyio.move_on_after(keep_alive) as timer:
                        try:
                            snapshot = await receive.receive()
                        except anyio.EndOfStream:
                            break
                    if timer.cancelled_caught:
                        await emit(b": keep-alive\n\n")
                        continue
                    event = _event(snapshot)
                    if event != last:
                        last = event
                        await emit(event)
            tg.cancel_scope.cancel()

    return ProducerStream(
        produce,
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        shutdown=shutdown,
        write_timeout=write_timeout,
        on_cut=on_cut,
    )
