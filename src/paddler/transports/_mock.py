"""MockTransport(handler): a fake balancer for agent tests, like httpx.MockTransport."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
from anyio.abc import ObjectStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler.transports._base import AgentSocket, AgentTransport

__all__ = ["MockConnection", "MockTransport"]

Replies = Iterable[Any] | None
Handler = Callable[[Any], Replies | Awaitable[Replies]]


class MockConnection(ObjectStream[Any]):
    """The agent's end: each sent message goes to the handler; its replies become receivable.

    Tests may also ``push(message)`` unsolicited messages or ``close_from_balancer()``.
    """

    def __init__(self, handler: Handler, agent_id: str) -> None:
        self.agent_id = agent_id
        self.sent: list[Any] = []
        self._handler = handler
        self._send: MemoryObjectSendStream[Any]
        self._receive: MemoryObjectReceiveStream[Any]
        self._send, self._receive = anyio.create_memory_object_stream[Any](1024)
        self._closed = False

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
    """Answers every connection with ``handler(message) -> replies`` (sync or async)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.connections: list[MockConnection] = []

    async def connect(self, url: str, agent_id: str) -> AgentSocket:
        connection = MockConnection(self._handler, agent_id)
        self.connections.append(connection)
        return connection
