"""The ws:// transport against a real websockets server on 127.0.0.1 (asyncio only)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from agent_fakes import FakeLoader
from websockets.asyncio.client import connect

from paddler.agent import Agent, AgentConfig
from paddler.balancer import Balancer, BalancerConfig
from paddler.metrics import BalancerMetrics
from paddler.wire import (
    AgentToBalancerMessage,
    BalancerDesiredState,
    ContinueFromRawPromptParams,
    Done,
    InferenceParameters,
    LocalToAgentModel,
    RegisterAgent,
    converter,
)
from paddler_server.management import create_management_app
from paddler_server.serve import serve_apps

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def ws_balancer() -> AsyncIterator[tuple[Balancer, str]]:
    """A balancer behind the real management app (agent socket, handshake) on 127.0.0.1."""
    async with Balancer(BalancerConfig()) as balancer, anyio.create_task_group() as tg:
        app = create_management_app(balancer, metrics=BalancerMetrics())
        [(host, port)] = await tg.start(serve_apps, [(app, "127.0.0.1", 0)])
        yield balancer, f"ws://{host}:{port}"
        tg.cancel_scope.cancel()


async def test_agent_over_websocket_serves_a_request(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    async with ws_balancer() as (balancer, url):
        state = BalancerDesiredState(
            model=LocalToAgentModel(str(model)), inference_parameters=InferenceParameters()
        )
        await balancer.set_desired_state(state)
        config = AgentConfig(management_url=url, slots=1, name="ws-agent")
        async with Agent(config, engine_loader=FakeLoader()) as agent:
            with anyio.fail_after(5):
                await agent.wait_registered()
                await balancer.wait_agents(1)
            async with balancer.generate(
                ContinueFromRawPromptParams(raw_prompt="x", max_tokens=3)
            ) as stream:
                items = [item async for item in stream]
            assert balancer.agents_snapshot().agents[0].id == agent.agent_id
        assert isinstance(items[-1].response, Done)
        assert items[0].generated_by == "ws-agent"


async def test_sampling_overrides_cross_the_websocket(tmp_path: Path) -> None:
    """Both ends are ours: the handshake agrees on every extension, the overrides survive
    real frames, and a request without them reaches the engine bare."""
    from paddler.wire import SamplingOverrides

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    loader = FakeLoader()
    async with ws_balancer() as (balancer, url):
        state = BalancerDesiredState(
            model=LocalToAgentModel(str(model)), inference_parameters=InferenceParameters()
        )
        await balancer.set_desired_state(state)
        config = AgentConfig(management_url=url, slots=1)
        async with Agent(config, engine_loader=loader) as agent:
            with anyio.fail_after(5):
                await balancer.wait_agents(1)
            assert [entry.extensions for entry in balancer.pool] == [balancer.agent_extensions]
            assert agent._protocol is not None  # the agent read the 101 answer's header
            assert agent._protocol.extensions == balancer.agent_extensions
            params = ContinueFromRawPromptParams(raw_prompt="x", max_tokens=3)
            for overrides in (SamplingOverrides(temperature=0.5, seed=3, stop=("z",)), None):
                async with balancer.generate(params, overrides=overrides) as stream:
                    items = [item async for item in stream]
                assert isinstance(items[-1].response, Done)
    assert loader.engines[0].overrides == [
        SamplingOverrides(temperature=0.5, seed=3, stop=("z",)),
        None,
    ]


async def test_garbage_frames_are_skipped_not_fatal() -> None:
    async with (
        ws_balancer() as (balancer, url),
        connect(f"{url}/api/v1/agent_socket/raw") as socket,
    ):
        await socket.recv()  # Version
        await socket.send("this is not json")
        await socket.send('{"Notification":{"Unknown":1}}')
        await socket.send(b"\x00binary")
        from paddler.wire import AgentStateApplicationStatus, SlotAggregatedStatusSnapshot

        snapshot = SlotAggregatedStatusSnapshot(
            desired_slots_total=1,
            slots_total=1,
            slots_processing=0,
            download_current=0,
            download_total=0,
            download_indeterminate=False,
            issues=(),
            state_application_status=AgentStateApplicationStatus.APPLIED,
            uses_chat_template_override=False,
            version=1,
        )
        register = RegisterAgent(name="raw", slot_aggregated_status_snapshot=snapshot)
        await socket.send(converter.dumps(register, AgentToBalancerMessage))
        with anyio.fail_after(5):
            await balancer.wait_agents(1)
        assert balancer.agents_snapshot().agents[0].name == "raw"
