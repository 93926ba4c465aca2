"""Agent against a real Balancer over inproc://, with a fake engine (no model)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from agent_fakes import FakeLoader

from paddler.agent import Agent, AgentConfig
from paddler.balancer import Balancer, BalancerConfig
from paddler.plugins import get_plugin_manager
from paddler.policies import use_policy
from paddler.transports import MockTransport
from paddler.wire import (
    AgentStateApplicationStatus,
    BalancerDesiredState,
    ContinueFromRawPromptParams,
    DeregisterAgent,
    Done,
    InferenceParameters,
    LocalToAgentModel,
    ModelCannotBeLoaded,
    RegisterAgent,
    ResponseEnvelope,
    SetState,
    UpdateAgentStatus,
    Version,
)

pytestmark = pytest.mark.anyio

PROMPT = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=8)
_names = itertools.count()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


def state_for(path: Path, **params: Any) -> BalancerDesiredState:
    return BalancerDesiredState(
        model=LocalToAgentModel(str(path)), inference_parameters=InferenceParameters(**params)
    )


@contextlib.asynccontextmanager
async def cluster(
    model_file: Path, *, slots: int = 1, loader: FakeLoader | None = None, **config: Any
) -> AsyncIterator[tuple[Balancer, Agent, FakeLoader]]:
    name = f"agent-test-{next(_names)}"
    loader = loader or FakeLoader()
    async with Balancer(BalancerConfig(inproc_name=name, **config)) as balancer:
        await balancer.set_desired_state(state_for(model_file))
        agent_config = AgentConfig(management_url=f"inproc://{name}", slots=slots, name="ag")
        async with Agent(agent_config, engine_loader=loader) as agent:
            with anyio.fail_after(5):
                await agent.wait_registered()
                await balancer.wait_agents(1, with_slots=loader.fail is None)
            yield balancer, agent, loader


async def collect(balancer: Balancer) -> list[Any]:
    async with balancer.generate(PROMPT) as stream:
        return [item async for item in stream]


async def test_agent_registers_loads_and_serves(model_file: Path) -> None:
    async with cluster(model_file) as (balancer, agent, _):
        items = await collect(balancer)
        (snapshot,) = balancer.agents_snapshot().agents
    assert [i.response.text for i in items[:-1]] == ["e0:a", "e0:b", "e0:c"]
    assert isinstance(items[-1].response, Done)
    assert snapshot.id == agent.agent_id and snapshot.name == "ag"
    assert snapshot.model_path == str(model_file)
    assert snapshot.state_application_status is AgentStateApplicationStatus.APPLIED


async def test_deregisters_on_shutdown(model_file: Path) -> None:
    async with cluster(model_file) as (balancer, agent, _):
        await agent.aclose()
        with anyio.fail_after(2):
            async for snapshot in balancer.subscribe_agents():
                if not snapshot.agents:
                    break


async def test_rpcs_answer_metadata_and_override(model_file: Path) -> None:
    async with cluster(model_file) as (balancer, agent, _):
        metadata = await balancer.get_model_metadata(agent.agent_id)
        override = await balancer.get_chat_template_override(agent.agent_id)
    assert metadata is not None and metadata.metadata["general.architecture"] == "fake"
    assert override is None


async def test_stop_ends_with_done(model_file: Path) -> None:
    async with cluster(model_file) as (balancer, _, loader):
        loader.engines[0].gate = anyio.Event()
        async with balancer.generate(PROMPT) as stream:
            items: list[Any] = []
            async with anyio.create_task_group() as tg:

                async def read() -> None:
                    items.extend([i async for i in stream])

                tg.start_soon(read)
                with anyio.fail_after(2):
                    await balancer.wait_slots_busy(1)
                await stream.cancel()
        assert isinstance(items[-1].response, Done)
        assert balancer.statistics().slots_busy == 0


async def test_a_stop_that_overtakes_its_request_is_not_lost(model_file: Path) -> None:
    """Stop sent right behind the request can reach the agent before the request streams."""
    async with cluster(model_file, inference_item_timeout=600) as (balancer, agent, loader):
        engine = loader.engines[0]
        engine.gate = anyio.Event()  # nothing ends by itself: only the stop can end it
        for _ in range(20):
            with anyio.fail_after(10):  # a lost stop leaves the agent busy for good
                items: list[Any] = []
                async with balancer.generate(PROMPT) as stream, anyio.create_task_group() as tg:

                    async def read(stream: Any = stream, items: list[Any] = items) -> None:
                        items.extend([item async for item in stream])

                    tg.start_soon(read)
                    await balancer.wait_slots_busy(1)  # sent to the agent, maybe not started
                    await stream.cancel()
                await agent.wait_idle()
            assert isinstance(items[-1].response, Done)
            assert engine.cancelled == len(engine.overrides)  # every stream it began, stopped
        assert engine.overrides, "no request reached the engine: the race was not exercised"


async def test_swap_under_load_loses_nothing(model_file: Path) -> None:
    async with cluster(model_file, slots=2, buffered_request_timeout=10) as (
        balancer,
        agent,
        loader,
    ):
        first = loader.engines[0]
        first.gate = anyio.Event()
        results: list[list[Any]] = []

        async def request() -> None:
            results.append(await collect(balancer))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(request)
            with anyio.fail_after(2):
                await balancer.wait_buffered(2)
            await balancer.set_desired_state(state_for(model_file, temperature=0.1))
            with anyio.fail_after(2):
                await balancer.wait_statistics(lambda s: s.slots_total == 0)  # draining
            first.gate.set()  # in-flight requests finish on the old engine
            with anyio.fail_after(5):
                await agent.wait_applied(balancer.applicable_state)
        assert len(loader.engines) == 2 and first.closed
        assert all(isinstance(r[-1], ResponseEnvelope) for r in results)
        prefixes = sorted(r[0].response.text[:3] for r in results)
        assert prefixes == ["e0:", "e0:", "e1:", "e1:"]
        assert loader.engines[1].parameters.temperature == 0.1


async def test_wait_applied_waits_for_a_state_still_on_its_way(model_file: Path) -> None:
    """Given the state just set, ``wait_applied`` returns once that one is loaded, not at
    once because the previous state is applied (the new one has not reached the agent)."""
    async with cluster(model_file) as (balancer, agent, loader):
        await agent.wait_applied(balancer.applicable_state)
        await balancer.set_desired_state(state_for(model_file, temperature=0.1))
        wanted = balancer.applicable_state
        assert agent.desired_state != wanted  # still on its way
        with anyio.fail_after(5):
            await agent.wait_applied(wanted)
        assert agent.desired_state == wanted
        assert len(loader.engines) == 2 and loader.engines[0].closed
        assert agent.engine is loader.engines[1]
        assert loader.engines[1].parameters.temperature == 0.1


async def test_waits_end_with_shutting_down_when_the_agent_closes(model_file: Path) -> None:
    """Nothing left waiting for ever: ``wait_applied`` and ``wait_registered`` raise."""
    from paddler.errors import ShuttingDown

    config = AgentConfig(management_url="inproc://nobody-listens-here", slots=1)
    agent = Agent(config, engine_loader=FakeLoader())
    errors: list[BaseException] = []

    async def wait(waiter: Any) -> None:
        try:
            await waiter()
        except ShuttingDown as exc:
            errors.append(exc)

    # The waiters' task group is outside the agent's: closing the agent wakes them.
    async with anyio.create_task_group() as tg, agent:  # nothing listens at that name
        tg.start_soon(wait, agent.wait_applied)
        tg.start_soon(wait, agent.wait_registered)
        await anyio.wait_all_tasks_blocked()
        assert errors == []
    assert len(errors) == 2


async def test_subscribe_status_shows_each_change_then_ends_when_closed(
    model_file: Path,
) -> None:
    async with cluster(model_file) as (_, agent, _):
        updates = agent.subscribe_status()
        first = await updates.__anext__()
        assert first.slots_total == 1 and first.model_path == str(model_file)
        agent.status.update(download_filename="next.gguf", download_current=5)
        second = await updates.__anext__()
        assert (second.download_filename, second.download_current) == ("next.gguf", 5)
        assert second.version > first.version
        await agent.aclose()
        assert [s async for s in updates] == []


async def test_load_failure_is_an_issue_then_stuck_then_fixed(model_file: Path) -> None:
    loader = FakeLoader()
    loader.fail = RuntimeError("bad gguf")
    async with cluster(model_file, loader=loader) as (balancer, agent, _):
        with anyio.fail_after(10):
            async for snapshot in balancer.subscribe_agents():
                (entry,) = snapshot.agents
                if entry.state_application_status is AgentStateApplicationStatus.STUCK:
                    break
        assert entry.issues == (ModelCannotBeLoaded(model_path=str(model_file)),)
        loader.fail = None
        with anyio.fail_after(5):
            await agent.wait_applied()
            await balancer.wait_agents(1)
        (entry,) = balancer.agents_snapshot().agents
        assert entry.issues == ()


async def test_agent_survives_a_balancer_restart(model_file: Path) -> None:
    name = f"agent-test-{next(_names)}"
    config = AgentConfig(management_url=f"inproc://{name}", slots=1, reconnect_interval=0.05)
    loader = FakeLoader()
    async with Agent(config, engine_loader=loader) as agent:
        for _ in range(2):
            async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
                await balancer.set_desired_state(state_for(model_file))
                with anyio.fail_after(5):
                    await balancer.wait_agents(1)
                assert balancer.agents_snapshot().agents[0].id == agent.agent_id
                items = await collect(balancer)
                assert isinstance(items[-1].response, Done)
    assert len(loader.engines) == 1  # the same state is not reloaded after a reconnect


async def test_agent_against_mock_transport(model_file: Path) -> None:
    seen: list[Any] = []
    serving_reported = anyio.Event()

    def handler(message: Any) -> list[Any]:
        seen.append(message)
        if isinstance(message, UpdateAgentStatus) and (
            message.slot_aggregated_status_snapshot.slots_total
        ):
            serving_reported.set()
        if isinstance(message, RegisterAgent):
            state = state_for(model_file)
            from paddler.balancer import to_agent_desired_state

            return [Version("4.1.0"), SetState(to_agent_desired_state(state))]
        return []

    transport = MockTransport(handler)
    config = AgentConfig(management_url="mock://", slots=1, status_interval=0.05)
    async with Agent(config, transport=transport, engine_loader=FakeLoader()) as agent:
        with anyio.fail_after(5):
            await agent.wait_applied()
            await serving_reported.wait()
    assert isinstance(seen[-1], DeregisterAgent)
    versions = [m.slot_aggregated_status_snapshot.version for m in seen[1:-1]]
    assert versions == sorted(versions)


async def test_run_returns_to_start_once_registered(model_file: Path) -> None:
    name = f"agent-test-{next(_names)}"
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        await balancer.set_desired_state(state_for(model_file))
        agent = Agent(
            AgentConfig(management_url=f"inproc://{name}", slots=1, name="runner"),
            engine_loader=FakeLoader(),
        )
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(5):
                await tg.start(agent.run)
            assert agent.connected
            assert repr(agent).startswith("<Agent [runner ")
            tg.cancel_scope.cancel()
        with anyio.fail_after(2):
            async for snapshot in balancer.subscribe_agents():
                if not snapshot.agents:
                    break


async def test_an_engine_failure_is_a_terminal_error_not_a_dropped_connection(
    model_file: Path,
) -> None:
    from paddler.wire import SamplerError

    async with cluster(model_file) as (balancer, agent, loader):
        engine = loader.engines[0]

        def broken(params: Any, *, overrides: Any = None, continuation: Any = None) -> Any:
            raise RuntimeError("boom")

        engine.generate = broken  # type: ignore[method-assign]
        items = await collect(balancer)
        assert isinstance(items[-1].response, SamplerError)
        assert "boom" in items[-1].response.message
        assert agent.connected and len(balancer.agents_snapshot().agents) == 1


async def test_sampling_overrides_reach_the_engine(model_file: Path) -> None:
    from paddler.wire import SamplingOverrides

    async with cluster(model_file) as (balancer, _, loader):
        await collect(balancer)
        async with balancer.generate(
            PROMPT, overrides=SamplingOverrides(temperature=0.0, seed=42, stop=("b",))
        ) as stream:
            [item async for item in stream]
        async with balancer.generate(PROMPT, overrides=SamplingOverrides(top_p=0.5)) as stream:
            [item async for item in stream]
        async with balancer.generate(PROMPT, overrides=SamplingOverrides()) as stream:
            [item async for item in stream]
    assert loader.engines[0].overrides == [
        None,
        SamplingOverrides(temperature=0.0, seed=42, stop=("b",)),
        SamplingOverrides(top_p=0.5),
        None,  # empty overrides are not sent
    ]


@pytest.mark.parametrize("policy", ["least_busy", "cache_aware"])
async def test_slot_prefixes_are_reported_only_to_a_policy_that_reads_them(
    model_file: Path, policy: str
) -> None:
    """Each prefix report is one more status frame per request: least busy does without."""
    pm = get_plugin_manager(entry_points=False)
    use_policy(pm, policy)
    name = f"agent-test-{next(_names)}"
    config = AgentConfig(management_url=f"inproc://{name}", slots=1, name="ag")
    async with (
        Balancer(BalancerConfig(inproc_name=name), plugin_manager=pm) as balancer,
        Agent(config, engine_loader=FakeLoader()) as agent,
    ):
        await balancer.set_desired_state(state_for(model_file))
        with anyio.fail_after(5):
            await balancer.wait_agents(1, with_slots=True)
        long_prompt = ContinueFromRawPromptParams(raw_prompt="a long prompt " * 40, max_tokens=8)
        async with balancer.generate(long_prompt) as stream:
            items = [item async for item in stream]
    assert isinstance(items[-1].response, Done)
    reported = agent.status.snapshot().cached_prefixes  # hashes of its full 256-char blocks
    assert (reported is not None) == (policy == "cache_aware"), reported
