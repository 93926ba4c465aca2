"""ws:// and wss:// -- Paddler's agent socket over the ``websockets`` asyncio client.

Frames are JSON text through ``paddler.wire.converter``; a frame that does not decode is logged
and skipped, never fatal. (``websockets.asyncio`` ties this transport to the asyncio backend,
which is fine for the deployable agent; core tests use inproc/mock transports.)
"""

from __future__ import annotations

import collections
import json
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import ObjectStream

from paddler.errors import ConnectError
from paddler.transports._base import AgentSocket, AgentSocketAttribute, AgentTransport
from paddler.transports._frames import dumps_batches, dumps_frame, loads_batch, loads_frame
from paddler.wire import DEFAULT_POOL, AgentSocketExtension, UpdateAgentStatus

__all__ = ["MAX_MESSAGE_SIZE", "TextFrameStream", "WebSocketTransport", "agent_socket_url"]

logger = logging.getLogger("paddler.transports")

MAX_MESSAGE_SIZE = 50 * 1024 * 1024


def agent_socket_url(url: str, agent_id: str) -> str:
    """``ws://host:port`` → ``ws://host:port/api/v1/agent_socket/<agent_id>``."""
    return f"{url.rstrip('/')}/api/v1/agent_socket/{agent_id}"


class TextFrameStream(ObjectStream[Any]):
    """Wire objects over anything with async ``send_text``/``receive_text``/``close``.

    ``receive_text`` returns ``None`` (or raises one of ``closed_errors``) at the end of the
    connection. Undecodable frames are logged and skipped. Both ends of the agent socket use
    it: the agent over ``websockets``, the balancer over its server's WebSocket.
    """

    def __init__(
        self,
        *,
        send_text: Callable[[str], Any],
        receive_text: Callable[[], Any],
        close: Callable[[], Any],
        receive_type: Any,
        send_type: Any,
        closed_errors: tuple[type[BaseException], ...] = (),
        label: str = "peer",
        extensions: frozenset[str] = frozenset(),
    ) -> None:
        self._send_text = send_text
        self._receive_text = receive_text
        self._close = close
        self._receive_type = receive_type
        self._send_type = send_type
        self._closed_errors = closed_errors
        self._label = label
        self._extensions = extensions
        self._closed = False
        # An agent's status heartbeat repeats its last status byte for byte (the version
        # moves only on a change): such a frame is decoded once, not once a second.
        self._last_status: tuple[str, Any] | None = None
        #: The rest of a batch frame, handed out by the next receives.
        self._batched: collections.deque[Any] = collections.deque()
        self._batches = AgentSocketExtension.FRAME_BATCHES in extensions

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """``AgentSocketAttribute.extensions``: what the handshake agreed on."""
        return {AgentSocketAttribute.extensions: lambda: self._extensions}

    async def receive(self) -> Any:
        from paddler.wire import WireError

        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._batched:
                return self._batched.popleft()
            try:
                text = await self._receive_text()
            except self._closed_errors as exc:
                raise anyio.EndOfStream from exc
            if text is None:
                raise anyio.EndOfStream
            if not isinstance(text, str):
                continue  # binary frames are ignored
            last = self._last_status
            if last is not None and last[0] == text:
                return last[1]  # frozen, so the same object serves again
            try:
                if text.startswith("["):  # a ``frame_batches`` frame: several messages
                    self._batched.extend(loads_batch(text, self._receive_type))
                    continue
                item = loads_frame(text, self._receive_type)
            except (WireError, ValueError) as exc:
                logger.warning("malformed frame from %s skipped: %s", self._label, exc)
                continue
            if type(item) is UpdateAgentStatus:
                self._last_status = (text, item)
            return item

    async def send(self, item: Any) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        await self._write(dumps_frame(item, self._send_type))

    async def send_many(self, items: Sequence[Any]) -> None:
        """Send ``items`` in order: as few frames as ``frame_batches`` allows when the peer
        agreed to it (``dumps_batches``), else one frame each."""
        if len(items) == 1 or not self._batches:
            for item in items:
                await self.send(item)
            return
        if self._closed:
            raise anyio.ClosedResourceError
        for text in dumps_batches(items, self._send_type):
            await self._write(text)

    async def _write(self, text: str) -> None:
        try:
            await self._send_text(text)
        except self._closed_errors as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        except Exception:
            logger.debug("closing the socket to %s failed", self._label, exc_info=True)


class WebSocketTransport(AgentTransport):
    """Dials ``<url>/api/v1/agent_socket/<agent_id>`` and pings every ``ping_interval``.

    The upgrade request announces our agent-socket extensions in a ``Paddler-Extensions``
    header; the balancer's ``101`` answer lists the ones it accepts. A Paddler 4.1 balancer
    ignores the header and sends none back, so nothing beyond Paddler's wire is used with it.
    """

    def __init__(
        self,
        *,
        ping_interval: float | None = 3.0,
        open_timeout: float = 10.0,
        max_size: int = MAX_MESSAGE_SIZE,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._ping_interval = ping_interval
        self._open_timeout = open_timeout
        self._max_size = max_size
        #: The balancer's join token, sent as ``Authorization: Bearer`` on the handshake.
        self._token = token
        #: Certificate checks for ``wss://`` (None: the system's CAs).
        self._ssl_context = ssl_context

    async def connect(self, url: str, agent_id: str, *, pool: str = DEFAULT_POOL) -> AgentSocket:
        """Open the agent socket; ``pool`` goes in the ``Paddler-Pool`` header (none for
        ``default``, so the handshake stays Paddler's)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import (
            ConnectionClosed,
            InvalidHandshake,
            InvalidStatus,
            InvalidURI,
        )

        from paddler.wire import (
            EXTENSIONS_HEADER,
            POOL_HEADER,
            SUPPORTED_EXTENSIONS,
            AgentToBalancerMessage,
            BalancerToAgentMessage,
            format_extensions,
            parse_extensions,
        )

        uri = agent_socket_url(url, agent_id)
        headers = {EXTENSIONS_HEADER: format_extensions(SUPPORTED_EXTENSIONS)}
        if pool != DEFAULT_POOL:
            headers[POOL_HEADER] = pool
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        tls: dict[str, Any] = {}
        if uri.startswith("wss://") and self._ssl_context is not None:
            tls["ssl"] = self._ssl_context
        try:
            socket = await connect(
                uri,
                ping_interval=self._ping_interval,
                open_timeout=self._open_timeout,
                max_size=self._max_size,
                additional_headers=headers,
                **tls,
            )
        except InvalidStatus as exc:
            raise ConnectError(f"{uri} refused this agent: {_refusal(exc)}") from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectError(f"cannot connect to {uri}: {exc}") from exc
        answer = socket.response.headers.get(EXTENSIONS_HEADER) if socket.response else None
        extensions = parse_extensions(answer) & SUPPORTED_EXTENSIONS
        logger.info(
            "connected to %s; extensions: %s",
            uri,
            format_extensions(extensions) or "none (a Paddler 4.1 balancer)",
        )

        async def receive_text() -> str | bytes:
            return await socket.recv()

        return TextFrameStream(
            send_text=socket.send,
            receive_text=receive_text,
            close=socket.close,
            receive_type=BalancerToAgentMessage,
            send_type=AgentToBalancerMessage,
            closed_errors=(ConnectionClosed,),
            label=uri,
            extensions=extensions,
        )


def _refusal(exc: Any) -> str:
    """``HTTP <status>: <reason>`` from a refused handshake (Paddler's error body if any)."""
    response = exc.response
    reason = ""
    try:
        reason = json.loads(response.body)["error"]["description"]
    except (ValueError, KeyError, TypeError):
        reason = response.body.decode("utf-8", "replace").strip()[:200]
    return f"HTTP {response.status_code}" + (f": {reason}" if reason else "")
