"""The one-method transport interface an Agent uses to reach a Balancer (httpx-style)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from anyio import TypedAttributeSet, typed_attribute
from anyio.abc import ObjectStream

from paddler.wire import DEFAULT_POOL

__all__ = ["AgentSocket", "AgentSocketAttribute", "AgentTransport", "BatchingSocket"]

#: An agent-side connection: send ``AgentToBalancerMessage``, receive ``BalancerToAgentMessage``.
AgentSocket = ObjectStream[Any]


class AgentSocketAttribute(TypedAttributeSet):
    """What a transport learned when it connected, read with ``socket.extra(...)``."""

    #: The agent-socket extensions both ends speak (``paddler.wire.AgentSocketExtension``
    #: names). A socket without the attribute, or an empty set, is a Paddler 4.1 balancer:
    #: ``socket.extra(AgentSocketAttribute.extensions, frozenset())``.
    extensions: frozenset[str] = typed_attribute()


@runtime_checkable
class BatchingSocket(Protocol):
    """An agent socket that can send several messages as one frame (``TextFrameStream``:
    one frame when the balancer agreed to ``frame_batches``, else one frame each)."""

    async def send_many(self, items: Sequence[Any]) -> None: ...


class AgentTransport:
    """Opens agent-socket connections. Subclasses implement ``connect``.

    Everything above moving messages (registration, status, multiplexing) lives in ``Agent``
    and ``Balancer``; a transport only delivers typed wire messages in order.
    """

    async def connect(self, url: str, agent_id: str, *, pool: str = DEFAULT_POOL) -> AgentSocket:
        """Open one connection for ``agent_id`` to the balancer at ``url``, joining ``pool``.

        Raises ``paddler.errors.ConnectError`` when the balancer cannot be reached. (The
        agent passes ``pool`` only when it is not ``default``, so a transport written before
        pools keeps working for the default pool.)
        """
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release whatever the transport holds (no-op by default)."""

    async def __aenter__(self) -> AgentTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
