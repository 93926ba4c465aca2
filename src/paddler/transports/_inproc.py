"""inproc:// -- an Agent and a Balancer in one process, joined by memory object streams."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import anyio
from anyio.abc import ObjectStream
from anyio.streams.stapled import StapledObjectStream

from paddler.errors import ConnectError
from paddler.transports._base import AgentSocket, AgentSocketAttribute, AgentTransport
from paddler.wire import DEFAULT_POOL

__all__ = ["InProcTransport", "register_inproc", "unregister_inproc"]


class _AcceptsAgents(Protocol):
    @property
    def agent_extensions(self) -> frozenset[str]: ...

    def accept_agent(
        self, agent_id: str, stream: ObjectStream[Any], *, extensions: frozenset[str], pool: str
    ) -> None: ...


class _InProcSocket(StapledObjectStream[Any]):
    """The agent's end; both ends are this package, so the extensions are those the
    balancer agrees to (``Balancer.agent_extensions``)."""

    extensions: frozenset[str] = frozenset()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {
            **super().extra_attributes,
            AgentSocketAttribute.extensions: lambda: self.extensions,
        }


_registry: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def register_inproc(name: str, balancer: _AcceptsAgents) -> None:
    """Make ``balancer`` reachable at ``inproc://<name>``."""
    if _registry.get(name) is not None:
        raise ValueError(f"inproc://{name} is already taken by another balancer")
    _registry[name] = balancer


def unregister_inproc(name: str, balancer: _AcceptsAgents) -> None:
    if _registry.get(name) is balancer:
        del _registry[name]


def _name_of(url: str) -> str:
    if not url.startswith("inproc://"):
        raise ConnectError(f"not an inproc:// URL: {url!r}")
    return url.removeprefix("inproc://").rstrip("/")


class InProcTransport(AgentTransport):
    """Pairs two memory object streams and hands one end to the named balancer.

    Messages are passed as objects (no JSON), like httpx's ASGITransport skips the network.
    """

    def __init__(self, *, buffer_size: int = 256) -> None:
        self._buffer_size = buffer_size

    async def connect(self, url: str, agent_id: str, *, pool: str = DEFAULT_POOL) -> AgentSocket:
        name = _name_of(url)
        balancer = _registry.get(name)
        if balancer is None:
            raise ConnectError(f"no balancer is registered at inproc://{name}")
        to_balancer_send, to_balancer_receive = anyio.create_memory_object_stream[Any](
            self._buffer_size
        )
        to_agent_send, to_agent_receive = anyio.create_memory_object_stream[Any](self._buffer_size)
        from paddler.wire import SUPPORTED_EXTENSIONS

        agreed = SUPPORTED_EXTENSIONS & balancer.agent_extensions
        try:
            balancer.accept_agent(
                agent_id,
                StapledObjectStream(to_agent_send, to_balancer_receive),
                extensions=agreed,
                pool=pool,
            )
        except Exception as exc:
            for stream in (to_balancer_send, to_balancer_receive, to_agent_send, to_agent_receive):
                stream.close()
            raise ConnectError(f"inproc://{name} refused the connection: {exc}") from exc
        socket = _InProcSocket(to_balancer_send, to_agent_receive)
        socket.extensions = agreed
        return socket
