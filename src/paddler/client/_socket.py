"""One multiplexed inference WebSocket: many requests, routed by id, reconnected when dropped.

The reader task (in the owning client's task group) routes each ``Response``/``Error`` envelope
to its request's stream and keeps track of the cluster's token-generation notifications. When
the connection drops, every open request ends with ``ConnectionDropped``; the next request
opens a new connection, and notification watchers get one re-established within a second.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import websockets
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream
from websockets.asyncio.client import ClientConnection, connect

from paddler.client._stream import Routed, is_final
from paddler.client.errors import ConnectionDropped, HTTPStatusError, ServerUnreachable
from paddler.wire import (
    ErrorEnvelope,
    InferenceClientMessage,
    InferenceClientNotification,
    InferenceRequest,
    InferenceRequestPayload,
    InferenceServerMessage,
    ResponseEnvelope,
    StopRespondingTo,
    TokenGenerationDisabledNotification,
    TokenGenerationEnabledNotification,
    WireError,
    converter,
)

__all__ = ["InferenceSocket"]

logger = logging.getLogger("paddler.client")

#: Paddler's limit per message.
MAX_MESSAGE_SIZE = 50 * 1024 * 1024
RECONNECT_INTERVAL = 1.0


class InferenceSocket:
    def __init__(
        self,
        url: str,
        task_group: TaskGroup,
        *,
        open_timeout: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self._headers = headers or {}
        self._tg = task_group
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._lock = anyio.Lock()
        self._routes: dict[str, MemoryObjectSendStream[Routed]] = {}
        self._outgoing_send, self._outgoing = anyio.create_memory_object_stream[str](math.inf)
        self._watchers: list[MemoryObjectSendStream[InferenceClientNotification]] = []
        self._closed = False
        #: ``None`` until the server has said; ``False`` while the cluster is in embeddings mode.
        self.token_generation_enabled: bool | None = None
        self.connections_opened = 0
        self._tg.start_soon(self._write)

    @property
    def in_flight(self) -> int:
        return len(self._routes)

    async def _connection(self) -> ClientConnection:
        async with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed; open a new one to send requests")
            if self._ws is not None:
                return self._ws
            try:
                ws = await connect(
                    self.url,
                    max_size=MAX_MESSAGE_SIZE,
                    open_timeout=self._open_timeout,
                    additional_headers=self._headers,
                )
            except websockets.exceptions.InvalidStatus as exc:  # 401: the API key, say
                response = exc.response
                body = (response.body or b"").decode(errors="replace")
                raise HTTPStatusError(response.status_code, body, url=self.url) from exc
            except (OSError, TimeoutError, websockets.exceptions.InvalidHandshake) as exc:
                raise ServerUnreachable(f"cannot open {self.url}: {exc}") from exc
            self._ws = ws
            self.connections_opened += 1
            logger.debug("inference socket open url=%s", self.url)
            self._tg.start_soon(self._read, ws)
            return ws

    async def submit(
        self,
        request_id: str,
        payload: InferenceRequestPayload,
        route: MemoryObjectSendStream[Routed],
    ) -> None:
        """Send one request; its messages go to ``route``."""
        ws = await self._connection()
        self._routes[request_id] = route
        text = converter.dumps(InferenceRequest(request_id, payload), InferenceServerMessage)
        try:
            await ws.send(text)
        except websockets.exceptions.ConnectionClosed as exc:
            self._routes.pop(request_id, None)
            raise ConnectionDropped(request_id, str(exc)) from exc

    def stop(self, request_id: str, *, keep_route: bool = False) -> None:
        """Send ``StopRespondingTo`` (non-blocking; callable from ``__del__``).

        With ``keep_route`` the request's remaining messages (the agent's final ``Done``)
        still reach its stream; otherwise they are dropped.
        """
        if request_id not in self._routes:
            return
        if not keep_route:
            del self._routes[request_id]
        text = converter.dumps(StopRespondingTo(request_id), InferenceServerMessage)
        try:
            self._outgoing_send.send_nowait(text)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def _write(self) -> None:
        async for text in self._outgoing:
            ws = self._ws
            if ws is None:
                continue  # closing the socket already cancelled everything on it
            try:
                await ws.send(text)
            except websockets.exceptions.ConnectionClosed:
                pass

    async def _read(self, ws: ClientConnection) -> None:
        reason = ""
        try:
            async for frame in ws:
                if isinstance(frame, bytes):
                    continue
                try:
                    message: Any = converter.loads(frame, InferenceClientMessage)
                except WireError as exc:
                    logger.warning("ignoring a malformed message: %s", exc)
                    continue
                self._dispatch(message)
        except websockets.exceptions.ConnectionClosed as exc:
            reason = str(exc)
        finally:
            if self._ws is ws:
                self._ws = None
            routes, self._routes = self._routes, {}
            for request_id, route in routes.items():
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    route.send_nowait(ConnectionDropped(request_id, reason or "socket closed"))
                route.close()
            if self._watchers and not self._closed:
                self._tg.start_soon(self._reconnect)

    def _dispatch(self, message: InferenceClientMessage) -> None:
        if isinstance(message, ResponseEnvelope | ErrorEnvelope):
            route = self._routes.get(message.request_id)
            if route is None:
                return  # a request we stopped; its trailing messages are dropped
            try:
                route.send_nowait(message)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._routes.pop(message.request_id, None)  # its reader has gone away
                return
            if isinstance(message, ErrorEnvelope) or is_final(message):
                self._routes.pop(message.request_id, None)
                route.close()
            return
        enabled = isinstance(message, TokenGenerationEnabledNotification)
        if isinstance(
            message, TokenGenerationEnabledNotification | TokenGenerationDisabledNotification
        ):
            self.token_generation_enabled = enabled
            for watcher in list(self._watchers):
                try:
                    watcher.send_nowait(message)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self._watchers.remove(watcher)

    async def _reconnect(self) -> None:
        while self._watchers and not self._closed and self._ws is None:
            try:
                await self._connection()
            except (ServerUnreachable, RuntimeError) as exc:
                logger.debug("reconnect failed: %s", exc)
                await anyio.sleep(RECONNECT_INTERVAL)

    async def notifications(self) -> AsyncIterator[InferenceClientNotification]:
        """Token-generation notifications, for as long as the caller iterates."""
        send, receive = anyio.create_memory_object_stream[InferenceClientNotification](math.inf)
        self._watchers.append(send)
        try:
            await self._connection()
            async with receive:
                async for notification in receive:
                    yield notification
        finally:
            if send in self._watchers:
                self._watchers.remove(send)
            send.close()

    async def aclose(self) -> None:
        self._closed = True
        self._outgoing_send.close()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        for send in self._watchers:
            send.close()
