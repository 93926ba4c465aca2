"""The agent control socket: a Litestar WebSocket handed to ``balancer.serve_agent``.

The balancer speaks in wire objects over an ``anyio`` ``ObjectStream``; this module turns the
socket into one (text frames in and out through ``paddler.wire.converter``), and closes it
with 1001 "going away" when the server shuts down.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from anyio.abc import ObjectStream
from litestar import WebSocket

from paddler.balancer import Balancer
from paddler.wire import (
    EXTENSIONS_HEADER,
    SUPPORTED_EXTENSIONS,
    BalancerToAgentMessage,
    WireError,
    converter,
    format_extensions,
    parse_extensions,
)
from paddler_server._token_frames import loads_agent_message

__all__ = ["WebSocketObjectStream", "serve_agent_socket"]

logger = logging.getLogger("paddler_server.agent_socket")

GOING_AWAY = 1001


class WebSocketObjectStream(ObjectStream[Any]):
    """Wire messages over an accepted Litestar WebSocket (malformed frames are skipped)."""

    def __init__(self, socket: WebSocket[Any, Any, Any], agent_id: str) -> None:
        self._socket = socket
        self._agent_id = agent_id
        self._send_lock = anyio.Lock()
        self._closed = False

    async def receive(self) -> Any:
        while True:
            if self._closed:
                raise anyio.EndOfStream
            message = await self._socket.receive()
            kind = message.get("type")
            if kind == "websocket.disconnect":
                self._closed = True
                raise anyio.EndOfStream
            text = message.get("text")
            if kind != "websocket.receive" or not isinstance(text, str):
                continue
            try:
                return loads_agent_message(text)
            except (WireError, ValueError) as exc:
                logger.warning("malformed agent message agent=%s error=%s", self._agent_id, exc)

    async def send(self, item: Any) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        text = converter.dumps(item, BalancerToAgentMessage)
        async with self._send_lock:
            try:
                await self._socket.send_text(text)
            except Exception as exc:
                self._closed = True
                raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        await self.aclose()

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._socket.close(code=code, reason=reason)
        except Exception:
            logger.debug("agent socket close failed agent=%s", self._agent_id, exc_info=True)


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
    """
    agreed = parse_extensions(socket.headers.get(EXTENSIONS_HEADER)) & SUPPORTED_EXTENSIONS
    headers = {EXTENSIONS_HEADER: format_extensions(agreed)} if agreed else None
    await socket.accept(headers=headers)
    stream = WebSocketObjectStream(socket, agent_id)
    async with anyio.create_task_group() as tg:

        async def close_on_shutdown(event: anyio.Event) -> None:
            await event.wait()
            tg.cancel_scope.cancel()

        if shutdown is not None:
            tg.start_soon(close_on_shutdown, shutdown)
        try:
            await balancer.serve_agent(agent_id, stream, extensions=agreed)
        finally:
            tg.cancel_scope.cancel()
    going_away = shutdown is not None and shutdown.is_set()
    with anyio.CancelScope(shield=True):
        await stream.aclose(
            code=GOING_AWAY if going_away else 1000,
            reason="Server shutting down" if going_away else "",
        )
