"""Per-agent management RPCs: one request, one answer, bounded by agent_rpc_timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from paddler.balancer._ids import new_request_id
from paddler.balancer._stream import SHUTDOWN
from paddler.errors import AgentGone, AgentRpcTimeout, ShuttingDown, UnknownAgent
from paddler.wire import AgentRequest

if TYPE_CHECKING:
    from paddler.balancer._balancer import Balancer

__all__ = ["call_agent"]


async def call_agent(self: Balancer, agent_id: str, payload: Any) -> Any:
    """Send one management request to an agent and wait for its answer (spec §2.4)."""
    entry = self.pool.get(agent_id)
    if entry is None or entry.outbox is None:
        raise UnknownAgent(f"Agent {agent_id!r} is not registered")
    request_id = new_request_id()
    send, receive = anyio.create_memory_object_stream[Any](4)
    entry.routes[request_id] = send
    try:
        try:
            entry.outbox.send_nowait(AgentRequest(id=request_id, request=payload))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise AgentGone("Agent controller connection closed") from exc
        try:
            with anyio.fail_after(self.config.agent_rpc_timeout):
                message = await receive.receive()
        except TimeoutError:
            raise AgentRpcTimeout(
                f"Agent {agent_id!r} did not answer within {self.config.agent_rpc_timeout}s"
            ) from None
        except anyio.EndOfStream:
            raise AgentGone("Agent controller connection closed") from None
        if message is SHUTDOWN:
            raise ShuttingDown("balancer is shutting down")
        return message.response
    finally:
        entry.routes.pop(request_id, None)
        send.close()
        receive.close()
