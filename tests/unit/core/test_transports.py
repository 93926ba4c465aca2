"""inproc:// and MockTransport: connecting, refusing, and message flow without sockets."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from paddler.balancer import Balancer, BalancerConfig
from paddler.errors import ConnectError
from paddler.transports import InProcTransport, MockTransport
from paddler.wire import DeregisterAgent, Version

pytestmark = pytest.mark.anyio


async def test_inproc_unknown_name_is_a_connect_error() -> None:
    with pytest.raises(ConnectError, match="inproc://nobody"):
        await InProcTransport().connect("inproc://nobody", "a1")


async def test_inproc_reaches_a_named_balancer_and_gets_version_first() -> None:
    async with Balancer(BalancerConfig(inproc_name="transport-test")):
        stream = await InProcTransport().connect("inproc://transport-test", "a1")
        with anyio.fail_after(2):
            first = await stream.receive()
        assert isinstance(first, Version)
        await stream.aclose()
    with pytest.raises(ConnectError):
        await InProcTransport().connect("inproc://transport-test", "a1")


async def test_two_balancers_cannot_share_a_name() -> None:
    async with Balancer(BalancerConfig(inproc_name="shared-name")):
        with pytest.raises(ValueError, match="already taken"):
            async with Balancer(BalancerConfig(inproc_name="shared-name")):
                pass


async def test_mock_transport_maps_messages_to_replies_sync_or_async() -> None:
    async def handler(message: Any) -> list[Any]:
        await anyio.lowlevel.checkpoint()
        return [Version("x")] if isinstance(message, DeregisterAgent) else []

    transport = MockTransport(handler)
    async with transport:
        connection = await transport.connect("mock://", "a1")
        await connection.send(DeregisterAgent())
        assert await connection.receive() == Version("x")
        transport.connections[0].close_from_balancer()
        with pytest.raises(anyio.EndOfStream):
            await connection.receive()
        with pytest.raises(anyio.BrokenResourceError):
            await connection.send(DeregisterAgent())
