"""The balancer's side of one agent socket: handshake, registration, routing, drain ack."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectStream

from paddler.balancer._adoption import consider_adoption, keeps_own_state
from paddler.balancer._pool import AgentEntry
from paddler.balancer._stream import OVERFLOW, ROUTE_LIMIT
from paddler.wire import (
    SUPPORTED_EXTENSIONS,
    AgentResponse,
    AgentSocketExtension,
    DeregisterAgent,
    RegisterAgent,
    SetState,
    StopRespondingTo,
    UpdateAgentStatus,
    Version,
)

if TYPE_CHECKING:
    from paddler.balancer._balancer import Balancer

__all__ = ["PADDLER_PROTOCOL_VERSION", "handle_agent_message", "serve_registered_agent"]

logger = logging.getLogger("paddler.balancer")

PADDLER_PROTOCOL_VERSION = "4.1.0"
REGISTER_TIMEOUT = 10.0


async def serve_registered_agent(
    self: Balancer,
    agent_id: str,
    stream: ObjectStream[Any],
    extensions: Collection[str] = (),
) -> None:
    """Handshake, register, then pump messages both ways until the socket ends.

    ``extensions`` are what both ends announced (see ``AgentSocketExtension``); nothing
    beyond Paddler's wire is sent without them.
    """
    try:
        await stream.send(Version(version=PADDLER_PROTOCOL_VERSION))
        with anyio.fail_after(REGISTER_TIMEOUT):
            first = await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        return
    except TimeoutError:
        logger.warning("agent %s did not register within %ss", agent_id, REGISTER_TIMEOUT)
        return
    if not isinstance(first, RegisterAgent):
        logger.warning("agent %s sent %s before RegisterAgent", agent_id, type(first).__name__)
        return
    if agent_id in self.pool:
        logger.warning("agent %s is already registered; closing the new socket", agent_id)
        return
    outbox_send, outbox_receive = anyio.create_memory_object_stream[Any](float("inf"))
    status = first.slot_aggregated_status_snapshot
    entry = AgentEntry(
        id=agent_id,
        name=first.name,
        status=status,
        outbox=outbox_send,
        inherited=max(0, status.slots_processing),
        extensions=frozenset(extensions) & SUPPORTED_EXTENSIONS,
    )
    self.pool.add(entry)
    logger.info(
        "agent registered id=%s name=%s extensions=%s",
        agent_id,
        entry.name,
        ",".join(sorted(entry.extensions)) or "none (a Paddler 4.1 agent)",
    )
    if self._applicable is not None and not keeps_own_state(self, entry):
        outbox_send.send_nowait(SetState(desired_state=self._applicable))
    consider_adoption(self)
    self._pool_changed()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_write_agent, stream, outbox_receive, tg.cancel_scope)
            try:
                async for message in stream:
                    if not handle_agent_message(self, entry, message):
                        break
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            tg.cancel_scope.cancel()
    finally:
        self.pool.remove(agent_id)
        outbox_send.close()
        for route in entry.routes.values():
            route.close()
        entry.routes.clear()
        logger.info("agent gone id=%s name=%s", agent_id, entry.name)
        self._pool_changed()


async def _write_agent(stream: ObjectStream[Any], outbox: Any, scope: anyio.CancelScope) -> None:
    try:
        async with outbox:
            async for message in outbox:
                await stream.send(message)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        logger.debug("agent socket send failed", exc_info=True)
    scope.cancel()


def _stop_unread(entry: AgentEntry, request_id: str, route: Any) -> None:
    """Its consumer reads nothing: stop the request on the agent, end the route with OVERFLOW
    (after what it holds), and drop whatever the agent still sends for it."""
    logger.info("request %s stopped: its reader let %d items pile up", request_id, ROUTE_LIMIT)
    entry.routes.pop(request_id, None)
    route.send_nowait(OVERFLOW)  # routes are unbounded; the limit is counted here
    route.close()
    if entry.outbox is not None:
        try:
            entry.outbox.send_nowait(StopRespondingTo(request_id=request_id))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass


def handle_agent_message(self: Balancer, entry: AgentEntry, message: Any) -> bool:
    """Apply one message from an agent (sync, no I/O); False ends the connection."""
    if isinstance(message, AgentResponse):
        route = entry.routes.get(message.request_id)
        if route is None:
            logger.debug("response for unknown request %s dropped", message.request_id)
            return True
        try:
            if route.statistics().current_buffer_used >= ROUTE_LIMIT:
                _stop_unread(entry, message.request_id, route)
            else:
                route.send_nowait(message)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            entry.routes.pop(message.request_id, None)
        return True
    if isinstance(message, UpdateAgentStatus):
        before = entry.slots_total
        status = message.slot_aggregated_status_snapshot
        changed = self.pool.apply_status(entry.id, status)
        if (
            before > 0
            and entry.slots_total == 0
            and entry.status is status
            and AgentSocketExtension.DRAIN_ACK in entry.extensions
        ):
            # The agent is draining: acknowledge on the socket, in order, so it knows
            # every request dispatched before this point has already reached it.
            assert entry.outbox is not None
            entry.outbox.send_nowait(Version(version=PADDLER_PROTOCOL_VERSION))
        if changed:
            self._pool_changed()
        return True
    if isinstance(message, DeregisterAgent):
        logger.info("agent deregistered id=%s", entry.id)
        return False
    logger.warning("agent %s sent unexpected %s", entry.id, type(message).__name__)
    return True
