"""An agent joins a model pool: ``AgentConfig.pool``, the ``Paddler-Pool`` handshake header
(a real websockets server on 127.0.0.1, asyncio only) and ``inproc://``."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from agent_fakes import FakeLoader
from click.testing import CliRunner

import paddler_server._run
from paddler.agent import Agent, AgentConfig
from paddler.balancer import Balancer, BalancerConfig
from paddler.errors import ConnectError, InvalidRequest
from paddler.metrics import BalancerMetrics
from paddler.transports import MockTransport, WebSocketTransport
from paddler.wire import (
    DEFAULT_POOL,
    BalancerDesiredState,
    ContinueFromRawPromptParams,
    Done,
    InferenceParameters,
    LocalToAgentModel,
    RegisterAgent,
    Version,
)
from paddler_server.cli import cli
from paddler_server.management import create_management_app
from paddler_server.serve import serve_apps

pytestmark = pytest.mark.anyio

_names = itertools.count()


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


def state_for(tmp_path: Path) -> BalancerDesiredState:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    return BalancerDesiredState(
        model=LocalToAgentModel(str(model)), inference_parameters=InferenceParameters()
    )


def test_an_invalid_pool_name_is_refused_by_the_config() -> None:
    with pytest.raises(InvalidRequest, match="'a b'"):
        AgentConfig(management_url="ws://x", slots=1, pool="a b")
    assert AgentConfig(management_url="ws://x", slots=1).pool == DEFAULT_POOL


async def test_agent_over_websocket_joins_its_pool_and_serves_it(tmp_path: Path) -> None:
    async with ws_balancer() as (balancer, url):
        await balancer.set_desired_state(state_for(tmp_path), "gpu:large")
        config = AgentConfig(management_url=url, slots=1, name="ws", pool="gpu:large")
        async with Agent(config, engine_loader=FakeLoader()) as agent:
            with anyio.fail_after(5):
                await agent.wait_registered()
                await balancer.wait_agents(1, pool="gpu:large")
            assert balancer.pool_of_agent(agent.agent_id) == "gpu:large"
            assert balancer.statistics(DEFAULT_POOL).agents == 0
            prompt = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=2)
            async with balancer.generate(prompt, pool="gpu:large") as stream:
                items = [item async for item in stream]
            assert isinstance(items[-1].response, Done)


async def test_an_invalid_pool_header_is_refused_at_the_handshake() -> None:
    async with ws_balancer() as (balancer, url):
        with pytest.raises(ConnectError, match="HTTP 400: Paddler-Pool header: invalid pool"):
            await WebSocketTransport().connect(url, "bad", pool="no/slashes")
        assert balancer.pool_names() == (DEFAULT_POOL,)


async def test_the_agent_tells_its_transport_its_pool() -> None:
    def handler(message: Any) -> list[Any]:
        return [Version("4.1.0")] if isinstance(message, RegisterAgent) else []

    for pool in (DEFAULT_POOL, "other"):
        transport = MockTransport(handler)
        config = AgentConfig(management_url="mock://", slots=1, pool=pool)
        async with Agent(config, transport=transport, engine_loader=FakeLoader()) as agent:
            with anyio.fail_after(5):
                await agent.wait_registered()
        assert transport.pools[0] == pool


async def test_inproc_agent_joins_its_pool(tmp_path: Path) -> None:
    name = f"agent-pools-{next(_names)}"
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        await balancer.set_desired_state(state_for(tmp_path), "b")
        config = AgentConfig(management_url=f"inproc://{name}", slots=1, pool="b")
        async with Agent(config, engine_loader=FakeLoader()):
            with anyio.fail_after(5):
                await balancer.wait_agents(1, pool="b")
        assert balancer.statistics(DEFAULT_POOL).agents == 0


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the agent's run loop: record its config instead of dialing a balancer."""
    calls: list[Any] = []
    monkeypatch.setattr(paddler_server._run, "run_until_signal", lambda *a: calls.append(a))
    monkeypatch.delenv("PADDLER_AGENT_POOL", raising=False)
    monkeypatch.delenv("PADDLER_MAX_DOWNLOAD_SIZE", raising=False)
    return calls


def run_agent_cli(*flags: str, env: dict[str, str] | None = None) -> Any:
    args = ["agent", "--management-addr", "127.0.0.1:1", "--slots", "1", *flags]
    return CliRunner().invoke(cli, args, env=env)


def test_cli_pool_flag_and_environment(ran: list[Any]) -> None:
    assert run_agent_cli().exit_code == 0
    assert run_agent_cli("--pool", "small").exit_code == 0
    assert run_agent_cli(env={"PADDLER_AGENT_POOL": "env-pool"}).exit_code == 0
    assert [config.pool for _, config in ran] == [DEFAULT_POOL, "small", "env-pool"]


def test_cli_refuses_an_invalid_pool_name(ran: list[Any]) -> None:
    result = run_agent_cli("--pool", "-leading-dash")
    assert result.exit_code == 2
    assert "--pool" in result.output and "invalid pool name '-leading-dash'" in result.output
    assert ran == []
