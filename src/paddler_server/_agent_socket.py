"""The agent control socket: a Litestar WebSocket handed to ``balancer.serve_agent``.

The balancer speaks in wire objects over an ``anyio`` ``ObjectStream``; the socket becomes one
through ``paddler.transports.TextFrameStream`` (the agent's end of the same link uses it too),
and is closed with 1001 "going away" when the server shuts down.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from paddler.balancer import Balancer
from paddler.errors import InvalidRequest
from paddler.transports import TextFrameStream
from paddler.wire import (
    DEFAULT_POOL,
    EXTENSIONS_HEADER,
    POOL_HEADER,
    AgentToBalancerMessage,
    BalancerToAgentMessage,
    format_extensions,
    parse_extensions,
    validate_pool_name,
)
from paddler_server._refusal import refuse

__all__ = ["serve_agent_socket"]

logger = logging.getLogger("paddler_server.agent_socket")

GOING_AWAY = 1001
#: What a send or receive on a socket the agent has left raises (uvicorn's ClientDisconnected
#: is an OSError; a send after the close frame is a RuntimeError).
_GONE = (WebSocketDisconnect, OSError, RuntimeError)


def agent_frame_stream(
    socket: WebSocket[Any, Any, Any], agent_id: str, *, shutdown: anyio.Event | None
) -> TextFrameStream:
    """Wire messages over an accepted agent socket (text frames; others are skipped)."""

    async def receive_text() -> str | bytes | None:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if isinstance(text, str) else b""  # binary and other events: skipped

    async def close() -> None:
        if shutdown is not None and shutdown.is_set():
            await socket.close(code=GOING_AWAY, reason="Server shutting down")
        else:
            await socket.close(code=1000, reason="")

    return TextFrameStream(
        send_text=socket.send_text,
        receive_text=receive_text,
        close=close,
        receive_type=AgentToBalancerMessage,
        send_type=BalancerToAgentMessage,
        closed_errors=_GONE,
        label=f"agent {agent_id}",
    )


async def serve_agent_socket(
    socket: WebSocket[Any, Any, Any],
    agent_id: str,
    balancer: Balancer,
    *,
    shutdown: anyio.Event | None,
) -> None:
    """Accept the socket and serve the agent until it leaves or the server shuts down.

    The agent's ``Paddler-Extensions`` request header says which agent-socket extensions it
    speaks; the ``101`` answer lists those we speak too, and only they are used. A Paddler
    4.1 agent sends no header and gets none (its client ignores unknown headers anyway).
    Its ``Paddler-Pool`` header names the model pool it joins (none: ``default``); an invalid
    name is refused with ``400`` naming the header, before the agent registers.
    """
    pool = socket.headers.get(POOL_HEADER, DEFAULT_POOL)
    try:
        validate_pool_name(pool)
    except InvalidRequest as exc:
        reason = f"{POOL_HEADER} header: {exc}"
        logger.warning("agent refused agent=%s reason=%s", agent_id, reason)
        await refuse(socket.scope, socket.receive, socket.send, 400, reason)
        return
    agreed = parse_extensions(socket.headers.get(EXTENSIONS_HEADER)) & balancer.agent_extensions
    headers = {EXTENSIONS_HEADER: format_extensions(agreed)} if agreed else None
    await socket.accept(headers=headers)
    stream = agent_frame_stream(socket, agent_id, shutdown=shutdown)
    async with anyio.create_task_group() as tg:

        async def close_on_shutdown(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        if shutdown is not None:
            tg.start_soon(close_on_shutdown, shutdown)
        try:
            await balancer.serve_agent(agent_id, stream, extensions=agreed, pool=pool)
        finally:
            tg.cancel_scope.cancel()
    with anyio.CancelScope(shield=True):
        await stream.aclose()
