"""MockTransport(handler): a fake balancer for agent tests, like httpx.MockTransport."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
from anyio.abc import ObjectStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler.transports._base import AgentSocket, AgentSocketAttribute, AgentTransport
from paddler.wire import DEFAULT_POOL

__all__ = ["MockConnection", "MockTransport"]

Replies = Iterable[Any] | None
Handler = Callable[[Any], Replies | Awaitable[Replies]]


class MockConnection(ObjectStream[Any]):
    """The agent's end: each sent message goes to the handler; its replies become receivable.

    Tests may also ``push(message)`` unsolicited messages or ``close_from_balancer()``.
    ``extensions`` are what the fake balancer announces (all of ours unless told otherwise).
    """

    def __init__(
        self, handler: Handler, agent_id: str, extensions: frozenset[str] | None = None
    ) -> None:
        from paddler.wire import SUPPORTED_EXTENSIONS

        self.agent_id = agent_id
        self.extensions = SUPPORTED_EXTENSIONS if extensions is None else extensions
        self.sent: list[Any] = []
        self._handler = handler
        self._send: MemoryObjectSendStream[Any]
        self._receive: MemoryObjectReceiveStream[Any]
        self._send, self._receive = anyio.create_memory_object_stream[Any](1024)
        self._closed = False

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {AgentSocketAttribute.extensions: lambda: self.extensions}

    def push(self, message: Any) -> None:
        self._send.send_nowait(message)

    def close_from_balancer(self) -> None:
        self._closed = True
        self._send.close()

    async def send(self, item: Any) -> None:
        if self._closed:
            raise anyio.BrokenResourceError
        self.sent.append(item)
        replies = self._handler(item)
        if inspect.isawaitable(replies):
            replies = await replies
        for reply in replies or ():
            self._send.send_nowait(reply)

    async def receive(self) -> Any:
        return await self._receive.receive()

    async def send_eof(self) -> None:
        self._closed = True
        self._send.close()

    async def aclose(self) -> None:
        self._closed = True
        self._send.close()
        self._receive.close()


class MockTransport(AgentTransport):
    """Answers every connection with ``handler(message) -> replies`` (sync or async).

    ``extensions``: what the fake balancer announces; ``frozenset()`` plays a Paddler 4.1 one.
    """

    def __init__(self, handler: Handler, *, extensions: frozenset[str] | None = None) -> None:
        self._handler = handler
        self._extensions = extensions
        self.connections: list[MockConnection] = []
        #: The pool each connection asked to join, in order.
        self.pools: list[str] = []

    async def connect(self, url: str, agent_id: str, *, pool: str = DEFAULT_POOL) -> AgentSocket:
        connection = MockConnection(self._handler, agent_id, self._extensions)
        self.connections.append(connection)
        self.pools.append(pool)
        return connection
