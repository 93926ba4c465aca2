"""AgentConnection: one agent's socket as the balancer sees it (the twin of ``AgentProtocol``).

It owns the agent's outbox (what the balancer sends it, in order) and its routes (one
per-request stream of the agent's responses). Opening a route, delivering a response into it,
stopping a request and closing everything are its methods; nothing else touches the routes.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable

import anyio
from anyio.abc import ObjectStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from paddler._ids import new_id
from paddler.errors import AgentGone, AgentRpcTimeout, ShuttingDown
from paddler.wire import (
    AgentRequest,
    AgentRequestPayload,
    AgentResponse,
    AgentToBalancerMessage,
    BalancerToAgentMessage,
    ResponsePayload,
    StopRespondingTo,
)

__all__ = ["ROUTE_LIMIT", "AgentConnection", "AgentStream", "RouteEnd", "RouteItem"]

logger = logging.getLogger("paddler.balancer")

ROUTE_LIMIT = 4096
"""Items a request's route may hold before its unread stream is stopped: a consumer that reads
nothing must not make the balancer keep every token an agent sends."""


class RouteEnd(enum.Enum):
    """Why a route ended without the agent's terminal response."""

    #: The balancer is shutting down.
    SHUTDOWN = "shutdown"
    #: Its reader let ``ROUTE_LIMIT`` items pile up; the request was stopped on the agent.
    OVERFLOW = "overflow"


RouteItem = AgentResponse | RouteEnd
"""What a route carries: the agent's responses, then possibly one ``RouteEnd``."""

AgentStream = ObjectStream[AgentToBalancerMessage | BalancerToAgentMessage]
"""The balancer's end of an agent socket: ``AgentToBalancerMessage`` in,
``BalancerToAgentMessage`` out (anyio's ``ObjectStream`` has one item type for both ways)."""

#: Handles one message that is not a response; returns False to end the connection.
MessageHandler = Callable[[AgentToBalancerMessage | BalancerToAgentMessage], bool]

_CLOSED = (anyio.ClosedResourceError, anyio.BrokenResourceError)


class AgentConnection:
    """The outbox and routes of one registered agent.

    ``send_nowait`` never blocks (the outbox is unbounded; ``run`` writes it to the socket in
    order). A route is opened per request and closed by whoever opened it; ``close`` ends them
    all (their readers see end-of-stream) when the socket goes.
    """

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        send, receive = anyio.create_memory_object_stream[BalancerToAgentMessage](math.inf)
        self._outbox: MemoryObjectSendStream[BalancerToAgentMessage] = send
        self._outbox_receive: MemoryObjectReceiveStream[BalancerToAgentMessage] = receive
        self._routes: dict[str, MemoryObjectSendStream[RouteItem]] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AgentConnection [{self.agent_id} {state}, routes: {len(self._routes)}]>"

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Open routes (requests and RPCs in flight on this agent)."""
        return len(self._routes)

    # -- sending -------------------------------------------------------------------------

    def send_nowait(self, message: BalancerToAgentMessage) -> bool:
        """Queue ``message`` for the agent; False once the connection is closed."""
        try:
            self._outbox.send_nowait(message)
        except _CLOSED:
            return False
        return True

    def stop(self, request_id: str) -> None:
        """Ask the agent to stop ``request_id`` (its terminal still arrives on the route)."""
        self.send_nowait(StopRespondingTo(request_id=request_id))

    # -- routes --------------------------------------------------------------------------

    def open_route(self, request_id: str) -> MemoryObjectReceiveStream[RouteItem]:
        """Route the agent's responses for ``request_id`` to the returned stream.

        Unbounded: the socket reader never waits for one slow consumer (``ROUTE_LIMIT`` stops
        a consumer that reads nothing).
        """
        if self._closed:
            raise AgentGone("Agent controller connection closed")
        if request_id in self._routes:
            raise ValueError(f"request {request_id!r} already has a route on {self.agent_id}")
        send, receive = anyio.create_memory_object_stream[RouteItem](math.inf)
        self._routes[request_id] = send
        return receive

    def close_route(self, request_id: str) -> None:
        """Stop routing ``request_id``; what the agent still sends for it is dropped."""
        send = self._routes.pop(request_id, None)
        if send is not None:
            send.close()

    def deliver(self, response: AgentResponse) -> None:
        """Hand one response to its route (dropped when the request has none any more)."""
        route = self._routes.get(response.request_id)
        if route is None:
            logger.debug("response for unknown request %s dropped", response.request_id)
            return
        try:
            if route.statistics().current_buffer_used >= ROUTE_LIMIT:
                self._stop_unread(response.request_id, route)
            else:
                route.send_nowait(response)
        except _CLOSED:  # its reader is gone
            self._routes.pop(response.request_id, None)

    def _stop_unread(self, request_id: str, route: MemoryObjectSendStream[RouteItem]) -> None:
        """Its consumer reads nothing: stop the request on the agent and end the route with
        ``OVERFLOW`` (after what it holds); what the agent still sends for it is dropped."""
        logger.info("request %s stopped: its reader let %d items pile up", request_id, ROUTE_LIMIT)
        self._routes.pop(request_id, None)
        route.send_nowait(RouteEnd.OVERFLOW)
        route.close()
        self.stop(request_id)

    def shut_down(self) -> None:
        """End every route with ``SHUTDOWN`` (the balancer is stopping)."""
        for route in list(self._routes.values()):
            try:
                route.send_nowait(RouteEnd.SHUTDOWN)
            except _CLOSED:
                pass

    def close(self) -> None:
        """Close the outbox and every route (the agent's socket is gone)."""
        self._closed = True
        self._outbox.close()
        self._outbox_receive.close()
        routes, self._routes = self._routes, {}
        for route in routes.values():
            route.close()

    # -- one request, one answer ---------------------------------------------------------

    async def call(self, payload: AgentRequestPayload, *, answer_within: float) -> ResponsePayload:
        """Send a management request and wait for its one answer (spec §2.4)."""
        request_id = new_id()
        receive = self.open_route(request_id)
        try:
            if not self.send_nowait(AgentRequest(id=request_id, request=payload)):
                raise AgentGone("Agent controller connection closed")
            try:
                with anyio.fail_after(answer_within):
                    item = await receive.receive()
            except TimeoutError:
                raise AgentRpcTimeout(
                    f"Agent {self.agent_id!r} did not answer within {answer_within}s"
                ) from None
            except anyio.EndOfStream:
                raise AgentGone("Agent controller connection closed") from None
            if item is RouteEnd.SHUTDOWN:
                raise ShuttingDown("balancer is shutting down")
            if isinstance(item, RouteEnd):
                raise AgentGone("Agent controller connection closed")
            return item.response
        finally:
            self.close_route(request_id)
            receive.close()

    # -- the socket ----------------------------------------------------------------------

    async def run(self, stream: AgentStream, handle: MessageHandler) -> None:
        """Pump both ways until the socket ends or ``handle`` returns False, then ``close``.

        Responses go to their routes; every other message goes to ``handle`` (sync, no I/O).
        """
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._write, stream, tg.cancel_scope)
                try:
                    async for message in stream:
                        if isinstance(message, AgentResponse):
                            self.deliver(message)
                        elif not handle(message):
                            break
                except _CLOSED:
                    pass
                tg.cancel_scope.cancel()
        finally:
            self.close()

    async def _write(self, stream: AgentStream, scope: anyio.CancelScope) -> None:
        try:
            async with self._outbox_receive:
                async for message in self._outbox_receive:
                    await stream.send(message)
        except _CLOSED:
            logger.debug("agent socket send failed", exc_info=True)
        scope.cancel()
