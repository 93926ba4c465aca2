"""AgentConnection: one agent's outbox and routes, driven over a pair of memory streams."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from anyio.streams.stapled import StapledObjectStream

from paddler.balancer import _connection
from paddler.balancer._connection import AgentConnection, RouteEnd
from paddler.errors import AgentGone, AgentRpcTimeout, ShuttingDown
from paddler.wire import (
    AgentRequest,
    AgentResponse,
    ChatTemplate,
    ChatTemplateOverrideResponse,
    ContentToken,
    DeregisterAgent,
    GetChatTemplateOverride,
    StopRespondingTo,
    Version,
)

pytestmark = pytest.mark.anyio


class Agent:
    """The agent's end: what the balancer sent, and a way to answer."""

    def __init__(self, send: MemoryObjectSendStream[Any], receive: MemoryObjectReceiveStream[Any]):
        self.send = send
        self.receive = receive

    async def respond(self, request_id: str, response: Any) -> None:
        await self.send.send(AgentResponse(request_id=request_id, response=response))


@contextlib.asynccontextmanager
async def running(connection: AgentConnection) -> AsyncIterator[Agent]:
    """``connection.run`` over memory streams; non-responses end the connection."""
    to_balancer_send, to_balancer_receive = anyio.create_memory_object_stream[Any](math.inf)
    to_agent_send, to_agent_receive = anyio.create_memory_object_stream[Any](math.inf)
    socket = StapledObjectStream(to_agent_send, to_balancer_receive)
    async with (
        to_balancer_send,
        to_agent_receive,
        socket,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(connection.run, socket, lambda message: False)
        yield Agent(to_balancer_send, to_agent_receive)
        tg.cancel_scope.cancel()


async def test_responses_reach_their_route_and_others_are_dropped() -> None:
    """A response goes to its request's route; one for a request without a route is dropped."""
    connection = AgentConnection("a1")
    async with running(connection) as agent:
        route = connection.open_route("r1")
        await agent.respond("unknown", ContentToken("x"))
        await agent.respond("r1", ContentToken("hi"))
        with anyio.fail_after(5):
            item = await route.receive()
        assert isinstance(item, AgentResponse) and item.response == ContentToken("hi")
        connection.close_route("r1")
        assert len(connection) == 0
        route.close()


async def test_an_unread_route_is_stopped_on_the_agent_and_ended_with_overflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ROUTE_LIMIT queued items the agent is told to stop and the route ends."""
    monkeypatch.setattr(_connection, "ROUTE_LIMIT", 2)
    connection = AgentConnection("a1")
    async with running(connection) as agent:
        route = connection.open_route("r1")
        for token in "abc":
            await agent.respond("r1", ContentToken(token))
        with anyio.fail_after(5):
            stop = await agent.receive.receive()
            items = [item async for item in route]
        assert stop == StopRespondingTo(request_id="r1")
        assert items[-1] is RouteEnd.OVERFLOW and len(items) == 3


async def test_a_call_gets_its_one_answer() -> None:
    """An RPC opens a route, sends the request and returns the answer's payload."""
    connection = AgentConnection("a1")
    async with running(connection) as agent, anyio.create_task_group() as tg:
        answers: list[Any] = []

        async def call() -> None:
            answers.append(await connection.call(GetChatTemplateOverride(), answer_within=5))

        tg.start_soon(call)
        with anyio.fail_after(5):
            request = await agent.receive.receive()
        assert isinstance(request, AgentRequest)
        await agent.respond(request.id, ChatTemplateOverrideResponse(ChatTemplate("T")))
    assert answers == [ChatTemplateOverrideResponse(ChatTemplate("T"))]
    assert len(connection) == 0


async def test_a_call_times_out_and_ends_with_shutdown_or_a_closed_socket() -> None:
    """No answer is AgentRpcTimeout; shut_down is ShuttingDown; a closed socket AgentGone."""
    connection = AgentConnection("a1")
    async with running(connection):
        with pytest.raises(AgentRpcTimeout):
            await connection.call(GetChatTemplateOverride(), answer_within=0.01)
        async with anyio.create_task_group() as tg:
            errors: list[BaseException] = []

            async def call() -> None:
                try:
                    await connection.call(GetChatTemplateOverride(), answer_within=5)
                except ShuttingDown as exc:
                    errors.append(exc)

            tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            connection.shut_down()
        assert len(errors) == 1
    assert connection.closed and not connection.send_nowait(Version(version="4.1.0"))
    with pytest.raises(AgentGone):
        await connection.call(GetChatTemplateOverride(), answer_within=5)


async def test_closing_ends_every_route() -> None:
    """When the socket goes, every open route's reader sees the end."""
    connection = AgentConnection("a1")
    async with running(connection) as agent:
        route = connection.open_route("r1")
        await agent.send.send(DeregisterAgent())  # the handler ends the connection
        with anyio.fail_after(5):
            assert [item async for item in route] == []
    assert connection.closed
